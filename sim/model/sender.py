"""Senders: the traffic sources that hand mail to the upstream queue host.

Public names: PROFILES, rate_multiplier, arrival_times, new_messages, pair_count, pair_of,
chunk_length, hand_over, sender_process, REAL, FORGED, NULL, CHUNK_MESSAGES.

Contract:
- arrival_times(sender, t0, t1, rng) -> sorted float arrival times in [t0, t1): explicit
  `arrivals`, or a Poisson process whose rate is `rate` x the profile multiplier of the hour
  (piecewise constant per hour, so each hour's count is Poisson and its times uniform: exact for
  a non-homogeneous Poisson process with that step rate). The profile multipliers average 1 over
  a day (daily) or a week (weekly), so `rate` stays the mean rate. Day 0 of a run is a Monday,
  starting at midnight.
- new_messages(...) -> a message batch (dict of equal-length arrays, the upstream's queue-file
  fields): recipients (rows of user ids drawn from every user that has existed by the
  message's arrival, so mail for a removed user keeps coming; -1 unknown, -2 no recipient),
  envelope sender kind (REAL, FORGED, NULL), size in whole bytes (lognormal with the given
  mean, sigma 1, rounded; at least 1), and the (recipient, sender) pair (pair_of: -1 unless
  the sender's sender_addresses and unknown_recipients_per_sender pools make pairs repeat;
  numbered from the sender's pair_base, so that senders never share a pair).
- sender_process is the SimPy process (hand_over, the one hand-over loop every source of
  mail uses, sim.model.trace's too): it hands its arrivals to the upstream in chunks of
  chunk_length(sender) seconds (whole hours holding about CHUNK_MESSAGES messages, an hour to
  a day), a chunk (and the upstream's longest queue-run interval) ahead of the clock, and
  says how far its mail is handed over (upstream.heard_until). One process per sender, never
  one per message. The chunks change only how the random streams are consumed, not the
  distribution of the mail.
A burst (a dictionary attack, a newsletter) is simply another sender with `start` and `stop`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

REAL, FORGED, NULL = 0, 1, 2
CHUNK_MESSAGES = 1 << 15  # a sender hands over about this many messages at a time

_DAILY = np.array([0.45, 0.40, 0.35, 0.35, 0.40, 0.50, 0.70, 0.95, 1.20, 1.35, 1.40, 1.40,
                   1.35, 1.35, 1.40, 1.40, 1.35, 1.25, 1.10, 1.00, 0.90, 0.80, 0.70, 0.55])
_DAILY = _DAILY / _DAILY.mean()
_WEEK = np.array([1.12, 1.12, 1.12, 1.12, 1.12, 0.70, 0.70])
_WEEK = _WEEK / _WEEK.mean()
PROFILES = {
    "flat": lambda hour: np.ones_like(hour, dtype=float),
    "daily": lambda hour: _DAILY[hour % 24],
    "weekly": lambda hour: _DAILY[hour % 24] * _WEEK[(hour // 24) % 7],
}


def rate_multiplier(profile: str, t: np.ndarray) -> np.ndarray:
    """Profile multiplier in force at times t (seconds since the run's Monday 00:00)."""
    return PROFILES[profile](np.floor(np.asarray(t, dtype=float) / 3600).astype(np.int64))


def arrival_times(sender, t0: float, t1: float, rng: np.random.Generator) -> np.ndarray:
    """Arrival times of `sender` in [t0, t1), sorted."""
    lo, hi = max(t0, sender.start), min(t1, sender.stop)
    if sender.arrivals:
        a = np.asarray(sender.arrivals, dtype=float)
        return a[(a >= t0) & (a < t1)]
    if hi <= lo or sender.rate <= 0:
        return np.empty(0)
    edges = np.arange(np.floor(lo / 3600) * 3600, hi + 3600, 3600.0)
    starts = np.maximum(edges[:-1], lo)
    ends = np.minimum(edges[1:], hi)
    keep = ends > starts
    starts, ends = starts[keep], ends[keep]
    counts = rng.poisson(sender.rate * rate_multiplier(sender.profile, starts) * (ends - starts))
    times = np.repeat(starts, counts) + rng.random(counts.sum()) * np.repeat(ends - starts, counts)
    times.sort()
    return times


def new_messages(sender, source: int, times: np.ndarray, users: np.ndarray, width: int,
                 rng: np.random.Generator, pair_base: int = 0,
                 rng_pairs: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """Queue-file fields of messages arriving at `times` from `sender`, `users` local users
    having existed by each arrival (see the contract)."""
    n = times.size
    k = sender.recipients_per_message
    users = np.asarray(users, dtype=np.int64)
    unknown = rng.random((n, k))
    high = np.maximum(users, 1)
    ids = rng.integers(0, high[0] if high.min() == high.max() else high[:, None], size=(n, k))
    u = rng.random(n)
    # lognormal with mean message_size: mu = ln(mean) - sigma^2/2, sigma = 1
    size = rng.lognormal(np.log(sender.message_size) - 0.5, 1.0, n)
    forged = sender.forged_sender_fraction
    rcpt, kind, create = _assemble(times, unknown, ids, u, size, width,
                                   sender.unknown_recipient_fraction, users, forged,
                                   forged + (1 - forged) * sender.null_sender_fraction)
    pair = np.full(n, -1, dtype=np.int64)
    if pair_count(sender):
        # from a stream of their own: the same seed gives the same mail with pools or without
        address = rng_pairs.integers(0, sender.sender_addresses, size=n)
        to = rng_pairs.integers(0, sender.unknown_recipients_per_sender, size=n)
        pair = pair_of(kind, rcpt[:, 0], address, to, sender.sender_addresses,
                       sender.unknown_recipients_per_sender, pair_base)
    return {"arrival": times, "create": create, "rcpt": rcpt, "kind": kind,
            "size": size.astype(np.float32), "source": np.full(n, source, dtype=np.int16),
            "pair": pair}


def pair_count(sender) -> int:
    """(recipient, sender) pairs a source's mail to unknown users can have: its sender
    addresses and the null sender <>, each with unknown_recipients_per_sender recipients; 0
    when every message has its own pair."""
    if not (sender.sender_addresses and sender.unknown_recipients_per_sender):
        return 0
    return (sender.sender_addresses + 1) * sender.unknown_recipients_per_sender


def pair_of(kind, rcpt, address, to, addresses, per_sender, base):
    """The (recipient, sender) pair of each message: base + sender x per_sender + recipient,
    the sender being its address number (0 .. addresses - 1) or `addresses` for the null
    sender <> (Exim keys a bounce's record with an empty sender); -1 for a message whose
    recipient is a relay user (no retry record is shared: known users are delivered)."""
    sender = np.where(kind == NULL, addresses, address)
    return np.where(rcpt < 0, base + sender * per_sender + to, -1).astype(np.int64)


@njit(cache=True)
def _assemble(times, unknown, ids, u, size, width, unknown_share, users, forged, forged_or_null):
    """new_messages from its draws: recipients (unknown where the draw < unknown_share),
    sender kinds, sizes rounded in place to whole bytes (at least 1), creation times."""
    n, k = ids.shape
    rcpt = np.full((n, width), -2, dtype=np.int32)
    kind = np.empty(n, dtype=np.int8)
    create = np.empty(n, dtype=np.int64)
    for i in range(n):
        for c in range(k):
            rcpt[i, c] = -1 if (unknown[i, c] < unknown_share or users[i] <= 0) else ids[i, c]
        kind[i] = FORGED if u[i] < forged else (NULL if u[i] < forged_or_null else REAL)
        # a queue file's size is whole bytes: sums of sizes are exact in any order
        size[i] = max(1.0, np.rint(size[i]))
        create[i] = np.int64(math.floor(times[i]))
    return rcpt, kind, create


def chunk_length(sender) -> float:
    """Seconds of arrivals a sender hands over at a time: whole hours holding about
    CHUNK_MESSAGES messages, at least an hour and at most a day."""
    if sender.arrivals:
        return 86400.0
    hours = CHUNK_MESSAGES / max(sender.rate * 3600.0, 1e-12)
    return 3600.0 * min(24, max(1, math.floor(hours)))


def hand_over(env, upstream, source: int, step: float, batch, duration: float,
              lead: float = 0.0):
    """SimPy process: hand the mail arriving in [t, t + step) (batch(t0, t1): a message batch
    or None) to the upstream a chunk and `lead` seconds ahead of the clock (lead: the
    upstream's longest queue-run interval, so that a qmgr tick has all the mail arriving
    before the next), and say how far it is handed over (heard_until). Every source of mail
    (a sender, a replayed log's trace) goes through this one loop."""
    t = 0.0
    while t < duration:
        if t - step - lead > env.now:
            yield env.timeout(t - step - lead - env.now)
        t1 = min(t + step, duration)
        msgs = batch(t, t1)
        if msgs is not None:
            upstream.receive(msgs)
        upstream.heard_until(source, t1 if t1 < duration else math.inf)
        t += step


def sender_process(env, sender, source: int, upstream, users_at, width: int,
                   rng_arrivals: np.random.Generator, rng_rcpt: np.random.Generator,
                   duration: float, lead: float = 0.0, pair_base: int = 0,
                   rng_pairs: np.random.Generator | None = None):
    """SimPy process of one sender (hand_over of its arrivals); users_at(times) is the number
    of local users that have existed by each time; its pairs are numbered from pair_base and
    drawn from rng_pairs."""
    def batch(t0: float, t1: float):
        times = arrival_times(sender, t0, t1, rng_arrivals)
        if times.size:
            return new_messages(sender, source, times, users_at(times), width, rng_rcpt,
                                pair_base, rng_pairs)
        return None

    return hand_over(env, upstream, source, chunk_length(sender), batch, duration, lead)
