"""Where the Postfix-format writers put their files: checked before any simulating.

Public names: check_writable.

Contract: check_writable(path, key, folder) returns the path when relaysim can write it: a
folder that exists and is writable, or can be created (folder=True, --maillog DIR); or a file
whose folder is (or can be made) writable and which is not itself a folder (--metrics FILE,
--snapshot-at's files). It creates nothing (it opens and drops an unnamed temporary file in
the nearest existing folder, because access() says yes to root even on a read-only file
system). Otherwise ScenarioError naming the option (`key`), the path and what is needed, so
the command line stops with one line and exit status 2 before simulating. The writers
themselves write through temporary names and a rename, so an interrupted run leaves no
half-written file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sim.errors import ScenarioError


def check_writable(path: Path | str, key: str, folder: bool = False) -> Path:
    """`path` if relaysim can write it (see the module contract), else ScenarioError."""
    p = Path(path)
    need = "a folder relaysim can create or write into" if folder else \
        "a file path in a folder relaysim can write (not a folder)"
    if not folder and p.is_dir():
        raise ScenarioError(key, str(p), need, problem="a folder")
    target = p if folder else p.parent
    probe = target
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise ScenarioError(key, str(p), need, problem=f"{probe} is not a folder")
    try:  # access() says yes to root even on read-only file systems: try for real
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError:
        raise ScenarioError(key, str(p), need, problem=f"{probe} is not writable") from None
    if not folder and p.exists() and not os.access(p, os.W_OK):
        raise ScenarioError(key, str(p), need, problem="the file is not writable")
    return p
