r"""Claims: paired multi-seed comparisons, verdicts, and the records behind the scoreboard.

A chapter tests claims from the literature. Each claim is measured over the
same seeds for every method (paired), summarised with a 95% confidence
interval, and given a verdict by a rule written down *before* the run: the
claim's direction (``"greater"``, ``"less"``) or, for ``"matches"``, its margin.

The statistics (see :mod:`hypercore.book.stats`)
    For seeds :math:`i = 1..n`, the paired differences :math:`d_i = a_i - b_i`
    (for a single method against a fixed reference :math:`r`,
    :math:`d_i = a_i - r`) give the interval

    .. math:: \bar d \pm t_{0.975,\,n-1}\, s_d / \sqrt n,

    with :math:`s_d` the sample standard deviation (``ddof=1``) of the
    differences. Per-method spreads are reported as mean ± std (``ddof=1``).

The verdict (margin :math:`m \ge 0`, interval :math:`[l, h]`)
    ============  ===================  ==========================  ===============
    direction     held                 did not hold                otherwise
    ============  ===================  ==========================  ===============
    ``greater``   :math:`l > m`        :math:`h < m`               inconclusive
    ``less``      :math:`h < -m`       :math:`l > -m`              inconclusive
    ``matches``   :math:`-m \le l`    :math:`l > m` or            inconclusive
                  and :math:`h \le m`  :math:`h < -m`
    ============  ===================  ==========================  ===============

    With fewer than two seeds there is no interval: the verdict is
    ``inconclusive`` (the smoke profile runs one seed). :func:`exact` is for
    deterministic quantities (parameter counts): held or did not hold.

The claim cell
    One :class:`ClaimBook` per notebook, in its claim cell. In the ``full``
    profile :meth:`ClaimBook.check` asserts that every verdict equals the
    verdict the chapter's text states (``expected``), so a claim that did not
    hold stays in the book, and a change of verdict fails the build until the
    text changes; it also asserts at least ``min_seeds`` (3) seeds per
    interval. In ``smoke`` it asserts only the robust checks given to
    :meth:`ClaimBook.require` (shapes, finite losses, well above chance,
    equivalences), never a timing or a close comparison between methods. It
    prints a short verdict table and stores each claim in the executed
    notebook (a myst-nb glue output named ``hypercore-claim-<id>``, mimetype
    ``application/vnd.hypercore.claim+json``), from which
    ``python -m hypercore.book.scoreboard`` builds the scoreboard page without
    executing anything. It also glues each claim's numbers, so the markdown
    quotes them instead of typing them: ``{glue:text}`<id>.diff:+.3f``` (the
    names are in :data:`GLUE_FIELDS`).

Example (a notebook's claim cell; ``cfg`` is the setup call's result, ``acc`` a
pandas DataFrame of test accuracies with one column per method and one row per
seed in ``seeds``, ``losses`` the final training losses, ``np`` NumPy)::

    from hypercore.book.claims import ClaimBook, paired

    claims = ClaimBook(cfg)
    claims.record(
        "once-head-matches-mlp",
        paper="Ha, Dai & Le (2017), HyperNetworks",
        paper_claim="a hypernetwork-generated network matches the directly trained one "
        "(their number and setting here)",
        setting="scikit-learn digits, 64-32-10 MLP target, 60 epochs",
        result=paired(acc["once-head hypernetwork"], acc["MLP"], direction="matches",
                      margin=0.02, names=("once-head hypernetwork", "MLP"),
                      metric="test accuracy"),
        seeds=seeds,
        expected="held",  # what the chapter's text says
    )
    claims.require("finite losses", bool(np.isfinite(losses).all()))
    claims.require("above chance", acc.to_numpy().min() > 0.5, f"min {acc.to_numpy().min():.3f}")
    claims.check()

and the markdown after it writes, e.g., "the difference is
{glue:text}`once-head-matches-mlp.diff:+.3f` (95% CI
{glue:text}`once-head-matches-mlp.ci_low:+.3f` to
{glue:text}`once-head-matches-mlp.ci_high:+.3f`): the claim
{glue:text}`once-head-matches-mlp.verdict`."

This module needs only NumPy; IPython is imported when a claim is stored, and
the notebook does not need myst-nb to glue (the glue format is written here).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import MISSING, asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from hypercore.book.stats import t_quantile
from hypercore.errors import HypercoreError

if TYPE_CHECKING:
    from hypercore.book.setup import Setup

VERDICTS = ("held", "did not hold", "inconclusive")
DIRECTIONS = ("greater", "less", "matches")
KINDS = {"paired": "comparison", "one-sample": "measurement", "exact": "exact"}

#: myst-nb's glue format: a display output whose mimetypes carry this prefix and whose
#: metadata names it (``myst_nb.ext.glue``); myst-nb hides it and serves it to ``{glue:}``.
GLUE_PREFIX = "application/papermill.record/"
#: The mimetype of a stored claim record (a JSON object: :meth:`Claim.to_dict`).
CLAIM_MIME = "application/vnd.hypercore.claim+json"
#: Glue name of a stored claim record: this prefix + the claim's id.
CLAIM_KEY_PREFIX = "hypercore-claim-"
#: The numbers glued per claim, as ``<id>.<field>`` (e.g. ``{glue:text}`my-claim.diff:+.3f```).
GLUE_FIELDS = (
    "mean_a",
    "std_a",
    "mean_b",
    "std_b",
    "diff",
    "ci_low",
    "ci_high",
    "n",
    "margin",
    "verdict",
    "result",
)
SCHEMA = 1

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


# --------------------------------------------------------------------------- statistics


def _values(name: str, values: Any) -> np.ndarray:
    """Per-seed values as a finite 1-D float array, or an error naming ``name``."""
    try:
        x = np.asarray(
            values.detach().cpu().numpy() if hasattr(values, "detach") else values, dtype=float
        )
    except (TypeError, ValueError) as err:
        raise HypercoreError(
            f"{name}: expected a sequence of numbers (one per seed), got "
            f"{type(values).__name__} ({err})"
        ) from None
    if x.ndim != 1:
        raise HypercoreError(
            f"{name}: expected a 1-D sequence of per-seed values, got shape {x.shape}"
        )
    if x.size == 0:
        raise HypercoreError(f"{name}: expected at least one per-seed value, got none")
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        raise HypercoreError(
            f"{name}: expected finite per-seed values, got {x[bad[0]]} at index {bad[0]}"
        )
    return x


def _check_rule(direction: str, margin: float, confidence: float) -> float:
    if direction not in DIRECTIONS:
        raise HypercoreError(f"direction: expected one of {list(DIRECTIONS)}, got {direction!r}")
    try:
        margin = float(margin)
    except (TypeError, ValueError):
        raise HypercoreError(f"margin: expected a number >= 0, got {margin!r}") from None
    if not (math.isfinite(margin) and margin >= 0):
        raise HypercoreError(f"margin: expected a finite number >= 0, got {margin!r}")
    if direction == "matches" and margin == 0:
        raise HypercoreError(
            "margin: a 'matches' claim needs a margin > 0 declared before the run "
            "(how close counts as matching), got 0"
        )
    if not 0 < confidence < 1:
        raise HypercoreError(f"confidence: expected a value in (0, 1), got {confidence!r}")
    return margin


def decide(low: float, high: float, direction: str, margin: float = 0.0) -> tuple[str, str]:
    """``(verdict, reason)`` for an interval ``[low, high]`` of the difference (the table above).

    ``greater``: the claim is "difference > margin"; ``less``: "difference < -margin";
    ``matches``: "|difference| <= margin".
    """
    margin = _check_rule(direction, margin, 0.95)
    if not (math.isfinite(low) and math.isfinite(high)):
        return "inconclusive", "no interval"
    ci = f"[{low:+.4g}, {high:+.4g}]"
    if direction == "greater":
        if low > margin:
            return "held", f"the interval {ci} lies above {margin:+.4g}"
        if high < margin:
            return "did not hold", f"the interval {ci} lies below {margin:+.4g}"
        return "inconclusive", f"the interval {ci} contains {margin:+.4g}"
    if direction == "less":
        if high < -margin:
            return "held", f"the interval {ci} lies below {-margin:+.4g}"
        if low > -margin:
            return "did not hold", f"the interval {ci} lies above {-margin:+.4g}"
        return "inconclusive", f"the interval {ci} contains {-margin:+.4g}"
    if -margin <= low and high <= margin:
        return "held", f"the interval {ci} lies inside ±{margin:.4g}"
    if low > margin or high < -margin:
        return "did not hold", f"the interval {ci} lies outside ±{margin:.4g}"
    return "inconclusive", f"the interval {ci} crosses ±{margin:.4g}"


@dataclass(frozen=True)
class Comparison:
    """A measured comparison and its verdict: what :func:`paired`, :func:`one_sample`
    and :func:`exact` return.

    ``diff`` is ``mean(a - b)`` (paired), ``mean(a) - reference`` (one-sample) or
    ``a - reference`` (exact); ``ci_low``/``ci_high`` its interval (``nan`` with
    one seed; equal to ``diff`` for an exact quantity). Standard deviations use
    ``ddof=1`` (``nan`` with one seed).
    """

    kind: str  # "paired", "one-sample" or "exact"
    direction: str
    margin: float
    names: tuple[str, str]
    metric: str
    values_a: tuple[float, ...]
    values_b: tuple[float, ...]
    reference: float
    n: int
    mean_a: float
    std_a: float
    mean_b: float
    std_b: float
    diff: float
    ci_low: float
    ci_high: float
    confidence: float
    verdict: str
    reason: str

    @property
    def claim(self) -> str:
        """The claim as declared, e.g. ``hypernetwork - MLP > +0`` or ``|a - b| <= 0.02``."""
        a, b = self.names
        d = f"{a} - {b}"
        if self.direction == "matches":
            return f"|{d}| <= {self.margin:.4g}"
        sign = ">" if self.direction == "greater" else "<"
        bound = self.margin if self.direction == "greater" else -self.margin
        return f"{d} {sign} {bound:.4g}" if bound else f"{d} {sign} 0"

    def interval(self, fmt: str | None = None) -> str:
        """``+0.012 [+0.004, +0.020]``, or ``+0.012 (one seed: no interval)``.

        ``fmt`` is a format spec without the sign (``".3f"``); by default three
        significant digits of the largest number, with the same decimals for all three.
        """
        if self.kind == "exact":
            return _number(self.diff, "+" + (fmt or ".4g"))
        fmt = fmt or auto_format(self.diff, self.ci_low, self.ci_high)
        diff = format(self.diff, "+" + fmt)
        if not math.isfinite(self.ci_low):
            return f"{diff} (one seed: no interval)"
        return f"{diff} [{self.ci_low:+{fmt}}, {self.ci_high:+{fmt}}]"

    def summary(self, fmt: str | None = None) -> str:
        """One line with both means ± std, the difference and its interval, and n."""
        a, b = self.names
        metric = f"{self.metric}: " if self.metric else ""
        if self.kind == "exact":
            mfmt = fmt or ".4g"
            return f"{metric}{a} {_number(self.mean_a, mfmt)} vs {b} {_number(self.mean_b, mfmt)}"
        mfmt = fmt or auto_format(self.mean_a, self.mean_b, self.std_a, self.std_b)
        seeds = f"{self.n} seed" + ("s" if self.n != 1 else "")
        if self.n < 2:
            return (
                f"{metric}{a} {self.mean_a:{mfmt}} vs {b} {self.mean_b:{mfmt}}; "
                f"difference {self.diff:+{fmt or auto_format(self.diff)}}, {seeds} (no interval)"
            )
        conf = f"{100 * self.confidence:g}% CI"
        if self.kind == "one-sample":
            return (
                f"{metric}{a} {self.mean_a:{mfmt}} ± {self.std_a:{mfmt}} (mean ± std); minus "
                f"{b} {self.reference:{mfmt}}: {self.interval(fmt)} ({conf}), {seeds}"
            )
        return (
            f"{metric}{a} {self.mean_a:{mfmt}} ± {self.std_a:{mfmt}} vs {b} "
            f"{self.mean_b:{mfmt}} ± {self.std_b:{mfmt}} (mean ± std); difference "
            f"{self.interval(fmt)} ({conf}), {seeds}"
        )


def auto_format(*values: float) -> str:
    """A format spec showing three significant digits of the largest finite value, with
    the same decimals for all (``0.0460 [0.0318, 0.0602]`` rather than mixed widths)."""
    finite = [abs(v) for v in values if math.isfinite(v) and v != 0]
    if not finite:
        return ".3f"
    exponent = math.floor(math.log10(max(finite)))
    if exponent >= 6 or exponent < -4:
        return ".3g"
    return f".{max(0, 2 - exponent)}f"


def _number(x: float, fmt: str) -> str:
    """``fmt`` for measurements; whole numbers (parameter counts) as integers."""
    if x.is_integer() and abs(x) < 1e15:
        return format(int(x), ("+" if fmt.startswith("+") else "") + "d")
    return format(x, fmt)


def _std(x: np.ndarray) -> float:
    return float(x.std(ddof=1)) if x.size > 1 else math.nan


def _from_differences(
    d: np.ndarray, direction: str, margin: float, confidence: float
) -> tuple[float, float, float, str, str]:
    mean = float(d.mean())
    if d.size < 2:
        return (
            mean,
            math.nan,
            math.nan,
            "inconclusive",
            f"only {d.size} seed: no interval (the full profile needs several)",
        )
    half = t_quantile(0.5 + confidence / 2, d.size - 1) * float(d.std(ddof=1)) / math.sqrt(d.size)
    low, high = mean - half, mean + half
    return (mean, low, high, *decide(low, high, direction, margin))


def paired(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    direction: str,
    margin: float = 0.0,
    names: tuple[str, str] = ("a", "b"),
    metric: str = "",
    confidence: float = 0.95,
) -> Comparison:
    """Compare two methods run on the same seeds (``a[i]`` and ``b[i]`` share seed ``i``).

    Args:
        a, b: per-seed results (lists, arrays, tensors, pandas Series), same length.
        direction: the claim, declared before the run: ``"greater"`` (a > b + margin),
            ``"less"`` (a < b - margin) or ``"matches"`` (|a - b| <= margin).
        margin: ``>= 0``; required (``> 0``) for ``"matches"``.
        names: readable names of the two methods, for tables and the scoreboard.
        metric: what the values are (``"test accuracy"``).
        confidence: of the two-sided Student-t interval on the differences.
    """
    margin = _check_rule(direction, margin, confidence)
    x, y = _values("a", a), _values("b", b)
    if x.size != y.size:
        raise HypercoreError(
            f"a, b: a paired comparison needs one value per seed for both methods, "
            f"got {x.size} values for a and {y.size} for b"
        )
    diff, low, high, verdict, reason = _from_differences(x - y, direction, margin, confidence)
    return Comparison(
        kind="paired",
        direction=direction,
        margin=margin,
        names=(str(names[0]), str(names[1])),
        metric=metric,
        values_a=tuple(map(float, x)),
        values_b=tuple(map(float, y)),
        reference=0.0,
        n=int(x.size),
        mean_a=float(x.mean()),
        std_a=_std(x),
        mean_b=float(y.mean()),
        std_b=_std(y),
        diff=diff,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        verdict=verdict,
        reason=reason,
    )


def one_sample(
    values: Sequence[float] | np.ndarray,
    *,
    reference: float,
    direction: str,
    margin: float = 0.0,
    name: str = "value",
    reference_name: str = "reference",
    metric: str = "",
    confidence: float = 0.95,
) -> Comparison:
    """One method's per-seed values against a fixed number (chance level, a ratio of 1,
    the paper's reported value): the same interval on ``values - reference``."""
    margin = _check_rule(direction, margin, confidence)
    x = _values("values", values)
    try:
        ref = float(reference)
    except (TypeError, ValueError):
        raise HypercoreError(f"reference: expected a number, got {reference!r}") from None
    if not math.isfinite(ref):
        raise HypercoreError(f"reference: expected a finite number, got {reference!r}")
    diff, low, high, verdict, reason = _from_differences(x - ref, direction, margin, confidence)
    return Comparison(
        kind="one-sample",
        direction=direction,
        margin=margin,
        names=(str(name), str(reference_name)),
        metric=metric,
        values_a=tuple(map(float, x)),
        values_b=(),
        reference=ref,
        n=int(x.size),
        mean_a=float(x.mean()),
        std_a=_std(x),
        mean_b=ref,
        std_b=math.nan,
        diff=diff,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        verdict=verdict,
        reason=reason,
    )


def exact(
    value: float,
    *,
    reference: float,
    direction: str,
    margin: float = 0.0,
    name: str = "value",
    reference_name: str = "reference",
    metric: str = "",
) -> Comparison:
    """A deterministic quantity (a parameter count, a ratio of sizes) against a reference:
    held when ``value - reference`` satisfies the rule, else did not hold; no seeds."""
    margin = _check_rule(direction, margin, 0.95)
    x = _values("value", [value])
    try:
        ref = float(reference)
    except (TypeError, ValueError):
        raise HypercoreError(f"reference: expected a number, got {reference!r}") from None
    if not math.isfinite(ref):
        raise HypercoreError(f"reference: expected a finite number, got {reference!r}")
    d = float(x[0]) - ref
    verdict, _ = decide(d, d, direction, margin)
    if verdict == "inconclusive":  # exactly on the boundary: the strict claim fails
        verdict = "did not hold"
    reason = f"{name} - {reference_name} = {d:+.4g}: the claim {verdict}"
    return Comparison(
        kind="exact",
        direction=direction,
        margin=margin,
        names=(str(name), str(reference_name)),
        metric=metric,
        values_a=(float(x[0]),),
        values_b=(),
        reference=ref,
        n=1,
        mean_a=float(x[0]),
        std_a=math.nan,
        mean_b=ref,
        std_b=math.nan,
        diff=d,
        ci_low=d,
        ci_high=d,
        confidence=1.0,
        verdict=verdict,
        reason=reason,
    )


# --------------------------------------------------------------------------- records


def _json_number(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


@dataclass
class Claim:
    """One claim of a chapter, as stored in the executed notebook and shown on the scoreboard.

    Attributes:
        id: a slug unique within the chapter (``once-head-matches-mlp``).
        paper: who and when (``Ha, Dai & Le (2017), HyperNetworks``).
        paper_claim: the paper's headline claim, with its own number and setting.
        setting: our setting (data, model, budget).
        metric: what was measured.
        kind: ``comparison`` (paired), ``measurement`` (one method against a number)
            or ``exact`` (a deterministic quantity).
        claim: the claim as declared (direction and margin), e.g. ``|a - b| <= 0.02``.
        result: our result, formatted: means ± std, the difference with its interval, n.
        interval: the difference and its interval alone (``+0.012 [+0.004, +0.020]``).
        verdict: the measured verdict; ``expected``: the one the chapter's text states.
        reason: why the rule gave this verdict.
        seeds: the seeds (``None`` when not given or not applicable).
        profile, device: of the run that measured it.
        numbers: the :class:`Comparison` fields (non-finite numbers as ``None``).
    """

    id: str
    paper: str
    paper_claim: str
    setting: str
    metric: str
    kind: str
    claim: str
    result: str
    interval: str
    verdict: str
    expected: str
    reason: str
    seeds: list[int] | None
    profile: str
    device: str
    numbers: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (what is stored in the notebook)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Claim:
        """The inverse of :meth:`to_dict`. Unknown keys (from newer records) are ignored,
        missing descriptive ones read as empty."""
        missing = [k for k in ("id", "verdict", "result") if k not in data]
        if missing:
            raise HypercoreError(f"claim record: missing {missing}, got keys {sorted(data)}")
        values: dict[str, Any] = {
            name: f.default if f.default is not MISSING else ""
            for name, f in cls.__dataclass_fields__.items()
        }
        values["seeds"] = None
        values["numbers"] = {}
        values.update({k: v for k, v in data.items() if k in values})
        return cls(**values)

    def glue_values(self) -> dict[str, float | int | str]:
        """The values glued as ``<id>.<field>`` (:data:`GLUE_FIELDS`); ``nan`` when undefined."""
        out: dict[str, float | int | str] = {}
        for name in GLUE_FIELDS:
            if name == "verdict":
                out[name] = self.verdict
            elif name == "result":
                out[name] = self.interval
            elif name == "n":
                out[name] = int(self.numbers.get("n") or 0)
            else:
                value = self.numbers.get(name)
                out[name] = math.nan if value is None else float(value)
        return out


def _ipython_display() -> Callable[..., Any] | None:
    """IPython's ``display`` inside a kernel, else ``None`` (nothing to store into)."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return None
    return display if get_ipython() is not None else None


def glue(name: str, value: float | int | str, *, display: Callable[..., Any] | None = None) -> None:
    """Store ``value`` under ``name`` for ``{glue:text}`name:.3f``` in the markdown.

    Writes myst-nb's glue format directly, so the kernel needs only IPython (not
    myst-nb). NumPy and torch scalars become plain Python numbers first (their
    ``repr``, e.g. ``np.float64(0.5)``, would not format). Outside a kernel and
    without ``display`` it does nothing.
    """
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise HypercoreError(
            f"glue {name!r}: expected a number or a string, got {type(value).__name__}"
        )
    show = display or _ipython_display()
    if show is None:
        return
    show(
        {GLUE_PREFIX + "text/plain": repr(value)},
        raw=True,
        metadata={"scrapbook": {"name": name, "mime_prefix": GLUE_PREFIX}},
    )


def store_claim(claim: Claim, *, display: Callable[..., Any] | None = None) -> None:
    """Store one claim record in the cell's outputs (hidden by myst-nb) and glue its numbers."""
    show = display or _ipython_display()
    if show is None:
        return
    show(
        {
            GLUE_PREFIX + CLAIM_MIME: claim.to_dict(),
            GLUE_PREFIX + "text/plain": repr(f"{claim.id}: {claim.verdict}"),
        },
        raw=True,
        metadata={"scrapbook": {"name": CLAIM_KEY_PREFIX + claim.id, "mime_prefix": GLUE_PREFIX}},
    )
    for name, value in claim.glue_values().items():
        glue(f"{claim.id}.{name}", value, display=show)


@dataclass(frozen=True)
class Requirement:
    """A robust check asserted in every profile (see :meth:`ClaimBook.require`)."""

    what: str
    ok: bool
    detail: str = ""


class ClaimBook:
    """The claims of one notebook: record them, then :meth:`check` (the claim cell).

    Args:
        setup: the setup call's result (gives the profile and the device name).
        profile, device: instead of (or overriding) ``setup``.
        min_seeds: seeds an interval needs in the ``full`` profile (EVIDENCE.md: 3).
        display: where records go (default: IPython's ``display`` inside a kernel).
    """

    def __init__(
        self,
        setup: Setup | None = None,
        *,
        profile: str | None = None,
        device: str | None = None,
        min_seeds: int = 3,
        display: Callable[..., Any] | None = None,
    ) -> None:
        self.profile = profile or (setup.profile if setup is not None else None)
        if self.profile not in ("full", "smoke"):
            raise HypercoreError(
                f"profile: expected 'full' or 'smoke' (pass the setup call's result), "
                f"got {self.profile!r}"
            )
        self.device = device or (setup.device_name if setup is not None else "unknown")
        self.min_seeds = int(min_seeds)
        self.claims: list[Claim] = []
        self.comparisons: dict[str, Comparison] = {}
        self.requirements: list[Requirement] = []
        self._display = display
        self._stored: set[str] = set()

    def record(
        self,
        id: str,
        *,
        paper: str,
        paper_claim: str,
        setting: str,
        result: Comparison,
        expected: str,
        seeds: Sequence[int] | None = None,
        fmt: str | None = None,
    ) -> Claim:
        """Record one claim (see :class:`Claim` for the fields).

        Args:
            id: a slug (lower case, digits, hyphens), unique in the notebook.
            result: from :func:`paired`, :func:`one_sample` or :func:`exact`.
            expected: the verdict the chapter's text states: ``held``, ``did not hold``
                or ``inconclusive``.
            seeds: the seeds behind the per-seed values (as many as values).
            fmt: number format of the printed result, without sign (``".3f"``); by
                default three significant digits (:func:`auto_format`).
        """
        if not isinstance(id, str) or not _SLUG.match(id):
            raise HypercoreError(
                f"id: expected a slug of lower-case letters, digits and hyphens "
                f"('once-head-matches-mlp'), got {id!r}"
            )
        if id in self.comparisons:
            raise HypercoreError(f"id: claim {id!r} is already recorded in this notebook")
        if not isinstance(result, Comparison):
            raise HypercoreError(
                f"result: expected a Comparison from paired(), one_sample() or exact(), "
                f"got {type(result).__name__}"
            )
        if expected not in VERDICTS:
            raise HypercoreError(f"expected: expected one of {list(VERDICTS)}, got {expected!r}")
        for name, text in (("paper", paper), ("paper_claim", paper_claim), ("setting", setting)):
            if not isinstance(text, str) or not text.strip():
                raise HypercoreError(f"{name}: expected a non-empty description, got {text!r}")
        seed_list = None
        if seeds is not None:
            seed_list = [int(s) for s in seeds]
            if result.kind != "exact" and len(seed_list) != result.n:
                raise HypercoreError(
                    f"seeds: expected one seed per value ({result.n}), got {len(seed_list)}"
                )
        numbers = {
            k: (_json_number(v) if isinstance(v, float) else v)
            for k, v in asdict(result).items()
            if k not in ("verdict", "reason")
        }
        numbers["values_a"] = list(result.values_a)
        numbers["values_b"] = list(result.values_b)
        numbers["names"] = list(result.names)
        claim = Claim(
            id=id,
            paper=paper.strip(),
            paper_claim=paper_claim.strip(),
            setting=setting.strip(),
            metric=result.metric,
            kind=KINDS[result.kind],
            claim=result.claim,
            result=result.summary(fmt),
            interval=result.interval(fmt),
            verdict=result.verdict,
            expected=expected,
            reason=result.reason,
            seeds=seed_list,
            profile=self.profile,
            device=self.device,
            numbers=numbers,
        )
        self.claims.append(claim)
        self.comparisons[id] = result
        return claim

    def require(self, what: str, ok: bool, detail: str = "") -> None:
        """A robust check, asserted by :meth:`check` in every profile (smoke included):
        shapes, finite losses, well above chance, exact equivalences. Never a timing,
        never a close comparison between methods."""
        self.requirements.append(Requirement(what, bool(ok), str(detail)))

    def table(self) -> str:
        """The verdict table (plain text, no index)."""
        header = ("claim", "declared", "difference [95% CI]", "n", "verdict", "text says")
        rows = [
            (
                c.id,
                c.claim,
                c.interval,
                "-" if c.kind == "exact" else str(c.numbers.get("n")),
                c.verdict,
                c.expected,
            )
            for c in self.claims
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
            for r in [header, *rows]
        ]
        if self.profile == "full":
            lines.append(
                f"full profile: each verdict must equal what the text says "
                f"(at least {self.min_seeds} seeds per interval)"
            )
        else:
            lines.append("smoke profile: verdicts are recorded, not asserted (small budgets)")
        if self.requirements:
            passed = sum(r.ok for r in self.requirements)
            lines.append(
                f"robust checks: {passed}/{len(self.requirements)} passed ("
                + "; ".join(r.what + ("" if r.ok else " FAILED") for r in self.requirements)
                + ")"
            )
        return "\n".join(lines)

    def store(self) -> None:
        """Store every claim not stored yet in the cell's outputs, with its glued numbers."""
        for claim in self.claims:
            if claim.id not in self._stored:
                store_claim(claim, display=self._display)
                self._stored.add(claim.id)

    def failures(self) -> list[str]:
        """What :meth:`check` would raise about, one message per problem."""
        problems = [
            f"robust check failed: {r.what}" + (f" ({r.detail})" if r.detail else "")
            for r in self.requirements
            if not r.ok
        ]
        if self.profile != "full":
            return problems
        for c in self.claims:
            n = int(c.numbers.get("n") or 0)
            if c.kind != "exact" and n < self.min_seeds:
                problems.append(
                    f"claim {c.id!r}: the full profile needs at least {self.min_seeds} seeds "
                    f"per interval, got {n}"
                )
            elif c.verdict != c.expected:
                problems.append(
                    f"claim {c.id!r}: the text says {c.expected!r} but the measurement says "
                    f"{c.verdict!r} ({c.reason}; {c.result}). Update the chapter's text and "
                    f"its expected verdict, or find out what changed."
                )
        return problems

    def check(self) -> None:
        """The claim cell's last call: store the records, print the verdict table, assert.

        Raises:
            AssertionError: naming each failed robust check and, in the full profile,
                each claim whose verdict differs from the stated one (with its numbers)
                or that has fewer than ``min_seeds`` seeds.
        """
        if not self.claims:
            raise HypercoreError("check: no claim recorded (call record(...) first)")
        self.store()
        print(self.table())
        problems = self.failures()
        if problems:
            raise AssertionError("\n".join(problems))
