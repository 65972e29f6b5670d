"""What a body is: the hypernetwork's own architecture, between input and head."""

from __future__ import annotations

from hypercore.config import Configurable


class Body(Configurable):
    """Mixin for hypernetwork bodies: ``(N, in_features) -> (N, out_features)``.

    Any ``nn.Module`` with this mapping and an ``out_features`` attribute can
    serve as a body; subclass this (together with ``nn.Module``) to make it
    savable in checkpoints. MLP bodies are here; CNN, RNN and attention bodies
    plug into the same seam.
    """

    in_features: int
    out_features: int
