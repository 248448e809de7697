"""Destination concurrency: c delivery agents serving the relay's in-core queue, first come first
served, computed for whole batches.

Public names: Agents.

Contract:
- Agents(c) models `default_destination_concurrency_limit` SMTP client processes working one
  FIFO queue (qmgr's in-core queue for the relay; all mail goes to one destination, and with
  one-recipient jobs qmgr's preemptive scheduler never reorders them). free[k] is the time agent
  k is next free.
- batch(T, n, draw) serves n jobs that all enter at time T (one deferred-queue scan) and returns
  their (start, end) times in start order. It is exact, not an approximation: service times are
  independent of the job, so they can be attached to agents instead of jobs (agent k's j-th job
  takes S[k, j]). Agent k is then available at the points p[k,0] = max(free[k], T) and
  p[k,j] = p[k,j-1] + S[k,j]; FIFO hands the n jobs the n smallest points, because each agent's
  points increase. Cost: one sort of about n numbers.
- timed(entries, draw, site) serves jobs that enter one by one at sorted times (new mail); a
  job waits only if every agent is busy. It is the textbook c-server FIFO recursion, run in a
  plain loop because each job depends on the one before; `site` may veto a job (relay down or
  throttled) so that it takes no agent time.
- draw(shape) returns service times (seconds); a mean of 0 is allowed (zero-time attempts).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

import numpy as np


class Agents:
    """A pool of c delivery agents (see the module contract)."""

    def __init__(self, c: int, t0: float = 0.0):
        self.free = np.full(c, float(t0))

    def resize(self, c: int, t: float) -> None:
        """A reload with a new concurrency limit: keep the c earliest-free agents, or add idle."""
        f = np.sort(self.free)
        self.free = f[:c] if c <= f.size else np.concatenate([f, np.full(c - f.size, t)])

    def batch(self, T: float, n: int, draw: Callable) -> tuple[np.ndarray, np.ndarray]:
        """Start and end times of n jobs entering together at T (sorted by start)."""
        c = self.free.size
        base = np.maximum(self.free, T)
        if n == 0:
            return np.empty(0), np.empty(0)
        per = n // c + 1
        while True:
            m = int(per + 4 * np.sqrt(per) + 4)
            pts = np.empty((c, m + 1))
            pts[:, 0] = base
            np.cumsum(draw((c, m)), axis=1, out=pts[:, 1:])
            pts[:, 1:] += base[:, None]
            cand = pts[:, :m].ravel()
            pick = np.argpartition(cand, n - 1)[:n] if n < cand.size else np.arange(cand.size)
            order = pick[np.argsort(cand[pick], kind="stable")]
            last = cand[order[-1]]
            # every agent must have a point beyond the n-th smallest, or it ran out of points
            if (pts[:, m] > last).all() or (pts[:, m] == pts[:, 0]).all():
                break
            per *= 2
        row, col = np.divmod(order, m)
        start = cand[order]
        end = pts[row, col + 1]
        used = np.bincount(row, minlength=c)
        self.free = pts[np.arange(c), used]
        return start, end

    def timed(self, entries: np.ndarray, draw: Callable,
              site: Callable[[float], bool] | None = None):
        """(start, end, vetoed) of jobs entering at sorted `entries`, served FIFO.

        site(t) -> True vetoes the job at time t: it fails at once, taking no agent time."""
        n = entries.size
        start = np.empty(n)
        end = np.empty(n)
        vetoed = np.zeros(n, dtype=bool)
        service = draw((n,)).tolist()
        heap = self.free.tolist()
        heapq.heapify(heap)
        for i, a in enumerate(entries.tolist()):
            f = heap[0]
            s = a if a >= f else f
            if site is not None and site(s):
                start[i] = end[i] = s
                vetoed[i] = True
                continue
            e = s + service[i]
            heapq.heapreplace(heap, e)
            start[i] = s
            end[i] = e
        self.free = np.array(heap)
        return start, end, vetoed
