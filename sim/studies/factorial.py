"""The full factorial of a sweep: varied scenario keys, their values, and every setting.

Public names: Factor, Setting, parse_vary, split_values, factorial.

Contract:
- parse_vary("KEY=V1,V2,...", parse_value) -> Factor(key, texts, values): the values are split
  on commas outside brackets and quotes (so `upstream.retry_list=[1m,5m],[2m]` is two values)
  and each is converted by parse_value, the same conversion `--set` applies (TOML for lists,
  tables and quoted strings, else the text as written).
- factorial(base, factors) -> [Setting]: every combination of the factors' values, the first
  factor varying slowest, each Setting carrying its index, its (key, text) pairs and its
  Scenario built by base.with_overrides(..., origin="--vary"), so every value is checked as
  `--set` checks it, including keys that a pasted main.cf set. Every setting's retry schedule
  is parsed too (Exim retry rules), so a bad setting is found before any run starts.
- A setting's seeds share its scenario's simulation.seed root (sim.studies.sweep.seed_list):
  settings that do not vary simulation.seed run on common random numbers.
Errors: ScenarioError (key `--vary`) for text without `=`, an empty key or value list, an empty
value, a repeated value or a key varied twice; the scenario's own ScenarioError for an unknown
key or a value the key does not allow.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sim.errors import ScenarioError
from sim.scenario import Scenario

USAGE = "KEY=V1,V2,... e.g. --vary upstream.maximal_queue_lifetime=1d,5d,30d"


@dataclass(frozen=True)
class Factor:
    """One varied key: its dotted name, the values as written and as parsed."""
    key: str
    texts: tuple[str, ...]
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Setting:
    """One combination of factor values and the scenario it gives."""
    index: int
    factors: tuple[tuple[str, str], ...]  # (key, value as written)
    scenario: Scenario

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.factors) or "base scenario"


def split_values(text: str) -> list[str]:
    """Split on commas that are not inside [...], {...} or quotes."""
    out, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur).strip())
    return out


def parse_vary(text: str, parse_value: Callable[[str], Any]) -> Factor:
    """Factor from one --vary argument (see the module contract)."""
    key, sep, rest = text.partition("=")
    key = key.strip()
    if not sep or not key or not all(key.split(".")):
        raise ScenarioError("--vary", text, USAGE)
    if not rest.strip():
        raise ScenarioError("--vary", text, f"at least one value after {key}= ({USAGE})")
    texts = split_values(rest)
    if "" in texts:
        raise ScenarioError("--vary", text, USAGE, problem="an empty value in the list")
    if len(set(texts)) < len(texts):
        twice = next(t for t in texts if texts.count(t) > 1)
        raise ScenarioError("--vary", text, "each value once", problem=f"{twice} is given twice")
    return Factor(key, tuple(texts), tuple(parse_value(t) for t in texts))


def factorial(base: Scenario, factors: Sequence[Factor]) -> list[Setting]:
    """Every combination of the factors' values as checked Settings (module contract)."""
    from sim.model.qmgr import schedule_params

    keys = [f.key for f in factors]
    for k in keys:
        if keys.count(k) > 1:
            raise ScenarioError("--vary", k, "each key in one --vary (list all its values there)",
                                problem="the key is varied twice")
    out = []
    combos = itertools.product(*(range(len(f.values)) for f in factors))
    for index, combo in enumerate(combos):
        pairs = tuple((f.key, f.texts[j]) for f, j in zip(factors, combo, strict=True))
        scen = base
        if factors:
            scen = base.with_overrides({f.key: f.values[j] for f, j in
                                        zip(factors, combo, strict=True)}, origin="--vary")
        for _, up, _ in scen.timeline():
            schedule_params(up)
        out.append(Setting(index, pairs, scen))
    return out
