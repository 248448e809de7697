"""The active queue: how one qmgr tick's messages get delivery agents, and which get none.

Public names: serve.

Contract (mta-semantics.md sections 2 and 3):
- serve(entry, n_scan, T, service, relay, up, st) -> (start, end, vetoed, cut, service
  times used)
  for the tick's jobs in queue order: the first n_scan are a runner's scan and enter
  together at T (at most qmgr_message_active_limit of them; the rest enter as earlier jobs of
  the scan end, entry is updated in place), the rest at their own (sorted) entry times. The
  delivery agents (st.free: when each is free) serve them first come first served
  (sim.model.agents.fifo), one service time each (the shape's draws, mean 1,
  sim.model.agents.Shape, times the mean transaction time up.mean; none when the mean is 0),
  in queue order.
- A job gets no SMTP session (vetoed: start = end, no agent time) when the destination is dead
  or the relay refuses it (sim.model.qmgr.site); an outage that begins during a scan's batch
  refuses the rest of the batch at that moment and frees the agents then.
- A session under way when the relay goes down is cut there (cut: it ends at the outage's
  start, its agent free then; Postfix logs "lost connection", every recipient deferred) and
  throttles the destination as a site-level failure (site.lost).
Nothing here counts anything.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.model.agents import fifo
from sim.model.qmgr import site


@njit(cache=True)
def serve(entry, n_scan, T, service, relay, up, st):
    """(start, end, vetoed, cut, service times used) of the tick's jobs in queue order: the
    first n_scan enter together at T (a runner's scan), the rest at their own sorted times.
    Each job takes one service time (its shape's draw times the mean; none when the mean is
    0)."""
    n = entry.size
    start = np.empty(n)
    end = np.empty(n)
    vetoed = np.zeros(n, dtype=np.bool_)
    cut = np.zeros(n, dtype=np.bool_)
    P = up.P[up.cur]
    used = 0
    if n_scan:
        if site.vetoes(st.site, up.site, P, relay.down_start, relay.down_end, T):
            start[:n_scan] = T
            end[:n_scan] = T
            vetoed[:n_scan] = True
        else:
            s, e, fr = fifo(entry[:n_scan], service[:n_scan] * up.mean, st.free)
            st.free[:] = fr
            used = n_scan if up.mean > 0 else 0  # no transaction time: no draws
            o_start = site.next_down(relay.down_start, relay.down_end, T)[0]
            # the relay goes down during the batch: the sessions under way are cut then, and
            # the jobs not started yet are refused when an agent is free (at once, if a
            # session was cut)
            first = np.searchsorted(s, max(o_start, T))
            lost = _cut(s[:first], e[:first], cut[:first], o_start)
            if first < n_scan:
                s_f = o_start if lost else s[first]
                site.vetoes(st.site, up.site, P, relay.down_start, relay.down_end, s_f)
                s[first:] = s_f
                e[first:] = s_f
                vetoed[first:n_scan] = True
            if lost or first < n_scan:
                for a in range(st.free.size):
                    st.free[a] = min(st.free[a], o_start if lost else s[first])
            start[:n_scan] = s
            end[:n_scan] = e
        limit = up.active_limit
        for i in range(limit, n_scan):  # the rest wait until the active queue has room
            entry[i] = max(T, end[i - limit])
    if n > n_scan:
        m = n - n_scan
        svc = service[used:used + m] * up.mean
        s, e, fr = fifo(entry[n_scan:], svc, st.free)
        if site.clear(st.site, relay.down_start, relay.down_end, s[0], s[m - 1]):
            st.free[:] = fr
            o = site.next_down(relay.down_start, relay.down_end, s[0])[0]
            if _cut(s, e, cut[n_scan:], o):
                for a in range(st.free.size):
                    st.free[a] = min(st.free[a], o)
        else:  # one by one: a vetoed job takes no agent time
            for q in range(m):
                a = 0
                for b in range(1, st.free.size):
                    if st.free[b] < st.free[a]:
                        a = b
                x = entry[n_scan + q]
                s[q] = x if x >= st.free[a] else st.free[a]
                if site.vetoes(st.site, up.site, P, relay.down_start, relay.down_end, s[q]):
                    e[q] = s[q]
                    vetoed[n_scan + q] = True
                else:
                    e[q] = s[q] + svc[q]
                    o = site.next_down(relay.down_start, relay.down_end, s[q])[0]
                    if o < e[q]:
                        e[q], cut[n_scan + q] = o, True
                    st.free[a] = e[q]
        start[n_scan:] = s
        end[n_scan:] = e
        used += m if up.mean > 0 else 0
    if cut.any():
        first = np.inf
        for i in range(n):
            if cut[i]:
                first = min(first, end[i])
        site.lost(st.site, up.site, P, first)
    return start, end, vetoed, cut, used


@njit(cache=True)
def _cut(s, e, cut, o):
    """Sessions (jobs started before o, none refused) under way at o, when the relay goes
    down, end there; True if any did."""
    any_cut = False
    for i in range(s.size):
        if s[i] < o < e[i]:
            e[i], cut[i] = o, True
            any_cut = True
    return any_cut
