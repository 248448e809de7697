"""sim.studies.statistics: intervals that respect the quantity, and words for degenerate ones."""

import math

import numpy as np
import pytest

from sim.studies import statistics
from sim.studies.statistics import agree, ci_method, fmt_ci, mean_ci


def test_bounds_clip_the_interval_not_the_mean():
    counts = [0.0, 0.0, 0.0, 9.0]  # t-interval 2.25 ± 7.16 would go below zero
    m, lo, hi = mean_ci(counts, bounds=(0, None))
    assert m == 2.25 and lo == 0 and hi == pytest.approx(2.25 + 3.182 * 4.5 / 2)
    m, lo, hi = mean_ci(np.array([[99.0, 1.0], [100.0, 3.0]]), bounds=(0, 100))
    assert hi[0] == 100 and lo[0] < 99.5 and lo[1] < 2 < hi[1]
    assert mean_ci(counts)[1] < 0  # unbounded by default


def test_fmt_ci_never_prints_a_negative_count():
    assert fmt_ci([0.0, 0.0, 0.0, 9.0]) == "2 (95 % CI 0 to 9)"


@pytest.mark.parametrize("values, text", [
    ([37.0, 37.0, 37.0, 37.0, 37.0], "37 (every seed agrees)"),
    ([1.2, 1.2001, 1.2002, 1.2001, 1.2], "1.2 h (95 % CI 1.2 ± 0.0001)"),
    ([1.0, 3.0], "2.0 h (95 % CI 0.0 to 14.7)"),
    ([4.0], "4.0 h (one seed)"),
], ids=["identical", "rounds-to-one-number", "wide", "one-seed"])
def test_fmt_ci_words(values, text):
    fmt = ",.0f" if text.startswith("37") else ".1f"
    assert fmt_ci(values, fmt, "" if fmt == ",.0f" else "h") == text


def test_agree_is_elementwise_and_false_for_one_seed():
    assert list(agree(np.array([[1.0, 2.0], [1.0, 3.0]]))) == [True, False]
    assert not agree([5.0])


@pytest.mark.parametrize("n, bounds, text", [
    (5, (0, None), "95 % t-interval of the mean over 5 seeds, clipped at 0"),
    (7, (0, 100), "95 % t-interval of the mean over 7 seeds, clipped to 0-100 %"),
    (3, (None, None), "95 % t-interval of the mean over 3 seeds"),
    (1, (0, None), "one seed: no interval"),
], ids=["counts", "percent", "unbounded", "one-seed"])
def test_ci_method_says_how(n, bounds, text):
    assert ci_method(n, bounds) == text


def test_one_seed_has_no_bounds():
    m, lo, hi = mean_ci([3.0], bounds=(0, None))
    assert m == 3 and math.isnan(lo) and math.isnan(hi)


def test_paired_difference_and_its_row():
    p = statistics.paired([10.0, 12.0, 14.0], [11.0, 14.0, 17.0])
    assert (p["x"], p["y"], p["d"]) == (12.0, 14.0, 2.0)
    half = statistics.t975(2) * 1.0 / 3 ** 0.5  # differences 1, 2, 3: sd 1
    assert p["lo"] == pytest.approx(2 - half) and p["hi"] == pytest.approx(2 + half)
    assert statistics.paired_row("attempts", p, ".1f") == (
        f"| attempts | 12.0 | 14.0 | +2.0 ({p['lo']:+.1f} to {p['hi']:+.1f}) | +16.7% |")
    one = statistics.paired([0.0], [3.0])
    assert statistics.paired_row("x", one, ".0f", ".2%") == "| x | 0 | 3 | +3 (one seed) | - |"


def test_mean_ci_holds_the_mean_of_values_a_rounding_error_past_a_bound():
    v = np.full((5, 1), 100.0 + 1e-12)
    m, lo, hi = mean_ci(v, bounds=(0, 100))
    assert lo <= m <= hi
