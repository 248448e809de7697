"""Replications and sweeps: scenarios x seeds on a backend, the sweep's files, and what
experiments share.

Public names: run_sweep, write_sweep, sweep_tables, SweepResult, SweepStopped, SUMMARY_FIGURES,
HEADLINES, make_backend, pack_series, results_of, seed_list, mean_ci, t975, fmt_ci, stack,
summary_table, experiment_args, experiment_runs, results_folder, base_scenario, setup_lines,
SCAN_ORDER_NOTE, fmt_time, write_readme.

Contract:
- run_sweep(settings, seeds, out, backend, ...) runs the settings of a factorial
  (sim.studies.factorial) with `seeds` seeds each (an int), or with as many as a Precision
  asks for (sim.studies.replications), and returns a SweepResult. Every finished run is a record
  in the run store out/runs/ (sim.studies.store) the moment it comes back; runs already there
  are not run again, so an interrupted sweep resumes where it stopped. A run that fails is
  reported with its setting and seed and the sweep goes on (fail_fast=True: SweepStopped); so
  is a run whose worker has other model sources (sim.studies.store.model_fingerprint).
  Each setting's seeds are seed_list(its scenario's simulation.seed, n), so settings that share
  a root seed share their seeds (common random numbers: a sweep compares settings, not luck); a
  run's record depends only on its scenario and seed, never on the backend, the number of
  workers or the order of completion. Scenarios travel to the workers as to_dict() tables.
  series=True keeps each run's time series, qshape, delay CDF (pack_series) and provenance in
  its record (the store's <key>.npz beside it); results_of(setting, record) rebuilds the run's
  Results from such a record, carrying the setting's Scenario object. Progress:
  sim.studies.progress.
- sweep_tables(result) gives the texts of runs.csv and summary.csv; write_sweep(result, out,
  base, command) writes out/runs.csv (one row per run: setting, the
  varied keys, seed, every summary figure at full precision), out/summary.csv (per setting:
  the varied keys, seeds, and mean, lo, hi of the 95 % interval of every figure, clipped at 0:
  every figure is a count, a time or a share), one figure per HEADLINES entry (one panel per
  varied key, with intervals, and a note saying how they were computed) and a generated
  README.md, and
  out/runs.parquet when pandas and pyarrow are installed. These files depend only on the
  settings, the seeds and the runs' results: the same bytes for any backend, any number of
  workers, any order of completion, resumed or not (the README's command is the caller's).
- seed_list, mean_ci, t975 and fmt_ci are sim.studies.statistics'; stack(runs, key) gives one
  time series over seeds as a (seeds, samples) array; summary_table(labels, grid) flattens
  every Results.summary into the columns of an experiment's runs.csv.
- experiment_args, base_scenario, setup_lines and write_readme are the scaffolding every
  experiments/ script shares: the command line (--quick, --out, --seeds, --workers; the
  output folder is results_folder(name, quick): results/<name>/, or results-quick/<name>/ for
  a --quick smoke run, so that it never replaces the committed results), the base
  scenario (a TOML file if present, else the script's dict), the scenario keys a README states,
  and the generated README, which refuses unfilled {placeholders} and nan; SCAN_ORDER_NOTE is
  the README note of the experiments where Postfix's concurrency limit binds.
  experiment_runs(args, labels, scenarios) is an experiment's grid of runs: grid[i][k] is the
  Results of scenario i with its k-th of args.seeds seeds, through run_sweep (series=True,
  fail_fast=True, on make_backend(args.workers)) and its run store args.out/runs/: a repeated
  or interrupted experiment runs only what the store lacks (one line on stderr says how many
  ran and how many came from the store). The store is ignored by git (`runs/`).
- The Little's-law reference the figures draw is sim.reports.explain.littles_law / residence_time.
Errors: ValueError for seeds < 1; SweepStopped from experiment_runs when a run fails;
ScenarioError (key --scheduler) for a scheduler without dask.distributed installed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import math
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sim.model.simulate import simulate
from sim.results import Results, write_atomic
from sim.scenario import Scenario
from sim.studies import backends
from sim.studies.factorial import Setting
from sim.studies.progress import Progress
from sim.studies.replications import Precision, needed
from sim.studies.statistics import ci_method, fmt_ci, mean_ci, relative_half_width, seed_list, t975
from sim.studies.store import RunStore, model_fingerprint, run_key
from sim.units import format_time as fmt_time  # the one formatter, under the name experiments use

__all__ = ["run_sweep", "write_sweep", "sweep_tables", "SweepResult", "SweepStopped",
           "SUMMARY_FIGURES", "HEADLINES", "make_backend", "pack_series", "results_of",
           "seed_list", "mean_ci", "t975", "fmt_ci", "stack", "summary_table", "experiment_args",
           "experiment_runs", "results_folder", "base_scenario", "setup_lines",
           "SCAN_ORDER_NOTE", "fmt_time", "write_readme"]

FIGURE_RANGE = (0, None)  # every summary figure is a count, a time or a share: clip at 0

# Results.summary flattened with '.', in its order (a test holds this to a real run's summary).
SUMMARY_FIGURES = (
    "recipients.received", "recipients.delivered", "recipients.bounced", "recipients.expired",
    "recipients.queued_at_end", "recipients.rejected_at_upstream",
    "recipients.rejected_at_upstream_4xx", "messages.received", "attempts", "dsn.nondelivery",
    "dsn.backscatter", "dsn.delay", "relay.sessions", "relay.rejects_4xx", "relay.rejects_5xx",
    "relay.greylisted", "relay.probes", "relay.hard_error_disconnects", "deferred_peak_messages",
    "queued_peak_messages", "delivery_delay_s.p50", "delivery_delay_s.p95", "delivery_delay_s.p99",
    "delivery_delay_s.max")
# The figures a sweep draws against each varied key: (summary key, axis label).
HEADLINES = (
    ("deferred_peak_messages", "peak deferred queue (messages)"),
    ("recipients.expired", "recipients expired"),
    ("dsn.backscatter", "DSNs to forged senders (backscatter)"),
    ("relay.rejects_4xx", "4xx rejects at the relay (recipients)"),
    ("delivery_delay_s.p95", "p95 delivery delay (s)"),
)


def _run_summary(table: dict, seed: int) -> dict:
    """A sweep's run in a worker: the summary, the run's own wall time and the worker's model
    digest (a worker with other relaysim sources would give other results)."""
    return _run(table, seed, False)


def _run_series(table: dict, seed: int) -> dict:
    """An experiment's run in a worker: _run_summary's, the provenance and the series."""
    return _run(table, seed, True)


def _run(table: dict, seed: int, series: bool) -> dict:
    t0 = time.perf_counter()
    r = simulate(Scenario.from_dict(table), seed=seed)
    out = {"summary": r.summary, "wall_s": time.perf_counter() - t0,
           "model": model_fingerprint()}
    if series:
        out.update(provenance=r.provenance, series=pack_series(r))
    return out


def pack_series(r: Results) -> dict[str, np.ndarray]:
    """A Results' time series, qshape and delay CDF as named arrays (a record's "series")."""
    return {**{f"ts.{k}": v for k, v in r.timeseries.items()}, "qshape": r.qshape,
            "delay_cdf_s": r.delay_cdf[0], "delay_cdf_share": r.delay_cdf[1]}


def results_of(setting: Setting, record: dict) -> Results:
    """The Results of a record with series, carrying the setting's Scenario (no attempts)."""
    a = record["series"]
    return Results(setting.scenario, record["seed"], record["summary"],
                   {k[3:]: v for k, v in a.items() if k.startswith("ts.")}, a["qshape"],
                   (a["delay_cdf_s"], a["delay_cdf_share"]), None, record["provenance"])


def make_backend(workers: int | None = None, scheduler: str | None = None, jobs: int = 2):
    """InProcess for one worker or one job, a DaskCluster for a scheduler address, else a
    ProcessPool of min(workers, jobs) processes."""
    workers = _cores() if workers is None else max(1, int(workers))
    if scheduler is not None:
        return backends.DaskCluster(scheduler, workers)
    if workers == 1 or jobs <= 1:
        return backends.InProcess()
    return backends.ProcessPool(min(workers, jobs))


def _cores() -> int:
    """The cores this process may run on (os.cpu_count() where affinity is unknown)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:
        return os.cpu_count() or 1


# --- sweeps ---------------------------------------------------------------------------------
class SweepStopped(Exception):
    """A run failed and the sweep was told to stop at the first failure."""


@dataclass
class SweepResult:
    """What a sweep produced: per setting the seeds used and their records (module contract)."""
    settings: list[Setting]
    seeds: list[list[int]]
    records: list[list[dict]]
    failed: list[tuple[Setting, int, str]] = field(default_factory=list)
    precision: Precision | None = None
    sharp: list[bool] = field(default_factory=list)  # with precision: target reached
    reused: int = 0  # runs found in the store
    ran: int = 0  # runs of this sweep
    wall_s: float = 0.0  # from the start to the last result (not the backend's shutdown)


def run_sweep(settings: Sequence[Setting], seeds: int | Precision, out: str | Path,
              backend=None, progress: bool = True, fail_fast: bool = False,
              stream=None, series: bool = False) -> SweepResult:
    """Run every setting's seeds that the store lacks (see the module contract)."""
    t0 = time.perf_counter()
    settings = list(settings)
    n_set = len(settings)
    prec = seeds if isinstance(seeds, Precision) else None
    cap = prec.max_seeds if prec else int(seeds)
    if cap < 1:
        raise ValueError(f"seeds: {seeds} (need at least one)")
    store = RunStore(Path(out) / "runs")
    have = store.keys()
    tables = [s.scenario.to_dict() for s in settings]
    seedl = [seed_list(s.scenario.simulation.seed, cap) for s in settings]
    keys = [[run_key(t, x) for x in sl] for t, sl in zip(tables, seedl, strict=True)]
    recs: list[list] = [[store.get(k, series) if k in have else None for k in ks] for ks in keys]
    vals = [[None if r is None else _figure(r, prec) for r in rs] for rs in recs]
    plen = [0] * n_set  # seeds 0 .. plen-1 of each setting are done
    nxt = [0] * n_set  # the first seed of each setting neither done, running nor failed
    inflight: list[set] = [set() for _ in settings]
    failed: dict[tuple[int, int], str] = {}
    decided: list[int | None] = [cap] * n_set

    def advance(i):
        while plen[i] < cap and recs[i][plen[i]] is not None:
            plen[i] += 1
        while nxt[i] < cap and (recs[i][nxt[i]] is not None or nxt[i] in inflight[i]
                                or (i, nxt[i]) in failed):
            nxt[i] += 1
        if prec and decided[i] is None:
            decided[i] = needed(vals[i][:plen[i]], prec)

    if prec:
        decided = [None] * n_set
    for i in range(n_set):
        advance(i)
    # an earlier sweep may have run more seeds than a setting needs: count only those used
    reused = sum(r is not None for i in range(n_set) for r in recs[i][:decided[i] or cap])
    todo = [(i, k) for i in range(n_set) for k in range(cap) if recs[i][k] is None][::-1]

    def feed(room):
        if prec is None:
            return [((i, k), (tables[i], seedl[i][k]))
                    for i, k in (todo.pop() for _ in range(min(room, len(todo))))]
        jobs = []
        open_ = [i for i in range(n_set) if decided[i] is None
                 and not any(j == i for j, _ in failed)]
        ahead = max(1, math.ceil(be.slots / max(1, len(open_))))
        while len(jobs) < room:
            ready = [i for i in open_ if nxt[i] < min(cap, max(prec.min_seeds, plen[i] + ahead))]
            if not ready:
                break
            i = min(ready, key=lambda j: (len(inflight[j]), j))
            k = nxt[i]
            inflight[i].add(k)
            advance(i)
            jobs.append(((i, k), (tables[i], seedl[i][k])))
        return jobs

    def total():
        if prec is None:
            return n_set * cap
        return sum(max(prec.min_seeds if d is None else d, plen[i] + len(inflight[i]))
                   for i, d in enumerate(decided))

    done = sum(r is not None for rs in recs for r in rs)
    bar = Progress(total(), done=done, stream=stream, enabled=progress)
    ran = 0
    with contextlib.closing(bar), (backend or backends.InProcess()) as be:
        run = _run_series if series else _run_summary
        for (i, k), ok, value in backends.stream(be, run, feed):
            inflight[i].discard(k)
            s = settings[i]
            if ok and value.get("model") != model_fingerprint():
                ok, value = False, (f"the worker runs other relaysim model sources (digest "
                                    f"{value.get('model')}, here {model_fingerprint()})")
            if ok:
                rec = {"key": keys[i][k], "seed": seedl[i][k],
                       "factors": [list(f) for f in s.factors], "summary": value["summary"],
                       "wall_s": value["wall_s"]}
                if series:
                    rec.update(provenance=value["provenance"], series=value["series"])
                store.put(keys[i][k], rec)
                recs[i][k], vals[i][k] = rec, _figure(rec, prec)
                ran += 1
                done += 1
            else:
                failed[(i, k)] = value
                msg = f"run failed: setting {i} ({s.label}), seed {seedl[i][k]}: {value}"
                bar.note("relaysim sweep: " + msg)
                if fail_fast:
                    raise SweepStopped(msg)
            advance(i)
            bar.update(done, min(be.inflight(), be.slots), len(failed), total())
        wall = time.perf_counter() - t0  # to the last result, before the backend stops
    used = [plen[i] if decided[i] is None else decided[i] for i in range(n_set)]
    result = SweepResult(
        settings, [seedl[i][:n] for i, n in enumerate(used)],
        [[r for r in recs[i][:n] if r is not None] for i, n in enumerate(used)],
        [(settings[i], seedl[i][k], msg) for (i, k), msg in sorted(failed.items())],
        prec, reused=reused, ran=ran, wall_s=wall)
    if prec:
        result.sharp = [d is not None and relative_half_width(vals[i][:d]) <= prec.target
                        for i, d in enumerate(decided)]
    return result


def _figure(record: dict, prec: Precision | None) -> float | None:
    if prec is None:
        return None
    v = _flatten(record["summary"]).get(prec.figure)
    return math.nan if v is None else float(v)


# --- experiment scaffolding -----------------------------------------------------------------
def experiment_args(doc: str, name: str, argv=None, seeds: int = 5) -> argparse.Namespace:
    """The shared command line: --quick, --out DIR, --seeds N, --workers N."""
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help=f"tiny scenario, one seed (a smoke test, written to "
                   f"results-quick/{name}/ unless --out says where)")
    p.add_argument("--out", type=Path, default=None,
                   help=f"output folder (default: results/{name}/; with --quick: "
                   f"results-quick/{name}/, never the committed results)")
    p.add_argument("--seeds", type=int, default=None,
                   help=f"replications per setting (default {seeds}; --quick: 1)")
    p.add_argument("--workers", type=int, default=None,
                   help="parallel processes (default: all CPUs)")
    a = p.parse_args(argv)
    if a.out is None:
        a.out = results_folder(name, a.quick)
    if a.seeds is None:
        a.seeds = 1 if a.quick else seeds
    return a


def experiment_runs(args: argparse.Namespace, labels: Sequence[str],
                    scenarios: Sequence[Scenario]) -> list[list[Results]]:
    """Every scenario with args.seeds seeds through run_sweep, resumable: grid[i][k] is the
    Results of scenario i and its k-th seed, from the run store args.out/runs/ (module
    contract)."""
    settings = [Setting(i, (("setting", lab),), s)
                for i, (lab, s) in enumerate(zip(labels, scenarios, strict=True))]
    backend = make_backend(args.workers, None, len(settings) * args.seeds)
    res = run_sweep(settings, args.seeds, args.out, backend, fail_fast=True, series=True)
    sys.stderr.write(f"{len(settings)} settings x {args.seeds} seeds: {res.ran} run, "
                     f"{res.reused} from the run store {Path(args.out) / 'runs'}\n")
    return [[results_of(s, r) for r in rs] for s, rs in zip(settings, res.records, strict=True)]


def results_folder(name: str, quick: bool = False) -> Path:
    """An experiment's default output folder: results/<name>/ in the repository, or
    results-quick/<name>/ for a --quick smoke run (not committed; .gitignore)."""
    return Path(__file__).resolve().parents[2] / ("results-quick" if quick else "results") / name


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


# the note of the experiments where Postfix's concurrency limit binds
SCAN_ORDER_NOTE = (
    "Postfix's deferred scan hands its files to the delivery agents in directory order "
    "(sim.model.qmgr.rules.scan_order: a fixed hashed place per queue file, unrelated "
    "to arrival; until #19 relaysim took them in filing order). When the concurrency "
    "limit binds it decides which retry waits behind which (and so the second each "
    "attempt ends in, from which its backoff counts); the "
    "live load validation shows its effect message by message "
    "(results/validation/postfix/load).")


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
        + (", soft_bounce = yes" if up.soft_bounce else "")
        + f", default_destination_concurrency_limit = {up.default_destination_concurrency_limit}"
        + f", smtp_transaction_time = {fmt_time(up.smtp_transaction_time)}")
    r = sc.relay
    lines.append(f"relay: local_users = {r.local_users}, unknown_local_recipient_reject_code = "
                 f"{r.unknown_local_recipient_reject_code}"
                 + (", soft_bounce = yes" if r.soft_bounce else "")
                 + "".join(f", {k} = {getattr(r, k)}" for k in (
                     "smtpd_soft_error_limit", "smtpd_hard_error_limit") if getattr(r, k))
                 + "".join(f", outage at {fmt_time(o.start)} for {fmt_time(o.duration)}"
                           for o in r.outages))
    for c in sc.changes:
        sets = [f"relay.{k} = {v}" for k, v in c.relay.items()] + [
            f"upstream.{k} = {v}" for k, v in c.upstream.items()]
        lines.append(f"change at {fmt_time(c.at)}: " + ", ".join(sets))
    return lines


# --- a sweep's files ------------------------------------------------------------------------
def _cell(v) -> str:
    """Full precision: ints as ints, floats as repr (they read back to the same number)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, bool | str):
        return str(v)
    if isinstance(v, int | np.integer) or float(v).is_integer() and abs(v) < 2**53:
        return str(int(v))
    return repr(float(v))


def _csv_text(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow([v if isinstance(v, str) else _cell(v) for v in row])
    return buf.getvalue()


def _columns(result: SweepResult) -> list[str]:
    extra = []
    for rs in result.records:
        for r in rs:
            extra += [k for k in _flatten(r["summary"]) if k not in SUMMARY_FIGURES
                      and k not in extra]
    return list(SUMMARY_FIGURES) + extra


def sweep_tables(result: SweepResult) -> dict[str, str]:
    """{'runs.csv': text, 'summary.csv': text} (see the module contract)."""
    keys = [k for k, _ in result.settings[0].factors] if result.settings else []
    figs = _columns(result)
    runs, summ = [], []
    for s, rs in zip(result.settings, result.records, strict=True):
        fv = [v for _, v in s.factors]
        flat = [_flatten(r["summary"]) for r in rs]
        for r, f in zip(rs, flat, strict=True):
            runs.append([s.index, *fv, r["seed"], *(f.get(k) for k in figs)])
        row = [s.index, *fv, len(rs)]
        if result.precision:
            row.append("yes" if result.sharp[s.index] else "no")
        for k in figs:
            v = np.array([math.nan if f.get(k) is None else float(f[k]) for f in flat])
            m, lo, hi = mean_ci(v, FIGURE_RANGE) if len(v) else (math.nan,) * 3
            row += [float(m), float(lo), float(hi)]
        summ.append(row)
    head = ["setting", *keys]
    sharp = [f"{result.precision.figure} within {result.precision.target:.4g}"] \
        if result.precision else []
    return {
        "runs.csv": _csv_text([*head, "seed", *figs], runs),
        "summary.csv": _csv_text([*head, "seeds", *sharp,
                                  *(f"{k} {c}" for k in figs for c in ("mean", "lo", "hi"))],
                                 summ)}


def _num(v: float) -> str:
    if not math.isfinite(v):
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def _ci_text(values: Sequence[float]) -> str:
    v = np.array([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    if not len(v):
        return "-"
    m, lo, hi = mean_ci(v, FIGURE_RANGE)
    return _num(m) if np.isnan(lo) else f"{_num(m)} ({_num(lo)} to {_num(hi)})"


def _interval_note(result: SweepResult) -> str:
    """How the figures' error bars were computed, with the seeds per setting."""
    n = sorted({len(rs) for rs in result.records}) or [0]
    if n[0] == n[-1]:
        return f"error bars: {ci_method(n[0])}"
    return (f"error bars: 95 % t-interval of the mean over each setting's seeds "
            f"({n[0]} to {n[-1]}), clipped at 0")


def _panels(result: SweepResult, fig: str) -> list[tuple]:
    """Per varied key: (key, its values, {other keys' values: (mean, lo, hi) arrays}, legend
    title)."""
    if not result.settings or not result.settings[0].factors:
        return []
    keys = [k for k, _ in result.settings[0].factors]
    values = [list(dict.fromkeys(s.factors[j][1] for s in result.settings))
              for j in range(len(keys))]
    stats = {}
    for s, rs in zip(result.settings, result.records, strict=True):
        v = [_flatten(r["summary"]).get(fig) for r in rs]
        v = np.array([math.nan if x is None else float(x) for x in v])
        stats[s.factors] = mean_ci(v, FIGURE_RANGE) if len(v) else (math.nan,) * 3
    panels = []
    for j, key in enumerate(keys):
        lines: dict[str, list] = {}
        for s in result.settings:
            others = ", ".join(f"{k} = {v}" if len(keys) > 2 else v
                               for n, (k, v) in enumerate(s.factors) if n != j)
            arr = lines.setdefault(others, [np.full(len(values[j]), np.nan) for _ in range(3)])
            x = values[j].index(s.factors[j][1])
            for a, val in zip(arr, stats[s.factors], strict=True):
                a[x] = val
        title = keys[1 - j] if len(keys) == 2 else ""  # the legend's title: the other key
        panels.append((key, values[j], {k: tuple(v) for k, v in lines.items()}, title))
    return panels


def write_sweep(result: SweepResult, out: str | Path, base: Scenario, command: str) -> list[Path]:
    """runs.csv, summary.csv, the figures, README.md (and runs.parquet): module contract."""
    out = Path(out)
    written = []
    for name, text in sweep_tables(result).items():
        write_atomic(out / name, text)
        written.append(out / name)
    figures = []
    try:
        from sim.reports import plotting
    except ImportError:  # plotting is optional; the tables are the result
        plotting = None
    if plotting is not None:
        for fig, label in HEADLINES:
            panels = _panels(result, fig)
            if panels:
                stem = "sweep_" + fig.replace(".", "_")
                written += plotting.factor_figure(out / stem, label, panels,
                                                  title=f"{base.simulation.name}: {label}",
                                                  note=_interval_note(result))
                figures.append((stem, f"{label} against each varied key (mean and 95 % "
                                      "interval over seeds)", ["summary"]))
    written.append(_write_readme(result, out, base, command, figures))
    parquet = _write_parquet(out)
    if parquet is not None:
        written.append(parquet)
    return written


def _write_readme(result, out, base, command, figures) -> Path:
    keys = [k for k, _ in result.settings[0].factors]
    title = f"Sweep of {base.simulation.name}" + (f": {' x '.join(keys)}" if keys else "")
    question = ("How do the headline figures (" + ", ".join(lab for _, lab in HEADLINES)
                + ") change with " + (" and ".join(f"`{k}`" for k in keys) or "the seed")
                + "?")
    setup = setup_lines(base)
    if keys:
        values = [list(dict.fromkeys(s.factors[j][1] for s in result.settings))
                  for j in range(len(keys))]
        setup += [f"varied: `{k}` = " + ", ".join(v) for k, v in zip(keys, values, strict=True)]
    p = result.precision
    if p:
        setup.append(f"seeds: added per setting until the 95 % interval of `{p.figure}` is within "
                     f"{p.target:.4g} of its mean ({p.min_seeds} to {p.max_seeds} seeds), spawned "
                     f"from simulation.seed = {base.simulation.seed}")
    else:
        setup.append(f"{len(result.seeds[0])} seeds per setting, spawned from simulation.seed = "
                     f"{base.simulation.seed} (the same seeds in every setting: common random "
                     "numbers)")
    head = ["setting", *keys, "seeds", *(lab for _, lab in HEADLINES)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s, rs in zip(result.settings, result.records, strict=True):
        flat = [_flatten(r["summary"]) for r in rs]
        n = f"{len(rs)}" + ("" if not p else "" if result.sharp[s.index] else " (cap)")
        cells = [str(s.index), *(f"`{v}`" for _, v in s.factors), n]
        cells += [_ci_text([f.get(k) for f in flat]) for k, _ in HEADLINES]
        lines.append("| " + " | ".join(cells) + " |")
    answer = ("Mean and 95 % interval over seeds per setting (every figure in summary.csv, every "
              "run in runs.csv):\n\n" + "\n".join(lines))
    notes = ["runs.csv: one row per run (setting, the varied keys, seed, every summary figure); "
             "summary.csv: per setting the number of seeds and mean, lo, hi of every figure; "
             "runs/: one record per finished run, keyed by scenario and seed (a repeated "
             "command runs only what is missing)."]
    if p and not all(result.sharp):
        notes.append(f"{result.sharp.count(False)} setting(s) reached {p.max_seeds} seeds "
                     "without the target precision (marked cap)")
    if result.failed:
        notes += [f"failed: setting {s.index} ({s.label}), seed {seed}: {msg}"
                  for s, seed, msg in result.failed]
    return write_readme(out, title, question, setup, figures, answer, command, notes)


def _write_parquet(out: Path) -> Path | None:
    try:
        import pandas as pd
        import pyarrow  # noqa: F401
    except ImportError:
        return None
    path = out / "runs.parquet"
    buf = io.BytesIO()
    pd.read_csv(out / "runs.csv").to_parquet(buf, index=False)
    write_atomic(path, buf.getvalue())
    return path
