"""Throughput and memory of the Postfix-format writers (sim/postfix) on a synthetic stream.

Question: how fast do the maillog, metrics and postqueue-snapshot writers take an attempt
stream, and does their memory stay flat when the stream grows (bounded memory)?
How: tests/postfix/streams.py's generator (20000 messages over 4 days, 64833 rows), repeated k
times one after the other (new qids, shifted times) and handed over lazily in batches; one
writer per process run; prints rows/s, lines/s and the peak RSS of the process.
Usage: python experiments/formats_throughput.py K maillog|metrics|snapshots [OUT_DIR]
Not part of make test or the benchmark; the numbers depend on the machine's load.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "postfix")]
import streams  # noqa: E402

from sim.postfix import exporter, maillog, postqueue  # noqa: E402

SPAN = 4 * 86400.0


def lazy(base, k):
    """k copies of the stream one after the other, batch by batch."""
    nq = int(max(b["qid"].max() for b in base)) + 1
    for c in range(k):
        for b in base:
            b = b.copy()
            b["qid"] += c * nq
            for f in ("arrival", "entry", "start", "end"):
                b[f] += c * SPAN
            yield b


def main(k: int, what: str, out: Path) -> int:
    base = streams.stream(seed=1, n=20000, duration=SPAN)
    rows = k * sum(len(b) for b in base)
    t = time.perf_counter()
    if what == "maillog":
        st = maillog.write_maillog(lazy(base, k), out)
        n = sum(v["lines"] for v in st.values())
        extra = (f"{n} lines, {n / (time.perf_counter() - t):.0f} lines/s, out of order "
                 f"{sum(v['out_of_order'] for v in st.values())}")
    elif what == "metrics":
        exporter.write_metrics(lazy(base, k), out / "sim.om", k * SPAN)
        extra = f"{os.path.getsize(out / 'sim.om') / 1e6:.1f} MB of OpenMetrics"
    else:
        w = postqueue.SnapshotWriter(np.arange(0, k * SPAN, 3600.0))
        for b in lazy(base, k):
            w.write(b)
        extra = f"{sum(len(s) for s in w.close())} queue entries listed"
    dt = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{what} k={k}: {rows} rows in {dt:.1f} s ({rows / dt:.0f} rows/s), peak RSS "
          f"{rss:.0f} MB, {extra}; load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        sys.exit(main(int(sys.argv[1]), sys.argv[2],
                      Path(sys.argv[3]) if len(sys.argv) > 3 else Path(tmp)))
