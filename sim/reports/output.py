"""Run folders: one run's files, written atomically and read back to redraw without simulating.

Public names: write_run, read_run, Run, run_data, scenario_events, scenario_outages, draw_figures,
plotting_available, stage_and_commit, check_output, FILES, FIGURE_SAMPLES.

Contract:
- A run folder holds FILES: summary.json ({summary, scenario (Scenario.to_dict()), origins,
  seed, provenance (relaysim, Python, numpy and SimPy versions, wall time), events}),
  timeseries.csv (Results.timeseries_csv(): one row per sample, t_s first), qshape.csv (t_s
  and the deferred messages per qshape age bucket, age_5 .. age_1280+), delay_cdf.csv
  (delay_s, share of delivered recipients at or below), plus the standard figures of
  sim.reports.plotting when that module is present.
- write_run(results, outdir) -> paths written. Everything is first written into a hidden
  staging folder next to `outdir` (.<name>.staging-<pid>-*), the other entries of an earlier
  run folder are carried over (hard links), and the staging folder then takes the place of
  `outdir` as a whole (Linux renameat2 RENAME_EXCHANGE, one atomic step; SIGINT and SIGTERM
  held back meanwhile in the main thread): a failure, Ctrl-C, SIGTERM or SIGKILL leaves the
  previous run's folder exactly as it was, and readers see the old folder or the new one.
  Staging folders of killed runs (their process gone) are removed by the next write or check.
- check_output(outdir, key) -> the absolute folder, before simulating: refuses a NUL or an
  over-long name, a file, a folder that is neither new nor an earlier run's (no
  summary.json among other files), and a place that cannot be written (a trial folder is
  made and removed); ScenarioError naming `key` (--out, or simulation.name for the default).
- read_run(outdir) -> Run(timeseries, qshape, delay_cdf, summary, scenario, events, ...):
  timeseries is a dict of float arrays without the age_* columns (those are `qshape`, an int
  array (samples, 10)); delay_cdf is (delay_s, share). run_data(results) gives the same object
  from a Results in memory, so figures drawn after a run and by `relaysim plot` get identical
  inputs (up to the CSV's 6 significant digits).
- scenario_events(scenario) -> [(t_s, label)]: scheduled changes and scheduled relay outages
  (start and end), sorted. Random outages (outage_mtbf) are drawn inside the run and not listed.
- draw_figures(run, outdir) -> paths, via sim.reports.plotting.standard_figures (relay outages
  from scenario_outages(run.scenario) shaded), from at most
  about FIGURE_SAMPLES evenly spaced samples (and the last), so a figure's size does not grow
  with the sample count; ImportError when sim.reports.plotting is missing.
Errors: read_run raises ScenarioError (key RESULTS_DIR) for a folder that is not a run folder,
or whose files are unreadable, malformed or inconsistent.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import glob
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

from sim.errors import ScenarioError, read_text_file
from sim.results import QSHAPE_LABELS, Results, write_atomic
from sim.units import format_time, parse_time

FILES = ("summary.json", "timeseries.csv", "qshape.csv", "delay_cdf.csv")
FIGURE_SAMPLES = 4000  # a figure draws at most about this many samples (evenly spaced ones)
READ_LIMIT = 1 << 30  # bytes of one run-folder file that read_run reads
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

    n = len(run.timeseries["t_s"])
    keep = np.unique(np.r_[np.arange(0, n, max(1, math.ceil(n / FIGURE_SAMPLES))), n - 1]) \
        if n else np.arange(0)
    ts = {k: np.asarray(v)[keep] for k, v in run.timeseries.items()}
    return list(plotting.standard_figures(ts, np.asarray(run.qshape)[keep], run.delay_cdf,
                                          run.events, run.title, Path(outdir),
                                          outages=scenario_outages(run.scenario)))


def scenario_outages(scenario: dict) -> list[tuple[float, float]]:
    """The scheduled relay outages of a run's scenario (as to_dict writes it), (start, end) in
    seconds, for the figures' shading."""
    out = []
    for i, o in enumerate(scenario.get("relay", {}).get("outages", ())):
        start = parse_time(f"relay.outages[{i}].start", o["start"])
        out.append((start, start + parse_time(f"relay.outages[{i}].duration", o["duration"])))
    return [(s, e) for s, e in out if e > s]


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


def check_output(outdir: str | Path, key: str = "--out") -> Path:
    """The absolute run folder for `outdir`, once it is sure that a run can be written there
    (see the module contract); stale staging folders of it are cleaned up first. Nothing is
    left behind: a trial folder is made in the nearest existing ancestor and removed."""
    text = os.fspath(outdir)
    if "\0" in text:
        raise ScenarioError(key, text, "a path without NUL characters")
    out = Path(os.path.abspath(text))
    parts = [os.fsencode(x) for x in out.parts[1:]]
    if any(len(x) > 255 for x in parts) or len(os.fsencode(str(out))) > 4000:
        raise ScenarioError(key, text, "a path whose names have at most 255 bytes each")
    if out.is_symlink():  # the folder it points to is the one replaced, not the link
        out = out.resolve()
    if out == Path(out.anchor):
        raise ScenarioError(key, text, "a folder below the file system's root")
    _clean_stale(out)
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise ScenarioError(key, text, "a folder", problem="a file")
        other = sorted(p.name for p in out.iterdir())
        if other and "summary.json" not in other:
            raise ScenarioError(key, text, "a new folder or an earlier run's folder (this one "
                                "holds other files: " + ", ".join(other[:3])
                                + (", ..." if len(other) > 3 else "") + ")")
    base = out.parent
    while not base.exists():
        base = base.parent
    if not base.is_dir():
        raise ScenarioError(key, text, f"a path inside folders ({base} is a file)")
    try:
        shutil.rmtree(tempfile.mkdtemp(dir=base, prefix=f".{out.name}.check-"))
    except OSError as e:
        raise ScenarioError(key, text, f"a folder that can be written ({base}: "
                            f"{e.strerror or e})") from None
    return out


def stage_and_commit(outdir: str | Path, fill) -> list[Path]:
    """Call fill(staging) on an empty hidden folder next to outdir, carry over outdir's other
    entries (hard links), then swap the staging folder in for outdir as a whole; the staging
    folder (then holding the old files) is removed whatever happens."""
    out = check_output(outdir, "RESULTS_DIR" if Path(outdir).is_dir() else "--out")
    made = [p for p in (out.parent, *out.parent.parents) if not p.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.staging-{os.getpid()}-"))
    try:
        fill(staging)
        names = sorted(p.name for p in staging.iterdir() if p.is_file())
        mode = 0o666 & ~_umask()  # temporary files are private (0600); results are not
        for name in names:
            os.chmod(staging / name, mode)
        os.chmod(staging, 0o777 & ~_umask())
        if out.is_dir():
            for entry in out.iterdir():
                if not (staging / entry.name).exists() and not entry.is_symlink():
                    _carry(entry, staging / entry.name)
        with _signals_held():
            if out.is_dir():
                _swap(staging, out)
            else:
                os.rename(staging, out)
        return [out / n for n in names]
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for p in made:  # the folders this call made, innermost first, if still empty
            with contextlib.suppress(OSError):
                p.rmdir()
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _carry(src: Path, dst: Path) -> None:
    """A file or folder of the previous run folder into the new one, by hard link (copy where
    the file system has none)."""
    def link(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    if src.is_dir():
        shutil.copytree(src, dst, symlinks=True, copy_function=link)
    else:
        link(src, dst)


_RENAME_EXCHANGE = 2


def _swap(new: Path, out: Path) -> None:
    """Exchange the folders `new` and `out` (Linux renameat2 RENAME_EXCHANGE: one atomic step);
    elsewhere by two renames, a crash between which _clean_stale() repairs."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                       ctypes.c_uint]
        at_fdcwd = -100
        if fn(at_fdcwd, os.fsencode(new), at_fdcwd, os.fsencode(out), _RENAME_EXCHANGE) == 0:
            return
    except (OSError, AttributeError):
        pass
    old = new.with_name(new.name.replace(".staging-", ".old-", 1))
    os.rename(out, old)
    os.rename(new, out)
    os.rename(old, new)  # the caller removes `new`, now the old files


def _clean_stale(out: Path) -> None:
    """Remove the staging folders that an earlier run on `out` left behind when it was killed
    (SIGKILL, power loss): those whose process is gone. An old folder left between the two
    renames of _swap() goes back in place if `out` is missing."""
    if not out.parent.is_dir():
        return
    for p in out.parent.glob(f".{glob.escape(out.name)}.*-*"):
        kind, _, rest = p.name[len(out.name) + 2:].partition("-")
        pid = rest.split("-")[0]
        if kind not in ("staging", "old", "check") or not pid.isdigit() or _alive(int(pid)):
            continue
        if kind == "old" and not out.exists():
            os.rename(p, out)
        else:
            shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def plotting_available() -> bool:
    """Whether sim.reports.plotting (the standard figures) is installed."""
    return importlib.util.find_spec("sim.reports.plotting") is not None


@contextlib.contextmanager
def _signals_held():
    """Hold SIGINT and SIGTERM back for the block (main thread only), then deliver them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    old = {sig: signal.signal(sig, lambda *a: caught.append(a))
           for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        for sig, frame in caught[:1]:
            handler = old[sig]
            if callable(handler):
                handler(sig, frame)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), sig)


def _read_csv(path: Path) -> tuple[list[str], np.ndarray]:
    rows = list(csv.reader(io.StringIO(read_text_file(path, "RESULTS_DIR", READ_LIMIT))))
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
        meta = json.loads(read_text_file(outdir / "summary.json", "RESULTS_DIR", READ_LIMIT))
        header, data = _read_csv(outdir / "timeseries.csv")
        q_header, q = _read_csv(outdir / "qshape.csv")
        _, cdf = _read_csv(outdir / "delay_cdf.csv")
        ts = {c: data[:, i] for i, c in enumerate(header) if c not in AGE_COLUMNS}
        qshape = q[:, [q_header.index(c) for c in AGE_COLUMNS]].astype(np.int64)
        if not ts.get("t_s", np.zeros(0)).size or len(qshape) != len(ts["t_s"]):
            raise ValueError("no samples, or timeseries.csv and qshape.csv differ in length")
        if not isinstance(meta.get("summary"), dict) or not isinstance(meta.get("scenario"),
                                                                        dict):
            raise ValueError("summary.json has no summary and scenario tables")
        return Run(timeseries=ts, qshape=qshape, delay_cdf=(cdf[:, 0], cdf[:, 1]),
                   summary=meta["summary"], scenario=meta["scenario"],
                   events=[(float(t), str(label)) for t, label in meta.get("events", [])],
                   seed=int(meta["seed"]), provenance=dict(meta.get("provenance", {})),
                   origins=dict(meta.get("origins", {})))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError) as e:
        raise ScenarioError("RESULTS_DIR", str(outdir),
                            f"a folder written by `relaysim run` (unreadable: {e})") from None
