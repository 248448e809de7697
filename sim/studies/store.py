"""The resumable run store of a sweep: one file per finished run, keyed by scenario and seed.

Public names: RunStore, run_key, model_fingerprint.

Contract:
- run_key(table, seed) is a hex digest of the scenario table (Scenario.to_dict()), the seed,
  relaysim's version and model_fingerprint() (a digest of the model's source files: sim/model/,
  sim/scenario.py, sim/results.py, sim/units.py, sim/postfix/): the same scenario and seed give
  the same key in any sweep, any order, on any backend; a changed scenario value, seed or
  model source gives another key, so a store never serves results of an older model.
- RunStore(folder) keeps finished runs under folder/ as <key>.json, each written atomically
  (sim.results.write_atomic), so an interrupted sweep (Ctrl-C, a killed worker, a lost machine)
  leaves only whole records; a half-written temporary file is hidden (.name.tmp) and ignored.
  get(key) returns the record or None, put(key, record) writes it, keys() lists what is there.
- A record is a JSON object: {"key", "seed", "factors" [[key, value text]], "summary"
  (Results.summary), "wall_s" (the run's own time inside the worker)}, and for a sweep that
  keeps the runs' series (an experiment's) "provenance" (Results.provenance) and "series": a
  dict of numpy arrays (sim.studies.sweep packs a Results' time series, qshape and
  delay CDF into it) that put() writes beside the JSON as <key>.npz, before it, so a listed
  record's arrays are whole. get(key, series=True) returns the record with its arrays, or
  None when it has none (a record of a summary-only sweep is then missing: its run is run
  again). Arrays come back with their dtype and bytes: a Results rebuilt from a record is the
  run's own. The store never holds a failed run: running the same sweep again retries it.
Errors: OSError from the file system; a record that is not valid JSON, or whose arrays do not
load, is treated as missing (and overwritten when its run finishes again).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from sim.results import write_atomic


def run_key(table: dict, seed: int) -> str:
    """Digest of (scenario table, seed, relaysim version, model source): a record's name."""
    from sim import __version__

    text = json.dumps({"scenario": table, "seed": int(seed), "relaysim": __version__,
                       "model": model_fingerprint()}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@functools.cache
def model_fingerprint() -> str:
    """Digest of the source files that decide a run's results (see the module contract)."""
    root = Path(__file__).resolve().parents[1]
    files = sorted([*root.glob("model/**/*.py"), *root.glob("postfix/**/*.py"),
                    *root.glob("postfix/data/*.txt"), root / "scenario.py",
                    root / "results.py", root / "units.py"])
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


class RunStore:
    """Finished runs of a sweep, one JSON file each (see the module contract)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def get(self, key: str, series: bool = False) -> dict | None:
        try:
            rec = json.loads(self._path(key).read_text())
            if series:
                with np.load(self.folder / f"{key}.npz") as z:
                    rec["series"] = {name: z[name] for name in z.files}
        except (FileNotFoundError, ValueError, EOFError, zipfile.BadZipFile):  # missing or bad
            return None
        return rec

    def put(self, key: str, record: dict) -> None:
        record = dict(record)
        arrays = record.pop("series", None)
        if arrays is not None:
            buf = io.BytesIO()
            np.savez_compressed(buf, **arrays)
            write_atomic(self.folder / f"{key}.npz", buf.getvalue())
        # keys in the record's own order: a summary read back keeps Results.summary's order
        write_atomic(self._path(key), json.dumps(record))

    def keys(self) -> set[str]:
        if not self.folder.is_dir():
            return set()
        return {p.stem for p in self.folder.glob("*.json") if not p.name.startswith(".")}
