r"""HyperLSTM (Ha, Dai and Le, 2017): a small LSTM rescales a large LSTM's weights at every step.

A recurrent hypernetwork: at each time step a small "hyper" LSTM reads the
input and the main LSTM's previous hidden state and emits three small
embeddings, which are projected to one scale per row of the main LSTM's
input and recurrent weight matrices and to its bias,

.. math::

    \hat h_t &= \mathrm{LSTM}_\text{hyper}\big([x_t, h_{t-1}],\ \hat h_{t-1}\big), \qquad
    (z_x, z_h, z_b) = P \hat h_t + p \\
    d_x &= 1 + W_x z_x, \qquad d_h = 1 + W_h z_h, \qquad b_t = b + W_b z_b \\
    \text{gates}_t &= d_x \odot (W_{ih} x_t) + d_h \odot (W_{hh} h_{t-1}) + b_t

and the main cell continues as an ordinary LSTM. The per-step weights
:math:`\operatorname{diag}(d_x) W_{ih}` are never built: scaling the rows of a
matrix is scaling the output of its product (the structured "row scaling" of
:class:`~hypercore.target.structured.RowScaled`), so a step costs two shared
matrix products plus elementwise work.

The projections :math:`W_x, W_h, W_b` start at zero, so a fresh HyperLSTM
computes exactly the LSTM with weights :math:`W_{ih}, W_{hh}, b` (and learns to
modulate it). Gate order follows ``torch.nn.LSTMCell``: input, forget, cell,
output.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hypercore._deprecation import renamed
from hypercore.errors import ShapeError, check_positive_int, check_tensor, shape_str

State = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # h, c, hyper h, hyper c


class HyperLSTMCell(nn.Module):
    """One step of a HyperLSTM.

    Args:
        input_size: features per step of the input.
        hidden_size: the main LSTM's hidden size ``H``.
        hyper_size: the hyper LSTM's hidden size (small, e.g. 32).
        embedding_dim: size of each of the three embeddings ``z_x, z_h, z_b``
            (formerly ``embedding_size``).

    Shapes:
        ``x (B, input_size)``, state ``(h, c, hyper_h, hyper_c)`` ->
        ``(h', (h', c', hyper_h', hyper_c'))``.
    """

    @renamed(embedding_size="embedding_dim")
    def __init__(
        self, input_size: int, hidden_size: int, hyper_size: int = 32, embedding_dim: int = 8
    ):
        super().__init__()
        self.input_size = check_positive_int("input_size", input_size)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.hyper_size = check_positive_int("hyper_size", hyper_size)
        self.embedding_dim = check_positive_int("embedding_dim", embedding_dim)
        gates = 4 * hidden_size
        bound = 1.0 / math.sqrt(hidden_size)  # torch.nn.LSTMCell's init
        self.weight_ih = nn.Parameter(torch.empty(gates, input_size).uniform_(-bound, bound))
        self.weight_hh = nn.Parameter(torch.empty(gates, hidden_size).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(gates).uniform_(-bound, bound))
        self.hyper = nn.LSTMCell(input_size + hidden_size, hyper_size)
        self.to_embeddings = nn.Linear(hyper_size, 3 * embedding_dim)
        self.scale_x = nn.Linear(embedding_dim, gates, bias=False)
        self.scale_h = nn.Linear(embedding_dim, gates, bias=False)
        self.shift_b = nn.Linear(embedding_dim, gates, bias=False)
        for projection in (self.scale_x, self.scale_h, self.shift_b):
            nn.init.zeros_(projection.weight)

    def initial_state(self, batch: int, like: torch.Tensor) -> State:
        zeros = like.new_zeros
        return (
            zeros(batch, self.hidden_size),
            zeros(batch, self.hidden_size),
            zeros(batch, self.hyper_size),
            zeros(batch, self.hyper_size),
        )

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        if state is None:
            state = self.initial_state(x.shape[0], x)
        h, c, hyper_h, hyper_c = state
        hyper_h, hyper_c = self.hyper(torch.cat([x, h], dim=1), (hyper_h, hyper_c))
        z_x, z_h, z_b = self.to_embeddings(hyper_h).chunk(3, dim=1)  # each (B, embedding)
        gates = (
            (1 + self.scale_x(z_x)) * (x @ self.weight_ih.T)  # rows of W_ih scaled per step
            + (1 + self.scale_h(z_h)) * (h @ self.weight_hh.T)
            + self.bias
            + self.shift_b(z_b)
        )  # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c, hyper_h, hyper_c)


class HyperLSTM(nn.Module):
    """A HyperLSTM over whole sequences (batch first).

    Args:
        input_size, hidden_size, hyper_size, embedding_dim: see :class:`HyperLSTMCell`.

    Shapes:
        ``x (B, T, input_size)`` -> ``outputs (B, T, hidden_size)`` and the final state.
    """

    @renamed(embedding_size="embedding_dim")
    def __init__(
        self, input_size: int, hidden_size: int, hyper_size: int = 32, embedding_dim: int = 8
    ):
        super().__init__()
        self.cell = HyperLSTMCell(input_size, hidden_size, hyper_size, embedding_dim)

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        check_tensor("x", x)
        if x.dim() != 3 or x.shape[2] != self.cell.input_size or x.shape[1] == 0:
            raise ShapeError(
                f"x: expected shape (B, T, {self.cell.input_size}) with T >= 1, "
                f"got {shape_str(x.shape)}"
            )
        outputs = []
        for t in range(x.shape[1]):
            h, new_state = self.cell(x[:, t], state)
            state = new_state
            outputs.append(h)
        return torch.stack(outputs, dim=1), new_state
