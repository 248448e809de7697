"""Destination concurrency: c delivery agents serving the relay's in-core queue, first come first
served, computed for whole batches.

Public names: Agents, ServiceTimes.

Contract:
- Agents(c) models `default_destination_concurrency_limit` SMTP client processes working one
  FIFO queue (qmgr's in-core queue for the relay; all mail goes to one destination, and with
  one-recipient jobs qmgr's preemptive scheduler never reorders them). free[k] is the time agent
  k is next free.
- batch(T, n, draw) serves n jobs that all enter at time T (one deferred-queue scan) and returns
  their (start, end) times in queue order. It is exact, not an approximation: service times
  are independent of the job, so they can be attached to agents instead of jobs (agent k's
  j-th job takes S[k, j]). Agent k is then available at the points p[k,0] = max(free[k], T)
  and p[k,j] = p[k,j-1] + S[k,j]; FIFO hands the queue's i-th job the i-th smallest point,
  because each agent's points increase: a c-way merge of the agents' points (merge, numba).
- timed(entries, draw, site) serves jobs that enter one by one at sorted times (new mail); a
  job waits only if every agent is busy. It is the textbook c-server FIFO recursion, a loop
  because each job depends on the one before: compiled (fifo, numba) when nothing can be
  vetoed, in Python when `site` may veto a job (relay down or throttled) so that it takes no
  agent time.
- draw(shape) returns service times (seconds); a mean of 0 is allowed (zero-time attempts).
- ServiceTimes(rng).take(n) hands out the generator's standard exponential variates in order:
  the same numbers rng.standard_exponential(n) would give at that point; window(n) shows the
  next ones (at least n) without taking them, for compiled code that takes what it uses
  (skip(k)). Blocks grow from FIRST to BLOCK variates; once a run needs a second block, a
  helper thread draws the following blocks ahead while the model computes (numpy draws
  without holding the GIL, and so do the compiled kernels); close() stops it.
"""

from __future__ import annotations

import heapq
import math
import queue
import threading
from collections.abc import Callable

import numpy as np
from numba import njit


class Agents:
    """A pool of c delivery agents (see the module contract)."""

    def __init__(self, c: int, t0: float = 0.0):
        self.free = np.full(c, float(t0))

    def resize(self, c: int, t: float) -> None:
        """A reload with a new concurrency limit: keep the c earliest-free agents, or add idle."""
        f = np.sort(self.free)
        self.free = f[:c] if c <= f.size else np.concatenate([f, np.full(c - f.size, t)])

    def batch(self, T: float, n: int, draw: Callable) -> tuple[np.ndarray, np.ndarray]:
        """Start and end times of n jobs entering together at T, in FIFO order (starts
        ascending: the queue's i-th job gets the i-th earliest agent)."""
        c = self.free.size
        if n == 0:
            return np.empty(0), np.empty(0)
        per = n // c + 1
        while True:
            start, end, free = merge(self.free, T, draw((c, self.points(per))), n)
            if start.size == n:
                break
            per *= 2  # an agent ran out of drawn service times: draw again, twice as many
        self.free = free
        return start, end

    # service times drawn per agent expected to take `per` jobs: share * per + spread *
    # sqrt(per) + extra; enough in all but rare cases (4 standard deviations and 4 jobs more)
    SPARE = (1.0, 4.0, 4.0)

    @classmethod
    def points(cls, per: int) -> int:
        """Service times to draw per agent when each is expected to take `per` jobs."""
        return int(points(per, *cls.SPARE))

    def timed(self, entries: np.ndarray, draw: Callable,
              site: Callable[[float], bool] | None = None, clear: Callable | None = None):
        """(start, end, vetoed) of jobs entering at sorted `entries`, served FIFO.

        site(t) -> True vetoes the job at time t: it fails at once, taking no agent time.
        clear(t0, t1) -> True promises that site would veto nothing in [t0, t1]; then the jobs
        are served by the compiled recursion (fifo) instead of the Python loop."""
        n = entries.size
        service = draw((n,))
        free0 = self.free
        if clear is not None and n:
            start, end, self.free = fifo(entries, service, self.free)
            if clear(float(start[0]), float(start[-1])):
                return start, end, np.zeros(n, dtype=bool)
            self.free = free0
        return self._loop(entries, service, site)

    def _loop(self, entries, service, site):
        n = entries.size
        start = np.empty(n)
        end = np.empty(n)
        vetoed = np.zeros(n, dtype=bool)
        heap = self.free.tolist()
        heapq.heapify(heap)
        for i, (a, d) in enumerate(zip(entries.tolist(), service.tolist(), strict=True)):
            f = heap[0]
            s = a if a >= f else f
            if site is not None and site(s):
                start[i] = end[i] = s
                vetoed[i] = True
                continue
            e = s + d
            heapq.heapreplace(heap, e)
            start[i] = s
            end[i] = e
        self.free = np.array(heap)
        return start, end, vetoed


class ServiceTimes:
    """One generator's standard exponential variates, drawn in blocks (see the contract)."""

    BLOCK = 1 << 19  # variates per block (4 MiB); the first blocks are smaller, from FIRST
    FIRST = 1 << 13  # up, doubling, so that a short run draws little it does not use
    ROOM = 1 << 16  # free room before each block: a window across a block's end moves the
    #                 old block's rest there instead of copying the new block
    AHEAD = 2  # blocks the helper thread may have ready

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.block = np.empty(0)
        self.pos = 0
        self.used = 0  # blocks handed out so far
        self.drawn = 0  # blocks drawn so far
        self.ready: queue.Queue | None = None
        self.stop = threading.Event()

    def take(self, n: int) -> np.ndarray:
        """The next n variates (a view of the stream's current block)."""
        a, i = self.window(n)
        self.pos = i + n
        return a[i:i + n]

    def window(self, n: int) -> tuple[np.ndarray, int]:
        """(a, i): a[i:i + n] are the next n variates, and what follows them in a comes next
        too; nothing is taken (skip(k) takes the first k)."""
        rest = self.block.size - self.pos
        if rest < n:
            new = self._next_block()
            if rest <= self.ROOM and n <= rest + new.size - self.ROOM:
                new[self.ROOM - rest:self.ROOM] = self.block[self.pos:]
                self.block, self.pos = new, self.ROOM - rest
            else:
                parts = [self.block[self.pos:], new[self.ROOM:]]
                while sum(p.size for p in parts) < n:
                    parts.append(self._next_block()[self.ROOM:])
                self.block, self.pos = np.concatenate(parts), 0
        return self.block, self.pos

    def skip(self, k: int) -> None:
        """Take the first k variates of the window (see window)."""
        self.pos += k

    def _draw(self) -> np.ndarray:
        self.drawn += 1
        a = np.empty(self.ROOM + min(self.BLOCK, self.FIRST << (self.drawn - 1)))
        self.rng.standard_exponential(out=a[self.ROOM:])
        return a

    def _next_block(self) -> np.ndarray:
        """A block of variates after ROOM free places."""
        self.used += 1
        if self.ready is not None:
            return self.ready.get()
        block = self._draw()
        if self.used == 2:  # a run that needs a second block: the thread draws from the third
            self.ready = queue.Queue(self.AHEAD)
            threading.Thread(target=self._draw_ahead, daemon=True,
                             name="relaysim-service-times").start()
        return block

    def _draw_ahead(self) -> None:
        while not self.stop.is_set():
            block = self._draw()
            while not self.stop.is_set():
                try:
                    self.ready.put(block, timeout=0.1)
                    break
                except queue.Full:
                    continue

    def close(self) -> None:
        """Stop the helper thread (if any); take() must not be called afterwards."""
        self.stop.set()


@njit(cache=True)
def points(per, share, spread, extra):
    """Agents.points, for compiled callers (Agents.SPARE passed in)."""
    return np.int64(share * per + spread * math.sqrt(per) + extra)


@njit(cache=True)
def fifo(entries, service, free):
    """The c-server FIFO recursion, compiled: job i starts at max(entries[i], earliest free
    agent) and holds that agent for service[i]. Returns (start, end, agents' free times); the
    free times are a binary min-heap (their order carries no meaning)."""
    heap = free.copy()
    c = heap.size
    for k in range(c // 2 - 1, -1, -1):
        _sift(heap, k)
    n = entries.size
    start = np.empty(n)
    end = np.empty(n)
    for i in range(n):
        a = entries[i]
        s = a if a >= heap[0] else heap[0]
        e = s + service[i]
        start[i] = s
        end[i] = e
        heap[0] = e
        _sift(heap, 0)
    return start, end, heap


@njit(cache=True, inline="always")
def _sift(heap, k):
    """Move heap[k] down until neither child is smaller."""
    c = heap.size
    v = heap[k]
    while True:
        j = 2 * k + 1
        if j >= c:
            break
        if j + 1 < c and heap[j + 1] < heap[j]:
            j += 1
        if heap[j] >= v:
            break
        heap[k] = heap[j]
        k = j
    heap[k] = v


@njit(cache=True)
def merge(free, T, service, n):
    """The n smallest of the agents' availability points, in increasing order (see batch):
    agent k (agents sorted by free time, so that the order does not depend on the path) is
    available at max(free, T), then after each of its drawn service times service[k, :].
    Returns (start, end, free after the n jobs); start is empty if an agent would need more
    service times than were drawn (the caller draws again). Ties go to the lower agent. The
    earliest agent is found by linear scans: over the agents' groups of about sqrt(c) (each
    group keeps its earliest), then within the group that served; for tens of agents this
    beats a heap."""
    c, m = service.shape
    g = int(round(math.sqrt(c))) if c > 8 else 1  # agents per group
    ng = (c + g - 1) // g
    nxt = np.full(ng * g, np.inf)
    nxt[:c] = np.maximum(np.sort(free), T)  # each agent's next availability point
    best = np.empty(ng)  # per group: its earliest point and (lowest on ties) agent
    who = np.empty(ng, dtype=np.int64)
    for h in range(ng):
        _group_min(nxt, h * g, g, best, who, h)
    used = np.zeros(c, dtype=np.int64)
    start = np.empty(n)
    end = np.empty(n)
    for i in range(n):
        h = 0
        v = best[0]
        for j in range(1, ng):
            if best[j] < v:
                v = best[j]
                h = j
        k = who[h]
        if used[k] == m:
            return np.empty(0), np.empty(0), free
        start[i] = v
        nxt[k] = v + service[k, used[k]]
        used[k] += 1
        end[i] = nxt[k]
        _group_min(nxt, h * g, g, best, who, h)
    return start, end, nxt[:c].copy()


@njit(cache=True, inline="always")
def _group_min(nxt, lo, g, best, who, h):
    k = lo
    v = nxt[lo]
    for a in range(lo + 1, lo + g):
        if nxt[a] < v:
            v = nxt[a]
            k = a
    best[h] = v
    who[h] = k

