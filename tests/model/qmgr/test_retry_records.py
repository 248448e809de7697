"""sim.model.qmgr.retry_records: Exim's retry records per (recipient, sender) pair, by hand."""

import numpy as np
import pytest

from sim import Scenario, simulate
from sim.model import schedules
from sim.model.qmgr import retry_records as rr
from sim.model.sender import NULL, REAL, pair_of

DAY = 86400
# F,1m,20s: a 20 s gap, timed out past 60 s of failing; ultimate timeout on (Exim >= 4.82)
P = schedules.pack(schedules.EximParams(rules=schedules.parse_exim_rules("F,1m,20s")))
P_OLD = schedules.pack(schedules.EximParams(rules=schedules.parse_exim_rules("F,1m,20s"),
                                            ultimate_timeout=False))


def _rec(first, last, nxt, stamp):
    rec = rr.new_records(1)[0]
    rec[rr.FIRST], rec[rr.LAST], rec[rr.NEXT], rec[rr.STAMP] = first, last, nxt, stamp
    return rec


@pytest.mark.parametrize("P, rec, create, now, held", [
    (P, rr.new_records(1)[0], 0, 30, False),  # no record: routed
    (P, _rec(1, 30, 50, 30), 5, 40, True),  # next try not reached: retry time not reached
    (P, _rec(1, 30, 50, 30), 5, 50, False),  # next try reached
    (P, _rec(1, 30, 50, 30), -20, 45, False),  # older than the last cutoff (65 > 60): routed
    (P_OLD, _rec(1, 30, 50, 30), -20, 45, True),  # ... unless before Exim 4.82
    (P, _rec(1, 30, 8 * DAY, 30), 20, 7 * DAY + 31, False),  # record older than 7 d: ignored
], ids=["no-record", "not-yet", "due", "ultimate-timeout", "no-ultimate-timeout", "stale"])
def test_skipped_is_deliver_c_routing_check(P, rec, create, now, held):
    assert rr.skipped(P, rec, create, now) == held


def test_update_shares_first_failed_and_bounces_a_young_message():
    rec = rr.new_records(1)[0]
    assert rr.update(P, rec, 1, 1) == (21, False)  # a new record: first failed now, F gap
    assert (rec[rr.FIRST], rec[rr.LAST], rec[rr.NEXT], rec[rr.STAMP]) == (1, 1, 21, 1)
    # a second message of the pair (created at 5) fails at 30: failing 29 s by the record
    assert rr.update(P, rec, 5, 30) == (50, False) and rec[rr.FIRST] == 1
    # a message created at 70 fails at 70: its age is 0 but the record has failed 69 s > 60
    wake, give_up = rr.update(P, rec, 70, 70)
    assert give_up and rec[rr.NEXT] == 90  # the next try from the last rule (final_rule)
    # the next message of the pair is routed at the record's next try or its own timeout
    assert rr.wake(P, rec, 5, 70) == 71  # created at 5: older than 60 s from 66 on
    assert rr.wake(P, rec, 40, 70) == 90
    rr.forget(rec)  # a 250 or 5xx to RCPT deletes it
    assert not rr.skipped(P, rec, 40, 71) and rr.update(P, rec, 40, 80)[0] == 100


def test_g_rule_grows_from_the_records_own_gaps():
    P_G = schedules.pack(schedules.EximParams(rules=schedules.parse_exim_rules("G,1h,10s,2")))
    rec = rr.new_records(1)[0]
    assert rr.update(P_G, rec, 0, 0)[0] == 10  # lastgap 0 < 10: the interval
    assert rr.update(P_G, rec, 0, 10)[0] == 30  # lastgap min(10, 10) x 2 = 20
    # another message's first failure at 15 shortens the gap: min(30 - 10, 15 - 10) = 5 < 10
    assert rr.update(P_G, rec, 15, 15)[0] == 25


def test_one_message_of_a_pair_per_queue_run_the_oldest():
    rec = rr.new_records(1)[0]
    for qid in (7, 3, 9):
        rr.claims(rec, 30, qid)
    assert [rr.tried(P, rec, 0, 30, q) for q in (7, 3, 9)] == [False, True, False]
    assert rr.tried(P, rec, 0, 40, 7)  # another run: not claimed there yet
    assert rr.tried(P, rec, -31, 30, 9)  # overdue (61 s > 60 s): routed whatever the record


def test_pairs_of_the_null_sender_and_of_known_recipients():
    kind = np.array([REAL, NULL, REAL])
    pair = pair_of(kind, np.array([-1, -1, 4]), np.array([1, 1, 0]), np.array([2, 2, 0]),
                   3, 4, 100)
    assert pair.tolist() == [100 + 1 * 4 + 2, 100 + 3 * 4 + 2, -1]


def _run(arrivals, pools):
    return simulate(Scenario.from_dict({
        "simulation": {"duration": "200s", "sample_interval": "10s"},
        "senders": [{"arrivals": [f"{t}s" for t in arrivals], "unknown_recipient_fraction": 1,
                     "sender_addresses": pools, "unknown_recipients_per_sender": pools}],
        "relay": {"unknown_local_recipient_reject_code": 450},
        "upstream": {"mta": "exim", "exim_retry_rule": "F,1m,20s", "queue_runner_interval": "10s",
                     "smtp_transaction_time": "0s",
                     "smtp_transaction_time_distribution": "constant"}}), record_attempts=True)


def _attempts(res):
    a = res.attempts
    return {m: [(round(float(t), 1), str(o)) for t, o in zip(a["t_s"][a["message_id"] == m],
                                                            a["outcome"][a["message_id"] == m],
                                                            strict=True)]
            for m in sorted(set(a["message_id"].tolist()))}


def test_engine_shares_the_record_worked_by_hand():
    # A (1.2 s) and B (5.3 s) to the same pair, F,1m,20s, runner every 10 s. A's failure at 1
    # writes the record (first failed 1, next 21); B's at 5 moves next to 25. Run 30: A (the
    # oldest) is tried, next 50; B is held back. Run 50: A again, next 70. Run 70: A has failed
    # 69 s > 60: timed out (next 90); B, 65 s old, is overdue: routed in the same run (the
    # ultimate timeout) and timed out. C (75.5 s) is tried on arrival and bounced at once: its
    # pair has been failing for 74 s.
    got = _attempts(_run([1.2, 5.3, 75.5], 1))
    assert got == {0: [(1.2, "deferred"), (30.0, "deferred"), (50.0, "deferred"),
                       (70.0, "expired")],
                   1: [(5.3, "deferred"), (70.0, "expired")],
                   2: [(75.5, "expired")]}
    # unique pairs: every message on its own schedule (B also at 30, 50, and out at 70)
    own = _attempts(_run([1.2, 5.3, 75.5], 0))
    assert own[1] == [(5.3, "deferred"), (30.0, "deferred"), (50.0, "deferred"),
                      (70.0, "expired")]
    assert own[2] == [(75.5, "deferred"), (100.0, "deferred"), (120.0, "deferred"),
                      (140.0, "expired")]
