"""The relay's answers: reject codes, soft_bounce, outages, greylisting (postgrey)."""

import numpy as np
import pytest

from sim import Scenario, simulate
from sim.model.relay import BOUNCED, DEFERRED, SENT, RelayTimeline, outage_intervals, rcpt_reply
from sim.scenario import Outage, Relay


@pytest.mark.parametrize("known, code, soft, expect", [
    (True, 450, False, SENT),
    (False, 450, False, DEFERRED),
    (False, 550, False, BOUNCED),
    (False, 550, True, DEFERRED),
    (False, 554, True, DEFERRED),
    (False, 451, True, DEFERRED),
], ids=["known", "450", "550", "550-soft-bounce", "554-soft-bounce", "451-soft-bounce"])
def test_rcpt_reply(known, code, soft, expect):
    assert rcpt_reply(np.array([known]), np.array([code]), np.array([soft]))[0] == expect


def test_outages_merge_and_random_ones_are_seeded():
    s, e = outage_intervals([Outage(10, 10), Outage(15, 10), Outage(100, 5)], 0, 0, 1000,
                            np.random.default_rng(1))
    assert s.tolist() == [10, 100] and e.tolist() == [25, 105]
    a = outage_intervals([], 3600, 600, 86400 * 10, np.random.default_rng(7))
    b = outage_intervals([], 3600, 600, 86400 * 10, np.random.default_rng(7))
    assert np.array_equal(a[0], b[0]) and a[0].size > 100
    assert 400 < np.mean(a[1] - a[0]) < 800  # mean repair time 600 s


def test_timeline_answers_by_time():
    snaps = [(0.0, Scenario().relay), (100.0, Scenario.from_dict(
        {"relay": {"local_users": 5, "unknown_local_recipient_reject_code": 450}}).relay)]
    rt = RelayTimeline(snaps, (np.array([50.0]), np.array([60.0])))
    assert rt.down(np.array([49.9, 50, 59.9, 60])).tolist() == [False, True, True, False]
    out = rt.reply(np.array([10.0, 200.0]), np.array([[7], [7]]))
    assert out[:, 0].tolist() == [SENT, DEFERRED]  # user 7 removed at 100 s: 450 from then on


def grey_run(arrival, **grey):
    s = Scenario.from_dict({
        "simulation": {"duration": "1d", "sample_interval": "1h"},
        "senders": [{"arrivals": [arrival], "unknown_recipient_fraction": 0}],
        "upstream": {"smtp_transaction_time": "0s"},
        "relay": {"greylisting": {"auto_whitelist_clients": 0, **grey}},
    })
    return simulate(s, record_attempts=True)


@pytest.mark.parametrize("arrival, delays", [
    # arrival just after a scan: the retry comes 299 s later, 1 s short of postgrey's 300 s,
    # so it is greylisted once more and delivered at the third attempt
    ("1s", [0, 299, 599]),
    # mid-grid: the first retry 450 s later passes
    ("150s", [0, 450]),
], ids=["postfix-299s-edge", "mid-grid"])
def test_greylisting_first_contact(arrival, delays):
    res = grey_run(arrival)
    t = res.attempts["t_s"] - float(arrival[:-1])
    assert t.tolist() == delays
    assert res.attempts["outcome"].tolist() == ["deferred"] * (len(delays) - 1) + ["sent"]
    assert res.summary["relay"]["greylisted"] == len(delays) - 1
    assert res.summary["relay"]["rejects_4xx"] == len(delays) - 1


def test_greylisting_is_off_for_unknown_users():
    s = Scenario.from_dict({
        "simulation": {"duration": "1h"},
        "senders": [{"arrivals": ["1s"], "unknown_recipient_fraction": 1}],
        "upstream": {"smtp_transaction_time": "0s"},
        "relay": {"unknown_local_recipient_reject_code": 550, "greylisting": {}},
    })
    res = simulate(s, record_attempts=True)
    assert res.attempts["outcome"].tolist() == ["bounced"]  # DEFER_IF_PERMIT, then 550


def test_auto_whitelist_ends_greylisting():
    base = {"simulation": {"duration": "2d", "sample_interval": "1h"},
            "senders": [{"rate": "2000/d", "unknown_recipient_fraction": 0}],
            "relay": {"greylisting": {"auto_whitelist_clients": 5}}}
    res = simulate(Scenario.from_dict(base))
    base["relay"]["greylisting"]["auto_whitelist_clients"] = 0
    never = simulate(Scenario.from_dict(base))
    grey = res.timeseries["greylisted"]
    t = res.timeseries["t_s"]
    assert grey[t > 12 * 3600].sum() == 0  # whitelisted after 5 hourly passes
    assert grey[t <= 6 * 3600].sum() > 0
    assert never.summary["relay"]["greylisted"] > 10 * res.summary["relay"]["greylisted"]


def test_hard_error_limit_turns_many_unknown_recipients_into_a_site_failure():
    d = {"simulation": {"duration": "2h"},
         "senders": [{"arrivals": ["10s", "305s"], "recipients_per_message": 25,
                      "unknown_recipient_fraction": 0.999}],
         "upstream": {"smtp_transaction_time": "0s"},
         "relay": {"unknown_local_recipient_reject_code": 550, "smtpd_hard_error_limit": 20}}
    res = simulate(Scenario.from_dict(d), record_attempts=True)
    s = res.summary
    assert s["relay"]["hard_error_disconnects"] >= 1
    assert s["recipients"]["bounced"] == 0  # 421 before DATA: nothing bounced, all deferred
    first = res.attempts["t_s"] < 15
    assert (res.attempts["outcome"][first] == "deferred").all()
    # a lone disconnection is 1/5 of a failed cohort and its in-core queue is discarded: the
    # second message, within minimal_backoff_time of the 421, gets a session
    assert s["relay"]["sessions"] == res.summary["attempts"] / 25
    # with a window of 1 the 421 makes the destination dead: the second message is deferred
    # without a session, once
    one = simulate(Scenario.from_dict({**d, "upstream": {
        "smtp_transaction_time": "0s", "default_destination_concurrency_limit": 1}}))
    assert one.summary["relay"]["sessions"] == one.summary["attempts"] / 25 - 1
    d["relay"]["smtpd_hard_error_limit"] = 0
    off = simulate(Scenario.from_dict(d))
    assert off.summary["recipients"]["bounced"] == 50


@pytest.mark.parametrize("code,soft", [(450, False), (550, False), (550, True)])
def test_compiled_replies_agree_with_the_timeline(code, soft):
    """relay.outcome (the compiled rule the engine uses) answers as RelayTimeline.reply does,
    with -1 where no recipient is pending."""
    from sim.model.relay import outcome
    rng = np.random.default_rng(4)
    rcpt = rng.integers(-2, 12, size=(300, 3)).astype(np.int32)
    tl = RelayTimeline([(0.0, Relay(local_users=8, unknown_local_recipient_reject_code=code,
                                    soft_bounce=soft))], (np.empty(0), np.empty(0)))
    want = tl.reply(np.zeros(300), rcpt)
    want[rcpt == -2] = -1
    got = [[outcome(u, 8, tl.unknown_reply(0)) for u in row] for row in rcpt.tolist()]
    assert np.array_equal(np.array(got), want)


@pytest.mark.parametrize("errors, probe, rejected, accepted, hard, want", [
    (0, False, 1, 0, 20, (0.0, 2, False, False)),  # new: RCPT 450 and DATA 554, 2 errors
    (9, True, 1, 0, 20, (2.0, 11, False, False)),  # the 10th error at RCPT: DATA, RSET sleep
    (10, True, 1, 0, 20, (5.0, 12, False, False)),  # RSET MAIL RCPT DATA RSET, each a sleep
    (20, True, 1, 0, 20, (0.0, 2, True, False)),   # 421 to the probe: a new session from 0
    (18, True, 1, 0, 20, (5.0, 20, False, True)),  # the 20th error at DATA: 421 to the RSET
    (25, True, 1, 0, 0, (5.0, 27, False, False)),  # no hard limit: the count goes on
    (19, True, 2, 0, 20, (4.0, 20, False, True)),  # 20 at the first RCPT: 421 to the second
    (12, True, 0, 1, 20, (5.0, 0, False, False)),  # RSET MAIL RCPT DATA 250: queued, cleared
    (8, False, 0, 2, 20, (0.0, 0, False, False)),
])
def test_smtpd_session_counts_errors_and_sleeps(errors, probe, rejected, accepted, hard, want):
    """Hand-worked, smtpd_soft_error_limit 10 and 1 s sleeps, a client that keeps the session
    (so it ends a failed transaction with RSET); one that does not sends QUIT unanswered."""
    from sim.model.relay import smtpd_session
    assert smtpd_session(errors, probe, True, rejected, accepted, 10, hard, 1.0) == want


@pytest.mark.parametrize("errors, want", [(10, (4.0, 12, False, False)),
                                          (18, (4.0, 20, False, False))])
def test_a_client_without_the_cache_quits_after_a_failed_transaction(errors, want):
    """No RSET after the failed transaction (the client sends QUIT and does not wait), so no
    sleep and no 421 there."""
    from sim.model.relay import smtpd_session
    assert smtpd_session(errors, True, False, 1, 0, 10, 20, 1.0) == want
