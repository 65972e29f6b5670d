r"""Ha et al.'s static hypernetwork for convolutional layers: kernels assembled from tiles.

Ha, Dai and Le (2017) generate a convolutional layer's kernel
:math:`K \in \mathbb{R}^{O \times C \times k \times k}` as a grid of tiles of
``tile_out x tile_in`` channels. Tile :math:`t` has a learned embedding
:math:`z_t \in \mathbb{R}^{N_z}`, and one two-layer *linear* generator, shared
by every tile of every layer, produces it input channel by input channel:

.. math::

    a_{t,i} = W_i z_t + B_i \in \mathbb{R}^{N_d} \quad (i = 1..\text{tile\_in}), \qquad
    K_{t,i} = W_\text{out}\, a_{t,i} + B_\text{out}
              \in \mathbb{R}^{\text{tile\_out} \cdot k \cdot k}.

Its size, ``tile_in (N_d N_z + N_d) + (tile_out k^2)(N_d + 1) + tiles * N_z``,
does not grow with the number of tiles except through the small embeddings:
for one 16x16 layer of 7x7 kernels (12,544 weights) and ``N_z = N_d = 4`` it
is 4,244 parameters, the configuration of Ha et al.'s MNIST experiment.

Here the embeddings may also depend on the hypernetwork's condition,
:math:`z_t(c) = z_t + A\, \mathrm{body}(c)`, so the same head serves a static
hypernetwork (one condition) or a task-conditioned one.
"""

from __future__ import annotations

import torch
from torch import nn

from hypercore.errors import HypercoreError, check_positive_int
from hypercore.heads.shared import ScaledOutputHead
from hypercore.target.spec import WeightSpec


class KernelTileHead(ScaledOutputHead):
    """Generate 4-D convolution kernels as tiles from per-tile embeddings (Ha et al., 2017).

    Args:
        in_features: body feature size.
        spec: the target's weight spec: every tensor must be a conv kernel
            ``(O, C, k, k)`` with the same ``k``, ``O`` divisible by
            ``tile_out`` and ``C`` by ``tile_in``.
        tile_in, tile_out: channels per tile.
        embedding_dim: ``N_z``.
        hidden: ``N_d``, the width of the linear generator.

    Shapes:
        ``(N, in_features) -> {name: (N, O, C, k, k)}``.
    """

    def __init__(
        self,
        in_features: int,
        spec: WeightSpec,
        tile_in: int = 16,
        tile_out: int = 16,
        embedding_dim: int = 4,
        hidden: int = 4,
    ):
        super().__init__(in_features, spec)
        tile_in = check_positive_int("tile_in", tile_in)
        tile_out = check_positive_int("tile_out", tile_out)
        embedding_dim = check_positive_int("embedding_dim", embedding_dim)
        hidden = check_positive_int("hidden", hidden)
        kernels = {p.shape[2:] for p in spec}
        bad = [
            p.name
            for p in spec
            if len(p.shape) != 4 or p.shape[0] % tile_out or p.shape[1] % tile_in
        ]
        if bad or len(kernels) != 1:
            raise HypercoreError(
                f"KernelTileHead generates 4-D conv kernels of one kernel size whose channels "
                f"divide into {tile_out}x{tile_in} tiles; cannot generate {bad or spec.shapes}"
            )
        (self.kernel_size,) = kernels
        self.tile_in, self.tile_out = tile_in, tile_out
        self.embedding_dim, self.hidden = embedding_dim, hidden
        self.grids = [(p.shape[0] // tile_out, p.shape[1] // tile_in) for p in spec]
        num_tiles = sum(r * q for r, q in self.grids)
        k2 = self.kernel_size[0] * self.kernel_size[1]
        self.embeddings = nn.Parameter(torch.randn(num_tiles, embedding_dim))  # z_t
        self.from_condition = nn.Linear(in_features, embedding_dim, bias=False)  # A
        self.weight_in = nn.Parameter(  # W_i, one (N_d, N_z) matrix per input channel of a tile
            torch.randn(tile_in, hidden, embedding_dim) / embedding_dim**0.5
        )
        self.bias_in = nn.Parameter(torch.zeros(tile_in, hidden))  # B_i
        self.out = nn.Linear(hidden, tile_out * k2)  # W_out, B_out

    def config(self) -> dict:
        return {
            "tile_in": self.tile_in,
            "tile_out": self.tile_out,
            "embedding_dim": self.embedding_dim,
            "hidden": self.hidden,
        }

    def raw(self, h: torch.Tensor) -> torch.Tensor:
        n, (kh, kw) = h.shape[0], self.kernel_size
        z = self.embeddings + self.from_condition(h).unsqueeze(1)  # (N, T, N_z)
        a = torch.einsum("ntz,idz->ntid", z, self.weight_in) + self.bias_in  # (N, T, tile_in, N_d)
        tiles = self.out(a).view(n, -1, self.tile_in, self.tile_out, kh, kw)
        tiles = tiles.transpose(2, 3)  # (N, T, tile_out, tile_in, kh, kw)
        pieces, start = [], 0
        for rows, cols in self.grids:
            block = tiles[:, start : start + rows * cols].reshape(
                n, rows, cols, self.tile_out, self.tile_in, kh, kw
            )
            kernel = block.permute(0, 1, 3, 2, 4, 5, 6)  # (N, rows, tile_out, cols, tile_in, ..)
            pieces.append(kernel.reshape(n, -1))  # (N, O * C * kh * kw)
            start += rows * cols
        return torch.cat(pieces, dim=1)
