"""Observation: event binning onto the sample grid, queue levels, delay sketch, qshape ages.

Public names: Recorder, DelaySketch, QSHAPE_EDGES_MIN, qshape_bucket, qshape_edges, bin_of,
bin_near, bins_of.

Contract:
- Samples are taken at t_j = j * sample_interval, j = 0 .. n-1 (t_{n-1} <= duration).
- An event at time x counts in the cumulative series at t_j iff x <= t_j; events after the run's
  duration are dropped. A state held over the half-open interval [s, e) counts at t_j iff
  s <= t_j < e (+1 at s, -1 at e). Both reduce to adding at bin ceil(x / sample_interval), so
  every series is a bincount and a cumulative sum: the model can record events whose times lie
  ahead of the SimPy clock (batches compute their attempts' start and end times in advance).
- DelaySketch keeps a log-binned histogram with relative error at most 0.5 % (plus the exact
  maximum and zero count): memory is fixed however much mail is delivered.
- qshape_bucket uses qshape's geometric buckets (5, 10, 20, ..., 1280, 1280+ minutes by default),
  the same arithmetic as qshape.pl (mta-semantics.md section 6.1).
Nothing here prints or plots.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

QSHAPE_EDGES_MIN = (5, 10, 20, 40, 80, 160, 320, 640, 1280)


def qshape_bucket(age_s: np.ndarray, bucket_time_min: float = 5, bucket_count: int = 10,
                  linear: bool = False) -> np.ndarray:
    """qshape's bucket index (0-based) for ages in seconds: m = age/60/t; m < 1 -> 0;
    else 1 + floor(log2(m)) (or floor(m) with -l), capped at bucket_count - 1."""
    m = np.asarray(age_s, dtype=float) / 60.0 / bucket_time_min
    with np.errstate(divide="ignore"):
        b = np.where(m < 1, 0, (np.floor(m) if linear else 1 + np.floor(np.log2(np.maximum(m, 1))))
                     ).astype(np.int64)
    return np.minimum(b, bucket_count - 1)


def qshape_edges(bucket_time_min: float = 5, bucket_count: int = 10) -> np.ndarray:
    """Ages in seconds at which qshape_bucket moves up: edges[k] is the least age with bucket
    k + 1 (computed through qshape_bucket itself, to the last bit), so counting edges <= age
    gives the bucket without dividing."""
    edges = np.empty(bucket_count - 1)
    for k in range(bucket_count - 1):
        x = 60.0 * bucket_time_min * 2.0 ** k
        while qshape_bucket(np.array([x]), bucket_time_min, bucket_count)[0] > k:
            x = np.nextafter(x, 0.0)
        while qshape_bucket(np.array([x]), bucket_time_min, bucket_count)[0] <= k:
            x = np.nextafter(x, np.inf)
        edges[k] = x
    return edges


class Recorder:
    """Bins events and intervals onto the sample grid; produces cumulative and level series.

    Callers turn times into bins once (bins()) and add any number of series on those bins
    (add()); compiled code adds to the series' rows of `acc` directly (rows()).
    Bin j < n holds (t_{j-1}, t_j]; bin n holds (t_{n-1}, duration]; bin n+1 is after the run.
    """

    def __init__(self, duration: float, interval: float):
        self.duration, self.interval = float(duration), float(interval)
        self.n = int(math.floor(duration / interval + 1e-9)) + 1
        self.t = np.arange(self.n) * interval
        self.acc = np.zeros((0, self.n + 2))  # one row per series, in the order first named
        self._row: dict[str, int] = {}

    def rows(self, names) -> np.ndarray:
        """The rows of `acc` that hold these series (created, zero, on first use). Compiled
        code adds to acc[rows[k], bin] directly (see sim.model.qmgr)."""
        new = [name for name in dict.fromkeys(names) if name not in self._row]
        if new:
            for name in new:
                self._row[name] = len(self._row)
            self.acc = np.concatenate([self.acc, np.zeros((len(new), self.n + 2))])
        return np.array([self._row[name] for name in names], dtype=np.int64)

    def bins(self, times) -> np.ndarray:
        """The bin of each time (see the class docstring)."""
        times = np.asarray(times, dtype=float)
        j = np.empty(times.size, dtype=np.int64)
        bins_of(times, j, self.duration, self.interval, self.n)
        return j.reshape(times.shape)

    def add(self, name: str, bins: np.ndarray, weights=None) -> None:
        """Add events (or level changes) of weight `weights` (default 1) in `bins`."""
        if bins.size == 0:
            return
        row = self.rows((name,))[0]
        if weights is None or np.ndim(weights) == 0:
            self.acc[row] += np.bincount(bins, minlength=self.n + 2) * (
                1.0 if weights is None else float(weights))
        else:
            self.acc[row] += np.bincount(bins, weights=weights, minlength=self.n + 2)

    def _series(self, name: str) -> np.ndarray | None:
        row = self._row.get(name)
        return None if row is None else self.acc[row]

    def total(self, name: str) -> float:
        """Everything added for `name` up to the end of the run."""
        acc = self._series(name)
        return 0.0 if acc is None else float(acc[: self.n + 1].sum())

    def cumulative(self, name: str) -> np.ndarray:
        """Events at or before each sample, or the level at each sample."""
        acc = self._series(name)
        return np.zeros(self.n) if acc is None else np.cumsum(acc)[: self.n]

    def per_interval(self, name: str) -> np.ndarray:
        """Events in (t_{j-1}, t_j]; the first sample counts events at time 0."""
        acc = self._series(name)
        return np.zeros(self.n) if acc is None else acc[: self.n].copy()


@njit(cache=True)
def bin_of(t, duration, interval, n):
    """The recorder bin of time t (Recorder's docstring): ceil(t / interval) up to n, or
    n + 1 after the run's duration; 0 for times before the run (an initial queue's past).
    The one definition, also used by compiled callers."""
    u = min(t, duration + interval)
    if u > duration:
        return n + 1
    return max(min(np.int64(math.ceil(u / interval - 1e-12)), n), 0)


@njit(cache=True, inline="always")
def bin_near(t, b, lo, hi, duration, interval, n):
    """(bin_of(t), lo, hi) for a time likely to be in bin b, whose interior is (lo, hi): two
    comparisons when it is, else bin_of and the new bin's interior. The interior keeps 1e-6
    of the interval off each edge, so that bin_of's rounding never matters inside it; the
    first bin and those at and after the run's end have none."""
    if lo < t < hi:
        return b, lo, hi
    b = bin_of(t, duration, interval, n)
    if 1 <= b < n:
        eps = 1e-6 * interval
        return b, (b - 1) * interval + eps, b * interval - eps
    return b, np.inf, -np.inf


@njit(cache=True)
def bins_of(times, bins, duration, interval, n):
    """bins[:] = bin_of each time."""
    for i in range(times.size):
        bins[i] = bin_of(times[i], duration, interval, n)


class DelaySketch:
    """Log-binned delay histogram: quantiles within 0.5 % relative error, fixed memory."""

    GAMMA = 1.01  # bin i covers [GAMMA**i, GAMMA**(i+1)) seconds; midpoint error < 0.5 %
    LO = 1e-3     # delays below 1 ms count as zero (tracked exactly as such)

    def __init__(self):
        self.counts = np.zeros(0, dtype=np.int64)
        self.zero = 0
        self.max = -math.inf
        self.n = 0
        self._buf: list[np.ndarray] = []
        self._nbuf = 0

    def add(self, delays: np.ndarray) -> None:
        """Buffered: delays are binned in bulk every 200,000 values."""
        self._buf.append(np.asarray(delays, dtype=float))
        self._nbuf += delays.size
        if self._nbuf > 200_000:
            self._flush()

    def _flush(self) -> None:
        if not self._buf:
            return
        delays = np.concatenate(self._buf)
        self._buf, self._nbuf = [], 0
        if delays.size == 0:
            return
        self.n += delays.size
        self.max = max(self.max, float(delays.max()))
        small = delays < self.LO
        self.zero += int(small.sum())
        idx = np.floor(np.log(delays[~small] / self.LO) / math.log(self.GAMMA)).astype(np.int64)
        if idx.size:
            top = int(idx.max()) + 1
            if top > self.counts.size:
                self.counts = np.concatenate([self.counts, np.zeros(top - self.counts.size,
                                                                    np.int64)])
            self.counts += np.bincount(idx, minlength=self.counts.size)

    def quantile(self, q: float) -> float:
        self._flush()
        if self.n == 0:
            return math.nan
        rank = q * (self.n - 1)
        if rank < self.zero:
            return 0.0
        cum = self.zero + np.cumsum(self.counts)
        i = int(np.searchsorted(cum, rank, side="right"))
        # interpolate within the bin (log scale), so quantiles move smoothly between runs
        below = cum[i - 1] if i > 0 else self.zero
        frac = (rank - below + 0.5) / max(int(self.counts[i]), 1) if i < cum.size else 0.5
        return min(self.LO * self.GAMMA ** (i + min(max(frac, 0.0), 1.0)), self.max)

    def cdf(self) -> tuple[np.ndarray, np.ndarray]:
        """(upper bin edges in s, share of delivered recipients at or below each edge)."""
        self._flush()
        edges = self.LO * self.GAMMA ** (np.arange(self.counts.size) + 1)
        cum = (self.zero + np.cumsum(self.counts)) / max(self.n, 1)
        return np.concatenate([[self.LO], edges]), np.concatenate([[self.zero / max(self.n, 1)],
                                                                     cum])
