"""Soak: a year of 10,000 messages a day through `relaysim run`, in bounded memory.

Marked slow (CI runs it): one child process simulates 365 days at 10,000/d (3.65 million
messages, 30 % to unknown users the relay answers 450, expiring after 5 days) with hourly
samples and writes its run folder; its peak resident memory (getrusage of the child) must stay
under SOAK_RSS_MB, and the figure is printed in the test's output. The backlog is in steady
state after 5 days, so memory must not grow with the simulated time.
"""

import json
import subprocess
import sys

import pytest

SOAK_RSS_MB = 600  # measured 247 MB here (2026-12-03)

YEAR = """\
[simulation]
duration = "365d"
sample_interval = "1h"

[[senders]]
rate = "10000/d"
unknown_recipient_fraction = 0.3

[relay]
unknown_local_recipient_reject_code = 450
"""


@pytest.mark.slow
def test_a_year_of_10k_a_day_in_bounded_memory(tmp_path):
    scen = tmp_path / "year.toml"
    scen.write_text(YEAR)
    # a fresh parent whose only child is the run: its RUSAGE_CHILDREN peak is that run's
    wrapper = ("import resource, subprocess, sys\n"
               "p = subprocess.run(sys.argv[1:])\n"
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
               "sys.exit(p.returncode)\n")
    proc = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "sim", "run",
                           str(scen), "--out", str(tmp_path / "out"), "--quiet"],
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr
    rss_mb = int(proc.stdout.split()[-1]) / 1024  # kB on Linux
    meta = json.loads((tmp_path / "out" / "summary.json").read_text())
    r = meta["summary"]["recipients"]
    print(f"\nsoak: 365 d at 10000/d: {r['received']} recipients, peak deferred "
          f"{meta['summary']['deferred_peak_messages']} messages, wall "
          f"{meta['provenance']['wall_time_s']:.1f} s, peak RSS {rss_mb:.0f} MB "
          f"(bound {SOAK_RSS_MB} MB)")
    assert 3.5e6 < r["received"] < 3.8e6
    assert r["received"] == r["delivered"] + r["bounced"] + r["expired"] + r["queued_at_end"]
    assert rss_mb < SOAK_RSS_MB
    assert len((tmp_path / "out" / "timeseries.csv").read_text().splitlines()) == 365 * 24 + 2
