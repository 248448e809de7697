"""qshape: the Postfix queue-shape table, laid out exactly as Postfix's qshape.pl prints it.

Public names: format_table, nearest_sample, bucket_labels, snapshot_domains, format_snapshot,
caption, RELAY_DOMAIN.

Contract (mta-semantics.md section 6.1; PF37 auxiliary/qshape/qshape.pl, subroutine results):
- format_table({domain: counts per age bucket}, labels, width) -> the table as text, one line
  per row, each ending in a newline. The first line is the header: an empty domain field, then
  "T" and the bucket labels (5 10 20 ... 1280 1280+ by default). Then a TOTAL row (the sum of
  all domains) and one row per domain with mail, all sorted by total, descending, ties by the
  length of the name (qshape.pl sorts TOTAL among the domains, so a domain with a shorter name
  and the same total comes before it; remaining ties by name, where Perl's order is undefined).
- Every numeric column is right-aligned; its width is the longer of its label and its TOTAL
  count, plus one, and at least 3. The domain field is right-aligned in what is left of `width`
  (at least 18); a longer name is shown as "+" and its last characters.
- nearest_sample(t_s, at) -> the index of the sample time closest to `at` (the earlier one on a
  tie).
- RELAY_DOMAIN is the one recipient domain relaysim simulates: the relay's. Counts are the
  deferred queue's messages (relaysim does not keep per-recipient ages; qshape.pl counts
  recipients, which is the same when messages have one recipient).
- bucket_labels(bucket_count, bucket_time, linear) -> qshape's header labels for `-b`, `-t`
  (minutes) and `-l`: t, 2t, 4t, ... (t, 2t, 3t, ... with -l), the last one "<previous>+".
- snapshot_domains(snapshot, queues, sender, ...) -> {domain: counts} of a QueueSnapshot
  (sim/postfix/postqueue.py), exactly as qshape.pl's wanted() and bucket() count a queue: age =
  snapshot time - arrival, m = age / (60 t); bucket 1 if m < 1, else 2 + floor(log2 m)
  (floor(m + 1) with linear), at most bucket_count; one count per pending recipient by
  recipient domain, or with `sender` (-s) one per message by sender domain, the null sender
  as MAILER-DAEMON; the domain is the part after the last "@", lower case, ".." made ".",
  outer dots stripped. Messages forced to expire (postsuper -e) are left out, as qshape.pl
  3.7 leaves them out: it reads only files of mode 0700 under mask 0733 and a forced expiry
  sets S_IXGRP (src/global/mail_queue.h); seen with the real qshape, tests/data/postqueue/.
  format_snapshot() is format_table of that with the matching labels.
- caption(...) is one line saying which queue, sample time and age reference a table shows,
  for printing above it (qshape.pl itself prints none).
Nothing here reads files or prints.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np

from sim.results import QSHAPE_LABELS

RELAY_DOMAIN = "example.com"
_MIN_DOMAIN_WIDTH = 18


def format_table(domains: Mapping[str, Sequence[int]], labels: Sequence[str] = QSHAPE_LABELS,
                 width: int = 80) -> str:
    """The qshape table for per-domain bucket counts (see the module contract)."""
    rows = {d: [int(sum(c)), *map(int, c)] for d, c in domains.items() if sum(c) > 0}
    for d, c in rows.items():
        if len(c) != len(labels) + 1:
            raise ValueError(f"{d}: {len(c) - 1} counts for {len(labels)} buckets")
    total = [sum(col) for col in zip(*rows.values(), strict=True)] if rows else []
    total = total or [0] * (len(labels) + 1)
    heads = ["T", *labels]
    widths = [max(len(h), len(str(n))) for h, n in zip(heads, total, strict=True)]
    widths = [w + 1 if w > 2 else 3 for w in widths]
    dw = max(width - sum(widths), _MIN_DOMAIN_WIDTH)

    def line(name: str, cells: Sequence) -> str:
        shown = "+" + name[len(name) - dw + 1:] if len(name) > dw else name.rjust(dw)
        return shown + "".join(str(c).rjust(w) for c, w in zip(cells, widths, strict=True))

    rows["TOTAL"] = total
    order = sorted(rows, key=lambda d: (-rows[d][0], len(d), d))
    return "".join(line(n, c) + "\n" for n, c in [("", heads), *((d, rows[d]) for d in order)])


def nearest_sample(t_s: np.ndarray, at: float) -> int:
    """Index of the sample closest to time `at` (seconds)."""
    return int(np.argmin(np.abs(np.asarray(t_s, dtype=float) - at)))


def bucket_labels(bucket_count: int = 10, bucket_time: int = 5, linear: bool = False
                  ) -> tuple[str, ...]:
    """qshape's header labels after "T" for -b bucket_count, -t bucket_time and -l."""
    if bucket_count < 1 or bucket_time < 1:
        raise ValueError(f"bucket_count {bucket_count} and bucket_time {bucket_time}: "
                         "whole numbers of at least 1")
    out, t = [], 0
    for i in range(1, bucket_count + 1):
        t += bucket_time if (linear or not t) else t
        out.append(str(t) if i < bucket_count else "")
    last = out[-2] if bucket_count > 1 else "0"
    out[-1] = f"{last}+"
    return tuple(out)


def _bucket(age_s: float, bucket_count: int, bucket_time: int, linear: bool) -> int:
    m = age_s / (60 * bucket_time)
    if m < 1:
        return 1
    b = int(m + 1) if linear else 2 + int(math.log(m) / math.log(2))
    return min(b, bucket_count)


def _domain(address: str) -> str:
    a = address.lower() or "MAILER-DAEMON"
    a = re.sub(r".*@", "", a).replace("..", ".")
    m = re.fullmatch(r"\.?(.+?)\.?", a, re.S)
    return m[1] if m else a


def snapshot_domains(snapshot, queues=("incoming", "active"), sender: bool = False,
                     bucket_count: int = 10, bucket_time: int = 5, linear: bool = False
                     ) -> dict[str, list[int]]:
    """{domain: counts per bucket} of the messages of `queues` in a QueueSnapshot."""
    from sim.postfix.postqueue import QUEUES
    want = {QUEUES.index(q) for q in queues}
    out: dict[str, list[int]] = {}
    for i in range(len(snapshot)):
        if int(snapshot.queue[i]) not in want or snapshot.forced_expire[i]:
            continue
        b = _bucket(float(snapshot.time - snapshot.arrival[i]), bucket_count, bucket_time,
                    linear)
        addrs = ([str(snapshot.sender[i])] if sender else
                 snapshot.address[snapshot.first[i]:snapshot.first[i + 1]].tolist())
        for a in addrs:
            out.setdefault(_domain(a), [0] * bucket_count)[b - 1] += 1
    return out


def format_snapshot(snapshot, queues=("incoming", "active"), sender: bool = False,
                    bucket_count: int = 10, bucket_time: int = 5, linear: bool = False,
                    width: int = 80) -> str:
    """`qshape [-s] [-l] -b bucket_count -t bucket_time queues...` of a QueueSnapshot."""
    return format_table(snapshot_domains(snapshot, queues, sender, bucket_count, bucket_time,
                                         linear),
                        bucket_labels(bucket_count, bucket_time, linear), width)


def caption(queues, at: str, sender: bool = False, messages: bool = False) -> str:
    """One line naming what a table shows, e.g. 'deferred queue at 21d (sample 2026-01-26
    00:00:00 UTC), recipients by domain, age since arrival in minutes' (`messages`: a run's
    recorded table, which counts messages by recipient domain)."""
    what = ("messages by sender domain" if sender else "messages by recipient domain"
            if messages else "recipients by domain")
    names = " and ".join(queues)
    return f"{names} queue{'s' if len(queues) > 1 else ''} at {at}, {what}, " \
        "age since arrival in minutes"
