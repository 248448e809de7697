"""The relay as a destination: refused while down, left alone after a refusal (compiled).

Public names: SITE_STATE, new_state, next_down, vetoes, refused, lost, clear.

Contract (mta-semantics.md section 3; Postfix's qmgr_queue_throttle, Exim's host retry record,
sendmail's host-status cache):
- The site state is a float64 array of SITE_STATE: dead_until (no delivery is tried before it),
  first_failed (the first refusal since the relay last accepted a connection; NaN: none),
  tries (refusals since then), the last refusal and the retry time computed then, and the
  outage interval last looked up.
- vetoes(state, site, P, down_start, down_end, t) is asked at non-decreasing times t of one
  tick's attempts: True if the attempt gets no SMTP session, because the destination is dead
  (t < dead_until) or the relay refuses the connection at t (then `refused` throttles it). An
  attempt at a time the relay accepts forgets earlier refusals.
- refused(state, site, P, t) records a site-level failure at t: the destination is dead until
  schedules.site_due(site, P, ...) (whole seconds, never before t).
- lost(state, site, P, t): a session the relay's going down cut at t (Postfix's smtp client:
  "lost connection", a site-level failure); it throttles like a refusal unless a refusal at
  or after t has already.
- clear(state, down_start, down_end, t0, t1) is True when no attempt in [t0, t1] would be
  vetoed (then the tick's jobs need no check one by one).
- P is the packed parameters of the upstream's configuration in force (schedules.pack).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from sim.model import schedules

SITE_STATE = ("dead_until", "first_failed", "tries", "last_fail", "last_next", "down_lo",
              "down_hi")
_DEAD, _FIRST, _TRIES, _LFAIL, _LNEXT, _LO, _HI = range(7)


def new_state() -> np.ndarray:
    """A destination that has never refused a connection."""
    return np.array([-np.inf, np.nan, 0.0, -1.0, -1.0, -np.inf, -np.inf])


@njit(cache=True)
def next_down(down_start, down_end, t):
    """(start, end) of the first outage in force at or after t, or (inf, inf)."""
    i = np.searchsorted(down_end, t, side="right")
    if i == down_start.size:
        return np.inf, np.inf
    return down_start[i], down_end[i]


@njit(cache=True)
def refused(state, site, P, t):
    """A site-level failure at t: throttle as the MTA's site policy says."""
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
    return True


@njit(cache=True)
def vetoes(state, site, P, down_start, down_end, t):
    """True if an attempt at t gets no SMTP session (see the contract)."""
    if t < state[_DEAD]:
        return True
    if not (state[_LO] <= t < state[_HI]):
        if t >= state[_HI]:
            state[_LO], state[_HI] = next_down(down_start, down_end, t)
        if not (state[_LO] <= t < state[_HI]):
            state[_FIRST] = np.nan  # it accepts connections again
            state[_TRIES] = 0.0
            return False
    return refused(state, site, P, t)


@njit(cache=True)
def lost(state, site, P, t):
    """A session cut at t by the relay's going down (see the contract)."""
    if state[_DEAD] < t:
        refused(state, site, P, t)


@njit(cache=True)
def clear(state, down_start, down_end, t0, t1):
    """True if no attempt in [t0, t1] would be vetoed."""
    return t0 >= state[_DEAD] and next_down(down_start, down_end, t0)[0] > t1
