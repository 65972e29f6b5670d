"""Few-shot episodes: N classes, K labelled examples each (the support set) and queries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class Episodes:
    """A batch of ``E`` few-shot episodes; labels are ``0..N-1`` within each episode.

    Attributes:
        support_x: ``(E, N*K, *features)``; support_y: ``(E, N*K)``.
        query_x: ``(E, N*Q, *features)``; query_y: ``(E, N*Q)``.
        classes: ``(E, N)``, the original class of each episode label.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    classes: torch.Tensor

    def to(self, device: str | torch.device) -> Episodes:
        return Episodes(
            *(
                t.to(device)
                for t in (self.support_x, self.support_y, self.query_x, self.query_y, self.classes)
            )
        )


def sample_episodes(
    x: torch.Tensor,
    y: torch.Tensor,
    classes: Sequence[int],
    n_way: int,
    k_shot: int,
    n_query: int,
    num_episodes: int,
    generator: torch.Generator | None = None,
) -> Episodes:
    """Draw ``num_episodes`` N-way K-shot episodes from the samples of ``classes``.

    Each episode picks ``n_way`` of ``classes`` at random, relabels them
    ``0..n_way-1`` in random order, and draws ``k_shot`` support and ``n_query``
    query samples per class without overlap.

    Raises:
        ValueError: when a class has fewer than ``k_shot + n_query`` samples or
            there are fewer than ``n_way`` classes.
    """
    classes = list(classes)
    if len(classes) < n_way:
        raise ValueError(f"n_way={n_way} but only {len(classes)} classes were given")
    pools = {c: torch.nonzero(y == c).squeeze(1) for c in classes}
    short = {c: len(p) for c, p in pools.items() if len(p) < k_shot + n_query}
    if short:
        raise ValueError(
            f"classes with fewer than k_shot + n_query = {k_shot + n_query} samples: {short}"
        )
    support, query, chosen = [], [], []
    for _ in range(num_episodes):
        picked = [classes[i] for i in torch.randperm(len(classes), generator=generator)[:n_way]]
        chosen.append(picked)
        s_idx, q_idx = [], []
        for c in picked:
            order = pools[c][torch.randperm(len(pools[c]), generator=generator)]
            s_idx.append(order[:k_shot])
            q_idx.append(order[k_shot : k_shot + n_query])
        support.append(torch.cat(s_idx))
        query.append(torch.cat(q_idx))
    support_t, query_t = torch.stack(support), torch.stack(query)  # (E, N*K), (E, N*Q)
    labels = torch.arange(n_way)
    return Episodes(
        x[support_t],
        labels.repeat_interleave(k_shot).expand(num_episodes, -1).clone(),
        x[query_t],
        labels.repeat_interleave(n_query).expand(num_episodes, -1).clone(),
        torch.tensor(chosen),
    )
