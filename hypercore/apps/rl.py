r"""Contextual reinforcement learning: a batched CartPole family and REINFORCE.

The pieces of the reinforcement-learning chapter: a family of CartPole tasks
whose *context* changes the physics, policies that see the context in three
ways, and one training algorithm for all of them.

Environment (:class:`BatchedCartPole`)
    gymnasium's ``CartPole-v1`` dynamics (Barto, Sutton & Anderson 1983, as
    coded in ``gymnasium.envs.classic_control.cartpole``), re-implemented as
    tensor operations so that ``N`` environments, each with its own pole
    half-length :math:`l`, pole mass :math:`m_p` and (signed) force magnitude
    :math:`F`, advance in one call. One Euler step of length
    :math:`\tau = 0.02` with action :math:`a \in \{0, 1\}`, force
    :math:`f = F (2a - 1)`, total mass :math:`M = m_c + m_p`:

    .. math::
        u = \frac{f + m_p l \dot\theta^2 \sin\theta}{M}, \quad
        \ddot\theta = \frac{g \sin\theta - \cos\theta\, u}
                          {l \left(\tfrac43 - m_p \cos^2\theta / M\right)}, \quad
        \ddot x = u - \frac{m_p l\, \ddot\theta \cos\theta}{M},

    then :math:`x \mathrel{+}= \tau \dot x`, :math:`\dot x \mathrel{+}= \tau \ddot x`,
    :math:`\theta \mathrel{+}= \tau \dot\theta`,
    :math:`\dot\theta \mathrel{+}= \tau \ddot\theta`. An episode ends when
    :math:`|x| > 2.4` or :math:`|\theta| > 12^\circ`; every step up to and
    including the last one earns reward 1. The tests check it step by step
    against ``gymnasium.make("CartPole-v1")`` with the same modified
    ``length``/``masspole``/``force_mag``: gymnasium is the ground truth, this
    copy is only fast. A negative :math:`F` flips the effect of the actions.

Policies (observations ``(K, E, 4)`` and contexts ``(K, C)`` to logits ``(K, E, 2)``)
    All map ``K`` contexts with ``E`` episodes each to action logits.

    * :class:`HyperPolicy`: a hypernetwork :math:`h_\phi` maps the context
      :math:`c` to the weights of a small policy network,
      :math:`\pi(a \mid s, c) = \pi_{h_\phi(c)}(a \mid s)` (Sarafian, Keynan &
      Kraus 2021);
    * :class:`ConcatPolicy`: one MLP on the concatenation :math:`[s; c]`;
    * :class:`BlindPolicy`: one MLP on :math:`s` alone (context-blind).

Algorithm (:func:`reinforce_loss`, :func:`train_reinforce`)
    REINFORCE (Williams 1992) with a Monte Carlo baseline: for episode
    :math:`i` of context :math:`k`, the discounted return-to-go
    :math:`G_t^{(k,i)} = \sum_{t' \ge t} \gamma^{t'-t} r_{t'}^{(k,i)}`, the
    baseline :math:`b_t^{(k)}` = the mean of :math:`G_t` over the ``E``
    episodes of the same context, and

    .. math:: L(\theta) = -\frac{1}{\sum m} \sum_{k,i,t} m_t^{(k,i)}
              \log \pi_\theta(a_t^{(k,i)} \mid s_t^{(k,i)}, c_k)\,
              \frac{G_t^{(k,i)} - b_t^{(k)}}{\sigma},

    :math:`m` the mask of steps taken before the episode ended and
    :math:`\sigma` the standard deviation of the advantages over those steps.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from hypercore.errors import HypercoreError, HypercoreTypeError, ShapeError
from hypercore.hypernetwork import HyperNetwork

__all__ = [
    "BatchedCartPole",
    "BlindPolicy",
    "ConcatPolicy",
    "HyperPolicy",
    "Rollout",
    "evaluate_policy",
    "gymnasium_returns",
    "reinforce_loss",
    "rollout",
    "train_reinforce",
]

GRAVITY, MASSCART, TAU = 9.8, 1.0, 0.02
X_THRESHOLD = 2.4
THETA_THRESHOLD = 12 * 2 * math.pi / 360  # gymnasium's 0.2094... rad


def _as_vector(name: str, value: torch.Tensor | float, n: int | None) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float64)
    if t.dim() > 1:
        raise ShapeError(f"{name}: expected a scalar or a (N,) tensor, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise HypercoreError(f"{name}: expected finite values, got {t}")
    return t.expand(n) if (n is not None and t.dim() == 0) else t


class BatchedCartPole:
    """``N`` CartPole-v1 environments with per-environment physics, stepped together.

    Args:
        length: pole half-length :math:`l` (gymnasium's ``length``, 0.5 by
            default), a float or an ``(N,)`` tensor; > 0.
        masspole: pole mass :math:`m_p` (0.1 by default); > 0.
        force_mag: signed force magnitude :math:`F` (10 by default); a
            negative value flips the actions' effect.
        num_envs: ``N`` when every argument is a float.

    The state is float64 ``(N, 4)``: :math:`(x, \\dot x, \\theta, \\dot\\theta)`.
    """

    def __init__(
        self,
        length: torch.Tensor | float = 0.5,
        masspole: torch.Tensor | float = 0.1,
        force_mag: torch.Tensor | float = 10.0,
        num_envs: int | None = None,
    ) -> None:
        sizes = {
            torch.as_tensor(v).numel()
            for v in (length, masspole, force_mag)
            if torch.as_tensor(v).dim() == 1
        }
        if len(sizes) > 1:
            raise ShapeError(
                f"length, masspole, force_mag: (N,) tensors must share N, got sizes {sorted(sizes)}"
            )
        n = sizes.pop() if sizes else (num_envs if num_envs is not None else 1)
        if num_envs is not None and num_envs != n:
            raise ShapeError(f"num_envs: expected {n} (the tensors' length), got {num_envs}")
        self.length = _as_vector("length", length, n)
        self.masspole = _as_vector("masspole", masspole, n)
        self.force_mag = _as_vector("force_mag", force_mag, n)
        if (self.length <= 0).any() or (self.masspole <= 0).any():
            raise HypercoreError("length, masspole: expected values > 0")
        self.num_envs = n
        self.total_mass = MASSCART + self.masspole
        self.polemass_length = self.masspole * self.length

    def reset(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Initial states ``(N, 4)``, uniform on ``[-0.05, 0.05]`` like gymnasium's."""
        u = torch.rand(self.num_envs, 4, generator=generator, dtype=torch.float64)
        return (u - 0.5) * 0.1

    def step(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: ``state (N, 4)``, ``action (N,)`` in {0, 1} -> ``(next_state, terminated)``.

        ``terminated`` is a bool ``(N,)``: the new state left the bounds.
        """
        if state.shape != (self.num_envs, 4):
            raise ShapeError(
                f"state: expected shape ({self.num_envs}, 4), got {tuple(state.shape)}"
            )
        if action.shape != (self.num_envs,):
            raise ShapeError(
                f"action: expected shape ({self.num_envs},), got {tuple(action.shape)}"
            )
        x, x_dot, theta, theta_dot = state.unbind(1)
        force = torch.where(action.bool(), self.force_mag, -self.force_mag)
        cos, sin = torch.cos(theta), torch.sin(theta)
        temp = (force + self.polemass_length * theta_dot.square() * sin) / self.total_mass
        theta_acc = (GRAVITY * sin - cos * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * cos.square() / self.total_mass)
        )
        x_acc = temp - self.polemass_length * theta_acc * cos / self.total_mass
        nxt = torch.stack(
            [
                x + TAU * x_dot,
                x_dot + TAU * x_acc,
                theta + TAU * theta_dot,
                theta_dot + TAU * theta_acc,
            ],
            1,
        )
        terminated = (nxt[:, 0].abs() > X_THRESHOLD) | (nxt[:, 2].abs() > THETA_THRESHOLD)
        return nxt, terminated


def _check_inputs(obs: torch.Tensor, context: torch.Tensor, context_dim: int) -> None:
    if obs.dim() != 3 or obs.shape[-1] != 4:
        raise ShapeError(f"obs: expected shape (K, E, 4), got {tuple(obs.shape)}")
    if context.shape != (obs.shape[0], context_dim):
        raise ShapeError(
            f"context: expected shape ({obs.shape[0]}, {context_dim}) (one row per context), "
            f"got {tuple(context.shape)}"
        )


class HyperPolicy(nn.Module):
    """A policy whose weights a hypernetwork writes from the context.

    Args:
        hnet: a :class:`~hypercore.HyperNetwork` whose target is an
            ``nn.Sequential`` of ``nn.Linear`` layers and activations (obs -> 2
            logits) and whose conditioner takes ``(K, C)`` contexts.
        context_dim: ``C``.

    ``forward(obs (K, E, 4), context (K, C)) -> logits (K, E, 2)``: the weights
    are generated once per context (``hnet.generate``) and applied to that
    context's ``E`` observations with batched matrix products.
    """

    def __init__(self, hnet: HyperNetwork, context_dim: int) -> None:
        super().__init__()
        if not isinstance(hnet, HyperNetwork):
            raise HypercoreTypeError(f"hnet: expected a HyperNetwork, got {type(hnet).__name__}")
        module = hnet.target.module
        if not isinstance(module, nn.Sequential):
            raise HypercoreTypeError(
                f"hnet: its target must be an nn.Sequential, got {type(module).__name__}"
            )
        self.hnet, self.context_dim = hnet, context_dim
        self.layers = [(str(i), m) for i, m in enumerate(module)]

    def forward(self, obs: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        _check_inputs(obs, context, self.context_dim)
        weights = self.hnet.generate(context.float())
        h = obs.float()
        for name, m in self.layers:
            if isinstance(m, nn.Linear):
                w, b = weights[f"{name}.weight"], weights[f"{name}.bias"]  # (K, o, i), (K, o)
                h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
            else:
                h = m(h)
        return h


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class ConcatPolicy(nn.Module):
    """One MLP on ``[obs; context]``: ``obs (K, E, 4), context (K, C) -> (K, E, 2)``."""

    def __init__(self, context_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.context_dim = context_dim
        self.net = _mlp([4 + context_dim, *hidden, 2])

    def forward(self, obs: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        _check_inputs(obs, context, self.context_dim)
        c = context.float().unsqueeze(1).expand(-1, obs.shape[1], -1)
        return self.net(torch.cat([obs.float(), c], -1))


class BlindPolicy(nn.Module):
    """One MLP on ``obs`` alone; the context is checked for shape and ignored."""

    def __init__(self, context_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.context_dim = context_dim
        self.net = _mlp([4, *hidden, 2])

    def forward(self, obs: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        _check_inputs(obs, context, self.context_dim)
        return self.net(obs.float())


Policy = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Rollout:
    """One batch of episodes: ``log_prob``, ``reward``, ``alive`` are ``(T, K, E)``.

    ``alive[t]`` is 1 where step ``t`` was taken before the episode ended
    (its reward counts), 0 after; ``returns`` is ``(K, E)``, the undiscounted
    episode returns.
    """

    log_prob: torch.Tensor
    reward: torch.Tensor
    alive: torch.Tensor

    @property
    def returns(self) -> torch.Tensor:
        return self.reward.sum(0)


def rollout(
    policy: Policy,
    env: BatchedCartPole,
    context: torch.Tensor,
    episodes: int,
    horizon: int,
    generator: torch.Generator | None = None,
    greedy: bool = False,
) -> Rollout:
    """Run ``episodes`` episodes per context for at most ``horizon`` steps.

    Args:
        policy: ``(obs (K, E, 4), context (K, C)) -> logits (K, E, 2)``.
        env: ``K * E`` environments, context-major (environment ``k * E + i``
            is episode ``i`` of context ``k``).
        context: ``(K, C)``, the policy's view of each context.
        greedy: take the most likely action instead of sampling.

    Episodes that end are frozen (their state stops changing) and masked.
    """
    if context.dim() != 2:
        raise ShapeError(f"context: expected shape (K, C), got {tuple(context.shape)}")
    k = context.shape[0]
    if env.num_envs != k * episodes:
        raise ShapeError(
            f"env: expected K * episodes = {k * episodes} environments, got {env.num_envs}"
        )
    if horizon < 1:
        raise HypercoreError(f"horizon: expected >= 1, got {horizon}")
    state = env.reset(generator)
    alive = torch.ones(env.num_envs, dtype=torch.bool)
    log_probs, rewards, masks = [], [], []
    for _ in range(horizon):
        logits = policy(state.view(k, episodes, 4).float(), context).reshape(-1, 2)
        logp = torch.log_softmax(logits, -1)
        if greedy:
            action = logits.argmax(-1)
        else:
            u = torch.rand(env.num_envs, generator=generator)
            action = (u < logp[:, 1].exp()).long()
        log_probs.append(logp.gather(1, action.unsqueeze(1)).squeeze(1))
        masks.append(alive.clone())
        rewards.append(alive.double())
        nxt, terminated = env.step(state, action)
        state = torch.where(alive.unsqueeze(1), nxt, state)
        alive = alive & ~terminated
        if not alive.any():
            break
    shape = (-1, k, episodes)
    return Rollout(
        torch.stack(log_probs).view(shape),
        torch.stack(rewards).view(shape).float(),
        torch.stack(masks).view(shape).float(),
    )


def reinforce_loss(batch: Rollout, gamma: float = 0.99) -> torch.Tensor:
    """REINFORCE with the per-context, per-step mean return as baseline (module docstring)."""
    if not 0.0 < gamma <= 1.0:
        raise HypercoreError(f"gamma: expected a value in (0, 1], got {gamma}")
    reward, alive = batch.reward, batch.alive
    g = torch.zeros_like(reward[0])
    returns = torch.empty_like(reward)
    for t in range(reward.shape[0] - 1, -1, -1):
        g = reward[t] + gamma * g
        returns[t] = g
    advantage = returns - returns.mean(2, keepdim=True)  # baseline over a context's episodes
    count = alive.sum().clamp_min(1.0)
    mean = (advantage * alive).sum() / count
    std = (((advantage - mean) * alive).square().sum() / count).sqrt()
    advantage = advantage / (std + 1e-8)
    return -(batch.log_prob * advantage.detach() * alive).sum() / count


def _env_for(physics: torch.Tensor, episodes: int) -> BatchedCartPole:
    if physics.dim() != 2 or physics.shape[1] != 3:
        raise ShapeError(
            "physics: expected shape (K, 3) with columns (force_mag, length, masspole), "
            f"got {tuple(physics.shape)}"
        )
    p = physics.double().repeat_interleave(episodes, 0)
    return BatchedCartPole(length=p[:, 1], masspole=p[:, 2], force_mag=p[:, 0])


def train_reinforce(
    policy: nn.Module,
    physics: torch.Tensor,
    context: torch.Tensor,
    iterations: int,
    episodes: int,
    horizon: int,
    lr: float,
    gamma: float = 0.99,
    seed: int = 0,
    contexts_per_batch: int | None = None,
) -> list[float]:
    """Train ``policy`` with REINFORCE (Adam) on the training contexts.

    Args:
        physics: ``(K, 3)`` per context ``(force_mag, length, masspole)``.
        context: ``(K, C)`` what the policy sees of each context.
        iterations: gradient steps; each runs ``episodes`` episodes of at most
            ``horizon`` steps in each of ``contexts_per_batch`` contexts
            (all ``K`` when ``None``, else drawn without replacement).

    Returns:
        the mean (undiscounted) training return of each iteration.
    """
    if physics.shape[0] != context.shape[0]:
        raise ShapeError(
            f"context: expected {physics.shape[0]} rows (one per physics row), "
            f"got {context.shape[0]}"
        )
    g = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(policy.parameters(), lr=lr)
    k = physics.shape[0]
    per = k if contexts_per_batch is None else contexts_per_batch
    full_env = _env_for(physics, episodes) if per == k else None
    history = []
    for _ in range(iterations):
        if full_env is None:
            pick = torch.randperm(k, generator=g)[:per]
            env, ctx = _env_for(physics[pick], episodes), context[pick]
        else:
            env, ctx = full_env, context
        batch = rollout(policy, env, ctx, episodes, horizon, g)
        loss = reinforce_loss(batch, gamma)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        history.append(float(batch.returns.mean()))
    return history


@torch.no_grad()
def evaluate_policy(
    policy: Policy,
    physics: torch.Tensor,
    context: torch.Tensor,
    episodes: int,
    horizon: int = 500,
    seed: int = 0,
    greedy: bool = True,
) -> torch.Tensor:
    """Mean return per context ``(K,)`` over ``episodes`` episodes (greedy by default)."""
    env = _env_for(physics, episodes)
    g = torch.Generator().manual_seed(seed)
    return rollout(policy, env, context, episodes, horizon, g, greedy).returns.mean(1)


def gymnasium_returns(
    policy: Policy,
    physics: torch.Tensor,
    context: torch.Tensor,
    episodes: int,
    seed: int = 0,
) -> torch.Tensor:
    """Greedy returns ``(K, episodes)`` on gymnasium's own ``CartPole-v1`` (500-step limit).

    The check that the batched copy is only a speed-up: each context's
    ``length``, ``masspole`` and ``force_mag`` are set on ``env.unwrapped``
    (``total_mass`` and ``polemass_length`` recomputed, as gymnasium sets them
    only in ``__init__``). Needs ``gymnasium``.
    """
    import gymnasium as gym

    out = torch.zeros(physics.shape[0], episodes)
    env = gym.make("CartPole-v1")
    try:
        for k in range(physics.shape[0]):
            force, length, masspole = (float(v) for v in physics[k])
            u = env.unwrapped
            u.force_mag, u.length, u.masspole = force, length, masspole  # type: ignore[attr-defined]
            u.total_mass = u.masscart + u.masspole  # type: ignore[attr-defined]
            u.polemass_length = u.masspole * u.length  # type: ignore[attr-defined]
            for e in range(episodes):
                obs, _ = env.reset(seed=seed + 1000 * k + e)
                total, done = 0.0, False
                while not done:
                    o = torch.as_tensor(obs, dtype=torch.float32).view(1, 1, 4)
                    with torch.no_grad():
                        a = int(policy(o, context[k : k + 1]).argmax(-1))
                    obs, r, terminated, truncated, _ = env.step(a)
                    total += float(r)
                    done = terminated or truncated
                out[k, e] = total
    finally:
        env.close()
    return out
