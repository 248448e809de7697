"""sim.units: the one parser and formatter of times, rates and sizes; every spelling the
formatter writes reads back to the same float, and what a user writes comes back as written."""

import math

import pytest

from sim.errors import ScenarioError
from sim.units import format_rate, format_size, format_time, parse_rate, parse_size, parse_time

DAY = 86400


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (299, "299s"), (4000, "4000s"), (4200, "70m"), (36 * 3600, "36h"),
    (12345, "3h25m45s"), (433199, "5d19m59s"), (432900, "5d15m"), (-60, "-1m"),
    (28 * DAY, "28d"), (100 * DAY, "100d"), (1.5, "1.5s"), (90.1, "1m30.1s"),
    (math.inf, "never"),
], ids=["zero", "seconds", "postfix-default", "minutes", "hours", "compound", "days",
        "not-7215m", "negative", "days-not-weeks", "many-days", "fraction", "fraction-exact",
        "never"])
def test_format_time(seconds, text):
    assert format_time(seconds) == text


@pytest.mark.parametrize("text, default_unit, seconds", [
    ("21d2h", "s", 21 * DAY + 7200), ("1h30m", "s", 5400), ("5d19m59s", "s", 433199),
    ("2", "d", 2 * DAY), (2, "d", 2 * DAY), (0.1, "d", 8640), ("1.5h", "s", 5400),
    ("4w", "s", 28 * DAY),
], ids=["qshape-at", "exim-style", "explain-output", "bare-default-unit", "toml-int",
        "toml-float-exact", "decimal", "weeks"])
def test_parse_time(text, default_unit, seconds):
    assert parse_time("k", text, default_unit) == seconds


@pytest.mark.parametrize("text", ["1m1h", "1h1h", "1h 30m", "5x", "-1s", "never", ""],
                         ids=["out-of-order", "repeated", "space", "unit", "negative",
                              "never-not-allowed", "empty"])
def test_parse_time_refuses(text):
    with pytest.raises(ScenarioError, match=r"^k = .*expected a time like"):
        parse_time("k", text)


def test_never_only_where_allowed():
    assert parse_time("k", "never", never=True) == math.inf
    assert format_time(parse_time("k", "never", never=True)) == "never"


@pytest.mark.parametrize("per_s, text", [
    (2500 / DAY, "2500/d"), (10000 / DAY, "10000/d"), (0.5, "43200/d"), (1000.0, "86400000/d"),
    (1 / 7, "8.571428571428571/m"),
], ids=["per-day", "default", "per-second", "ceiling", "no-exact-per-day"])
def test_format_rate(per_s, text):
    assert format_rate(per_s) == text
    assert parse_rate("k", text) == per_s


def test_format_rate_of_a_derived_value_rounds():
    assert format_rate(1000 / DAY * 0.3, 6) == "300/d"
    assert format_rate(1 / 7, 6) == "12342.9/d"


@pytest.mark.parametrize("size, text", [(20000.0, "20k"), (1.5e6, "1.5M"), (1e9, "1G"),
                                        (123.0, "123"), (1234567.0, "1234567")],
                         ids=["k", "M", "G", "bytes", "not-shorter"])
def test_format_size(size, text):
    assert format_size(size) == text
    assert parse_size("k", text) == size


@pytest.mark.parametrize("value", [0.1 + 0.2, 2**31 - 1, 1e-5, 86399.999, 7 * DAY + 0.25],
                         ids=["float-noise", "time-max", "tiny", "almost-a-day", "quarter"])
def test_format_time_reads_back_exactly(value):
    assert parse_time("k", format_time(value)) == value
