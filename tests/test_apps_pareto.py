"""hypercore.apps.pareto: hypervolume (2 and 3 objectives), rays, scalarisation, the loop."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

import hypercore as hc
from hypercore.apps.pareto import (
    circle_rays,
    dirichlet_rays,
    hypervolume,
    linear_scalarization,
    non_dominated,
    objective_losses,
    overlapping_digits,
    train_scalarized,
)
from hypercore.errors import HypercoreError, HypercoreTypeError, ShapeError


def brute_force_hv(points: list[tuple[int, ...]], ref: tuple[int, ...]) -> int:
    """Count the unit cells of the integer grid below ``ref`` that some point dominates."""
    count = 0
    for cell in itertools.product(*(range(r) for r in ref)):
        if any(all(p[j] <= cell[j] for j in range(len(ref))) for p in points):
            count += 1
    return count


# --------------------------------------------------------------------------- hypervolume


def test_hypervolume_2d_hand_cases():
    assert hypervolume([[1.0, 1.0]], [3.0, 2.0]) == 2.0  # one box: 2 x 1
    # two boxes [1,4]x[3,4] and [3,4]x[1,4] overlap in [3,4]x[3,4]: 3 + 3 - 1
    assert hypervolume([[1, 3], [3, 1]], [4, 4]) == 5.0
    # a dominated point and a duplicate add nothing
    assert hypervolume([[1, 3], [3, 1], [3.5, 3.5], [1, 3]], [4, 4]) == 5.0
    # a point outside the reference box adds nothing; on its boundary neither
    assert hypervolume([[1, 3], [5, 0], [4, 0]], [4, 4]) == 3.0
    assert hypervolume(torch.zeros(0, 2), [1, 1]) == 0.0
    assert hypervolume([[0.5, 0.25]], [1, 1]) == pytest.approx(0.375)


def test_hypervolume_3d_hand_cases():
    assert hypervolume([[1, 1, 1]], [2, 3, 4]) == 6.0  # 1 x 2 x 3
    # same third objective: the 2-D area times the depth (5 x 2)
    assert hypervolume([[1, 3, 2], [3, 1, 2]], [4, 4, 4]) == 10.0
    # inclusion-exclusion: boxes 2x1x1 and 1x2x1 ... with ref (3,3,3):
    # [1,3]x[2,3]x[0,3] = 2*1*3 = 6, [2,3]x[0,3]x[2,3] = 1*3*1 = 3, overlap [2,3]x[2,3]x[2,3] = 1
    assert hypervolume([[1, 2, 0], [2, 0, 2]], [3, 3, 3]) == 8.0
    # three points of the unit "corner" cube: 3 unit boxes of 2x2x2 cube minus overlaps
    pts = [[0, 1, 1], [1, 0, 1], [1, 1, 0]]
    assert hypervolume(pts, [2, 2, 2]) == brute_force_hv([tuple(p) for p in pts], (2, 2, 2)) == 4


@pytest.mark.parametrize("m", [2, 3])
def test_hypervolume_matches_grid_count_on_random_integer_points(m):
    g = torch.Generator().manual_seed(m)
    for _ in range(20):
        n = int(torch.randint(1, 7, (1,), generator=g))
        pts = torch.randint(0, 6, (n, m), generator=g)
        ref = (6,) * m
        expected = brute_force_hv([tuple(int(v) for v in p) for p in pts], ref)
        assert hypervolume(pts, ref) == pytest.approx(expected)


def test_hypervolume_is_invariant_to_order_and_monotone():
    pts = torch.tensor([[0.2, 0.9, 0.5], [0.5, 0.4, 0.7], [0.8, 0.1, 0.3], [0.6, 0.6, 0.1]])
    ref = [1.0, 1.0, 1.0]
    hv = hypervolume(pts, ref)
    assert hypervolume(pts.flip(0), ref) == pytest.approx(hv)
    assert hypervolume(pts[:3], ref) <= hv
    assert hypervolume(pts[:, :2], ref[:2]) == pytest.approx(
        hypervolume(torch.cat([pts[:, :2], torch.zeros(4, 1)], 1), [1.0, 1.0, 1.0])
    )


def test_hypervolume_errors_name_the_argument():
    with pytest.raises(ShapeError, match="points"):
        hypervolume(torch.ones(3), [1, 1])
    with pytest.raises(ShapeError, match="2 or 3 objectives"):
        hypervolume(torch.ones(2, 4), [1, 1, 1, 1])
    with pytest.raises(ShapeError, match="reference"):
        hypervolume(torch.ones(2, 2), [1, 1, 1])
    with pytest.raises(HypercoreError, match="finite"):
        hypervolume([[float("nan"), 1.0]], [2, 2])
    with pytest.raises(HypercoreError, match="reference"):
        hypervolume([[1.0, 1.0]], [float("inf"), 2])
    with pytest.raises(HypercoreTypeError, match="points"):
        hypervolume("front", [2, 2])


def test_non_dominated():
    pts = [[1, 3], [3, 1], [3.5, 3.5], [1, 3], [2, 2], [2, 4]]
    assert non_dominated(pts).tolist() == [True, True, False, True, True, False]
    assert non_dominated(torch.zeros(0, 2)).shape == (0,)


# --------------------------------------------------------------------------- rays


def test_dirichlet_rays_are_on_the_simplex_and_seeded():
    rays = dirichlet_rays(500, 3, alpha=0.2, seed=1)
    assert rays.shape == (500, 3) and rays.dtype == torch.float32
    assert bool((rays >= 0).all())
    torch.testing.assert_close(rays.sum(1), torch.ones(500))
    torch.testing.assert_close(rays, dirichlet_rays(500, 3, alpha=0.2, seed=1))
    assert not torch.equal(rays, dirichlet_rays(500, 3, alpha=0.2, seed=2))
    # alpha < 1 puts mass near the corners: many rays have a weight above 0.9
    assert float((rays.max(1).values > 0.9).float().mean()) > 0.3
    with pytest.raises(HypercoreError, match="alpha"):
        dirichlet_rays(5, 2, alpha=0.0)
    with pytest.raises(HypercoreError, match="num_objectives"):
        dirichlet_rays(5, 1)


def test_circle_rays_match_phn_test_rays():
    rays = circle_rays(5)
    assert rays.shape == (5, 2)
    torch.testing.assert_close(rays.sum(1), torch.ones(5))
    angle = torch.tensor(0.1, dtype=torch.float64)
    first = torch.stack([angle.cos(), angle.sin()])
    torch.testing.assert_close(rays[0], (first / first.sum()).float())
    torch.testing.assert_close(rays[2], torch.tensor([0.5, 0.5]))  # the middle angle is pi/4
    assert bool((rays[:-1, 0] > rays[1:, 0]).all())  # objective 1's weight decreases
    assert circle_rays(1).tolist() == [[0.5, 0.5]]
    with pytest.raises(HypercoreError, match="max_angle"):
        circle_rays(3, min_angle=1.0, max_angle=0.5)


def test_linear_scalarization():
    losses = torch.tensor([2.0, 4.0], requires_grad=True)
    value = linear_scalarization(losses, torch.tensor([0.25, 0.75]))
    assert value.item() == 3.5
    value.backward()
    torch.testing.assert_close(losses.grad, torch.tensor([0.25, 0.75]))
    rows = linear_scalarization(torch.ones(4, 3), torch.tensor([0.2, 0.3, 0.5]))
    torch.testing.assert_close(rows, torch.ones(4))
    with pytest.raises(ShapeError, match="ray"):
        linear_scalarization(torch.ones(2), torch.ones(3))
    with pytest.raises(HypercoreTypeError, match="losses"):
        linear_scalarization([1.0, 2.0], torch.ones(2))


# --------------------------------------------------------------------------- objectives, loop


def test_objective_losses_are_the_two_cross_entropies():
    obj = objective_losses((10, 10))
    logits, y = torch.randn(8, 20), torch.randint(0, 10, (8, 2))
    expected = torch.stack(
        [
            nn.functional.cross_entropy(logits[:, :10], y[:, 0]),
            nn.functional.cross_entropy(logits[:, 10:], y[:, 1]),
        ]
    )
    torch.testing.assert_close(obj(logits, y), expected)
    # a leading ray dimension (forward_sets) gives one loss vector per ray
    stacked = obj(torch.stack([logits, 2 * logits]), y)
    assert stacked.shape == (2, 2)
    torch.testing.assert_close(stacked[0], expected)
    with pytest.raises(ShapeError, match="logits"):
        obj(torch.randn(8, 19), y)
    with pytest.raises(ShapeError, match="y"):
        obj(logits, y[:, :1])


def _problem():
    torch.manual_seed(0)
    x = torch.randn(64, 6)
    y = torch.stack([(x[:, 0] > 0).long(), (x[:, 1] > 0).long()], 1)
    return x, y, objective_losses((2, 2))


def test_train_scalarized_is_deterministic_and_learns():
    x, y, obj = _problem()
    results = []
    for _ in range(2):
        torch.manual_seed(1)
        net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4))
        ray = torch.tensor([0.5, 0.5])
        history = train_scalarized(
            lambda xb, r, n=net: n(xb),
            net.parameters(),
            obj,
            (x, y),
            ray.expand(60, -1),
            batch_size=16,
            lr=1e-2,
            seed=3,
        )
        results.append((history, net[0].weight.detach().clone()))
    assert results[0][0].shape == (60, 2)
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])
    assert float(results[0][0][-10:].mean()) < float(results[0][0][:5].mean())


def test_pareto_hypernetwork_trains_with_a_ray_per_step_and_evaluates_many_rays():
    x, y, obj = _problem()
    torch.manual_seed(0)
    target = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4))
    hnet = hc.HyperNetwork.build(
        target, hc.ScalarInput(2, encoding="identity"), head="multiple", body_hidden=(16,)
    )
    before = [p.detach().clone() for p in hnet.parameters()]
    history = train_scalarized(
        hnet, hnet.parameters(), obj, (x, y), dirichlet_rays(20, 2, seed=0), batch_size=32
    )
    assert history.shape == (20, 2) and bool(torch.isfinite(history).all())
    assert any(not torch.equal(a, b) for a, b in zip(before, hnet.parameters(), strict=True))
    rays = circle_rays(7)
    with torch.no_grad():
        front = obj(hnet.forward_sets(x, rays), y)
        one_by_one = torch.stack([obj(hnet(x, r), y) for r in rays])
    assert front.shape == (7, 2)
    torch.testing.assert_close(front, one_by_one)
    assert hypervolume(front, [10.0, 10.0]) > 0


def test_train_scalarized_errors():
    x, y, obj = _problem()
    net = nn.Linear(6, 4)
    fwd = lambda xb, r: net(xb)  # noqa: E731
    with pytest.raises(ShapeError, match="rays"):
        train_scalarized(fwd, net.parameters(), obj, (x, y), torch.ones(2))
    with pytest.raises(ShapeError, match="data"):
        train_scalarized(fwd, net.parameters(), obj, (x, y[:10]), torch.ones(3, 2))
    with pytest.raises(ShapeError, match="objectives"):
        train_scalarized(fwd, net.parameters(), obj, (x, y), torch.ones(3, 3) / 3)
    with pytest.raises(HypercoreError, match="lr"):
        train_scalarized(fwd, net.parameters(), obj, (x, y), torch.ones(3, 2), lr=0.0)
    with pytest.raises(HypercoreError, match="parameters"):
        train_scalarized(fwd, [], obj, (x, y), torch.ones(3, 2))


# --------------------------------------------------------------------------- data


def test_overlapping_digits_construction():
    data = overlapping_digits(n_train=200, n_val=50, n_test=100, shift=3, seed=0)
    assert data.x_train.shape == (200, 121) and data.y_train.shape == (200, 2)
    assert data.x_val.shape == (50, 121) and data.x_test.shape == (100, 121)
    assert data.y_train.dtype == torch.int64 and int(data.y_train.max()) <= 9
    assert data.info["training digits"] + data.info["validation digits"] == 1347
    assert data.info["test digits"] == 450
    # standardised with the training statistics
    assert abs(float(data.x_train.mean())) < 0.05
    again = overlapping_digits(n_train=200, n_val=50, n_test=100, shift=3, seed=0)
    torch.testing.assert_close(data.x_test, again.x_test)
    assert overlapping_digits(n_train=10, n_test=10).x_val.shape == (0, 121)
    assert overlapping_digits(n_train=10, n_test=10, shift=4).x_train.shape == (10, 144)
    with pytest.raises(HypercoreError, match="shift"):
        overlapping_digits(n_train=10, n_test=10, shift=9)
    assert math.isfinite(float(data.x_val.sum()))
