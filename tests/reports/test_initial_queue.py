"""relaysim run --initial-queue: a run that starts from a real postqueue -j listing, and runs
chained through their own snapshots."""

import csv
import json
import subprocess
import sys

import numpy as np

from sim import Scenario, simulate
from sim.postfix import postqueue

REAL = "tests/data/postqueue/stopped.jsonl"  # real Postfix 3.7.11 output (postqueue_fixture.py)

SCENARIO = """\
[simulation]
duration = "{duration}"
[[senders]]
rate = "2000/d"
unknown_recipient_fraction = 0.3
[relay]
unknown_local_recipient_reject_code = {code}
"""


def relaysim(tmp_path, name, duration, code, *extra):
    scen = tmp_path / f"{name}.toml"
    scen.write_text(SCENARIO.format(duration=duration, code=code))
    proc = subprocess.run([sys.executable, "-m", "sim", "run", str(scen), "--out",
                           str(tmp_path / name), "-q", *extra], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc, json.loads((tmp_path / name / "summary.json").read_text())


def series(tmp_path, name):
    rows = list(csv.DictReader((tmp_path / name / "timeseries.csv").open()))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


def test_a_real_queue_is_where_the_run_starts():
    """Every queued recipient of the real listing but the held message's enters the run at
    time 0 with its real age; the forced-expire message expires at its first deferral; the
    deferred ones wait for their rebuilt wake-up time."""
    snap = postqueue.read_postqueue(REAL)
    scen = Scenario.from_dict({"simulation": {"duration": "1d"},
                               "senders": [{"rate": "1/d", "stop": "1s"}],
                               "relay": {"unknown_local_recipient_reject_code": 450}})
    q, held = postqueue.initial_queue(snap, scen)
    assert held == int(snap.in_queue("hold").sum()) == 1
    assert q.arrival.max() == 0 and q.arrival.min() < 0  # real ages, time 0 the newest
    assert q.forced.sum() == snap.forced_expire[~snap.in_queue("hold")].sum() >= 1
    r = simulate(scen, seed=1, initial_queue=q, record_attempts=True)
    queued = int((q.rcpt != -2).sum())
    assert r.summary["recipients"]["received"] >= queued
    a = r.attempts
    first = {}
    for m, t in zip(a["message_id"].tolist(), a["t_s"].tolist(), strict=True):
        first.setdefault(m, t)
    wake = dict(enumerate(q.wake.tolist()))
    for m, deferred in enumerate(q.deferred.tolist()):
        assert m in first  # every one of them is tried
        if deferred:
            assert first[m] >= wake[m] - 1 - 300  # at the scan that finds mtime <= T + 1
        else:
            assert first[m] < 60  # taken by the first tick
    forced = np.flatnonzero(q.forced)
    assert all(o in ("expired", "sent", "bounced") for m in forced.tolist()
               for o in a["outcome"][a["message_id"] == m][-1:])


def test_runs_chain_through_their_snapshots(tmp_path):
    """A 450 run's queue at 1 d, written as postqueue -j, starts a second run: at its time 0
    the second run's deferred queue is the first's at 1 d, message for message and in qshape's
    age buckets; switching that second run to 550 empties it within one retry cycle."""
    relaysim(tmp_path, "a", "2d", 450, "--snapshot-at", "1d")
    snap = tmp_path / "a" / "postqueue-1d.json"
    a = series(tmp_path, "a")
    at = np.flatnonzero(a["t_s"] == 86400.0)[0]
    proc, s = relaysim(tmp_path, "b", "1d", 450, "--initial-queue", str(snap))
    b = series(tmp_path, "b")
    assert b["deferred"][0] == a["deferred"][at] > 100
    ages = [k for k in a if k.startswith("age_")]
    got, want = np.array([b[k][0] for k in ages]), np.array([a[k][at] for k in ages])
    # postqueue -j has whole-second arrival times: a message within a second of a bucket's
    # edge may move to the next bucket, no further
    assert got.sum() == want.sum()
    assert np.abs(np.cumsum(got) - np.cumsum(want)).max() <= 0.02 * want.sum()
    _, s550 = relaysim(tmp_path, "c", "1d", 550, "--initial-queue", str(snap))
    c = series(tmp_path, "c")
    assert c["deferred"][0] == a["deferred"][at]
    after = np.searchsorted(c["t_s"], 4800.0)  # 550: bounced at the next retry, <= 4200 s
    assert c["deferred"][after] < 0.1 * c["deferred"][0]


def test_not_postqueue_output_is_one_line(tmp_path):
    (tmp_path / "q.txt").write_text("-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient\n")
    scen = tmp_path / "s.toml"
    scen.write_text(SCENARIO.format(duration="1d", code=450))
    proc = subprocess.run([sys.executable, "-m", "sim", "run", str(scen), "--out",
                           str(tmp_path / "o"), "-q", "--initial-queue", str(tmp_path / "q.txt")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr and not (tmp_path / "o").exists()
