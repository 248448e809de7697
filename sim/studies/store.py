"""The resumable run store of a sweep: one file per finished run, keyed by scenario and seed.

Public names: RunStore, run_key.

Contract:
- run_key(table, seed) is a hex digest of the scenario table (Scenario.to_dict()), the seed and
  relaysim's version: the same scenario and seed give the same key in any sweep, any order, on
  any backend; a changed scenario value, seed or relaysim version gives another key.
- RunStore(folder) keeps finished runs under folder/ as <key>.json, each written atomically
  (sim.results.write_atomic), so an interrupted sweep (Ctrl-C, a killed worker, a lost machine)
  leaves only whole records; a half-written temporary file is hidden (.name.tmp) and ignored.
  get(key) returns the record or None, put(key, record) writes it, keys() lists what is there.
- A record is a JSON object: {"key", "seed", "factors" [[key, value text]], "summary"
  (Results.summary), "wall_s" (the run's own time inside the worker)}. The store never holds a
  failed run: running the same sweep again retries it.
Errors: OSError from the file system; a record that is not valid JSON is treated as missing
(and overwritten when its run finishes again).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sim.results import write_atomic


def run_key(table: dict, seed: int) -> str:
    """Digest of (scenario table, seed, relaysim version): the name of a run's record."""
    from sim import __version__

    text = json.dumps({"scenario": table, "seed": int(seed), "relaysim": __version__},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class RunStore:
    """Finished runs of a sweep, one JSON file each (see the module contract)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def get(self, key: str) -> dict | None:
        try:
            return json.loads(self._path(key).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def put(self, key: str, record: dict) -> None:
        write_atomic(self._path(key), json.dumps(record, sort_keys=True))

    def keys(self) -> set[str]:
        if not self.folder.is_dir():
            return set()
        return {p.stem for p in self.folder.glob("*.json") if not p.name.startswith(".")}
