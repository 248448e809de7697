"""Tests of the real-Postfix harness on captured log lines (the live run, which needs Postfix and
root, is in test_validate_postfix.py).

tests/data/postfix_sample.log holds real postlogd lines from Postfix 3.7.11 runs of
experiments/validate_postfix.py (upstream lines of the quick, 550 and outage scenarios, plus a
few relay smtpd rejects), trimmed to a handful of messages.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
import postfix_lab as pl  # noqa: E402
import validate_postfix as vp  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "postfix_sample.log"
YEAR = 2026
# floor(upstream qmgr start) of the quick run the first sample lines come from (meta.json).
QUICK_ORIGIN = dt.datetime(YEAR, 11, 25, 19, 19, 30).timestamp()


@pytest.mark.parametrize(("stamp", "expected"), [
    ("Nov 25 19:05:54", dt.datetime(YEAR, 11, 25, 19, 5, 54).timestamp()),
    ("Nov  5 09:05:54.25", dt.datetime(YEAR, 11, 5, 9, 5, 54).timestamp() + 0.25),
    ("2026-11-25T19:05:54.500000+00:00",
     dt.datetime(2026, 11, 25, 19, 5, 54, 500000, tzinfo=dt.UTC).timestamp()),
], ids=["postlogd-whole-seconds", "syslog-fraction-padded-day", "rfc3339"])
def test_parse_timestamp(stamp, expected):
    assert pl.parse_timestamp(stamp, YEAR) == pytest.approx(expected)


def test_read_log_splits_service_and_pid():
    lines = pl.read_log(SAMPLE, YEAR)
    assert lines, "sample log is empty"
    first = lines[0]
    assert (first.host, first.service) == ("upstream", "master")
    assert {"qmgr", "smtp", "cleanup", "smtpd"} <= {ln.service for ln in lines}
    assert all(ln.pid > 0 for ln in lines)


@pytest.fixture(scope="module")
def attempts():
    return pl.parse_maillog(SAMPLE, YEAR)


def test_attempts_are_numbered_per_message(attempts):
    seen: dict[str, int] = {}
    for a in attempts:
        if a.outcome == "expired":
            assert a.attempt == seen[a.queue_id], "expiry carries the attempt that triggered it"
            continue
        assert a.attempt == seen.get(a.queue_id, 0) + 1
        seen[a.queue_id] = a.attempt
        assert a.t_active <= a.t_done


def test_outcomes_cover_every_status(attempts):
    assert {a.outcome for a in attempts} >= {"sent", "deferred", "bounced", "expired"}


def test_message_index_from_message_id(attempts):
    injected = {a.message for a in attempts if a.message >= 0}
    assert 0 in injected
    # DSNs the upstream generates (null sender, discarded locally) are not injected mail.
    assert any(a.message == -1 and a.relay == "none" for a in attempts)


def test_quick_message4_schedule(attempts):
    # queue_run_delay 5s, backoff 5s..10s, lifetime 30s; deferred at t=4 -> mtime 9 -> scan 10.
    m4 = [a for a in attempts if a.message == 4 and a.queue_id == "84EDF20C65B"]
    rows = pl.attempt_table(m4, QUICK_ORIGIN)
    assert [(r["attempt"], r["t_s"], r["outcome"]) for r in rows] == [
        (1, 4.0, "deferred"), (2, 10.0, "deferred"), (3, 15.0, "deferred"),
        (4, 25.0, "deferred"), (5, 35.0, "deferred"), (5, 35.0, "expired")]


def test_retries_land_on_the_scan_grid(attempts):
    quick = [a for a in attempts if QUICK_ORIGIN <= a.t_active < QUICK_ORIGIN + 60]
    predicted = vp.grid_check(quick, vp.QUICK_TIMING, QUICK_ORIGIN)
    checked = [(int(a.t_active), p) for a, p in zip(quick, predicted, strict=True)
               if p is not None]
    assert checked and all(t == p for t, p in checked)


def test_site_level_deferrals_parse(attempts):
    reasons = [a.reason for a in attempts if a.outcome == "deferred" and a.relay == "none"]
    assert any("Connection refused" in r for r in reasons)


def test_relay_rejects():
    rejects = pl.relay_rejects(SAMPLE, YEAR)
    assert {r.code for r in rejects} == {450, 550}
    assert all(r.recipient.endswith("@example.test") and r.dsn in ("4.1.1", "5.1.1")
               for r in rejects)


def test_delays_parse(attempts):
    m4 = [a for a in attempts if a.queue_id == "84EDF20C65B"]
    first = m4[0]
    assert first.delays == (0.0029, 0.00038, 0.00056, 0.0054) and first.delay == 0.0092
    # a line with conn_use= before delay= (a reused connection) parses too
    assert all(a.delays is not None for a in attempts if a.outcome != "expired")
    assert all(a.delays is None for a in attempts if a.outcome == "expired")


def test_nondelivery_notices():
    ndn = pl.nondelivery_notices(SAMPLE, YEAR)
    assert ndn["84EDF20C65B"] == "CC7DD20C066"
    assert ndn["B784320C660"] == "CA43B20C066"


def _retry(t: float, attempt: int = 2) -> pl.Attempt:
    return pl.Attempt(0, "Q", attempt, t, t, "deferred", "4.1.1", "relay", "")


@pytest.mark.parametrize(("qstart", "actives", "origin"), [
    (100.3, [110.2, 120.9, 130.0], 100),
    (100.987, [111.0, 121.4, 131.2], 101),  # post_init ran in the next second
    (100.5, [], 100),  # no retries: the process start's second
    (100.2, [110.1, 121.1, 130.5], 100),  # a slow scan crossed into the next second once
], ids=["same-second", "next-second", "no-retries", "majority-wins"])
def test_scan_grid_origin(qstart, actives, origin):
    got, residues = pl.scan_grid_origin([_retry(t) for t in actives] + [_retry(105.5, 1)],
                                        qstart, 10)
    assert got == origin
    assert sum(residues.values()) == len(actives)


def test_scan_grid_origin_refuses_an_off_grid_run():
    with pytest.raises(ValueError, match="not on a grid"):
        pl.scan_grid_origin([_retry(105.0), _retry(115.0)], 100.0, 10)
