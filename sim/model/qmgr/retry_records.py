"""Exim's retry records of a 4xx to RCPT, one per (recipient, sender) pair: R:<rcpt>:<sender>.

Public names: new_records, FIRST, LAST, NEXT, STAMP, CLAIM, TRIED, RETRY_DATA_EXPIRE, overdue,
skipped, claims, tried, update, wake, forget.

Contract (EXIM 4.96 src/src/transports/smtp.c: a 4xx to RCPT adds the retry item
`R:<address>:<sender>` when address_retry_include_sender is true, the default;
src/src/deliver.c, routing of each address: the record's check; src/src/retry.c retry_update):
- A record is a row of int64 (whole seconds): first_failed, last_try, next_try, time_stamp
  (when it was last written; < 0: no record) and the queue run that last routed one of its
  messages (CLAIM; TRIED: that message's queue id). new_records(n) makes n without a record.
  Every message of a pair shares its row; sim.model.sender numbers the pairs.
- skipped(P, rec, create, now): a queue run at `now` does not route a message whose pair has a
  record written within retry_data_expire (7 d) whose next_try is later than now, unless the
  message is overdue: older than the last rule's cutoff (retry_ultimate_address_timeout,
  with the ultimate timeout of Exim 4.82 and later: P[2]; overdue()). Such a message is not
  tried ("retry time not reached"); it is not an attempt. A delivery outside a queue run
  (the first, on arrival) ignores the record.
- claims(rec, run, qid) and tried(P, rec, create, run, qid): Exim's queue runner delivers
  one message at a time, and each delivery's failure writes the record before the next
  message is routed, so in one queue run only the first message of a pair that the record
  lets through is tried; the others are skipped, unless overdue. Exim takes the queue in a
  pseudo-random order (queue.c queue_get_spool_list: each file goes to the head or the tail
  of the list by a bit of time(NULL)); relaysim takes the oldest message (lowest queue id)
  of the pair filed for the run, as Exim does with queue_run_in_order. claims() is called
  for every such message of the run before any is decided; tried() then says whether a
  message goes. The caller claims only when the relay answers unknown users with a 4xx at
  the run's start (after a 5xx or a 250 the record is deleted, and the next message of the
  pair is routed too).
- update(P, rec, create, now, u) after a 4xx to RCPT at `now`: retry_update on the record (a
  new one when there is none or it is older than retry_data_expire: first_failed = now,
  last_try = next_try = now); the failing interval is max(now - first_failed, now - create)
  (the message's age counts for an address error), and schedules.exim_next gives next_try
  from it (the record times out when no rule covers it). Writes last_try = now, next_try,
  time_stamp = now; returns (the message's wake-up, give_up: the address timed out and is
  bounced now). A message with a young age bounces at its first failure once its pair's record
  has been failing longer than the last cutoff.
- wake(P, rec, create, now): when a message of the pair is next routed: the record's next_try,
  or its own ultimate timeout if earlier (schedules.exim_ultimate); at least now + 1.
- forget(rec): a 250 or a 5xx to RCPT deletes the record (deliver.c, af_dr_retry_exists:
  delete items for R:<address>:<sender>, kept only when the transport added a retry item).
Nothing here knows about the queue, time series or SimPy.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.model import schedules

FIRST, LAST, NEXT, STAMP, CLAIM, TRIED = range(6)
RETRY_DATA_EXPIRE = 7 * 86400  # Exim's retry_data_expire default (readconf.c)


def new_records(n: int) -> np.ndarray:
    """n pairs without a record (time_stamp -1), never claimed."""
    rec = np.full((n, 6), -1, dtype=np.int64)
    rec[:, CLAIM] = np.iinfo(np.int64).min
    return rec


@njit(cache=True)
def _live(rec, now):
    """The record exists and was written within retry_data_expire."""
    return rec[STAMP] >= 0 and now - rec[STAMP] <= RETRY_DATA_EXPIRE


@njit(cache=True)
def overdue(P, create, now):
    """The message is older than the last rule's cutoff and the ultimate timeout is on: a
    queue run routes it whatever its pair's record says."""
    return P[2] and P[0] > 0 and now - create > P[3 + 4 * (P[0] - 1) + 1]


@njit(cache=True)
def skipped(P, rec, create, now):
    """A queue run at `now` leaves the message alone: its pair's record says not yet, and the
    message is not overdue (see the contract)."""
    if not _live(rec, now) or now >= rec[NEXT]:
        return False
    return not overdue(P, create, now)


@njit(cache=True)
def claims(rec, run, qid):
    """A message (queue id qid) of the pair that the record lets through in the queue run at
    `run`: the oldest of them is the one tried (see the contract)."""
    if rec[CLAIM] != run:
        rec[CLAIM] = run
        rec[TRIED] = qid
    else:
        rec[TRIED] = min(rec[TRIED], qid)


@njit(cache=True)
def tried(P, rec, create, run, qid):
    """Whether the queue run at `run` tries the message qid (created at `create`) that its
    pair's record let through: the pair's oldest such message, whose failure moves the
    record's next try, and any overdue one."""
    return rec[CLAIM] != run or rec[TRIED] == qid or overdue(P, create, run)


@njit(cache=True, inline="never")
def update(P, rec, create, now, u=-1.0):
    """retry_update after a 4xx to RCPT at `now` (see the contract): (wake, give_up)."""
    if not _live(rec, now):
        rec[FIRST] = now
        rec[LAST] = rec[NEXT] = -1  # a new record: lastgap 0 (exim_next)
    fi = max(now - rec[FIRST], now - create)
    next_try, give_up = schedules.exim_next(P, fi, now, rec[LAST], rec[NEXT], u)
    rec[LAST], rec[NEXT], rec[STAMP] = now, next_try, now
    return schedules.exim_ultimate(P, next_try, create, now), give_up


@njit(cache=True)
def wake(P, rec, create, now):
    """When a message of the pair is next routed (see the contract)."""
    next_try = rec[NEXT] if _live(rec, now) else now
    return schedules.exim_ultimate(P, next_try, create, now)


@njit(cache=True)
def forget(rec):
    """The pair's record is deleted (a 250 or a 5xx to RCPT)."""
    rec[STAMP] = -1
