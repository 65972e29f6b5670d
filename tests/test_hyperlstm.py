"""HyperLSTM: equals a plain LSTM while its scaling is 1; gradients; shapes; errors."""

import pytest
import torch
from torch import nn

from hypercore import ShapeError
from hypercore.bodies import HyperLSTM


def plain_lstm_like(model: HyperLSTM) -> nn.LSTM:
    cell = model.cell
    lstm = nn.LSTM(cell.input_size, cell.hidden_size, batch_first=True)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(cell.weight_ih)
        lstm.weight_hh_l0.copy_(cell.weight_hh)
        lstm.bias_ih_l0.copy_(cell.bias)
        lstm.bias_hh_l0.zero_()
    return lstm


def test_with_scaling_fixed_at_one_it_is_a_plain_lstm():
    model = HyperLSTM(5, 12, hyper_size=6, embedding_dim=3)
    x = torch.randn(4, 9, 5)
    expected, (h_n, c_n) = plain_lstm_like(model)(x)
    outputs, state = model(x)
    torch.testing.assert_close(outputs, expected)
    torch.testing.assert_close(state[0], h_n[0])
    torch.testing.assert_close(state[1], c_n[0])


def test_the_hyper_lstm_changes_the_main_lstm_once_it_learns():
    model = HyperLSTM(5, 12, hyper_size=6, embedding_dim=3)
    with torch.no_grad():
        model.cell.scale_h.weight.normal_(0, 0.5)
    x = torch.randn(4, 9, 5)
    assert not torch.allclose(model(x)[0], plain_lstm_like(model)(x)[0])


def test_gradients_reach_every_parameter():
    model = HyperLSTM(5, 12, hyper_size=6, embedding_dim=3)
    with torch.no_grad():
        for p in (model.cell.scale_x, model.cell.scale_h, model.cell.shift_b):
            p.weight.normal_(0, 0.1)
    model(torch.randn(2, 7, 5))[0].pow(2).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_zero_projections_still_receive_gradients():
    model = HyperLSTM(5, 12)
    model(torch.randn(2, 7, 5))[0].sum().backward()
    assert model.cell.scale_h.weight.grad.abs().sum() > 0


def test_wrong_input_shape_is_named():
    with pytest.raises(ShapeError, match=r"expected shape \(B, T, 5\) with T >= 1, got \(2, 5\)"):
        HyperLSTM(5, 12)(torch.randn(2, 5))
