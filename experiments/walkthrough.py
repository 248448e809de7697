"""The README walkthrough: a live-looking 450 backlog, simulated forward with 550 on, read by
Postfix's own tools.

Question: an upstream's deferred queue is full of mail to unknown users because the relay
answers 450; what happens to *this* queue if the relay switches to 550 now, as the on-call
engineer will see it in pflogsumm and in Prometheus?

How (every step is a command the README shows, run here as a subprocess, its output kept):
1. the backlog: three days of walkthrough_450.toml, whose queue at 3 d relaysim lists as
   `postqueue -j` does (--snapshot-at 3d), and `relaysim qshape` of that listing (-s too);
2. forward: walkthrough_550.toml starts from that listing (its simulation.initial_queue key) and
   runs a day with 550, writing the upstream's and the relay's mail logs and the metrics;
3. Debian's pflogsumm reads the upstream's log (its Grand Totals);
4. promtool checks the metrics, backfills them into Prometheus blocks, and a Prometheus started
   on 127.0.0.1 over those blocks (stopped afterwards) answers two PromQL queries through
   `promtool query`.
Outputs: results/walkthrough/README.md (the commands and what they printed); the bulky files
(the listing, the logs, the metrics, the blocks) stay beside it, not committed
(results/walkthrough/.gitignore). Needs pflogsumm and prometheus (Debian packages; .ci/run
installs them). Usage: .venv/bin/python experiments/walkthrough.py [--out DIR]
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "results" / "walkthrough"
SCEN = "experiments/scenarios"
QUEUE_TIME = "2026-01-08T00:00:00Z"  # walkthrough_450's epoch (2026-01-05) + 3 d
RELAYSIM = [sys.executable, "-m", "sim"]


def step(shown: str, argv: list[str], ok=(0,)) -> tuple[str, str]:
    res = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if res.returncode not in ok:
        raise SystemExit(f"walkthrough: `{shown}` failed ({res.returncode}): {res.stderr}")
    return shown, res.stdout + res.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prometheus_queries(tsdb: Path, queries: list[tuple[str, list[str]]]) -> list[tuple]:
    """Prometheus on 127.0.0.1 over the backfilled blocks, asked through promtool query; it is
    stopped afterwards whatever happens."""
    port = _free_port()
    conf = Path(tempfile.mkdtemp(prefix="relaysim-prom-")) / "prometheus.yml"
    conf.write_text("global: {}\n")
    proc = subprocess.Popen(["prometheus", f"--config.file={conf}",
                             f"--storage.tsdb.path={tsdb}",
                             "--storage.tsdb.retention.time=100y",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                with urllib.request.urlopen(url + "/-/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        else:
            raise SystemExit("walkthrough: prometheus did not become ready")
        return [step(shown.replace("URL", "http://127.0.0.1:9090"),
                     ["promtool", "query", *[a.replace("URL", url) for a in argv]])
                for shown, argv in queries]
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(conf.parent, ignore_errors=True)


def grand_totals(text: str) -> str:
    """pflogsumm's Grand Totals section (messages and senders/recipients lines)."""
    body = text.split("Grand Totals", 1)[1].split("Per-Hour", 1)[0]
    return "Grand Totals" + body.rstrip()


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--out", type=Path, default=OUT, help="output folder (default "
                    "results/walkthrough; elsewhere the 550 run is given the listing with "
                    "--initial-queue, which wins over the scenario's key)")
    args = ap.parse_args(argv)
    out = args.out.resolve()
    for tool in ("pflogsumm", "promtool", "prometheus"):
        if shutil.which(tool) is None:
            raise SystemExit(f"walkthrough: {tool} not found (Debian packages pflogsumm, "
                             "prometheus; .ci/run installs them)")
    out.mkdir(parents=True, exist_ok=True)
    for name in ("backlog", "after", "tsdb"):
        shutil.rmtree(out / name, ignore_errors=True)
    w = str(out.relative_to(ROOT)) if out.is_relative_to(ROOT) else str(out)
    steps = []
    steps.append(step(f"relaysim run {SCEN}/walkthrough_450.toml --out {w}/backlog "
                      "--snapshot-at 3d",
                      [*RELAYSIM, "run", f"{SCEN}/walkthrough_450.toml", "--out",
                       f"{w}/backlog", "--snapshot-at", "3d"]))
    listing = f"{w}/backlog/postqueue-3d.json"
    steps.append(step(f"head -n 1 {listing}", ["head", "-n", "1", listing]))
    steps.append(step(f"relaysim qshape {listing} --now {QUEUE_TIME} deferred",
                      [*RELAYSIM, "qshape", listing, "--now", QUEUE_TIME, "deferred"]))
    steps.append(step(f"relaysim qshape {listing} --now {QUEUE_TIME} -s -b 6 -t 60 deferred",
                      [*RELAYSIM, "qshape", listing, "--now", QUEUE_TIME, "-s", "-b", "6",
                       "-t", "60", "deferred"]))
    given = [] if out == OUT else ["--initial-queue", listing]
    steps.append(step(" ".join([f"relaysim run {SCEN}/walkthrough_550.toml", *given,
                                f"--out {w}/after --maillog {w}/after/maillog --metrics "
                                f"{w}/after/metrics.om"]),
                      [*RELAYSIM, "run", f"{SCEN}/walkthrough_550.toml", *given, "--out",
                       f"{w}/after", "--maillog", f"{w}/after/maillog", "--metrics",
                       f"{w}/after/metrics.om"]))
    shown, text = step(f"pflogsumm {w}/after/maillog/upstream.maillog",
                       ["pflogsumm", f"{w}/after/maillog/upstream.maillog"])
    steps.append((shown + "   # its Grand Totals", grand_totals(text)))
    steps.append(step(f"promtool check metrics < {w}/after/metrics.om",
                      ["sh", "-c", f"promtool check metrics < {w}/after/metrics.om"],
                      ok=(0, 3)))
    steps.append(step(f"promtool tsdb create-blocks-from openmetrics {w}/after/metrics.om "
                      f"{w}/tsdb",
                      ["promtool", "tsdb", "create-blocks-from", "openmetrics",
                       f"{w}/after/metrics.om", f"{w}/tsdb"]))
    depth = 'postfix_showq_queue_depth{instance="upstream",queue="deferred"}'
    bounced = 'sum by (dsn) (postfix_smtp_bounced_messages_by_dsn_total{instance="upstream"})'
    queries = [
        (f"promtool query range --start=2026-01-08T00:00:00Z --end=2026-01-08T04:00:00Z "
         f"--step=1h URL '{depth}'",
         ["range", "--start=2026-01-08T00:00:00Z", "--end=2026-01-08T04:00:00Z", "--step=1h",
          "URL", depth]),
        (f"promtool query instant --time=2026-01-09T00:00:00Z URL '{bounced}'",
         ["instant", "--time=2026-01-09T00:00:00Z", "URL", bounced])]
    prom = (f"prometheus --storage.tsdb.path={w}/tsdb --storage.tsdb.retention.time=100y "
            "--web.listen-address=127.0.0.1:9090 &")
    steps.append((prom, ""))
    steps += prometheus_queries(out / "tsdb", queries)
    (out / ".gitignore").write_text("# bulky outputs of experiments/walkthrough.py, made again "
                                    "by it\nbacklog/postqueue-3d.json\nafter/maillog/\n"
                                    "after/metrics.om\ntsdb/\n*.png\n*.svg\n")
    write_readme(steps, out)
    return 0


def write_readme(steps: list[tuple[str, str]], out: Path) -> None:
    from sim.reports.output import read_run
    from sim.results import write_atomic
    from sim.units import format_time

    after = json.loads((out / "after" / "summary.json").read_text())["summary"]
    ts = read_run(out / "after").timeseries
    empty = format_time(float(ts["t_s"][(ts["deferred"] == 0).argmax()]))
    lines = ["# Walkthrough: a 450 backlog, simulated forward with 550 on", "",
             "Made by `experiments/walkthrough.py`: every number below is the output of the "
             "command above it, run from the repository's root (`relaysim` is "
             "`.venv/bin/relaysim`).", "", "## Answer", "",
             f"The backlog is {after['deferred_peak_messages']} deferred messages (qshape "
             "below). With 550 on, each bounces at its next retry: the upstream's deferred "
             f"queue is empty {empty} after the switch (the first 10-minute sample of "
             "after/timeseries.csv at 0; hourly in Prometheus below), and the day's new mail "
             "to unknown users bounces at its first attempt: "
             f"{after['recipients']['bounced']} recipients bounced in all, "
             f"{after['recipients']['delivered']} delivered, "
             f"{after['recipients']['queued_at_end']} still queued at the end (summary.json).",
             "", "## Commands and their output", ""]
    for shown, text in steps:
        lines += ["```console", f"$ {shown}"]
        text = re.sub(r"simulated in [\d.]+ s", "simulated in (wall time varies) s", text)
        lines += [x.rstrip() for x in text.rstrip("\n").splitlines()]
        lines += ["```", ""]
    write_atomic(out / "README.md", "\n".join(lines).rstrip() + "\n")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main(sys.argv[1:]))
