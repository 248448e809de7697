"""Real Postfix against relaysim (experiments/validate_postfix.py): compare() and its helpers on
small hand-made records, relaysim on a hand-written real run, and one live quick run.

The live run needs Postfix installed and root (Postfix's master starts as root and drops to
mail_owner); it is marked postfix and slow and skips with the reason otherwise. It takes about
a minute: six messages, queue_run_delay 5s, lifetime 30s.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
import validate_postfix as vp  # noqa: E402


def rows(*items):
    """(message, attempt, t_s, outcome) tuples as attempts.csv rows."""
    return [{"message": m, "attempt": n, "t_s": t, "outcome": o} for m, n, t, o in items]


# message 0 to an unknown user expires after its third attempt; message 1 is delivered
REAL = rows((0, 1, 4.0, "deferred"), (0, 2, 10.0, "deferred"), (0, 3, 20.0, "deferred"),
            (0, 3, 20.0, "expired"), (1, 1, 5.0, "sent"))


def test_compare_identical_is_clean():
    res = vp.compare(REAL, REAL)
    assert res["missing_in_sim"] == res["extra_in_sim"] == res["outcome_mismatches"] == 0
    assert res["abs_dt_max_s"] == 0.0
    assert res["messages_same_outcomes"] == res["messages_same_expiry"] == res["messages"] == 2
    assert res["differing_messages"] == []


def test_compare_first_attempt_within_the_logged_second():
    # real stamps are whole seconds rounded down: relaysim's exact arrival lies in [t, t + 1)
    sim = rows((0, 1, 4.73, "deferred"), (0, 2, 10.0, "deferred"), (0, 3, 20.0, "deferred"),
               (0, 3, 20.0, "expired"), (1, 1, 5.999, "sent"))
    res = vp.compare(REAL, sim)
    assert res["floor_equal"] == res["within_1s"] == 4
    assert res["dt_first_s"]["max"] == pytest.approx(0.999)
    assert res["dt_retry_s"]["max"] == 0.0


def test_compare_retry_one_scan_late():
    sim = rows((0, 1, 4.5, "deferred"), (0, 2, 20.0, "deferred"), (0, 3, 30.0, "deferred"),
               (0, 3, 30.0, "expired"), (1, 1, 5.5, "sent"))
    res = vp.compare(REAL, sim)
    assert res["dt_retry_s"]["min"] == res["dt_retry_s"]["max"] == 10.0
    assert res["within_1s"] == 2  # the two first attempts only
    assert res["messages_same_outcomes"] == 2  # same stories, other times


def test_compare_outcome_and_expiry_differ():
    # relaysim bounces message 1 and lets message 0 live one attempt longer
    sim = rows((0, 1, 4.5, "deferred"), (0, 2, 10.0, "deferred"), (0, 3, 20.0, "deferred"),
               (0, 4, 30.0, "deferred"), (0, 4, 30.0, "expired"), (1, 1, 5.5, "bounced"))
    res = vp.compare(REAL, sim)
    assert res["outcome_mismatches"] == 1
    assert res["missing_in_sim"] == 1  # the real expiry row after attempt 3
    assert res["extra_in_sim"] == 2  # attempt 4 and its expiry row
    assert res["messages_same_outcomes"] == 0
    assert res["messages_same_expiry"] == 1  # message 1 expired in neither
    assert {d["message"]: d["sim"] for d in res["differing_messages"]} == {
        0: "deferred deferred deferred deferred expired", 1: "bounced"}


def test_sim_records_split_expiry_and_number_attempts_by_time():
    attempts = {"message_id": np.array([1, 0, 0, 0]), "t_s": np.array([5.5, 20.0, 4.5, 10.0]),
                "outcome": np.array(["sent", "expired", "deferred", "deferred"])}
    got = vp.sim_records(SimpleNamespace(attempts=attempts))
    assert got == rows((0, 1, 4.5, "deferred"), (0, 2, 10.0, "deferred"),
                       (0, 3, 20.0, "deferred"), (0, 3, 20.0, "expired"), (1, 1, 5.5, "sent"))


@pytest.mark.parametrize(("t", "level"), [
    (3.9, 0), (4.0, 0), (4.5, 1), (10.0, 0), (10.2, 1), (19.9, 1), (20.0, 0), (25.0, 0)],
    ids=["before", "at-first-attempt", "deferred", "at-retry", "after-retry", "before-expiry",
         "at-expiry", "after-expiry"])
def test_deferred_level_open_intervals(t, level):
    # in the deferred queue strictly between attempts: at an attempt's own instant it is active
    assert vp.deferred_level(REAL, [t])[0] == level


def test_deferred_level_without_a_next_attempt_stays_deferred():
    assert vp.deferred_level(rows((0, 1, 4.0, "deferred")), [1e9])[0] == 1


def test_in_flight_scan_seconds_and_arrivals():
    got = vp.in_flight([9.5, 10.3, 11.3, 12.05, 12.2, 20.9], 10, [12.0])
    assert got.tolist() == [False, True, False, True, False, True]


def test_queue_error_judges_settled_samples():
    t = np.array([9.5, 10.3, 11.3, 20.9])
    real = np.array([4, 4, 2, 2])
    sim = np.array([4, 2, 2, 2])  # relaysim moved two messages at 10.0, Postfix after 10.3
    q = vp.queue_error(t, real, sim, vp.in_flight(t, 10, []))
    assert q["max_abs_error_share"] == 0.5
    assert q["max_abs_error_share_settled"] == 0.0
    assert q["samples_settled"] == 2 and q["samples_in_flight_differing"] == 1


def test_off_grid_retry_explained_by_a_late_finish():
    # 450 run, message 6: created in second 10, retried at 20; Postfix took it again at 40, not
    # 30: qmgr finished the attempt at 20 in second 21, so mtime = 21 + 11 = 32 > 30 + 1
    def att(n, t):
        return vp.pl.Attempt(6, "Q6", n, t, t, "deferred", "4.1.1", "relay", "")

    real = [att(1, 10.85), att(2, 20.9), att(3, 40.9)]
    predicted = vp.grid_check(real, pl_timing := dict(vp.pl.TIMING), 0.0)
    assert predicted == [None, 20.0, 30.0]
    assert vp.off_grid(real, predicted, pl_timing, 0.0) == [
        {"message": 6, "attempt": 3, "t_s": 40, "predicted_t_s": 30.0,
         "predicted_if_previous_finished_1s_later": 40.0}]


def test_arrivals_from_mail_from_plus_delays_a():
    injected = [{"message": "1", "t_s": "5.1", "t_mail_s": "5.102", "t_queued_s": "5.11"},
                {"message": "0", "t_s": "3.0", "t_mail_s": "", "t_queued_s": "3.01"}]
    detail = [{"message": "1", "attempt": "1", "outcome": "sent", "delays_a": "0.004"}]
    np.testing.assert_allclose(vp.arrivals(injected, detail), [3.01, 5.106])


META = {"scenario": {"name": "quick"}, "smtp_transaction_time_s": 0.004,
        "postconf": {"upstream": {**vp.QUICK_TIMING, "delay_warning_time": "0h",
                                  "smtp_destination_concurrency_limit": "20",
                                  "smtp_destination_recipient_limit": "50",
                                  "qmgr_message_active_limit": "20000"},
                     "relay": {"unknown_local_recipient_reject_code": "450"}},
        "events": []}


def test_sim_scenario_takes_postconf_events_and_one_sender_per_message():
    meta = {**META, "events": [
        {"event": "relay_stop", "t_s_begin": 15.2, "t_s": 16.4},
        {"event": "relay_start", "t_s_begin": 75.0, "t_s": 76.1},
        {"event": "fix", "t_s_begin": 90.0, "t_s": 92.5,
         "relay": {"unknown_local_recipient_reject_code": "550"}}]}
    injected = [{"message": "0", "recipient": "alice@example.test"},
                {"message": "1", "recipient": "unknown1@example.test"}]
    sc = vp.sim_scenario(meta, injected, np.array([2.5, 3.25]), 100)
    assert [s.arrivals for s in sc.senders] == [(2.5,), (3.25,)]
    assert [s.unknown_recipient_fraction for s in sc.senders] == [0.0, 1.0]
    assert (sc.upstream.queue_run_delay, sc.upstream.maximal_backoff_time) == (5, 10)
    assert sc.upstream.smtp_transaction_time == pytest.approx(0.004)
    o = sc.relay.outages[0]
    assert (o.start, o.start + o.duration) == pytest.approx((15.2, 76.1))
    assert sc.changes[0].at == 92.5
    assert sc.timeline()[1][2].unknown_local_recipient_reject_code == 550


def test_relaysim_reproduces_the_sampled_real_schedule():
    # message 4 of tests/data/postfix_sample.log (quick run): created in second 4, deferred by
    # the relay's 450 at 4, 10, 15, 25 and 35, expired after the attempt at 35
    # (test_postfix_lab.test_quick_message4_schedule reads the same from the log)
    injected = [{"message": "0", "recipient": "unknown4@example.test"}]
    sc = vp.sim_scenario(META, injected, np.array([4.543]), 60)
    got = vp.sim_records(vp.sim.simulate(sc, record_attempts=True))
    assert [(r["attempt"], r["t_s"], r["outcome"]) for r in got] == [
        (1, 4.543, "deferred"), (2, 10.0, "deferred"), (3, 15.0, "deferred"),
        (4, 25.0, "deferred"), (5, 35.0, "deferred"), (5, 35.0, "expired")]


# --- the live run ------------------------------------------------------------------------------

def _postfix_missing() -> str | None:
    for tool in ("postfix", "postconf", "postqueue"):
        if not (shutil.which(tool) or Path("/usr/sbin", tool).exists()):
            return f"{tool} binary not found: real-Postfix validation needs Postfix installed"
    if os.geteuid() != 0:
        return "Postfix's master must start as root (it drops to mail_owner); not root"
    return None


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    why = _postfix_missing()
    if why:
        pytest.skip(why)
    out = tmp_path_factory.mktemp("postfix")
    assert vp.main(["--quick", "--out", str(out)]) == 0
    return out / "quick"


@pytest.mark.postfix
@pytest.mark.slow
def test_quick_run_real_side(quick_run):
    with (quick_run / "attempts.csv").open() as f:
        real = list(csv.DictReader(f))
    assert list(real[0]) == ["message", "attempt", "t_s", "outcome"]
    assert {r["outcome"] for r in real} == {"sent", "deferred", "expired"}
    detail = list(csv.DictReader((quick_run / "attempts_detail.csv").open()))
    retries = [r for r in detail if r["predicted_t_s"]]
    explained = _late_finishes(quick_run)
    # the rule names the scan on relaysim's grid; on a busy machine the live qmgr's timer can
    # fire a second late and its grid stays shifted: a retry taken by a scan seen at such a
    # residue (scan_grid_residues, measured in the run) is still the rule
    residues = [float(k) for k in _meta(quick_run)["scan_grid_residues"]]
    shifts = {r - min(residues) for r in residues}
    assert retries and all(float(r["t_s"]) - float(r["predicted_t_s"]) in shifts
                           or (int(r["message"]), int(r["attempt"])) in explained
                           for r in retries)


def _meta(run) -> dict:
    return json.loads((run / "meta.json").read_text())


def _late_finishes(run) -> set:
    """(message, attempt) of real retries off the rule only because qmgr finished the previous
    attempt in the next second (README, 'What the model simplifies'): a timing effect of the
    live Postfix that relaysim does not model, so the comparison may miss on those messages."""
    meta = json.loads((run / "meta.json").read_text())
    return {(g["message"], g["attempt"]) for g in meta["off_grid_retries"]
            if g["t_s"] == g["predicted_if_previous_finished_1s_later"]}


@pytest.mark.postfix
@pytest.mark.slow
def test_quick_run_relaysim_meets_every_target(quick_run):
    s = json.loads((quick_run / "comparison.json").read_text())
    assert s["identity_ok"]
    late = {m for m, _ in _late_finishes(quick_run)}
    a, met = s["attempts"], s["targets_met"]
    if all(met.values()):
        return
    # The documented exception (README, 'What the model simplifies'): a live qmgr finishes an
    # attempt in the next second, its backoff counts from there, and the retry comes one scan
    # later than relaysim's. Only that may differ: retries at most one scan early in relaysim,
    # no other attempt apart by a second or more, and messages that end differently only where
    # the live run had such a late finish.
    meta = _meta(quick_run)
    scan = float(meta["postconf"]["upstream"]["queue_run_delay"].rstrip("s"))
    residues = [float(k) for k in meta["scan_grid_residues"]]
    scan += max(residues) - min(residues)  # a live timer's late start
    assert met["deferred_queue_within_5pct"] and met["counts_identical"], json.dumps(s, indent=1)
    # (after a live late finish, that message's later attempts may drift further)
    assert (late or -scan <= a["dt_retry_s"]["min"]) and a["dt_retry_s"]["max"] < 1
    assert a["dt_first_s"]["min"] >= 0 and a["dt_first_s"]["max"] < 1
    assert {d["message"] for d in a["differing_messages"]} <= late, json.dumps(s, indent=1)
    assert (quick_run / "README.md").exists()
    assert (quick_run.parent / "README.md").read_text().count("[quick](quick/README.md)") == 1
