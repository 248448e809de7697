"""A queue file as the queue manager sees it: one float64 row of fields and a row of recipients.

Public names: FIELDS, QID .. PAIR (column numbers), OUTCOMES, EXPIRED, NewMail, Grid,
new_files.

Contract:
- A message's queue file is a row of FIELDS (float64: queue id, arrival and create times,
  sender kind (sim.model.sender: ordinary, NULL, FORGED), size in bytes, sender number,
  recipients queued at arrival, tries so far, the last failure, the wake-up time computed
  then and the end of that attempt, whether a delay warning was sent, postgrey's first
  attempt and pass, Postfix 3.5's forced_expire: expire at the next deferral, and the
  (recipient, sender) pair whose retry record it shares, -1 none: sim.model.qmgr.retry_records)
  and a row
  of recipient ids (int32: >= 0 a relay user, -1 unknown at the relay, -2 done). Postfix
  keeps the same facts in the queue file's records (T arrival, create time, sender,
  recipients with their done flags); the wake-up time is the file's mtime.
- OUTCOMES names a recipient's outcome of one attempt: sent, deferred, bounced (the relay's
  answers, sim.model.relay) and expired (deferred at the attempt that returned the message).
- new_files(f, qid, mail, grid) writes the queue files of newly received mail (NewMail, not
  tried yet) and counts them at their arrival (received recipients, messages and bytes) where
  grid says (Grid: the recorder's array, its rows for those three, its duration, interval
  and bins).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from sim.model.metrics import bin_of

FIELDS = ("qid", "arrival", "create", "kind", "size", "source", "nrcpt", "tries", "last_fail",
          "last_next", "last_end", "warned", "grey_first", "grey_ok", "forced", "pair")
(QID, ARRIVAL, CREATE, KIND, SIZE, SOURCE, NRCPT, TRIES, LAST_FAIL, LAST_NEXT, LAST_END, WARNED,
 GREY_FIRST, GREY_OK, FORCED, PAIR) = range(16)
OUTCOMES = ("sent", "deferred", "bounced", "expired")
EXPIRED = 3


class NewMail(NamedTuple):
    """Newly received messages, one entry each: arrival and create time (s), sender kind, size
    (bytes), sender number, recipients (one row each, as the queue file's) and the
    (recipient, sender) pair (-1: its own)."""
    arrival: np.ndarray
    create: np.ndarray
    kind: np.ndarray
    size: np.ndarray
    source: np.ndarray
    rcpt: np.ndarray
    pair: np.ndarray


class Grid(NamedTuple):
    """Where arrivals are counted: the recorder's array, the rows of received recipients,
    messages and bytes, and its sample grid (duration, interval, bins)."""
    acc: np.ndarray
    rows: np.ndarray
    duration: float
    interval: float
    nbins: int


@njit(cache=True)
def new_files(f, qid, mail, grid):
    """f[i]: the queue file of new message i of mail (NewMail; queue id qid + i, not tried
    yet), counted at its arrival in grid (received recipients, messages and bytes; whole
    numbers, so the sums do not depend on their order)."""
    arrival, create, kind, size, source, rcpt, pair = mail
    acc, rows, rec_duration, interval, nbins = grid
    for i in range(f.shape[0]):
        f[i, QID] = qid + i
        f[i, ARRIVAL] = arrival[i]
        f[i, CREATE] = create[i]
        f[i, KIND] = kind[i]
        f[i, SIZE] = size[i]
        f[i, SOURCE] = source[i]
        f[i, PAIR] = pair[i]
        f[i, TRIES] = f[i, WARNED] = f[i, GREY_OK] = f[i, FORCED] = 0.0
        f[i, LAST_FAIL] = f[i, LAST_NEXT] = f[i, GREY_FIRST] = -1.0
        f[i, LAST_END] = -np.inf
        r = 0
        for c in range(rcpt.shape[1]):
            r += rcpt[i, c] != -2
        f[i, NRCPT] = r
        b = bin_of(arrival[i], rec_duration, interval, nbins)
        acc[rows[0], b] += r
        acc[rows[1], b] += 1.0
        acc[rows[2], b] += size[i]
