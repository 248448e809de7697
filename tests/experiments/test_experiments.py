"""experiments/: every script runs with --quick --out DIR and writes figures, data, README."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("seed_story", "reject_strategies", "lifetime_sweep", "outage_recovery", "capacity",
         "greylisting", "timer_phase", "exim_pairs")


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    """All quick runs at once (one worker each), then the run_all index over them."""
    out = tmp_path_factory.mktemp("results")
    procs = {}
    for name in NAMES:
        procs[name] = subprocess.Popen(
            [sys.executable, str(ROOT / "experiments" / f"{name}.py"), "--quick", "--out",
             str(out / name), "--workers", "1"], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
    logs = {name: p.communicate(timeout=120)[0] for name, p in procs.items()}
    codes = {name: p.returncode for name, p in procs.items()}
    subprocess.run([sys.executable, str(ROOT / "experiments" / "run_all.py"), "--out",
                    str(out), "--only"], check=True, timeout=60)
    return out, codes, logs


@pytest.mark.parametrize("name", NAMES)
def test_quick_run_writes_figures_data_and_readme(quick_results, name):
    out, codes, logs = quick_results
    assert codes[name] == 0, logs[name]
    folder = out / name
    readme = (folder / "README.md").read_text()
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\.png\)", readme)
    assert figures, readme
    for stem in figures:
        assert (folder / f"{stem}.png").stat().st_size > 1000
        assert (folder / f"{stem}.svg").stat().st_size > 1000
    for csv in re.findall(r"\]\(([^)]+\.csv)\)", readme):
        assert (folder / csv).read_text().count("\n") >= 2, csv
    assert (folder / "runs.csv").exists()
    assert not re.search(r"\{[^}]*\}|\bnan\b|TODO", readme), readme
    for section in ("**Question.**", "**In one line.**", "## Setup", "## Answer", "## Reproduce"):
        assert section in readme


def test_a_repeated_experiment_takes_its_runs_from_the_store_and_writes_the_same_bytes(
        quick_results, tmp_path):
    """The run store in <out>/runs/ (ignored by git): a second run of the same command runs
    nothing and rewrites every table identically."""
    out, codes, _ = quick_results
    assert codes["capacity"] == 0
    folder = tmp_path / "capacity"
    shutil.copytree(out / "capacity", folder)
    records = list((folder / "runs").glob("*.json"))
    assert len(records) == 4 and len(list((folder / "runs").glob("*.npz"))) == 4
    r = subprocess.run([sys.executable, str(ROOT / "experiments" / "capacity.py"), "--quick",
                        "--out", str(folder), "--workers", "2"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "4 settings x 1 seeds: 0 run, 4 from the run store" in r.stderr
    for csv in sorted((out / "capacity").glob("*.csv")):
        assert (folder / csv.name).read_bytes() == csv.read_bytes(), csv.name
    ignored = subprocess.run(["git", "check-ignore", "-q", "results/capacity/runs/x.json"],
                             cwd=ROOT)
    assert ignored.returncode == 0  # an experiment's store never enters the committed results


def test_run_all_indexes_every_experiment(quick_results):
    out, _, _ = quick_results
    index = (out / "README.md").read_text()
    for name in NAMES:
        assert f"({name}/README.md)" in index
    assert "Greylisting" in index
    assert not re.search(r"\*\*Answer\.\*\* \n", index)


def test_help_names_the_default_output():
    # --help documents --out's default without running anything
    r = subprocess.run([sys.executable, str(ROOT / "experiments" / "seed_story.py"), "--help"],
                       capture_output=True, text=True, check=True)
    assert "results/seed_story/" in r.stdout
