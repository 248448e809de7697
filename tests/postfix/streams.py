"""A small attempt-stream generator for the format tests (not a model of anything).

stream(seed, ...) -> list of ATTEMPT batches: Poisson arrivals, 1 to 3 recipients of which
some are unknown at the relay (user -1), ordinary, null and forged senders, Postfix's backoff
(the next attempt one message age later, between minimal and maximal backoff), a relay that
answers unknown users 450 until `fix` and 550 after (deferred with soft_bounce: the upstream's
soft_bounce = yes), a relay outage (code 0: refused; in its second half SUSPENDED: the
destination dead, qmgr's retry service), a lifetime after
which a deferred message expires at its next attempt. Rows of one attempt adjacent, each batch
sorted by start, batches cut at every `batch` seconds of start time.
"""

from __future__ import annotations

import numpy as np

from sim.model.qmgr.rules import SUSPENDED
from sim.postfix.maillog import ATTEMPT, BOUNCED, DEFERRED, EXPIRED, SENT


def stream(seed: int = 1, n: int = 60, duration: float = 86400.0, fix: float = 6 * 3600.0,
           outage: tuple[float, float] = (3000.0, 5000.0), lifetime: float = 4 * 3600.0,
           batch: float = 3600.0, users: int = 50, soft_bounce: bool = False
           ) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    arrivals = np.sort(rng.uniform(0, duration / 4, n))
    rows = []
    for qid, t0 in enumerate(arrivals):
        k = int(rng.integers(1, 4))
        user = np.where(rng.random(k) < 0.4, -1, rng.integers(0, users, k))
        kind = int(rng.choice(3, p=[0.6, 0.1, 0.3]))
        size = int(rng.integers(300, 6_000))
        pending = list(range(k))
        entry, tries = t0 + rng.uniform(0, 2), 1
        while pending:
            start = entry + rng.uniform(0, 0.5)
            end = start + rng.uniform(0.01, 2.5)
            down = outage[0] <= start < outage[1]
            expire = end - t0 >= lifetime
            left = []
            for r in pending:
                if down:
                    code = 0 if start < (outage[0] + outage[1]) / 2 else SUSPENDED
                    out = DEFERRED
                elif user[r] >= 0:
                    code, out = 250, SENT
                elif start < fix:
                    code, out = 450, DEFERRED
                else:  # the upstream's soft_bounce = yes defers the 550
                    code, out = 550, DEFERRED if soft_bounce else BOUNCED
                if out == DEFERRED and expire:
                    out = EXPIRED
                rows.append((qid, r, user[r], kind, size, k, t0, entry, start, end, out, code,
                             tries))
                if out == DEFERRED:
                    left.append(r)
            pending = left
            age = end - t0
            entry = end + min(max(age, 300.0), 4000.0) + rng.uniform(0, 300)
            tries += 1
            if entry > duration:
                break
    a = np.array(rows, dtype=ATTEMPT)
    # attempts in start order, rows of an attempt adjacent and by recipient
    a = a[np.lexsort((a["rcpt"], a["tries"], a["qid"], a["start"]))]
    cuts = np.searchsorted(a["start"], np.arange(batch, duration + batch, batch))
    return [b for b in np.split(a, cuts) if len(b)]


def concat(batches: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(batches) if batches else np.zeros(0, dtype=ATTEMPT)
