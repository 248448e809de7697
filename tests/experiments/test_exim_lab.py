"""The real-Exim harness (experiments/exim_lab.py, validate_exim.py's log reading) on the saved
logs of the live runs in results/validation/exim/, and its configuration and trusted-configs
handling without Exim. The live quick run is in test_validate_exim.py.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
import exim_lab as el  # noqa: E402
import validate_exim as ve  # noqa: E402

SAVED = Path(__file__).resolve().parents[2] / "results" / "validation" / "exim"


def test_config_stays_on_loopback(tmp_path):
    text = el.config_text(tmp_path, 2525, 2526, el.RETRY_RULE)
    assert "local_interfaces = 127.0.0.1\n" in text
    assert "daemon_smtp_ports = 2525\n" in text
    # only example.test goes anywhere, and only to 127.0.0.1:<relay port>; the rest fails
    assert "domains = example.test\n  route_list = * 127.0.0.1\n" in text
    assert "port = 2526\n" in text
    assert "data = :fail: no delivery off this machine" in text
    assert "data = :blackhole:" in text  # the bounces to our senders
    assert f"* * {el.RETRY_RULE}\n" in text


def test_trusted_configs_entry_is_added_for_the_run_and_removed(tmp_path, monkeypatch):
    listing = tmp_path / "etc" / "exim4" / "trusted_configs"
    monkeypatch.setattr(el, "TRUSTED_CONFIGS", listing)
    monkeypatch.setattr(el, "_LOCK", tmp_path / "trusted.lock")
    config = tmp_path / "exim.conf"
    with el._trusted(config):
        assert listing.read_text() == f"{config}\n"
    assert not listing.exists() and not listing.parent.exists()  # made by us: gone again
    listing.parent.mkdir(parents=True)
    listing.write_text("/etc/exim4/other.conf\n")
    with el._trusted(config):
        assert listing.read_text().splitlines() == ["/etc/exim4/other.conf", str(config)]
    assert listing.read_text() == "/etc/exim4/other.conf\n"  # someone else's line stays


def test_trusted_configs_of_labs_running_at_once(tmp_path, monkeypatch):
    listing = tmp_path / "etc" / "exim4" / "trusted_configs"
    monkeypatch.setattr(el, "TRUSTED_CONFIGS", listing)
    monkeypatch.setattr(el, "_LOCK", tmp_path / "trusted.lock")
    first, second = el._trusted(tmp_path / "a.conf"), el._trusted(tmp_path / "b.conf")
    first.__enter__()
    second.__enter__()
    assert len(listing.read_text().splitlines()) == 2
    first.__exit__(None, None, None)  # the lab that created the file ends first
    assert listing.read_text() == f"{tmp_path / 'b.conf'}\n"
    second.__exit__(None, None, None)
    assert not listing.parent.exists()  # the last one out removes what the labs created


def test_read_mainlog_keeps_milliseconds():
    lines = el.read_mainlog(SAVED / "450" / "mainlog")
    assert lines and all(ln.pid > 0 for ln in lines)
    assert any(round(ln.t % 1, 3) not in (0.0,) for ln in lines)
    assert lines[0].text.startswith("exim 4.96 daemon started")


@pytest.fixture(scope="module")
def saved_450():
    attempts, other = ve.parse_mainlog(SAVED / "450" / "mainlog")
    runs = ve.queue_runs(el.read_mainlog(SAVED / "450" / "mainlog"))
    return attempts, other, runs


def test_queue_runs_are_on_the_whole_second_grid(saved_450):
    _, _, runs = saved_450
    origin = int(runs[0][1])
    assert len(runs) > 50
    for k, (_, start, end) in enumerate(runs):
        # run k starts within its second k * 10 (alarm() on whole seconds, a fork's drift)
        assert 0 <= start - origin - 10 * k < 1, (k, start - origin)
        assert end >= start


def test_first_attempt_on_arrival_then_only_in_queue_runs(saved_450):
    attempts, _, _ = saved_450
    received = {}
    for ln in el.read_mainlog(SAVED / "450" / "mainlog"):
        if (m := ve._ARRIVAL.match(ln.text)) and (k := ve._INDEX.search(m["msgid"] or "")):
            received[int(k.group(1))] = ln.t
    first: dict[int, ve.Attempt] = {}
    for a in attempts:
        if a.kind == "attempt" and a.outcome != "expired":
            if a.message not in first:
                first[a.message] = a
                # the delivery process forked on arrival reports within tens of ms
                assert a.run == -1 and 0 <= a.t - received[a.message] < 0.1, a
            else:
                assert a.run >= 0, a  # a retry belongs to a queue run
    assert sorted(first) == list(range(30))


def test_timeout_follows_the_deferral_of_the_same_process(saved_450):
    attempts, other, _ = saved_450
    rows = ve.attempt_rows(attempts, 0.0)
    expired = [r for r in rows if r["outcome"] == "expired"]
    assert len(expired) == 23 == other["bounce_messages"]
    by = {(r["message"], r["attempt"], r["outcome"]): r for r in rows}
    for r in expired:
        # the same attempt number as the deferral just before it, a millisecond or so later
        d = by[(r["message"], r["attempt"], "deferred")]
        assert 0 <= r["t_s"] - d["t_s"] < 0.01
    skips = Counter(a.kind for a in attempts)["skip"]
    assert skips > 0  # queue runs that found an address before its retry time


def test_g_rule_grows_from_the_shorter_gap():
    # message 1 of the saved 450 run fails at its arrival and in every queue run it is due:
    # the gaps follow F,2m,20s, then G,4m,30s,1.5 from min(predicted, actual) gap, then F,8m,1m
    rows = [r for r in ve.attempt_rows(ve.parse_mainlog(SAVED / "450" / "mainlog")[0], 0.0,
                                       ve.queue_runs(el.read_mainlog(SAVED / "450" /
                                                                     "mainlog")), 10)
            if r["message"] == 1 and r["outcome"] == "deferred"]
    runs = [r["run_t_s"] for r in rows[1:]]
    gaps = [b - a for a, b in zip(runs, runs[1:], strict=False)]
    # F,2m,20s five times; G: 30 s (the last gap 20 < 30), then 45 s (from 30) taken by the
    # run 50 s on; then 67 s from min(predicted 45, actual 50), taken 70 s on (growing from
    # the actual 50 s would give 75 s: the run 80 s on); F,8m,1m; and the ultimate timeout:
    # the first run after age 480 s tries it (30 s after the last) and bounces it
    assert gaps == [20, 20, 20, 20, 20, 30, 50, 70, 60, 60, 60, 30]
