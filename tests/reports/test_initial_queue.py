"""relaysim run --initial-queue: a run that starts from a real postqueue -j listing, and runs
chained through their own snapshots."""

import csv
import json
import subprocess
import sys
from pathlib import Path

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


def test_the_scenario_key_starts_the_same_run_as_the_option(tmp_path):
    """simulation.initial_queue (relative to the scenario file's folder) and queue_time start
    the same run as --initial-queue and --queue-time; the option wins over the key."""
    import shutil

    (tmp_path / "q").mkdir()
    shutil.copy(REAL, tmp_path / "q" / "live.jsonl")
    t = "2026-12-03T14:00:00Z"
    _, by_option = relaysim(tmp_path, "opt", "1d", 450, "--initial-queue",
                            str(tmp_path / "q" / "live.jsonl"), "--queue-time", t)
    (tmp_path / "q" / "key.toml").write_text(
        SCENARIO.format(duration="1d", code=450).replace(
            '[simulation]\n', f'[simulation]\ninitial_queue = "live.jsonl"\nqueue_time = "{t}"\n'))
    proc = subprocess.run([sys.executable, "-m", "sim", "run", str(tmp_path / "q" / "key.toml"),
                           "--out", str(tmp_path / "key"), "-q"], capture_output=True, text=True,
                          cwd="/", timeout=600)  # another folder: the key is the file's folder's
    assert proc.returncode == 0, proc.stderr
    by_key = json.loads((tmp_path / "key" / "summary.json").read_text())
    assert by_key["summary"] == by_option["summary"]
    assert by_key["scenario"]["simulation"]["initial_queue"] == str(tmp_path / "q" / "live.jsonl")
    # the option wins: an empty queue given on the command line
    (tmp_path / "empty.jsonl").write_text("")
    proc = subprocess.run([sys.executable, "-m", "sim", "run", str(tmp_path / "q" / "key.toml"),
                           "--out", str(tmp_path / "empty"), "-q", "--initial-queue",
                           str(tmp_path / "empty.jsonl")], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    empty = json.loads((tmp_path / "empty" / "summary.json").read_text())["summary"]
    assert empty["recipients"]["received"] < by_key["summary"]["recipients"]["received"]


def test_bad_initial_queue_keys_are_one_line_before_anything_runs(tmp_path):
    base = SCENARIO.format(duration="1d", code=450)
    real = Path(REAL).resolve()
    cases = [('initial_queue = "missing.jsonl"', [], "simulation.initial_queue"),
             ('queue_time = "2026-12-03T14:00:00Z"', [], "simulation.queue_time"),
             (f'initial_queue = "{real}"\nqueue_time = "noon"', [], "simulation.queue_time"),
             (f'initial_queue = "{real}"\nqueue_mtimes = "none.txt"', [],
              "simulation.queue_mtimes"),
             ('initial_queue = ""', [], "simulation.initial_queue"),
             (f'initial_queue = "{real}"', ["--seeds", "2"], "simulation.initial_queue")]
    for i, (line, extra, key) in enumerate(cases):
        scen = tmp_path / f"s{i}.toml"
        scen.write_text(base.replace("[simulation]\n", f"[simulation]\n{line}\n"))
        proc = subprocess.run([sys.executable, "-m", "sim", "run", str(scen), "--out",
                               str(tmp_path / "o"), "-q", *extra], capture_output=True,
                              text=True, cwd=".", timeout=120)
        assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, (line, proc.stderr)
        assert key in proc.stderr and "Traceback" not in proc.stderr, (line, proc.stderr)
        assert not (tmp_path / "o").exists()


def test_sweep_and_replay_refuse_an_initial_queue(tmp_path):
    """They start every run from an empty queue: the key is refused, not ignored."""
    scen = tmp_path / "s.toml"
    scen.write_text(SCENARIO.format(duration="1d", code=450).replace(
        "[simulation]\n", f'[simulation]\ninitial_queue = "{Path(REAL).resolve()}"\n'))
    log = Path("results/validation/postfix/550/upstream.maillog").resolve()
    for args in (["sweep", str(scen), "--out", str(tmp_path / "o"), "--vary",
                  "relay.unknown_local_recipient_reject_code=450,550"],
                 ["replay", str(log), str(scen), "--out", str(tmp_path / "o")]):
        proc = subprocess.run([sys.executable, "-m", "sim", *args], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
        assert "simulation.initial_queue" in proc.stderr and "empty queue" in proc.stderr
        assert not (tmp_path / "o").exists()
