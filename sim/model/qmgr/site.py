"""The relay as a destination: refused while down, left alone after site-level failures
(compiled).

Public names: SITE_STATE, new_state, configure, next_down, vetoes, refuse, refused, failed,
delivered, entered, ended, lost, clear.

Contract (mta-semantics.md section 3; Postfix's qmgr_queue_throttle, Exim's host retry record,
sendmail's host-status cache):
- The site state is a float64 array of SITE_STATE: dead_until and dead_from (no delivery is
  tried in [dead_from, dead_until): dead_from is the failure that made it dead),
  first_failed (the first refusal since the relay last accepted a connection; NaN: none),
  tries (refusals since then), the last refusal and the retry time computed then, the outage
  interval last looked up, and Postfix's in-core queue for the relay: its concurrency window,
  its failed pseudo-cohorts, when its last job ended (busy_until), and the transport's
  initial concurrency, failed-cohort limit and concurrency limit (configure).
- Postfix (site DEAD), as qmgr_queue.c has it: a site-level failure (a refused connection, a
  session lost, the hard error limit's disconnection) adds 1/window to the failed cohorts;
  at default_destination_concurrency_failed_cohort_limit (> 0) the destination is dead for
  minimal_backoff_time (schedules.site_due), else the window drops by one (at least 1). A
  delivery that reached the relay with no site-level trouble (recipient rejects included)
  clears the failed cohorts and raises the window by one, up to the concurrency limit. The
  in-core queue is discarded, its window and count with it, whenever nothing is pending for
  the relay (no job waiting or in a session) and it is not dead: isolated refusals to a quiet
  destination never make it dead. A failure while dead changes nothing (qmgr does not
  throttle a dead queue); when the dead time is over, the window is the initial one again.
- Other site policies (Exim's host record, sendmail's host status, none) take every failure:
  refused(state, site, P, t) makes the destination dead until schedules.site_due(...).
- vetoes(state, site, P, down_start, down_end, t) is asked at non-decreasing times t of one
  tick's attempts: -1 if the attempt gets an SMTP session; else it gets none, because the
  relay refuses the connection at t (1: a site-level failure, `failed`) or the destination is
  dead (0: dead_from <= t < dead_until; Postfix logs "delivery temporarily suspended"). An
  attempt at a time the relay accepts forgets earlier refusals.
- refuse(state, site, P, down_start, down_end, t, n) is vetoes for n attempts back to back
  at t (a scan's batch): -1, or how many are refused before the destination is dead (each
  counts; the rest find it dead).
- failed(state, site, P, t, n): n site-level failures back to back at t; how many were
  taken before the destination was dead.
- delivered(state, n): n deliveries with no site-level trouble (positive feedback).
- entered(state, x) and ended(state, end), in queue order: a job entered the active queue at
  x (if every job before it had ended by then, the in-core queue was discarded meanwhile) and
  its attempt ended at `end`.
- lost(state, site, P, t, n): n sessions the relay's going down cut at t (Postfix's
  smtp client: "lost connection", a site-level failure each); for the other policies once,
  unless a refusal at or after t has already throttled the destination.
- clear(state, down_start, down_end, t0, t1) is True when no attempt in [t0, t1] would be
  vetoed (then the tick's jobs need no check one by one).
- P is the packed parameters of the upstream's configuration in force (schedules.pack).
Simplified: Postfix raises the window only while it is below the sessions in progress plus
the initial concurrency; relaysim raises it up to the limit (README, "what the model
simplifies"). A delivery that ends while the destination is dead does not revive it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from sim.model import schedules

SITE_STATE = ("dead_until", "first_failed", "tries", "last_fail", "last_next", "down_lo",
              "down_hi", "window", "fail_cohorts", "busy_until", "init", "cohort_limit",
              "limit", "dead_from")
(_DEAD, _FIRST, _TRIES, _LFAIL, _LNEXT, _LO, _HI, _W, _FAIL, _BUSY, _INIT, _COHORT,
 _LIMIT, _DFROM) = range(14)


def new_state(init: int = 5, cohort_limit: int = 1, limit: int = 20) -> np.ndarray:
    """A destination that has never refused a connection (Postfix's defaults: initial
    concurrency 5, failed-cohort limit 1, concurrency limit 20)."""
    st = np.array([-np.inf, np.nan, 0.0, -1.0, -1.0, -np.inf, -np.inf, 0.0, 0.0, -np.inf,
                   0.0, 0.0, 0.0, -np.inf])
    configure(st, init, cohort_limit, limit)
    return st


def configure(state: np.ndarray, init: int, cohort_limit: int, limit: int) -> None:
    """The transport's concurrency settings in force (qmgr_transport.c: the initial
    concurrency never exceeds the limit)."""
    state[_LIMIT] = limit
    state[_INIT] = min(init, limit)
    state[_COHORT] = cohort_limit
    state[_W] = min(state[_W], limit) if state[_W] else state[_INIT]


@njit(cache=True)
def next_down(down_start, down_end, t):
    """(start, end) of the first outage in force at or after t, or (inf, inf)."""
    i = np.searchsorted(down_end, t, side="right")
    if i == down_start.size:
        return np.inf, np.inf
    return down_start[i], down_end[i]


@njit(cache=True)
def refused(state, site, P, t):
    """The destination is dead until the MTA's site policy says (a site-level failure at t)."""
    now = np.int64(math.floor(t))
    if math.isnan(state[_FIRST]):
        state[_FIRST] = now
        state[_LFAIL] = state[_LNEXT] = -1.0
    state[_TRIES] += 1.0
    nxt = schedules.site_due(site, P, np.int64(state[_FIRST]), now, np.int64(state[_TRIES]),
                             np.int64(state[_LFAIL]), np.int64(state[_LNEXT]))
    state[_LFAIL] = now
    state[_LNEXT] = nxt
    state[_DEAD] = max(float(nxt), t)
    state[_DFROM] = t
    return True


@njit(cache=True, inline="always")
def dead(state, t):
    """True if the destination is dead at t: from the failure that made it so (a session an
    earlier tick cut may end after a later tick's jobs enter) until dead_until."""
    return state[_DFROM] <= t < state[_DEAD]


@njit(cache=True)
def failed(state, site, P, t, n):
    """n site-level failures back to back at t (see the contract); how many were taken
    before the destination was dead (the rest find it dead)."""
    if site != schedules.DEAD:
        refused(state, site, P, t)
        return min(n, 1)
    for k in range(n):
        if dead(state, t):
            return k  # dead already: qmgr does not throttle a dead queue
        state[_FAIL] += 1.0 / state[_W]
        if state[_COHORT] > 0 and state[_FAIL] >= state[_COHORT]:
            refused(state, site, P, t)
            state[_W] = state[_INIT]  # as it is unthrottled, minimal_backoff_time later
            state[_FAIL] = 0.0
            return k + 1
        state[_W] = max(state[_W] - 1.0, 1.0)
    return n


@njit(cache=True)
def delivered(state, n):
    """n deliveries that reached the relay with no site-level trouble."""
    if n > 0:
        state[_FAIL] = 0.0
        state[_W] = min(state[_W] + n, state[_LIMIT])


@njit(cache=True, inline="always")
def entered(state, x):
    """A job entered the active queue at x, in queue order (see the contract)."""
    if x > state[_BUSY]:
        state[_W] = state[_INIT]
        state[_FAIL] = 0.0


@njit(cache=True, inline="always")
def ended(state, end):
    """A job's attempt ended at `end`."""
    if end > state[_BUSY]:
        state[_BUSY] = end


@njit(cache=True)
def _down(state, down_start, down_end, t):
    """True if the relay refuses connections at t; an accepted connection forgets refusals."""
    if not (state[_LO] <= t < state[_HI]):
        if t >= state[_HI]:
            state[_LO], state[_HI] = next_down(down_start, down_end, t)
        if not (state[_LO] <= t < state[_HI]):
            state[_FIRST] = np.nan  # it accepts connections again
            state[_TRIES] = 0.0
            return False
    return True


@njit(cache=True)
def vetoes(state, site, P, down_start, down_end, t):
    """-1 if an attempt at t gets an SMTP session, 1 if the relay refuses it, 0 if the
    destination is dead (see the contract)."""
    return refuse(state, site, P, down_start, down_end, t, 1)


@njit(cache=True)
def refuse(state, site, P, down_start, down_end, t, n):
    """-1 if n attempts back to back at t get SMTP sessions, else how many of them the
    relay refuses before the destination is dead (the rest find it dead; see the
    contract)."""
    if dead(state, t):
        return 0
    if not _down(state, down_start, down_end, t):
        return -1
    return failed(state, site, P, t, n)


@njit(cache=True)
def lost(state, site, P, t, n):
    """n sessions cut at t by the relay's going down (see the contract)."""
    if site == schedules.DEAD:
        failed(state, site, P, t, n)
    elif state[_DEAD] < t:
        refused(state, site, P, t)


@njit(cache=True)
def clear(state, down_start, down_end, t0, t1):
    """True if no attempt in [t0, t1] would be vetoed."""
    return (t0 >= state[_DEAD] or t1 < state[_DFROM]) and next_down(
        down_start, down_end, t0)[0] > t1
