"""Benchmark: how fast is relaysim, how large does it get, and is it still right?

Question: on one machine, in one run: how much faster than the naive reference model (one SimPy
process per message, tests/naive.py) is relaysim on a week of traffic, and do the two agree
within statistical noise (bench-week); how long and how much memory does a month of ISP traffic
take (isp-month), with Postfix's schedule and with each other upstream MTA's; does the speed hold
from 1e5 to 1e8 delivery attempts (scaling); and how does relaysim compare with Ciw on an M/M/c
queue whose mean wait Erlang C gives in closed form?

Figure: scaling (delivery attempts per second against attempts simulated, log-log), with the
bench-week runs of both engines and the isp-month runs marked. Also written: bench_week.csv,
agreement.csv, isp_month.csv, isp_month_mtas.csv, scaling.csv, mmc.csv, profile.txt (where
relaysim's time goes, pyinstrument or cProfile) and README.md. `--quick` runs every section at
toy sizes, once.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import simpy

from sim import Scenario, __version__, simulate
from sim.reports import plotting
from sim.results import write_atomic
from sim.studies.sweep import (
    experiment_args,
    fmt_time,
    mean_ci,
    seed_list,
    setup_lines,
    write_readme,
)

NAME = "benchmark"
ROOT = Path(__file__).resolve().parents[1]
DAY = 86400.0
LIMIT_S = 180.0  # the scaling sweep stops before a size predicted to take longer than this


def traffic(duration_s: float, per_day: float, unknown: float = 0.3) -> dict:
    """The benchmark model: Poisson mail, one recipient each, a 450 for unknown users, Postfix
    defaults (concurrency 20, 0.5 s exponential transaction time)."""
    return {"simulation": {"duration": f"{duration_s:.0f}s"},
            "senders": [{"rate": f"{per_day:.10g}/d", "unknown_recipient_fraction": unknown}],
            "relay": {"unknown_local_recipient_reject_code": 450}}


FULL = {"bench_week": traffic(7 * DAY, 10_000), "isp_month": traffic(28 * DAY, 100_000),
        "isp_days_per_day": (28, 100_000), "formats_hours": (6, 12),
        "relaysim_reps": 9, "naive_reps": 3, "isp_reps": 2, "scaling_reps": 3,
        # (days, messages/day) aimed at 1e5, 3e5, 1e6, 3e6, 1e7, 3e7, 1e8 and 1e9 attempts
        "scaling": [(7, 660), (7, 2000), (7, 6600), (14, 8300), (14, 27_500), (28, 36_000),
                    (28, 121_000), (28, 1_000_000)],
        "mmc_horizon_s": 7200.0, "mmc_relaysim_reps": 10, "mmc_ciw_reps": 3}
QUICK = {"bench_week": traffic(6 * 3600, 2000), "isp_month": traffic(DAY, 10_000),
         "isp_days_per_day": (1, 10_000), "formats_hours": (0.5, 1),
         "relaysim_reps": 1, "naive_reps": 1, "isp_reps": 1, "scaling_reps": 1,
         "scaling": [(0.25, 2000), (1, 2000)],
         "mmc_horizon_s": 300.0, "mmc_relaysim_reps": 1, "mmc_ciw_reps": 1}
# M/M/c: all mail valid, Poisson arrivals at lambda, c agents, exponential transactions 1/mu
MMC = {"c": 20, "lam": 36.0, "mu": 2.0}

MTAS = ("exim", "sendmail", "qmail", "exchange")  # isp-month with their schedules, once each
STATS = ("delivered", "expired", "attempts", "mean_deferred", "delay_p50_s", "delay_p95_s")


# --- the engines ----------------------------------------------------------------------------
def load_naive():
    """tests/naive.py's naive_simulate, loaded by path: tests/ is not a package, and Ciw's wheel
    installs a top-level `tests` package that would shadow it on import."""
    spec = importlib.util.spec_from_file_location("relaysim_naive", ROOT / "tests" / "naive.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod.naive_simulate


def key_stats(summary: dict, timeseries: dict) -> dict:
    """The statistics both engines report, by the same definitions
    (tests/model/test_agreement.py)."""
    return {"delivered": summary["recipients"]["delivered"],
            "expired": summary["recipients"]["expired"],
            "attempts": summary["attempts"],
            "mean_deferred": float(np.mean(timeseries["deferred"])),
            "delay_p50_s": summary["delivery_delay_s"]["p50"],
            "delay_p95_s": summary["delivery_delay_s"]["p95"]}


def timed(engine: str, scenario: Scenario, seed: int, naive) -> dict:
    """One run of `engine` with its wall and CPU time and key statistics."""
    t0, c0 = time.perf_counter(), time.process_time()
    if engine == "naive":
        r = naive(scenario, seed=seed)
        st = key_stats(r["summary"], r["timeseries"])
    else:
        r = simulate(scenario, seed=seed)
        st = key_stats(r.summary, r.timeseries)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"engine": engine, "seed": seed, "wall_s": wall, "cpu_s": cpu,
            "attempts_per_s": st["attempts"] / wall, "attempts_per_cpu_s": st["attempts"] / cpu,
            **st}


CHILD = """
import json, resource, sys, time
from sim import Scenario, simulate

def peak_kb():
    try:
        with open("/proc/self/status") as f:
            return next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:"))
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

s = Scenario.from_dict(json.loads(sys.argv[1]))
# load the compiled kernels (numba's cache) before timing, as imports are: a one-hour run
# (not for a "cold" run, timed as a whole process from outside)
w0 = time.perf_counter()
if "cold" not in sys.argv[3:]:
    simulate(Scenario.from_dict({"simulation": {"duration": "1h"},
                                 "senders": [{"rate": "1000/d",
                                              "unknown_recipient_fraction": 0.3}],
                                 "relay": {"unknown_local_recipient_reject_code": 450}}), seed=0)
warm = time.perf_counter() - w0
base = peak_kb()
rows = [0]

def count(batch):  # a writer callback that keeps nothing: the attempt log's own cost
    rows[0] += len(batch)

log = "log" in sys.argv[3:]
t0, c0 = time.perf_counter(), time.process_time()
r = simulate(s, seed=int(sys.argv[2]), on_attempts=count if log else None)
print(json.dumps({"log_rows": rows[0], "wall_s": time.perf_counter() - t0,
                  "cpu_s": time.process_time() - c0,
                  "warmup_s": warm,
                  "attempts": r.summary["attempts"],
                  "received": r.summary["recipients"]["received"],
                  "deferred_peak_messages": r.summary["deferred_peak_messages"],
                  "peak_kb": peak_kb(), "baseline_kb": base}))
"""


def in_child(table: dict, seed: int, env: dict | None = None, log: bool = False,
             cold: bool = False) -> dict:
    """simulate() in a fresh interpreter that reports its own peak resident memory: the OS's
    high-water mark VmHWM (/proc/self/status). Not ru_maxrss: Linux carries the parent's
    high-water mark over fork and exec, so a child of this (large) process would report it.
    log: every attempt streamed to a callback that counts the rows (the attempt log on).
    cold: no warm-up run; process_s is then the whole process, interpreter start, imports
    and loading the compiled kernels included."""
    p0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", CHILD, json.dumps(table), str(seed)]
                         + (["log"] if log else []) + (["cold"] if cold else []),
                         stdout=subprocess.PIPE, cwd=ROOT, check=True,
                         env=None if env is None else {**os.environ, **env})
    r = json.loads(run.stdout)
    r["process_s"] = time.perf_counter() - p0
    r["peak_rss_mb"] = r.pop("peak_kb") / 1024
    r["baseline_rss_mb"] = r.pop("baseline_kb") / 1024
    r["attempts_per_s"] = r["attempts"] / r["wall_s"]
    r["attempts_per_cpu_s"] = r["attempts"] / r["cpu_s"]
    return r


FORMATS_CHILD = """
import json, sys, tempfile, time
from pathlib import Path
from sim import Scenario, simulate
from sim.reports.postfix_files import PostfixFiles

def peak_kb():
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:"))

s = Scenario.from_dict(json.loads(sys.argv[1]))
simulate(Scenario.from_dict({"simulation": {"duration": "1h"},
                             "senders": [{"rate": "1000/d", "unknown_recipient_fraction": 0.3}],
                             "relay": {"unknown_local_recipient_reject_code": 450}}), seed=0)
t0 = time.perf_counter()
simulate(s, seed=int(sys.argv[2]))
bare = time.perf_counter() - t0
with tempfile.TemporaryDirectory() as tmp:
    files = PostfixFiles(s.simulation.duration, maillog=Path(tmp) / "log",
                         metrics=Path(tmp) / "metrics.txt")
    t0 = time.perf_counter()
    simulate(s, seed=int(sys.argv[2]), on_attempts=files.on_attempts)
    written = files.close()
    wall = time.perf_counter() - t0
    lines = sum(sum(1 for _ in open(f, "rb")) for f in Path(tmp, "log").iterdir())
    size = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())
print(json.dumps({"bare_s": bare, "wall_s": wall, "lines": lines, "bytes": size,
                  "peak_kb": peak_kb()}))
"""


def formats_child(table: dict, seed: int) -> dict:
    """A run with and without its mail log and metrics written (PostfixFiles, as relaysim run
    --maillog --metrics), in a fresh process: the writers' cost, lines, bytes, peak memory."""
    run = subprocess.run([sys.executable, "-c", FORMATS_CHILD, json.dumps(table), str(seed)],
                         stdout=subprocess.PIPE, cwd=ROOT, check=True)
    r = json.loads(run.stdout)
    r["peak_rss_mb"] = r.pop("peak_kb") / 1024
    r["lines_per_s"] = r["lines"] / max(r["wall_s"] - r["bare_s"], 1e-9)
    return r


FLOOR_CHILD = """
import json, sys, time
sys.path.insert(0, "experiments")
from bench_floor import floor
days, per_day, seed = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
c0 = time.process_time()
attempts, wall = floor(days, per_day, seed=seed)
print(json.dumps({"attempts": attempts, "wall_s": wall}))
"""


def floor_child(days: float, per_day: float, seed: int) -> dict:
    """The floor kernel (experiments/bench_floor.py) on this traffic, in a fresh process."""
    run = subprocess.run([sys.executable, "-c", FLOOR_CHILD, str(days), str(per_day),
                          str(seed)], stdout=subprocess.PIPE, cwd=ROOT, check=True)
    r = json.loads(run.stdout)
    r["attempts_per_s"] = r["attempts"] / r["wall_s"]
    return r


# --- 1. bench-week: relaysim against the naive model ------------------------------------------
def bench_week(table: dict, seeds: list[int], naive_reps: int) -> list[dict]:
    """Interleaved runs: round k is relaysim, the naive model, then the round's other relaysim
    seeds, so that a change in the machine's load hits both engines alike."""
    naive = load_naive()
    scenario = Scenario.from_dict(table)
    simulate(Scenario.from_dict(traffic(3600, 1000)), seed=0)  # warm imports and caches
    runs = []
    for k, idx in enumerate(np.array_split(np.arange(len(seeds)), naive_reps)):
        plan = [("relaysim", seeds[idx[0]]), ("naive", seeds[k])]
        plan += [("relaysim", seeds[j]) for j in idx[1:]]
        for engine, seed in plan:
            r = timed(engine, scenario, seed, naive)
            runs.append({"round": k, **r})
            log(f"bench-week round {k}: {engine} seed {seed}: {r['wall_s']:.2f} s")
    return runs


def speedups(runs: list[dict], key: str = "wall_s") -> np.ndarray:
    """Per round: the naive run's time over the median relaysim time of that round."""
    out = []
    for k in sorted({r["round"] for r in runs}):
        rk = [r for r in runs if r["round"] == k]
        fast = np.median([r[key] for r in rk if r["engine"] == "relaysim"])
        out += [r[key] / fast for r in rk if r["engine"] == "naive"]
    return np.array(out)


def agreement(runs: list[dict]) -> dict:
    """Per statistic: both engines' means over their seeds, the relative difference, the z-score
    of the difference, and the verdict of tests/model/test_agreement.py's rule (|difference| within
    4 standard errors plus 1 % of the level, for quantities whose seed-to-seed spread is ~0)."""
    cols = {k: [] for k in ("statistic", "relaysim_mean", "relaysim_sd", "relaysim_seeds",
                            "naive_mean", "naive_sd", "naive_seeds", "rel_diff", "z", "agree")}
    for st in STATS:
        a = np.array([r[st] for r in runs if r["engine"] == "relaysim"], dtype=float)
        b = np.array([r[st] for r in runs if r["engine"] == "naive"], dtype=float)
        sd_a = a.std(ddof=1) if a.size > 1 else math.nan
        sd_b = b.std(ddof=1) if b.size > 1 else math.nan
        se = math.sqrt(sd_a**2 / a.size + sd_b**2 / b.size)
        diff = a.mean() - b.mean()
        tol = (4 * se if se == se else 0.0) + 0.01 * max(abs(a.mean()), abs(b.mean())) + 1e-9
        for k, v in zip(cols, (st, a.mean(), sd_a, a.size, b.mean(), sd_b, b.size,
                               diff / b.mean() if b.mean() else math.nan,
                               diff / se if se > 0 else math.nan,
                               "n/a (one seed)" if se != se else
                               "yes" if abs(diff) <= tol else "no"), strict=True):
            cols[k].append(v)
    return cols


# --- 4. M/M/c: relaysim, Ciw and Erlang C ---------------------------------------------------
def erlang_c_wait(c: int, lam: float, mu: float) -> float:
    """Mean wait in queue (s) of M/M/c: Erlang C = P(wait) from the Erlang B recursion, over
    (c mu - lambda)."""
    a = lam / mu
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return c * b / (c - a * (1 - b)) / (c * mu - lam)


def mean_delay(delay_cdf) -> float:
    """Mean delivery delay (s) from Results.delay_cdf, each histogram bin at its centre: bins
    are 1 % wide, so no delay is off by more than 0.5 % and the errors largely cancel."""
    edges, share = (np.asarray(x, dtype=float) for x in delay_cdf)
    p = np.diff(share)
    return float((p * (edges[:-1] + edges[1:]) / 2).sum() + share[0] * edges[0] / 2)


def mmc_relaysim(horizon: float, seed: int) -> dict:
    """relaysim's mean wait is its mean delivery delay (arrival to end of the one attempt) minus
    the mean transaction time 1/mu: the engine does not report waits alone."""
    table = {"simulation": {"duration": f"{horizon:g}s", "sample_interval": "600s"},
             "senders": [{"rate": f"{MMC['lam']:g}/s", "unknown_recipient_fraction": 0.0}],
             "upstream": {"default_destination_concurrency_limit": MMC["c"],
                          "smtp_transaction_time": f"{1 / MMC['mu']:g}s"}}
    s = Scenario.from_dict(table)
    t0, c0 = time.perf_counter(), time.process_time()
    r = simulate(s, seed=seed)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = r.summary["recipients"]["delivered"]
    sojourn = mean_delay(r.delay_cdf)
    return {"engine": "relaysim", "seed": seed, "customers": n, "wall_s": wall, "cpu_s": cpu,
            "customers_per_s": n / wall, "customers_per_cpu_s": n / cpu,
            "mean_wait_s": sojourn - 1 / MMC["mu"],
            "mean_sojourn_s": sojourn}


def mmc_ciw(ciw, horizon: float, seed: int) -> dict:
    net = ciw.create_network(arrival_distributions=[ciw.dists.Exponential(MMC["lam"])],
                             service_distributions=[ciw.dists.Exponential(MMC["mu"])],
                             number_of_servers=[MMC["c"]])
    ciw.seed(seed)  # Ciw's own (global) seeding is its only interface
    q = ciw.Simulation(net)
    t0, c0 = time.perf_counter(), time.process_time()
    q.simulate_until_max_time(horizon)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    recs = q.get_all_records()
    return {"engine": "ciw", "seed": seed, "customers": len(recs), "wall_s": wall, "cpu_s": cpu,
            "customers_per_s": len(recs) / wall, "customers_per_cpu_s": len(recs) / cpu,
            "mean_wait_s": float(np.mean([x.waiting_time for x in recs])),
            "mean_sojourn_s": float(np.mean([x.waiting_time + x.service_time for x in recs]))}


# --- 5. where the time goes -----------------------------------------------------------------
def profile(label: str, table: dict, seed: int) -> str:
    """relaysim on `table` under pyinstrument (top functions by own time, call tree) or,
    without it, cProfile (top functions by own time)."""
    s = Scenario.from_dict(table)
    try:
        from pyinstrument import Profiler
    except ImportError:
        import cProfile
        import pstats
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.runcall(simulate, s, seed=seed)
        wall = time.perf_counter() - t0
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(30)
        return (f"## {label}: cProfile, {wall:.1f} s under the profiler\n\n"
                f"### Top 30 functions by own time\n\n{buf.getvalue()}")
    prof = Profiler(interval=0.001)
    prof.start()
    simulate(s, seed=seed)
    prof.stop()
    root = prof.last_session.root_frame()
    if root is None:  # a quick run can end before the first sample
        return f"## {label}: pyinstrument\n\n### Top functions: none, the run was too short\n"
    tree = prof.output_text().splitlines()
    tree = [ln for ln in tree[next(i for i, ln in enumerate(tree)
                                   if ln.startswith("Profile at")) + 1:] if ln.strip()]
    top = sorted((kv for kv in own_times(root).items() if kv[1] > 0), key=lambda kv: -kv[1])[:30]
    kernels = kernel_times(s, seed)
    return "\n".join([
        f"## {label}: pyinstrument, {root.time:.1f} s under the profiler (wall clock)", "",
        "### Top 30 functions by own time (numpy work and compiled kernels called from a "
        "function count as its own)", "",
        *(f"{t:8.3f} s {100 * t / root.time:5.1f} %  {name}" for name, t in top), "",
        f"### Compiled (numba) kernels, timed in a separate run of {kernels['total']:.1f} s", "",
        *(f"{t:8.3f} s {100 * t / kernels['total']:5.1f} %  {name} ({n:,} calls)"
          for name, (t, n) in kernels["kernels"].items()), "", "### Call tree", "", *tree])


def kernel_times(scenario: Scenario, seed: int) -> dict:
    """Wall time and calls per compiled kernel in one run (each wrapped in a timer)."""
    import sim.model.agents
    import sim.model.deferred
    import sim.model.qmgr
    import sim.model.relay
    mods = (sim.model.qmgr, sim.model.agents, sim.model.relay, sim.model.deferred)
    found = {}
    for mod in mods:
        for name, obj in vars(mod).items():
            if hasattr(obj, "py_func") and hasattr(obj, "signatures"):
                found[name] = obj
    times = {name: [0.0, 0] for name in found}

    def timer(name, fn):
        def run(*args):
            t0 = time.perf_counter()
            try:
                return fn(*args)
            finally:
                times[name][0] += time.perf_counter() - t0
                times[name][1] += 1
        return run
    patched = []
    for mod in mods:
        for name, fn in found.items():
            if vars(mod).get(name) is fn:
                patched.append((mod, name, fn))
                setattr(mod, name, timer(name, fn))
    try:
        t0 = time.perf_counter()
        simulate(scenario, seed=seed)
        total = time.perf_counter() - t0
    finally:
        for mod, name, fn in patched:
            setattr(mod, name, fn)
    ranked = sorted(((k, v) for k, v in times.items() if v[1]), key=lambda kv: -kv[1][0])
    return {"total": total, "kernels": {k: (t, n) for k, (t, n) in ranked}}


def own_times(root) -> dict[str, float]:
    """Own time per function in a pyinstrument frame tree: a frame's time minus its callees'."""
    acc: dict[str, float] = {}
    stack = [root]
    while stack:
        f = stack.pop()
        own = f.time - sum(c.time for c in f.children if not c.is_synthetic_leaf)
        name = f"{f.class_name + '.' if f.class_name else ''}{f.function}  " \
               f"{f.file_path_short}:{f.line_no}"
        acc[name] = acc.get(name, 0.0) + own
        stack.extend(c for c in f.children if not c.is_synthetic)
    return acc


# --- the machine ----------------------------------------------------------------------------
def machine() -> dict:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    models = [ln.split(":", 1)[1].strip() for ln in info.splitlines()
              if ln.startswith("model name")]
    return {"cpu": models[0] if models else platform.processor() or "unknown",
            "cores": len(models) or os.cpu_count()}


def versions(ciw) -> dict:
    out = {"python": platform.python_version(), "numpy": np.__version__,
           "simpy": simpy.__version__, "relaysim": __version__,
           "ciw": ciw.__version__ if ciw else "not installed"}
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True, cwd=ROOT).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "sim"], capture_output=True,
                           text=True, cwd=ROOT).stdout.strip()
    out["git"] = (git or "unknown") + (" with uncommitted changes to sim/" if dirty else "")
    try:
        import pyinstrument
        out["pyinstrument"] = pyinstrument.__version__
    except ImportError:
        out["pyinstrument"] = "not installed (cProfile used)"
    return out


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- formatting -----------------------------------------------------------------------------
def num(v: float, fmt: str = ",.0f") -> str:
    return "n/a" if v is None or v != v else f"{v:{fmt}}"


def span(values, fmt: str = ",.0f") -> str:
    """median (min to max), or the one value."""
    v = np.asarray(values, dtype=float)
    if v.size == 1:
        return num(v[0], fmt)
    return f"{num(np.median(v), fmt)} ({num(v.min(), fmt)} to {num(v.max(), fmt)})"


def spread(r: dict, key: str) -> str:
    """A scaling point's median time (key: wall or cpu) and its range."""
    if r["runs"] == 1:
        return span([r[f"{key}_s"]], ".2f")
    return span([r[f"{key}_min_s"], r[f"{key}_s"], r[f"{key}_max_s"]], ".2f")


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def columns(rows: list[dict]) -> dict:
    return {k: [r[k] for r in rows] for k in rows[0]}


# --- the run --------------------------------------------------------------------------------
def main(argv=None) -> int:
    a = experiment_args(__doc__, NAME, argv, seeds=FULL["relaysim_reps"])
    cfg = QUICK if a.quick else FULL
    out = a.out
    out.mkdir(parents=True, exist_ok=True)
    try:
        import ciw
    except ImportError:
        ciw = None
    m = {"load0": os.getloadavg()}
    t_start = time.perf_counter()

    # 1. bench-week, in this process
    m["week"] = bench_week(cfg["bench_week"], seed_list(1, max(a.seeds, cfg["naive_reps"])),
                           cfg["naive_reps"])
    plotting.save_table(out / "bench_week", columns(m["week"]))
    m["agree"] = agreement(m["week"])
    plotting.save_table(out / "agreement", m["agree"])

    # 1b. the kernels' compile time: a child with an empty numba cache (full runs only)
    m["compile_s"] = None
    if not a.quick:
        with tempfile.TemporaryDirectory() as cache:
            m["compile_s"] = in_child(traffic(3600, 1000), 0, {"NUMBA_CACHE_DIR": cache})[
                "warmup_s"]
        log(f"compiling the kernels from an empty cache: {m['compile_s']:.1f} s")

    # 2. isp-month, in a child process each
    m["isp"] = []
    for seed in seed_list(2, cfg["isp_reps"]):
        m["isp"].append({"seed": seed, **in_child(cfg["isp_month"], seed)})
        log(f"isp-month seed {seed}: {m['isp'][-1]['wall_s']:.1f} s, "
            f"{m['isp'][-1]['peak_rss_mb']:.0f} MB")
    plotting.save_table(out / "isp_month", columns(m["isp"]))
    # 2b. the floor kernel and relaysim on the same traffic, interleaved; the attempt log on
    days, per_day = cfg["isp_days_per_day"]
    m["floor"] = []
    for seed in seed_list(2, cfg["isp_reps"]):
        m["floor"].append({"seed": seed, **floor_child(days, per_day, seed)})
        log(f"floor kernel seed {seed}: {m['floor'][-1]['wall_s']:.1f} s")
    m["isp_log"] = [{"seed": seed, **in_child(cfg["isp_month"], seed, log=True)}
                    for seed in seed_list(2, 1)]
    log(f"isp-month with the attempt log streamed: {m['isp_log'][0]['wall_s']:.1f} s, "
        f"{m['isp_log'][0]['log_rows']:,} rows, {m['isp_log'][0]['peak_rss_mb']:.0f} MB")
    m["isp_cold"] = [in_child(cfg["isp_month"], seed_list(2, 1)[0], cold=True)]
    log(f"isp-month as a whole process: {m['isp_cold'][0]['process_s']:.1f} s")
    plotting.save_table(out / "isp_month_floor", columns(m["floor"]))
    plotting.save_table(out / "isp_month_log", columns(m["isp_log"]))
    m["mtas"] = []
    for mta in MTAS:  # the other schedules, through the same engine
        table = {**cfg["isp_month"], "upstream": {"mta": mta}}
        m["mtas"].append({"mta": mta, **in_child(table, seed_list(2, 1)[0])})
        log(f"isp-month with {mta}: {m['mtas'][-1]['wall_s']:.1f} s")
    plotting.save_table(out / "isp_month_mtas", columns(m["mtas"]))

    # 2c. the mail log and metrics of isp-month traffic, on slices of it (whole: hours; the
    # writer holds at most about 150,000 lines per host for time order, which a 6 h slice fills)
    m["formats"] = []
    for hours in cfg["formats_hours"]:
        table = traffic(hours * 3600, cfg["isp_days_per_day"][1])
        m["formats"].append({"hours": hours, **formats_child(table, seed_list(2, 1)[0])})
        f = m["formats"][-1]
        log(f"maillog + metrics of {hours:g} h of isp-month traffic: {f['lines']:,} lines in "
            f"{f['wall_s'] - f['bare_s']:.1f} s more, {f['peak_rss_mb']:.0f} MB")
    plotting.save_table(out / "formats", columns(m["formats"]))

    # 3. scaling, in a child process each; stop before a size predicted to exceed LIMIT_S
    m["scaling"], m["stopped"] = [], None
    predicted = 0.0
    for days, per_day in cfg["scaling"]:
        if m["scaling"]:
            prev = m["scaling"][-1]
            per_msg = prev["attempts"] / (prev["days"] * prev["per_day"])
            predicted = per_msg * days * per_day / prev["attempts_per_s"]
            if predicted > LIMIT_S:
                m["stopped"] = (days, per_day, predicted)
                break
        reps = cfg["scaling_reps"]
        if m["scaling"] and predicted > LIMIT_S / 3:  # a long point runs once
            reps = 1
        runs = [in_child(traffic(days * DAY, per_day), 1) for _ in range(reps)]
        r = median_run(runs)
        m["scaling"].append({"days": days, "per_day": per_day, **r})
        log(f"scaling {days:g} d x {per_day}/d: {r['attempts']:,} attempts in "
            f"{r['wall_s']:.1f} s (median of {len(runs)})")
    plotting.save_table(out / "scaling", columns(m["scaling"]))

    # 4. M/M/c: relaysim, Ciw, Erlang C
    m["mmc"] = [mmc_relaysim(cfg["mmc_horizon_s"], s)
                for s in seed_list(3, cfg["mmc_relaysim_reps"])]
    if ciw is not None:
        for s in seed_list(3, cfg["mmc_ciw_reps"]):
            m["mmc"].append(mmc_ciw(ciw, cfg["mmc_horizon_s"], s))
            log(f"ciw seed {s}: {m['mmc'][-1]['wall_s']:.1f} s")
    plotting.save_table(out / "mmc", columns(m["mmc"]))

    # 4b. sweeps: the machinery's overhead and the speed-up with 2 workers (full runs only)
    m["sweep"] = None
    if not a.quick:
        sys.path.insert(0, str(ROOT / "experiments"))
        from bench_sweep import bench_sweep
        m["sweep"] = bench_sweep(out / "sweep")
        log(f"sweeps: {m['sweep']}")

    # 5. where the time goes
    write_atomic(out / "profile.txt", "\n\n".join(
        [f"# Where relaysim's time goes (relaysim {__version__}, {machine()['cpu']})"]
        + [profile(label, cfg[key], seed_list(1, 1)[0])
           for label, key in (("bench-week", "bench_week"), ("isp-month", "isp_month"))]))
    m["load1"] = os.getloadavg()
    m["total_s"] = time.perf_counter() - t_start

    scaling_figure(m, out / "scaling")
    tables = report(m, cfg, out, versions(ciw), f"python experiments/{NAME}.py"
                    + (" --quick" if a.quick else ""))
    print(tables)
    log(f"{NAME}: wrote results to {out} in {m['total_s'] / 60:.1f} min")
    return 0


def median_run(runs: list[dict]) -> dict:
    """One scaling point from repeated runs of the same seed (the same work): the median wall
    and CPU time, their range, and the speeds at the medians."""
    r = dict(runs[0])
    for key in ("wall_s", "cpu_s", "peak_rss_mb"):
        v = [x[key] for x in runs]
        r[key] = float(np.median(v))
        if key != "peak_rss_mb":
            r[key.replace("_s", "_min_s")], r[key.replace("_s", "_max_s")] = min(v), max(v)
    r["runs"] = len(runs)
    r["attempts_per_s"] = r["attempts"] / r["wall_s"]
    r["attempts_per_cpu_s"] = r["attempts"] / r["cpu_s"]
    return r


def by_engine(rows: list[dict], engine: str, key: str) -> list:
    return [r[key] for r in rows if r["engine"] == engine]


def flatness(scaling: list[dict], key: str = "attempts_per_s") -> tuple[np.ndarray, float]:
    """Attempts per second of the sweep's points from 1e6 to 1e8 attempts, and max over min."""
    rate = np.array([r[key] for r in scaling if 0.8e6 <= r["attempts"] <= 1.25e8])
    return rate, rate.max() / rate.min() if rate.size > 1 else math.nan


def cost_model(scaling: list[dict], queue_run_delay: float) -> tuple[float, float] | None:
    """Least-squares CPU seconds per deferred-queue scan and per attempt over the sweep (at
    least three points), or None."""
    if len(scaling) < 3:
        return None
    a = np.array([[r["days"] * DAY / queue_run_delay, r["attempts"]] for r in scaling])
    per_scan, per_attempt = np.linalg.lstsq(a, [r["cpu_s"] for r in scaling], rcond=None)[0]
    return float(per_scan), float(per_attempt)


def cost_sentence(cost: tuple[float, float] | None, isp_attempts: float) -> str:
    """The cost model in words: CPU time per attempt, and per scan when it is measurable."""
    if cost is None:
        return ""
    per_scan, per_attempt = cost
    text = f" Over the sweep, CPU time is about {per_attempt * 1e6:.3f} µs per attempt "
    if per_scan >= 5e-6:
        text += (f"plus {per_scan * 1e3:.2f} ms per deferred-queue scan (least squares): the "
                 "speed rises with work as the scans' fixed cost is spread, towards "
                 f"{1 / per_attempt:,.0f} attempts/s")
    else:
        text += (f"and nothing measurable per deferred-queue scan (least squares: "
                 f"{per_scan * 1e6:+.1f} µs): {1 / per_attempt:,.0f} attempts/s")
    return (text + f"; at that cost isp-month's attempts take {isp_attempts * per_attempt:.1f} "
            "s of CPU.")


def scaling_figure(m: dict, stem: Path) -> None:
    """Attempts per second against attempts: the sweep, bench-week's runs and isp-month's."""
    rate, _ = flatness(m["scaling"])
    week = m["week"]
    with plotting.style():
        fig, ax = plotting.figure()
        x = [r["attempts"] for r in m["scaling"]]
        ax.plot(x, [r["attempts_per_s"] for r in m["scaling"]], marker="o",
                label="relaysim, scaling sweep (per second of wall time)")
        ax.plot(x, [r["attempts_per_cpu_s"] for r in m["scaling"]], marker="o",
                linestyle="--", markerfacecolor="none",
                label="relaysim, scaling sweep (per second of CPU time)")
        for x, y, label, marker in (
                (by_engine(week, "relaysim", "attempts"),
                 by_engine(week, "relaysim", "attempts_per_s"), "relaysim, bench-week", "s"),
                (by_engine(week, "naive", "attempts"), by_engine(week, "naive", "attempts_per_s"),
                 "naive model, bench-week", "v"),
                ([r["attempts"] for r in m["isp"]], [r["attempts_per_s"] for r in m["isp"]],
                 "relaysim, isp-month", "D")):
            ax.plot(x, y, linestyle="none", marker=marker, label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("delivery attempts simulated (log scale)")
        ax.set_ylabel("delivery attempts per second\n(log scale)")
        naive = by_engine(week, "naive", "attempts_per_s")
        ax.set_title((f"relaysim: {num(np.median(rate))} attempts/s (median) from 1e6 to 1e8 "
                      "attempts\n" if rate.size else "")
                     + f"naive model: {num(np.median(naive))} attempts/s on bench-week",
                     fontsize=10.5)
        ax.legend(loc="best", fontsize=8.5)
        plotting.save(fig, stem)


def engine_targets(m: dict, met) -> tuple[str, list]:
    """The one-engine issue's speed targets as a table (and its rows)."""
    isp = m["isp"]
    wall = float(np.median([r["wall_s"] for r in isp]))
    per = float(np.median([r["wall_s"] / r["attempts"] for r in isp]))
    floor = float(np.median([r["wall_s"] for r in m["floor"]])) if m.get("floor") else math.nan
    cold = m["isp_cold"][0]["process_s"] if m.get("isp_cold") else math.nan
    mb = max(r["peak_rss_mb"] for r in isp)
    logged = m["isp_log"][0] if m.get("isp_log") else None
    log_ratio = logged["wall_s"] / wall if logged else math.nan
    mta = [(r["mta"], (r["wall_s"] / r["attempts"]) / per) for r in m["mtas"]]
    worst = max((x for _, x in mta), default=math.nan)
    big = [r for r in m["scaling"] if r["attempts"] >= 5e5]
    flat = (max(r["attempts_per_s"] for r in big) / min(r["attempts_per_s"] for r in big)
            if len(big) > 1 else math.nan)
    top = max(m["scaling"], key=lambda r: r["attempts"]) if m["scaling"] else None
    per_msg = ((top["peak_rss_mb"] - top["baseline_rss_mb"]) * 2 ** 20
               / max(top["deferred_peak_messages"], 1) if top else math.nan)
    comp = m.get("compile_s") or math.nan
    def f(v, fmt=".2f", unit=""):
        return "not measured" if v != v else f"{v:{fmt}}{unit}"

    rows = [
        ["isp-month / floor kernel (same traffic, wall)", f"{f(wall / floor, '.2f', ' x')} "
         f"({wall:.2f} s / {f(floor, '.2f', ' s')})", "<= 2 x", met(wall / floor, 2)],
        ["isp-month inside the process", f"{wall:.2f} s", "<= 3 s", met(wall, 3)],
        ["isp-month as a whole process (start, imports, kernels loaded)", f(cold, ".2f", " s"),
         "<= 4 s", met(cold, 4)],
        ["isp-month peak memory", f"{mb:.0f} MB", "<= 400 MB", met(mb, 400)],
        ["slowest other MTA per attempt / Postfix's", f(worst, ".2f", " x") + " ("
         + ", ".join(f"{k} {v:.2f}" for k, v in mta) + ")", "<= 1.5 x", met(worst, 1.5)],
        ["attempt log streamed (every attempt to a callback) / off",
         f(log_ratio, ".2f", " x") + (f" ({logged['log_rows']:,} rows, peak "
                                 f"{logged['peak_rss_mb']:.0f} MB)" if logged else ""),
         "<= 1.5 x, bounded memory", met(log_ratio, 1.5)],
        ["speed flat from 1e6 attempts to the largest point (max / min attempts/s)",
         f"{f(flat, '.2f', ' x')} (up to {top['attempts']:,} attempts)" if top else "n/a",
         "<= 1.5 x", met(flat, 1.5)],
        ["memory per queued message at the largest point ((peak - baseline) / deferred "
         "peak; an upper bound: it includes every other buffer)", f(per_msg, ".0f", " bytes"),
         "goal <= 64 bytes", met(per_msg, 64)],
        ["compiling every kernel into an empty cache", f(comp, ".1f", " s"), "<= 30 s",
         met(comp, 30)],
    ]
    if m.get("formats"):
        fm = m["formats"][-1]
        month = fm["lines"] * 28 * 24 / fm["hours"]  # lines of a whole isp-month, projected
        mem = ", ".join(f"{x['hours']:g} h: {x['peak_rss_mb']:.0f} MB" for x in m["formats"])
        rows.append([f"mail log + metrics written (relaysim run --maillog --metrics), on "
                     f"{fm['hours']:g} h of isp-month traffic",
                     f"{fm['lines_per_s']:,.0f} log lines/s ({fm['lines']:,} lines, "
                     f"{fm['bytes'] / 1e6:.0f} MB); a whole isp-month, about {month / 1e6:.0f} M "
                     f"lines, would take {month / fm['lines_per_s'] / 60:.0f} min; peak memory "
                     f"{mem}", "streams in bounded memory; its cost stated",
                     "bounded" if len(m["formats"]) < 2 or m["formats"][-1]["peak_rss_mb"]
                     <= 1.2 * m["formats"][0]["peak_rss_mb"] else "grows"])
    if m.get("sweep"):
        sw = m["sweep"]
        over = sw["overhead"]["overhead"]
        rows.append(["sweep machinery's overhead on short runs", f"{over:.1%}", "< 5 %",
                     met(over, 0.05)])
        from bench_sweep import contention

        for kind, x in sw["speedup"].items():
            rows.append([f"sweep speed-up, 2 workers against 1 ({kind})",
                         f"{x:.2f} x ({contention(sw, kind)})",
                         ">= 1.8 x", met(x, 1.8, True)])
    return md_table(["measure", "result", "target", "verdict"], rows), rows


def report(m: dict, cfg: dict, out: Path, vers: dict, command: str) -> str:
    """README.md with the tables; returns the short tables for stdout."""
    week, agree, isp, mmc = m["week"], m["agree"], m["isp"], m["mmc"]
    ratio, ratio_cpu = speedups(week), speedups(week, "cpu_s")
    rate, flat = flatness(m["scaling"])
    _, flat_cpu = flatness(m["scaling"], "attempts_per_cpu_s")
    isp_wall = [r["wall_s"] for r in isp]
    isp_mb = [r["peak_rss_mb"] for r in isp]
    wq = erlang_c_wait(MMC["c"], MMC["lam"], MMC["mu"])

    def met(value, limit, at_least=False):
        if value != value:
            return "not measured"
        return "met" if (value >= limit if at_least else value <= limit) else "missed"

    def row(name, engine, runs, note):
        return [name, engine, str(len(runs)), span([r["wall_s"] for r in runs], ".2f"),
                span([r["cpu_s"] for r in runs], ".2f"),
                span([r["attempts_per_s"] for r in runs]),
                span([r["attempts_per_cpu_s"] for r in runs]), note]

    fast = [r for r in week if r["engine"] == "relaysim"]
    slow = [r for r in week if r["engine"] == "naive"]
    main = md_table(["benchmark", "engine", "runs", "wall time (s)", "CPU time (s)",
                     "attempts/s (wall)", "attempts/s (CPU)", "notes"], [
        row("bench-week", "relaysim", fast, f"{span([r['attempts'] for r in fast])} attempts"),
        row("bench-week", "naive", slow, f"{span([r['attempts'] for r in slow])} attempts"),
        ["bench-week", "speed-up naive / relaysim", str(ratio.size), span(ratio, ".0f") + " x",
         span(ratio_cpu, ".0f") + " x", "", "",
         f"target >= 100 x (wall): {met(np.median(ratio), 100, True)}"],
        row("isp-month", "relaysim", isp,
            f"{span([r['attempts'] for r in isp])} attempts; peak RSS {span(isp_mb)} MB; "
            f"target < 10 s: {met(max(isp_wall), 10)}, < 1 GB: {met(max(isp_mb), 1024)}"),
        ["scaling, 1e6 to 1e8 attempts", "relaysim", str(rate.size), "", "",
         span(rate) if rate.size else "n/a", "",
         f"max / min {num(flat, '.2f')} (wall), {num(flat_cpu, '.2f')} (CPU); "
         f"target <= 1.5: {met(flat, 1.5)}"]])
    rows = []
    for engine in ("relaysim", "ciw"):
        w = by_engine(mmc, engine, "mean_wait_s")
        if not w:
            rows.append([engine, "0", "skipped: `import ciw` failed", "", "", ""])
            continue
        mean, lo, hi = mean_ci(w)
        ci = "" if lo != lo else f" (95 % CI {lo:.4f} to {hi:.4f})"
        rows.append([engine, str(len(w)), span(by_engine(mmc, engine, "customers_per_s")),
                     span(by_engine(mmc, engine, "customers_per_cpu_s")),
                     f"{mean:.4f}{ci}", f"{(mean - wq) / wq:+.1%}"])
    rows.append(["Erlang C (closed form)", "", "", "", f"{wq:.4f}", ""])
    mmc_table = md_table(["M/M/c engine", "runs", "customers/s (wall)", "customers/s (CPU)",
                          "mean wait (s)", "vs Erlang C"], rows)
    agree_table = md_table(
        ["statistic", "relaysim mean", "naive mean", "relative diff", "z", "within noise"],
        [[agree["statistic"][i], num(agree["relaysim_mean"][i], ",.4g"),
          num(agree["naive_mean"][i], ",.4g"), num(agree["rel_diff"][i], "+.2%"),
          num(agree["z"][i], "+.2f"), agree["agree"][i]] for i in range(len(STATS))])
    scale_table = md_table(
        ["days", "messages/day", "attempts", "wall (s)", "CPU (s)", "attempts/s (wall)",
         "attempts/s (CPU)", "peak RSS (MB)"],
        [[f"{r['days']:g}", f"{r['per_day']:,}", f"{r['attempts']:,}",
          spread(r, "wall"), spread(r, "cpu"), num(r["attempts_per_s"]),
          num(r["attempts_per_cpu_s"]), num(r["peak_rss_mb"])] for r in m["scaling"]])
    mta_table = md_table(
        ["upstream.mta", "attempts", "wall (s)", "CPU (s)", "attempts/s (wall)",
         "peak RSS (MB)"],
        [[r["mta"], f"{r['attempts']:,}", f"{r['wall_s']:.2f}", f"{r['cpu_s']:.2f}",
          num(r["attempts_per_s"]), num(r["peak_rss_mb"])] for r in m["mtas"]])
    targets, target_rows = engine_targets(m, met)
    stopped = m["stopped"]
    cost = cost_model(m["scaling"], Scenario.from_dict(cfg["bench_week"]).upstream.queue_run_delay)
    verdicts = [v for v in agree["agree"] if v in ("yes", "no")]
    answer = (
        f"relaysim is {span(ratio, '.0f')} times faster than the naive model on bench-week "
        f"in wall time and {span(ratio_cpu, '.0f')} times in CPU time (median and range over "
        f"{ratio.size} interleaved rounds; target 100 x {met(np.median(ratio), 100, True)}), "
        + (f"and the two agree within noise on {verdicts.count('yes')} of {len(verdicts)} "
           "statistics. " if verdicts else "and agreement needs two seeds per engine. ")
        + f"isp-month takes {span(isp_wall, '.1f')} s and peaks at {span(isp_mb)} MB "
        f"resident (targets < 10 s "
        f"{met(max(isp_wall), 10)}, < 1 GB {met(max(isp_mb), 1024)})"
        + ("; with the other upstream MTAs' schedules it takes "
           + ", ".join(f"{r['wall_s']:.1f} s ({r['mta']})" for r in m["mtas"])
           if m["mtas"] else "")
        + ". From 1e6 to 1e8 "
        f"attempts the speed varies by a factor {num(flat, '.2f')} in wall time and "
        f"{num(flat_cpu, '.2f')} in CPU time (target 1.5 {met(flat, 1.5)})."
        + cost_sentence(cost, np.median([r["attempts"] for r in isp]))
        + (f" The sweep stopped before {stopped[0]:g} d x {stopped[1]:,}/d, predicted to take "
           f"{stopped[2]:.0f} s (limit {LIMIT_S:.0f} s)." if stopped else "")
        + "\n\n" + main
        + "\n\n**The one engine's targets** (every figure from this run):\n\n" + targets
        + f"\n\n**bench-week agreement** (relaysim over {agree['relaysim_seeds'][0]} seeds, "
        f"naive over {agree['naive_seeds'][0]}; z = difference of the means over its standard "
        "error):\n\n" + agree_table
        + "\n\n**isp-month with the other upstream MTAs' schedules** (one run each, the "
        "first isp-month seed, through the same engine; qmail and Exchange tick every "
        "60 s):\n\n" + mta_table
        + f"\n\n**scaling** (the same model and seed; median and range of "
        f"{cfg['scaling_reps']} runs each, the speeds at the medians):\n\n" + scale_table
        + f"\n\n**M/M/c** (c = {MMC['c']}, lambda = {MMC['lam']:g}/s, 1/mu = "
        f"{1 / MMC['mu']:g} s, load {MMC['lam'] / MMC['mu'] / MMC['c']:.0%}, "
        f"{fmt_time(cfg['mmc_horizon_s'])} simulated per run; 95 % t-intervals over "
        "seeds):\n\n" + mmc_table)
    mach = machine()
    loads = ["/".join(f"{x:.2f}" for x in m[k]) for k in ("load0", "load1")]
    setup = [
        f"machine: {mach['cpu']}, {mach['cores']} cores; load average (1/5/15 min) {loads[0]} "
        f"at the start, {loads[1]} at the end (the machine is shared); whole benchmark "
        f"{m['total_s'] / 60:.1f} min",
        "versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()),
        "bench-week: " + "; ".join(setup_lines(Scenario.from_dict(cfg["bench_week"]))),
        f"bench-week runs interleaved in {ratio.size} round(s): relaysim, naive, then the "
        "round's other relaysim seeds, all in this process; a round's speed-up is the naive "
        "wall time over that round's median relaysim wall time",
        "isp-month: " + "; ".join(setup_lines(Scenario.from_dict(cfg["isp_month"]))[:2])
        + "; each run in a fresh child process; peak resident memory is that child's "
        "high-water mark VmHWM from /proc/self/status (ru_maxrss would inherit this large "
        "parent's); the interpreter with numpy, simpy and sim imported accounts for "
        f"{span([r['baseline_rss_mb'] for r in isp])} MB of it",
        "scaling: the same model at (days, messages/day) = "
        + ", ".join(f"({d:g}, {p:,})" for d, p in cfg["scaling"])
        + f", {cfg['scaling_reps']} runs each (the same seed, a fresh child process each); a "
        "point's speed is at its median wall (CPU) time",
        "M/M/c: all mail valid (unknown_recipient_fraction 0), Poisson arrivals, exponential "
        "transaction time. relaysim reports delivery delays (arrival to the end of the attempt) "
        "as a histogram, so its mean wait is the histogram's mean (bin centres; bins 1 % wide) "
        "minus 1/mu; Ciw's is the mean waiting_time of its records. Both start empty (the "
        "transient lasts seconds). Erlang C from the Erlang B recursion",
    ]
    notes = [
        "Wall and CPU times are simulate() (or naive_simulate()) alone: no interpreter start, "
        "imports or file output. CPU time (time.process_time) is the fairer figure on a "
        "shared machine: wall time also counts the time other processes held the CPU. It "
        "counts every thread: relaysim draws its service times ahead on a helper thread "
        "while the compiled scan runs, so its CPU time can exceed its wall time.",
        "relaysim's compiled kernels are loaded from numba's on-disk cache before timing, as "
        "imports are: a one-hour warm-up run in each child took "
        f"{span([r['warmup_s'] for r in isp + m['scaling']], '.2f')} s"
        + ("." if m["compile_s"] is None else
           f"; compiling them into an empty cache (a fresh checkout's first run) took "
           f"{m['compile_s']:.1f} s."),
        "The naive model reports exact delay percentiles, relaysim a histogram within 0.5 %; "
        "the engines draw different random streams from a seed, so they agree in "
        "distribution, not run by run. With few naive seeds the z-scores are rough.",
        "[profile.txt](profile.txt): where relaysim's time goes on bench-week and isp-month.",
    ]
    if "not installed" in vers["ciw"]:
        notes.append("Ciw is not installed (`pip install -e '.[bench]'`): its runs were skipped.")
    write_readme(out, "Benchmark: relaysim's speed, size and agreement",
                 "How fast is relaysim against the naive model, how much memory does a month of "
                 "ISP traffic need, does the speed hold as work grows, and does relaysim agree "
                 "with the naive model, Ciw and Erlang C?", setup,
                 [("scaling", "Delivery attempts per second against attempts simulated")],
                 answer, command, notes)
    return main + "\n\n" + mmc_table


if __name__ == "__main__":
    sys.exit(main())
