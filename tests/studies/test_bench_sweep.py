"""experiments/bench_sweep.py on a tiny sweep: it returns and writes every figure it promises
(the real measurement is `make bench`'s)."""

import importlib.util
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("bench_sweep", ROOT / "experiments" /
                                              "bench_sweep.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_bench_sweep_smoke(tmp_path, monkeypatch):
    for name, value in (("OVERHEAD_SEEDS", 1), ("SPEEDUP_SEEDS", 1), ("ROUNDS", 1),
                        ("SPEEDUP_RATE", "2000/d"), ("LIFETIMES",
                                                     "upstream.maximal_queue_lifetime=6h,1d")):
        monkeypatch.setattr(bench, name, value)
    r = bench.bench_sweep(tmp_path)
    assert json.loads((tmp_path / "bench_sweep.json").read_text()) == json.loads(json.dumps(r))
    assert r["overhead"]["runs"] == 2 and r["overhead"]["runs_s"] > 0
    kinds = ["pool", "dask"] if r["dask"] else ["pool"]
    assert sorted(r["speedup"]) == sorted(kinds) and all(v > 0 for v in r["speedup"].values())
    assert set(r["speedup_met"]) == set(kinds) and isinstance(r["overhead_met"], bool)
    for kind in kinds:  # the runs' own time, two at a time over one at a time
        one, two = (sorted(r["runs_s"][f"{kind}-{w}"]) for w in (1, 2))
        assert r["slowdown"][kind] == two[0] / one[0] > 0
        assert bench.contention(r, kind).startswith(
            f"the runs took {r['slowdown'][kind]:.2f} x as long two at a time")
    other = [x for v in r["other_cores"].values() for x in v]
    assert len(other) == 2 * len(kinds) and all(x is None or 0 <= x <= os.cpu_count()
                                                for x in other)


def test_cpu_counts_this_process_and_its_descendants():
    import subprocess
    import sys

    busy0, ours0 = bench._cpu()
    subprocess.run([sys.executable, "-c", "t = 0\nfor i in range(10**7): t += i"], check=True)
    busy1, ours1 = bench._cpu()
    assert ours1 - ours0 > 0.2  # the child's loop, reaped
    assert busy1 - busy0 >= 0.8 * (ours1 - ours0)
