"""The benchmark's floor: the least per-attempt work any engine of this model must do.

Question: how fast can one machine simulate a month of an ISP relay at all? The kernel below
does only what every engine must: Poisson arrivals, each message's first attempt on arrival,
Postfix's backoff (age clamped to minimal and maximal_backoff_time) and deferred-queue scans on
the queue_run_delay grid (wake <= T + 1), a c-server FIFO with exponential transaction times,
and expiry at the lifetime. No metrics, no recipients beyond one per message, no outages, no
attempt log, no SimPy. relaysim's time on the same traffic, divided by this, is how far the
real engine is from the machine's limit (make bench reports it side by side).

`floor(days, per_day, unknown, c, mean, seed) -> (attempts, seconds)` runs it (compiled first,
so the time excludes compilation).
"""

from __future__ import annotations

import math
import time

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _replace_min(h, v):
    """The heap's least element replaced by v, sifted down."""
    i = 0
    n = h.size
    while True:
        a = 2 * i + 1
        if a >= n:
            break
        if a + 1 < n and h[a + 1] < h[a]:
            a += 1
        if h[a] >= v:
            break
        h[i] = h[a]
        i = a
    h[i] = v


@njit(cache=True)
def _kernel(arrival, unknown, service, c, R, minimal, maximal, lifetime, duration):
    """Ticks every R s: the scan's messages at T, then the arrivals before the next tick at
    their own times; one FIFO over c agents. A deferred message is only its create time, kept
    in a ring of per-tick arrays (a retry is at most maximal_backoff_time + R ahead)."""
    n = arrival.size
    ring = int(math.ceil((maximal + 2 * R) / R)) + 1
    cap = 1024
    slot = np.empty((ring, cap))
    count = np.zeros(ring, dtype=np.int64)
    scan = np.empty(cap)
    free = np.zeros(c)
    attempts = 0
    p = 0  # next arrival
    s = 0  # next service time
    T = 0.0
    k = 0
    while T <= duration:
        r = k % ring
        m = count[r]
        if m > scan.size:
            scan = np.empty(2 * m)
        scan[:m] = slot[r, :m]
        count[r] = 0
        first_new = p
        while p < n and arrival[p] <= T + R:
            p += 1
        for q in range(m + p - first_new):
            if q < m:
                create, entry, bad = scan[q], T, True
            else:
                create = entry = arrival[first_new + q - m]
                bad = unknown[first_new + q - m]
            start = entry if entry >= free[0] else free[0]  # free: a min-heap
            end = start + service[s & (service.size - 1)]
            s += 1
            _replace_min(free, end)
            attempts += 1
            if bad:
                now = math.floor(end)
                born = math.floor(create)
                if now >= born + lifetime:
                    continue  # expired
                wake = now + max(min(now - born, maximal), minimal)
                key = max(-((1 - wake) // R), 1)  # the first scan with wake <= T + 1
                if key <= k:
                    key = k + 1
                d = int(key) % ring
                if count[d] == slot.shape[1]:
                    grown = np.empty((ring, 2 * slot.shape[1]))
                    grown[:, :slot.shape[1]] = slot
                    slot = grown
                slot[d, count[d]] = create
                count[d] += 1
        T += R
        k += 1
    return attempts


def floor(days: float, per_day: float, unknown: float = 0.3, c: int = 20, mean: float = 0.5,
          seed: int = 1) -> tuple[int, float]:
    """(attempts, seconds) of the floor kernel on this traffic (Postfix defaults)."""
    rng = np.random.default_rng(seed)
    duration = days * 86400.0
    n = rng.poisson(per_day * days)
    arrival = np.sort(rng.random(n) * duration)
    is_unknown = rng.random(n) < unknown
    service = rng.standard_exponential(1 << 20) * mean
    _kernel(arrival[:100], is_unknown[:100], service, c, 300.0, 300.0, 4000.0, 432000.0,
            3600.0)  # compile (or load the cache) outside the timing
    t0 = time.perf_counter()
    attempts = _kernel(arrival, is_unknown, service, c, 300.0, 300.0, 4000.0, 432000.0,
                       duration)
    return int(attempts), time.perf_counter() - t0


if __name__ == "__main__":
    import sys

    a, s = floor(float(sys.argv[1]) if len(sys.argv) > 1 else 28,
                 float(sys.argv[2]) if len(sys.argv) > 2 else 100_000)
    print(f"{a:,} attempts in {s:.2f} s: {a / s / 1e6:.1f} M attempts/s")
