"""Observation of the queue manager's work: what each attempt adds to the time series, the
delivered recipients' delays and qshape's view of the deferred queue. It decides nothing: it
takes the engine's results (sim.model.qmgr.engine) as inputs.

Public names: SERIES, LEFT, Obs, Attempts, record, stay, stays.

Contract:
- Obs is where ticks are counted; Attempts is what one tick decided, as record() takes it.
- SERIES names the rows record() adds to, in its order: at the time a message enters the
  active queue, at the attempt's start, at its end; LEFT is the row of "deferred" (and
  "deferred_recipients" follows), which the engine lowers as files leave the deferred queue.
- Times go to the sample grid as sim.model.metrics says (bin_of, bin_near); every column is a
  whole number (bytes too), so the sums are exact whatever the order of additions.
- stay() counts a message's wait in the deferred queue, from its attempt's end to the tick that
  takes it, in qshape's age buckets at each sample, as differences over samples (the caller
  keeps their running sum).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from sim.model.metrics import bin_near
from sim.model.qmgr.queue_file import ARRIVAL, KIND, LAST_END, SIZE
from sim.model.sender import FORGED, NULL

SERIES = ("active", "active_recipients",
          "attempts", "relay_sessions", "rejects_4xx", "rejects_5xx",
          "active", "active_recipients", "delivered", "bounced", "expired", "dsn", "backscatter",
          "bytes", "deferred", "deferred_recipients")
LEFT = SERIES.index("deferred")  # and deferred_recipients next: files leaving the queue


class Obs(NamedTuple):
    """Where ticks are counted: the recorder's rows (SERIES; delay warnings, greylisted,
    hard-error disconnects), its grid, the run's duration, qshape's differences and edges."""
    acc: np.ndarray
    rows: np.ndarray
    warn_row: int
    grey_row: int
    err_row: int
    rec_duration: float
    interval: float
    nbins: int
    duration: float
    qdiff: np.ndarray
    edges: np.ndarray


class Attempts(NamedTuple):
    """What one tick decided, one row per message in queue order: its queue file (f, FIELDS),
    when it entered the active queue, started and ended; no SMTP session (vetoed; suspended:
    because the destination was dead, not tried), the session cut by the relay's going down
    (cut: nothing rejected), greylisted (held; greyed: its greylisted recipients, one entry
    when postgrey is off), cut by the hard error limit (hit); its tally (recipients pending,
    sent, deferred, bounced), whether the relay's reject was a 4xx (soft), expired or kept
    (filed again); and the relay's configuration at its start (snap)."""
    f: np.ndarray
    entry: np.ndarray
    start: np.ndarray
    end: np.ndarray
    vetoed: np.ndarray
    suspended: np.ndarray
    cut: np.ndarray
    held: np.ndarray
    greyed: np.ndarray
    hit: np.ndarray
    tally: np.ndarray
    soft: np.ndarray
    expired: np.ndarray
    keep: np.ndarray
    snap: np.ndarray


@njit(cache=True)
def record(obs, a):
    """Add one tick's attempts (Attempts) to the recorder's series (obs.acc[obs.rows[k]],
    SERIES order) and return the delivered recipients' delays (end - arrival, one per sent
    recipient, attempts ending within the run). One pass: each of the three groups (at the
    entry, start and end times) is summed in registers while consecutive attempts share its
    bin, and added to acc when the bin changes. Every column is a whole number (bytes too:
    sizes are whole bytes), so the sums are exact whatever their order."""
    acc, rows, rec_duration, interval = obs.acc, obs.rows, obs.rec_duration, obs.interval
    nbins, duration = obs.nbins, obs.duration
    entry, start, end, tally, vetoed, greyed = a.entry, a.start, a.end, a.tally, a.vetoed, \
        a.greyed
    soft, expired, keep, f = a.soft, a.expired, a.keep, a.f
    n = start.size
    b0 = b1 = b2 = -1
    lo0 = lo1 = lo2 = np.inf  # each group's bin's interior (see bin_near)
    hi0 = hi1 = hi2 = -np.inf
    a0 = a1 = 0.0  # at entry: active, active_recipients
    s0 = s1 = s2 = s3 = 0.0  # at the start: attempts, relay_sessions, rejects_4xx, rejects_5xx
    e0 = e1 = e2 = e3 = e4 = e5 = e6 = e7 = e8 = e9 = 0.0  # at the end: see SERIES
    for i in range(n):
        b, lo0, hi0 = bin_near(entry[i], b0, lo0, hi0, rec_duration, interval, nbins)
        if b != b0:
            _spill(acc, rows, 0, b0, (a0, a1))
            b0, a0, a1 = b, 0.0, 0.0
        a0 += 1.0
        a1 += tally[i, 0]
        gr = greyed[i if greyed.size > 1 else 0]
        ok = 0 if vetoed[i] else 1
        rej = 0 if a.cut[i] else (tally[i, 2] + tally[i, 3] - gr) * ok
        sf = soft[i if soft.size > 1 else 0]
        b, lo1, hi1 = bin_near(start[i], b1, lo1, hi1, rec_duration, interval, nbins)
        if b != b1:
            _spill(acc, rows, 2, b1, (s0, s1, s2, s3))
            b1, s0, s1, s2, s3 = b, 0.0, 0.0, 0.0, 0.0
        s0 += tally[i, 0]
        s1 += ok
        s2 += (rej if sf else 0) + gr * ok
        s3 += 0 if sf else rej
        nd, nb = tally[i, 2], tally[i, 3]
        real = f[i, KIND] != NULL
        dsn = (1 if (nb > 0 and real) else 0) + (1 if (expired[i] and real) else 0)
        b, lo2, hi2 = bin_near(end[i], b2, lo2, hi2, rec_duration, interval, nbins)
        if b != b2:
            _spill(acc, rows, 6, b2, (e0, e1, e2, e3, e4, e5, e6, e7, e8, e9))
            b2 = b
            e0 = e1 = e2 = e3 = e4 = e5 = e6 = e7 = e8 = e9 = 0.0
        e0 -= 1.0
        e1 -= tally[i, 0]
        e2 += tally[i, 1]
        e3 += nb
        e4 += nd * expired[i]
        e5 += dsn
        e6 += dsn * (f[i, KIND] == FORGED)
        e7 -= 0.0 if keep[i] else f[i, SIZE]
        e8 += keep[i]
        e9 += nd * keep[i]
    _spill(acc, rows, 0, b0, (a0, a1))
    _spill(acc, rows, 2, b1, (s0, s1, s2, s3))
    _spill(acc, rows, 6, b2, (e0, e1, e2, e3, e4, e5, e6, e7, e8, e9))
    m = 0
    for i in range(n):
        if end[i] <= duration:
            m += tally[i, 1]
    delays = np.empty(m)
    m = 0
    for i in range(n):
        if end[i] <= duration:
            for _ in range(tally[i, 1]):
                delays[m] = end[i] - f[i, ARRIVAL]
                m += 1
    return delays


@njit(cache=True, inline="always")
def _spill(acc, rows, first, b, part):
    """acc[rows[first + c], b] += part[c] (nothing before the first bin, b < 0)."""
    if b >= 0:
        for c in range(len(part)):
            acc[rows[first + c], b] += part[c]


@njit(cache=True, inline="always")
def stay(qdiff, edges, interval, left_at, key, arrival, sign):
    """qshape[j, b] += sign for every sample t_j = j * interval with left_at <= t_j < key, as
    differences over j (qdiff[j0, b] += sign, qdiff[j1, b] -= sign; qshape is their running
    sum, QueueHost.qshape): a message whose attempt ended at left_at waits in the deferred
    queue until the tick at `key` takes it; b is its qshape age bucket at t_j, the number of
    edges <= its age (metrics.qshape_edges). Its cost is the buckets it crosses, not the
    samples."""
    top = edges.size
    n = qdiff.shape[0] - 1
    j = np.int64(left_at * (1.0 / interval))  # the first sample at or after left_at: this
    if j > 0 and (j - 1) * interval >= left_at:  # guess is off by one at most, and the
        j -= 1                                   # comparisons below are exact
    elif j * interval < left_at:
        j += 1
    j1 = np.int64(key * (1.0 / interval))  # the first sample at or after key (none after n)
    if j1 > 0 and (j1 - 1) * interval >= key:
        j1 -= 1
    elif j1 * interval < key:
        j1 += 1
    j1 = min(j1, n)
    while j < j1:
        age = j * interval - arrival
        b = top
        if age < edges[top - 1]:
            b = 0
            while age >= edges[b]:
                b += 1
        jn = j1  # the first sample of the next bucket
        if b < top:
            e = edges[b]
            g = np.int64(math.ceil((e + arrival) * (1.0 / interval)))
            g = max(g, j + 1)
            while g - 1 > j and (g - 1) * interval - arrival >= e:
                g -= 1
            while g * interval - arrival < e:
                g += 1
            jn = min(g, j1)
        qdiff[j, b] += sign
        qdiff[jn, b] -= sign
        j = jn


@njit(cache=True)
def stays(qshape, edges, interval, f, key, sign):
    """_stay for every queue file of f, row i filed under tick key[i]."""
    for i in range(f.shape[0]):
        stay(qshape, edges, interval, f[i, LAST_END], key[i], f[i, ARRIVAL], sign)
