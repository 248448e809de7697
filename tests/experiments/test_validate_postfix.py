"""Real Postfix against relaysim (experiments/validate_postfix.py): compare() and its helpers on
small hand-made records, relaysim on a hand-written real run, saved live quick runs with the
live qmgr's own timing effects (tests/data/postfix_live: a late scan timer, attempts finished
in the next second), a saved live run with the upstream's soft_bounce = yes (relaysim's
attempts and maillog against it), and one live quick run.

The live run needs Postfix installed and root (Postfix's master starts as root and drops to
mail_owner); it is marked postfix and slow and skips with the reason otherwise. It takes about
a minute: six messages, queue_run_delay 5s, lifetime 30s.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import sys
import warnings
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
    # in the logged seconds; each scan at the phase its loop last woke at (the previous
    # attempt's end: qmgr_timer_phase), so after the second, never on it
    got = vp.sim_records(vp.sim.simulate(sc, record_attempts=True))
    assert [(r["attempt"], math.floor(r["t_s"]), r["outcome"]) for r in got] == [
        (1, 4, "deferred"), (2, 10, "deferred"), (3, 15, "deferred"),
        (4, 25, "deferred"), (5, 35, "deferred"), (5, 35, "expired")]
    assert got[0]["t_s"] == 4.543 and all(r["t_s"] % 1 > 0 for r in got[1:])


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


def _live_report(run) -> str:
    """What the live Postfix's own timing did in a run (for the test's output)."""
    s = json.loads((run / "comparison.json").read_text())
    live = s["live_effects"]
    slips = ", ".join(f"{g['slip_s']:g} s from t_s {g['t_s']:g}" for g in live["scan_slips"])
    return (f"live qmgr scan timer slips: {slips or 'none'}; messages compared only up to a "
            f"live effect: {len(live['diverged_messages'])} "
            f"({live['rows_compared']} of {live['rows_compared'] + live['rows_left_out']} rows "
            "compared)")


@pytest.mark.postfix
@pytest.mark.slow
def test_quick_run_real_side(quick_run):
    with (quick_run / "attempts.csv").open() as f:
        real = list(csv.DictReader(f))
    assert list(real[0]) == ["message", "attempt", "t_s", "outcome"]
    assert {r["outcome"] for r in real} == {"sent", "deferred", "expired"}
    detail = vp._read_csv(quick_run / "attempts_detail.csv")
    retries = [r for r in detail if r["predicted_t_s"]]
    explained = _late_finishes(quick_run)
    # Postfix's rule on the live qmgr's own scan grid (live_scans: a late timer shifts it)
    # names the scan of every retry, but where qmgr finished the previous attempt a second late
    assert retries and all(float(r["scan_t_s"]) == float(r["predicted_t_s"])
                           or (int(r["message"]), int(r["attempt"])) in explained
                           for r in retries), _live_report(quick_run)
    slips = _meta(quick_run)["scan_slips"]
    assert all(g["slip_s"] > 0 for g in slips)  # the origin is the first scan's grid
    if slips or explained:
        warnings.warn(_live_report(quick_run), stacklevel=1)


def _meta(run) -> dict:
    return json.loads((run / "meta.json").read_text())


def _late_finishes(run) -> set:
    """(message, attempt) of real retries off the rule only because qmgr finished the previous
    attempt in the next second (README, 'What the model simplifies'): a timing effect of the
    live Postfix that relaysim does not model, so the comparison may miss on those messages."""
    meta = json.loads((run / "meta.json").read_text())
    return {(g["message"], g["attempt"]) for g in meta["off_grid_retries"]
            if g["t_s"] == g["predicted_if_previous_finished_1s_later"]}


def _check_against_relaysim(run: Path) -> dict:
    """Every target met; or, where the live qmgr's own timing (a late scan timer, an attempt
    finished in the next second) left its frame, every target met on what it leaves
    comparable, and only on messages where such an effect was seen. Returns the summary."""
    s = json.loads((run / "comparison.json").read_text())
    assert s["identity_ok"]
    if all(s["targets_met"].values()):
        assert not s["live_effects"]["scan_slips"]
        return s
    live = s["live_effects"]
    report = _live_report(run) + "\n" + json.dumps(s, indent=1)
    assert live["diverged_messages"], report  # a miss with no live effect to explain it
    assert all(s["targets_met_apart_from_live_effects"].values()), report
    # what is left out is only what follows a live effect: every first attempt, and every
    # attempt of a message up to its effect, is still compared exactly
    a = s["attempts"]
    # (a message whose effect came after its first attempt adds nothing beyond that attempt,
    # seen in CI: an effect after attempt 1)
    assert live["rows_compared"] >= a["dt_first_s"]["n"]
    assert {d["message"] for d in a["differing_messages"]} <= {
        d["message"] for d in live["diverged_messages"]}, report
    return s


@pytest.mark.postfix
@pytest.mark.slow
def test_quick_run_relaysim_meets_every_target(quick_run):
    _check_against_relaysim(quick_run)
    assert (quick_run / "README.md").exists()
    assert (quick_run.parent / "README.md").read_text().count("[quick](quick/README.md)") == 1


# --- saved live runs with the live effects (tests/data/postfix_live; no Postfix needed) ------

LIVE = Path(__file__).resolve().parents[1] / "data" / "postfix_live"


@pytest.fixture(scope="module")
def saved_runs(tmp_path_factory):
    """The saved quick runs, re-analysed from their logs (--compare-only) in a copy."""
    out = tmp_path_factory.mktemp("saved")
    runs = {}
    for name in ("late_finish", "scan_slip", "scan_slip_4s"):
        shutil.copytree(LIVE / name, out / name / "quick")
        assert vp.main(["--compare-only", "--out", str(out / name), "quick"]) == 0
        runs[name] = out / name / "quick"
    return runs


def test_saved_450_run_differs_only_where_the_live_loop_woke_unseen(tmp_path):
    # the 450 run of 2026-11-25 (tests/data/postfix_live/README.md): with qmgr's timer phase
    # modelled, every attempt lands in its logged second except message 6's, whose attempt 2
    # qmgr finished in the next second (a wake-up relaysim does not model); it is the one
    # message left out of the frame, and everything else meets every target
    shutil.copytree(LIVE / "unseen_wake_450", tmp_path / "450")
    assert vp.main(["--compare-only", "--out", str(tmp_path), "450"]) == 0
    s = json.loads((tmp_path / "450" / "comparison.json").read_text())
    assert [d["message"] for d in s["attempts"]["differing_messages"]] == [6]
    live = {d["message"]: d for d in s["live_effects"]["diverged_messages"]}
    assert live[6]["after_attempt"] == 2 and "a second later" in live[6]["cause"]
    assert all(s["targets_met_apart_from_live_effects"].values())
    assert not s["targets_met"]["outcomes_identical"]


def test_saved_scan_slip_is_measured_and_compared_in_the_live_grid(saved_runs):
    # quick run whose qmgr was stopped (SIGSTOP) for 1.5 s at 22.5 s after its start: its
    # deferred-scan timer fired a second late and every later scan with it. The old rule took
    # the t_s origin from the most common residue (the late one) and failed both live tests.
    run = saved_runs["scan_slip"]
    meta = _meta(run)
    assert meta["scan_slips"] == [{"t_s": 21, "slip_s": 1}]
    assert [g["t_s"] for g in meta["scans"]] == [10, 15, 21, 26, 31, 36, 41]
    assert meta["off_grid_retries"] == []  # Postfix's rule on the live grid names every scan
    s = _check_against_relaysim(run)
    assert not s["targets_met"]["attempts_in_the_logged_second"]  # the slip is there
    assert {d["message"]: d["after_attempt"] for d in s["live_effects"]["diverged_messages"]} \
        == {1: 3, 4: 4, 5: 4}
    assert s["live_effects"]["rows_compared"] == 14


def test_saved_scan_slip_of_4s_changes_stories_only_after_it(saved_runs):
    # qmgr stopped for 6.2 s from 17.8 s: its timer fired 4 s late at 24 (relaysim's 20). The
    # old rule refused the run (most common residue 4: "not on a grid"); now two messages
    # expire at another attempt than relaysim's, both after the late scan
    run = saved_runs["scan_slip_4s"]
    assert _meta(run)["scan_slips"] == [{"t_s": 24, "slip_s": 4}]
    s = _check_against_relaysim(run)
    assert {d["message"] for d in s["attempts"]["differing_messages"]} == {1, 5}
    assert {d["message"]: d["after_attempt"] for d in s["live_effects"]["diverged_messages"]} \
        == {1: 3, 4: 4, 5: 4}


def test_saved_late_finish_leaves_the_queue_comparable(saved_runs):
    # natural run (no signal): two attempts of the scan at 10 finished in second 11, a third
    # message's next retry shows that qmgr finished it late too; relaysim then expired one
    # message a scan earlier and the old test failed the deferred-queue target (66.7 %)
    s = _check_against_relaysim(saved_runs["late_finish"])
    assert not s["targets_met"]["deferred_queue_within_5pct"]
    assert s["live_effects"]["queue"]["max_abs_error_share_settled"] == 0.0
    assert s["live_effects"]["scan_slips"] == []
    assert {d["message"] for d in s["live_effects"]["diverged_messages"]} == {1, 4, 5}


def scans(*seconds, r=5):
    return vp.live_scans(seconds, r)


def test_live_scans_merge_a_straddled_second_and_measure_slips():
    got = scans(10, 15, 16, 21, 26.5, 31)
    assert [(g["t"], g["last"], g["nominal"], g["slip_s"]) for g in got] == [
        (10, 10, 10, 0), (15, 16, 15, 0), (21, 21, 20, 1), (26, 26, 25, 1), (31, 31, 30, 1)]


@pytest.mark.parametrize(("x", "scan"), [
    (3, 5), (5, 5), (6, 10), (10, 10), (11, 10), (12, 15), (16, 21), (17, 21), (30, 31),
    (40, 41)], ids=["before-first-grid", "on-grid-before-first", "first-seen", "at-first",
                    "straddled-second", "unseen-between", "late-firing-not-20",
                    "late-firing", "after-last", "beyond"])
def test_next_live_scan_counts_the_scans_that_took_nothing(x, scan):
    # seen in the log: the scan of 10 (its files in seconds 10 and 11) and a scan at 21; the
    # timer ran every 5 s from its last firing: 15 took nothing, then it fired late at 21 (not
    # 20), so nothing ran between 16 and 21
    live = scans(10, 11, 21)
    assert vp._next_live_scan(live, 5, x) == scan


def _rows(*items):
    """attempts_detail-like rows: (message, attempt, t_s, outcome, t_done_s, scan_t_s, slip)."""
    return [{"message": str(m), "attempt": str(n), "t_s": str(t), "outcome": o,
             "t_done_s": str(d), "scan_t_s": "" if s is None else str(s),
             "scan_slip_s": "" if s is None else str(sl)}
            for m, n, t, o, d, s, sl in items]


def test_live_effects_a_late_scan_uses_postfix_rule_on_relaysim_grid():
    # the live timer fired 2 s late at 7 and stayed late (scans 7, 12, 17, ...). Message 0,
    # created at 1: retried at 5 (on relaysim's grid), then mtime = 5 + clamp(4) = 10, taken
    # by the live scan at 12; relaysim's rule: the first k * 5 with 10 <= scan + 1 is 10.
    timing = {"queue_run_delay": "5s", "minimal_backoff_time": "5s",
              "maximal_backoff_time": "10s"}
    detail = _rows((0, 1, 1, "deferred", 1, None, 0), (0, 2, 5, "deferred", 5, 5, 0),
                   (0, 3, 12, "deferred", 12, 12, 2), (0, 4, 22, "deferred", 22, 22, 2),
                   (1, 1, 2, "deferred", 2, None, 0), (1, 2, 7, "deferred", 7, 7, 2))
    sim = [{"message": 0, "attempt": 3, "outcome": "deferred", "t_s": 10.0}]
    expected, diverged = vp.live_effects(detail, sim, timing, [])
    assert expected[(0, 2)] == 5  # the live second itself: on relaysim's grid
    assert expected[(0, 3)] == 10
    assert (0, 4) not in expected  # after the divergence
    assert diverged[0]["after_attempt"] == 3 and "2 s late" in diverged[0]["cause"]
    assert diverged[0]["t_s"] == 10.0  # relaysim's start, the earlier
    # message 1, created at 2: mtime 7, ripe at the late scan of 7 (7 <= 8), not at 5 (7 > 6)
    assert expected[(1, 2)] == 10 and diverged[1]["after_attempt"] == 2


def test_live_effects_late_finishes_observed_and_inferred():
    timing = {"queue_run_delay": "5s", "minimal_backoff_time": "5s",
              "maximal_backoff_time": "10s"}
    detail = _rows((0, 1, 1, "deferred", 2, None, 0), (0, 2, 10, "deferred", 10, 10, 0),
                   (1, 1, 1, "deferred", 1, None, 0), (1, 2, 10, "deferred", 10, 10, 0),
                   (2, 1, 1, "deferred", 1, None, 0), (2, 2, 5, "deferred", 5, 5, 0))
    off = [{"message": 1, "attempt": 2, "t_s": 10, "predicted_t_s": 5.0,
            "predicted_if_previous_finished_1s_later": 10.0}]
    expected, diverged = vp.live_effects(detail, [], timing, off)
    assert {m: d["after_attempt"] for m, d in diverged.items()} == {0: 1, 1: 1}
    assert "a second later" in diverged[0]["cause"] and "next retry" in diverged[1]["cause"]
    assert expected == {(2, 2): 5}


def test_compare_apart_leaves_out_only_what_follows_the_divergence():
    sim = rows((0, 1, 4.5, "deferred"), (0, 2, 10.0, "deferred"), (0, 3, 15.0, "deferred"),
               (0, 3, 15.0, "expired"), (1, 1, 5.5, "sent"))
    expected = {(0, 2): 10.0, (0, 3): 15.0}
    res = vp.compare_apart_from_live_effects(REAL, sim, expected, {
        0: {"message": 0, "after_attempt": 3, "cause": "x", "t_s": 15.0}})
    assert res["rows_compared"] == 4 and res["rows_left_out"] == 1  # the real expiry row
    assert res["rows_differing"] == res["missing_in_sim"] == res["extra_in_sim"] == 0
    assert res["final_outcomes_real"] == res["final_outcomes_sim"] == {"sent": 1}
    # the same without the divergence: relaysim's third attempt is 5 s early
    res = vp.compare_apart_from_live_effects(REAL, sim, {(0, 2): 10.0, (0, 3): 20.0}, {})
    assert res["rows_differing"] == 1


def test_in_flight_counts_the_live_scan_seconds():
    got = vp.in_flight([10.5, 11.5, 21.5], 10, [], live_scan_t=[11])
    assert got.tolist() == [True, True, False]


def test_scan_origin_takes_the_grid_of_the_first_retry_scan():
    def att(n, t):
        return vp.pl.Attempt(0, "Q", n, t, t, "deferred", "4.1.1", "relay", "")

    # qmgr started at 100.4; its timer fired 2 s late before the first retry scan
    assert vp.scan_origin([att(1, 101.2), att(2, 112.3), att(3, 122.9)], 100.4, 5) == 102
    assert vp.scan_origin([att(1, 101.2)], 100.4, 5) == 100  # no retry: qmgr's start


def test_compare_apart_a_first_attempt_the_live_qmgr_finished_a_second_late():
    # a live run (pytest, 13:41 here): message 0's first attempt was logged in second 4 and
    # finished in 5; relaysim's arrival (MAIL FROM + delays= a) fell 4.6 ms into second 5
    real = rows((0, 1, 4.0, "sent"))
    sim = rows((0, 1, 5.0046, "sent"))
    late = {0: {"message": 0, "after_attempt": 1, "cause": "x", "t_s": 4.0,
                "real_span_s": [4.0, 6]}}
    assert vp.compare_apart_from_live_effects(real, sim, {}, late)["rows_differing"] == 0
    assert vp.compare_apart_from_live_effects(real, sim, {}, {})["rows_differing"] == 1


# --- the upstream's soft_bounce = yes, a saved live run (no Postfix needed) -------------------

def _story(log: Path, domain: str) -> dict[int, list[str]]:
    """Per injected message (relaysim-N@domain), its upstream lines after arrival in log order:
    `status=S dsn=D said: CODE ...` per delivery line (the reply text's first words), then
    `expired`, `notice` (non-delivery notification) and `removed`."""
    import re

    qid_of, out = {}, {}
    for ln in log.read_text().splitlines():
        m = re.search(r" (\w+): message-id=<relaysim-(\d+)@" + re.escape(domain), ln)
        if m:
            qid_of[m[1]] = int(m[2])
            out[int(m[2])] = []
            continue
        m = re.search(r"/(\w+)\[\d+\]: (\w+): (.*)$", ln)
        if not m or m[2] not in qid_of:
            continue
        service, text, seq = m[1], m[3], out[qid_of[m[2]]]
        if service == "smtp" and (k := re.search(r"dsn=([\d.]+), status=(\w+) \((.*)\)$",
                                                 text)):
            said = re.sub(r"<[^>]*>", "<R>", re.sub(r"^host \S+ said: |queued as \w+", "",
                                                    k[3]))
            seq.append(f"status={k[2]} dsn={k[1]} {said}")
        elif "status=expired, returned to sender" in text:
            seq.append("expired")
        elif "sender non-delivery notification" in text:
            seq.append("notice")
        elif text == "removed":
            seq.append("removed")
    return out


def test_saved_soft_bounce_run_matches_relaysim(tmp_path):
    """A live Postfix 3.7.11 pair (2026-12-04; tests/data/postfix_live/soft_bounce): relay 550
    for unknown users, upstream soft_bounce = yes, queue_run_delay 5s, backoff 5s..10s,
    lifetime 30s. Postfix logged every such attempt status=SOFTBOUNCE dsn=4.1.1 with the
    relay's 550 5.1.1 text, kept the message, and at expiry logged `status=expired, returned
    to sender` and sent a non-delivery notice. relaysim makes the same attempts at the same
    times, bounces nothing, expires the same messages with the same DSNs, and its maillog tells
    each message's story line for line."""
    import sim
    from sim.postfix import maillog as ml

    shutil.copytree(vp.Path(__file__).resolve().parents[1] / "data" / "postfix_live"
                    / "soft_bounce", tmp_path / "soft_bounce")
    assert vp.main(["--compare-only", "--out", str(tmp_path), "soft_bounce"]) == 0
    run = tmp_path / "soft_bounce"
    s = _check_against_relaysim(run)
    assert all(s["targets_met"].values()), s["targets_met"]
    assert s["counts_real"] == s["counts_sim"] == {"delivered": 3, "bounced": 0, "expired": 3,
                                                   "nondelivery_dsn": 3}
    # relaysim's own maillog of the same run, against the real one, message by message
    meta = _meta(run)
    injected = vp._read_csv(run / "injected.csv")
    detail = vp._read_csv(run / "attempts_detail.csv")
    t = vp.arrivals(injected, detail)
    batches = []
    sim.simulate(vp.sim_scenario(meta, injected, t, 60.0), on_attempts=batches.append)
    ml.write_maillog(batches, tmp_path / "ours")
    real = _story(run / "upstream.maillog", "upstream.test")
    ours = _story(tmp_path / "ours" / "upstream.maillog", "upstream.example")
    assert ours == real
    soft = "status=SOFTBOUNCE dsn=4.1.1 550 5.1.1 <R>: Recipient address rejected: User " \
        "unknown in local recipient table (in reply to RCPT TO command)"
    assert sorted(map(len, real.values())) == [2, 2, 2, 8, 8, 8]
    assert [seq for seq in real.values() if len(seq) == 8] == [
        [soft] * 5 + ["expired", "notice", "removed"]] * 3
