"""A real dask.distributed cluster on 127.0.0.1: `dask scheduler` and two `dask worker`
processes on their own ports; `relaysim sweep --scheduler` with one worker killed mid-sweep
gives the process pool's bytes. Everything the test starts is stopped."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="the sweep extra (dask.distributed) is not installed")

from distributed import Client  # noqa: E402

from tests.studies.test_sweep_command import RELAYSIM, _scenario, _sweep  # noqa: E402

DASK = Path(sys.executable).with_name("dask")
pytestmark = pytest.mark.skipif(not DASK.exists(), reason=f"{DASK} (dask's command) is absent")


def _stop(procs):
    """The workers first (a worker whose scheduler has gone waits to reconnect), then the
    scheduler; SIGKILL for whatever has not ended after 20 s."""
    for group in (procs[1:], procs[:1]):
        for p in group:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in group:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=20)


@pytest.fixture
def cluster(tmp_path):
    # port 0: the scheduler takes a free port and writes its address into the scheduler file
    info = tmp_path / "scheduler.json"
    logs = [open(tmp_path / f"{n}.log", "w") for n in ("scheduler", "worker0", "worker1")]
    common = {"stdout": subprocess.DEVNULL, "start_new_session": True, "cwd": tmp_path}
    procs = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(info)],
                              stderr=logs[0], **common)]
    try:
        deadline, address = time.monotonic() + 60, None
        while address is None and time.monotonic() < deadline:
            assert procs[0].poll() is None, (tmp_path / "scheduler.log").read_text()
            try:
                address = json.loads(info.read_text())["address"]
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                time.sleep(0.05)  # not written (completely) yet
        assert address.startswith("tcp://127.0.0.1:")
        for i in (0, 1):
            procs.append(subprocess.Popen(
                [str(DASK), "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                 "--no-nanny", "--no-dashboard", "--name", f"w{i}", "--death-timeout", "60"],
                stderr=logs[i + 1], **common))
        with Client(address, timeout="60s") as c:
            c.wait_for_workers(2, timeout=120)
        yield address, procs
    finally:
        _stop(procs)
        for f in logs:
            f.close()
    assert all(p.poll() is not None for p in procs)


def test_sweep_on_a_real_cluster_survives_a_killed_worker(cluster, tmp_path):
    address, procs = cluster
    scen = _scenario(tmp_path, rate="150000/d")  # runs of about 0.3 s
    args = [scen, "--vary", "upstream.maximal_queue_lifetime=6h,1d,2d", "--seeds", 4, "-q"]
    out = tmp_path / "dask"
    sweep = subprocess.Popen([str(RELAYSIM), "sweep", *map(str, args), "--out", str(out),
                              "--scheduler", address], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while len(list((out / "runs").glob("*.json"))) < 2 and time.monotonic() < deadline:
            assert sweep.poll() is None, sweep.communicate()
            time.sleep(0.01)
        done_at_kill = len(list((out / "runs").glob("*.json")))
        assert sweep.poll() is None and done_at_kill < 12
        procs[1].send_signal(signal.SIGKILL)  # worker w0, with runs in flight
        procs[1].wait(timeout=20)
        _, err = sweep.communicate(timeout=300)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
    assert sweep.returncode == 0, err
    assert "failed" not in err
    log = (tmp_path / "scheduler.log").read_text()
    assert "Remove worker" in log and "name: w0" in log.split("Remove worker", 1)[1]
    with Client(address, timeout="30s") as c:
        assert list(c.nthreads().values()) == [1]  # only w1 is left
    pool = tmp_path / "pool"
    _sweep(*args, "--out", pool, "--workers", 2)
    for f in ("runs.csv", "summary.csv"):
        assert (out / f).read_bytes() == (pool / f).read_bytes(), f


def test_a_local_clusters_workers_keep_glibcs_malloc_settings():
    """dask's nannies set MALLOC_TRIM_THRESHOLD_=65536 (about 27 % more CPU per run: large
    numpy arrays are mmap'd afresh); DaskCluster(None, n) starts its workers without it and
    leaves this process's environment alone."""
    from sim.studies import backends

    with backends.DaskCluster(None, 1) as be:
        got = be.client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_")
        threads = be.client.run(os.environ.get, "OMP_NUM_THREADS")
    assert list(got.values()) == [None] and list(threads.values()) == ["1"]
    assert "MALLOC_TRIM_THRESHOLD_" not in os.environ
