"""net2wider: function-preserving widening (the variability chapter's baseline)."""

import pytest
import torch
from torch import nn

from hypercore.errors import HypercoreError
from hypercore.net2net import net2wider


def _pair(width: int = 5, seed: int = 0):
    torch.manual_seed(seed)
    return nn.Linear(4, width), nn.Linear(width, 3)


def _forward(first, second, x, act=torch.relu):
    return second(act(first(x)))


@pytest.mark.parametrize("split", ["equal", "random"])
@pytest.mark.parametrize("act", [torch.relu, torch.tanh])
def test_function_is_preserved(split, act):
    first, second = _pair()
    x = torch.randn(32, 4)
    g = torch.Generator().manual_seed(1)
    wide_first, wide_second = net2wider(first, second, 17, split=split, generator=g)
    assert wide_first.weight.shape == (17, 4) and wide_second.weight.shape == (3, 17)
    torch.testing.assert_close(
        _forward(wide_first, wide_second, x, act), _forward(first, second, x, act)
    )


def test_originals_untouched_and_old_units_first():
    first, second = _pair()
    before = first.weight.clone(), second.weight.clone()
    wide_first, _ = net2wider(first, second, 9, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(first.weight, before[0])
    torch.testing.assert_close(second.weight, before[1])
    torch.testing.assert_close(wide_first.weight[:5], first.weight)


def test_same_width_is_a_copy():
    first, second = _pair()
    wide_first, wide_second = net2wider(first, second, 5)
    torch.testing.assert_close(wide_first.weight, first.weight)
    torch.testing.assert_close(wide_second.weight, second.weight)


def test_random_split_breaks_symmetry_equal_does_not():
    """With an equal split the copies of a unit get identical gradients; a random split not."""
    first, second = _pair(width=2)
    x, y = torch.randn(64, 4), torch.randn(64, 3)

    def grads(split):
        g = torch.Generator().manual_seed(3)
        a, b = net2wider(first, second, 6, split=split, generator=g)
        ((_forward(a, b, x) - y) ** 2).mean().backward()
        source = [int(torch.nonzero((a.weight[j] == first.weight).all(1))[0]) for j in range(6)]
        return a.weight.grad, source

    grad, source = grads("equal")
    for j in range(2, 6):
        torch.testing.assert_close(grad[j], grad[source[j]])
    grad, source = grads("random")
    assert any(not torch.allclose(grad[j], grad[source[j]]) for j in range(2, 6))


def test_noise_changes_only_new_units():
    first, second = _pair()
    wide_first, _ = net2wider(
        first, second, 12, noise=0.1, generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(wide_first.weight[:5], first.weight)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"width": 3}, "width"),
        ({"width": 8, "split": "half"}, "split"),
        ({"width": 8, "noise": -1.0}, "noise"),
    ],
)
def test_bad_arguments(kwargs, match):
    first, second = _pair()
    with pytest.raises(HypercoreError, match=match):
        net2wider(first, second, **kwargs)


def test_mismatched_layers():
    with pytest.raises(HypercoreError, match="inputs"):
        net2wider(nn.Linear(4, 5), nn.Linear(6, 3), 8)
