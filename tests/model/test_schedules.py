"""Retry schedules against the derived schedules in mta-semantics.md (sections 2.4 and 5).

Each schedule test drives messages that fail every attempt instantly: attempt at t, the retry
function gives the wake time, the next queue run (or the wake itself without a runner grid)
gives the next attempt, until the message is returned to its sender.
"""

import dataclasses

import numpy as np
import pytest

from sim.errors import ScenarioError
from sim.model.schedules import (
    POSTFIX_PRE_2_4,
    SCHEDULES,
    ExchangeParams,
    EximParams,
    EximRule,
    ListParams,
    PostfixParams,
    QmailParams,
    SendmailParams,
    due,
    exim_retry,
    next_queue_run,
    pack,
    parse_exim_rules,
    postfix_retry,
    site_due,
)
from sim.scenario import Upstream

H = 3600
DAY = 86400


def drive(name, creates, params=None, limit=10000):
    """Attempt times of each message in `creates` until it is returned (vectorised)."""
    sched = SCHEDULES[name]
    p = sched.params() if params is None else params
    create = np.asarray(creates, dtype=np.int64)
    t = create.copy()
    tries = np.zeros_like(create)
    last_fail = np.full_like(create, -1)
    last_next = np.full_like(create, -1)
    attempts = [[] for _ in create]
    live = np.arange(len(create))
    for _ in range(limit):
        if live.size == 0:
            return attempts
        tries[live] += 1
        for i in live:
            attempts[i].append(int(t[i]))
        wake, give_up = sched.retry(create[live], t[live], tries[live], last_fail[live],
                                    last_next[live], p)
        last_fail[live], last_next[live] = t[live], wake
        if sched.runner:
            wake = next_queue_run(wake, getattr(p, sched.runner), sched.slack)
        t[live] = wake
        live = live[~give_up]
    raise AssertionError(f"{name}: messages still queued after {limit} attempts")


def one(name, create=0, params=None):
    return drive(name, [create], params)[0]


# --- Postfix (section 2.4) -------------------------------------------------------------------

@pytest.mark.parametrize("create, first_ages, attempts", [
    (1, [0, 299, 599, 1199, 2399, 4799], 108),
    (150, [0, 450, 1050, 2250, 4650, 8850], 107),
], ids=["arrival-just-after-scan", "arrival-mid-grid"])
def test_postfix_default_schedule(create, first_ages, attempts):
    ages = [t - create for t in one("postfix", create)]
    assert ages[:6] == first_ages
    assert set(np.diff(ages[5:])) == {4200}  # 14 scans of 300 s, not maximal_backoff_time
    assert ages[-2] < 5 * DAY <= ages[-1]  # expires at the first failed attempt after 5 d
    assert len(ages) == attempts


def test_postfix_attempts_over_5_days_for_every_arrival_phase():
    runs = drive("postfix", np.arange(300))
    assert {len(a) for a in runs} == {107, 108}
    lags = [a[-1] - c - 5 * DAY for c, a in enumerate(runs)]
    assert 0 <= min(lags) and max(lags) <= 4200


def test_postfix_pre_2_4_defaults_give_4000_s():
    ages = [t - 1 for t in one("postfix", 1, POSTFIX_PRE_2_4)]
    assert ages[:4] == [0, 999, 1999, 3999]
    assert set(np.diff(ages[3:])) == {4000}
    assert {len(a) for a in drive("postfix", np.arange(1000), POSTFIX_PRE_2_4)} == {111, 112}


@pytest.mark.parametrize("null_sender, age, give_up", [
    (False, DAY, False), (True, DAY - 1, False), (True, DAY, True), (False, 5 * DAY, True),
], ids=["normal-at-1d", "null-just-before", "null-at-bounce-lifetime", "normal-at-5d"])
def test_postfix_bounce_queue_lifetime_for_null_sender(null_sender, age, give_up):
    p = PostfixParams(bounce_queue_lifetime=DAY)
    _, got = postfix_retry([0], [age], [3], [0], [0], p, null_sender=np.array([null_sender]))
    assert got.tolist() == [give_up]


@pytest.mark.parametrize("age, delay", [(0, 300), (299, 300), (1000, 1000), (4000, 4000),
                                        (10 * DAY, 4000)],
                         ids=["new", "below-min", "age", "at-max", "old"])
def test_postfix_backoff_is_clamped_age(age, delay):
    wake, give_up = postfix_retry([100], [100 + age], [1], [-1], [-1], PostfixParams())
    assert wake.tolist() == [100 + age + delay]
    assert give_up.tolist() == [age >= 5 * DAY]


# --- Exim (section 5.1) ----------------------------------------------------------------------

BRIEF_Q30M = [0, .5, 1, 1.5, 2, 2.5, 3.5, 5.0, 7.5, 11.0, 16.5, 22.5]
BRIEF_FAST = [0, .25, .5, .75, 1, 1.25, 1.5, 1.75, 2.0, 2.25, 3.25, 4.75, 7.0, 10.38, 15.44, 23.03]
EXACT_Q15M = [0, .25, .5, .75, 1, 1.25, 1.5, 1.75, 2.0, 2.25, 3.25, 4.75, 7.0, 10.5, 15.75, 23.5]


@pytest.mark.parametrize("interval, ultimate, head, bounce_h, attempts", [
    (1800, True, BRIEF_Q30M, 96.5, 25),
    (1800, False, BRIEF_Q30M, 100.5, 25),
    (900, True, EXACT_Q15M, 96.25, 29),
    (900, False, EXACT_Q15M, 101.5, 29),
    (1, True, BRIEF_FAST, 96.0, 29),
    (1, False, BRIEF_FAST, 101.03, 29),
], ids=["q30m", "q30m-before-4.82", "q15m", "q15m-before-4.82", "continuous-runner",
        "continuous-runner-before-4.82"])
def test_exim_default_rule(interval, ultimate, head, bounce_h, attempts):
    hours = [t / H for t in one("exim", 0, EximParams(queue_interval=interval,
                                                      ultimate_timeout=ultimate))]
    n = len(head)
    assert hours[:n] == pytest.approx(head, abs=0.01)
    assert np.diff(hours[n - 1:-1]) == pytest.approx(6.0)  # F,4d,6h until the cutoff
    assert hours[-2] <= 96 < hours[-1]
    assert hours[-1] == pytest.approx(bounce_h, abs=0.01)
    assert len(hours) == attempts


def exim_once(rules, now, last_fail=-1, last_next=-1, create=0, **kw):
    p = EximParams(rules=parse_exim_rules(rules), ultimate_timeout=False, **kw)
    wake, give_up = exim_retry([create], [now], [2], [last_fail], [last_next], p)
    return int(wake[0]) - now, bool(give_up[0])


@pytest.mark.parametrize("rules, now, last_fail, last_next, gap, give_up", [
    ("F,2h,15m", 3600, 2700, 3600, 900, False),
    ("F,2h,15m", 7200, 6300, 7200, 900, False),  # fi == cutoff still uses the rule
    ("F,2h,15m", 7201, 6300, 7200, 900, True),
    ("G,16h,1h,1.5", 600, -1, -1, 3600, False),  # first failure: the interval
    ("G,16h,1h,1.5", 8000, 7000, 7900, 3600, False),  # lastgap below the interval
    ("G,16h,1h,1.5", 20000, 10000, 15000, 7500, False),  # predicted gap 5000 < actual 10000
    ("G,16h,1h,1.5", 20000, 10000, 25000, 15000, False),  # actual gap 10000 < predicted
    ("G,16h,1h,1.333", 20000, 10000, 20000, 13330, False),  # multiplier in thousandths
    ("G,16h,1h,1.5", 20001, 10000, 20001, 15001, False),  # 15001.5 truncated, as in C
    ("G,10d,1h,1.5", 82000, 10000, 82000, DAY, False),  # 1.5 x 20 h capped at 24 h
    ("H,16h,1h,2", 20000, 10000, 20000, 3600 + 8200 + 4100, False),  # i + (g-i)//2 + (g-i)//4
    ("H,16h,1h,2", 2000, 1000, 2000, 3600, False),  # g below i: just i
    ("F,4d,6h; F,2h,15m", H, -1, -1, 6 * H, False),  # first rule in order, not smallest
    ("", 10, -1, -1, 1, True),  # no rules: temporary errors are permanent
], ids=["F", "F-at-cutoff", "F-past-last-cutoff", "G-first", "G-small-lastgap",
        "G-predicted", "G-actual", "G-fixed-point", "G-truncated", "G-capped-24h", "H-midpoint",
        "H-small", "order-not-cutoff", "no-rules"])
def test_exim_rule_semantics(rules, now, last_fail, last_next, gap, give_up):
    assert exim_once(rules, now, last_fail, last_next) == (gap, give_up)


def test_exim_h_rule_with_rng_draws_from_exims_range():
    p = EximParams(rules=parse_exim_rules("H,16h,1h,2"), ultimate_timeout=False)
    n = 2000
    wake, _ = exim_retry(np.zeros(n), np.full(n, 20000), np.full(n, 2), np.full(n, 10000),
                         np.full(n, 20000), p, rng=np.random.default_rng(1))
    gaps = wake - 20000
    assert gaps.min() >= 3600 + 8200 and gaps.max() < 3600 + 16400
    assert len(np.unique(gaps)) > 100


def test_exim_ultimate_timeout_brings_the_last_attempt_forward():
    p = EximParams()  # last cutoff 4 d
    wake, give_up = exim_retry([0], [94 * H], [20], [88 * H], [94 * H], p)
    assert wake.tolist() == [4 * DAY + 1] and give_up.tolist() == [False]
    later = dataclasses.replace(p, ultimate_timeout=False)
    assert exim_retry([0], [94 * H], [20], [88 * H], [94 * H], later)[0].tolist() == [100 * H]
    # A last rule with a shorter cutoff than an earlier one: Exim then tries the address at every
    # queue run; the wake never falls before the end of the attempt that just failed.
    odd = EximParams(rules=parse_exim_rules("F,4d,6h; F,2h,15m"))
    assert exim_retry([0], [3 * H], [5], [2 * H], [3 * H], odd)[0].tolist() == [3 * H + 1]


# --- Exim rule syntax ------------------------------------------------------------------------

@pytest.mark.parametrize("text, rules", [
    ("F,2h,15m; G,16h,1h,1.5; F,4d,6h",
     (EximRule("F", 7200, 900), EximRule("G", 57600, 3600, 1500), EximRule("F", 345600, 21600))),
    ("h,1h30m,90, 1.25;", (EximRule("H", 5400, 90, 1250),)),
    ("  F,1w,1d  ;G,2d,1h,2.0005 ", (EximRule("F", 604800, 86400),
                                      EximRule("G", 172800, 3600, 2000))),
    ("", ()),
], ids=["default", "lowercase-compound-time-trailing-semicolon", "spaces-and-extra-decimals",
        "empty-is-no-rules"])
def test_parse_exim_rules(text, rules):
    assert parse_exim_rules(text) == rules


@pytest.mark.parametrize("text, why", [
    ("X,2h,15m", "unknown rule letter"),
    ("F,2h", "expected"),
    ("G,16h,1h", "also a multiplier"),
    ("F,2h,15m,2", "also a multiplier"),
    ("F,0s,15m", "cutoff must be more than 0"),
    ("F,2h,0", "interval must be more than 0"),
    ("F,2x,15m", "bad cutoff"),
    ("F,2h,15 m", "expected"),
    ("F ,2h,15m", "expected"),
    ("G,16h,1h,0.5", "at least 1"),
    ("G,16h,1h,1.5x", "bad multiplier"),
    ("F,2h,15m G,16h,1h,1.5", "expected"),
    ("F,2h,15m;;F,4d,6h", "expected"),
    ("* * F,2h,15m", "expected"),
    (7200, ""),
], ids=["bad-letter", "missing-interval", "G-missing-multiplier", "F-extra-multiplier",
        "zero-cutoff", "zero-interval", "bad-unit", "space-in-time", "space-before-comma",
        "multiplier-below-1", "bad-multiplier", "missing-semicolon", "empty-rule",
        "whole-retry-line", "not-a-string"])
def test_parse_exim_rules_errors(text, why):
    with pytest.raises(ScenarioError) as err:
        parse_exim_rules(text)
    assert err.value.key == "upstream.exim_retry_rule"
    assert why in str(err.value)


# --- sendmail, qmail, Exchange, list (sections 5.2 to 5.5) -----------------------------------

@pytest.mark.parametrize("interval, create, attempts", [
    (1800, 0, 241), (3600, 0, 121), (1800, 1, 242), (3600, 1800, 122),
], ids=["q30m", "q1h", "q30m-off-grid-arrival", "q1h-off-grid-arrival"])
def test_sendmail_every_queue_run_until_queuereturn(interval, create, attempts):
    times = one("sendmail", create, SendmailParams(queue_interval=interval))
    assert len(times) == attempts
    assert set(np.diff(times[1:])) == {interval}
    assert times[-2] - create < 5 * DAY <= times[-1] - create


def test_sendmail_min_queue_age_skips_runs():
    times = one("sendmail", 0, SendmailParams(queue_interval=900, min_queue_age=1800))
    assert set(np.diff(times)) == {1800}


def test_qmail_quadratic_schedule():
    times = one("qmail")
    assert times == [(20 * k) ** 2 for k in range(40)]
    assert times[-1] == 608400  # attempt 40, 7.04 d: the first after queuelifetime
    local = one("qmail", 0, QmailParams(chanskip=10, queuelifetime=DAY))
    assert local == [(10 * k) ** 2 for k in range(len(local))] and local[-1] == 300 ** 2


@pytest.mark.parametrize("age, give_up", [(7 * DAY, False), (7 * DAY + 1, True)],
                         ids=["at-queuelifetime", "past-queuelifetime"])
def test_qmail_dying_only_after_queuelifetime(age, give_up):
    _, got = SCHEDULES["qmail"].retry([5], [5 + age], [40], [0], [0], QmailParams())
    assert got.tolist() == [give_up]  # qmail-send.c: recent > birth + lifetime


@pytest.mark.parametrize("name, gap, lifetime", [
    ("exchange", 900, 2 * DAY), ("exchange-online", 3600, DAY),
], ids=["exchange-server", "exchange-online"])
def test_exchange_fixed_interval_until_expiry(name, gap, lifetime):
    times = one(name)
    assert set(np.diff(times)) == {gap}
    assert times[-1] == lifetime and len(times) == lifetime // gap + 1


def test_exchange_expires_at_the_first_attempt_after_the_timeout():
    times = one("exchange", 0, ExchangeParams(message_retry_interval=1000))
    assert times[-2] < 2 * DAY <= times[-1] == 173000


@pytest.mark.parametrize("gaps, lifetime, times", [
    ((120, 300, 600), 3600, [0, 120, 420, 1020, 1620, 2220, 2820, 3420, 4020]),
    ((60,), 180, [0, 60, 120, 180]),
], ids=["last-gap-repeats", "single-gap-expiry-on-the-dot"])
def test_list_schedule(gaps, lifetime, times):
    assert one("list", 0, ListParams(gaps=gaps, lifetime=lifetime)) == times


# --- queue runs and the registry -------------------------------------------------------------

@pytest.mark.parametrize("wake, interval, slack, run", [
    (600, 300, 0, 600), (600, 300, 1, 600), (601, 300, 1, 600), (602, 300, 1, 900),
    (601, 300, 0, 900), (0, 300, 0, 300), (-50, 300, 1, 300), (1, 300, 1, 300),
    (299, 300, 0, 300),
], ids=["on-grid", "on-grid-slack", "T+1-slack-taken", "T+2-next-run", "T+1-no-slack",
        "time-zero-is-no-run", "negative", "just-after-start", "just-before-grid"])
def test_next_queue_run(wake, interval, slack, run):
    got = next_queue_run(np.array([wake]), interval, slack)
    assert got.dtype == np.int64 and got.tolist() == [run]


def test_registry_matches_scenario_choices_and_is_vectorised():
    mta = next(f for f in dataclasses.fields(Upstream) if f.name == "mta")
    assert set(SCHEDULES) == set(mta.metadata["choices"])
    rng = np.random.default_rng(7)
    n = 50
    create = rng.integers(0, 10 * DAY, n)
    now = create + rng.integers(0, 8 * DAY, n)
    tries = rng.integers(1, 30, n)
    last_fail = np.where(tries > 1, now - rng.integers(1, DAY, n), -1)
    last_next = np.where(tries > 1, now - rng.integers(0, H, n), -1)
    for name, sched in SCHEDULES.items():
        retry, params, runner, rule = sched.retry, sched.params, sched.runner, sched.rule
        p = params()
        assert runner is None or getattr(p, runner) > 0, name
        wake, give_up = retry(create, now, tries, last_fail, last_next, p)
        assert wake.dtype == np.int64 and give_up.dtype == bool, name
        assert (wake > now)[~give_up].all(), name
        for i in range(0, n, 7):  # the batch agrees with one message at a time
            w1, g1 = retry(create[i:i + 1], now[i:i + 1], tries[i:i + 1], last_fail[i:i + 1],
                           last_next[i:i + 1], p)
            assert (w1[0], g1[0]) == (wake[i], give_up[i]), name
            # and with the compiled rule the engine calls
            w2, g2 = due(rule, pack(p), create[i], now[i], tries[i], last_fail[i], last_next[i],
                         False)
            assert (w2, g2) == (wake[i], give_up[i]), name


@pytest.mark.parametrize("mta, refusals, expect", [
    # Postfix: dead for minimal_backoff_time after every refusal
    ("postfix", [0, 300, 600], [300, 600, 900]),
    # Exim: the host's own retry record, F,2h,15m first
    ("exim", [0, 900], [900, 1800]),
    # sendmail: the host-status cache, 30 min
    ("sendmail", [0], [1800]),
    # qmail and Exchange keep no memory of a refused connection
    ("qmail", [0], [0]),
    ("exchange", [0], [0]),
], ids=["postfix", "exim", "sendmail", "qmail", "exchange"])
def test_site_policies(mta, refusals, expect):
    sched = SCHEDULES[mta]
    P = pack(sched.params())
    last = (-1, -1)
    got = []
    for k, now in enumerate(refusals, start=1):
        nxt = int(site_due(sched.site, P, refusals[0], now, k, *last))
        got.append(nxt)
        last = (now, nxt)
    assert got == expect
