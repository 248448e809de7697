"""Times, rates and sizes: the one parser and the one formatter of relaysim's values.

Public names: parse_time, parse_rate, parse_size, format_time, format_rate, format_size,
TIME_UNITS.

Contract:
- parse_time(key, value, default_unit, never=False) -> seconds (float). A value is a number
  (integer or decimal) with an optional one-letter unit s, m, h, d, w, or several such parts
  each with its unit, largest first as Exim writes them ("1h30m", "21d2h", "5d19m59s"). A bare
  number takes the parameter's own default unit, as in Postfix: `maximal_queue_lifetime = 2`
  is two days because its default unit is d (postconf(5), "Time units"). Numbers (int/float)
  from TOML are bare numbers too. With never=True, "never" (or "inf") is infinity.
- parse_rate(key, value) -> events per second. "N/s", "N/m", "N/h", "N/d", "N/w"; a bare number
  is per second.
- parse_size(key, value) -> bytes. A bare number is bytes; suffixes k, M, G are powers of 1000.
- format_time(seconds) -> Postfix's spelling, one number and one unit, where the number stays
  short (below 100 hours, 1000 minutes or 10000 seconds: 432000 -> "5d", 4200 -> "70m", 4000
  -> "4000s"), else days, hours, minutes and seconds, each unit once (433199 -> "5d19m59s",
  432900 -> "5d15m", 1.5 -> "1.5s", 0 -> "0s"); infinity as "never".
- format_rate(per_s) -> per day ("2500/d", "43200/d" for 0.5/s) unless that is not exact;
  format_size(bytes) -> the shortest spelling ("20k", "1.5M", "123").
- Each formatter is exact: its parser reads the text back to the same float, and a value the
  user wrote comes back as written up to the choice of unit ("28d" stays "28d", "4w" becomes
  "28d"). Measured or derived values are rounded first: by the caller for times, by
  format_rate(per_s, digits) for rates.
- Every failure raises ScenarioError naming the key, the value and the accepted forms.
Negative values are refused here; upper and lower bounds are the caller's business. Postfix's
own main.cf spelling (one number, one letter) is read by sim.postfix.maincf as Postfix does.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

from sim.errors import ScenarioError

TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DAY = TIME_UNITS["d"]
_SHOWN_UNITS = ("d", "h", "m", "s")  # format_time's: Postfix's lifetimes are in days
_SHORT = {"d": math.inf, "h": 100, "m": 1000, "s": 10000}  # one unit below these numbers
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_TIME_PART = re.compile(rf"({_NUMBER})([smhdw])")
_TIME = re.compile(rf"^(?:{_NUMBER}[smhdw])+$|^({_NUMBER})$")
_RATE = re.compile(rf"^\s*({_NUMBER})\s*(?:/\s*([smhdw]))?\s*$")
_SIZE = re.compile(rf"^\s*({_NUMBER})\s*([kKMG]?)[bB]?\s*$")
_SIZE_UNITS = {"": 1, "k": 1000, "K": 1000, "M": 1000**2, "G": 1000**3}


def _number(key: str, value: object, allowed: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(key, value, allowed)
    if isinstance(value, int) and abs(value) >= 2**1000:  # beyond any float: beyond every bound
        raise ScenarioError(key, value, allowed, problem="beyond any bound")
    if not math.isfinite(value):
        raise ScenarioError(key, value, allowed)
    if value < 0:
        raise ScenarioError(key, value, allowed, problem="negative")
    return Decimal(repr(value) if isinstance(value, float) else value)


def parse_time(key: str, value: object, default_unit: str = "s", never: bool = False) -> float:
    """Seconds for a time value; a bare number is in `default_unit` (see the contract)."""
    allowed = (f"a time like 300s, 5m, 2h, 5d or 1h30m (a bare number is in {default_unit!r}, "
               "as in Postfix)" + (", or never" if never else ""))
    if isinstance(value, str):
        text = value.strip()
        if never and text in ("never", "inf"):
            return math.inf
        m = _TIME.match(text)
        if not m:
            raise ScenarioError(key, value, allowed)
        if m.group(1) is not None:
            return float(Decimal(m.group(1)) * TIME_UNITS[default_unit])
        parts = _TIME_PART.findall(text)
        units = [u for _, u in parts]
        if len(set(units)) < len(units) or units != sorted(units, key=lambda u: -TIME_UNITS[u]):
            raise ScenarioError(key, value, allowed, problem="units out of order or repeated")
        return float(sum(Decimal(n) * TIME_UNITS[u] for n, u in parts))
    return float(_number(key, value, allowed) * TIME_UNITS[default_unit])


def parse_rate(key: str, value: object) -> float:
    """Events per second for '10000/d' style rates; a bare number is per second."""
    allowed = "a rate like 10000/d, 500/h, 2/m or 0.5/s"
    if isinstance(value, str):
        m = _RATE.match(value)
        if not m:
            raise ScenarioError(key, value, allowed)
        return float(Decimal(m.group(1)) / TIME_UNITS[m.group(2) or "s"])
    return float(_number(key, value, allowed))


def parse_size(key: str, value: object) -> float:
    """Bytes for '20k', '1.5M' or a bare number of bytes."""
    allowed = "a size in bytes like 20000, 20k or 1.5M"
    if isinstance(value, str):
        m = _SIZE.match(value)
        if not m:
            raise ScenarioError(key, value, allowed)
        return float(Decimal(m.group(1)) * _SIZE_UNITS[m.group(2)])
    return float(_number(key, value, allowed))


def _plain(d: Decimal) -> str:
    """A Decimal without exponent or trailing zeros: 1E+1 -> '10', 1.50 -> '1.5'."""
    text = format(d.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_time(seconds: float) -> str:
    """Days, hours, minutes and seconds, exact (see the module contract)."""
    if seconds == math.inf:
        return "never"
    if seconds < 0:
        return "-" + format_time(-seconds)
    rest = Decimal(repr(float(seconds)))
    for unit in _SHOWN_UNITS:
        n, r = divmod(rest, TIME_UNITS[unit])
        if rest and not r and n < _SHORT[unit]:
            return f"{_plain(n)}{unit}"
    parts = []
    for unit in _SHOWN_UNITS:
        n, rest = divmod(rest, TIME_UNITS[unit]) if unit != "s" else (rest, 0)
        if n:
            parts.append(f"{_plain(n)}{unit}")
    return "".join(parts) or "0s"


def _shortest(value: float, units: dict[str, float], parse) -> str:
    """The shortest spelling '<number><unit>' that `parse(number, unit)` reads back exactly."""
    best = None
    for unit, size in units.items():
        for d in range(1, 18):
            text = _plain(Decimal(f"{value * size:.{d}g}")) if value else "0"
            if parse(text, unit) == value:
                if best is None or len(text + unit) < len(best):
                    best = text + unit
                break
    return best or repr(value)


def format_rate(per_s: float, digits: int | None = None) -> str:
    """A rate per day, as relaysim's scenarios write them ('2500/d', '43200/d' for 0.5/s),
    exact; in the unit with the shortest exact spelling when no per-day number of at most 12
    digits is exact; with `digits`, per day rounded to that many significant digits."""
    units = {f"/{u}": TIME_UNITS[u] for u in ("d", "h", "m", "s")}

    def parse(t, u):
        return float(Decimal(t) / units[u])

    day = _plain(Decimal(f"{per_s * DAY:.{digits or 12}g}"))
    if digits or parse(day, "/d") == per_s:
        return day + "/d"
    return _shortest(per_s, units, parse)


def format_size(size: float) -> str:
    """The shortest exact '20k', '1.5M', '1G' or bare-bytes spelling of a size."""
    return _shortest(size, {"": 1, "k": 1e-3, "M": 1e-6, "G": 1e-9},
                     lambda t, u: float(Decimal(t) * _SIZE_UNITS[u]))
