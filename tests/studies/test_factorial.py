"""sim.studies.factorial: --vary parsing, the full factorial's order, checks before any run."""

import pytest

from sim import Scenario, ScenarioError
from sim.cli import _set_value
from sim.studies.factorial import factorial, parse_vary, split_values


def _base():
    return Scenario.from_dict({
        "simulation": {"duration": "1d", "seed": 7},
        "upstream": {"main_cf": "maximal_queue_lifetime = 2\nminimal_backoff_time = 600s\n"},
        "relay": {"unknown_local_recipient_reject_code": 450}})


def _as_is(text):
    return text


@pytest.mark.parametrize("text, parts", [
    ("1d,5d", ["1d", "5d"]),
    (" 1d , 5d ", ["1d", "5d"]),
    ("[1m,5m],[2m]", ["[1m,5m]", "[2m]"]),
    ('"a,b",c', ['"a,b"', "c"]),
    ("450", ["450"]),
], ids=["plain", "spaces", "lists", "quoted", "one"])
def test_split_values(text, parts):
    assert split_values(text) == parts


def test_factorial_first_key_slowest_and_values_applied():
    fs = [parse_vary("upstream.maximal_queue_lifetime=1d,5d", _as_is),
          parse_vary("relay.unknown_local_recipient_reject_code=450,550,551", _as_is)]
    settings = factorial(_base(), fs)
    assert [s.index for s in settings] == list(range(6))
    assert [s.factors for s in settings][:4] == [
        (("upstream.maximal_queue_lifetime", "1d"),
         ("relay.unknown_local_recipient_reject_code", "450")),
        (("upstream.maximal_queue_lifetime", "1d"),
         ("relay.unknown_local_recipient_reject_code", "550")),
        (("upstream.maximal_queue_lifetime", "1d"),
         ("relay.unknown_local_recipient_reject_code", "551")),
        (("upstream.maximal_queue_lifetime", "5d"),
         ("relay.unknown_local_recipient_reject_code", "450"))]
    assert settings[4].scenario.upstream.maximal_queue_lifetime == 5 * 86400
    assert settings[4].scenario.relay.unknown_local_recipient_reject_code == 550
    # a key the pasted main.cf set is varied like any other; the rest of main.cf stays
    assert all(s.scenario.upstream.minimal_backoff_time == 600 for s in settings)
    assert settings[0].scenario.origins["upstream.maximal_queue_lifetime"] == "--vary"


def test_a_bare_number_takes_the_parameters_own_unit():
    (s,) = factorial(_base(), [parse_vary("upstream.maximal_queue_lifetime=3", _as_is)])
    assert s.scenario.upstream.maximal_queue_lifetime == 3 * 86400


def test_no_factor_is_the_base_scenario():
    (s,) = factorial(_base(), [])
    assert s.scenario == _base() and s.factors == () and s.label == "base scenario"


@pytest.mark.parametrize("text, needle", [
    ("upstream.maximal_queue_lifetime", "KEY=V1,V2"),
    ("=1d,2d", "KEY=V1,V2"),
    ("upstream.maximal_queue_lifetime=", "at least one value"),
    ("upstream.maximal_queue_lifetime=1d,,2d", "an empty value in the list"),
    ("upstream.maximal_queue_lifetime=1d,1d", "each value once"),
], ids=["no-equals", "no-key", "empty-list", "empty-value", "repeated"])
def test_bad_vary_text(text, needle):
    with pytest.raises(ScenarioError, match=needle) as e:
        parse_vary(text, _as_is)
    assert e.value.key == "--vary"


@pytest.mark.parametrize("vary, key", [
    ("upstream.maximal_queue_lifetme=1d,2d", "maximal_queue_lifetime"),  # did-you-mean
    ("relay.unknown_local_recipient_reject_code=450,abc", "unknown_local_recipient_reject_code"),
    ('upstream.exim_retry_rule="F,2h,15m","G,bogus"', "exim_retry_rule"),
], ids=["unknown-key", "bad-value", "bad-exim-rule"])
def test_every_setting_is_checked_before_any_run(vary, key):
    base = _base() if "exim" not in vary else _base().with_overrides({"upstream.mta": "exim"})
    with pytest.raises(ScenarioError) as e:
        factorial(base, [parse_vary(vary, _set_value)])
    assert key in str(e.value)


def test_quoted_values_keep_their_commas():
    base = _base().with_overrides({"upstream.mta": "exim"})
    a, b = factorial(base, [parse_vary('upstream.exim_retry_rule="F,2h,15m","F,4d,1h"',
                                       _set_value)])
    assert (a.scenario.upstream.exim_retry_rule, b.scenario.upstream.exim_retry_rule) == (
        "F,2h,15m", "F,4d,1h")


def test_a_key_varied_twice_is_an_error():
    fs = [parse_vary("upstream.maximal_queue_lifetime=1d", _as_is),
          parse_vary("upstream.maximal_queue_lifetime=2d", _as_is)]
    with pytest.raises(ScenarioError, match="each key in one --vary"):
        factorial(_base(), fs)
