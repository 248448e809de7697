"""Postfix-style values: time, rate and size, parsed exactly as Postfix users write them.

Public names: parse_time, parse_rate, parse_size, format_time, TIME_UNITS.

Contract:
- parse_time(key, value, default_unit) -> seconds (float). A value is a number (integer or
  decimal) with an optional one-letter unit s, m, h, d, w. A bare number takes the parameter's
  own default unit, as in Postfix: `maximal_queue_lifetime = 2` is two days because its default
  unit is d (postconf(5), "Time units"). Numbers (int/float) from TOML are bare numbers too.
- parse_rate(key, value) -> events per second. "N/s", "N/m", "N/h", "N/d", "N/w"; a bare number
  is per second.
- parse_size(key, value) -> bytes. A bare number is bytes; suffixes k, M, G are powers of 1000.
- Every failure raises ScenarioError naming the key, the value and the accepted forms.
Negative values are refused here; upper and lower bounds are the caller's business.
"""

from __future__ import annotations

import math
import re

from sim.errors import ScenarioError

TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_TIME = re.compile(rf"^\s*{_NUMBER}\s*([smhdw]?)\s*$")
_RATE = re.compile(rf"^\s*{_NUMBER}\s*(?:/\s*([smhdw]))?\s*$")
_SIZE = re.compile(rf"^\s*{_NUMBER}\s*([kKMG]?)[bB]?\s*$")
_SIZE_UNITS = {"": 1, "k": 1000, "K": 1000, "M": 1000**2, "G": 1000**3}


def _number(key: str, value: object, allowed: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(key, value, allowed)
    if isinstance(value, int) and abs(value) >= 2**1000:  # beyond any float: beyond every bound
        raise ScenarioError(key, value, allowed + "; this number is beyond any bound")
    if not math.isfinite(value):
        raise ScenarioError(key, value, allowed)
    if value < 0:
        raise ScenarioError(key, value, allowed)
    return float(value)


def parse_time(key: str, value: object, default_unit: str = "s") -> float:
    """Seconds for a Postfix time value; a bare number is in `default_unit`."""
    allowed = (f"a time like 300s, 5m, 2h, 5d or 1w (a bare number is in {default_unit!r}, "
               "as in Postfix)")
    if isinstance(value, str):
        m = _TIME.match(value)
        if not m:
            raise ScenarioError(key, value, allowed)
        return float(m.group(1)) * TIME_UNITS[m.group(2) or default_unit]
    return _number(key, value, allowed) * TIME_UNITS[default_unit]


def parse_rate(key: str, value: object) -> float:
    """Events per second for '10000/d' style rates; a bare number is per second."""
    allowed = "a rate like 10000/d, 500/h, 2/m or 0.5/s"
    if isinstance(value, str):
        m = _RATE.match(value)
        if not m:
            raise ScenarioError(key, value, allowed)
        return float(m.group(1)) / TIME_UNITS[m.group(2) or "s"]
    return _number(key, value, allowed)


def parse_size(key: str, value: object) -> float:
    """Bytes for '20k', '1.5M' or a bare number of bytes."""
    allowed = "a size in bytes like 20000, 20k or 1.5M"
    if isinstance(value, str):
        m = _SIZE.match(value)
        if not m:
            raise ScenarioError(key, value, allowed)
        return float(m.group(1)) * _SIZE_UNITS[m.group(2)]
    return _number(key, value, allowed)


def format_time(seconds: float) -> str:
    """Shortest exact Postfix-style spelling: 432000 -> '5d', 4200 -> '70m', 1.5 -> '1.5s'."""
    if seconds and float(seconds).is_integer():
        for unit in ("w", "d", "h", "m"):
            if seconds % TIME_UNITS[unit] == 0:
                return f"{int(seconds // TIME_UNITS[unit])}{unit}"
        return f"{int(seconds)}s"
    return f"{seconds:g}s"
