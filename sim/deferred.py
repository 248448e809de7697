"""The deferred queue: queue files waiting for the qmgr tick that will take them.

Public names: DeferredQueue, take_rows, link_rows, free_rows.

Contract:
- A queue file is a row of `f` (float64 fields, sim.upstream.FIELDS) and of `rcpt` (int32
  recipient ids, -2 done). Rows are kept in place from a message's first deferral until it
  leaves the queue (delivered, bounced or expired); a tick's files are a linked list of rows
  (`link`), in the order they were filed, so a scan takes them first filed, first served.
- Ticks are multiples of `unit` seconds (the gcd of every runner interval the run can use):
  slot k holds the files for tick k * unit; the last slot holds every file for a tick after
  the run's end (never scanned, still in the queue). head/tail hold row + 1 (0: empty), so the
  zeroed slot arrays cost memory only where ticks are used.
- Free rows form a list through `link`; state[FREE] is its first row + 1, state[NFREE] its
  length. reserve(n) guarantees n free rows before compiled code files new ones; rows are never
  moved, so compiled code may hold row numbers across calls.
- take(tick) copies a tick's files out (in order) and frees their rows; put(f, rcpt, ticks)
  files copies of rows under their ticks. The qmgr's compiled scan (sim.upstream) uses the
  kernels take_rows, link_rows and free_rows on the arrays directly.
Nothing here knows about time series, policies or SimPy.
"""

from __future__ import annotations

import numpy as np
from numba import njit

FREE, NFREE = 0, 1


class DeferredQueue:
    """Queue files by tick (see the module contract)."""

    def __init__(self, nfields: int, width: int, unit: int, duration: float):
        self.unit = int(unit)
        self.nslot = int(duration // self.unit) + 2
        self.head = np.zeros(self.nslot, dtype=np.int64)
        self.tail = np.zeros(self.nslot, dtype=np.int64)
        self.count = np.zeros(self.nslot, dtype=np.int64)
        self.f = np.empty((0, nfields))
        self.rcpt = np.empty((0, width), dtype=np.int32)
        self.link = np.empty(0, dtype=np.int64)
        self.state = np.zeros(2, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.count.sum())

    def slot(self, tick: float) -> int:
        return min(int(tick) // self.unit, self.nslot - 1)

    def reserve(self, n: int) -> None:
        """At least n free rows (the arrays grow by doubling)."""
        if self.state[NFREE] >= n:
            return
        old = self.link.size
        new = max(2 * old, old + n - int(self.state[NFREE]), 1024)
        self.f = np.concatenate([self.f, np.empty((new - old, self.f.shape[1]))])
        self.rcpt = np.concatenate([self.rcpt, np.empty((new - old, self.rcpt.shape[1]),
                                                        dtype=np.int32)])
        self.link = np.concatenate([self.link, np.empty(new - old, dtype=np.int64)])
        free_rows(self.link, self.state, np.arange(old, new, dtype=np.int64))

    def take(self, tick: float):
        """(fields, recipients) of the files for `tick`, in filing order, removed; None if
        there are none."""
        k = self.slot(tick)
        if not self.count[k]:
            return None
        rows = take_rows(self.head, self.tail, self.count, self.link, k)
        f, rcpt = self.f[rows], self.rcpt[rows]
        free_rows(self.link, self.state, rows)
        return f, rcpt

    def put(self, f: np.ndarray, rcpt: np.ndarray, ticks: np.ndarray) -> None:
        """File copies of the rows of (f, rcpt), row i under ticks[i], in row order."""
        self.reserve(f.shape[0])
        _put(self.f, self.rcpt, self.link, self.head, self.tail, self.count, self.state, f, rcpt,
             np.minimum(np.asarray(ticks, dtype=np.int64) // self.unit, self.nslot - 1))

    def ticks(self) -> list[int]:
        """The ticks that have files (a tick after the run stands for all of those)."""
        return (np.flatnonzero(self.count) * self.unit).tolist()

    def files(self, tick: int):
        """(fields, recipients) of the files for `tick`, in filing order, left in place."""
        k = self.slot(tick)
        rows = _rows(self.head, self.link, self.count, k)
        return self.f[rows], self.rcpt[rows]


@njit(cache=True)
def _rows(head, link, count, k):
    rows = np.empty(count[k], dtype=np.int64)
    r = head[k] - 1
    for i in range(rows.size):
        rows[i] = r
        r = link[r]
    return rows


@njit(cache=True)
def take_rows(head, tail, count, link, k):
    """The rows filed in slot k, in filing order; the slot is emptied (rows not freed)."""
    rows = _rows(head, link, count, k)
    head[k] = tail[k] = count[k] = 0
    return rows


@njit(cache=True)
def free_rows(link, state, rows):
    """Put rows on the free list."""
    for i in range(rows.size):
        link[rows[i]] = state[FREE] - 1
        state[FREE] = rows[i] + 1
    state[NFREE] += rows.size


@njit(cache=True, inline="always")
def alloc_row(link, state):
    """A free row (the caller has reserved it)."""
    r = state[FREE] - 1
    state[FREE] = link[r] + 1
    state[NFREE] -= 1
    return r


@njit(cache=True, inline="always")
def link_rows(head, tail, count, link, r, k):
    """Append row r to slot k."""
    link[r] = -1
    if tail[k]:
        link[tail[k] - 1] = r
    else:
        head[k] = r + 1
    tail[k] = r + 1
    count[k] += 1


@njit(cache=True)
def _put(qf, qr, link, head, tail, count, state, f, rcpt, slots):
    for i in range(f.shape[0]):
        r = alloc_row(link, state)
        qf[r, :] = f[i, :]
        qr[r, :] = rcpt[i, :]
        link_rows(head, tail, count, link, r, slots[i])
