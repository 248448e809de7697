"""qshape: the Postfix queue-shape table, laid out exactly as Postfix's qshape.pl prints it.

Public names: format_table, nearest_sample, RELAY_DOMAIN.

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
Nothing here reads files or prints.
"""

from __future__ import annotations

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
