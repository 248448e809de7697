"""Sweep benchmark: the sweep machinery's overhead and the speed-up of two workers.

Question: how much time does `relaysim sweep`'s machinery (factorial, run store, scheduling,
progress, tables) add to the runs' own time on a sweep of short runs (target under 5 %), and
how much faster are two workers than one on the local process pool and on a local
dask.distributed cluster (target at least 1.8 x on a 2-core machine), measured side by side?

bench_sweep(out_dir) -> dict measures both and writes out_dir/bench_sweep.json; `make bench`
calls it. Timing: a sweep's time runs from run_sweep's start to its last result (the pool's
worker processes start inside it; a Dask cluster is started before and stopped after, outside
the timing, and its workers are warmed with one run each). The runs' own time is what each
run measured around simulate() in its worker. Rounds interleave the four configurations.
The machine may be shared: for each timed sweep, other_cores is the CPU that processes outside
this benchmark used meanwhile, in cores (Linux /proc; None elsewhere), so that a speed-up
measured while other work took the cores can be read as such. slowdown is how much longer the
same runs take, by their own clocks, two at a time than one at a time (the median of their
summed run times, 2 workers over 1): 2 / slowdown is the most two workers can gain on this
machine whatever the machinery does, so a speed-up short of 1.8 x can be read as the
machinery's or the machine's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim import Scenario, simulate  # noqa: E402
from sim.results import write_atomic  # noqa: E402
from sim.studies import backends  # noqa: E402
from sim.studies.factorial import factorial, parse_vary  # noqa: E402
from sim.studies.sweep import _run_summary, run_sweep, sweep_tables  # noqa: E402

# Short runs: two simulated days of a busy relay (about 0.1 s each for the overhead sweep,
# about 0.5 s each for the speed-up sweep on this project's 2-core machines).
SHORT = {"simulation": {"name": "bench-sweep", "duration": "2d", "seed": 11},
         "senders": [{"rate": "50000/d", "unknown_recipient_fraction": 0.35}],
         "relay": {"unknown_local_recipient_reject_code": 450}}
LIFETIMES = "upstream.maximal_queue_lifetime=6h,12h,1d,2d"
OVERHEAD_SEEDS = 10  # 40 runs
SPEEDUP_SEEDS = 4  # 16 runs
SPEEDUP_RATE = "250000/d"
ROUNDS = 2
TARGET_OVERHEAD, TARGET_SPEEDUP = 0.05, 1.8


def _settings(rate: str | None = None):
    base = Scenario.from_dict(SHORT)
    if rate:
        base = base.with_overrides({"senders.0.rate": rate})
    return factorial(base, [parse_vary(LIFETIMES, str)])


WARM = Scenario.from_dict({**SHORT, "simulation": {"duration": "1h"}}).to_dict()


def _warm():
    """Load (or compile) the numba kernels in this process."""
    simulate(Scenario.from_dict(WARM))


def _overhead(tmp: Path) -> dict:
    settings = _settings()
    t0 = time.perf_counter()
    res = run_sweep(settings, OVERHEAD_SEEDS, tmp / "overhead", backends.InProcess(),
                    progress=False)
    tables = sweep_tables(res)
    for name, text in tables.items():
        write_atomic(tmp / "overhead" / name, text)
    total = time.perf_counter() - t0
    runs = sum(r["wall_s"] for rs in res.records for r in rs)
    return {"runs": res.ran, "runs_s": runs, "sweep_s": total, "overhead": total / runs - 1,
            "mean_run_s": runs / res.ran}


def _cpu() -> tuple[float, float] | None:
    """(CPU seconds the machine has been busy, CPU seconds of this process, its reaped
    children and its live descendants) from /proc, or None where there is no /proc."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        procs = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        fields = f.read().rpartition(")")[2].split()
                except OSError:  # ended meanwhile
                    continue
                procs[int(d)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    mine, grew = {os.getpid()}, True
    while grew:
        new = {pid for pid, (ppid, _) in procs.items() if ppid in mine} - mine
        mine |= new
        grew = bool(new)
    t = os.times()
    live = sum(procs[p][1] for p in mine if p in procs and p != os.getpid()) / tick
    return (sum(v) - v[3] - v[4]) / tick, t.user + t.system + t.children_user + \
        t.children_system + live


def _timed(settings, seeds, out, backend) -> tuple[float, float, float | None]:
    """(the sweep's wall time, its runs' own time, other processes' cores meanwhile)."""
    c0, t0 = _cpu(), time.perf_counter()
    res = run_sweep(settings, seeds, out, backend, progress=False)
    c1, span = _cpu(), time.perf_counter() - t0  # span: with the backend's shutdown
    assert res.ran == len(settings) * seeds and not res.failed
    other = None if c0 is None or c1 is None else max(
        0.0, ((c1[0] - c0[0]) - (c1[1] - c0[1])) / span)
    return res.wall_s, sum(r["wall_s"] for rs in res.records for r in rs), other


def _dask(workers: int):
    be = backends.DaskCluster(None, workers)
    # every worker loads the kernels before the clock starts (a function it can import)
    be.client.run(_run_summary, WARM, 1)
    return be


def bench_sweep(out_dir: str | Path) -> dict:
    """Measure the overhead and the speed-ups; write out_dir/bench_sweep.json; return them."""
    out_dir = Path(out_dir)
    _warm()  # the pool's workers fork from this process and inherit the loaded kernels
    settings = _settings(SPEEDUP_RATE)
    configs = {"pool-1": lambda: backends.ProcessPool(1),
               "pool-2": lambda: backends.ProcessPool(2)}
    try:
        import distributed  # noqa: F401

        configs.update({"dask-1": lambda: _dask(1), "dask-2": lambda: _dask(2)})
    except ImportError:
        pass
    walls: dict[str, list] = {k: [] for k in configs}
    runs_s: dict[str, list] = {k: [] for k in configs}
    other: dict[str, list] = {k: [] for k in configs}
    with tempfile.TemporaryDirectory(prefix="bench_sweep.") as t:
        tmp = Path(t)
        overhead = _overhead(tmp)
        for r in range(ROUNDS):
            for name, make in configs.items():
                w, s, o = _timed(settings, SPEEDUP_SEEDS, tmp / f"{name}-{r}", make())
                walls[name].append(w)
                runs_s[name].append(s)
                other[name].append(o)
    med = {k: statistics.median(v) for k, v in walls.items()}
    kinds = [kind for kind in ("pool", "dask") if f"{kind}-1" in med]
    speedup = {kind: med[f"{kind}-1"] / med[f"{kind}-2"] for kind in kinds}
    slowdown = {kind: statistics.median(runs_s[f"{kind}-2"]) /
                statistics.median(runs_s[f"{kind}-1"]) for kind in kinds}
    result = {
        "overhead": overhead,
        "overhead_met": overhead["overhead"] < TARGET_OVERHEAD,
        "speedup_runs": len(settings) * SPEEDUP_SEEDS, "rounds": ROUNDS,
        "wall_s": walls, "runs_s": runs_s, "other_cores": other, "median_wall_s": med,
        "speedup": speedup, "slowdown": slowdown,
        "speedup_met": {k: v >= TARGET_SPEEDUP for k, v in speedup.items()},
        "targets": {"overhead": TARGET_OVERHEAD, "speedup": TARGET_SPEEDUP},
        "dask": "dask-1" in configs,
    }
    write_atomic(out_dir / "bench_sweep.json", json.dumps(result, indent=1, sort_keys=True))
    return result


def contention(r: dict, kind: str) -> str:
    """'the runs took 1.21 x as long two at a time as one at a time: at most 1.66 x possible on
    this machine; other processes used 0.0 to 0.2 cores' (the last part where /proc told)."""
    slow = r["slowdown"][kind]
    text = (f"the runs took {slow:.2f} x as long two at a time as one at a time: at most "
            f"{2 / slow:.2f} x possible on this machine")
    o = [x for k in (f"{kind}-1", f"{kind}-2") for x in r["other_cores"][k] if x is not None]
    return text + (f"; other processes used {min(o):.1f} to {max(o):.1f} cores" if o else "")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "results" / "benchmark")
    a = p.parse_args(argv)
    r = bench_sweep(a.out)
    o = r["overhead"]
    print(f"overhead: {100 * o['overhead']:.2f} % over {o['runs']} runs of "
          f"{o['mean_run_s']:.3f} s (target < {100 * TARGET_OVERHEAD:.0f} %: "
          f"{'met' if r['overhead_met'] else 'NOT met'})")
    for kind, x in r["speedup"].items():
        print(f"{kind}: 1 worker {r['median_wall_s'][kind + '-1']:.2f} s, 2 workers "
              f"{r['median_wall_s'][kind + '-2']:.2f} s, speed-up {x:.2f} x (target >= "
              f"{TARGET_SPEEDUP} x: {'met' if r['speedup_met'][kind] else 'NOT met'}); "
              + contention(r, kind))
    return 0


if __name__ == "__main__":
    sys.exit(main())
