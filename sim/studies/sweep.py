"""Replications and sweeps: scenarios x seeds on a process pool, and what experiments share.

Public names: run_many, seed_list, mean_ci, t975, fmt_ci, stack, summary_table,
experiment_args, base_scenario, setup_lines, fmt_time,
write_readme.

Contract:
- run_many(scenarios, seeds, workers=None, progress=False, backend="process") runs every
  scenario with every seed and returns a list (one per scenario, in order) of lists of Results
  (one per seed, in order). seeds is a list of ints, or a count n: then scenario i runs with
  seed_list(scenario_i.simulation.seed, n), so scenarios that share a root seed share their
  seeds (common random numbers: a sweep compares settings, not luck). A run's Results depends
  only on its scenario and seed, never on the number of workers or the order of completion.
  workers defaults to os.cpu_count(); workers=1 runs in this process. Scenarios travel to the
  workers as to_dict() tables and every Results comes back carrying the caller's Scenario
  object. backend="dask" sends the runs to a dask.distributed cluster (a local one unless a
  Client exists) and needs the `sweep` extra. progress=True shows a tqdm bar on a terminal.
- seed_list(root, n): n seeds from numpy SeedSequence(root).spawn(n), each child's
  generate_state(1)[0] as an int.
- mean_ci(values): mean and 95 % two-sided Student-t interval over the first axis (the seeds):
  t quantiles are tabulated for 1..30 degrees of freedom; beyond that the Cornish-Fisher
  expansion of the t quantile around the normal one (error below 1e-3). Fewer than two values
  give nan bounds. Works element-wise on arrays (seeds x anything).
- stack(runs, key) gives one time series over seeds as a (seeds, samples) array;
  summary_table(labels, grid) flattens every Results.summary into the columns of runs.csv.
- experiment_args, base_scenario, setup_lines and write_readme are the scaffolding every
  experiments/ script shares: the command line (--quick, --out, --seeds, --workers), the base
  scenario (a TOML file if present, else the script's dict), the scenario keys a README states,
  and the generated README, which refuses unfilled {placeholders} and nan.
- The Little's-law reference the figures draw is sim.reports.explain.littles_law / residence_time.
Errors: ValueError for an empty scenario or seed list; RuntimeError for backend="dask" without
dask.distributed installed.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from sim.model.simulate import simulate
from sim.results import Results, write_atomic
from sim.scenario import Scenario

# Two-sided 95 % Student-t quantiles t(0.975, df), df = 1..30.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
_Z975 = 1.959964


def t975(df: int) -> float:
    """Student-t 0.975 quantile with df degrees of freedom (see the module contract)."""
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_ci(values) -> tuple:
    """(mean, lo, hi): mean over the first axis and its 95 % t-interval (nan with one value)."""
    v = np.asarray(values, dtype=float)
    if v.shape[0] == 0:
        raise ValueError("mean_ci needs at least one value")
    m = v.mean(axis=0)
    n = v.shape[0]
    if n < 2:
        nan = np.full_like(m, np.nan) if np.ndim(m) else math.nan
        return m, nan, nan
    half = t975(n - 1) * v.std(axis=0, ddof=1) / math.sqrt(n)
    return m, m - half, m + half


def fmt_ci(values, fmt: str = ",.0f", unit: str = "") -> str:
    """'mean unit (95 % CI lo to hi)' over seeds, or just 'mean unit' for one seed."""
    m, lo, hi = mean_ci(np.asarray(values, dtype=float))
    u = f" {unit}" if unit else ""

    def num(v):  # no "-0" from float noise around zero
        text = f"{v:{fmt}}"
        return text[1:] if text.startswith("-") and not text.strip("-0.,") else text

    if np.isnan(lo):
        return f"{num(m)}{u} (one seed)"
    return f"{num(m)}{u} (95 % CI {num(lo)} to {num(hi)})"


def seed_list(root: int, n: int) -> list[int]:
    """n independent seeds spawned from SeedSequence(root)."""
    return [int(c.generate_state(1)[0]) for c in np.random.SeedSequence(root).spawn(n)]


def _run_one(table: dict, seed: int) -> Results:
    r = simulate(Scenario.from_dict(table), seed=seed)
    r.scenario = None  # the caller re-attaches its own object (Scenario does not pickle)
    return r


def run_many(scenarios: Sequence[Scenario], seeds: int | Sequence[int],
             workers: int | None = None, progress: bool = False,
             backend: str = "process") -> list[list[Results]]:
    """Every scenario with every seed; results[i][k] is scenario i, seed k (module contract)."""
    scenarios = list(scenarios)
    if not scenarios:
        raise ValueError("run_many needs at least one scenario")
    if isinstance(seeds, int | np.integer):
        if seeds < 1:
            raise ValueError(f"seeds: {seeds} (need at least one)")
        per = [seed_list(s.simulation.seed, int(seeds)) for s in scenarios]
    else:
        per = [[int(x) for x in seeds]] * len(scenarios)
        if not per[0]:
            raise ValueError("seeds: an empty list")
    jobs = [(i, k, s.to_dict(), seed) for i, s in enumerate(scenarios)
            for k, seed in enumerate(per[i])]
    out: list[list] = [[None] * len(p) for p in per]
    workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))
    bar = _bar(len(jobs), progress)
    if backend == "dask":
        done = _dask_map(jobs, workers)
    elif backend != "process":
        raise ValueError(f"backend: {backend!r} (process or dask)")
    elif workers == 1 or len(jobs) == 1:
        done = ((i, k, _run_one(t, seed)) for i, k, t, seed in jobs)
    else:
        done = _pool_map(jobs, min(workers, len(jobs)))
    for i, k, r in done:
        r.scenario = scenarios[i]
        out[i][k] = r
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    return out


def _pool_map(jobs, workers):
    # Longest-first would balance better, but submission order does not affect any result.
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futs = {pool.submit(_run_one, t, seed): (i, k) for i, k, t, seed in jobs}
        for f in as_completed(futs):
            i, k = futs[f]
            yield i, k, f.result()


def _dask_map(jobs, workers):
    try:
        from distributed import Client, get_client
    except ImportError:
        raise RuntimeError("backend='dask' needs dask.distributed: "
                           "pip install -e '.[sweep]'") from None
    try:
        client, own = get_client(), False
    except ValueError:
        client, own = Client(n_workers=workers, threads_per_worker=1, processes=True), True
    try:
        futs = client.map(_run_one, [j[2] for j in jobs], [j[3] for j in jobs], pure=False)
        for (i, k, _, _), r in zip(jobs, client.gather(futs), strict=True):
            yield i, k, r
    finally:
        if own:
            client.close()


def _bar(total: int, progress: bool):
    if not (progress and sys.stderr.isatty()):
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="run", desc="relaysim runs")


# --- experiment scaffolding -----------------------------------------------------------------
def experiment_args(doc: str, name: str, argv=None, seeds: int = 3) -> argparse.Namespace:
    """The shared command line: --quick, --out DIR, --seeds N, --workers N."""
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="tiny scenario, one seed (a smoke test; use with --out)")
    p.add_argument("--out", type=Path, default=None,
                   help=f"output folder (default: results/{name}/)")
    p.add_argument("--seeds", type=int, default=None,
                   help=f"replications per setting (default {seeds}; --quick: 1)")
    p.add_argument("--workers", type=int, default=None,
                   help="parallel processes (default: all CPUs)")
    a = p.parse_args(argv)
    if a.out is None:
        a.out = Path(__file__).resolve().parents[1] / "results" / name
    if a.seeds is None:
        a.seeds = 1 if a.quick else seeds
    return a


def base_scenario(toml_path: str | Path, fallback: Mapping) -> Scenario:
    """The scenario at toml_path if that file exists, else Scenario.from_dict(fallback)."""
    path = Path(toml_path)
    return Scenario.from_toml(path) if path.exists() else Scenario.from_dict(fallback)


def write_readme(outdir: str | Path, title: str, question: str, setup: Sequence[str],
                 figures: Sequence[tuple], answer: str, command: str,
                 notes: Sequence[str] = (), headline: str = "") -> Path:
    """results/<name>/README.md: question, setup, figures ((stem, caption) or (stem, caption,
    [csv stems]) when the data is not in <stem>.csv), the answer
    with its numbers, how to reproduce, notes; `headline` is the one-line answer that
    results/README.md quotes. Refuses unfilled {placeholders} and nan."""
    lines = [f"# {title}", "", f"**Question.** {question}", ""]
    if headline:
        lines += [f"**In one line.** {headline}", ""]
    lines += ["## Setup", ""]
    lines += [f"- {s}" for s in setup]
    lines += ["", "## Answer", "", answer, "", "## Figures", ""]
    for stem, caption, *data in figures:
        csvs = data[0] if data else [stem]
        links = ", ".join(f"[data: {c}.csv]({c}.csv)" for c in csvs)
        lines += [f"![{caption}]({stem}.png)", "", f"*{caption}* ([SVG]({stem}.svg), {links})",
                  ""]
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    lines += ["## Reproduce", "", "```", command, "```", "",
              "Generated by the script; do not edit by hand.", ""]
    text = "\n".join(lines)
    bad = re.findall(r"\{[A-Za-z_][^}]*\}|\bnan\b", text)
    if bad:
        raise ValueError(f"README for {title}: unfilled values {bad}")
    path = Path(outdir) / "README.md"
    write_atomic(path, text)
    return path


def stack(runs: Sequence[Results], key: str) -> np.ndarray:
    """One time series over seeds: shape (seeds, samples)."""
    return np.array([np.asarray(r.timeseries[key], dtype=float) for r in runs])


def summary_table(labels: Sequence[str], grid: Sequence[Sequence[Results]]) -> dict:
    """Columns (setting, seed, then every number in Results.summary, flattened with '.') with
    one row per run: the runs.csv behind an experiment's numbers."""
    cols: dict[str, list] = {"setting": [], "seed": []}
    for label, runs in zip(labels, grid, strict=True):
        for r in runs:
            flat = _flatten(r.summary)
            for k in flat:
                cols.setdefault(k, [math.nan] * len(cols["seed"]))
            cols["setting"].append(label)
            cols["seed"].append(r.seed)
            for k in cols:
                if k not in ("setting", "seed"):
                    cols[k].append(flat.get(k, math.nan))
    return cols


def _flatten(d: Mapping, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def fmt_time(s: float) -> str:
    """Seconds in Postfix's largest exact unit: 432000 -> '5d', 300 -> '300s', 5400 -> '90m'."""
    if s == math.inf:
        return "never"
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size and s % size == 0:
            return f"{s / size:.0f}{unit}"
    return f"{s:g}s"


def setup_lines(scenario: Scenario) -> list[str]:
    """The scenario keys an experiment README states: traffic, upstream, relay, changes."""
    sc = scenario
    lines = [f"simulation.duration = {fmt_time(sc.simulation.duration)}, sample_interval = "
             f"{fmt_time(sc.simulation.sample_interval)}"]
    for s in sc.senders:
        lines.append(
            f"sender `{s.name}`: {s.rate * 86400:,.0f} messages/day ({s.profile}), "
            f"{s.recipients_per_message} recipient(s) each, unknown_recipient_fraction = "
            f"{s.unknown_recipient_fraction:g}, forged_sender_fraction = "
            f"{s.forged_sender_fraction:g}" + (f", from {fmt_time(s.start)}" if s.start else ""))
    up = sc.upstream
    lines.append(
        f"upstream: mta = {up.mta}"
        + (f", postfix_version = {up.postfix_version}, queue_run_delay = "
           f"{fmt_time(up.queue_run_delay)}, minimal_backoff_time = "
           f"{fmt_time(up.minimal_backoff_time)}, maximal_backoff_time = "
           f"{fmt_time(up.maximal_backoff_time)}, maximal_queue_lifetime = "
           f"{fmt_time(up.maximal_queue_lifetime)}" if up.mta == "postfix" else "")
        + f", default_destination_concurrency_limit = {up.default_destination_concurrency_limit}"
        + f", smtp_transaction_time = {up.smtp_transaction_time:g}s")
    r = sc.relay
    lines.append(f"relay: local_users = {r.local_users}, unknown_local_recipient_reject_code = "
                 f"{r.unknown_local_recipient_reject_code}"
                 + (", soft_bounce = yes" if r.soft_bounce else "")
                 + "".join(f", outage at {fmt_time(o.start)} for {fmt_time(o.duration)}"
                           for o in r.outages))
    for c in sc.changes:
        sets = [f"relay.{k} = {v}" for k, v in c.relay.items()] + [
            f"upstream.{k} = {v}" for k, v in c.upstream.items()]
        lines.append(f"change at {fmt_time(c.at)}: " + ", ".join(sets))
    return lines
