"""The upstream queue host through the whole engine: Postfix's schedule, expiry, DSNs,
throttling, and the invariants every run must keep."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim import Scenario, simulate

DAY = 86400


def one_message(arrival="1s", code=450, duration="6d", upstream=None, relay=None, sender=None):
    """One message to an unknown user, zero-time attempts, so times are exact."""
    return Scenario.from_dict({
        "simulation": {"duration": duration, "sample_interval": "1h"},
        "senders": [{"arrivals": [arrival], "unknown_recipient_fraction": 1, **(sender or {})}],
        "upstream": {"smtp_transaction_time": "0s", **(upstream or {})},
        "relay": {"unknown_local_recipient_reject_code": code, **(relay or {})},
    })


def ages(res, arrival):
    return res.attempts["t_s"] - arrival


@pytest.mark.parametrize("arrival, first", [
    (1.0, [0, 299, 599, 1199, 2399, 4799]),
    (150.0, [0, 450, 1050, 2250, 4650, 8850]),
], ids=["just-after-scan", "mid-grid"])
def test_postfix_default_schedule(arrival, first):
    res = simulate(one_message(f"{arrival}s"), record_attempts=True)
    a = ages(res, arrival)
    assert a[:6].tolist() == first
    assert np.all(np.diff(a[5:]) == 4200)  # steady interval 14 x 300 s, not 4000 s
    out = res.attempts["outcome"]
    assert out[-1] == "expired" and (out[:-1] == "deferred").all()
    assert a[-1] >= 5 * DAY and a[-2] < 5 * DAY  # the first failed attempt at or after 5 d
    assert res.summary["recipients"]["expired"] == 1
    assert res.summary["dsn"]["nondelivery"] == 1


def test_pre_24_defaults_retry_every_4000s():
    res = simulate(one_message("1s", upstream={"postfix_version": "2.3"}), record_attempts=True)
    a = ages(res, 1.0)
    assert a[1] == 999  # first scan of the 1000 s grid
    assert np.all(np.diff(a[6:]) == 4000)


def test_bare_lifetime_is_days():
    res = simulate(one_message(upstream={"maximal_queue_lifetime": 2}), record_attempts=True)
    a = ages(res, 1.0)
    assert 2 * DAY <= a[-1] < 2 * DAY + 4200
    assert res.attempts["outcome"][-1] == "expired"


@pytest.mark.parametrize("kind, dsn, backscatter", [
    ({}, 1, 0),
    ({"forged_sender_fraction": 1}, 1, 1),
    ({"null_sender_fraction": 1}, 0, 0),
], ids=["real-sender", "forged-sender", "null-sender"])
def test_550_bounces_at_once_with_one_dsn(kind, dsn, backscatter):
    res = simulate(one_message(code=550, sender=kind), record_attempts=True)
    assert res.attempts["outcome"].tolist() == ["bounced"]
    assert res.summary["dsn"]["nondelivery"] == dsn
    assert res.summary["dsn"]["backscatter"] == backscatter


def test_null_sender_uses_bounce_queue_lifetime():
    res = simulate(one_message(sender={"null_sender_fraction": 1},
                               upstream={"bounce_queue_lifetime": "1d"}), record_attempts=True)
    a = ages(res, 1.0)
    assert DAY <= a[-1] < DAY + 4200
    assert res.summary["dsn"]["nondelivery"] == 0  # a failed bounce is dropped


def test_soft_bounce_turns_550_into_deferral():
    res = simulate(one_message(code=550, relay={"soft_bounce": True}, duration="1d"),
                   record_attempts=True)
    assert res.summary["recipients"]["bounced"] == 0
    assert (res.attempts["outcome"] == "deferred").all() and res.attempts["t_s"].size > 5


@pytest.mark.parametrize("sender, dsn, backscatter", [
    ({}, 1, 0),
    ({"forged_sender_fraction": 1}, 1, 1),
    ({"null_sender_fraction": 1}, 0, 0),
], ids=["real-sender", "forged-sender", "null-sender"])
def test_upstream_soft_bounce_defers_550_like_450_and_returns_at_expiry(sender, dsn,
                                                                        backscatter):
    """soft_bounce = yes on the upstream (Postfix's bounce.c): the relay's 550 is deferred with
    the upstream's backoff, the same attempts as a 450; at expiry the message is returned
    (defer_flush, untouched by soft_bounce): one DSN, none for <>. The relay still says 550."""
    soft = simulate(one_message(code=550, upstream={"soft_bounce": True}, sender=sender),
                    record_attempts=True)
    tempfail = simulate(one_message(code=450, sender=sender), record_attempts=True)
    assert soft.attempts["t_s"].tolist() == tempfail.attempts["t_s"].tolist()
    out = soft.attempts["outcome"]
    assert out[-1] == "expired" and (out[:-1] == "deferred").all() and out.size > 20
    r = soft.summary["recipients"]
    assert (r["bounced"], r["expired"], r["delivered"]) == (0, 1, 0)
    assert soft.summary["dsn"]["nondelivery"] == dsn
    assert soft.summary["dsn"]["backscatter"] == backscatter
    assert soft.summary["relay"]["rejects_5xx"] == out.size  # the relay's answer is 550
    assert soft.summary["relay"]["rejects_4xx"] == 0


def test_upstream_soft_bounce_off_at_a_change_bounces_at_the_next_retry():
    s = one_message(code=550, duration="3d", upstream={"soft_bounce": True})
    s = Scenario.from_dict({**s.to_dict(), "changes": [
        {"at": "1d", "upstream": {"soft_bounce": False}}]})
    res = simulate(s, record_attempts=True)
    t, out = res.attempts["t_s"], res.attempts["outcome"]
    assert out[-1] == "bounced" and (out[:-1] == "deferred").all()
    assert DAY <= t[-1] <= DAY + 4200 + 300 and t[-2] < DAY
    assert res.summary["dsn"]["nondelivery"] == 1


def test_upstream_soft_bounce_is_postfix_only():
    from sim.errors import ScenarioError
    with pytest.raises(ScenarioError, match="upstream.soft_bounce"):
        one_message(upstream={"soft_bounce": True, "mta": "exim"})


def test_fix_to_550_bounces_the_backlog_within_one_retry_cycle():
    s = one_message(duration="3d").with_overrides({})
    s = Scenario.from_dict({**s.to_dict(), "changes": [
        {"at": "1d", "relay": {"unknown_local_recipient_reject_code": 550}}]})
    res = simulate(s, record_attempts=True)
    t = res.attempts["t_s"]
    assert res.attempts["outcome"][-1] == "bounced"
    assert DAY <= t[-1] <= DAY + 4200 + 300


def test_known_user_is_delivered_at_once():
    s = one_message(sender={"unknown_recipient_fraction": 0})
    res = simulate(s, record_attempts=True)
    assert res.attempts["outcome"].tolist() == ["sent"]
    assert res.summary["delivery_delay_s"]["max"] == 0


def test_outage_defers_and_throttles():
    # mail every 10 s during a 1 h outage: one refused connection per minimal_backoff_time,
    # the rest deferred without a connection
    arrivals = [f"{3600 + 10 * i}s" for i in range(360)]
    s = Scenario.from_dict({
        "simulation": {"duration": "4h", "sample_interval": "5m"},
        "senders": [{"arrivals": arrivals, "unknown_recipient_fraction": 0}],
        "upstream": {"smtp_transaction_time": "0s"},
        "relay": {"outages": [{"start": "1h", "duration": "1h"}]},
    })
    res = simulate(s, record_attempts=True)
    t, out = res.attempts["t_s"], res.attempts["outcome"]
    during = (t >= 3600) & (t < 7200)
    assert (out[during] == "deferred").all()
    sessions = res.timeseries["relay_sessions"]
    tt = res.timeseries["t_s"]
    assert sessions[(tt > 3600) & (tt < 7200)].sum() == 0  # refused: no SMTP session
    assert res.summary["recipients"]["delivered"] == 360  # all delivered after the outage
    # throttled until 300 s after the last refused connection, at most
    first_sent = t[out == "sent"].min()
    assert 7200 <= first_sent <= 7200 + 300


def seed_story(code=450, **over):
    d = {"simulation": {"duration": "3d", "sample_interval": "30m"},
         "senders": [{"rate": "3000/d", "unknown_recipient_fraction": 0.35,
                      "forged_sender_fraction": 0.8, "recipients_per_message": 2}],
         "upstream": {"default_destination_concurrency_limit": 5, "maximal_queue_lifetime": "1d"},
         "relay": {"unknown_local_recipient_reject_code": code}}
    for k, v in over.items():
        sec, key = k.split("__")
        d.setdefault(sec, {})[key] = v
    return Scenario.from_dict(d)


@pytest.fixture(scope="module")
def run450():
    return simulate(seed_story(), record_attempts=True)


def test_conservation_at_every_sample(run450):
    ts = run450.timeseries
    total = ts["delivered"] + ts["bounced"] + ts["expired"] + ts["queued_recipients"]
    assert np.array_equal(total, ts["received"])
    # queued recipients, counted independently from the active and deferred intervals
    assert np.array_equal(ts["queued_recipients"],
                          ts["active_recipients"] + ts["deferred_recipients"])
    r = run450.summary["recipients"]
    assert r["received"] == r["delivered"] + r["bounced"] + r["expired"] + r["queued_at_end"]


def test_qshape_buckets_add_up_to_the_deferred_queue(run450):
    assert np.array_equal(run450.qshape.sum(axis=1), run450.timeseries["deferred"])


def test_nothing_attempted_before_its_wake_up(run450):
    a = run450.attempts
    # one row per recipient: keep one per (message, attempt time)
    mid, t = np.unique(np.stack([a["message_id"], a["t_s"]]), axis=1)
    same = mid[1:] == mid[:-1]
    gaps = np.diff(t)[same]
    # the shortest gap is the minimal backoff less the 1 s scan slack and the attempt time
    assert gaps.min() >= 300 - 1 - 60


def test_same_seed_same_results_other_seed_differs():
    a, b = simulate(seed_story()), simulate(seed_story())
    c = simulate(seed_story(), seed=2)
    for k in a.timeseries:
        assert np.array_equal(a.timeseries[k], b.timeseries[k]), k
    assert a.summary == b.summary
    assert a.summary != c.summary


def test_550_never_holds_more_backlog_than_450(run450):
    r550 = simulate(seed_story(550))
    assert (r550.timeseries["deferred"] <= run450.timeseries["deferred"]).all()
    assert r550.summary["dsn"]["backscatter"] > 0
    assert run450.summary["recipients"]["bounced"] == 0


def test_delay_warning_once_per_message():
    res = simulate(one_message(upstream={"delay_warning_time": "4h"}))
    assert res.summary["dsn"]["delay"] == 1
    res = simulate(one_message(upstream={"delay_warning_time": "4h"},
                               sender={"null_sender_fraction": 1}))
    assert res.summary["dsn"]["delay"] == 0


def test_active_queue_limit_keeps_the_rest_deferred():
    # 200 messages due at the same scan, one agent, 1 s per attempt: with an active-queue limit
    # of 50 the rest wait in the deferred queue instead of the active queue
    arrivals = [f"{1 + i * 0.001}s" for i in range(200)]
    base = {"simulation": {"duration": "600s", "sample_interval": "1s"},
            "senders": [{"arrivals": arrivals, "unknown_recipient_fraction": 1}],
            "upstream": {"default_destination_concurrency_limit": 1,
                         "smtp_transaction_time": "0s"},
            "relay": {"unknown_local_recipient_reject_code": 450},
            "changes": [{"at": "100s", "upstream": {"smtp_transaction_time": "1s"}}]}
    full = simulate(Scenario.from_dict(base))
    base["upstream"]["qmgr_message_active_limit"] = 50
    part = simulate(Scenario.from_dict(base))
    t = full.timeseries["t_s"]
    at = (t >= 310) & (t <= 400)
    assert full.timeseries["active"][at].min() > 100
    assert part.timeseries["active"].max() <= 50
    assert (part.timeseries["deferred"][at] > full.timeseries["deferred"][at]).all()
    assert np.array_equal(part.timeseries["deferred"] + part.timeseries["active"],
                          full.timeseries["deferred"] + full.timeseries["active"])


@pytest.mark.parametrize("mode, queued, turned_4xx", [
    ("none", True, 0),
    ("relay_recipient_maps", False, 0),
    ("verify", False, 1),
], ids=["none", "relay_recipient_maps", "verify"])
def test_recipient_validation_at_the_upstream(mode, queued, turned_4xx):
    s = one_message(duration="1d", upstream={"recipient_validation": mode})
    res = simulate(s, record_attempts=True)
    r = res.summary["recipients"]
    assert (r["received"] == 1) == queued
    assert r["rejected_at_upstream"] == (0 if queued else 1)
    assert r["rejected_at_upstream_4xx"] == turned_4xx  # verify answers 450 while 450 probes
    assert (res.summary["relay"]["probes"] > 0) == (mode == "verify")
    if not queued:
        assert res.attempts["t_s"].size == 0 and res.summary["dsn"]["nondelivery"] == 0


@pytest.mark.parametrize("mode, code", [("relay_recipient_maps", 550), ("verify", 550)],
                         ids=["relay_recipient_maps", "verify-bounced-probe"])
def test_upstream_soft_bounce_answers_its_own_5xx_as_4xx(mode, code):
    """The upstream's smtpd under soft_bounce = yes turns a 5xx reject into 4xx
    (smtpd_check.c): the recipient is still turned away, told to try again."""
    up = {"recipient_validation": mode, "unknown_relay_recipient_reject_code": code,
          "unverified_recipient_reject_code": code}
    hard = simulate(one_message(code=550, duration="1h", upstream=up)).summary["recipients"]
    soft = simulate(one_message(code=550, duration="1h", upstream={**up, "soft_bounce": True})
                    ).summary["recipients"]
    assert hard["rejected_at_upstream"] == soft["rejected_at_upstream"] == 1
    assert (hard["rejected_at_upstream_4xx"], soft["rejected_at_upstream_4xx"]) == (0, 1)
    assert soft["received"] == 0


def test_relay_recipient_maps_lag_lets_removed_users_through():
    # user ids drawn from 100 users; at 1 h the relay drops to 10 users; with a 1 d lag the
    # upstream still accepts mail for the removed ones, which the relay then rejects
    d = {"simulation": {"duration": "3h"},
         "senders": [{"rate": "2/m", "unknown_recipient_fraction": 0}],
         "upstream": {"recipient_validation": "relay_recipient_maps"},
         "relay": {"unknown_local_recipient_reject_code": 550},
         "changes": [{"at": "1h", "relay": {"local_users": 10}}]}
    fresh = simulate(Scenario.from_dict(d))
    d["upstream"]["relay_recipient_maps_lag"] = "1d"
    stale = simulate(Scenario.from_dict(d))
    assert fresh.summary["recipients"]["bounced"] == 0
    assert fresh.summary["recipients"]["rejected_at_upstream"] > 100
    assert stale.summary["recipients"]["bounced"] > 100
    assert stale.summary["recipients"]["rejected_at_upstream"] == 0


@pytest.mark.parametrize("mta, upstream, expect_h", [
    ("exim", {"queue_runner_interval": "30m"},
     [0, .5, 1, 1.5, 2, 2.5, 3.5, 5, 7.5, 11, 16.5, 22.5, 28.5]),
    ("qmail", {}, [0, 400 / 3600, 1600 / 3600, 1, 6400 / 3600]),
    ("exchange", {}, [0, .25, .5, .75, 1]),
    ("sendmail", {"queue_interval": "1h"}, [0, 1, 2, 3]),
], ids=["exim-q30m", "qmail", "exchange", "sendmail-q1h"])
def test_other_mta_schedules_through_the_engine(mta, upstream, expect_h):
    s = one_message(arrival="0s", duration="2d", upstream={"mta": mta, **upstream})
    res = simulate(s, record_attempts=True)
    t = res.attempts["t_s"][: len(expect_h)] / 3600
    assert np.allclose(t, expect_h, atol=1 / 3600 + 60 / 3600 * (mta in ("qmail", "exchange")))


def test_reload_with_a_new_queue_run_delay_moves_the_scan_grid():
    # a message deferred before the change is re-filed on the new 1000 s grid
    s = Scenario.from_dict({
        "simulation": {"duration": "1d"},
        "senders": [{"arrivals": ["1s"], "unknown_recipient_fraction": 1}],
        "upstream": {"smtp_transaction_time": "0s"},
        "relay": {"unknown_local_recipient_reject_code": 450},
        "changes": [{"at": "2h", "upstream": {"queue_run_delay": "1000s"}}]})
    t = simulate(s, record_attempts=True).attempts["t_s"]
    assert (t[t < 7200] % 300 == 0).sum() == (t < 7200).sum() - 1  # all but the arrival
    assert t[t > 7200].size > 5 and (t[t > 7200] % 1000 == 0).all()


def _counted(stays, n, interval):
    """qshape from _stay's differences, for stays (left_at, key, arrival, sign)."""
    from sim.model.metrics import qshape_edges
    from sim.model.qmgr.observe import stay as _stay
    d = np.zeros((n + 1, 10), dtype=np.int64)
    for left_at, key, arrival, sign in stays:
        _stay(d, qshape_edges(), interval, left_at, key, arrival, sign)
    return np.cumsum(d[:-1], axis=0)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 1e7), min_size=1, max_size=200), st.integers(1, 400))
def test_qshape_stays_bucket_like_qshape_bucket(ages, j):
    """A stay counted at filing lands in metrics.qshape_bucket's bucket, edges included, and
    only at samples in [attempt end, tick)."""
    from sim.model.metrics import qshape_bucket
    interval = 3600.0
    t = j * interval
    ages = np.array(ages + [300.0 * 2 ** k for k in range(10)])
    stays = [(t - 5.0, t + 1.0, t - a, 1) for a in ages]  # waits over sample j only
    q = _counted(stays, j + 3, interval)
    assert q[j].tolist() == np.bincount(qshape_bucket(ages), minlength=10).tolist()
    assert q.sum() == ages.size
    stays += [(t + 1.0, t + 1.0, 0.0, 1),  # an empty stay counts nowhere
              (t, t + interval, 0.0, 1)]  # ended exactly at a sample: counted there
    q = _counted(stays, j + 3, interval)
    assert q.sum() == ages.size + 1 and q[j].sum() == ages.size + 1


@settings(max_examples=50, deadline=None)
@given(st.floats(0, 2e6), st.floats(0, 3e6), st.floats(0, 1e6), st.sampled_from([60.0, 600.0,
                                                                                 3600.0]))
def test_a_long_stay_counts_every_sample_in_its_bucket(left_at, stay, before, interval):
    """A stay over many samples is counted at each sample t_j in [left_at, key), in the
    bucket of its age there, and nowhere else (the differences cross buckets, not samples)."""
    from sim.model.metrics import qshape_bucket
    key, arrival, n = left_at + stay, max(left_at - before, 0.0), 6000
    q = _counted([(left_at, key, arrival, 1)], n, interval)
    t = np.arange(n) * interval
    inside = (t >= left_at) & (t < key)
    want = np.zeros((n, 10), dtype=np.int64)
    want[np.nonzero(inside)[0], qshape_bucket(t[inside] - arrival)] = 1
    assert np.array_equal(q, want)


def test_qshape_counted_at_filing_matches_a_scan_of_the_deferred_queue(monkeypatch):
    """Across reloads that move the scan grid and an outage, the qshape counts kept as
    messages are filed equal a direct look at the deferred queue at every sample. On the
    grid's seconds (qmgr_timer_phase off): a sample at a tick's instant is then taken after
    the tick, so the queue holds what the sample counts (with the phase on, the files a scan
    takes are still deferred at its due second; test_properties checks qshape's total against
    the deferred series then)."""
    from sim.model.metrics import qshape_bucket
    from sim.model.qmgr import host as upstream
    from sim.model.qmgr.queue_file import ARRIVAL, LAST_END
    hosts, seen = [], {}
    init = upstream.QueueHost.__init__

    def capture(self, *a, **k):
        init(self, *a, **k)
        hosts.append(self)
    monkeypatch.setattr(upstream.QueueHost, "__init__", capture)
    monkeypatch.setattr(upstream.QueueHost, "MAX_TICKS", 1)
    run_ticks = upstream.QueueHost.run_ticks

    def tick_then_look(self, T):  # a sample at a tick's instant is taken after the tick
        done = run_ticks(self, T)
        if T in seen:
            look(T)
        return done
    monkeypatch.setattr(upstream.QueueHost, "run_ticks", tick_then_look)

    def look(t):
        h = hosts[0]
        files = [h.queue.files(key)[0] for key in h.queue.ticks() if key > t]
        ages = [t - f[f[:, LAST_END] <= t, ARRIVAL] for f in files]
        ages = np.concatenate(ages) if ages else np.empty(0)
        seen[t] = np.bincount(qshape_bucket(ages), minlength=10)
    s = Scenario.from_dict({
        "simulation": {"duration": "3d", "sample_interval": "10m"},
        "senders": [{"rate": "5000/d", "unknown_recipient_fraction": 0.3}],
        "upstream": {"qmgr_timer_phase": False},
        "relay": {"unknown_local_recipient_reject_code": 450,
                  "outages": [{"start": "20h", "duration": "3h"}]},
        "changes": [{"at": "36h", "upstream": {"queue_run_delay": "7m"}},
                    {"at": "180300s", "upstream": {"queue_run_delay": "1000s"}}]})
    r = simulate(s, seed=3, progress=look)
    assert r.qshape.sum() > 10_000
    for j, t in enumerate(r.timeseries["t_s"]):
        assert r.qshape[j].tolist() == seen[t].tolist(), t


FUSED_CASES = {
    "450": {},
    "550, forged and null senders, 3 recipients": {
        "relay": {"unknown_local_recipient_reject_code": 550},
        "senders": [{"rate": "4000/d", "unknown_recipient_fraction": 0.4,
                     "recipients_per_message": 3, "forged_sender_fraction": 0.3,
                     "null_sender_fraction": 0.3}]},
    "delay warnings, short bounce lifetime": {
        "upstream": {"delay_warning_time": "3h", "bounce_queue_lifetime": "1d"},
        "senders": [{"rate": "4000/d", "unknown_recipient_fraction": 0.3,
                     "null_sender_fraction": 0.2}]},
    "outages (the general path takes some scans)": {
        "relay": {"unknown_local_recipient_reject_code": 450, "outage_mtbf": "10h",
                  "outage_mttr": "1h"}},
    "small active queue (the general path takes the larger scans)": {
        "upstream": {"qmgr_message_active_limit": 40}},
    "transactions that take no time": {"upstream": {"smtp_transaction_time": "0s"}},
    "exim": {"upstream": {"mta": "exim", "queue_runner_interval": "10m"}},
    "exim, outages": {"upstream": {"mta": "exim", "queue_runner_interval": "10m"},
                      "relay": {"unknown_local_recipient_reject_code": 450,
                                "outage_mtbf": "10h", "outage_mttr": "1h"}},
    "sendmail": {"upstream": {"mta": "sendmail", "queue_interval": "10m"}},
    "qmail (no runner grid)": {"upstream": {"mta": "qmail"}},
    "exchange, outages": {"upstream": {"mta": "exchange"},
                          "relay": {"unknown_local_recipient_reject_code": 450,
                                    "outage_mtbf": "10h", "outage_mttr": "1h"}},
    "list": {"upstream": {"mta": "list", "retry_list": ["2m", "5m", "10m"], "lifetime": "1d"}},
}


def _run(s, monkeypatch, stops: bool, log: bool):
    """The scenario's run, with the engine stopped as often as it can be (one tick a call,
    tiny buffers) or as little as it needs; counts the ticks each call ran."""
    from sim.model.qmgr import host as upstream
    with monkeypatch.context() as m:
        if stops:
            m.setattr(upstream.ServiceTimes, "BLOCK", 3000)
            m.setattr(upstream.ServiceTimes, "ROOM", 1000)
            m.setattr(upstream.QueueHost, "DELAYS", 10)
            m.setattr(upstream.QueueHost, "LOG", 7)
            m.setattr(upstream.QueueHost, "MAX_TICKS", 1)
        ran = []
        run_ticks = upstream.QueueHost.run_ticks

        def count(self, T):
            done = run_ticks(self, T)
            ran.append(len(range(int(T), int(done), self.policy.interval(self.cur))))
            return done
        m.setattr(upstream.QueueHost, "run_ticks", count)
        return simulate(s, seed=5, record_attempts=log), ran


ENGINE_CASES = {
    **FUSED_CASES,
    "greylisting": {"relay": {"unknown_local_recipient_reject_code": 450,
                              "greylisting": True}},
    "hard error limit, 3 recipients": {
        "relay": {"unknown_local_recipient_reject_code": 450, "smtpd_hard_error_limit": 2},
        "senders": [{"rate": "4000/d", "unknown_recipient_fraction": 0.5,
                     "recipients_per_message": 3}]},
    "changes": {"changes": [{"at": "36h", "upstream": {"queue_run_delay": "7m",
                                                      "default_destination_concurrency_limit": 5}},
                            {"at": "50h", "relay": {"unknown_local_recipient_reject_code": 550}}]},
}


@pytest.mark.parametrize("extra", ENGINE_CASES.values(), ids=ENGINE_CASES.keys())
def test_the_engines_stops_and_the_attempt_log_change_nothing(monkeypatch, extra):
    """One engine runs every tick, many a call; where it stops to be handed more room,
    service times or log space, or after every tick, and whether it logs every attempt, the
    run is the same, bit for bit; the log holds every attempt the summary counts."""
    table = {"simulation": {"duration": "3d", "sample_interval": "30m"},
             "senders": [{"rate": "4000/d", "unknown_recipient_fraction": 0.3}],
             "relay": {"unknown_local_recipient_reject_code": 450}}
    table.update(extra)
    s = Scenario.from_dict(table)
    a, ran = _run(s, monkeypatch, stops=False, log=False)
    b, ran_b = _run(s, monkeypatch, stops=True, log=True)
    assert max(ran) >= 10 and max(ran_b) <= 1  # many ticks a call; one
    assert a.summary["attempts"] == b.summary["attempts"] > 10_000
    for k, v in a.timeseries.items():
        assert np.array_equal(v, b.timeseries[k]), k
    assert np.array_equal(a.qshape, b.qshape)
    assert a.summary == b.summary
    assert b.attempts["t_s"].size == b.summary["attempts"]


@pytest.mark.parametrize("mta, runner", [("postfix", "3h"), ("exim", "2h")])
def test_every_tick_has_the_mail_arriving_before_the_next(monkeypatch, mta, runner):
    """Senders hand over their mail far enough ahead (a chunk plus the longest queue-run
    interval) that each qmgr tick sees all mail arriving up to the next tick, even when the
    runner interval is longer than the senders' chunks (an hour at this rate)."""
    from sim.model.qmgr import host as upstream
    key = "queue_run_delay" if mta == "postfix" else "queue_runner_interval"
    s = Scenario.from_dict({
        "simulation": {"duration": "12h"},
        "senders": [{"rate": "2000000/d", "unknown_recipient_fraction": 0.3}],
        "upstream": {"mta": mta, key: runner},
        "relay": {"unknown_local_recipient_reject_code": 450}})
    seen = []
    monkeypatch.setattr(upstream.QueueHost, "MAX_TICKS", 1)
    orig = upstream.QueueHost.run_ticks

    def spy(self, T):
        seen.append((T, self.heard.min(), self.policy.interval(self.cur)))
        return orig(self, T)
    monkeypatch.setattr(upstream.QueueHost, "run_ticks", spy)
    simulate(s, seed=1)
    assert len(seen) > 3
    assert all(heard >= min(T + R, s.simulation.duration) for T, heard, R in seen)


def test_a_scan_runs_at_the_phase_of_the_loops_last_wake_up():
    """One message at 10.25 s, zero-time attempts: qmgr's loop last woke at 10.25 s, so the
    scans due at 600 s and 1200 s run at 600.25 s and 1200.25 s (Postfix events.c: whole-second
    select() timeouts counted from the last wake-up); with qmgr_timer_phase off, on the
    second."""
    on = simulate(one_message("10.25s", duration="1h"), record_attempts=True)
    assert on.attempts["t_s"][:3].tolist() == [10.25, 600.25, 1200.25]
    off = simulate(one_message("10.25s", duration="1h", upstream={"qmgr_timer_phase": False}),
                   record_attempts=True)
    assert off.attempts["t_s"][:3].tolist() == [10.25, 600.0, 1200.0]


@pytest.fixture(scope="module")
def busy_log():
    """Every attempt row (sim.model.qmgr.ATTEMPT) of a day of 450s on two agents with
    0.4 s transactions, and the run's R, backoff clamps and concurrency."""
    rows = []
    s = Scenario.from_dict({
        "simulation": {"duration": "1d", "sample_interval": "1h"},
        "senders": [{"rate": "3000/d", "unknown_recipient_fraction": 0.5}],
        "upstream": {"smtp_transaction_time": "0.4s", "queue_run_delay": "60s",
                     "minimal_backoff_time": "60s", "maximal_backoff_time": "600s",
                     "default_destination_concurrency_limit": 2},
        "relay": {"unknown_local_recipient_reject_code": 450}})
    simulate(s, seed=4, on_attempts=rows.append)
    return np.concatenate(rows)


def test_each_scan_starts_when_the_loop_wakes_for_it(busy_log):
    """For every scan: it starts at its due second plus the sub-second phase of the last
    event before that second (an arrival, an attempt's end, an earlier scan), or at the first
    event after the second if that comes first; checked from the attempt log alone."""
    a = busy_log
    retry = a["tries"] > 1
    scans = np.unique(a["entry"][retry])
    assert scans.size > 1000
    for S in scans:
        T = np.floor(S)
        others = np.concatenate([a["arrival"][~retry], a["end"],
                                 a["entry"][retry & (a["entry"] != S)]])
        before, after = others[others < T], others[others >= T]
        last = before.max()
        want = T + (last - np.floor(last))
        if after.size:
            want = min(want, after.min())
        assert S == want, (S, want)


def _scan(now, create, R, lo, hi):
    """Postfix's rule by hand: mtime = now + clamp(now - create), the first scan with
    mtime <= T + 1."""
    mtime = now + min(max(now - create, lo), hi)
    return max(np.ceil((mtime - 1) / R), 1) * R


def test_a_retry_backs_off_from_the_second_its_attempt_ended(busy_log):
    """Postfix's now is the second in which qmgr learns the attempt's end: mtime = now +
    clamp(now - create_time); the retry takes the first scan with mtime <= T + 1. Some
    attempts end in the second after they started (the loop's phase, the wait for an agent)
    and that changes their scan."""
    a = busy_log
    R, lo, hi = 60, 60, 600
    moved = 0
    for q in np.unique(a["qid"][a["tries"] > 1]):
        mine = a[a["qid"] == q]
        mine = mine[np.argsort(mine["tries"])]
        create = np.floor(mine["arrival"][0])
        for prev, nxt in zip(mine[:-1], mine[1:], strict=True):
            assert np.floor(nxt["entry"]) == _scan(np.floor(prev["end"]), create, R, lo, hi)
            moved += _scan(np.floor(prev["end"]), create, R, lo, hi) != _scan(
                np.floor(prev["start"]), create, R, lo, hi)
    assert moved > 0


def test_a_session_the_relay_going_down_cuts_is_deferred_and_logged_as_lost(tmp_path):
    """One message to a known user, 10 s transactions (constant), the relay down from 7 s to
    60 s: the session 0-10 s is cut at 7 s (Postfix: lost connection, dsn 4.4.2): deferred, not
    delivered, no reject at the relay; the backoff counts from second 7 (retry at the 600 s
    scan) and the relay is dead until 307 s. The mail log says so, and reads back."""
    from sim.model.qmgr.rules import LOST
    from sim.postfix import maillog

    rows = []
    s = Scenario.from_dict({
        "simulation": {"duration": "1h", "sample_interval": "1h"},
        "senders": [{"arrivals": ["0s"], "unknown_recipient_fraction": 0}],
        "upstream": {"smtp_transaction_time": "10s",
                     "smtp_transaction_time_distribution": "constant"},
        "relay": {"outages": [{"start": "7s", "duration": "53s"}]}})
    r = simulate(s, on_attempts=rows.append)
    a = np.concatenate(rows)
    assert a["start"].tolist() == [0.0, 600.0] and a["end"].tolist() == [7.0, 610.0]
    assert a["code"].tolist() == [LOST, 250]
    assert r.summary["recipients"]["delivered"] == 1 and r.summary["attempts"] == 2
    assert r.summary["relay"]["rejects_4xx"] == 0 and r.summary["relay"]["sessions"] == 2
    maillog.write_maillog([a], tmp_path)
    up = (tmp_path / "upstream.maillog").read_text()
    assert "dsn=4.4.2, status=deferred (lost connection with relay.example[127.0.0.1] while " \
        "sending RCPT TO)" in up
    back = maillog.read_attempts(tmp_path / "upstream.maillog")
    assert back["code"].tolist() == [LOST, 250]


def test_new_mail_that_wakes_the_loop_for_a_scan_is_fed_first():
    """One agent, 10 s transactions: A (unknown user) arrives at 10.5 s, is deferred, due at the
    600 s scan; the loop last woke at 20.5 s (A's end), so the scan would start at 600.5 s, but
    B arriving at 600.3 s wakes it then: qmgr_loop feeds B (incoming) with the scan's first
    file, so B is delivered first and A's retry waits for the agent."""
    rows = []
    s = Scenario.from_dict({
        "simulation": {"duration": "1h", "sample_interval": "1h"},
        "senders": [{"arrivals": ["10.5s"], "unknown_recipient_fraction": 1},
                    {"name": "b", "arrivals": ["600.3s"], "unknown_recipient_fraction": 0}],
        "upstream": {"smtp_transaction_time": "10s", "default_destination_concurrency_limit": 1,
                     "smtp_transaction_time_distribution": "constant"},
        "relay": {"unknown_local_recipient_reject_code": 450}})
    simulate(s, on_attempts=rows.append)
    a = np.concatenate(rows)
    b = a[a["arrival"] == 600.3][0]
    retry = a[(a["arrival"] == 10.5) & (a["tries"] == 2)][0]
    assert (b["start"], b["entry"]) == (600.3, 600.3)
    assert retry["entry"] == 600.3 and retry["start"] == pytest.approx(610.3)


def test_a_postfix_scan_takes_its_files_in_directory_order():
    """Hand-worked: three messages to an unknown user (450) arrive at 1, 2 and 3 s; one
    delivery agent, transactions of 1 s, so the first attempts end at 2, 3 and 4 s, and the
    backoff of 300 s files them all for the scan at 600 s (wake 302..304 > 300 + 1).
    Their queue files' places 0.9, 0.1, 0.5 make the scan take them as messages 1, 2, 0:
    starts 600, 601, 602 (the loop's phase is off), whatever the order they arrived in."""
    from sim.model.sender import REAL
    from sim.model.trace import Trace
    scen = Scenario.from_dict({
        "simulation": {"duration": "700s", "sample_interval": "10s"},
        "senders": [{"rate": "1/d"}], "relay": {"unknown_local_recipient_reject_code": 450},
        "upstream": {"default_destination_concurrency_limit": 1, "qmgr_timer_phase": False,
                     "smtp_transaction_time": "1s",
                     "smtp_transaction_time_distribution": "constant"}})
    trace = Trace(np.array([1.0, 2.0, 3.0]), np.full((3, 1), -1, dtype=np.int32),
                  np.full(3, REAL, dtype=np.int8), np.full(3, 500),
                  np.array([0.9, 0.1, 0.5]))
    def retries(trace):
        att = simulate(scen, record_attempts=True, trace=trace).attempts
        late = att["t_s"] > 100
        return sorted(zip(att["t_s"][late].tolist(), att["message_id"][late].tolist(),
                          strict=True))

    assert retries(trace) == [(600.0, 1), (601.0, 2), (602.0, 0)]
    # without the trace's places the run's own hashed ones decide, fixed per file
    own = retries(trace._replace(name=None))
    assert [t for t, _ in own] == [600.0, 601.0, 602.0] and own == retries(
        trace._replace(name=None))


@pytest.mark.parametrize("relay, starts", [
    ({}, [1.0, 2.0, 3.0, 4.0]),
    ({"smtpd_soft_error_limit": 2}, [1.0, 3.0, 9.0, 15.0]),
    ({"smtpd_soft_error_limit": 2, "smtpd_hard_error_limit": 4}, [1.0, 3.0, 9.0, 11.0]),
])
def test_the_relays_error_count_goes_on_in_a_cached_session(relay, starts):
    """Hand-worked: four messages to an unknown user (450) arrive at 1 s; one delivery
    agent, transactions of 1 s. The first opens the session (RCPT and DATA rejected: 2
    errors; the RSET that keeps the session sleeps 1 s), 1 to 3; the second reuses it at 3,
    past smtpd_soft_error_limit = 2: RSET, MAIL, RCPT, DATA and RSET each after a 1 s sleep,
    3 to 9 (4 errors); the third likewise, 9 to 15, the fourth starts at 15. With a hard
    limit of 4 the relay answers the second's last RSET 421 (after a sleep too: 3 to 9) and
    the third opens a new session, errors from 0: 9 to 11, the fourth at 11."""
    from sim.model.sender import REAL
    from sim.model.trace import Trace
    scen = Scenario.from_dict({
        "simulation": {"duration": "100s", "sample_interval": "10s"},
        "senders": [{"rate": "1/d"}],
        "relay": {"unknown_local_recipient_reject_code": 450, **relay},
        "upstream": {"default_destination_concurrency_limit": 1,
                     "smtp_transaction_time": "1s",
                     "smtp_transaction_time_distribution": "constant"}})
    trace = Trace(np.full(4, 1.0), np.full((4, 1), -1, dtype=np.int32),
                  np.full(4, REAL, dtype=np.int8), np.full(4, 500))
    att = simulate(scen, record_attempts=True, trace=trace).attempts
    assert att["t_s"][:4].tolist() == starts
