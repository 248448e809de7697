"""How many replications a setting needs: add seeds until the answer is sharp enough.

Public names: Precision, needed, parse_precision.

Contract:
- Precision(figure, target, min_seeds, max_seeds): run seeds of a setting until the 95 %
  interval of `figure` (a flattened summary key such as deferred_peak_messages) has a relative
  half-width (sim.studies.statistics.relative_half_width) of at most `target`, with at least
  min_seeds (>= 2) and at most max_seeds seeds.
- needed(values, p) looks at the first n values for n = min_seeds, min_seeds + 1, ... up to
  len(values) and returns the first n that is sharp enough, max_seeds when the cap is reached
  first, or None when more seeds are needed. It depends only on the values of the first seeds
  in seed order, never on which runs finished first or how many ran at once: the number of
  seeds a setting gets is the same on every backend, with any number of workers, resumed or not.
- parse_precision("2%") = 0.02, parse_precision("0.02") = 0.02.
Errors: ScenarioError (key --precision, --min-seeds or --max-seeds) for a target outside
(0, 1) or seed bounds that are not 2 <= min_seeds <= max_seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sim.errors import ScenarioError
from sim.studies.statistics import relative_half_width


@dataclass(frozen=True)
class Precision:
    """The stopping rule for --seeds auto (see the module contract)."""
    figure: str
    target: float
    min_seeds: int = 3
    max_seeds: int = 50

    def __post_init__(self):
        if not 2 <= self.min_seeds:
            raise ScenarioError("--min-seeds", self.min_seeds, "at least 2 (an interval needs "
                                "two values)")
        if self.max_seeds < self.min_seeds:
            raise ScenarioError("--max-seeds", self.max_seeds,
                                f"at least --min-seeds ({self.min_seeds})")
        if not 0 < self.target < 1:
            raise ScenarioError("--precision", self.target, "a relative half-width between 0 "
                                "and 100 %, e.g. 2%")


def needed(values: Sequence[float], p: Precision) -> int | None:
    """Seeds this setting needs, or None while more are needed (module contract)."""
    for n in range(p.min_seeds, min(len(values), p.max_seeds) + 1):
        if relative_half_width(values[:n]) <= p.target:
            return n
    return p.max_seeds if len(values) >= p.max_seeds else None


def parse_precision(text: str) -> float:
    """'2%' or '0.02' as a fraction."""
    t = str(text).strip()
    try:
        v = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise ScenarioError("--precision", text, "a relative half-width such as 2% or 0.02") \
            from None
    if not (math.isfinite(v) and 0 < v < 1):
        raise ScenarioError("--precision", text, "a relative half-width between 0 and 100 %, "
                            "e.g. 2%")
    return v
