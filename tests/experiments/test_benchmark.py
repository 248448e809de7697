"""experiments/benchmark.py --quick: the script runs end to end and writes what it promises.
Never a timing test: the figures it measures depend on the machine."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = ("README.md", "bench_week.csv", "agreement.csv", "isp_month.csv",
           "isp_month_mtas.csv", "scaling.csv", "scaling.png", "scaling.svg", "mmc.csv",
           "profile.txt")


def test_quick_benchmark_writes_its_outputs(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "experiments" / "benchmark.py"), "--quick",
                          "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT,
                         timeout=600)
    assert run.returncode == 0, run.stderr
    for name in OUTPUTS:
        assert (tmp_path / name).stat().st_size > 0, name
    readme = (tmp_path / "README.md").read_text()
    for row in ("| bench-week | relaysim |", "| bench-week | naive |", "| isp-month | relaysim |",
                "| Erlang C (closed form) |", "| delivered |", "| attempts |", "| qmail |",
                "| exchange |"):
        assert row in readme, row
    assert "model name" not in readme and "cores" in readme  # the machine, parsed
    assert "| bench-week | relaysim |" in run.stdout  # the short table on stdout
    assert "Top" in (tmp_path / "profile.txt").read_text()
    header = (tmp_path / "agreement.csv").read_text().splitlines()[0]
    assert header.startswith("statistic,relaysim_mean")
