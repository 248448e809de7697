"""Run folders: one run's files, written atomically and read back to redraw without simulating.

Public names: write_run, read_run, Run, run_data, scenario_events, draw_figures, plotting_available,
stage_and_commit, FILES.

Contract:
- A run folder holds FILES: summary.json ({summary, scenario (Scenario.to_dict()), origins,
  seed, provenance (relaysim, Python, numpy and SimPy versions, wall time), events}),
  timeseries.csv (Results.timeseries_csv(): one row per sample, t_s first), qshape.csv (t_s
  and the deferred messages per qshape age bucket, age_5 .. age_1280+), delay_cdf.csv
  (delay_s, share of delivered recipients at or below), plus the standard figures of
  sim.reports.plotting when that module is present.
- write_run(results, outdir) -> paths written. Everything is first written into a hidden
  staging folder inside `outdir`, then each file is renamed over its old version (with SIGINT
  held back during the renames when called from the main thread), so a failure or Ctrl-C
  before the renames leaves the previous run's files as they were, and no reader ever sees half
  a file. Files in `outdir` that the run does not write are left alone.
- read_run(outdir) -> Run(timeseries, qshape, delay_cdf, summary, scenario, events, ...):
  timeseries is a dict of float arrays without the age_* columns (those are `qshape`, an int
  array (samples, 10)); delay_cdf is (delay_s, share). run_data(results) gives the same object
  from a Results in memory, so figures drawn after a run and by `relaysim plot` get identical
  inputs (up to the CSV's 6 significant digits).
- scenario_events(scenario) -> [(t_s, label)]: scheduled changes and scheduled relay outages
  (start and end), sorted. Random outages (outage_mtbf) are drawn inside the run and not listed.
- draw_figures(run, outdir) -> paths, via sim.reports.plotting.standard_figures; ImportError when
  sim.reports.plotting is missing.
Errors: read_run raises ScenarioError (key RESULTS_DIR) for a folder that is not a run folder.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import json
import math
import os
import shutil
import signal
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim.errors import ScenarioError
from sim.results import QSHAPE_LABELS, Results, write_atomic
from sim.units import format_time

FILES = ("summary.json", "timeseries.csv", "qshape.csv", "delay_cdf.csv")
AGE_COLUMNS = tuple(f"age_{lab}" for lab in QSHAPE_LABELS)


@dataclass
class Run:
    """One run as the files hold it (see the module contract)."""
    timeseries: dict[str, np.ndarray]
    qshape: np.ndarray
    delay_cdf: tuple[np.ndarray, np.ndarray]
    summary: dict
    scenario: dict
    events: list[tuple[float, str]]
    seed: int
    provenance: dict = field(default_factory=dict)
    origins: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.scenario.get("simulation", {}).get("name", "scenario")

    @property
    def title(self) -> str:
        return f"{self.name} (seed {self.seed})"


def scenario_events(scenario) -> list[tuple[float, str]]:
    """Scheduled changes and scheduled relay outages as (t_s, label), by time."""
    events = []
    for ch in scenario.changes:
        sets = [f"{sec}.{k} = {v}" for sec, table in (("upstream", ch.upstream),
                                                      ("relay", ch.relay)) for k, v in
                table.items()]
        events.append((float(ch.at), "; ".join(sets)))
    for o in scenario.relay.outages:
        if o.duration > 0:
            events.append((float(o.start), f"relay outage ({format_time(o.duration)})"))
            events.append((float(o.start + o.duration), "relay back"))
    return sorted(events, key=lambda e: e[0])


def run_data(results: Results) -> Run:
    """The Run that write_run's files describe, from the Results in memory."""
    scen = results.scenario
    return Run(timeseries={k: np.asarray(v, dtype=float) for k, v in results.timeseries.items()},
               qshape=np.asarray(results.qshape, dtype=np.int64),
               delay_cdf=(np.asarray(results.delay_cdf[0], dtype=float),
                          np.asarray(results.delay_cdf[1], dtype=float)),
               summary=results.summary, scenario=scen.to_dict(), events=scenario_events(scen),
               seed=results.seed, provenance=dict(results.provenance),
               origins=dict(scen.origins))


def _json_safe(x: Any) -> Any:
    """NaN and infinities as null: JSON has neither."""
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _csv(columns: list[str], data: list[np.ndarray], fmt) -> str:
    lines = [",".join(columns)]
    lines += [",".join(fmt(v) for v in row) for row in zip(*data, strict=True)]
    return "\n".join(lines) + "\n"


def _file_texts(run: Run) -> dict[str, str]:
    summary = {"summary": run.summary, "scenario": run.scenario, "origins": run.origins,
               "seed": run.seed, "provenance": run.provenance,
               "events": [[t, label] for t, label in run.events]}
    t_s = run.timeseries["t_s"]
    return {
        "summary.json": json.dumps(_json_safe(summary), indent=2) + "\n",
        "qshape.csv": _csv(["t_s", *AGE_COLUMNS], [t_s, *run.qshape.T],
                           lambda v: f"{float(v):.10g}"),
        "delay_cdf.csv": _csv(["delay_s", "share"], list(run.delay_cdf),
                              lambda v: f"{float(v):.9g}"),
    }


def draw_figures(run: Run, outdir: str | Path) -> list[Path]:
    """The standard figures of sim.reports.plotting for a run (ImportError without it)."""
    from sim.reports import plotting  # imported late: matplotlib is slow to load, and optional here

    return list(plotting.standard_figures(run.timeseries, run.qshape, run.delay_cdf, run.events,
                                          run.title, Path(outdir)))


def write_run(results: Results, outdir: str | Path, figures: bool = True) -> list[Path]:
    """All files of a run into `outdir`, atomically (see the module contract)."""
    run = run_data(results)
    texts = _file_texts(run)
    texts["timeseries.csv"] = results.timeseries_csv()

    def fill(staging: Path) -> None:
        for name in FILES:
            write_atomic(staging / name, texts[name])
        if figures and plotting_available():
            draw_figures(run, staging)

    return stage_and_commit(outdir, fill)


def stage_and_commit(outdir: str | Path, fill) -> list[Path]:
    """Call fill(staging) on an empty hidden folder inside outdir, then rename every file it
    wrote over outdir's; the staging folder is removed whatever happens."""
    outdir = Path(outdir)
    created = not outdir.exists()
    outdir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=outdir, prefix=".staging-"))
    try:
        fill(staging)
        names = sorted(p.name for p in staging.iterdir() if p.is_file())
        mode = 0o666 & ~_umask()  # temporary files are private (0600); results are not
        for name in names:
            os.chmod(staging / name, mode)
        with _sigint_held():
            for name in names:
                os.replace(staging / name, outdir / name)
        return [outdir / n for n in names]
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                outdir.rmdir()  # only if empty: a folder this call made and left empty
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def plotting_available() -> bool:
    """Whether sim.reports.plotting (the standard figures) is installed."""
    return importlib.util.find_spec("sim.reports.plotting") is not None


@contextlib.contextmanager
def _sigint_held():
    """Hold SIGINT back for the block (main thread only), then deliver it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    old = signal.signal(signal.SIGINT, lambda *a: caught.append(a))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if caught and callable(old):
            old(*caught[0])
        elif caught and old == signal.SIG_DFL:
            os.kill(os.getpid(), signal.SIGINT)


def _read_csv(path: Path) -> tuple[list[str], np.ndarray]:
    rows = list(csv.reader(io.StringIO(path.read_text())))
    header, body = rows[0], rows[1:]
    data = np.array(body, dtype=float).reshape(len(body), len(header))
    return header, data


def read_run(outdir: str | Path) -> Run:
    """A run folder's data (see the module contract)."""
    outdir = Path(outdir)
    missing = [n for n in FILES if not (outdir / n).is_file()]
    if missing:
        raise ScenarioError("RESULTS_DIR", str(outdir), "a folder written by `relaysim run` "
                            f"(missing {', '.join(missing)})")
    try:
        meta = json.loads((outdir / "summary.json").read_text())
        header, data = _read_csv(outdir / "timeseries.csv")
        q_header, q = _read_csv(outdir / "qshape.csv")
        _, cdf = _read_csv(outdir / "delay_cdf.csv")
        ts = {c: data[:, i] for i, c in enumerate(header) if c not in AGE_COLUMNS}
        qshape = q[:, [q_header.index(c) for c in AGE_COLUMNS]].astype(np.int64)
    except (ValueError, KeyError, IndexError) as e:
        raise ScenarioError("RESULTS_DIR", str(outdir),
                            f"a folder written by `relaysim run` (unreadable: {e})") from None
    return Run(timeseries=ts, qshape=qshape, delay_cdf=(cdf[:, 0], cdf[:, 1]),
               summary=meta["summary"], scenario=meta["scenario"],
               events=[(float(t), str(label)) for t, label in meta.get("events", [])],
               seed=int(meta["seed"]), provenance=meta.get("provenance", {}),
               origins=meta.get("origins", {}))
