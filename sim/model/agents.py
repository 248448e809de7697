"""Destination concurrency: c delivery agents serving the relay's in-core queue, first come first
served, computed for whole batches; and their service times.

Public names: fifo, Sessions, new_sessions, session_time, Shape, ServiceTimes.

Contract:
- default_destination_concurrency_limit SMTP client processes work one FIFO queue (qmgr's
  in-core queue for the relay; all mail goes to one destination, and with one-recipient jobs
  qmgr's preemptive scheduler never reorders them). free[k] is the time agent k is next free.
- fifo(entries, service, free) is the textbook c-server FIFO recursion, compiled: a job starts
  when it has entered and an agent is free, on the agent free first, and holds it for its own
  service time (drawn in queue order by the caller). The engine (sim.model.qmgr.engine) serves
  each tick's jobs with it, one by one where the destination may refuse a job.
- fifo(..., sessions) with a Sessions bundle: each agent keeps its SMTP session to the relay
  (Postfix's connection cache, smtp_connection_cache_on_demand): a job that starts within
  smtp_connection_cache_time_limit of the agent's previous end, and before its session is
  smtp_connection_reuse_time_limit old, reuses it; else the agent connects anew. The job
  holds the agent for its service time plus what the relay's smtpd slept before its replies
  in that session (session_time, sim.model.relay.smtpd_session). One session per agent: a
  real cached session may go to another agent of the same transport; with back-to-back
  deliveries each agent takes one back, so the two differ only in which agent carries which
  error count.
- Shape is the attempt durations' shape around mean 1 (upstream's
  smtp_transaction_time_distribution): exponential (Postfix's queue theory's default, and
  what the loopback labs measured: coefficient of variation 0.8 to 1.3), constant, lognormal
  (sigma: standard deviation of the log; mean 1), or empirical (measured durations resampled
  with replacement and divided by their mean). The engine multiplies by the mean
  (smtp_transaction_time).
- ServiceTimes(rng, shape).take(n) hands out the shape's variates in order (exponential: the
  same numbers rng.standard_exponential(n) would give at that point); window(n) shows the
  next ones (at least n) without taking them, for compiled code that takes what it uses
  (skip(k)). Blocks grow from FIRST to BLOCK variates; once a run needs a second block, a
  helper thread draws the following blocks ahead while the model computes (numpy draws
  without holding the GIL, and so do the compiled kernels); close() stops it.
"""

from __future__ import annotations

import math
import queue
import threading
from typing import NamedTuple

import numpy as np
from numba import njit

from sim.model.relay import smtpd_session


class Shape(NamedTuple):
    """The attempt durations' shape around mean 1 (see the contract)."""
    kind: str = "exponential"
    sigma: float = 1.0
    values: tuple = ()

    def draw(self, rng: np.random.Generator, out: np.ndarray) -> None:
        """Fill out with the shape's variates (mean 1), drawn from rng."""
        if self.kind == "exponential":
            rng.standard_exponential(out=out)
        elif self.kind == "constant":
            out[:] = 1.0
        elif self.kind == "lognormal":
            rng.standard_normal(out=out)
            out *= self.sigma
            out -= self.sigma ** 2 / 2
            np.exp(out, out=out)
        elif self.kind == "empirical":
            v = np.asarray(self.values, dtype=float)
            out[:] = v[rng.integers(0, v.size, size=out.size)] / v.mean()
        else:
            raise ValueError(f"unknown shape {self.kind!r}")


class ServiceTimes:
    """One generator's variates of a Shape, drawn in blocks (see the contract)."""

    BLOCK = 1 << 17  # variates per block (1 MiB); the first blocks are smaller, from FIRST
    FIRST = 1 << 13  # up, doubling, so that a short run draws little it does not use
    ROOM = 1 << 16  # free room before each block: a window across a block's end moves the
    #                 old block's rest there instead of copying the new block
    AHEAD = 1  # blocks the helper thread may have ready

    def __init__(self, rng: np.random.Generator, shape: Shape | None = None):
        self.rng = rng
        self.shape = shape or Shape()
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
        self.shape.draw(self.rng, a[self.ROOM:])
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


class Sessions(NamedTuple):
    """The delivery agents' SMTP sessions to the relay and what a tick's jobs say in them:
    per agent [the relay's error count in its session, when it connected (-inf: none)], per
    job (in queue order) the recipients the relay rejects and accepts, and the parameters
    [smtpd_soft_error_limit, smtpd_hard_error_limit, smtpd_error_sleep_time, cache on (1/0),
    smtp_connection_cache_time_limit, smtp_connection_reuse_time_limit]."""
    state: np.ndarray
    rejected: np.ndarray
    accepted: np.ndarray
    par: np.ndarray


def new_sessions(agents: int) -> np.ndarray:
    """Sessions.state of agents with no session yet."""
    st = np.zeros((agents, 2))
    st[:, 1] = -np.inf
    return st


@njit(cache=True)
def session_time(sessions, a, i, s, last_end):
    """What job i, started at s on agent a (free since last_end), adds to its service time:
    the relay smtpd's sleeps in the agent's session, reused or new (see the contract); the
    agent's session is updated."""
    st, p = sessions.state, sessions.par
    reuse = p[3] > 0 and st[a, 1] > -np.inf and s - last_end <= p[4] and s - st[a, 1] < p[5]
    slept, errors, replaced, closed = smtpd_session(st[a, 0] if reuse else 0.0, reuse,
                                                    p[3] > 0, sessions.rejected[i],
                                                    sessions.accepted[i], p[0], p[1], p[2])
    if replaced or not reuse:
        st[a, 1] = s
    if closed:
        st[a, 1] = -np.inf
    st[a, 0] = errors
    return slept


@njit(cache=True)
def fifo(entries, service, free, sessions=None):
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
        if sessions is not None:
            e += session_time(sessions, who[h], i, s, v)
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
