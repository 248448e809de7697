"""Statistics over replications: seeds, means and 95 % Student-t intervals.

Public names: seed_list, mean_ci, t975, fmt_ci, relative_half_width, agree, ci_method,
paired, paired_row.

Contract:
- seed_list(root, n): n seeds from numpy SeedSequence(root).spawn(n), each child's
  generate_state(1)[0] as an int. The list for n is the first n of the list for any larger n,
  so adding replications keeps the earlier ones.
- mean_ci(values): mean and 95 % two-sided Student-t interval over the first axis (the seeds):
  t quantiles are tabulated for 1..30 degrees of freedom; beyond that the Cornish-Fisher
  expansion of the t quantile around the normal one (error below 1e-3). Fewer than two values
  give nan bounds. Works element-wise on arrays (seeds x anything). bounds=(low, high) is the
  range the quantity can take (None: unbounded): the interval is clipped to it, so an interval
  for a count, a duration or a share never goes below 0 (or above 100 %). The mean is not
  changed. ci_method(n, bounds) is the sentence that says so, for figures and READMEs.
- agree(values): True where every seed gives the same value (the interval is then a point,
  which says nothing about the spread of the model; fmt_ci says "every seed agrees").
- relative_half_width(values): the interval's half-width over |mean|; 0 when every value is
  the same, inf when the mean is 0 and the values differ or there are fewer than two.
- fmt_ci(values, fmt, unit, bounds=(0, None)): 'mean unit (95 % CI lo to hi)'; 'mean unit
  (every seed agrees)' when all values are equal; 'mean unit (95 % CI mean ± half)' when the
  interval rounds to one number at fmt; 'mean unit (one seed)'. Published numbers are counts,
  times and shares, hence the default bounds.
- paired(x, y): paired replications (one value per seed, the same seeds on both sides): the
  means of x and y and the mean difference y - x with its 95 % interval, {x, y, d, lo, hi};
  paired_row(label, p, fmt, rel) is its README table row: | label | x | y | d (lo to hi) |
  d / x |, the interval 'one seed' without one, the relative change '-' when x is 0.
Errors: ValueError from mean_ci for an empty list.
"""

from __future__ import annotations

import math

import numpy as np

# Two-sided 95 % Student-t quantiles t(0.975, df), df = 1..30.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
_Z975 = 1.959964


def t975(df: int) -> float:
    """Student-t 0.975 quantile with df degrees of freedom (see the module contract)."""
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_ci(values, bounds: tuple = (None, None)) -> tuple:
    """(mean, lo, hi): mean over the first axis and its 95 % t-interval, clipped to bounds
    but always holding the mean (nan with one value)."""
    v = np.asarray(values, dtype=float)
    if v.shape[0] == 0:
        raise ValueError("mean_ci needs at least one value")
    m = v.mean(axis=0)
    n = v.shape[0]
    if n < 2:
        nan = np.full_like(m, np.nan) if np.ndim(m) else math.nan
        return m, nan, nan
    half = t975(n - 1) * v.std(axis=0, ddof=1) / math.sqrt(n)
    low, high = bounds
    # clipped, but never past the mean (values a rounding error beyond a bound: every seed at
    # 100 % of a capacity)
    lo = m - half if low is None else np.maximum(m - half, np.minimum(low, m))
    hi = m + half if high is None else np.minimum(m + half, np.maximum(high, m))
    return m, lo, hi


def paired(x, y) -> dict:
    """{x, y, d, lo, hi}: the means of paired replications and y - x with its 95 % interval."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    d, lo, hi = mean_ci(y - x)
    return {"x": x.mean(), "y": y.mean(), "d": d, "lo": lo, "hi": hi}


def paired_row(label: str, p: dict, fmt: str, rel: str = ".1%") -> str:
    """paired()'s README table row (see the contract)."""
    ci = "one seed" if np.isnan(p["lo"]) else f"{p['lo']:+{fmt}} to {p['hi']:+{fmt}}"
    change = f"{p['d'] / p['x']:+{rel}}" if p["x"] else "-"
    return f"| {label} | {p['x']:{fmt}} | {p['y']:{fmt}} | {p['d']:+{fmt}} ({ci}) | {change} |"


def agree(values):
    """True where every seed (first axis) gives the same value; False for one seed."""
    v = np.asarray(values, dtype=float)
    return (v.shape[0] > 1) & np.all(v == v[:1], axis=0)


def ci_method(n: int, bounds: tuple = (0, None)) -> str:
    """How the intervals were computed, in one sentence (see the module contract)."""
    if n < 2:
        return "one seed: no interval"
    clip = {(0, None): ", clipped at 0", (0, 100): ", clipped to 0-100 %"}.get(tuple(bounds), "")
    return f"95 % t-interval of the mean over {n} seeds{clip}"


def relative_half_width(values) -> float:
    """Half-width of the 95 % interval over |mean| (see the module contract)."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return math.inf
    m, lo, hi = mean_ci(v)
    half = (hi - lo) / 2
    if half == 0:
        return 0.0
    return math.inf if m == 0 or not math.isfinite(half) else float(half / abs(m))


def fmt_ci(values, fmt: str = ",.0f", unit: str = "", bounds: tuple = (0, None)) -> str:
    """The mean over seeds with its 95 % interval, in words (see the module contract)."""
    v = np.asarray(values, dtype=float)
    m, lo, hi = mean_ci(v, bounds)
    u = f" {unit}" if unit else ""

    def num(x):  # no "-0" from float noise around zero
        text = f"{x:{fmt}}"
        return text[1:] if text.startswith("-") and not text.strip("-0.,") else text

    if np.isnan(lo):
        return f"{num(m)}{u} (one seed)"
    if agree(v):
        return f"{num(m)}{u} (every seed agrees)"
    if num(lo) == num(hi):
        return f"{num(m)}{u} (95 % CI {num(m)} ± {max(m - lo, hi - m):.1g})"
    return f"{num(m)}{u} (95 % CI {num(lo)} to {num(hi)})"


def seed_list(root: int, n: int) -> list[int]:
    """n independent seeds spawned from SeedSequence(root)."""
    return [int(c.generate_state(1)[0]) for c in np.random.SeedSequence(root).spawn(n)]
