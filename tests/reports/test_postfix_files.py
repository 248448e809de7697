"""relaysim run --maillog/--metrics/--snapshot-at: the attempt stream of a real run through the
CLI, read by the real tools (pflogsumm, promtool) and by relaysim's own readers."""

import json
import re
import shutil
import subprocess
import sys

import pytest

from sim.postfix import maillog, postqueue

SCENARIO = """\
[simulation]
duration = "2d"
[[senders]]
rate = "3000/d"
stop = "30h"
unknown_recipient_fraction = 0.3
forged_sender_fraction = 0.3
recipients_per_message = 2
[upstream]
maximal_queue_lifetime = "12h"
bounce_queue_lifetime = "12h"
[relay]
unknown_local_recipient_reject_code = 450
outages = [{start = "10h", duration = "20m"}]
"""


def run(tmp_path, *extra):
    scen = tmp_path / "s.toml"
    scen.write_text(SCENARIO)
    return subprocess.run([sys.executable, "-m", "sim", "run", str(scen), "--out",
                           str(tmp_path / "out"), "-q", *extra],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pf")
    proc = run(tmp, "--maillog", str(tmp / "log"), "--metrics", str(tmp / "m.om"),
               "--snapshot-at", "1d")
    assert proc.returncode == 0, proc.stderr
    return tmp, json.loads((tmp / "out" / "summary.json").read_text())


def _summary(s):
    return s.get("summary", s)


@pytest.mark.skipif(shutil.which("pflogsumm") is None,
                    reason="pflogsumm not installed (Debian's pflogsumm; .ci/run installs it)")
def test_pflogsumm_totals_equal_the_runs_summary(done):
    tmp, s = done
    s = _summary(s)
    text = subprocess.run(["pflogsumm", str(tmp / "log" / "upstream.maillog")],
                          capture_output=True, text=True, check=True).stdout
    total = {k: int(v) for v, k in re.findall(r"^\s+(\d+)\s+(received|delivered|bounced)\b",
                                               text, re.M)}
    assert total["received"] == s["messages"]["received"]
    # pflogsumm counts messages; with 2 recipients each, compare recipients through our reader
    rows = maillog.read_attempts(tmp / "log" / "upstream.maillog")
    assert (rows["outcome"] == maillog.SENT).sum() == s["recipients"]["delivered"]
    assert (rows["outcome"] == maillog.EXPIRED).sum() == s["recipients"]["expired"] > 0
    assert rows.size == s["attempts"]
    assert total["delivered"] > 0


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool not installed (Debian's prometheus; .ci/run installs it)")
def test_promtool_accepts_the_metrics(done, tmp_path):
    tmp, _ = done
    proc = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics",
                           str(tmp / "m.om"), str(tmp_path / "tsdb")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp / "m.om").read_text().rstrip().endswith("# EOF")


def test_snapshots_list_the_queue_as_postqueue_does(done):
    tmp, s = done
    snap = postqueue.read_postqueue(tmp / "out" / "postqueue-2d.json")
    # at the end the queue holds what the summary says is still queued (sender stopped at 30 h,
    # lifetime 12 h: nothing)
    assert len(snap.queue_id) == 0 == _summary(s)["recipients"]["queued_at_end"]
    day = postqueue.read_postqueue(tmp / "out" / "postqueue-1d.json")
    queues = [postqueue.QUEUES[q] for q in day.queue.tolist()]
    assert len(day.queue_id) > 100 and set(queues) <= {"deferred", "active", "incoming"}
    # the same number of deferred messages as the run's own series at that sample
    import csv
    rows = list(csv.DictReader((tmp / "out" / "timeseries.csv").open()))
    at = next(r for r in rows if float(r["t_s"]) == 86400.0)
    assert queues.count("deferred") == float(at["deferred"]) > 100


@pytest.mark.parametrize("extra, key", [
    (["--metrics", "/proc/nope/m.om"], "--metrics"),
    (["--snapshot-at", "9d"], "--snapshot-at"),
    (["--snapshot-at", "soon"], "--snapshot-at"),
    (["--epoch", "yesterday"], "--epoch"),
    (["--maillog-sample", "0"], "--maillog-sample"),
    (["--maillog-window", "1d"], "--maillog-window"),
], ids=["unwritable", "after-the-run", "not-a-time", "bad-epoch", "no-sample", "one-time"])
def test_bad_format_options_are_one_line_before_simulating(tmp_path, extra, key):
    proc = run(tmp_path, *extra)
    assert proc.returncode == 2 and key in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_maillog_inside_the_run_folder_survives_its_replacement(tmp_path):
    """The run folder is replaced whole at the end of a run: a mail log asked for inside it
    is written beside it and moved in, and a second run replaces both."""
    for _ in range(2):
        proc = run(tmp_path, "--maillog", str(tmp_path / "out" / "maillog"))
        assert proc.returncode == 0, proc.stderr
        assert sorted(p.name for p in (tmp_path / "out" / "maillog").iterdir()) == [
            "relay.maillog", "upstream.maillog"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "s.toml"]
