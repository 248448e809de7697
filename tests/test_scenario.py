"""Scenario checks (sim.scenario) and reading a user's text file (sim.errors.read_text_file):
every key's bounds, the keys a study must give, names that stay folder names."""

import dataclasses
import math
import os
from pathlib import Path

import pytest

from sim.errors import ScenarioError, read_text_file
from sim.scenario import (
    INT_MAX,
    MAX_SAMPLES,
    RATE_MAX,
    SECTIONS,
    TIME_MAX,
    Greylisting,
    Outage,
    Scenario,
    Upstream,
    check_samples,
    no_effect,
)

BASE = {"simulation": {"duration": "1d"}, "senders": [{"rate": "1000/d"}]}


def build(**sections):
    return Scenario.from_dict({**BASE, **sections})


def error(**sections) -> ScenarioError:
    with pytest.raises(ScenarioError) as e:
        build(**sections)
    return e.value


def test_every_number_has_an_upper_bound():
    import dataclasses

    for cls in (*SECTIONS.values(), Greylisting, Outage):
        for f in dataclasses.fields(cls):
            m = f.metadata
            if m["kind"] in ("int", "float", "time", "rate", "size", "times"):
                assert m["max"] is not None and math.isfinite(m["max"]), (cls, f.name)
    assert (INT_MAX, TIME_MAX, RATE_MAX) == (2**31 - 1, 2**31 - 1, 1000)


@pytest.mark.parametrize(("section", "table", "key"), [
    ("relay", {"local_users": 10**21}, "relay.local_users"),
    ("upstream", {"qmgr_message_active_limit": 10**20}, "upstream.qmgr_message_active_limit"),
    ("senders", [{"rate": 1e12}], "senders[0].rate"),
    ("senders", [{"rate": "1" * 400 + "/d"}], "senders[0].rate"),
    ("senders", [{"rate": 10**400}], "senders[0].rate"),
    ("senders", [{"rate": "600/s"}, {"rate": "600/s"}], "senders.rate"),
    ("simulation", {"duration": "25000d"}, "simulation.duration"),
    ("simulation", {"duration": "1d", "sample_interval": "0.1s"}, "simulation.sample_interval"),
    ("upstream", {"mta": "list", "retry_list": []}, "upstream.retry_list"),
    ("upstream", {"mta": "list", "retry_list": ["0s"]}, "upstream.retry_list[0]"),
    ("upstream", {"unverified_recipient_reject_code": 200},
     "upstream.unverified_recipient_reject_code"),
    ("relay", {"outage_mtbf": "1s"}, "relay.outage_mtbf"),
    ("simulation", {"duration": "1d", "name": "../../escaped"}, "simulation.name"),
    ("simulation", {"duration": "1d", "name": "a\nb"}, "simulation.name"),
    ("senders", [{"rate": "1/s", "name": "\x1b[2J"}], "senders[0].name"),
], ids=["users-1e21", "active-limit-1e20", "rate-1e12", "rate-400-digits", "rate-10e400",
        "rate-total", "duration-68-years", "samples", "retry-list-empty", "retry-list-0s",
        "unverified-200", "mtbf-1s", "name-escapes", "name-newline", "label-escape"])
def test_out_of_bounds(section, table, key):
    e = error(**{section: table})
    assert e.key == key
    assert str(e).isprintable()


def test_samples_at_most_max_and_interval_at_most_duration():
    ok = build(simulation={"duration": f"{MAX_SAMPLES - 1}s", "sample_interval": "1s"})
    assert ok.simulation.sample_interval == 1
    long = build(simulation={"duration": "1h", "sample_interval": "2h"})  # a library caller
    with pytest.raises(ScenarioError, match="sample_interval"):
        check_samples(long)  # relaysim run


def test_greylisting_true_false_and_absent():
    assert build(relay={"greylisting": True}).relay.greylisting == Greylisting()
    assert build(relay={"greylisting": False}).relay.greylisting is None
    assert build().relay.greylisting is None


@pytest.mark.parametrize(("text", "key"), [
    ("", "simulation.duration"),
    ('[simulation]\nduration = "1d"\n', "senders"),
    ('[simulation]\nduration = "1d"\n[[senders]]\nprofile = "daily"\n', "senders[0].rate"),
    ('[simulation]\nduration = "1d"\n[[senders]]\nrate = 5\n[relay]\n'
     'outages = [{ start = "1h" }]\n', "relay.outages[0].duration"),
], ids=["empty", "no-senders", "no-rate", "outage-no-duration"])
def test_a_study_must_give_its_quantities(tmp_path, text, key):
    path = tmp_path / "s.toml"
    path.write_text(text)
    Scenario.from_toml(path)  # explain and library use keep the defaults
    with pytest.raises(ScenarioError) as e:
        Scenario.from_toml(path, require_study=True)
    assert e.value.key == key and "missing" in str(e.value)


def test_default_name_from_the_file_is_a_folder_name(tmp_path):
    path = tmp_path / "..my scenario!.toml"
    path.write_text('[simulation]\nduration = "1d"\n[[senders]]\nrate = 5\n')
    assert Scenario.from_toml(path).simulation.name == "my_scenario_"


def test_duplicate_key_is_named(tmp_path):
    path = tmp_path / "d.toml"
    path.write_text('[simulation]\nduration = "1d"\nduration = "2d"\n')
    with pytest.raises(ScenarioError, match="'duration' is set twice"):
        Scenario.from_toml(path)


def test_deep_nesting_is_one_error(tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text("a = " + "[" * 100000 + "]" * 100000 + "\n")
    with pytest.raises(ScenarioError, match="nested too deep"):
        Scenario.from_toml(path)


@pytest.mark.parametrize(("overrides", "key", "words"), [
    ({"upstream": "5"}, "upstream", "a [upstream] table"),
    ({"upstream.queue_run_delay.x": "5"}, "upstream.queue_run_delay.x", "single value"),
    ({"changes.0.at": "5h"}, "changes.0.at", "has no changes"),
    ({"senders.3.rate": "5/s"}, "senders.3.rate", "from 0 to 0"),
], ids=["section", "inside-a-value", "no-changes", "sender-index"])
def test_set_errors(overrides, key, words):
    with pytest.raises(ScenarioError) as e:
        build().with_overrides(overrides)
    assert e.value.key == key and words in str(e.value)


READ_PROBLEMS = {"directory": ": a folder; expected a regular text file",
                 "dev-zero": ": not a regular file;", "fifo": ": not a regular file;",
                 "binary": ": binary or UTF-16 (a NUL byte at offset 4);",
                 "utf16": ": binary or UTF-16", "latin1": ": not UTF-8 (byte 0xe9 at offset 5);",
                 "too-big": ": too big; expected a text file of at most 1000 bytes",
                 "nul-in-path": ": cannot be read (", "missing": ": no such file;"}


@pytest.mark.parametrize("kind", list(READ_PROBLEMS))
def test_read_text_file_refuses_what_is_not_a_small_utf8_file(tmp_path, kind):
    path = tmp_path / "f"
    if kind == "directory":
        path.mkdir()
    elif kind == "dev-zero":
        path = Path("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "binary":
        path.write_bytes(b"\x7fELF\x00\x01")
    elif kind == "utf16":
        path.write_bytes("queue_run_delay = 5m\n".encode("utf-16"))
    elif kind == "latin1":
        path.write_bytes(b"# caf\xe9\n")
    elif kind == "too-big":
        path.write_text("x" * 2000)
    elif kind == "nul-in-path":
        path = str(tmp_path / "a\0b")
    with pytest.raises(ScenarioError) as e:
        read_text_file(path, "relay.main_cf_file", limit=1000)
    assert e.value.key == "relay.main_cf_file" and str(e.value).isprintable()
    assert str(e.value).startswith("relay.main_cf_file = ") and READ_PROBLEMS[kind] in str(
        e.value)
    assert "not allowed" not in str(e.value)


@pytest.mark.parametrize(("table", "text"), [
    ({"upstream": {"maximal_queue_lifetme": "3d"}},
     "upstream.maximal_queue_lifetme = 3d: unknown key in [upstream] (did you mean "
     "'maximal_queue_lifetime'?); expected one of the "
     f"{len(dataclasses.fields(Upstream))} keys of [upstream] (relaysim explain "
     "-d lists them; README: scenario reference)"),
    ({"simulation": {"duraton": "3d"}},
     "simulation.duraton = 3d: unknown key in [simulation] (did you mean 'duration'?); "
     "expected one of name, duration, seed, sample_interval, initial_queue, queue_time, "
     "queue_mtimes"),
    ({"upstrem": {}}, "upstrem = [section]: unknown section (did you mean 'upstream'?); "
     "expected one of simulation, senders, upstream, relay, changes"),
    ({"upstream": {"maximal_queue_lifetime": "200d"}},
     "upstream.maximal_queue_lifetime = 200d: out of range; expected a value from 0 to 100d"),
    ({"upstream": {"maximal_queue_lifetime": "5x"}},
     "upstream.maximal_queue_lifetime = 5x: expected a time like 300s, 5m, 2h, 5d or 1h30m (a "
     "bare number is in 'd', as in Postfix)"),
], ids=["unknown-key-many", "unknown-key-few", "unknown-section", "out-of-range", "bad-time"])
def test_error_wording(table, text):
    """One line: the key, the value, what is wrong in plain words, what is allowed."""
    assert str(error(**table)) == text


def test_keys_of_another_mta_are_checked_and_warned_about():
    scen = build(upstream={"mta": "postfix", "exim_retry_rule": "F,2h,15m", "queuereturn": "3d"})
    assert no_effect(scen) == [
        "upstream.exim_retry_rule has no effect with upstream.mta = postfix (only exim reads "
        "it); checked all the same",
        "upstream.queuereturn has no effect with upstream.mta = postfix (only sendmail reads "
        "it); checked all the same"]
    assert no_effect(build(upstream={"mta": "exim", "exim_retry_rule": "F,2h,15m"})) == []
    assert no_effect(build()) == []
    exim = build(upstream={"mta": "exim", "maximal_queue_lifetime": "3d"})
    assert no_effect(exim) == ["upstream.maximal_queue_lifetime has no effect with "
                               "upstream.mta = exim (only postfix reads it); checked all the "
                               "same"]
    assert no_effect(scen.with_overrides({"upstream.mta": "sendmail"})) == [
        "upstream.exim_retry_rule has no effect with upstream.mta = sendmail (only exim reads "
        "it); checked all the same"]
    changed = build(upstream={"mta": "qmail"},
                    changes=[{"at": "1h", "upstream": {"lifetime": "2d"}}])
    assert no_effect(changed) == ["upstream.lifetime has no effect with upstream.mta = qmail "
                                  "(only list reads it); checked all the same"]
    with pytest.raises(ScenarioError) as e:  # malformed: an error whatever the MTA
        build(upstream={"mta": "postfix", "exim_retry_rule": "F,2x"})
    assert e.value.key == "upstream.exim_retry_rule"


def test_the_scenario_stores_what_the_user_wrote():
    """to_dict (summary.json) spells values with sim.units' formatter: as written."""
    scen = build(simulation={"duration": "28d"}, senders=[{"rate": "2500/d",
                                                           "message_size": "1.5M"}],
                 upstream={"maximal_backoff_time": "4000s", "queue_run_delay": "1000s"},
                 changes=[{"at": "21d2h", "relay": {"local_users": 5}}])
    d = scen.to_dict()
    assert d["simulation"]["duration"] == "28d" and d["senders"][0]["rate"] == "2500/d"
    assert d["senders"][0]["message_size"] == "1.5M" and d["senders"][0]["stop"] == "never"
    assert d["upstream"]["maximal_backoff_time"] == "4000s"
    assert d["upstream"]["queue_run_delay"] == "1000s" and d["changes"][0]["at"] == "21d2h"
    assert Scenario.from_dict(d) == scen


def test_read_text_file_reads_utf8_with_or_without_a_byte_order_mark(tmp_path):
    path = tmp_path / "main.cf"
    path.write_bytes("\ufeffmyhostname = é\n".encode())
    assert read_text_file(path, "k") == "myhostname = é\n"
