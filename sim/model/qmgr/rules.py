"""The queue manager's per-message rules, each stated once, compiled; the engine and readers
use them (sim.model.qmgr.engine).

Public names: runner_tick, tick_key, scan_start, file_place, scan_order, snapshot, greylist,
hard_error_hit, soft_bounce, dsn_count, delay_warning, reply_code, LOST, SUSPENDED, NO_SESSION.

Contract (mta-semantics.md sections 2 to 5; whole seconds are Postfix's time_t):
- The relay's answer to one recipient is sim.model.relay.outcome (known: sent; unknown: the
  reject code's outcome, after the relay's soft_bounce), then the upstream's soft_bounce
  (soft_bounce: a 5xx is deferred); the retry after a deferral is
  sim.model.schedules.due (backoff, or the MTA's schedule, and expiry); the destination's
  throttle is sim.model.qmgr.site. What is re-filed: a message with deferred recipients that
  does not expire, carrying only its deferred recipients.
- runner_tick / tick_key: which qmgr tick takes a message with a given wake-up time.
- scan_start: when Postfix's event loop runs the deferred scan due at a whole second.
- file_place / scan_order: the order in which Postfix's deferred scan reads its queue files
  (directory order, fixed by each file's name, unrelated to arrival).
- snapshot: the relay's or upstream's configuration in force at a time (scheduled changes).
- greylist: postgrey's decision for one message's attempt (a triplet per message).
- hard_error_hit: smtpd_hard_error_limit at the relay: the session is disconnected.
- dsn_count: the non-delivery notices one attempt causes (a bounced recipient, or expiry;
  never for null-sender mail, whose failures are discarded under default notify_classes).
- delay_warning: Postfix's delay_warning_time rule (qmgr_active.c).
- reply_code: the SMTP code the upstream logs for one recipient's attempt (LOST: none, the
  session was cut; 0 and SUSPENDED: no session, NO_SESSION).
Nothing here keeps state or counts anything.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from sim.model import schedules
from sim.model.relay import BOUNCED, DEFERRED, SENT
from sim.model.sender import NULL


@njit(cache=True)
def runner_tick(wake, pending, interval, slack):
    """The tick that takes a message with this wake-up time on a runner grid: the pending
    tick if the message is due by then (a runner under way has passed it already, and after
    a reload the pending tick may be off the new grid), else the first runner start
    (schedules.queue_run)."""
    return pending if wake - slack <= pending else schedules.queue_run(wake, interval, slack)


@njit(cache=True)
def tick_key(wake, pending, R, slack, grid):
    """The tick that takes a message with this wake-up time: on a runner grid, runner_tick;
    without one (ticks every R s serving each message at its own time), the tick before the
    wake-up time, which serves everything due up to the next tick, no earlier than the
    pending tick."""
    if grid:
        return runner_tick(wake, pending, R, slack)
    return max((-(-wake // R) - 1) * R, pending)


@njit(cache=True)
def scan_start(T, last, first):
    """When qmgr's deferred scan due at whole second T starts (Postfix events.c). Timers are
    whole seconds (due at event_present + delay, event_present = time() at the wake-up), and
    select() then sleeps `due - time()` whole seconds counted from the moment it is called: the
    loop, which last went to sleep just after the event at `last` (-inf: none), wakes at T plus
    that event's sub-second phase, unless an event at `first` (a delivery agent's status, new
    mail; first >= T, inf: none) wakes it earlier; timers are run first at a wake-up. The scan
    re-arms its timer at time() + queue_run_delay, so the grid stays whole seconds."""
    s = T + (last - math.floor(last)) if last > -np.inf else T
    return min(s, first)


@njit(cache=True)
def file_place(qid, salt):
    """A queue file's place in its directory's order, in [0, 1): a hash of its queue id
    (splitmix64 of qid + salt). qmgr_scan reads the hashed deferred directories with
    readdir(), which on ext4 (dir_index) returns names in the order of a per-filesystem
    keyed hash of each name: fixed for a file, unrelated to when it arrived (the live load
    run: 453 of 453 pairs of messages met in two or more scans came in the same order each
    time). The salt stands for the filesystem's hash key and the queue ids' random part."""
    z = np.uint64(qid) + np.uint64(salt) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.float64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def scan_order(place):
    """The order in which a scan reads files with these places in [0, 1) (file_place):
    ascending, ties in the given order. A bucket sort, then one insertion sort over the
    buckets (each element moves only within its own): linear time on hashed places, which
    are uniform."""
    n = place.size
    order = np.empty(n, dtype=np.int64)
    fill = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        fill[min(np.int64(place[i] * n), n - 1) + 1] += 1
    for b in range(n):
        fill[b + 1] += fill[b]
    key = np.empty(n)
    for i in range(n):
        b = min(np.int64(place[i] * n), n - 1)
        key[fill[b]] = place[i]
        order[fill[b]] = i
        fill[b] += 1
    for j in range(1, n):
        x = key[j]
        if key[j - 1] <= x:
            continue
        m = order[j]
        q = j - 1
        while q >= 0 and key[q] > x:
            key[q + 1] = key[q]
            order[q + 1] = order[q]
            q -= 1
        key[q + 1] = x
        order[q + 1] = m
    return order


@njit(cache=True)
def snapshot(times, t):
    """Index of the configuration in force at t, for configurations starting at `times`
    (scheduled changes; the first one for times before 0)."""
    if times.size == 1:
        return 0
    return max(np.searchsorted(times, t, side="right") - 1, 0)


@njit(cache=True)
def greylist(first, ok_before, start, delay, retry_window, whitelisted_at, tried):
    """postgrey before the relay's recipient check, for one message's attempt at `start`
    (first: its triplet's first attempt, -1 none; ok_before: it has passed; tried: the attempt
    reached the relay). A new triplet is deferred with 450 4.2.0 until `delay` has passed since
    its first attempt; a first retry later than `retry_window` starts over; a whitelisted
    client (from whitelisted_at on) passes. Returns (first, passes now, newly passed, held)."""
    if first < 0 or (not ok_before and start - first > retry_window):
        first = start
    waited = start - first >= delay
    passed = ok_before or waited or start >= whitelisted_at
    return first, tried and passed, tried and passed and not ok_before and waited, \
        tried and not passed


@njit(cache=True)
def hard_error_hit(rejected, limit):
    """smtpd_hard_error_limit: a session with `limit` or more rejected RCPTs gets 421 and is
    disconnected before DATA; the upstream sees a lost connection, a site-level failure, and
    defers every recipient. Derived from Postfix's smtpd.c, not verified on a live system."""
    return limit > 0 and rejected >= limit


@njit(cache=True)
def soft_bounce(out, on):
    """The upstream's soft_bounce = yes (on) for one recipient the relay answered (out): a 5xx
    (BOUNCED) is deferred, with the upstream's backoff, as any deferral. Postfix's smtp client
    hands a 5xx to bounce_append, which under soft_bounce logs status=SOFTBOUNCE, writes the
    recipient to the defer log with its status as 4.x.x and reports it not done, so it stays
    in the queue file (global/bounce.c bounce_append_intern; smtp/smtp_trouble.c). At expiry
    qmgr returns the message like any deferred one: "status=expired, returned to sender" and
    defer_flush, which soft_bounce does not change (qmgr/qmgr_active.c, global/defer.c); only
    bounce_flush, never reached then, refuses. Else out unchanged."""
    return DEFERRED if on and out == BOUNCED else out


@njit(cache=True)
def dsn_count(kind, bounced, expired):
    """Non-delivery notices to the sender after one attempt: one if a recipient bounced, one
    if the message expired; none for null-sender mail (no bounce of a bounce)."""
    if kind == NULL:
        return 0
    return (1 if bounced > 0 else 0) + (1 if expired else 0)


@njit(cache=True)
def delay_warning(now, create, kind, warned, dwt):
    """Postfix's delayed-mail notice at a deferral that keeps the message: once, for
    non-null-sender mail, when now >= create + delay_warning_time - 1 (dwt > 0)."""
    return dwt > 0 and warned == 0 and kind != NULL and now >= create + dwt - 1


LOST = -1  # reply_code of a session the relay's going down cut: no reply ("lost connection")
SUSPENDED = -2  # reply_code without a try: the destination is dead ("delivery temporarily
# suspended"); 0: the relay refused the connection
NO_SESSION = (0, SUSPENDED)  # codes of attempts that had no SMTP session (relay=none)


@njit(cache=True)
def reply_code(out, user, users, code, vetoed, suspended, held, hit, lost):
    """The code logged for one recipient: 0 without an SMTP session because the relay
    refused the connection, SUSPENDED because the destination was dead, LOST for a session
    cut by the relay's going down, 421 for a session cut by the hard error limit, 450 for a
    greylisted known recipient, 250 sent, else the relay's reject code for unknown users
    (code)."""
    if vetoed:
        return SUSPENDED if suspended else 0
    if lost:
        return LOST
    if hit:
        return 421
    if out == SENT:
        return 250
    if out == DEFERRED and held and 0 <= user < users:
        return 450
    return code if out in (DEFERRED, BOUNCED) else 0


@njit(cache=True)
def now_of(t):
    """Postfix's time_t of a time in seconds."""
    return np.int64(math.floor(t))
