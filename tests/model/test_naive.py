"""Tests of the naive reference model (tests/naive.py): Postfix schedules, replies, invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.scenario import Scenario
from tests.naive import backoff, naive_simulate, next_queue_run

DAY = 86400


def scenario(arrivals=(), duration="1000s", sample="100s", sender=None, upstream=None,
             relay=None, changes=None) -> Scenario:
    """Zero-time transactions, explicit arrivals of known users unless told otherwise."""
    return Scenario.from_dict({
        "simulation": {"duration": duration, "sample_interval": sample},
        "senders": [{"arrivals": [f"{t}s" for t in arrivals], "unknown_recipient_fraction": 0.0,
                     **(sender or {})}],
        "upstream": {"smtp_transaction_time": "0s", **(upstream or {})},
        "relay": relay or {},
        "changes": changes or [],
    })


def attempts_of(result, message=0):
    return [(start, outcome) for m, _, start, outcome in result["attempts"] if m == message]


# --- policies ------------------------------------------------------------------------------------

@pytest.mark.parametrize("age, expected", [(0, 300), (299, 300), (599, 599), (3999, 3999),
                                           (4000, 4000), (90000, 4000)],
                         ids=["new", "below-min", "between", "just-below-max", "max", "old"])
def test_backoff_clamps_age(age, expected):
    assert backoff(age, 300, 4000) == expected


@pytest.mark.parametrize("wake, deferred_at, expected", [
    (301, 1, 300),     # mtime 1 s ahead is close enough for the scan at 300
    (302, 2, 600),     # 2 s ahead: skipped, next scan
    (300, 0, 300),     # never the scan at 0
    (2, 1.5, 300),     # first scan is k = 1
    (1201, 1200.5, 1500),  # a scan cannot pick up a file deferred after it started
], ids=["one-second-early", "two-seconds-early", "on-grid", "first-scan", "after-deferral"])
def test_next_queue_run(wake, deferred_at, expected):
    assert next_queue_run(wake, deferred_at, 300) == expected


# --- one message, exact schedules ----------------------------------------------------------------

def postfix_ages(first_ages):
    """Queue ages of every attempt: the given ones, then +4200 s up to the first at age >= 5 d."""
    ages = list(first_ages)
    while ages[-1] < 5 * DAY:
        ages.append(ages[-1] + 4200)
    return ages


@pytest.mark.parametrize("arrival, first_ages", [
    (1, [0, 299, 599, 1199, 2399, 4799, 8999]),
    (150, [0, 450, 1050, 2250, 4650, 8850, 13050]),
], ids=["just-after-scan", "mid-grid"])
def test_450_retry_schedule_until_expiry(arrival, first_ages):
    scen = scenario([arrival], duration="6d", sample="1h", sender={"unknown_recipient_fraction": 1},
                    relay={"unknown_local_recipient_reject_code": 450})
    result = naive_simulate(scen, record_attempts=True)
    seen = attempts_of(result)
    ages = [start - arrival for start, _ in seen]
    assert ages == postfix_ages(first_ages)
    assert ages[-2] < 5 * DAY <= ages[-1]
    assert [o for _, o in seen] == ["deferred"] * (len(seen) - 1) + ["expired"]
    summary = result["summary"]
    assert summary["recipients"]["expired"] == 1
    assert summary["attempts"] == len(seen)
    assert summary["dsn"] == {"nondelivery": 1, "backscatter": 0}


# id: (sender, relay, upstream, outcome, (delivered, bounced, expired, queued_at_end), dsn)
ONE_ATTEMPT = {
    "known-user": ({}, {}, {}, "sent", (1, 0, 0, 0), (0, 0)),
    "550-real": ({"unknown_recipient_fraction": 1}, {}, {}, "bounced", (0, 1, 0, 0), (1, 0)),
    "550-forged": ({"unknown_recipient_fraction": 1, "forged_sender_fraction": 1}, {}, {},
                   "bounced", (0, 1, 0, 0), (1, 1)),
    "550-null": ({"unknown_recipient_fraction": 1, "null_sender_fraction": 1}, {}, {},
                 "bounced", (0, 1, 0, 0), (0, 0)),
    "550-soft-bounce": ({"unknown_recipient_fraction": 1}, {"soft_bounce": True}, {},
                        "deferred", (0, 0, 0, 1), (0, 0)),
    "550-upstream-soft-bounce": ({"unknown_recipient_fraction": 1}, {},
                                 {"soft_bounce": True}, "deferred", (0, 0, 0, 1), (0, 0)),
    "450-deferred": ({"unknown_recipient_fraction": 1},
                     {"unknown_local_recipient_reject_code": 450}, {},
                     "deferred", (0, 0, 0, 1), (0, 0)),
    "450-lifetime-0-forged": ({"unknown_recipient_fraction": 1, "forged_sender_fraction": 1},
                              {"unknown_local_recipient_reject_code": 450},
                              {"maximal_queue_lifetime": "0s"}, "expired", (0, 0, 1, 0), (1, 1)),
    "450-bounce-lifetime-0-null": ({"unknown_recipient_fraction": 1, "null_sender_fraction": 1},
                                   {"unknown_local_recipient_reject_code": 450},
                                   {"bounce_queue_lifetime": "0s"}, "expired", (0, 0, 1, 0),
                                   (0, 0)),
    "450-real-ignores-bounce-lifetime": (
        {"unknown_recipient_fraction": 1}, {"unknown_local_recipient_reject_code": 450},
        {"bounce_queue_lifetime": "0s"}, "deferred", (0, 0, 0, 1), (0, 0)),
}


@pytest.mark.parametrize("sender, relay, upstream, outcome, fates, dsn", ONE_ATTEMPT.values(),
                         ids=ONE_ATTEMPT.keys())
def test_one_attempt(sender, relay, upstream, outcome, fates, dsn):
    """One message at t=10, run for 100 s: the relay's answer decides everything at once."""
    scen = scenario([10], duration="100s", sample="10s", sender=sender, relay=relay,
                    upstream=upstream)
    result = naive_simulate(scen, record_attempts=True)
    assert result["attempts"] == [(0, 0, 10.0, outcome)]
    rcpt = result["summary"]["recipients"]
    assert (rcpt["delivered"], rcpt["bounced"], rcpt["expired"], rcpt["queued_at_end"]) == fates
    assert tuple(result["summary"]["dsn"].values()) == dsn


# --- outages and the dead destination ------------------------------------------------------------

ONE = {"default_destination_concurrency_limit": 1}  # window 1: one failure makes it dead
OUTAGES = {  # id: (outages, arrivals, duration, upstream, expected (message, start, outcome))
    "no-outage": ((), [102, 112, 401, 402], "1000s", {},
                  [(0, 102, "sent"), (1, 112, "sent"), (2, 401, "sent"), (3, 402, "sent")]),
    # window 1: refused at 102 -> dead until 402; 112 and 401 are throttled though the relay is
    # back at 105.
    "refused-then-throttled": (
        ({"start": "100s", "duration": "5s"},), [102, 112, 401, 402], "1000s", ONE,
        [(0, 102, "deferred"), (0, 600, "sent"), (1, 112, "deferred"), (1, 600, "sent"),
         (2, 401, "deferred"), (2, 900, "sent"), (3, 402, "sent")]),
    # window 5: the refusal at 102 is alone in the in-core queue, which is discarded with its
    # count: nothing is throttled (mta-semantics.md 3.1, seen live: section 8).
    "isolated-refusal-not-dead": (
        ({"start": "100s", "duration": "5s"},), [102, 112, 401, 402], "1000s", {},
        [(0, 102, "deferred"), (0, 600, "sent"), (1, 112, "sent"), (2, 401, "sent"),
         (3, 402, "sent")]),
    # window 1, a long outage: each refusal (402, 900) restarts the dead time; attempts in
    # between throttle.
    "refused-again-while-out": (
        ({"start": "100s", "duration": "1000s"},), [102, 402, 500], "2000s", ONE,
        [(0, 102, "deferred"), (0, 600, "deferred"), (0, 1200, "sent"),
         (1, 402, "deferred"), (1, 900, "deferred"), (1, 1500, "sent"),
         (2, 500, "deferred"), (2, 900, "deferred"), (2, 1500, "sent")]),
    # window 5: four messages in one scan at 600 are refused back to back: 1/5 + 1/4 + 1/3 +
    # 1/2 >= 1 at the fourth, dead until 900, so the arrival at 610 (relay back at 605) is
    # deferred without a try; everything goes at the scan at 1200 (the four backed off by
    # their ages, about 500 s, from 600; mta-semantics.md 3.1).
    "scan-batch-kills": (
        ({"start": "100s", "duration": "505s"},), [101, 102, 103, 104, 610], "1500s", {},
        [(0, 101, "deferred"), (0, 600, "deferred"), (0, 1200, "sent"),
         (1, 102, "deferred"), (1, 600, "deferred"), (1, 1200, "sent"),
         (2, 103, "deferred"), (2, 600, "deferred"), (2, 1200, "sent"),
         (3, 104, "deferred"), (3, 600, "deferred"), (3, 1200, "sent"),
         (4, 610, "deferred"), (4, 1200, "sent")]),
    # the same with only three in the scan: 0.78 < 1, not dead, the arrival at 610 is sent
    "scan-batch-short-of-the-limit": (
        ({"start": "100s", "duration": "505s"},), [101, 102, 103, 610], "1500s", {},
        [(0, 101, "deferred"), (0, 600, "deferred"), (0, 1200, "sent"),
         (1, 102, "deferred"), (1, 600, "deferred"), (1, 1200, "sent"),
         (2, 103, "deferred"), (2, 600, "deferred"), (2, 1200, "sent"),
         (3, 610, "sent")]),
}


@pytest.mark.parametrize("outages, arrivals, duration, upstream, expected", OUTAGES.values(),
                         ids=OUTAGES.keys())
def test_outage_refuses_and_throttles(outages, arrivals, duration, upstream, expected):
    scen = scenario(arrivals, duration=duration, upstream=upstream,
                    relay={"outages": list(outages)})
    result = naive_simulate(scen, record_attempts=True)
    assert sorted((m, s, o) for m, _, s, o in result["attempts"]) == expected
    assert result["summary"]["recipients"]["delivered"] == len(arrivals)


# --- sampling rule -------------------------------------------------------------------------------

def test_samples_count_states_on_half_open_intervals():
    """Window 1: refused at 1 (dead until 301), throttled by the scan at 300, deferred over
    [1, 600)."""
    scen = scenario([1], duration="700s", upstream=ONE,
                    relay={"outages": [{"start": "0s", "duration": "250s"}]})
    result = naive_simulate(scen, record_attempts=True)
    assert attempts_of(result) == [(1, "deferred"), (300, "deferred"), (600, "sent")]
    ts = result["timeseries"]
    assert ts["t_s"].tolist() == [0, 100, 200, 300, 400, 500, 600, 700]
    assert ts["received"].tolist() == [0, 1, 1, 1, 1, 1, 1, 1]
    assert ts["deferred"].tolist() == [0, 1, 1, 1, 1, 1, 0, 0]
    assert ts["queued_recipients"].tolist() == [0, 1, 1, 1, 1, 1, 0, 0]
    assert ts["delivered"].tolist() == [0, 0, 0, 0, 0, 0, 1, 1]
    assert ts["attempts"].tolist() == [0, 1, 1, 2, 2, 2, 3, 3]
    assert ts["active"].tolist() == [0] * 8
    assert result["summary"]["deferred_peak_messages"] == 1
    assert result["summary"]["delivery_delay_s"]["max"] == 599


def test_active_counts_waiting_and_running_messages():
    """Two messages at 0, one agent: one in its attempt, one waiting; both active at t=0."""
    scen = scenario([0, 0], duration="10s", sample="10s",
                    upstream={"smtp_transaction_time": "1000s",
                              "default_destination_concurrency_limit": 1})
    ts = naive_simulate(scen)["timeseries"]
    assert ts["active"][0] == 2
    assert ts["received"][0] == 2
    assert ts["attempts"][0] == 1


# --- invariants on a small Poisson run -----------------------------------------------------------

POISSON = Scenario.from_dict({
    "simulation": {"duration": "1d", "sample_interval": "10m", "seed": 7},
    "senders": [
        {"rate": "150/h", "recipients_per_message": 2, "unknown_recipient_fraction": 0.3},
        {"name": "spam", "rate": "50/h", "unknown_recipient_fraction": 0.8,
         "forged_sender_fraction": 0.5, "null_sender_fraction": 0.5},
    ],
    "upstream": {"smtp_transaction_time": "2s", "default_destination_concurrency_limit": 2,
                 "maximal_queue_lifetime": "3h", "bounce_queue_lifetime": "1h"},
    "relay": {"unknown_local_recipient_reject_code": 450,
              "outages": [{"start": "6h", "duration": "30m"},
                          {"start": "1410m", "duration": "1h"}]},
    "changes": [{"at": "16h", "relay": {"unknown_local_recipient_reject_code": 550}}],
})


@pytest.fixture(scope="module")
def poisson_run():
    return naive_simulate(POISSON, record_attempts=True)


def test_conservation_at_every_sample(poisson_run):
    ts = poisson_run["timeseries"]
    assert len(ts["t_s"]) == 145
    np.testing.assert_array_equal(
        ts["received"], ts["delivered"] + ts["bounced"] + ts["expired"] + ts["queued_recipients"])
    rcpt = poisson_run["summary"]["recipients"]
    assert rcpt["received"] == (rcpt["delivered"] + rcpt["bounced"] + rcpt["expired"]
                                + rcpt["queued_at_end"])


def test_poisson_run_exercises_every_fate(poisson_run):
    s = poisson_run["summary"]
    assert min(s["recipients"]["delivered"], s["recipients"]["bounced"],
               s["recipients"]["expired"], s["recipients"]["queued_at_end"]) > 0
    assert 0 < s["dsn"]["backscatter"] < s["dsn"]["nondelivery"]
    outcomes = {o for *_, o in poisson_run["attempts"]}
    assert outcomes == {"sent", "deferred", "bounced", "expired"}


CUMULATIVE = ("received", "delivered", "bounced", "expired", "attempts")


@pytest.mark.parametrize("name", CUMULATIVE, ids=CUMULATIVE)
def test_cumulative_series_rise_and_end_at_the_summary(poisson_run, name):
    ts, s = poisson_run["timeseries"], poisson_run["summary"]
    assert np.all(np.diff(ts[name]) >= 0)
    final = s[name] if name == "attempts" else s["recipients"][name]
    assert ts[name][-1] == final  # the last sample is at duration


def test_attempt_records_agree_with_summary(poisson_run):
    s, records = poisson_run["summary"], poisson_run["attempts"]
    assert len(records) == s["attempts"]
    assert sum(o == "sent" for *_, o in records) == s["recipients"]["delivered"]
    assert sum(o == "expired" for *_, o in records) == s["recipients"]["expired"]
    assert s["deferred_peak_messages"] >= poisson_run["timeseries"]["deferred"].max() > 0
    delay = s["delivery_delay_s"]
    assert 0 < delay["p50"] <= delay["p95"] <= delay["p99"] <= delay["max"]


def test_same_seed_same_result(poisson_run):
    again = naive_simulate(POISSON, seed=POISSON.simulation.seed, record_attempts=True)
    assert again["summary"] == poisson_run["summary"]
    assert again["attempts"] == poisson_run["attempts"]
    for name, series in poisson_run["timeseries"].items():
        np.testing.assert_array_equal(again["timeseries"][name], series)
    other = naive_simulate(POISSON, seed=8)
    assert other["summary"] != poisson_run["summary"]


UNSUPPORTED = {
    "daily-profile": {"senders": [{"profile": "daily"}]},
    "random-outages": {"relay": {"outage_mtbf": "1d"}},
    "exim-upstream": {"upstream": {"mta": "exim"}},
    "scan-period-change": {"changes": [{"at": "1h", "upstream": {"queue_run_delay": "60s"}}]},
}


@pytest.mark.parametrize("overrides", UNSUPPORTED.values(), ids=UNSUPPORTED.keys())
def test_unsupported_features_refused(overrides):
    with pytest.raises(NotImplementedError):
        naive_simulate(Scenario.from_dict({"simulation": {"duration": "1h"}, **overrides}))


def test_no_delivery_gives_nan_delays():
    scen = scenario([10], duration="100s", sender={"unknown_recipient_fraction": 1})
    result = naive_simulate(scen)
    assert result["summary"]["recipients"]["bounced"] == 1
    assert all(math.isnan(v) for v in result["summary"]["delivery_delay_s"].values())


def test_empty_arrivals_mean_poisson_and_rate_zero_means_none():
    assert naive_simulate(scenario([], duration="1h"))["summary"]["messages"]["received"] > 0
    quiet = naive_simulate(scenario([], duration="1h", sender={"rate": 0}))
    assert quiet["summary"]["messages"]["received"] == 0
    assert quiet["timeseries"]["received"].tolist() == [0] * 37


def test_poisson_sender_sends_only_between_start_and_stop():
    scen = scenario([], duration="3h", sample="30m",
                    sender={"rate": "100/h", "start": "1h", "stop": "2h"})
    received = naive_simulate(scen)["timeseries"]["received"].tolist()
    assert received[:3] == [0, 0, 0]  # samples at 0, 30m, 1h
    assert 0 < received[3] < received[4] == received[5] == received[6]


def test_the_window_growth_simplification_changes_no_attempt():
    """relaysim raises the relay's concurrency window by one per delivery up to the limit;
    Postfix only while it is below the sessions in progress plus the initial concurrency
    (qmgr_queue_unthrottle). The naive model has both: on continuous traffic (1 message/s,
    2 s sessions, 30 % 450s) with a 5-minute outage every 2 hours, every attempt is the same
    (the window only matters at back-to-back failures, and during an outage each lone
    refusal empties the in-core queue, which resets either window)."""
    s = Scenario.from_dict({
        "simulation": {"duration": "6h", "sample_interval": "1h"},
        "senders": [{"rate": "1/s", "unknown_recipient_fraction": 0.3}],
        "upstream": {"smtp_transaction_time": "2s"},
        "relay": {"unknown_local_recipient_reject_code": 450,
                  "outages": [{"start": f"{7200 * k + 1234}s", "duration": "5m"}
                              for k in range(3)]}})
    ours = naive_simulate(s, seed=3, record_attempts=True)
    postfix = naive_simulate(s, seed=3, record_attempts=True, window_rule="busy")
    assert any(o == "deferred" for *_, o in ours["attempts"])
    assert ours["attempts"] == postfix["attempts"]
