"""Student's t quantiles and intervals, in plain Python (no SciPy needed at run time).

The book's comparisons report a 95% confidence interval for the mean of ``n``
per-seed values (for a paired comparison, the per-seed differences
``d_i = a_i - b_i``):

.. math::

    \\bar d \\pm t_{1-\\alpha/2,\\,n-1}\\, \\frac{s_d}{\\sqrt n},
    \\qquad s_d^2 = \\frac{1}{n-1} \\sum_i (d_i - \\bar d)^2,

with :math:`\\alpha = 0.05`. The quantile :math:`t_{q,\\nu}` of Student's t
distribution with :math:`\\nu` degrees of freedom is found by bisection on its
survival function,

.. math::

    P(T > t) = \\tfrac12\\, I_{\\nu/(\\nu + t^2)}\\!\\left(\\tfrac{\\nu}{2}, \\tfrac12\\right)
    \\quad (t \\ge 0),

where :math:`I_x(a, b)` is the regularised incomplete beta function, evaluated
with its continued fraction (Lentz's method, as in Numerical Recipes, 6.4).
The tests check the quantiles against ``scipy.stats.t.ppf`` to a relative
error below 1e-10.
"""

from __future__ import annotations

import math
import sys

import numpy as np

_EPS = sys.float_info.epsilon
_TINY = 1e-300


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of :math:`I_x(a, b)` (modified Lentz; converges for
    ``x < (a + 1) / (a + b + 2)``)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            return h
    raise ArithmeticError(f"incomplete beta: no convergence for a={a}, b={b}, x={x}")


def incomplete_beta(a: float, b: float, x: float, one_minus_x: float | None = None) -> float:
    """The regularised incomplete beta function :math:`I_x(a, b)`.

    ``one_minus_x`` may be given separately when it is known more accurately
    than ``1 - x`` (as for the t distribution's tails).
    """
    y = 1.0 - x if one_minus_x is None else one_minus_x
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, y) / b


def t_sf(t: float, df: float) -> float:
    """Survival function :math:`P(T > t)` of Student's t with ``df`` degrees of freedom."""
    if t < 0:
        return 1.0 - t_sf(-t, df)
    t2 = t * t
    return 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t2), t2 / (df + t2))


def t_quantile(p: float, df: float) -> float:
    """The quantile :math:`t_{p,\\nu}`: the ``t`` with :math:`P(T \\le t) = p`.

    Args:
        p: probability, strictly between 0 and 1 (``0.975`` for a two-sided 95% interval).
        df: degrees of freedom, ``> 0`` (``n - 1`` for ``n`` seeds).
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p: expected a probability strictly between 0 and 1, got {p!r}")
    if not (df > 0 and math.isfinite(df)):
        raise ValueError(f"df: expected finite degrees of freedom > 0, got {df!r}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    tail = 1.0 - p
    if df == 1:  # Cauchy: closed form
        return math.tan(math.pi * (p - 0.5))
    lo, hi = 0.0, 1.0
    while t_sf(hi, df) > tail:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_sf(mid, df) > tail:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 4 * _EPS * hi:
            break
    return 0.5 * (lo + hi)


def t_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the two-sided Student-t interval for the mean of ``values``.

    Needs at least two values; with zero spread the interval is the mean itself.
    """
    x = np.asarray(values, dtype=float)
    n = x.size
    if n < 2:
        raise ValueError(f"values: a t interval needs at least 2 values, got {n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: expected a value in (0, 1), got {confidence!r}")
    mean = float(x.mean())
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half
