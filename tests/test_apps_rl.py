"""Tests of hypercore.apps.rl: the batched CartPole against gymnasium, policies, REINFORCE."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import hypercore as hc
from hypercore.apps.rl import (
    BatchedCartPole,
    BlindPolicy,
    ConcatPolicy,
    HyperPolicy,
    Rollout,
    evaluate_policy,
    gymnasium_returns,
    reinforce_loss,
    rollout,
    train_reinforce,
)
from hypercore.errors import HypercoreError, HypercoreTypeError, ShapeError

gym = pytest.importorskip("gymnasium")


def _gym_env(force: float, length: float, masspole: float):
    env = gym.make("CartPole-v1")
    u = env.unwrapped
    u.force_mag, u.length, u.masspole = force, length, masspole
    u.total_mass = u.masscart + u.masspole
    u.polemass_length = u.masspole * u.length
    return env


@pytest.mark.parametrize(
    ("force", "length", "masspole"), [(10.0, 0.5, 0.1), (-7.0, 0.3, 0.2), (15.0, 1.1, 0.05)]
)
def test_dynamics_match_gymnasium_step_by_step(force, length, masspole):
    env = _gym_env(force, length, masspole)
    env.reset(seed=1)
    ours = BatchedCartPole(length, masspole, force, num_envs=1)
    state = torch.tensor(env.unwrapped.state, dtype=torch.float64).view(1, 4)
    steps = 0
    for t in range(300):
        # a crude balancing controller (sign-aware), so that episodes last
        theta, theta_dot = float(state[0, 2]), float(state[0, 3])
        push_right = (theta + 0.3 * theta_dot > 0) == (force > 0)
        action = int(push_right) if t % 7 else 1 - int(push_right)
        _, _, terminated, _, _ = env.step(action)
        state, ours_terminated = ours.step(state, torch.tensor([action]))
        np.testing.assert_allclose(state[0].numpy(), env.unwrapped.state, rtol=0, atol=1e-12)
        assert bool(ours_terminated[0]) == terminated
        steps += 1
        if terminated:
            break
    env.close()
    assert steps > 20  # the comparison covered a real trajectory


def test_batched_environments_are_independent():
    lengths = torch.tensor([0.3, 0.5, 0.9])
    forces = torch.tensor([10.0, -10.0, 5.0])
    env = BatchedCartPole(lengths, 0.1, forces)
    state = env.reset(torch.Generator().manual_seed(0))
    action = torch.tensor([1, 0, 1])
    batched, _ = env.step(state, action)
    for i in range(3):
        single = BatchedCartPole(float(lengths[i]), 0.1, float(forces[i]), num_envs=1)
        one, _ = single.step(state[i : i + 1], action[i : i + 1])
        assert torch.equal(one[0], batched[i])
    # a flipped force with the flipped action gives the same next state
    plus = BatchedCartPole(0.5, 0.1, 10.0, num_envs=1)
    minus = BatchedCartPole(0.5, 0.1, -10.0, num_envs=1)
    s = state[:1]
    assert torch.equal(plus.step(s, torch.tensor([1]))[0], minus.step(s, torch.tensor([0]))[0])


def test_reset_matches_gymnasium_bounds():
    s = BatchedCartPole(num_envs=1000).reset(torch.Generator().manual_seed(0))
    assert s.shape == (1000, 4) and s.dtype == torch.float64
    assert float(s.abs().max()) <= 0.05


def _hyper(context_dim: int = 2) -> HyperPolicy:
    target = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    hnet = hc.HyperNetwork.build(
        target, hc.ScalarInput(context_dim, -1, 1, encoding="identity"), body_hidden=(8,)
    )
    return HyperPolicy(hnet, context_dim)


def test_hyper_policy_equals_materialized_networks():
    torch.manual_seed(0)
    policy = _hyper()
    obs, ctx = torch.randn(3, 5, 4), torch.rand(3, 2) * 2 - 1
    logits = policy(obs, ctx)
    assert logits.shape == (3, 5, 2)
    for k in range(3):
        plain = policy.hnet.materialize(ctx[k])
        torch.testing.assert_close(logits[k], plain(obs[k]), rtol=1e-5, atol=1e-6)


def test_policies_shapes_and_errors():
    obs, ctx = torch.randn(2, 3, 4), torch.randn(2, 2)
    assert ConcatPolicy(2, (8,))(obs, ctx).shape == (2, 3, 2)
    blind = BlindPolicy(2, (8,))
    assert torch.equal(blind(obs, ctx), blind(obs, ctx + 5))  # blind ignores the context
    concat = ConcatPolicy(2, (8,))
    assert not torch.equal(concat(obs, ctx), concat(obs, ctx + 5))
    with pytest.raises(ShapeError, match="context"):
        concat(obs, torch.randn(3, 2))
    with pytest.raises(ShapeError, match="obs"):
        blind(torch.randn(2, 4), ctx)
    with pytest.raises(HypercoreTypeError, match="hnet"):
        HyperPolicy(nn.Linear(2, 2), 2)  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match="share N"):
        BatchedCartPole(torch.ones(3) * 0.5, torch.ones(2) * 0.1)
    with pytest.raises(HypercoreError, match="length"):
        BatchedCartPole(-0.5)
    with pytest.raises(HypercoreError, match="gamma"):
        reinforce_loss(Rollout(torch.zeros(1, 1, 1), torch.ones(1, 1, 1), torch.ones(1, 1, 1)), 0)


def test_reinforce_loss_hand_computed():
    # 1 context, 2 episodes, 2 steps; episode 1 ends after one step
    log_prob = torch.tensor([[[-0.1, -0.2]], [[-0.3, -0.4]]], requires_grad=True)
    reward = torch.tensor([[[1.0, 1.0]], [[1.0, 0.0]]])
    alive = torch.tensor([[[1.0, 1.0]], [[1.0, 0.0]]])
    loss = reinforce_loss(Rollout(log_prob, reward, alive), gamma=0.5)
    # returns-to-go: episode 0: [1.5, 1], episode 1: [1, 0]; baselines [1.25, 0.5]
    adv = torch.tensor([[0.25, -0.25], [0.5, -0.5]])
    mask = alive[:, 0]
    mean = (adv * mask).sum() / 3
    std = (((adv - mean) * mask).square().sum() / 3).sqrt()
    expected = -(log_prob[:, 0].detach() * adv / std * mask).sum() / 3
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert log_prob.grad is not None and log_prob.grad[1, 0, 1] == 0  # masked step


def test_rollout_masks_and_determinism():
    torch.manual_seed(0)
    policy = ConcatPolicy(2, (8,))
    physics = torch.tensor([[10.0, 0.5, 0.1], [-10.0, 0.5, 0.1]])
    env = BatchedCartPole(
        physics[:, 1].repeat_interleave(3), 0.1, physics[:, 0].repeat_interleave(3)
    )
    ctx = torch.tensor([[0.5, 0.0], [-0.5, 0.0]])
    a = rollout(policy, env, ctx, 3, 50, torch.Generator().manual_seed(1))
    b = rollout(policy, env, ctx, 3, 50, torch.Generator().manual_seed(1))
    assert torch.equal(a.log_prob, b.log_prob) and torch.equal(a.returns, b.returns)
    assert a.returns.shape == (2, 3)
    # alive is non-increasing in time and rewards only where alive
    assert (a.alive[1:] <= a.alive[:-1]).all() and torch.equal(a.reward, a.alive)
    with pytest.raises(ShapeError, match="env"):
        rollout(policy, env, ctx, 2, 50)


def test_training_improves_and_gymnasium_evaluation_agrees():
    torch.manual_seed(0)
    policy = _hyper()
    physics = torch.tensor([[10.0, 0.5, 0.1], [-10.0, 0.5, 0.1]])
    ctx = torch.tensor([[0.5, 0.0], [-0.5, 0.0]])
    before = evaluate_policy(policy, physics, ctx, episodes=4, horizon=40).mean()
    history = train_reinforce(policy, physics, ctx, 10, 4, 40, lr=0.03, seed=0)
    assert len(history) == 10 and np.isfinite(history).all()
    assert np.mean(history[-3:]) > np.mean(history[:3])
    after = evaluate_policy(policy, physics, ctx, episodes=4, horizon=40).mean()
    assert after > before
    # gymnasium itself, one episode per context: same policy, comparable returns
    ours = gymnasium_returns(policy, physics, ctx, episodes=1)
    assert ours.shape == (2, 1) and (ours >= 1).all()
