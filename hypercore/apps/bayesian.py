r"""Bayesian neural networks: a Bayesian hypernetwork against mean-field variational inference.

A *Bayesian hypernetwork* (Krueger et al., 2017) is an invertible network
:math:`h_\phi` that maps noise :math:`\varepsilon \sim \mathcal{N}(0, I_D)` to the
:math:`D` weights of a target network, :math:`\theta = h_\phi(\varepsilon)`. Its
density follows from the change of variables,

.. math:: \log q_\phi(\theta) = \log \mathcal{N}(\varepsilon; 0, I)
          - \log\left|\det \frac{\partial h_\phi}{\partial \varepsilon}\right|,

so the entropy is :math:`H[q_\phi] = \tfrac D2 \log(2\pi e) +
\mathbb{E}_\varepsilon \log|\det J_h(\varepsilon)|` and the evidence lower bound

.. math:: \mathcal{L}(\phi) = \mathbb{E}_{q_\phi}[\log p(\mathcal{D}\mid\theta)]
          + \mathbb{E}_{q_\phi}[\log p(\theta)] + H[q_\phi]

is estimated from :math:`S` reparameterised draws per step: every log-determinant
is *exact* (no entropy estimator beyond the Monte Carlo average over the
draws). Here :math:`h_\phi` is an elementwise affine map
:math:`\mu + \sigma \odot \varepsilon` followed by affine coupling layers (RealNVP,
Dinh et al., 2017): a fixed permutation splits the vector into halves
:math:`(a, b)` and

.. math:: b' = b \odot \exp(s(a)) + t(a), \qquad
          \log|\det J| = \textstyle\sum_j s_j(a),

with :math:`s, t` a small tanh network (its output layer initialised to zero, so
the flow starts as the identity and the hypernetwork starts as the mean-field
Gaussian below).

The baseline is *mean-field* variational inference, Bayes by backprop
(Blundell et al., 2015): :math:`q(\theta) = \mathcal{N}(\mu, \mathrm{diag}\,\sigma^2)`,
:math:`\sigma = \operatorname{softplus}(\rho)`, trained with the same estimator
(its log-determinant :math:`\sum_j \log \sigma_j` is constant in
:math:`\varepsilon`, so its entropy term is exact).

The exact reference for the regression experiment is Bayesian linear regression
on fixed random Fourier features (Rahimi & Recht, 2007):
:func:`exact_linear_posterior` and :func:`linear_predictive`.

Shapes: ``D`` weights, ``S`` draws, ``N`` points, ``F`` features.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hypercore.errors import (
    HypercoreError,
    HypercoreTypeError,
    ShapeError,
    check_float,
    check_int,
    check_positive_int,
)
from hypercore.target import Target

__all__ = [
    "AffineCoupling",
    "BayesianHypernetwork",
    "MeanFieldGaussian",
    "RandomFeatures",
    "WeightPosterior",
    "apply_samples",
    "elbo_loss",
    "exact_linear_posterior",
    "expected_coverage",
    "fit_posterior",
    "gaussian_kl",
    "gaussian_log_prior",
    "interval_coverage",
    "linear_log_evidence",
    "linear_predictive",
    "mean_field_optimum",
    "mixture_gaussian_nll",
    "predictive_entropy",
    "weight_spread",
]

_LOG_2PI_E = math.log(2 * math.pi * math.e)


def _check_samples(name: str, theta: torch.Tensor, dim: int | None = None) -> None:
    if not isinstance(theta, torch.Tensor):
        raise HypercoreTypeError(f"{name}: expected a tensor (S, D), got {type(theta).__name__}")
    if theta.dim() != 2 or (dim is not None and theta.shape[1] != dim):
        want = "(S, D)" if dim is None else f"(S, {dim})"
        raise ShapeError(f"{name}: expected shape {want}, got {tuple(theta.shape)}")


# --------------------------------------------------------------------------- posteriors


class WeightPosterior(nn.Module):
    r"""A reparameterised distribution over ``D`` target weights with an exact log-determinant.

    Subclasses implement :meth:`transform`: noise ``(S, D)`` -> weights ``(S, D)``
    and :math:`\log|\det J|` ``(S,)``.
    """

    dim: int

    def transform(self, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _anchor(self) -> torch.Tensor:
        return next(self.parameters())

    def rsample(
        self, num_samples: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``(theta (S, D), log_det (S,))`` with gradients to the parameters."""
        num_samples = check_positive_int("num_samples", num_samples)
        a = self._anchor()
        eps = torch.randn(num_samples, self.dim, generator=generator, dtype=a.dtype)
        return self.transform(eps.to(a.device))

    def entropy_from(self, log_det: torch.Tensor) -> torch.Tensor:
        r"""Entropy estimate :math:`\tfrac D2\log(2\pi e) + \overline{\log|\det J|}` (a scalar)."""
        return 0.5 * self.dim * _LOG_2PI_E + log_det.mean()


def _inverse_softplus(value: float) -> float:
    return value + math.log(-math.expm1(-value))


class MeanFieldGaussian(WeightPosterior):
    r"""Bayes by backprop: :math:`\theta = \mu + \operatorname{softplus}(\rho) \odot \varepsilon`.

    Args:
        dim: number of weights ``D``.
        init_std: initial :math:`\sigma` of every weight (> 0).
        init_mean_std: the means start as :math:`\mathcal{N}(0, \text{init\_mean\_std}^2)`.

    ``2 D`` trainable parameters.
    """

    def __init__(self, dim: int, init_std: float = 0.05, init_mean_std: float = 0.1):
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        init_std = check_float("init_std", init_std, low=0.0, low_open=True)
        init_mean_std = check_float("init_mean_std", init_mean_std, low=0.0)
        self.mean = nn.Parameter(torch.randn(self.dim) * init_mean_std)
        self.rho = nn.Parameter(torch.full((self.dim,), _inverse_softplus(init_std)))

    @property
    def std(self) -> torch.Tensor:
        """:math:`\\sigma` ``(D,)``."""
        return F.softplus(self.rho)

    def transform(self, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_samples("eps", eps, self.dim)
        std = self.std
        log_det = std.log().sum().expand(eps.shape[0])
        return self.mean + std * eps, log_det


class AffineCoupling(nn.Module):
    r"""One RealNVP affine coupling layer on vectors of size ``D``.

    A fixed random permutation picks the ``k = D // 2`` conditioning entries
    :math:`a`; the other ``D - k`` entries become
    :math:`b' = b \odot e^{s(a)} + t(a)` with
    :math:`[s, t] = W_2 \tanh(W_1 a + c_1) + c_2 + W_0 a` and
    :math:`s = \text{max\_log\_scale} \cdot \tanh(\cdot / \text{max\_log\_scale})`
    (bounded). :math:`W_2, c_2, W_0` start at zero: the layer starts as the identity.

    Args:
        dim: ``D`` (>= 2).
        hidden: width of the conditioner's hidden layer.
        max_log_scale: bound on every log-scale ``|s_j|``.
        generator: draws the permutation (reproducible layers).
    """

    perm: torch.Tensor
    inv_perm: torch.Tensor

    def __init__(
        self,
        dim: int,
        hidden: int = 32,
        max_log_scale: float = 2.0,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.dim = check_int("dim", dim, minimum=2)
        hidden = check_positive_int("hidden", hidden)
        self.max_log_scale = check_float("max_log_scale", max_log_scale, low=0.0, low_open=True)
        self.k = self.dim // 2
        out = self.dim - self.k
        perm = torch.randperm(self.dim, generator=generator)
        self.register_buffer("perm", perm)
        self.register_buffer("inv_perm", torch.argsort(perm))
        self.inner = nn.Linear(self.k, hidden)
        self.outer = nn.Linear(hidden, 2 * out)
        self.skip = nn.Linear(self.k, 2 * out, bias=False)
        for layer in (self.outer, self.skip):
            nn.init.zeros_(layer.weight)
        nn.init.zeros_(self.outer.bias)

    def _scale_shift(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self.outer(torch.tanh(self.inner(a))) + self.skip(a)
        s_raw, t = raw.chunk(2, dim=-1)
        m = self.max_log_scale
        return m * torch.tanh(s_raw / m), t

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z (S, D)`` -> ``(z' (S, D), log|det J| (S,))``."""
        _check_samples("z", z, self.dim)
        zp = z[:, self.perm]
        a, b = zp[:, : self.k], zp[:, self.k :]
        s, t = self._scale_shift(a)
        out = torch.cat([a, b * s.exp() + t], dim=1)[:, self.inv_perm]
        return out, s.sum(dim=1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """The exact inverse: ``y (S, D)`` -> ``z (S, D)``."""
        _check_samples("y", y, self.dim)
        yp = y[:, self.perm]
        a, b = yp[:, : self.k], yp[:, self.k :]
        s, t = self._scale_shift(a)
        return torch.cat([a, (b - t) * (-s).exp()], dim=1)[:, self.inv_perm]


class BayesianHypernetwork(WeightPosterior):
    r"""An invertible hypernetwork :math:`\theta = h(\varepsilon)`: affine, then couplings.

    :math:`h = c_L \circ \dots \circ c_1 \circ (\mu + \sigma \odot \cdot)`; with zero
    coupling layers it *is* :class:`MeanFieldGaussian` (same parameters, same
    initialisation), and every coupling starts as the identity, so training
    starts from the mean-field posterior. ``log|det J|`` is exact:
    :math:`\sum_j \log\sigma_j + \sum_l \sum_j s^{(l)}_j`.

    Args:
        dim: number of target weights ``D`` (>= 2 with couplings).
        num_layers: coupling layers ``L`` (>= 0).
        hidden: width of each coupling's conditioner.
        init_std, init_mean_std: as in :class:`MeanFieldGaussian`.
        max_log_scale: bound on each coupling's log-scales.
    """

    def __init__(
        self,
        dim: int,
        num_layers: int = 4,
        hidden: int = 32,
        init_std: float = 0.05,
        init_mean_std: float = 0.1,
        max_log_scale: float = 2.0,
    ):
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        num_layers = check_int("num_layers", num_layers, minimum=0)
        self.base = MeanFieldGaussian(self.dim, init_std=init_std, init_mean_std=init_mean_std)
        self.couplings = nn.ModuleList(
            AffineCoupling(self.dim, hidden, max_log_scale) for _ in range(num_layers)
        )

    def transform(self, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        theta, log_det = self.base.transform(eps)
        for coupling in self.couplings:
            theta, ld = coupling(theta)
            log_det = log_det + ld
        return theta, log_det

    def inverse(self, theta: torch.Tensor) -> torch.Tensor:
        """The noise that generates ``theta (S, D)`` (exact)."""
        _check_samples("theta", theta, self.dim)
        for i in reversed(range(len(self.couplings))):
            coupling = self.couplings[i]
            assert isinstance(coupling, AffineCoupling)
            theta = coupling.inverse(theta)
        return (theta - self.base.mean) / self.base.std


# --------------------------------------------------------------------------- objective


def gaussian_log_prior(theta: torch.Tensor, prior_std: float) -> torch.Tensor:
    r"""The log-prior :math:`\log \mathcal{N}(\theta; 0, \sigma_p^2 I)` per draw.

    ``theta (S, D)`` -> ``(S,)``; :math:`\sigma_p` = ``prior_std``.
    """
    _check_samples("theta", theta)
    prior_std = check_float("prior_std", prior_std, low=0.0, low_open=True)
    d = theta.shape[1]
    return (
        -0.5 * (theta / prior_std).pow(2).sum(1)
        - d * math.log(prior_std)
        - 0.5 * d * math.log(2 * math.pi)
    )


def elbo_loss(
    posterior: WeightPosterior,
    log_likelihood: Callable[[torch.Tensor], torch.Tensor],
    num_samples: int,
    prior_std: float,
    objective: str = "elbo",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    r"""The negative ELBO (or, for the ablation, the negative expected log-likelihood).

    ``objective="elbo"``: :math:`-\tfrac1S\sum_s[\log p(\mathcal D\mid\theta_s) +
    \log p(\theta_s)] - \hat H`, with :math:`\hat H` from :meth:`WeightPosterior.entropy_from`.
    ``objective="likelihood"``: :math:`-\tfrac1S\sum_s \log p(\mathcal D\mid\theta_s)`
    only (no prior, no entropy: nothing keeps the draws apart).

    Args:
        posterior: the variational distribution.
        log_likelihood: ``theta (S, D)`` -> the log-likelihood of the *whole*
            training set under each draw, ``(S,)``.
        num_samples: draws ``S`` per call.
        prior_std: the prior :math:`\mathcal{N}(0, \text{prior\_std}^2 I)`.

    Returns:
        ``(loss, stats)``: a scalar to minimise, and its parts as floats.
    """
    if objective not in ("elbo", "likelihood"):
        raise HypercoreError(f"objective: expected 'elbo' or 'likelihood', got {objective!r}")
    theta, log_det = posterior.rsample(num_samples, generator)
    ll = log_likelihood(theta)
    if not isinstance(ll, torch.Tensor) or ll.shape != (theta.shape[0],):
        got = tuple(ll.shape) if isinstance(ll, torch.Tensor) else type(ll).__name__
        raise ShapeError(
            f"log_likelihood: expected it to return shape ({theta.shape[0]},) "
            f"(one value per draw), got {got}"
        )
    expected_ll = ll.mean()
    log_prior = gaussian_log_prior(theta, prior_std).mean()
    entropy = posterior.entropy_from(log_det)
    elbo = expected_ll + log_prior + entropy
    loss = -elbo if objective == "elbo" else -expected_ll
    stats = {
        "elbo": float(elbo.detach()),
        "log_likelihood": float(expected_ll.detach()),
        "log_prior": float(log_prior.detach()),
        "entropy": float(entropy.detach()),
    }
    return loss, stats


def fit_posterior(
    posterior: WeightPosterior,
    log_likelihood: Callable[[torch.Tensor], torch.Tensor],
    *,
    steps: int,
    num_samples: int,
    prior_std: float,
    lr: float = 1e-2,
    objective: str = "elbo",
    seed: int = 0,
) -> list[dict[str, float]]:
    """Adam on :func:`elbo_loss` for ``steps`` full-batch steps; returns the per-step stats.

    The draws come from a generator seeded with ``seed`` (reproducible runs).
    """
    steps = check_positive_int("steps", steps)
    check_float("lr", lr, low=0.0, low_open=True)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(posterior.parameters(), lr=lr)
    history = []
    for _ in range(steps):
        loss, stats = elbo_loss(
            posterior, log_likelihood, num_samples, prior_std, objective, generator
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(stats)
    return history


def apply_samples(target: Target, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Run ``target`` on ``x (N, ...)`` under each of ``S`` flat weight draws -> ``(S, N, ...)``.

    ``theta (S, D)`` is split with the target's spec (``D = target.num_generated``)
    and applied as per-sample weights to ``x`` repeated ``S`` times (one batched call).
    """
    if not isinstance(target, Target):
        raise HypercoreTypeError(
            f"target: expected a hypercore Target, got {type(target).__name__}"
        )
    _check_samples("theta", theta, target.num_generated)
    weights = target.spec.unflatten(theta)
    return target(x.unsqueeze(0).expand(theta.shape[0], *x.shape), weights)


def weight_spread(theta: torch.Tensor) -> float:
    """Mean over the ``D`` weights of their standard deviation across ``S >= 2`` draws."""
    _check_samples("theta", theta)
    if theta.shape[0] < 2:
        raise ShapeError(f"theta: expected at least 2 draws for a spread, got {theta.shape[0]}")
    return float(theta.std(dim=0).mean())


# --------------------------------------------------------------------------- exact reference


class RandomFeatures(nn.Module):
    r"""Fixed random Fourier features :math:`\phi(x) = \sqrt{2/F}\cos(x W / \ell + b)`.

    With weights :math:`w \sim \mathcal{N}(0, I)`, :math:`f = \phi(x)^\top w`
    approximates a GP with an RBF kernel of lengthscale :math:`\ell` and unit
    variance (Rahimi & Recht, 2007). ``(N, in)`` -> ``(N, F)``; nothing trainable.
    """

    freq: torch.Tensor
    phase: torch.Tensor

    def __init__(
        self,
        in_features: int,
        num_features: int,
        lengthscale: float = 1.0,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        self.num_features = check_positive_int("num_features", num_features)
        lengthscale = check_float("lengthscale", lengthscale, low=0.0, low_open=True)
        freq = torch.randn(self.in_features, self.num_features, generator=generator)
        self.register_buffer("freq", freq / lengthscale)
        phase = torch.rand(self.num_features, generator=generator) * 2 * math.pi
        self.register_buffer("phase", phase)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ShapeError(f"x: expected (..., {self.in_features}) inputs, got {tuple(x.shape)}")
        scale = math.sqrt(2.0 / self.num_features)
        return scale * torch.cos(x @ self.freq.to(x.dtype) + self.phase.to(x.dtype))


def exact_linear_posterior(
    features: torch.Tensor, y: torch.Tensor, noise_std: float, prior_std: float
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The posterior of :math:`y = \Phi w + \epsilon`, :math:`w \sim \mathcal N(0, \alpha^{-1} I)`.

    .. math:: \Sigma = (\alpha I + \Phi^\top\Phi / s^2)^{-1}, \qquad
              m = \Sigma \Phi^\top y / s^2,

    with :math:`\alpha = 1/\text{prior\_std}^2`, :math:`s` = ``noise_std``.
    Computed in float64. ``features (N, F)``, ``y (N,)`` -> ``(m (F,), Sigma (F, F))``.
    """
    if features.dim() != 2:
        raise ShapeError(f"features: expected (N, F), got {tuple(features.shape)}")
    if y.shape != (features.shape[0],):
        raise ShapeError(f"y: expected shape ({features.shape[0]},), got {tuple(y.shape)}")
    noise_std = check_float("noise_std", noise_std, low=0.0, low_open=True)
    prior_std = check_float("prior_std", prior_std, low=0.0, low_open=True)
    phi, target = features.double(), y.double()
    precision = phi.T @ phi / noise_std**2 + torch.eye(phi.shape[1], dtype=phi.dtype) / prior_std**2
    cov = torch.linalg.inv(precision)
    cov = 0.5 * (cov + cov.T)
    mean = cov @ phi.T @ target / noise_std**2
    return mean, cov


def linear_log_evidence(
    features: torch.Tensor, y: torch.Tensor, noise_std: float, prior_std: float
) -> float:
    r"""The exact log evidence :math:`\log\mathcal N(y; 0, \sigma_p^2\Phi\Phi^\top + s^2 I)`.

    Every ELBO is a lower bound on it; the gap is :math:`\mathrm{KL}(q \,\|\, p(w\mid\mathcal D))`.
    ``features (N, F)``, ``y (N,)``; float64.
    """
    if features.dim() != 2 or y.shape != (features.shape[0],):
        raise ShapeError(
            f"features, y: expected (N, F) and (N,), got {tuple(features.shape)} and "
            f"{tuple(y.shape)}"
        )
    noise_std = check_float("noise_std", noise_std, low=0.0, low_open=True)
    prior_std = check_float("prior_std", prior_std, low=0.0, low_open=True)
    phi = features.double()
    cov = prior_std**2 * phi @ phi.T + noise_std**2 * torch.eye(len(y), dtype=phi.dtype)
    dist = torch.distributions.MultivariateNormal(torch.zeros_like(y.double()), cov)
    return float(dist.log_prob(y.double()))


def mean_field_optimum(
    features: torch.Tensor, y: torch.Tensor, noise_std: float, prior_std: float
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The best factorised Gaussian for the linear-Gaussian posterior, in closed form.

    For a Gaussian posterior :math:`\mathcal N(m, \Lambda^{-1})`, the factorised
    :math:`q` that minimises :math:`\mathrm{KL}(q \,\|\, p)` (the one mean-field
    variational inference converges to) has mean :math:`m` and variances
    :math:`1/\Lambda_{jj}` (Bishop, 2006, Sec. 10.1.2): the exact mean and
    *under*-estimated marginal variances. Returns ``(m (F,), diag covariance (F, F))``.
    """
    mean, _ = exact_linear_posterior(features, y, noise_std, prior_std)
    phi = features.double()
    precision_diag = phi.pow(2).sum(0) / noise_std**2 + 1.0 / prior_std**2
    return mean, torch.diag(1.0 / precision_diag)


def linear_predictive(
    features: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor, noise_std: float
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Predictive mean :math:`\phi^\top m` and variance :math:`\phi^\top\Sigma\phi + s^2`.

    ``features (N, F)`` -> two ``(N,)`` tensors.
    """
    phi = features.to(mean.dtype)
    return phi @ mean, ((phi @ cov) * phi).sum(1) + noise_std**2


# --------------------------------------------------------------------------- metrics


def interval_coverage(
    y: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, level: float = 0.9
) -> float:
    r"""Fraction of ``y`` inside the central ``level`` interval of a Gaussian predictive.

    The interval is :math:`\text{mean} \pm z_{(1+\text{level})/2}\sqrt{\text{var}}`; all ``(N,)``.
    """
    level = check_float("level", level, low=0.0, high=1.0, low_open=True)
    if level >= 1:
        raise HypercoreError(f"level: expected a value in (0, 1), got {level}")
    if not (y.shape == mean.shape == var.shape) or y.dim() != 1:
        raise ShapeError(
            f"y, mean, var: expected three (N,) tensors, got {tuple(y.shape)}, "
            f"{tuple(mean.shape)}, {tuple(var.shape)}"
        )
    z = math.sqrt(2.0) * torch.erfinv(torch.tensor((1 + level) / 2, dtype=torch.float64) * 2 - 1)
    half = float(z) * var.sqrt()
    inside = (y - mean).abs() <= half
    return float(inside.double().mean())


def expected_coverage(
    mean: torch.Tensor,
    var: torch.Tensor,
    ref_mean: torch.Tensor,
    ref_var: torch.Tensor,
    level: float = 0.9,
) -> float:
    r"""Coverage of the Gaussian ``level`` intervals *under a reference predictive*.

    For each point, the mass that :math:`\mathcal N(\text{ref\_mean}, \text{ref\_var})`
    (e.g. the exact posterior predictive) puts inside
    :math:`\text{mean} \pm z\sqrt{\text{var}}`, averaged over points: the coverage
    the intervals would have on average over outcomes drawn from the reference,
    without the noise of one realised data set. The reference's own intervals
    score exactly ``level``. All ``(N,)``.
    """
    level = check_float("level", level, low=0.0, high=1.0, low_open=True)
    if level >= 1:
        raise HypercoreError(f"level: expected a value in (0, 1), got {level}")
    shapes = {t.shape for t in (mean, var, ref_mean, ref_var)}
    if len(shapes) != 1 or mean.dim() != 1:
        raise ShapeError(
            f"mean, var, ref_mean, ref_var: expected four (N,) tensors, got {sorted(shapes)}"
        )
    normal = torch.distributions.Normal(0.0, 1.0)
    z = float(normal.icdf(torch.tensor((1 + level) / 2)))
    m, v = mean.double(), var.double()
    rm, rs = ref_mean.double(), ref_var.double().sqrt()
    half = z * v.sqrt()
    upper = 0.5 * (1 + torch.erf((m + half - rm) / (rs * math.sqrt(2))))
    lower = 0.5 * (1 + torch.erf((m - half - rm) / (rs * math.sqrt(2))))
    return float((upper - lower).mean())


def gaussian_kl(
    mean_q: torch.Tensor, cov_q: torch.Tensor, mean_p: torch.Tensor, cov_p: torch.Tensor
) -> float:
    r""":math:`\mathrm{KL}(\mathcal N(m_q, \Sigma_q) \,\|\, \mathcal N(m_p, \Sigma_p))`."""
    q = torch.distributions.MultivariateNormal(mean_q.double(), cov_q.double())
    p = torch.distributions.MultivariateNormal(mean_p.double(), cov_p.double())
    return float(torch.distributions.kl_divergence(q, p))


def mixture_gaussian_nll(
    y: torch.Tensor, f_samples: torch.Tensor, noise_std: float
) -> torch.Tensor:
    r"""Per-point predictive NLL of the mixture :math:`\tfrac1S\sum_s\mathcal N(y; f_s, s^2)`.

    ``y (N,)``, ``f_samples (S, N)`` -> ``(N,)``.
    """
    if f_samples.dim() != 2 or f_samples.shape[1:] != y.shape or y.dim() != 1:
        raise ShapeError(
            f"f_samples: expected (S, N) with y (N,), got {tuple(f_samples.shape)} and "
            f"{tuple(y.shape)}"
        )
    noise_std = check_float("noise_std", noise_std, low=0.0, low_open=True)
    log_n = (
        -0.5 * ((y - f_samples) / noise_std) ** 2
        - math.log(noise_std)
        - 0.5 * math.log(2 * math.pi)
    )
    return -(torch.logsumexp(log_n, dim=0) - math.log(f_samples.shape[0]))


def predictive_entropy(probs: torch.Tensor) -> torch.Tensor:
    r""":math:`-\sum_c p_c \log p_c` of predictive class probabilities ``(N, C)`` -> ``(N,)``."""
    if probs.dim() != 2:
        raise ShapeError(f"probs: expected (N, C), got {tuple(probs.shape)}")
    return -(probs * probs.clamp_min(1e-12).log()).sum(1)
