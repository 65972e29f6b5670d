"""Claim machinery: Student-t intervals (against SciPy), verdicts, errors, records, printing."""

import json
import math
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from hypercore.book import Setup
from hypercore.book.claims import (
    CLAIM_KEY_PREFIX,
    CLAIM_MIME,
    GLUE_FIELDS,
    GLUE_PREFIX,
    Claim,
    ClaimBook,
    decide,
    exact,
    glue,
    one_sample,
    paired,
)
from hypercore.book.stats import incomplete_beta, t_interval, t_quantile, t_sf
from hypercore.errors import HypercoreError

stats = pytest.importorskip("scipy.stats")
special = pytest.importorskip("scipy.special")


# --------------------------------------------------------------------------- Student's t


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 6, 7, 9, 10, 14, 19, 29, 49, 99, 999, 1e5, 0.5, 2.5])
@pytest.mark.parametrize("p", [0.6, 0.9, 0.95, 0.975, 0.99, 0.995, 0.9995, 0.05, 0.025, 0.001])
def test_t_quantile_matches_scipy(df, p):
    assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-10)


def test_t_quantile_symmetry_and_centre():
    assert t_quantile(0.5, 3) == 0.0
    assert t_quantile(0.025, 4) == -t_quantile(0.975, 4)
    # The textbook table: t_{0.975, 4} = 2.776, t_{0.975, 1} = 12.706.
    assert t_quantile(0.975, 4) == pytest.approx(2.7764451, abs=1e-7)
    assert t_quantile(0.975, 1) == pytest.approx(12.7062047, abs=1e-7)


@pytest.mark.parametrize("df", [1, 3, 8, 40])
@pytest.mark.parametrize("t", [-3.0, -0.2, 0.0, 1e-6, 0.7, 2.0, 15.0])
def test_t_sf_matches_scipy(df, t):
    # scipy.stats.t.sf loses digits near t = 0 for df = 1; its Cauchy distribution does not
    expected = stats.cauchy.sf(t) if df == 1 else stats.t.sf(t, df)
    assert t_sf(t, df) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("a", "b"), [(0.5, 0.5), (2.0, 0.5), (10.0, 3.0), (50.0, 0.5)])
@pytest.mark.parametrize("x", [0.0, 1e-8, 0.1, 0.5, 0.9, 0.999, 1.0])
def test_incomplete_beta_matches_scipy(a, b, x):
    assert incomplete_beta(a, b, x) == pytest.approx(special.betainc(a, b, x), rel=1e-12)


@pytest.mark.parametrize(("p", "df"), [(0.0, 3), (1.0, 3), (1.2, 3), (0.9, 0), (0.9, math.inf)])
def test_t_quantile_rejects_bad_arguments(p, df):
    with pytest.raises(ValueError, match="p:|df:"):
        t_quantile(p, df)


@pytest.mark.parametrize("n", [2, 3, 5, 10, 30])
def test_t_interval_matches_scipy(n):
    x = np.random.default_rng(n).normal(0.3, 0.1, n)
    mean, low, high = t_interval(x)
    expected = stats.t.interval(0.95, n - 1, loc=x.mean(), scale=stats.sem(x))
    assert (low, high) == pytest.approx(expected, rel=1e-10)
    assert mean == pytest.approx(x.mean())


# --------------------------------------------------------------------------- paired


@pytest.mark.parametrize("n", [2, 3, 4, 5, 8, 20])
def test_paired_interval_is_scipys_paired_t_interval(n):
    rng = np.random.default_rng(100 + n)
    b = rng.normal(0.90, 0.02, n)
    a = b + rng.normal(0.01, 0.01, n)
    c = paired(a, b, direction="greater")
    ci = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert (c.ci_low, c.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert c.diff == pytest.approx(np.mean(a - b))
    assert c.n == n
    assert (c.mean_a, c.std_a) == pytest.approx((a.mean(), a.std(ddof=1)))
    assert (c.mean_b, c.std_b) == pytest.approx((b.mean(), b.std(ddof=1)))


@pytest.mark.parametrize("confidence", [0.9, 0.99])
def test_paired_other_confidence_levels(confidence):
    a, b = np.array([1.0, 2.1, 2.9, 4.2]), np.array([0.9, 1.7, 3.0, 3.6])
    c = paired(a, b, direction="greater", confidence=confidence)
    ci = stats.ttest_rel(a, b).confidence_interval(confidence)
    assert (c.ci_low, c.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_one_sample_interval_is_scipys():
    x = np.array([0.91, 0.93, 0.90, 0.94, 0.92])
    c = one_sample(x, reference=0.1, direction="greater", name="accuracy", reference_name="chance")
    ci = stats.ttest_1samp(x, popmean=0.1).confidence_interval(0.95)  # for the mean of x
    assert (c.ci_low, c.ci_high) == pytest.approx((ci.low - 0.1, ci.high - 0.1), rel=1e-9)
    assert c.verdict == "held"
    assert c.mean_b == 0.1 and c.values_b == ()


def test_paired_accepts_lists_tensors_and_series():
    pd = pytest.importorskip("pandas")
    a, b = [0.5, 0.6, 0.7], [0.4, 0.5, 0.65]
    ref = paired(a, b, direction="greater")
    for x, y in [
        (torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)),
        (pd.Series(a), pd.Series(b)),
    ]:
        assert paired(x, y, direction="greater").ci_low == pytest.approx(ref.ci_low)


# --------------------------------------------------------------------------- verdicts

UP = [0.10, 0.12, 0.11, 0.13, 0.12]  # clearly positive differences
NOISE = [0.05, -0.06, 0.04, -0.05, 0.01]  # interval around zero
TINY = [0.001, -0.002, 0.0015, -0.001, 0.0005]  # close to zero, tight


def _diffs(d, **rule):
    d = np.asarray(d)
    return paired(d + 1.0, np.ones_like(d), **rule)


@pytest.mark.parametrize(
    ("diffs", "rule", "verdict"),
    [
        (UP, {"direction": "greater"}, "held"),
        (UP, {"direction": "less"}, "did not hold"),
        (NOISE, {"direction": "greater"}, "inconclusive"),
        (NOISE, {"direction": "less"}, "inconclusive"),
        ([-x for x in UP], {"direction": "less"}, "held"),
        ([-x for x in UP], {"direction": "greater"}, "did not hold"),
        # "greater by at least the margin"
        (UP, {"direction": "greater", "margin": 0.05}, "held"),
        (UP, {"direction": "greater", "margin": 0.2}, "did not hold"),
        (UP, {"direction": "greater", "margin": 0.115}, "inconclusive"),
        # "matches within the margin"
        (TINY, {"direction": "matches", "margin": 0.01}, "held"),
        (UP, {"direction": "matches", "margin": 0.02}, "did not hold"),
        ([-x for x in UP], {"direction": "matches", "margin": 0.02}, "did not hold"),
        (NOISE, {"direction": "matches", "margin": 0.02}, "inconclusive"),
    ],
)
def test_verdicts(diffs, rule, verdict):
    c = _diffs(diffs, **rule)
    assert c.verdict == verdict, (c.ci_low, c.ci_high, c.reason)
    assert c.reason


def test_decide_boundaries():
    assert decide(0.0, 1.0, "greater")[0] == "inconclusive"  # touching zero is not above it
    assert decide(0.001, 1.0, "greater")[0] == "held"
    assert decide(-0.02, 0.02, "matches", 0.02)[0] == "held"  # the margin is inclusive
    assert decide(-0.03, 0.01, "matches", 0.02)[0] == "inconclusive"
    assert decide(math.nan, math.nan, "greater")[0] == "inconclusive"


def test_zero_variance():
    same = paired([0.9, 0.8, 0.7], [0.9, 0.8, 0.7], direction="greater")
    assert (same.ci_low, same.ci_high) == (0.0, 0.0)
    assert same.verdict == "inconclusive"
    assert paired([0.9, 0.8, 0.7], [0.9, 0.8, 0.7], direction="matches", margin=1e-9).verdict == (
        "held"
    )
    shifted = paired([2.0, 3.0, 4.0], [1.0, 2.0, 3.0], direction="greater")
    assert (shifted.ci_low, shifted.ci_high) == (1.0, 1.0)
    assert shifted.verdict == "held"


def test_one_seed_is_inconclusive_with_a_reason():
    c = paired([0.99], [0.10], direction="greater")
    assert c.verdict == "inconclusive"
    assert "1 seed" in c.reason
    assert math.isnan(c.ci_low) and math.isnan(c.std_a)
    assert c.diff == pytest.approx(0.89)
    assert "no interval" in c.interval()
    assert c.summary() == "a 0.990 vs b 0.100; difference +0.890, 1 seed (no interval)"


def test_exact():
    assert exact(3000, reference=4810, direction="less").verdict == "held"
    assert exact(5000, reference=4810, direction="less").verdict == "did not hold"
    assert exact(4810, reference=4810, direction="less").verdict == "did not hold"  # boundary
    assert exact(1.0, reference=1.0, direction="matches", margin=1e-6).verdict == "held"
    c = exact(1600, reference=4810, direction="less", name="hypernetwork", reference_name="MLP")
    assert c.interval() == "-3210"  # counts print as integers
    assert "hypernetwork 1600 vs MLP 4810" in c.summary()


def test_result_formatting():
    c = paired(
        [0.95, 0.96, 0.94, 0.95, 0.97],
        [0.90, 0.91, 0.90, 0.92, 0.91],
        direction="greater",
        names=("hypernetwork", "MLP"),
        metric="test accuracy",
    )
    assert c.interval() == "+0.0460 [+0.0318, +0.0602]"
    assert c.interval(".2f") == "+0.05 [+0.03, +0.06]"
    assert c.summary() == (
        "test accuracy: hypernetwork 0.954 ± 0.011 vs MLP 0.908 ± 0.008 (mean ± std); "
        "difference +0.0460 [+0.0318, +0.0602] (95% CI), 5 seeds"
    )
    big = paired([1200.0, 1300.0, 1250.0], [1000.0, 1010.0, 990.0], direction="greater")
    assert big.interval() == "+250 [+136, +364]"  # sd of (200, 290, 260) = 45.8


def test_declared_claim_text():
    assert _diffs(UP, direction="greater").claim == "a - b > 0"
    assert _diffs(UP, direction="less", margin=0.1).claim == "a - b < -0.1"
    assert _diffs(UP, direction="matches", margin=0.02).claim == "|a - b| <= 0.02"


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        ([0.1, math.nan, 0.3], [0.1, 0.2, 0.3], r"^a: expected finite per-seed values, got nan "),
        ([0.1, 0.2, 0.3], [0.1, 0.2, math.inf], r"^b: .*got inf at index 2"),
        ([0.1, 0.2, 0.3], [0.1, 0.2], r"^a, b: .*got 3 values for a and 2 for b"),
        ([[0.1, 0.2]], [[0.1, 0.2]], r"^a: expected a 1-D .*got shape \(1, 2\)"),
        ([], [], r"^a: expected at least one"),
        (["x", "y"], [1.0, 2.0], r"^a: expected a sequence of numbers"),
    ],
)
def test_bad_values_name_the_argument(a, b, match):
    with pytest.raises(HypercoreError, match=match):
        paired(a, b, direction="greater")


@pytest.mark.parametrize(
    ("rule", "match"),
    [
        ({"direction": "better"}, r"^direction: expected one of \['greater', 'less', 'matches'\]"),
        ({"direction": "matches"}, r"^margin: a 'matches' claim needs a margin > 0"),
        ({"direction": "greater", "margin": -0.1}, r"^margin: expected a finite number >= 0"),
        ({"direction": "greater", "confidence": 95}, r"^confidence: expected a value in \(0, 1\)"),
    ],
)
def test_bad_rules_name_the_argument(rule, match):
    with pytest.raises(HypercoreError, match=match):
        paired([1.0, 2.0], [1.0, 2.0], **rule)


def test_bad_reference_and_values_for_one_sample():
    with pytest.raises(HypercoreError, match=r"^reference: expected a finite number"):
        one_sample([1.0, 2.0], reference=math.nan, direction="greater")
    with pytest.raises(HypercoreError, match=r"^values: expected finite"):
        one_sample([1.0, math.nan], reference=0.0, direction="greater")
    with pytest.raises(HypercoreError, match=r"^value: expected finite"):
        exact(math.inf, reference=0.0, direction="greater")


# --------------------------------------------------------------------------- the claim book


class Capture:
    """Stands in for IPython's display: keeps what would be written into the notebook."""

    def __init__(self):
        self.outputs = []

    def __call__(self, bundle, raw=False, metadata=None):
        assert raw
        self.outputs.append(
            nbformat.v4.new_output("display_data", data=bundle, metadata=metadata or {})
        )

    def glued(self):
        return {
            o.metadata["scrapbook"]["name"]: o.data[GLUE_PREFIX + "text/plain"]
            for o in self.outputs
        }


def record(book, id="hn-beats-mlp", result=None, expected="held", **kw):
    result = result or paired(
        [0.95, 0.96, 0.94, 0.95, 0.97],
        [0.90, 0.91, 0.90, 0.92, 0.91],
        direction="greater",
        names=("hypernetwork", "MLP"),
        metric="test accuracy",
    )
    return book.record(
        id,
        paper="Ha, Dai & Le (2017), HyperNetworks",
        paper_claim="hypernetworks beat the plain network (their Table 2: 1.2 vs 1.3 bits/char)",
        setting="digits, 64-32-10 MLP, 5 seeds",
        result=result,
        expected=expected,
        **kw,
    )


def test_full_profile_passes_when_the_verdicts_equal_the_text(capsys):
    book = ClaimBook(profile="full", device="cpu", display=Capture())
    record(book, seeds=range(5))
    record(
        book,
        "above-chance",
        one_sample([0.9, 0.91, 0.92], reference=0.1, direction="greater"),
        seeds=[0, 1, 2],
    )
    book.require("finite losses", True)
    book.check()
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == [
        "claim",
        "declared",
        "difference",
        "[95%",
        "CI]",
        "n",
        "verdict",
        "text",
        "says",
    ]
    assert lines[1].startswith("hn-beats-mlp ")  # no index column
    row = " ".join(lines[1].split())
    assert row == "hn-beats-mlp hypernetwork - MLP > 0 +0.0460 [+0.0318, +0.0602] 5 held held"
    assert "full profile" in out and "robust checks: 1/1 passed (finite losses)" in out


def test_full_profile_fails_on_a_changed_verdict_naming_everything():
    book = ClaimBook(profile="full", device="cpu", display=Capture())
    record(book, expected="did not hold")
    with pytest.raises(AssertionError) as err:
        book.check()
    message = str(err.value)
    for part in ["'hn-beats-mlp'", "'did not hold'", "'held'", "[+0.0", "5 seeds", "0.954"]:
        assert part in message, (part, message)


def test_full_profile_needs_three_seeds():
    book = ClaimBook(profile="full", device="cpu", display=Capture())
    record(book, result=paired([0.9, 0.95], [0.5, 0.55], direction="greater"))
    with pytest.raises(AssertionError, match="at least 3 seeds per interval, got 2"):
        book.check()
    exact_only = ClaimBook(profile="full", device="cpu", display=Capture())
    record(exact_only, result=exact(10, reference=20, direction="less"))
    exact_only.check()  # a deterministic quantity needs no seeds


def test_smoke_profile_does_not_assert_verdicts_but_asserts_robust_checks(capsys):
    book = ClaimBook(profile="smoke", device="cpu", display=Capture())
    record(book, result=paired([0.5], [0.6], direction="greater"), expected="held")
    book.check()  # one seed, inconclusive: not asserted in smoke
    assert "smoke profile: verdicts are recorded, not asserted" in capsys.readouterr().out
    book.require("well above chance", False, "accuracy 0.12 <= 0.5")
    with pytest.raises(AssertionError, match=r"robust check failed: well above chance \(acc"):
        book.check()


def test_setup_gives_profile_and_device():
    cfg = Setup(profile="smoke", device=torch.device("cpu"), seed=0)
    book = ClaimBook(cfg)
    assert book.profile == "smoke" and book.device.startswith("cpu")
    assert ClaimBook(cfg, profile="full").profile == "full"
    with pytest.raises(HypercoreError, match="^profile: expected 'full' or 'smoke'"):
        ClaimBook()


def test_record_validates_its_arguments():
    book = ClaimBook(profile="full", display=Capture())
    with pytest.raises(HypercoreError, match="^id: expected a slug"):
        record(book, id="Has Spaces")
    record(book)
    with pytest.raises(HypercoreError, match="^id: claim 'hn-beats-mlp' is already recorded"):
        record(book)
    with pytest.raises(HypercoreError, match="^expected: expected one of"):
        record(book, id="x", expected="true")
    with pytest.raises(HypercoreError, match=r"^seeds: expected one seed per value \(5\), got 3"):
        record(book, id="y", seeds=[0, 1, 2])
    with pytest.raises(HypercoreError, match="^result: expected a Comparison"):
        record(book, id="z", result=(0.1, 0.2))
    with pytest.raises(HypercoreError, match="^paper: expected a non-empty"):
        book.record(
            "w",
            paper=" ",
            paper_claim="c",
            setting="s",
            result=exact(1, reference=0, direction="greater"),
            expected="held",
        )
    with pytest.raises(HypercoreError, match="^check: no claim recorded"):
        ClaimBook(profile="full", display=Capture()).check()


def test_records_are_stored_as_glue_outputs_that_nbformat_accepts():
    capture = Capture()
    book = ClaimBook(profile="full", device="NVIDIA H200", display=capture)
    claim = record(book, seeds=range(5))
    book.check()
    book.check()  # a second check stores nothing twice (duplicate glue keys break the build)
    names = [o.metadata["scrapbook"]["name"] for o in capture.outputs]
    assert len(names) == len(set(names)) == 1 + len(GLUE_FIELDS)
    stored = capture.outputs[0]
    assert stored.metadata["scrapbook"] == {
        "name": CLAIM_KEY_PREFIX + "hn-beats-mlp",
        "mime_prefix": GLUE_PREFIX,
    }
    data = stored.data[GLUE_PREFIX + CLAIM_MIME]
    json.dumps(data, allow_nan=False)  # strict JSON: no NaN
    assert Claim.from_dict(data) == claim
    assert data["device"] == "NVIDIA H200" and data["seeds"] == [0, 1, 2, 3, 4]
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("claims.check()")
    cell.outputs = capture.outputs
    nb.cells = [cell]
    nbformat.validate(nbformat.reads(nbformat.writes(nb), 4))


def test_glued_numbers_format_like_myst_nb():
    variables = pytest.importorskip("myst_nb.core.variables")
    capture = Capture()
    book = ClaimBook(profile="full", display=capture)
    claim = record(book)
    book.store()
    glued = capture.glued()
    c = book.comparisons[claim.id]
    fmt = variables.format_plain_text
    assert fmt(glued["hn-beats-mlp.diff"], ".3f") == f"{c.diff:.3f}"
    assert fmt(glued["hn-beats-mlp.ci_low"], "+.4f") == f"{c.ci_low:+.4f}"
    assert fmt(glued["hn-beats-mlp.n"], "d") == "5"
    assert fmt(glued["hn-beats-mlp.verdict"], "s") == "held"  # no quotes
    assert fmt(glued["hn-beats-mlp.result"], "s") == claim.interval


def test_glue_converts_numpy_and_torch_scalars():
    capture = Capture()
    glue("a", np.float64(0.25), display=capture)
    glue("b", torch.tensor(3), display=capture)
    assert capture.glued() == {"a": "0.25", "b": "3"}
    with pytest.raises(HypercoreError, match="^glue 'c': expected a number or a string"):
        glue("c", [1, 2], display=capture)
    glue("d", 1.0)  # outside a kernel: nothing to store into, no error


def test_claims_import_and_work_without_ipython():
    code = (
        "import sys; sys.modules['IPython'] = None\n"
        "from hypercore.book.claims import ClaimBook, exact\n"
        "b = ClaimBook(profile='full', device='cpu')\n"
        "b.record('x', paper='p', paper_claim='c', setting='s', expected='held',\n"
        "         result=exact(1, reference=2, direction='less'))\n"
        "b.check()\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=root
    )
    assert out.returncode == 0, out.stderr
    assert "held" in out.stdout
