r"""Recurrent layers in plain torch ops, so that ``vmap`` can batch per-sample weights.

``torch.func.vmap`` has no batching rule for the fused ``aten::lstm`` /
``aten::gru`` kernels, so a target with a per-sample generated ``nn.LSTM``,
``nn.GRU`` or ``nn.RNN`` runs these reference implementations inside the vmap
route (:mod:`hypercore.target.substitute`). They take the fused kernels'
arguments (``params`` is the layer's flat weight list: per layer and
direction ``w_ih, w_hh[, b_ih, b_hh][, w_hr]``) and compute, for each step,

.. math::
    \text{LSTM: } (i, f, g, o) = (\sigma, \sigma, \tanh, \sigma)
    (W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}),\\
    c_t = f \odot c_{t-1} + i \odot g, \quad h_t = W_{hr}\,(o \odot \tanh c_t)

.. math::
    \text{GRU: } r, z = \sigma(\cdot), \quad
    n = \tanh(W_{in} x_t + b_{in} + r \odot (W_{hn} h_{t-1} + b_{hn})),\\
    h_t = (1 - z) \odot n + z \odot h_{t-1}

(``W_{hr}`` only with ``proj_size``), matching PyTorch's definitions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

Cell = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None, Sequence], tuple]


def _lstm_cell(x, h, c, p):
    w_ih, w_hh, b_ih, b_hh, w_hr = p
    gates = F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return (h if w_hr is None else F.linear(h, w_hr)), c


def _gru_cell(x, h, c, p):
    w_ih, w_hh, b_ih, b_hh, _ = p
    gi_r, gi_z, gi_n = F.linear(x, w_ih, b_ih).chunk(3, dim=-1)
    gh_r, gh_z, gh_n = F.linear(h, w_hh, b_hh).chunk(3, dim=-1)
    r, z = torch.sigmoid(gi_r + gh_r), torch.sigmoid(gi_z + gh_z)
    n = torch.tanh(gi_n + r * gh_n)
    return (1 - z) * n + z * h, c


def _rnn_cell(activation):
    def cell(x, h, c, p):
        w_ih, w_hh, b_ih, b_hh, _ = p
        return activation(F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)), c

    return cell


def _layer_params(params: Sequence, has_biases: bool, count: int) -> list[tuple]:
    per = len(params) // count
    out = []
    for k in range(count):
        p = list(params[k * per : (k + 1) * per])
        w_ih, w_hh = p[0], p[1]
        b_ih, b_hh = (p[2], p[3]) if has_biases else (None, None)
        w_hr = p[-1] if per in (3, 5) else None
        out.append((w_ih, w_hh, b_ih, b_hh, w_hr))
    return out


def _run(
    cell: Cell,
    x: torch.Tensor,
    h0: torch.Tensor,
    c0: torch.Tensor | None,
    params: Sequence,
    has_biases: bool,
    num_layers: int,
    dropout: float,
    train: bool,
    bidirectional: bool,
    batch_first: bool,
):
    seq = x.transpose(0, 1) if batch_first else x  # (T, B, F)
    dirs = 2 if bidirectional else 1
    layers = _layer_params(params, has_biases, num_layers * dirs)
    h_n, c_n = [], []
    for layer in range(num_layers):
        outputs = []
        for d in range(dirs):
            k = layer * dirs + d
            h, c = h0[k], (None if c0 is None else c0[k])
            steps = []
            order = range(seq.shape[0] - 1, -1, -1) if d else range(seq.shape[0])
            for t in order:
                h, c = cell(seq[t], h, c, layers[k])
                steps.append(h)
            if d:
                steps.reverse()
            outputs.append(torch.stack(steps))
            h_n.append(h)
            c_n.append(c)
        seq = torch.cat(outputs, dim=-1) if dirs == 2 else outputs[0]
        if dropout and train and layer < num_layers - 1:
            seq = F.dropout(seq, dropout, training=True)
    out = seq.transpose(0, 1) if batch_first else seq
    return out, torch.stack(h_n), (None if c0 is None else torch.stack(c_n))  # type: ignore[arg-type]


def lstm_reference(input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
                   batch_first):  # fmt: skip
    """``torch.lstm`` (padded input) in plain ops; returns ``(output, h_n, c_n)``."""
    out, h, c = _run(_lstm_cell, input, hx[0], hx[1], params, has_biases, num_layers, dropout,
                     train, bidirectional, batch_first)  # fmt: skip
    return out, h, c


def gru_reference(input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
                  batch_first):  # fmt: skip
    """``torch.gru`` (padded input) in plain ops; returns ``(output, h_n)``."""
    out, h, _ = _run(_gru_cell, input, hx, None, params, has_biases, num_layers, dropout, train,
                     bidirectional, batch_first)  # fmt: skip
    return out, h


def rnn_reference(activation):
    """``torch.rnn_tanh`` / ``torch.rnn_relu`` (padded input) in plain ops."""

    def run(input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
        out, h, _ = _run(_rnn_cell(activation), input, hx, None, params, has_biases, num_layers,
                         dropout, train, bidirectional, batch_first)  # fmt: skip
        return out, h

    return run
