r"""An attention hypernetwork: a transformer reads a labelled support set and writes a layer.

In the style of HyperTransformer (Zhmoginov, Sandler and Vladymyrov, ICML 2022):
the hypernetwork's input is a *set* of labelled examples, and self-attention
lets every generated weight depend on all of them, in any order.

Tokens:

* one per support example: :math:`W_s [\phi(x_j);\ \mathrm{onehot}(y_j)]`;
* one per class ``n`` (a "weight token"): a learned query :math:`q` plus a
  learned class-slot embedding :math:`u_n`; attention learns to gather into
  it what the support tokens labelled ``n`` carry.

A transformer encoder (no positional encoding: the set has no order) mixes
them, and each weight token's output :math:`t_n` becomes the ``n``-th row of
the generated layer: :math:`w_n = W_w t_n`, :math:`b_n = v^\top t_n`. The
result is a weight dict ``{"weight": (E, N, d), "bias": (E, N)}`` for an
``nn.Linear(d, N)`` target, one per episode.
"""

from __future__ import annotations

import torch
from torch import nn

from hypercore._deprecation import renamed
from hypercore.errors import (
    HypercoreError,
    ShapeError,
    check_id_dtype,
    check_positive_int,
    check_tensor,
    shape_str,
)


class SupportSetTransformer(nn.Module):
    """Generate an ``N``-way linear classifier from support-set features.

    Args:
        feature_dim: ``d``, the size of the features the classifier reads.
        num_classes: ``N``.
        d_model: the transformer's width.
        num_heads: attention heads (formerly ``heads``).
        num_layers: encoder layers (formerly ``layers``).
        dim_feedforward: width of each layer's feed-forward block.

    Shapes:
        ``features (E, S, d)``, ``labels (E, S)`` with values in ``0..N-1`` ->
        ``{"weight": (E, N, d), "bias": (E, N)}``.
    """

    @renamed(heads="num_heads", layers="num_layers")
    def __init__(
        self,
        feature_dim: int,
        num_classes: int,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        dim_feedforward: int = 128,
    ):
        super().__init__()
        self.feature_dim = check_positive_int("feature_dim", feature_dim)
        self.num_classes = check_positive_int("num_classes", num_classes)
        for name, value in (
            ("d_model", d_model),
            ("num_heads", num_heads),
            ("num_layers", num_layers),
            ("dim_feedforward", dim_feedforward),
        ):
            check_positive_int(name, value)
        if d_model % num_heads:
            raise HypercoreError(
                f"d_model: expected a multiple of num_heads={num_heads}, got {d_model}"
            )
        self.embed_support = nn.Linear(feature_dim + num_classes, d_model)
        self.query = nn.Parameter(torch.randn(d_model) * 0.02)
        self.class_slots = nn.Parameter(torch.randn(num_classes, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, num_heads, dim_feedforward, dropout=0.0, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.to_weight = nn.Linear(d_model, feature_dim)
        self.to_bias = nn.Linear(d_model, 1)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        check_tensor("features", features)
        check_tensor("labels", labels)
        check_id_dtype("labels", labels)
        if features.dim() != 3 or features.shape[2] != self.feature_dim:
            raise ShapeError(
                f"features: expected shape (E, S, {self.feature_dim}), "
                f"got {shape_str(features.shape)}"
            )
        if labels.shape != features.shape[:2]:
            raise ShapeError(
                f"labels: expected shape {shape_str(features.shape[:2])}, "
                f"got {shape_str(labels.shape)}"
            )
        if bool(((labels < 0) | (labels >= self.num_classes)).any()):
            raise ShapeError(f"labels: expected values in 0..{self.num_classes - 1}")
        episodes = features.shape[0]
        one_hot = nn.functional.one_hot(labels, self.num_classes).to(features.dtype)
        support = self.embed_support(torch.cat([features, one_hot], dim=2))  # (E, S, d_model)
        slots = (self.query + self.class_slots).expand(episodes, -1, -1)  # (E, N, d_model)
        tokens = self.encoder(torch.cat([slots, support], dim=1))
        out = tokens[:, : self.num_classes]  # (E, N, d_model): the weight tokens
        return {"weight": self.to_weight(out), "bias": self.to_bias(out).squeeze(-1)}
