"""The deferred queue: queue files waiting for the qmgr tick that will take them.

Public names: DeferredQueue, slot_rows, file_rows.

Contract:
- A queue file is a row of `f` (float64 fields, sim.model.qmgr.FIELDS) and of `rcpt` (int32
  recipient ids, -2 done). Ticks are multiples of `unit` seconds (the gcd of every runner
  interval the run can use): slot k holds the files for tick k * unit; the last slot holds
  every file for a tick after the run's end (never scanned, still in the queue).
- A slot's files are a list of chunks (runs of consecutive rows) in the order they were filed,
  so a scan takes them first filed, first served, and reads memory in runs. Filing writes
  rows at the end of the used part (state[TOP]), grouped by slot; the rows of files that were
  taken are left behind and reclaimed when reserve() finds no room: it copies the live files
  slot by slot into the arrays it used before (one chunk per slot) if they have room for
  three times the live files, else into new ones with room for six times: the copying
  costs at most one row for every two filed (about one in five once the queue is steady).
- slot_rows(k) lists slot k's rows and empties the slot (the rows stay readable until the
  next reserve()); file_rows writes files into rows reserved before, in the given order,
  stable by slot. take(tick) and put(f, rcpt, ticks) do the same on copies, for Python
  callers.
Nothing here knows about time series, policies or SimPy.
"""

from __future__ import annotations

import numpy as np
from numba import njit

TOP, NCHUNK = 0, 1  # state: rows used, chunks used


class DeferredQueue:
    """Queue files by tick (see the module contract)."""

    def __init__(self, nfields: int, width: int, unit: int, duration: float):
        self.unit = int(unit)
        self.nslot = int(duration // self.unit) + 2
        # per slot: first and last chunk + 1 (0: empty), files; zeroed, so the memory is
        # used only where ticks are
        self.head = np.zeros(self.nslot, dtype=np.int64)
        self.tail = np.zeros(self.nslot, dtype=np.int64)
        self.count = np.zeros(self.nslot, dtype=np.int64)
        self.f = np.empty((0, nfields))
        self.rcpt = np.empty((0, width), dtype=np.int32)
        self.chunks = np.empty((0, 3), dtype=np.int64)  # first row, rows, next chunk (-1)
        self.state = np.zeros(2, dtype=np.int64)
        self._spare = None  # the arrays before the last compaction, reused by the next

    def __len__(self) -> int:
        return int(self.count.sum())

    def slot(self, tick: float) -> int:
        return min(int(tick) // self.unit, self.nslot - 1)

    def reserve(self, n: int) -> None:
        """Room to file n more files (and as many chunks) without moving any row."""
        top, nchunk = self.state
        if top + n <= self.f.shape[0] and nchunk + n <= self.chunks.shape[0]:
            return
        want = max(3 * (len(self) + n), 1024)
        spare = self._spare
        if spare is None or spare[0].shape[0] < want:
            # room to grow: a growing queue allocates (and the OS maps) new memory only
            # about once per doubling
            cap = 2 * want
            spare = (np.empty((cap, self.f.shape[1])),
                     np.empty((cap, self.rcpt.shape[1]), dtype=np.int32),
                     np.empty((cap, 3), dtype=np.int64))
        f, rcpt, chunks = spare
        _compact(self.f, self.rcpt, self.chunks, self.head, self.tail, self.count, f, rcpt,
                 chunks, self.state)
        self._spare = (self.f, self.rcpt, self.chunks)
        self.f, self.rcpt, self.chunks = f, rcpt, chunks

    def take(self, tick: float):
        """(fields, recipients) of the files for `tick`, in filing order, removed; None if
        there are none."""
        k = self.slot(tick)
        if not self.count[k]:
            return None
        rows = slot_rows(self.head, self.tail, self.count, self.chunks, k)
        return self.f[rows], self.rcpt[rows]

    def put(self, f: np.ndarray, rcpt: np.ndarray, ticks: np.ndarray) -> None:
        """File copies of the rows of (f, rcpt), row i under ticks[i] (stable by tick)."""
        self.reserve(f.shape[0])
        slots = np.minimum(np.asarray(ticks, dtype=np.int64) // self.unit, self.nslot - 1)
        rows = file_rows(self.head, self.tail, self.count, self.chunks, self.state, slots,
                         np.ones(slots.size, dtype=np.bool_))
        self.f[rows] = f
        self.rcpt[rows] = rcpt

    def ticks(self) -> list[int]:
        """The ticks that have files (a tick after the run stands for all of those)."""
        return (np.flatnonzero(self.count) * self.unit).tolist()

    def files(self, tick: int):
        """(fields, recipients) of the files for `tick`, in filing order, left in place."""
        rows = _rows(self.head, self.count, self.chunks, self.slot(tick))
        return self.f[rows], self.rcpt[rows]


@njit(cache=True)
def _rows(head, count, chunks, k):
    rows = np.empty(count[k], dtype=np.int64)
    i = 0
    c = head[k] - 1
    while c >= 0:
        for j in range(chunks[c, 1]):
            rows[i] = chunks[c, 0] + j
            i += 1
        c = chunks[c, 2]
    return rows


@njit(cache=True)
def slot_rows(head, tail, count, chunks, k):
    """The rows filed in slot k, in filing order; the slot is emptied."""
    rows = _rows(head, count, chunks, k)
    head[k] = tail[k] = count[k] = 0
    return rows


@njit(cache=True)
def file_rows(head, tail, count, chunks, state, slots, use):
    """Rows for filing entry i (where use[i]) in slot slots[i], stable by slot, taken from
    the reserved room; the slots' chunk lists get one chunk per slot. Returns the row of
    each used entry (-1 elsewhere)."""
    lo = head.size
    hi = -1
    for i in range(slots.size):
        if use[i]:
            lo = min(lo, slots[i])
            hi = max(hi, slots[i])
    rows = np.full(slots.size, -1, dtype=np.int64)
    if hi < 0:
        return rows
    m = 0
    for i in range(slots.size):
        m += use[i]
    if hi - lo + 1 > 8 * m:  # slots far apart (wake-up times days ahead): sort, not count
        return _file_sorted(head, tail, count, chunks, state, slots, use, rows, m)
    n = np.zeros(hi - lo + 1, dtype=np.int64)
    for i in range(slots.size):
        if use[i]:
            n[slots[i] - lo] += 1
    pos = np.empty(hi - lo + 1, dtype=np.int64)
    top = state[TOP]
    for j in range(n.size):
        pos[j] = top
        top += n[j]
        if n[j]:
            _append(head, tail, count, chunks, state, lo + j, pos[j], n[j])
    state[TOP] = top
    for i in range(slots.size):
        if use[i]:
            rows[i] = pos[slots[i] - lo]
            pos[slots[i] - lo] += 1
    return rows


@njit(cache=True)
def _file_sorted(head, tail, count, chunks, state, slots, use, rows, m):
    """file_rows by a stable sort of the m used entries' slots: the same rows, in time
    O(m log m) instead of the span of slots."""
    idx = np.empty(m, dtype=np.int64)
    key = np.empty(m, dtype=np.int64)
    m = 0
    for i in range(slots.size):
        if use[i]:
            idx[m] = i
            key[m] = slots[i]
            m += 1
    order = np.argsort(key, kind="mergesort")
    top = state[TOP]
    a = 0
    while a < m:
        b = a
        k = key[order[a]]
        while b < m and key[order[b]] == k:
            rows[idx[order[b]]] = top + (b - a)
            b += 1
        _append(head, tail, count, chunks, state, k, top, b - a)
        top += b - a
        a = b
    state[TOP] = top
    return rows


@njit(cache=True, inline="always")
def _append(head, tail, count, chunks, state, k, first, n):
    c = state[NCHUNK]
    state[NCHUNK] += 1
    chunks[c, 0] = first
    chunks[c, 1] = n
    chunks[c, 2] = -1
    if tail[k]:
        chunks[tail[k] - 1, 2] = c
    else:
        head[k] = c + 1
    tail[k] = c + 1
    count[k] += n


@njit(cache=True, inline="always")
def _copy_row(f, rcpt, i, nf, nr, d):
    """Queue file i of (f, rcpt) copied to row d of (nf, nr) (element by element: numba's
    row slices cost more than the copy)."""
    for c in range(f.shape[1]):
        nf[d, c] = f[i, c]
    for c in range(rcpt.shape[1]):
        nr[d, c] = rcpt[i, c]


@njit(cache=True)
def _compact(f, rcpt, chunks, head, tail, count, nf, nr, nchunks, state):
    """Copy the live files slot by slot into (nf, nr), one chunk per slot (in nchunks)."""
    top = 0
    nc = 0
    for k in range(head.size):
        if not count[k]:
            continue
        first = top
        c = head[k] - 1
        while c >= 0:
            for j in range(chunks[c, 1]):
                _copy_row(f, rcpt, chunks[c, 0] + j, nf, nr, top)
                top += 1
            c = chunks[c, 2]
        nchunks[nc, 0] = first
        nchunks[nc, 1] = top - first
        nchunks[nc, 2] = -1
        head[k] = tail[k] = nc + 1
        nc += 1
    state[TOP] = top
    state[NCHUNK] = nc
