"""A trace: a recorded arrival process (a real log's messages) handed to the upstream.

Public names: Trace, check_trace, trace_messages, trace_chunk, trace_process.

Contract:
- Trace(arrival, rcpt, kind, size, name=None): per message its arrival (seconds since the
  run's start, non-decreasing, at least 0), its recipients (a row per message of relay user
  ids, -1 unknown, -2 no recipient; every row has at least one recipient), its envelope sender
  kind (sim.model.sender REAL, FORGED, NULL), its size (whole bytes, at least 1) and,
  optionally, its queue file's place in the deferred scan's order (in [0, 1); NaN: not known,
  hashed as the model's own, sim.model.qmgr.rules.file_place). The arrays are
  the same queue-file fields a sender's new_messages makes; who fills them from a log and how
  known and unknown recipients are told apart is the reader's business
  (sim.postfix.maillog.replay_trace).
- check_trace(trace) -> None, or ValueError naming the field that breaks the above.
- trace_messages(trace, t0, t1, source) -> the message batch of the arrivals in [t0, t1) (None
  if there are none), as new_messages gives it: create = floor(arrival).
- trace_process(env, trace, source, upstream, duration, lead) is the SimPy process: the one
  hand-over loop of sim.model.sender (hand_over) over chunks of trace_chunk(trace) seconds
  (whole hours holding about CHUNK_MESSAGES messages at the trace's mean rate, an hour to a
  day). Arrivals at or after `duration` are not handed over. One process for the whole trace,
  never one per message: the batches stay numpy arrays.
Nothing is random here: the same trace gives the same mail.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from sim.model.sender import CHUNK_MESSAGES, FORGED, NULL, REAL, hand_over


class Trace(NamedTuple):
    """A recorded arrival process (see the module contract)."""
    arrival: np.ndarray  # s since the run's start, non-decreasing
    rcpt: np.ndarray  # (messages, width) int32: user id, -1 unknown, -2 none
    kind: np.ndarray  # int8: REAL, FORGED or NULL
    size: np.ndarray  # whole bytes
    name: np.ndarray | None = None  # place in the deferred scan's order, [0, 1) or NaN


def check_trace(trace: Trace) -> None:
    """ValueError naming the first field of `trace` that breaks the contract."""
    a = np.asarray(trace.arrival, dtype=float)
    n = a.size
    rcpt = np.asarray(trace.rcpt)
    if a.ndim != 1 or not np.isfinite(a).all() or (a < 0).any() or (np.diff(a) < 0).any():
        raise ValueError("arrival: finite times of at least 0, non-decreasing")
    if rcpt.ndim != 2 or rcpt.shape[0] != n or rcpt.shape[1] < 1 or (rcpt < -2).any():
        raise ValueError(f"rcpt: a ({n}, width) array of user ids, -1 or -2")
    if n and ((rcpt != -2).sum(axis=1) == 0).any():
        raise ValueError("rcpt: every message has a recipient")
    if np.shape(trace.kind) != (n,) or not np.isin(trace.kind, (REAL, FORGED, NULL)).all():
        raise ValueError("kind: REAL, FORGED or NULL per message")
    size = np.asarray(trace.size, dtype=float)
    if size.shape != (n,) or (size < 1).any() or (size != np.rint(size)).any():
        raise ValueError("size: whole bytes, at least 1, per message")
    if trace.name is not None:
        name = np.asarray(trace.name, dtype=float)
        known = name[~np.isnan(name)] if name.shape == (n,) else name
        if name.shape != (n,) or (known < 0).any() or (known >= 1).any():
            raise ValueError("name: a place in [0, 1) or NaN per message")


def trace_messages(trace: Trace, t0: float, t1: float, source: int) -> dict | None:
    """The message batch of the trace's arrivals in [t0, t1), or None."""
    lo, hi = np.searchsorted(trace.arrival, [t0, t1], side="left")
    if hi <= lo:
        return None
    times = np.asarray(trace.arrival[lo:hi], dtype=float)
    return {"arrival": times, "create": np.floor(times).astype(np.int64),
            "rcpt": np.ascontiguousarray(trace.rcpt[lo:hi], dtype=np.int32),
            "kind": np.asarray(trace.kind[lo:hi], dtype=np.int8),
            "size": np.asarray(trace.size[lo:hi], dtype=np.float32),
            "source": np.full(hi - lo, source, dtype=np.int16),
            "pair": np.full(hi - lo, -1, dtype=np.int64)}


def trace_chunk(trace: Trace) -> float:
    """Seconds of the trace handed over at a time (see the module contract)."""
    n = len(trace.arrival)
    span = float(trace.arrival[-1]) if n else 0.0
    rate = n / max(span, 1.0)
    hours = CHUNK_MESSAGES / max(rate * 3600.0, 1e-12)
    return 3600.0 * min(24, max(1, math.floor(hours)))


def trace_process(env, trace: Trace, source: int, upstream, duration: float,
                  lead: float = 0.0):
    """SimPy process handing the trace to the upstream (see the module contract)."""
    return hand_over(env, upstream, source, trace_chunk(trace),
                     lambda t0, t1: trace_messages(trace, t0, t1, source), duration, lead)
