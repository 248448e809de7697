"""The model: senders, the relay, retry schedules, the deferred store, delivery agents, the
observation of a run, and the upstream's queue manager (sim.model.qmgr). It imports nothing
from the formats, studies, reports or CLI above it.

Compiled code is cached per version of the whole model: numba keys a cached function by its
own file only, so a kernel that inlines a function of another module (active.serve calls
site.refuse) would otherwise keep the old code after that module changed. Unless
NUMBA_CACHE_DIR is set, or numba was imported first, the cache lives in
sim/model/__pycache__/numba-<hash of the model's sources> (when that folder is writable;
else numba's own user-wide cache); a new version removes the older ones.
"""

import hashlib
import os
import shutil
import sys
from pathlib import Path


def _cache_dir() -> None:
    here = Path(__file__).resolve().parent
    if "numba" in sys.modules or "NUMBA_CACHE_DIR" in os.environ:
        return
    h = hashlib.sha1()
    for f in sorted(here.rglob("*.py")):
        h.update(f.relative_to(here).as_posix().encode())
        h.update(f.read_bytes())
    cache = here / "__pycache__"
    try:
        cache.mkdir(exist_ok=True)
    except OSError:
        return
    if os.access(cache, os.W_OK):
        mine = cache / f"numba-{h.hexdigest()[:12]}"
        if not mine.exists():  # the model changed: earlier versions' code is of no use
            for old in cache.glob("numba-*"):
                shutil.rmtree(old, ignore_errors=True)
        os.environ["NUMBA_CACHE_DIR"] = str(mine)


_cache_dir()
