"""Destination concurrency: c delivery agents serving the relay's in-core queue, first come first
served, computed for whole batches.

Public names: Agents, ServiceTimes.

Contract:
- Agents(c) models `default_destination_concurrency_limit` SMTP client processes working one
  FIFO queue (qmgr's in-core queue for the relay; all mail goes to one destination, and with
  one-recipient jobs qmgr's preemptive scheduler never reorders them). free[k] is the time agent
  k is next free.
- batch(T, n, draw) serves n jobs that all enter at time T (one deferred-queue scan) and
  timed(entries, draw, site) jobs that enter one by one at sorted times (new mail); both
  return (start, end) in queue order. Each job has its own service time, drawn in queue
  order. It is the textbook c-server FIFO recursion: a job starts when it has entered and an
  agent is free, on the agent free first; a loop, because each job depends on the one before,
  compiled (fifo, numba), or in Python when `site` may veto a job (relay down or throttled)
  so that it takes no agent time.
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
        """Start and end times of n jobs entering together at T, in FIFO order."""
        start, end, self.free = fifo(np.full(n, float(T)), draw((n,)), self.free)
        return start, end

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

    BLOCK = 1 << 17  # variates per block (1 MiB); the first blocks are smaller, from FIRST
    FIRST = 1 << 13  # up, doubling, so that a short run draws little it does not use
    ROOM = 1 << 16  # free room before each block: a window across a block's end moves the
    #                 old block's rest there instead of copying the new block
    AHEAD = 1  # blocks the helper thread may have ready

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
def fifo(entries, service, free):
    """The c-server FIFO recursion, compiled: job i starts at max(entries[i], earliest free
    agent) and holds that agent for service[i]. Returns (start, end, agents' free times; their
    order carries no meaning). Which of two agents free at the same time a job takes changes
    nothing. The earliest agent is found by linear scans: over the agents' groups of about
    sqrt(c) (each group keeps its earliest), then within the group that served; for tens of
    agents this beats a heap."""
    c = free.size
    g = int(round(math.sqrt(c))) if c > 8 else c  # agents per group
    ng = (c + g - 1) // g
    nxt = np.full(ng * g, np.inf)
    nxt[:c] = free
    best = np.empty(ng)  # per group: its earliest free time and agent
    who = np.empty(ng, dtype=np.int64)
    for h in range(ng):
        _group_min(nxt, h * g, g, best, who, h)
    n = entries.size
    start = np.empty(n)
    end = np.empty(n)
    for i in range(n):
        h = 0
        v = best[0]
        for j in range(1, ng):
            if best[j] < v:
                v = best[j]
                h = j
        a = entries[i]
        s = a if a >= v else v
        e = s + service[i]
        start[i] = s
        end[i] = e
        nxt[who[h]] = e
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
