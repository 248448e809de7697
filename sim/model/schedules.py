"""Retry schedules of upstream MTAs: when a deferred message is tried again, and when returned.

Public names: SCHEDULES, Schedule, pack, due, site_due, next_queue_run, queue_run,
postfix_retry, postfix_due, exim_retry, exim_due, exim_next, exim_ultimate, sendmail_retry,
qmail_retry, exchange_retry, list_retry, parse_exim_rules, EximRule, PostfixParams,
POSTFIX_PRE_2_4, EximParams, EXIM_DEFAULT_RETRY, SendmailParams, QmailParams, ExchangeParams,
ExchangeOnlineParams, ListParams; the rule numbers POSTFIX .. LIST and the site rules DEAD ..
NO_MEMORY.

Contract:
- Every schedule is one pure, vectorised function
      <mta>_retry(create, now, tries, last_fail, last_next, p) -> (wake, give_up)
  called after a failed (temporary) delivery attempt of a batch of messages. Inputs are int64
  arrays of whole seconds since the start of the run, like Postfix's time_t: `create` = queue
  entry at this MTA, `now` = end of the failed attempt, `tries` = attempts so far including this
  one (>= 1), `last_fail` / `last_next` = time of the previous failure and the wake computed then
  (-1 on the first failure). `p` is the schedule's frozen parameters object (whole seconds).
  Outputs: `wake` (int64) = earliest time of the next attempt, before queue-runner quantisation;
  `give_up` (bool) = return the message to its sender now instead of retrying. `wake` has no
  meaning where `give_up` is set. No input is modified; nothing is random unless an rng is given.
- Each rule is stated once, as a compiled function of one message's scalars: due(rule, P, ...)
  chooses it by the schedule's number, with P = pack(params) (int64); the vectorised functions
  above and the qmgr's tick engine both call it. site_due(site, P, ...) is the same for
  site-level failures.
- next_queue_run(wake, interval, slack) -> the first runner start T = k * interval (k >= 1;
  runners start at every multiple of `interval` since time 0) with wake <= T + slack. Postfix:
  interval = queue_run_delay, slack = 1 s (the qmgr skips files whose mtime > time() + 1). Exim
  and sendmail: the -q interval, slack 0. qmail, Exchange and `list` have no runner grid: the
  engine uses `wake` directly.
- SCHEDULES maps the names of sim.scenario's `upstream.mta` to Schedule(retry, params, runner,
  slack, rule, site, phase): the vectorised function, its parameters class (defaults = the
  MTA's defaults), the name of the params field holding the runner interval (None: no grid),
  the slack, the rule's number and the site-level policy's: how long a host that refused a
  connection is left alone (Postfix: dead for minimal_backoff_time; Exim: the host's own retry
  record; sendmail: the host-status cache); phase: the runner is an event loop of
  whole-second timers (Postfix's qmgr, sim.model.qmgr.rules.scan_start); pairs: the retry
  record of a 4xx to RCPT belongs to the (recipient, sender) pair (Exim,
  sim.model.qmgr.retry_records), when the senders make pairs repeat. A new schedule is a
  new entry (and, for a new rule, a branch of `due`), never an `if` in the engine.

Policies (citation keys as in the domain brief mta-semantics.md):
- postfix_retry (PF25/PF37 src/qmgr/qmgr_active.c): wake = now + clamp(now - create,
  minimal_backoff_time, maximal_backoff_time); give_up = now >= create + lifetime, where lifetime
  is bounce_queue_lifetime for null-sender mail and maximal_queue_lifetime otherwise. Null
  senders are per message, so they come as the keyword `null_sender` (bool array; None = none).
  POSTFIX_PRE_2_4 holds the 2.3-and-earlier defaults (1000/1000/4000, queue_run_delay 1000).
- exim_retry (EXIM src/src/retry.c retry_update; deliver.c): rules parsed from Exim's syntax by
  parse_exim_rules. fi = now - create: Exim takes max(now - first_failed, message_age) for
  recipient (4xx to RCPT) errors, and first_failed >= create. Exim keys the record per
  (recipient, sender): with unique pairs (the senders' default) that is a record per message,
  as here; pairs that repeat share one (sim.model.qmgr.retry_records, from exim_next and
  exim_ultimate: exim_due is exim_next on fi = now - create, then exim_ultimate).
  (Exim's 7 d retry_data_expire never bites: a record is rewritten at least every 24 h.)
  The first rule in order with fi <= cutoff applies; none -> give_up (the record's next try
  then comes from the last rule, Exim's final_rule). F: next = now + i.
  G: lastgap = min(last_next - last_fail, now - last_fail) (0 on the first failure),
  next = now + (i if lastgap < i else lastgap * m), with Exim's integer arithmetic (m in
  thousandths, truncated). H: next = now + i + an extra drawn by Exim from [(g - i)/2, g - i)
  when g = lastgap * m exceeds i; relaysim takes (g - i)//2 + (g - i)//4 (the middle of that
  range) unless an `rng` (numpy Generator) is given. next is capped at now + retry_interval_max.
  With `ultimate_timeout` (Exim 4.82 and later, ChangeLog "Fix ultimate retry timeouts for
  intermittently deliverable recipients"), a queue run routes an address whose message is older
  than the last rule's cutoff even before its retry time, so wake is also capped at
  create + last cutoff + 1 s; that attempt then fails with fi > cutoff and bounces. Set it False
  for older Exim, where the bounce waits for the next retry time. wake is never before now + 1.
- sendmail_retry (SM src/envelope.c dropenvelope): wake = now + max(MinQueueAge, 1 s): a queue
  run that started before the attempt ended has passed the message already. give_up =
  now >= create + Timeout.queuereturn (today's code; older releases compared with >).
- qmail_retry (QMAIL qmail-send.c nextretry, pass_dochan): wake = create +
  (floor(sqrt(age)) + chanskip)^2 and give_up = age > queuelifetime ("dying": the next temporary
  failure is made permanent). qmail takes age at the start of the pass; relaysim has only the end
  of the attempt and uses now - create. On schedule the age is a perfect square (c k)^2, so the
  wake is the same unless the attempt lasted more than 2 c k s, except the very first attempt
  (k = 0), whose wake moves from c^2 to (isqrt(d) + c)^2 after a transaction of d >= 1 s;
  give_up differs only for an attempt that straddles create + queuelifetime.
- exchange_retry (learn.microsoft.com Set-TransportServer/Service): wake = now +
  MessageRetryInterval (15 min); give_up = now >= create + MessageExpirationTimeout (2 d).
  ExchangeOnlineParams: expiration 24 h; its 1 h retry interval is an ASSUMPTION (no official
  source; third-party reports say about 30 min, then hourly). Whether Exchange uses the message
  retry interval for a 4xx to RCPT is itself unconfirmed.
- list_retry: explicit gaps; gap k follows the k-th attempt, the last repeats; give_up =
  now >= create + lifetime.
Errors: parse_exim_rules raises ScenarioError with key `upstream.exim_retry_rule`. The retry
functions check nothing: the scenario bounds-checks parameters before a run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numba import njit

from sim.errors import ScenarioError

DAY = 86400


def _int64(*arrays) -> list[np.ndarray]:
    return [np.asarray(a, dtype=np.int64) for a in arrays]


def next_queue_run(wake, interval: int, slack: int = 0) -> np.ndarray:
    """First runner start T = k * interval, k >= 1, with wake <= T + slack."""
    wake = np.asarray(wake, dtype=np.int64)
    return _queue_runs(wake.ravel(), int(interval), int(slack)).reshape(wake.shape)


@njit(cache=True)
def queue_run(wake, interval, slack):
    """next_queue_run for one wake-up time (whole seconds), compiled for the qmgr's scan."""
    k = -((slack - wake) // interval)  # ceil((wake - slack) / interval)
    return max(k, 1) * interval


@njit(cache=True)
def _queue_runs(wake, interval, slack):
    out = np.empty_like(wake)
    for i in range(wake.size):
        out[i] = queue_run(wake[i], interval, slack)
    return out


# --- Postfix ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class PostfixParams:
    """Postfix 2.4 to 3.x defaults, in seconds, under Postfix's parameter names."""
    queue_run_delay: int = 300
    minimal_backoff_time: int = 300
    maximal_backoff_time: int = 4000
    maximal_queue_lifetime: int = 5 * DAY
    bounce_queue_lifetime: int = 5 * DAY


POSTFIX_PRE_2_4 = PostfixParams(queue_run_delay=1000, minimal_backoff_time=1000)


def postfix_retry(create, now, tries, last_fail, last_next, p: PostfixParams, *,
                  null_sender=None) -> tuple[np.ndarray, np.ndarray]:
    """Backoff by queue age, clamped; expiry at the first failed attempt after the lifetime
    (postfix_due per message)."""
    return _retry(POSTFIX, pack(p), create, now, tries, last_fail, last_next, null_sender)


@njit(cache=True)
def postfix_due(create, now, null, minimal, maximal, lifetime, bounce_lifetime):
    """One message's (wake, give_up) under postfix_retry, compiled for the qmgr's scan."""
    # Age, not attempt count: the gap roughly doubles the age each time, up to the cap.
    # Upper clamp first, then lower, as qmgr_active.c does (the minimum wins if they cross).
    delay = max(min(now - create, maximal), minimal)
    return now + delay, now >= create + (bounce_lifetime if null else lifetime)


# --- Exim ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EximRule:
    """One Exim retry rule: letter F, G or H, cutoff and interval in seconds, multiplier in
    thousandths (Exim's fixed point; 1500 = 1.5)."""
    letter: str
    cutoff: int
    interval: int
    multiplier: int = 1000


EXIM_RULE_KEY = "upstream.exim_retry_rule"
_EXIM_ALLOWED = ("Exim retry rules like 'F,2h,15m; G,16h,1h,1.5; F,4d,6h': F,<cutoff>,<interval> "
                 "or G|H,<cutoff>,<interval>,<multiplier at least 1>, separated by semicolons; "
                 "times like 90s, 15m, 2h, 1h30m, 4d, 1w")
_TIME_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": DAY, "w": 7 * DAY}
_RULE = re.compile(r"([A-Za-z]),\s*([0-9A-Za-z]*),\s*([0-9A-Za-z]*)(?:,\s*([0-9A-Za-z.]*))?")


def _exim_time(text: str, what: str) -> int:
    """Exim's readconf_readtime: digit groups each with an optional unit, summed; > 0."""
    if not re.fullmatch(r"(?:\d+[smhdw]?)+", text):
        raise ValueError(f"bad {what} {text!r}")
    seconds = sum(int(n) * _TIME_UNIT[u] for n, u in re.findall(r"(\d+)([smhdw]?)", text))
    if seconds <= 0:
        raise ValueError(f"{what} must be more than 0")
    return seconds


def _exim_fixed(text: str) -> int:
    """Exim's readconf_readfixed: a decimal in thousandths (later digits ignored); >= 1.0."""
    m = re.fullmatch(r"(\d+)(?:\.(\d*))?", text)
    if not m:
        raise ValueError(f"bad multiplier {text!r}")
    value = int(m.group(1)) * 1000 + int(((m.group(2) or "") + "000")[:3])
    if value < 1000:
        raise ValueError("the multiplier must be at least 1")
    return value


def parse_exim_rules(text: str, key: str = EXIM_RULE_KEY) -> tuple[EximRule, ...]:
    """Rules from the retry part of an Exim retry line, e.g. 'F,2h,15m; G,16h,1h,1.5'.

    An empty text is no rules, as in Exim: every temporary failure is then final."""
    if not isinstance(text, str):
        raise ScenarioError(key, text, _EXIM_ALLOWED)
    items = [s.strip() for s in text.split(";")]
    if items and not items[-1]:
        items.pop()  # Exim accepts one trailing semicolon
    rules = []
    for item in items:
        try:
            m = _RULE.fullmatch(item)
            if not m:
                raise ValueError("expected <letter>,<cutoff>,<interval>[,<multiplier>]")
            letter, cutoff, interval, mult = m.groups()
            letter = letter.upper()
            if letter not in "FGH" or (letter == "F") != (mult is None):
                raise ValueError("F takes a cutoff and an interval; G and H also a multiplier"
                                 if letter in "FGH" else f"unknown rule letter {letter!r}")
            rules.append(EximRule(letter, _exim_time(cutoff, "cutoff"),
                                  _exim_time(interval, "interval"),
                                  1000 if mult is None else _exim_fixed(mult)))
        except ValueError as e:
            raise ScenarioError(key, text, _EXIM_ALLOWED, f"{e} in {item!r}") from None
    return tuple(rules)


EXIM_DEFAULT_RETRY = "F,2h,15m; G,16h,1h,1.5; F,4d,6h"  # configure.default, 4.69 to today


@dataclass(frozen=True)
class EximParams:
    """Exim defaults; queue_interval is the -q<interval> of the queue runner (Debian: 30m)."""
    rules: tuple[EximRule, ...] = parse_exim_rules(EXIM_DEFAULT_RETRY)
    queue_interval: int = 1800
    retry_interval_max: int = DAY
    ultimate_timeout: bool = True


def exim_retry(create, now, tries, last_fail, last_next, p: EximParams, *,
               rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """retry.c's next try from the first rule whose cutoff covers the failing interval
    (exim_due per message; with `rng`, H rules draw their extra at random)."""
    create = np.asarray(create, dtype=np.int64)
    u = None if rng is None else rng.random(create.shape)
    return _retry(EXIM, pack(p), create, now, tries, last_fail, last_next, None, u)


@njit(cache=True)
def exim_due(P, create, now, last_fail, last_next, u):
    """One message's (wake, give_up) under exim_retry. P = pack(EximParams): the number of
    rules, retry_interval_max, ultimate_timeout, then (letter 0 F / 1 G / 2 H, cutoff,
    interval, multiplier in thousandths) per rule; u in [0, 1) draws an H rule's extra at
    random, u < 0 takes the middle of its range."""
    next_try, give_up = exim_next(P, now - create, now, last_fail, last_next, u)
    return exim_ultimate(P, next_try, create, now), give_up


@njit(cache=True, inline="always")
def exim_next(P, fi, now, last_fail, last_next, u):
    """retry.c retry_update for one retry record after a failure at `now` that has been
    failing for fi seconds: (next_try, timed out). The first rule whose cutoff covers fi
    gives the next try; when none does, the record has timed out and the last rule gives it
    (Exim's final_rule); with no rules at all, now. last_fail / last_next: the record's
    last_try and next_try (-1: a new record, lastgap 0)."""
    n = P[0]
    if n == 0:
        return now, True
    r = -1
    for k in range(n):  # the first rule in the order written that covers fi
        if fi <= P[3 + 4 * k + 1]:
            r = k
            break
    give_up = r < 0
    if give_up:
        r = n - 1
    letter, i, m = P[3 + 4 * r], P[3 + 4 * r + 2], P[3 + 4 * r + 3]
    # a new record has last_try = next_try = now: lastgap 0
    lastgap = 0 if last_fail < 0 else min(last_next - last_fail, now - last_fail)
    grown = lastgap * m // 1000
    gap = i
    if letter == 1:
        gap = i if lastgap < i else grown
    elif letter == 2:
        extra = max(grown - i, 0)
        if u < 0:
            gap = i + extra // 2 + extra // 4
        else:
            gap = i + np.int64(u * max(extra, 1)) // 2 + extra // 2
    return now + min(gap, P[1]), give_up


@njit(cache=True, inline="always")
def exim_ultimate(P, next_try, create, now):
    """When a message created at `create` whose retry record says next_try is next tried:
    with the ultimate timeout (P[2]), a queue run routes it once it is older than the last
    rule's cutoff although next_try is later (retry_ultimate_address_timeout); never before
    now + 1."""
    wake = next_try
    if P[2] and P[0] > 0:
        wake = min(wake, create + P[3 + 4 * (P[0] - 1) + 1] + 1)
    return max(wake, now + 1)


# --- sendmail, qmail, Exchange, explicit list ------------------------------------------------

@dataclass(frozen=True)
class SendmailParams:
    """sendmail: -q interval (no built-in value; 30m is typical), MinQueueAge, queuereturn."""
    queue_interval: int = 1800
    min_queue_age: int = 0
    queuereturn: int = 5 * DAY
    hoststatus: int = 1800  # Timeout.hoststatus (conf.c MciInfoTimeout = 30 MINUTES)


def sendmail_retry(create, now, tries, last_fail, last_next, p: SendmailParams
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Every queue run tries the message once it has aged MinQueueAge since its last attempt."""
    return _retry(SENDMAIL, pack(p), create, now, tries, last_fail, last_next)


@dataclass(frozen=True)
class QmailParams:
    """qmail-send: chanskip 20 for remote (10 for local) deliveries; control/queuelifetime."""
    chanskip: int = 20
    queuelifetime: int = 7 * DAY


@njit(cache=True)
def isqrt(x):
    """floor(sqrt(x)) of a non-negative int64, exact."""
    r = np.int64(math.floor(math.sqrt(x)))
    if r * r > x:  # float rounding, either way
        r -= 1
    if (r + 1) * (r + 1) <= x:
        r += 1
    return r


def qmail_retry(create, now, tries, last_fail, last_next, p: QmailParams
                ) -> tuple[np.ndarray, np.ndarray]:
    """Quadratic schedule on the message's age: attempts at birth + (c k)^2 when on time."""
    return _retry(QMAIL, pack(p), create, now, tries, last_fail, last_next)


@dataclass(frozen=True)
class ExchangeParams:
    """Exchange Server 2010-2019: MessageRetryInterval, MessageExpirationTimeout."""
    message_retry_interval: int = 900
    message_expiration_timeout: int = 2 * DAY


@dataclass(frozen=True)
class ExchangeOnlineParams(ExchangeParams):
    """Exchange Online: 24 h expiration; the 1 h retry interval is an ASSUMPTION."""
    message_retry_interval: int = 3600
    message_expiration_timeout: int = DAY


def exchange_retry(create, now, tries, last_fail, last_next, p: ExchangeParams
                   ) -> tuple[np.ndarray, np.ndarray]:
    """A fixed retry interval until the expiration timeout."""
    return _retry(EXCHANGE, pack(p), create, now, tries, last_fail, last_next)


@dataclass(frozen=True)
class ListParams:
    """Explicit gaps after the 1st, 2nd, ... attempt (the last repeats) and a lifetime."""
    gaps: tuple[int, ...] = (120, 300, 600)
    lifetime: int = 5 * DAY


def list_retry(create, now, tries, last_fail, last_next, p: ListParams
               ) -> tuple[np.ndarray, np.ndarray]:
    """Gap number `tries` from the list, the last one repeating."""
    return _retry(LIST, pack(p), create, now, tries, last_fail, last_next)


# --- the rules, compiled: one function per rule, chosen by the schedule's number ----------------
# P is a schedule's parameters packed as int64 (pack), so that compiled code takes any schedule.
POSTFIX, EXIM, SENDMAIL, QMAIL, EXCHANGE, LIST = range(6)


def pack(p) -> np.ndarray:
    """A parameters object as the int64 vector its rule reads (see each *_due)."""
    if isinstance(p, PostfixParams):
        v = [p.minimal_backoff_time, p.maximal_backoff_time, p.maximal_queue_lifetime,
             p.bounce_queue_lifetime]
    elif isinstance(p, EximParams):
        v = [len(p.rules), p.retry_interval_max, int(p.ultimate_timeout)]
        for r in p.rules:
            v += ["FGH".index(r.letter), r.cutoff, r.interval, r.multiplier]
    elif isinstance(p, SendmailParams):
        v = [p.min_queue_age, p.queuereturn, p.hoststatus]
    elif isinstance(p, QmailParams):
        v = [p.chanskip, p.queuelifetime]
    elif isinstance(p, ExchangeParams):
        v = [p.message_retry_interval, p.message_expiration_timeout]
    else:
        v = [p.lifetime, len(p.gaps), *p.gaps]
    return np.array(v, dtype=np.int64)


@njit(cache=True)
def due(rule, P, create, now, tries, last_fail, last_next, null, u=-1.0):
    """(wake, give_up) of one message after a failed attempt, under schedule `rule` with
    packed parameters P (the contract's inputs, scalars)."""
    if rule == POSTFIX:
        return postfix_due(create, now, null, P[0], P[1], P[2], P[3])
    if rule == EXIM:
        return exim_due(P, create, now, last_fail, last_next, u)
    if rule == SENDMAIL:  # a queue run that started before now has passed the message
        return now + max(P[0], 1), now >= create + P[1]
    if rule == QMAIL:  # create + (floor(sqrt(age)) + chanskip)^2; dying past queuelifetime
        age = max(now - create, 0)
        return create + (isqrt(age) + P[0]) ** 2, age > P[1]
    if rule == EXCHANGE:
        return now + P[0], now >= create + P[1]
    # LIST: gap number `tries`, the last repeating
    return now + P[2 + min(max(tries, 1), P[1]) - 1], now >= create + P[0]


@njit(cache=True)
def _due_many(rule, P, create, now, tries, last_fail, last_next, null, u):
    wake = np.empty_like(now)
    give_up = np.empty(now.size, dtype=np.bool_)
    for k in range(now.size):
        wake[k], give_up[k] = due(rule, P, create[k], now[k], tries[k], last_fail[k],
                                  last_next[k], null[k], u[k])
    return wake, give_up


def _retry(rule, P, create, now, tries, last_fail, last_next, null=None, u=None):
    """due over arrays (broadcast together), as the public *_retry functions offer it."""
    arrays = np.broadcast_arrays(*_int64(create, now, tries, last_fail, last_next))
    shape = arrays[0].shape
    null = np.zeros(shape, dtype=bool) if null is None else np.broadcast_to(
        np.asarray(null, dtype=bool), shape)
    u = np.full(shape, -1.0) if u is None else np.broadcast_to(np.asarray(u, float), shape)
    wake, give_up = _due_many(rule, P, *(a.ravel() for a in arrays), null.ravel(), u.ravel())
    return wake.reshape(shape), give_up.reshape(shape)


# --- site-level failures (the relay refuses connections) ----------------------------------------
# site_due(site, P, first_failed, now, tries, last_fail, last_next) -> the time before which no
# delivery to the host is tried, after the host refused a connection at `now` (whole seconds).
# first_failed: the first refusal since the host last accepted a connection; tries counts them.
# DEAD: Postfix's qmgr marks the destination dead and unthrottles it minimal_backoff_time later
#   (qmgr_queue.c qmgr_queue_throttle / qmgr_queue_unthrottle_wrapper; P[0] of Postfix's pack).
# HOST_RECORD: Exim's host error updates the host's own retry record (key = the IP address),
#   with the same rules, fi counted from the host's first failure (retry.c); mail to the host
#   waits for it; when the rules time out, the host is tried at each queue run.
# HOST_STATUS: sendmail's host-status cache keeps the host down for Timeout.hoststatus (30 min,
#   conf.c MciInfoTimeout; P[2] of sendmail's pack); queue runs skip its mail meanwhile.
# NO_MEMORY: qmail's qmail-tcpto records only connect timeouts; Exchange's glitch retries (1 min)
#   are shorter than a queue tick (an ASSUMPTION: Microsoft documents the intervals, not how they
#   interact with a refused connection); `list` has none.
DEAD, HOST_RECORD, HOST_STATUS, NO_MEMORY = range(4)


@njit(cache=True)
def site_due(site, P, first_failed, now, tries, last_fail, last_next):
    """When a host that refused a connection at `now` is tried again (see above)."""
    if site == DEAD:
        return now + P[0]
    if site == HOST_RECORD:
        wake, give_up = exim_due(P, first_failed, now, last_fail, last_next, -1.0)
        return now if give_up else wake
    if site == HOST_STATUS:
        return now + P[2]
    return now


@njit(cache=True)
def host_deferral(site):
    """True if, under this site policy, a deferral for a site-level reason (no SMTP session,
    or a session lost) leaves the message's own retry state alone and the message is visited
    again at the next queue run: Exim's host error updates only the host's retry record, and
    while it holds the host back each queue run defers the message ("retry time not reached
    for any host", deliver.c; checked live, results/validation/exim/outage)."""
    return site == HOST_RECORD


# --- registry --------------------------------------------------------------------------------

class Schedule(NamedTuple):
    """One MTA's schedule as the engine uses it."""
    retry: Callable[..., tuple[np.ndarray, np.ndarray]]  # the vectorised rule, for readers
    params: type
    runner: str | None  # params field with the queue-runner interval; None: no runner grid
    slack: int  # seconds by which a runner may start before the wake time
    rule: int  # its rule for compiled code: due(rule, pack(params), ...)
    site: int  # when a host that refused a connection is tried again: site_due(site, ...)
    phase: bool = False  # runner timers of whole seconds in an event loop (Postfix's qmgr:
    # a scan starts at the loop's sub-second phase, sim.model.qmgr.rules.scan_start)
    pairs: bool = False  # a 4xx to RCPT is remembered per (recipient, sender) pair, not per
    # message (Exim's R: keys, sim.model.qmgr.retry_records)
    hashed: bool = False  # a scan reads its queue files in directory order, not in the order
    # they were filed (Postfix's qmgr_scan: sim.model.qmgr.rules.scan_order)


SCHEDULES: dict[str, Schedule] = {
    "postfix": Schedule(postfix_retry, PostfixParams, "queue_run_delay", 1, POSTFIX, DEAD,
                        True, hashed=True),
    "exim": Schedule(exim_retry, EximParams, "queue_interval", 0, EXIM, HOST_RECORD,
                     pairs=True),
    "sendmail": Schedule(sendmail_retry, SendmailParams, "queue_interval", 0, SENDMAIL,
                         HOST_STATUS),
    "qmail": Schedule(qmail_retry, QmailParams, None, 0, QMAIL, NO_MEMORY),
    "exchange": Schedule(exchange_retry, ExchangeParams, None, 0, EXCHANGE, NO_MEMORY),
    "exchange-online": Schedule(exchange_retry, ExchangeOnlineParams, None, 0, EXCHANGE,
                                NO_MEMORY),
    "list": Schedule(list_retry, ListParams, None, 0, LIST, NO_MEMORY),
}
