"""The active queue: how one qmgr tick's messages get delivery agents, and which get none.

Public names: serve.

Contract (mta-semantics.md sections 2 and 3):
- serve(entry, n_scan, T, service, relay, up, st, sessions=None) -> (start, end, vetoed,
  suspended, cut, service times used)
  for the tick's jobs in queue order: the first n_scan are a runner's scan and enter
  together at T (at most qmgr_message_active_limit of them; the rest enter as earlier jobs of
  the scan end, entry is updated in place), the rest at their own (sorted) entry times. The
  delivery agents (st.free: when each is free) serve them first come first served
  (sim.model.agents.fifo), one service time each (the shape's draws, mean 1,
  sim.model.agents.Shape, times the mean transaction time up.mean; none when the mean is 0),
  in queue order.
- A job gets no SMTP session (vetoed: start = end, no agent time) when the relay refuses it
  or the destination is dead (suspended as well; sim.model.qmgr.site); an outage that
  begins during a scan's batch refuses the rest of the batch at that moment and frees the
  agents then.
- With sessions (sim.model.agents.Sessions: Postfix's connection cache and the relay's
  smtpd_soft_error_limit), each job also holds its agent for the relay smtpd's sleeps in the
  agent's session (agents.session_time); when the relay goes down every session is gone.
- A session under way when the relay goes down is cut there (cut: it ends at the outage's
  start, its agent free then; Postfix logs "lost connection", every recipient deferred) and
  throttles the destination as a site-level failure (site.lost).
Nothing here counts anything.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.model.agents import Sessions, fifo, session_time
from sim.model.qmgr import site


@njit(cache=True)
def serve(entry, n_scan, T, service, relay, up, st, sessions=None):
    """(start, end, vetoed, suspended, cut, service times used) of the tick's jobs in queue
    order: the first n_scan enter together at T (a runner's scan), the rest at their own
    sorted times.
    Each job takes one service time (its shape's draws times the mean; none when the mean is
    0)."""
    n = entry.size
    start = np.empty(n)
    end = np.empty(n)
    vetoed = np.zeros(n, dtype=np.bool_)
    suspended = np.zeros(n, dtype=np.bool_)
    cut = np.zeros(n, dtype=np.bool_)
    P = up.P[up.cur]
    sv, ds, de = st.site, relay.down_start, relay.down_end
    used = 0
    if n_scan:
        site.entered(sv, T)
        r = site.refuse(sv, up.site, P, ds, de, T, n_scan)
        if r >= 0:
            start[:n_scan] = T
            end[:n_scan] = T
            vetoed[:n_scan] = True
            suspended[r:n_scan] = True
        else:
            s, e, fr = fifo(entry[:n_scan], service[:n_scan] * up.mean, st.free,
                            _jobs(sessions, 0, n_scan))
            st.free[:] = fr
            used = n_scan if up.mean > 0 else 0  # no transaction time: no draws
            o_start = site.next_down(ds, de, T)[0]
            # the relay goes down during the batch: the sessions under way are cut then, and
            # the jobs not started yet are refused when an agent is free (at once, if a
            # session was cut)
            first = np.searchsorted(s, max(o_start, T))
            lost = _cut(s[:first], e[:first], cut[:first], o_start)
            site.delivered(sv, first - lost)
            if lost or first < n_scan:
                _hang_up(sessions)
                s_f = o_start if lost else s[first]
                for a in range(st.free.size):
                    st.free[a] = min(st.free[a], s_f)
                if first < n_scan:
                    r = site.refuse(sv, up.site, P, ds, de, s_f, n_scan - first)
                    if r >= 0:  # the rest of the batch finds the destination dead
                        suspended[first + r:n_scan] = True
                if lost:
                    site.lost(sv, up.site, P, o_start, lost)
                s[first:] = s_f
                e[first:] = s_f
                vetoed[first:n_scan] = True
            start[:n_scan] = s
            end[:n_scan] = e
        for i in range(n_scan):
            site.ended(sv, end[i])
        limit = up.active_limit
        for i in range(limit, n_scan):  # the rest wait until the active queue has room
            entry[i] = max(T, end[i - limit])
    if n > n_scan:
        m = n - n_scan
        svc = service[used:used + m] * up.mean
        s, e, fr = fifo(entry[n_scan:], svc, st.free, _jobs(sessions, n_scan, n))
        if site.clear(sv, ds, de, s[0], s[m - 1]):
            st.free[:] = fr
            o = site.next_down(ds, de, s[0])[0]
            lost = _cut(s, e, cut[n_scan:], o)
            for q in range(m):  # the deliveries, then the sessions cut after them
                site.entered(sv, entry[n_scan + q])
                site.delivered(sv, 0 if cut[n_scan + q] else 1)
                site.ended(sv, e[q])
            if lost:
                _hang_up(sessions)
                for a in range(st.free.size):
                    st.free[a] = min(st.free[a], o)
                site.lost(sv, up.site, P, o, lost)
        else:  # one by one: a vetoed job takes no agent time
            o_cut, n_cut = np.inf, 0  # sessions cut at o_cut, not yet taken as failures
            for q in range(m):
                a = 0
                for b in range(1, st.free.size):
                    if st.free[b] < st.free[a]:
                        a = b
                x = entry[n_scan + q]
                s[q] = x if x >= st.free[a] else st.free[a]
                if n_cut and s[q] >= o_cut:
                    site.lost(sv, up.site, P, o_cut, n_cut)
                    n_cut = 0
                site.entered(sv, x)
                v = site.vetoes(sv, up.site, P, ds, de, s[q])
                if v >= 0:
                    e[q] = s[q]
                    vetoed[n_scan + q] = True
                    suspended[n_scan + q] = v == 0
                    if v == 1:  # refused: the relay is down, its sessions gone
                        _hang_up(sessions)
                else:
                    e[q] = s[q] + svc[q]
                    if sessions is not None:
                        e[q] += session_time(sessions, a, n_scan + q, s[q], st.free[a])
                    if _cut(s[q:q + 1], e[q:q + 1], cut[n_scan + q:n_scan + q + 1],
                            site.next_down(ds, de, s[q])[0]):
                        o_cut, n_cut = e[q], n_cut + 1
                        _hang_up(sessions)
                    else:
                        site.delivered(sv, 1)
                    st.free[a] = e[q]
                site.ended(sv, e[q])
            if n_cut:
                site.lost(sv, up.site, P, o_cut, n_cut)
        start[n_scan:] = s
        end[n_scan:] = e
        used += m if up.mean > 0 else 0
    return start, end, vetoed, suspended, cut, used


@njit(cache=True)
def _jobs(sessions, lo, hi):
    """The Sessions of jobs lo..hi-1 (None stays None)."""
    if sessions is None:
        return None
    return Sessions(sessions.state, sessions.rejected[lo:hi], sessions.accepted[lo:hi],
                    sessions.par)


@njit(cache=True)
def _hang_up(sessions):
    """The relay went down: every agent's session is gone."""
    if sessions is not None:
        sessions.state[:, 1] = -np.inf


@njit(cache=True)
def _cut(s, e, cut, o):
    """Sessions (jobs started before o, none refused) under way at o, when the relay goes
    down, end there; how many did."""
    k = 0
    for i in range(s.size):
        if s[i] < o < e[i]:
            e[i], cut[i] = o, True
            k += 1
    return k

