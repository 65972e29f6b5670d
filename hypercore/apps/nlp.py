r"""NLP: adapters for a frozen tiny transformer, written by a hypernetwork (HyperFormer).

A small transformer encoder is pre-trained once (masked-token prediction on
sentences of a constructed language) and frozen. Each layer :math:`\ell` gets a
bottleneck adapter after its feed-forward block (Houlsby et al., 2019),

.. math:: A_\ell(h) = h + U_\ell\, \mathrm{ReLU}(D_\ell h + b^D_\ell) + b^U_\ell,
    \qquad D_\ell \in \mathbb{R}^{r \times d},\ U_\ell \in \mathbb{R}^{d \times r},

applied to every token (``h``: ``(B, T, d)``), and a linear classifier reads the
final ``[CLS]`` vector. Three ways to obtain the adapter weights:

* :class:`SeparateAdapters`: one adapter set and one classifier per task (no sharing).
* :class:`SharedAdapter`: one adapter set and one classifier for all tasks; the
  task is given as *task tokens* prepended after ``[CLS]``: for each descriptor
  feature :math:`k`, the vector :math:`\delta_k e^{on}_k + (1 - \delta_k) e^{off}_k`.
* :class:`HyperAdapters` (HyperFormer, Karimi Mahabadi et al., 2021): a
  hypernetwork :math:`h_\phi` reads a task descriptor :math:`\delta_\tau` and the
  layer id and writes that layer's adapter,
  :math:`\theta_{\tau,\ell} = h_\phi([\delta_\tau;\ \mathrm{onehot}(\ell)])`; one
  hypernetwork serves every task and layer. Built from hypercore's parts:
  ``hc.HyperNetwork.build(adapter, hc.ScalarInput(F + L, encoding="identity"))``.

All three receive the same information: the task (index or descriptor) of each
sentence. Adapter weights are dicts named like ``nn.Sequential(Linear(d, r),
ReLU(), Linear(r, d))``'s parameters (``"0.weight"`` ``(r, d)``, ``"0.bias"``
``(r,)``, ``"2.weight"`` ``(d, r)``, ``"2.bias"`` ``(d,)``), optionally with a
leading batch dimension ``B`` (one adapter per sentence).

The constructed language (:func:`make_sentences`)
    ``the [adj] cat(s) sees/see/saw | does/do/did not see a <good|bad> apple [adv]``.
    Four binary features per sentence, drawn independently and uniformly:
    negation, plural subject, positive object adjective (sentiment lexicon) and
    past tense. A task is a descriptor :math:`\delta \in \{0, 1\}^4` and its label
    is the parity of the selected features, :math:`y = \bigoplus_{k: \delta_k = 1} f_k`
    (:func:`task_labels`); e.g. ``(1, 0, 1, 0)`` is the expressed sentiment (a
    negated positive is negative). :class:`WordTokenizer` is a whitespace word
    tokenizer over the grammar's closed vocabulary: offline and exact.

Only torch (and hypercore) is imported here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

import hypercore as hc
from hypercore.errors import HypercoreError, HypercoreTypeError, ShapeError, check_int

FEATURES = ("negation", "plural subject", "positive adjective", "past tense")

_SUBJECTS = ("cat", "dog", "bird", "farmer", "teacher", "child")
_PLURAL = {"child": "children"}
_VERBS: tuple[tuple[str, str, str], ...] = (
    ("see", "sees", "saw"),
    ("like", "likes", "liked"),
    ("find", "finds", "found"),
    ("want", "wants", "wanted"),
    ("draw", "draws", "drew"),
)
_OBJECTS = ("apple", "house", "song", "garden", "letter", "river")
_POSITIVE = ("good", "lovely", "happy", "kind")
_NEGATIVE = ("bad", "ugly", "sad", "cruel")
_SUBJECT_ADJ = ("big", "small", "old", "young", "red")
_ADVERBS = ("today", "again", "there", "now")
SPECIALS = ("[PAD]", "[CLS]", "[MASK]", "[UNK]")


def _plural(noun: str) -> str:
    return _PLURAL.get(noun, noun + "s")


def vocabulary() -> list[str]:
    """Every word the grammar can produce, specials first, the rest sorted."""
    words = {"the", "a", "does", "do", "did", "not"}
    words |= set(_SUBJECTS) | {_plural(s) for s in _SUBJECTS}
    words |= {form for verb in _VERBS for form in verb}
    words |= set(_OBJECTS) | set(_POSITIVE) | set(_NEGATIVE) | set(_SUBJECT_ADJ) | set(_ADVERBS)
    return list(SPECIALS) + sorted(words)


def make_sentences(n: int, generator: torch.Generator) -> tuple[list[str], torch.Tensor]:
    """``n`` sentences and their features ``(n, 4)`` (0/1 floats, :data:`FEATURES` order).

    Each feature is an independent fair coin; the fillers (a subject adjective,
    an adverb, the object's article) are coins too, so the features are not
    given away by the sentence length alone.
    """
    n = check_int("n", n)
    feats = torch.randint(0, 2, (n, 4), generator=generator)
    other = torch.randint(0, 1 << 30, (n, 8), generator=generator).tolist()
    sentences = []
    for (neg, plural, positive, past), o in zip(feats.tolist(), other, strict=True):
        subject = _SUBJECTS[o[0] % len(_SUBJECTS)]
        words = ["the"]
        if o[1] % 2:
            words.append(_SUBJECT_ADJ[o[2] % len(_SUBJECT_ADJ)])
        words.append(_plural(subject) if plural else subject)
        base, third, past_form = _VERBS[o[3] % len(_VERBS)]
        if neg:
            words += ["did" if past else ("do" if plural else "does"), "not", base]
        else:
            words.append(past_form if past else (base if plural else third))
        words.append("the" if o[4] % 2 else "a")
        words.append((_POSITIVE if positive else _NEGATIVE)[o[5] % len(_POSITIVE)])
        words.append(_OBJECTS[o[6] % len(_OBJECTS)])
        if o[7] % 2:
            words.append(_ADVERBS[(o[7] // 2) % len(_ADVERBS)])
        sentences.append(" ".join(words))
    return sentences, feats.float()


def task_labels(features: torch.Tensor, descriptor: torch.Tensor) -> torch.Tensor:
    r"""Labels :math:`y = \bigoplus_{k:\ \delta_k = 1} f_k` (parity of the selected features).

    Args:
        features: ``(N, F)`` 0/1 sentence features.
        descriptor: ``(F,)`` 0/1 task descriptor (one task) or ``(N, F)`` (one per sentence).

    Returns:
        ``(N,)`` long labels in ``{0, 1}``.
    """
    if features.dim() != 2:
        raise ShapeError(f"features: expected (N, F), got {tuple(features.shape)}")
    if descriptor.shape[-1] != features.shape[1] or descriptor.dim() not in (1, 2):
        raise ShapeError(
            f"descriptor: expected ({features.shape[1]},) or (N, {features.shape[1]}), "
            f"got {tuple(descriptor.shape)}"
        )
    return ((features.round().long() * descriptor.round().long()).sum(-1) % 2).long()


class WordTokenizer:
    """Whitespace word tokenizer over a closed vocabulary; ``[CLS]`` first, ``[PAD]`` after.

    Args:
        words: the vocabulary (default :func:`vocabulary`); must start with :data:`SPECIALS`.
    """

    def __init__(self, words: Sequence[str] | None = None) -> None:
        self.words = list(vocabulary() if words is None else words)
        if tuple(self.words[: len(SPECIALS)]) != SPECIALS:
            raise HypercoreError(f"words: must start with {SPECIALS}, got {self.words[:4]}")
        self.index = {w: i for i, w in enumerate(self.words)}
        self.pad, self.cls, self.mask, self.unk = range(4)

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, sentences: Sequence[str], length: int | None = None) -> torch.Tensor:
        """``(N, length)`` token ids: ``[CLS]`` then the words, padded (unknown words: ``[UNK]``).

        ``length`` defaults to the longest sentence plus one; a longer sentence raises.
        """
        if isinstance(sentences, str):
            raise HypercoreTypeError("sentences: expected a sequence of strings, got one str")
        rows = [[self.cls] + [self.index.get(w, self.unk) for w in s.split()] for s in sentences]
        width = max(len(r) for r in rows) if length is None else length
        if any(len(r) > width for r in rows):
            raise ShapeError(f"length: a sentence has {max(map(len, rows))} tokens > {width}")
        return torch.tensor([r + [self.pad] * (width - len(r)) for r in rows], dtype=torch.long)

    def decode(self, ids: torch.Tensor) -> list[str]:
        """The sentences of ``(N, T)`` ids, without ``[CLS]`` and ``[PAD]``."""
        skip = {self.pad, self.cls}
        return [" ".join(self.words[i] for i in row if i not in skip) for row in ids.tolist()]


AdapterWeights = dict[str, torch.Tensor]


def apply_adapter(h: torch.Tensor, w: AdapterWeights) -> torch.Tensor:
    r"""Residual bottleneck adapter :math:`h + W^{up}\mathrm{ReLU}(W^{down} h + b^{down}) + b^{up}`.

    Args:
        h: ``(B, T, d)``.
        w: ``"0.weight"`` ``(r, d)``, ``"0.bias"`` ``(r,)``, ``"2.weight"`` ``(d, r)``,
            ``"2.bias"`` ``(d,)``, each optionally with a leading ``B`` (per sentence).
    """
    down, b_down, up, b_up = w["0.weight"], w["0.bias"], w["2.weight"], w["2.bias"]
    if down.dim() == 2:
        return h + F.linear(F.relu(F.linear(h, down, b_down)), up, b_up)
    if down.shape[0] != h.shape[0]:
        raise ShapeError(f"w: batched adapter for {down.shape[0]} sentences, h has {h.shape[0]}")
    z = F.relu(torch.einsum("btd,brd->btr", h, down) + b_down[:, None, :])
    return h + torch.einsum("btr,bdr->btd", z, up) + b_up[:, None, :]


class TinyEncoder(nn.Module):
    """A pre-LN transformer encoder with an adapter slot after each layer.

    Args:
        vocab_size, d_model, num_layers, num_heads, max_len: the usual sizes.

    ``forward(ids, adapters=None, prefix=None)``: ``ids`` ``(B, T)``; ``adapters`` a
    list of :data:`AdapterWeights` (one per layer) or ``None``; ``prefix``
    ``(B, P, d)`` vectors inserted after ``[CLS]``. Returns ``(B, P + T, d)``.
    """

    def __init__(
        self, vocab_size: int, d_model: int = 64, num_layers: int = 2, num_heads: int = 4,
        max_len: int = 32,
    ) -> None:  # fmt: skip
        super().__init__()
        self.d_model, self.num_layers = d_model, num_layers
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Parameter(torch.randn(max_len, d_model) * 0.02)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d_model, num_heads, 2 * d_model, dropout=0.0, batch_first=True, norm_first=True
            )
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.mlm = nn.Linear(d_model, vocab_size)

    def forward(
        self,
        ids: torch.Tensor,
        adapters: Sequence[AdapterWeights] | None = None,
        prefix: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if ids.dim() != 2:
            raise ShapeError(f"ids: expected (B, T), got {tuple(ids.shape)}")
        if adapters is not None and len(adapters) != self.num_layers:
            raise ShapeError(f"adapters: expected {self.num_layers} layers, got {len(adapters)}")
        pad = ids == 0
        x = self.embed(ids)
        if prefix is not None:
            x = torch.cat([x[:, :1], prefix, x[:, 1:]], 1)
            pad = torch.cat([pad[:, :1], pad.new_zeros(prefix.shape[:2]), pad[:, 1:]], 1)
        x = x + self.pos[: x.shape[1]]
        for i, layer in enumerate(self.layers):
            x = layer(x, src_key_padding_mask=pad)
            if adapters is not None:
                x = apply_adapter(x, adapters[i])
        return self.norm(x)


def pretrain_mlm(
    model: TinyEncoder, ids: torch.Tensor, steps: int, *, lr: float = 3e-3, batch: int = 128,
    mask_prob: float = 0.15, seed: int = 0,
) -> torch.Tensor:  # fmt: skip
    """Masked-token pre-training (BERT-style, every chosen token replaced by ``[MASK]``).

    Returns the ``(steps,)`` training losses (cross-entropy on the masked tokens).
    """
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    losses = torch.empty(steps)
    model.train()
    for step in range(steps):
        x = ids[torch.randint(0, len(ids), (batch,), generator=g)].to(model.pos.device)
        chosen = (torch.rand(x.shape, generator=g).to(x.device) < mask_prob) & (x > 3)
        chosen[:, 1] |= ~chosen.any(1)  # at least one masked token per sentence
        logits = model.mlm(model(x.masked_fill(chosen, 2)))
        loss = F.cross_entropy(logits[chosen], x[chosen])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses[step] = loss.detach()
    return losses


def _adapter(d: int, r: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d, r), nn.ReLU(), nn.Linear(r, d))


def _zero_up(adapter: nn.Sequential) -> nn.Sequential:
    up = adapter[2]
    assert isinstance(up, nn.Linear)
    nn.init.zeros_(up.weight)  # near-identity start, as in Houlsby et al.
    nn.init.zeros_(up.bias)
    return adapter


class AdapterMethod(nn.Module):
    """Base: ``forward(backbone, ids, task, descriptor) -> (B, 2)`` logits.

    ``task``: ``(B,)`` task indices; ``descriptor``: ``(B, F)`` task descriptors.
    Each method uses what it needs of the two (the same information).
    """

    def trainable(self) -> int:
        """The number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


class SeparateAdapters(AdapterMethod):
    """One adapter per layer and one classifier per task; nothing shared."""

    def __init__(self, num_tasks: int, d: int, r: int, num_layers: int) -> None:
        super().__init__()
        self.tasks = nn.ModuleList(
            nn.ModuleList(_zero_up(_adapter(d, r)) for _ in range(num_layers))
            for _ in range(num_tasks)
        )
        self.heads = nn.ModuleList(nn.Linear(d, 2) for _ in range(num_tasks))

    def forward(
        self,
        backbone: TinyEncoder,
        ids: torch.Tensor,
        task: torch.Tensor,
        descriptor: torch.Tensor,
    ) -> torch.Tensor:
        out = torch.empty(len(ids), 2, device=ids.device)
        for t in task.unique().tolist():
            rows = task == t
            if not 0 <= t < len(self.tasks):
                raise HypercoreError(f"task: id {t} outside [0, {len(self.tasks)})")
            layers = [dict(a.named_parameters()) for a in self.tasks[t]]
            out[rows] = self.heads[t](backbone(ids[rows], layers)[:, 0])
        return out


class SharedAdapter(AdapterMethod):
    """One adapter set and one classifier for all tasks, with descriptor task tokens.

    Token :math:`k` is :math:`\\delta_k e^{on}_k + (1 - \\delta_k) e^{off}_k` (``(F, d)``
    each), so a new descriptor is a new combination of trained tokens.
    """

    def __init__(self, num_features: int, d: int, r: int, num_layers: int) -> None:
        super().__init__()
        self.adapters = nn.ModuleList(_zero_up(_adapter(d, r)) for _ in range(num_layers))
        self.on = nn.Parameter(torch.randn(num_features, d) * 0.1)
        self.off = nn.Parameter(torch.randn(num_features, d) * 0.1)
        self.head = nn.Linear(d, 2)

    def forward(
        self,
        backbone: TinyEncoder,
        ids: torch.Tensor,
        task: torch.Tensor,
        descriptor: torch.Tensor,
    ) -> torch.Tensor:
        delta = descriptor[:, :, None]
        prefix = delta * self.on + (1 - delta) * self.off
        layers = [dict(a.named_parameters()) for a in self.adapters]
        return self.head(backbone(ids, layers, prefix)[:, 0])


class HyperAdapters(AdapterMethod):
    r"""HyperFormer: :math:`\theta_{\tau,\ell} = h_\phi([\delta_\tau; \mathrm{onehot}(\ell)])`.

    ``self.hnet`` is ``hc.HyperNetwork.build(adapter, hc.ScalarInput(F + L,
    encoding="identity"), head="multiple", body_hidden=body_hidden)``: an MLP body
    on the (descriptor, layer id) and one linear head per adapter tensor. Weights
    are generated once per distinct (task, layer) in the batch. The classifier
    on ``[CLS]`` is shared by all tasks.
    """

    def __init__(
        self, num_features: int, d: int, r: int, num_layers: int, body_hidden: Sequence[int] = (8,)
    ) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.hnet = hc.HyperNetwork.build(
            _adapter(d, r),
            hc.ScalarInput(num_features + num_layers, encoding="identity"),
            head="multiple",
            body_hidden=tuple(body_hidden),
            gain=1.0,
        )
        # the template adapter's own parameters are never used (generated instead)
        self.hnet.target.module.requires_grad_(False)
        self.head = nn.Linear(d, 2)

    def adapters(self, descriptor: torch.Tensor) -> list[AdapterWeights]:
        """Per-layer adapter weights for ``(B, F)`` descriptors (each tensor ``(B, ...)``)."""
        if descriptor.dim() != 2:
            raise ShapeError(f"descriptor: expected (B, F), got {tuple(descriptor.shape)}")
        eye = torch.eye(self.num_layers, device=descriptor.device)
        out = []
        for layer in range(self.num_layers):
            cond = torch.cat([descriptor, eye[layer].expand(len(descriptor), -1)], 1)
            out.append(self.hnet.generate(cond))
        return out

    def forward(
        self,
        backbone: TinyEncoder,
        ids: torch.Tensor,
        task: torch.Tensor,
        descriptor: torch.Tensor,
    ) -> torch.Tensor:
        return self.head(backbone(ids, self.adapters(descriptor))[:, 0])


@dataclass
class TaskData:
    """Labelled sentences of several tasks: ``ids`` ``(N, T)``, ``task`` ``(N,)``,
    ``descriptor`` ``(N, F)``, ``y`` ``(N,)``."""

    ids: torch.Tensor
    task: torch.Tensor
    descriptor: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def select(self, rows: torch.Tensor) -> TaskData:
        return TaskData(self.ids[rows], self.task[rows], self.descriptor[rows], self.y[rows])


def make_task_data(
    tokenizer: WordTokenizer, descriptors: torch.Tensor, per_task: int, generator: torch.Generator,
    length: int = 14,
) -> TaskData:  # fmt: skip
    """``per_task`` fresh labelled sentences for each row of ``descriptors`` ``(K, F)``."""
    parts = []
    for k, desc in enumerate(descriptors):
        sentences, feats = make_sentences(per_task, generator)
        ids = tokenizer.encode(sentences, length)
        y = task_labels(feats, desc)
        parts.append(TaskData(ids, torch.full((per_task,), k), desc.expand(per_task, -1), y))
    return TaskData(*(torch.cat([getattr(p, f) for p in parts]) for f in TaskData.__annotations__))


def train_method(
    method: AdapterMethod, backbone: TinyEncoder, data: TaskData, steps: int, *, lr: float,
    batch: int = 64, weight_decay: float = 0.0, params: Sequence[nn.Parameter] | None = None,
    seed: int = 0,
) -> torch.Tensor:  # fmt: skip
    """Adam(W) on the cross-entropy of random mini-batches (all tasks mixed); backbone frozen.

    ``params`` defaults to the method's trainable parameters. Returns the losses.
    """
    if steps < 0 or not math.isfinite(lr) or lr <= 0:
        raise HypercoreError(f"steps >= 0 and lr > 0 expected, got steps={steps}, lr={lr}")
    backbone.requires_grad_(False)
    backbone.eval()
    g = torch.Generator().manual_seed(seed)
    params = list(method.parameters()) if params is None else list(params)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    losses = torch.empty(steps)
    device = backbone.pos.device
    for step in range(steps):
        rows = torch.randint(0, len(data), (min(batch, len(data)),), generator=g)
        b = data.select(rows)
        logits = method(backbone, b.ids.to(device), b.task.to(device), b.descriptor.to(device))
        loss = F.cross_entropy(logits, b.y.to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses[step] = loss.detach()
    return losses


@torch.no_grad()
def task_accuracy(
    method: AdapterMethod, backbone: TinyEncoder, data: TaskData, num_tasks: int
) -> torch.Tensor:
    """``(num_tasks,)`` accuracy of each task (NaN for a task without sentences)."""
    device = backbone.pos.device
    pred = method(backbone, data.ids.to(device), data.task.to(device), data.descriptor.to(device))
    correct = (pred.argmax(1).cpu() == data.y).float()
    out = torch.full((num_tasks,), float("nan"))
    for t in range(num_tasks):
        rows = data.task == t
        if rows.any():
            out[t] = correct[rows].mean()
    return out
