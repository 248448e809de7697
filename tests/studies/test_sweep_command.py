"""`relaysim sweep` end to end: the files and their columns, the intervals, the README, the same
bytes with 1 and 2 workers and after a real interruption, and bad input before any run."""

import csv
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sim.studies.statistics import mean_ci, seed_list
from sim.studies.sweep import HEADLINES, SUMMARY_FIGURES

RELAYSIM = Path(sys.executable).with_name("relaysim")
TINY = """\
[simulation]
name = "tiny"
duration = "2d"
seed = 7

[[senders]]
rate = "{rate}"
unknown_recipient_fraction = 0.4
forged_sender_fraction = 0.8

[upstream]
main_cf = "maximal_queue_lifetime = 1"

[relay]
unknown_local_recipient_reject_code = 450
"""
VARY = ["--vary", "upstream.maximal_queue_lifetime=6h,1d",
        "--vary", "relay.unknown_local_recipient_reject_code=450,550"]
RESULT_FILES = ("runs.csv", "summary.csv")


def _scenario(tmp_path, rate="2000/d"):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(rate=rate))
    return path


def _sweep(*args, check=True, **kw):
    p = subprocess.run([str(RELAYSIM), "sweep", *map(str, args)], capture_output=True,
                       text=True, **kw)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def _children(pid):
    """Process ids whose parent is pid (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(stat.parent.name)
    return out


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """One 4-setting x 3-seed sweep on 2 workers, shared by the tests that read its files."""
    tmp = tmp_path_factory.mktemp("small")
    out = tmp / "out"
    p = _sweep(_scenario(tmp), "--out", out, *VARY, "--seeds", 3, "--workers", 2)
    return tmp, out, p


def test_files_columns_and_rows(small):
    _, out, p = small
    rows = _rows(out / "runs.csv")
    assert len(rows) == 12 and len(list((out / "runs").glob("*.json"))) == 12
    assert list(rows[0]) == ["setting", "upstream.maximal_queue_lifetime",
                             "relay.unknown_local_recipient_reject_code", "seed",
                             *SUMMARY_FIGURES]
    # full factorial, first key slowest, the same (spawned) seeds in every setting
    assert [(r["upstream.maximal_queue_lifetime"], r["relay.unknown_local_recipient_reject_code"])
            for r in rows[::3]] == [("6h", "450"), ("6h", "550"), ("1d", "450"), ("1d", "550")]
    assert [int(r["seed"]) for r in rows] == seed_list(7, 3) * 4
    # the factors took effect: 550 leaves nothing deferred, a longer lifetime expires less
    by = {(r["upstream.maximal_queue_lifetime"], r["relay.unknown_local_recipient_reject_code"],
           r["seed"]): r for r in rows}
    seed = rows[0]["seed"]
    assert int(by[("1d", "550", seed)]["deferred_peak_messages"]) == 0
    assert (int(by[("1d", "450", seed)]["deferred_peak_messages"])
            > int(by[("6h", "450", seed)]["deferred_peak_messages"]) > 0)
    for f in ("README.md", *(f"sweep_{k.replace('.', '_')}.{e}" for k, _ in HEADLINES
                             for e in ("png", "svg"))):
        assert (out / f).stat().st_size > 0, f
    assert "4 setting(s) x 3 seed(s) = 12 runs (0 from an earlier sweep, 12 run now)" in p.stdout


def test_summary_holds_the_mean_and_interval_of_runs_csv(small):
    _, out, _ = small
    rows, summ = _rows(out / "runs.csv"), _rows(out / "summary.csv")
    assert len(summ) == 4 and [s["seeds"] for s in summ] == ["3"] * 4
    for s in summ:
        mine = [r for r in rows if r["setting"] == s["setting"]]
        for fig in ("deferred_peak_messages", "dsn.backscatter", "delivery_delay_s.p95"):
            m, lo, hi = mean_ci([float(r[fig]) for r in mine])
            got = [float(s[f"{fig} {c}"]) for c in ("mean", "lo", "hi")]
            assert got == pytest.approx([m, lo, hi], rel=1e-12), fig
            assert lo <= m <= hi


def test_readme_states_the_setup_the_table_and_the_command(small):
    tmp, out, _ = small
    text = (out / "README.md").read_text()
    assert "varied: `upstream.maximal_queue_lifetime` = 6h, 1d" in text
    assert "3 seeds per setting, spawned from simulation.seed = 7" in text
    summ = _rows(out / "summary.csv")
    peak = float(summ[2]["deferred_peak_messages mean"])
    row = next(line for line in text.splitlines() if line.startswith("| 2 |"))
    assert row.startswith("| 2 | `1d` | `450` | 3 | " + f"{peak:,.0f} (")
    assert (f"relaysim sweep {tmp / 'tiny.toml'} --vary upstream.maximal_queue_lifetime=6h,1d "
            "--vary relay.unknown_local_recipient_reject_code=450,550 --seeds 3 --out "
            f"{out}") in text
    assert "](sweep_deferred_peak_messages.png)" in text


def test_same_bytes_with_one_worker_and_resumed_with_nothing_to_do(small, tmp_path):
    tmp, out, _ = small
    one = tmp_path / "one"
    _sweep(tmp / "tiny.toml", "--out", one, *VARY, "--seeds", 3, "--workers", 1)
    for f in (*RESULT_FILES, "sweep_deferred_peak_messages.png"):
        assert (one / f).read_bytes() == (out / f).read_bytes(), f
    again = _sweep(tmp / "tiny.toml", "--out", one, *VARY, "--seeds", 3, "--workers", 2)
    assert "(12 from an earlier sweep, 0 run now)" in again.stdout
    for f in RESULT_FILES:
        assert (one / f).read_bytes() == (out / f).read_bytes(), f


def test_without_a_terminal_progress_is_a_line_every_10_percent(small):
    lines = small[2].stderr.splitlines()
    assert 1 <= len(lines) <= 10 and lines[-1].startswith("relaysim sweep: 100 %, 12 of 12 runs")
    assert all(line.startswith("relaysim sweep: ") and " running, 0 failed" in line
               for line in lines)


@pytest.mark.parametrize("workers", [1, 2], ids=["in-process", "pool"])
def test_an_interrupted_sweep_resumes_to_the_same_bytes(tmp_path, workers):
    scen = _scenario(tmp_path, rate="100000/d")  # runs of about 0.25 s
    args = [scen, *VARY[:2], "--seeds", 6, "--workers", workers]
    ref = tmp_path / "ref"
    _sweep(*args, "--out", ref, "-q")
    out = tmp_path / "out"
    proc = subprocess.Popen([str(RELAYSIM), "sweep", *map(str, args), "--out", str(out), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(list((out / "runs").glob("*.json"))) < 3 and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    children = _children(proc.pid)
    assert len(children) == (workers if workers > 1 else 0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert not [c for c in children if Path(f"/proc/{c}").exists()]  # pool workers stopped
    assert "interrupted" in err and "Traceback" not in err
    kept = len(list((out / "runs").glob("*.json")))
    assert 3 <= kept < 12 and not (out / "runs.csv").exists()
    assert not list((out / "runs").glob(".*"))  # no half-written record left behind
    again = _sweep(*args, "--out", out)
    assert f"({kept} from an earlier sweep, {12 - kept} run now)" in again.stdout
    for f in (*RESULT_FILES, "README.md"):
        assert (out / f).read_bytes() == (ref / f).read_bytes().replace(
            str(ref).encode(), str(out).encode()), f


def test_auto_seeds_reach_the_precision_and_do_not_depend_on_workers(tmp_path):
    scen = _scenario(tmp_path)
    common = [scen, *VARY[:2], "--seeds", "auto", "--precision", "3%", "--max-seeds", 12]
    one, two = tmp_path / "one", tmp_path / "two"
    p = _sweep(*common, "--out", one, "--workers", 1)
    _sweep(*common, "--out", two, "--workers", 2)
    for f in RESULT_FILES:
        assert (one / f).read_bytes() == (two / f).read_bytes(), f
    rows, summ = _rows(one / "runs.csv"), _rows(one / "summary.csv")
    fig = "deferred_peak_messages"
    for s in summ:
        vals = [float(r[fig]) for r in rows if r["setting"] == s["setting"]]
        n = int(s["seeds"])
        assert len(vals) == n and 3 <= n <= 12

        def rel(v):
            m, lo, hi = mean_ci(v)
            return (hi - lo) / 2 / abs(m)

        if s[f"{fig} within 0.03"] == "yes":
            assert rel(vals) <= 0.03
            assert n == 3 or rel(vals[:-1]) > 0.03  # the first n that is sharp enough
        else:
            assert n == 12 and rel(vals) > 0.03
    assert "seed(s)" in p.stdout
    assert "until the 95 % interval of `deferred_peak_messages` is within 0.03" in (
        one / "README.md").read_text()


@pytest.mark.parametrize("args, key", [
    (["--vary", "upstream.maximal_queue_lifetme=1d,2d"], "did you mean 'maximal_queue_lifetime'"),
    (["--vary", "upstream.maximal_queue_lifetime="], "--vary"),
    (["--vary", "relay.unknown_local_recipient_reject_code=450,5x0"],
     "relay.unknown_local_recipient_reject_code"),
    (["--seeds", "0"], "--seeds"),
    (["--seeds", "auto", "--precision-of", "deferred_peek_messages"], "--precision-of"),
    (["--seeds", "auto", "--precision", "150%"], "--precision"),
    (["--precision", "2%"], "only used with --seeds auto"),
    (["--workers", "0"], "--workers"),
    (["--scheduler", "tcp://127.0.0.1:9"], "--scheduler"),
], ids=["unknown-key", "empty-list", "bad-value", "seeds", "precision-of", "precision",
        "precision-without-auto", "workers", "unreachable-scheduler"])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, args, key):
    if "--scheduler" in args:
        pytest.importorskip("distributed", reason="the sweep extra (dask.distributed) is absent")
    out = tmp_path / "out"
    p = _sweep(_scenario(tmp_path), "--out", out, *args, check=False)
    assert p.returncode == 2, p.stderr
    assert p.stdout == "" and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert p.stderr.startswith("relaysim: error: ") and key in p.stderr
    assert not out.exists()


def test_the_store_holds_one_record_per_run(small):
    _, out, _ = small
    rec = json.loads(next((out / "runs").glob("*.json")).read_text())
    assert set(rec) == {"key", "seed", "factors", "summary", "wall_s"}
    assert rec["wall_s"] > 0 and not math.isnan(rec["summary"]["deferred_peak_messages"])
    assert np.isfinite(rec["seed"])


def test_run_with_seeds_gives_replications_with_intervals(tmp_path):
    out = tmp_path / "reps"
    p = subprocess.run([str(RELAYSIM), "run", str(_scenario(tmp_path)), "--seeds", "3",
                        "--out", str(out), "--workers", "2"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    rows, (summ,) = _rows(out / "runs.csv"), _rows(out / "summary.csv")
    assert [int(r["seed"]) for r in rows] == seed_list(7, 3) and summ["seeds"] == "3"
    m, lo, hi = (float(summ[f"deferred_peak_messages {c}"]) for c in ("mean", "lo", "hi"))
    assert f"messages; deferred queue peak: {m:,.0f} ({lo:,.0f} to {hi:,.0f})\n" in p.stdout
    q = [float(summ[f"queued_peak_messages {c}"]) for c in ("mean", "lo", "hi")]
    assert (f"queued upstream (deferred + active) peak: {q[0]:,.0f} ({q[1]:,.0f} to "
            f"{q[2]:,.0f}) messages; ") in p.stdout
    assert p.stdout.startswith("tiny: 3 seed(s) spawned from seed 7 (0 from an earlier run, "
                               "3 run now)")
    bad = subprocess.run([str(RELAYSIM), "run", str(tmp_path / "tiny.toml"), "--seeds", "0",
                          "--out", str(tmp_path / "none")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("relaysim: error: --seeds")
    assert not (tmp_path / "none").exists()


def test_the_readme_example_was_produced_by_the_command_it_shows():
    root = Path(__file__).resolve().parents[2]
    text = (root / "README.md").read_text().split("## Sweeps", 1)[1]
    shown = text.split("```sh\n", 1)[1].split("\n```", 1)[0].replace("\\\n", " ")
    generated = (root / "results" / "sweep_example" / "README.md").read_text()
    ran = generated.split("## Reproduce", 1)[1].split("```\n", 1)[1].split("\n```", 1)[0]
    assert " ".join(shown.split()) == ran
    assert (root / "results" / "sweep_example" / "sweep_deferred_peak_messages.png").exists()


def test_parquet_holds_runs_csv_where_pandas_and_pyarrow_are_installed(small):
    pd = pytest.importorskip("pandas", reason="pandas (the sweep extra) is not installed")
    pytest.importorskip("pyarrow", reason="pyarrow (the sweep extra) is not installed")
    _, out, p = small
    frame = pd.read_parquet(out / "runs.parquet")
    assert "runs.parquet" in p.stdout
    pd.testing.assert_frame_equal(frame, pd.read_csv(out / "runs.csv"))
    assert len(frame) == 12 and frame["deferred_peak_messages"].dtype.kind == "i"
