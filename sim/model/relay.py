"""The local relay: recipient map, reject codes and availability, answered for batches of RCPTs.

Public names: RelayTimeline, rcpt_reply, smtpd_code, outcome, smtpd_session, outage_intervals,
SENT, DEFERRED, BOUNCED.

Contract:
- rcpt_reply(known, code, soft_bounce) is the relay's smtpd decision for one RCPT, vectorised:
  a recipient in local_recipient_maps is accepted (SENT); an unknown one gets
  unknown_local_recipient_reject_code, which soft_bounce turns from 5xx into 4xx
  (smtpd_code; mta-semantics.md 4.1); the upstream defers a 4xx recipient and bounces a 5xx
  one (3.3), unless its own soft_bounce defers that too (sim.model.qmgr.rules.soft_bounce).
- smtpd_code(code, soft_bounce) is what a Postfix smtpd answers for a reject code, on either
  host: soft_bounce = yes makes a 5xx a 4xx (smtpd_check.c, smtpd_chat.c).
- RelayTimeline holds the relay's configuration as a step function of time (the scenario's
  scheduled changes) plus its outage intervals (scheduled ones and random ones drawn once from
  MTBF/MTTR). It answers for any vector of times, including times ahead of the SimPy clock:
  the upstream computes a whole batch of attempts at once, and everything the relay does is a
  fixed function of time, so asking ahead is exact.
- smtpd_session(...) is the relay's smtpd error counting in one SMTP session, for one
  transaction (smtpd.c, smtpd_chat.c): the replies it delays and its error count after it.
- Known recipients are user ids 0..local_users-1; removing users (a change lowering local_users)
  makes the highest ids unknown. Unknown recipients have id -1 and never become known.
"""

from __future__ import annotations

import numpy as np
from numba import njit

SENT, DEFERRED, BOUNCED = 0, 1, 2


def smtpd_code(code, soft_bounce):
    """The reply code a Postfix smtpd sends for reject code `code`: under soft_bounce = yes a
    5xx goes out as 4xx (smtpd_check.c smtpd_check_reject, smtpd_chat.c); vectorised."""
    return np.where(np.logical_and(soft_bounce, code >= 500), code - 100, code)


def rcpt_reply(known: np.ndarray, code: np.ndarray, soft_bounce: np.ndarray) -> np.ndarray:
    """SENT for known recipients, else DEFERRED (4xx) or BOUNCED (5xx, unless soft_bounce)."""
    code = smtpd_code(code, soft_bounce)
    return np.where(known, SENT, np.where(code >= 500, BOUNCED, DEFERRED)).astype(np.int8)


@njit(cache=True)
def outcome(u, users, unknown):
    """One recipient id's outcome under one configuration: -1 if none is pending (id -2),
    SENT if known (0 <= id < users, as in RelayTimeline.reply), else `unknown`, rcpt_reply's
    answer for an unknown recipient (RelayTimeline.unknown_reply)."""
    return -1 if u == -2 else (SENT if 0 <= u < users else unknown)


@njit(cache=True)
def smtpd_session(errors, probe, keep, rejected, accepted, soft, hard, sleep):
    """One transaction in a relay smtpd session whose error count is `errors`: (the seconds
    smtpd slept before its replies, the error count after it, whether the session was
    replaced at its start, whether it is closed after it). smtpd counts one error per
    rejected command and clears the count when it queues a message (smtpd.c); from `soft`
    errors on (smtpd_soft_error_limit, `>=`) it sleeps `sleep` (smtpd_error_sleep_time)
    before every reply (smtpd_chat.c); at `hard` errors (smtpd_hard_error_limit, 0: none) it
    answers the next command 421, after the same sleep (vsmtpd_chat_reply sleeps before
    every reply), and closes the session: a transaction it cuts has no more replies (its
    later recipients, which Postfix then defers, keep their answers here). A reused session
    (probe) starts with the client's RSET (smtp_reuse.c), one more reply; a 421 to it makes
    the client open a new session for the same delivery, without a failure: errors start
    again at 0. Then MAIL, one RCPT per recipient, the rejected ones first (each an error),
    and DATA: 554 without an accepted recipient (an error; the client pipelines DATA), after
    which a client that keeps the session for reuse (keep: its connection cache is on) sends
    RSET (a 421 to it closes the session; one that does not keep it sends QUIT without
    waiting for the reply), else 354 and the end of data's 250 (queued: the count is
    cleared). Seen live: a relay session of 10 transactions whose every RCPT was rejected
    logs `rset=18` (9 after a failed transaction, 9 reuse probes) and `too many errors after
    DATA`."""
    replaced = False
    slept = 0.0
    if probe:
        if hard > 0 and errors >= hard:
            errors, replaced = 0, True
        elif errors >= soft:
            slept += sleep
    closed = False
    for k in range(2 + rejected + accepted):  # MAIL, the RCPTs, DATA
        if errors >= soft:
            slept += sleep
        if hard > 0 and errors >= hard:  # 421 to this command: the session ends here
            closed = True
            break
        if 1 <= k <= rejected or (k == 1 + rejected + accepted and accepted == 0):
            errors += 1
    if not closed and (accepted or keep):  # the end of data's 250, or the RSET (or 421)
        if errors >= soft:                  # after the failed transaction
            slept += sleep
        if accepted:
            errors = 0
        else:
            closed = hard > 0 and errors >= hard
    return slept, errors, replaced, closed


def outage_intervals(scheduled, mtbf: float, mttr: float, duration: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sorted, merged (starts, ends) of scheduled outages plus random ones (exponential up and
    down times with means mtbf and mttr; none when mtbf is 0)."""
    spans = [(o.start, o.start + o.duration) for o in scheduled if o.duration > 0]
    if mtbf > 0:
        t = 0.0
        while True:
            t += rng.exponential(mtbf)
            if t >= duration:
                break
            down = rng.exponential(mttr)
            spans.append((t, t + down))
            t += down
    spans.sort()
    merged: list[list[float]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    arr = np.array(merged, dtype=float).reshape(-1, 2)
    return arr[:, 0].copy(), arr[:, 1].copy()


class RelayTimeline:
    """The relay's answers as a function of time (see the module contract)."""

    def __init__(self, snapshots, outages: tuple[np.ndarray, np.ndarray]):
        self.times = np.array([t for t, _ in snapshots], dtype=float)
        self.users = np.array([r.local_users for _, r in snapshots], dtype=np.int64)
        self.code = np.array([r.unknown_local_recipient_reject_code for _, r in snapshots])
        self.soft = np.array([r.soft_bounce for _, r in snapshots], dtype=bool)
        self.down_start, self.down_end = outages
        self._unknown = [int(rcpt_reply(np.False_, c, sf))
                         for c, sf in zip(self.code, self.soft, strict=True)]

    def _snap(self, t: np.ndarray):
        """Index of the configuration in force at t (the first one for times before 0); a
        plain int when one configuration covers all of t (the common case: cheaper)."""
        if self.times.size == 1:
            return 0
        lo, hi = np.searchsorted(self.times, (t.min(), t.max()), side="right") - 1
        if lo == hi:
            return max(int(lo), 0)
        return np.maximum(np.searchsorted(self.times, t, side="right") - 1, 0)

    def unknown_reply(self, j: int) -> int:
        """The outcome (DEFERRED or BOUNCED) of an unknown recipient under configuration j."""
        return self._unknown[j]

    def users_at(self, t: np.ndarray) -> np.ndarray:
        """local_users in force at each time t."""
        return np.broadcast_to(self.users[self._snap(t)], t.shape)

    def down(self, t) -> np.ndarray:
        """True where the relay refuses connections at time t."""
        t = np.asarray(t, dtype=float)
        if self.down_start.size == 0:
            return np.zeros(t.shape, dtype=bool)
        i = np.searchsorted(self.down_start, t, side="right") - 1
        return (i >= 0) & (t < self.down_end[np.maximum(i, 0)])

    def reply(self, t: np.ndarray, rcpt: np.ndarray) -> np.ndarray:
        """Outcome per recipient (rows: attempts at times t; columns: recipient ids)."""
        j = self._snap(np.asarray(t, dtype=float))
        if not isinstance(j, int):
            j = j[:, None]
        known = (rcpt >= 0) & (rcpt < self.users[j])
        return rcpt_reply(known, self.code[j], self.soft[j])
