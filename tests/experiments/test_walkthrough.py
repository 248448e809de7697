"""experiments/walkthrough.py: the README walkthrough, run into a scratch folder; what the
real tools print agrees with relaysim's own files. Skips without pflogsumm and prometheus
(Debian packages; .ci/run installs them)."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = all(shutil.which(t) for t in ("pflogsumm", "promtool", "prometheus"))


@pytest.mark.skipif(not TOOLS, reason="pflogsumm/promtool/prometheus not installed (.ci/run "
                    "installs the Debian packages pflogsumm and prometheus)")
def test_the_walkthrough_tells_one_story(tmp_path):
    out = tmp_path / "walk"
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "walkthrough.py"),
                           "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    text = (out / "README.md").read_text()
    backlog = sum(1 for _ in (out / "backlog" / "postqueue-3d.json").open())
    after = json.loads((out / "after" / "summary.json").read_text())["summary"]
    assert "--initial-queue" in text  # elsewhere than results/: the option wins over the key
    # qshape of the listing counts every listed message
    assert re.search(rf"^ +TOTAL {backlog} ", text, re.M)
    # the 550 run starts with the whole listing deferred, and the metrics say so at 00:00
    assert after["deferred_peak_messages"] == backlog > 1000
    depth = re.findall(r"^(\d+) @\[(\d+)\]$", text, re.M)
    assert depth[0] == (str(backlog), "1767830400") and depth[-1][0] == "0"
    # pflogsumm's totals are the run's: new mail received, and every bounce
    grand = text.split("Grand Totals", 1)[1]
    assert int(re.search(r"(\d+)\s+bounced", grand)[1]) == after["recipients"]["bounced"]
    assert int(re.search(r"(\d+)\s+delivered", grand)[1]) == after["recipients"]["delivered"]
    received = after["messages"]["received"] - backlog  # the listing's arrived before the log
    assert int(re.search(r"(\d+)\s+received", grand)[1]) == received
    # the PromQL instant query of bounces by DSN is the same count
    assert f'{{dsn="5.1.1"}} => {after["recipients"]["bounced"]} ' in text
