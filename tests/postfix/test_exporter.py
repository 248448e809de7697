"""postfix_exporter metrics (sim/postfix/exporter.py), checked with Debian's promtool (the
prometheus package: `promtool check metrics`, `promtool tsdb create-blocks-from openmetrics`
and `promtool tsdb dump`) and against the mail log of the same stream read with the exporters'
own line rules (the regular expressions of Hsn723/postfix_exporter's postfix_exporter.go).
Skips with the reason when promtool is absent (.ci/run installs it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from sim.model.qmgr.rules import SUSPENDED
from sim.postfix import exporter as ex
from sim.postfix import maillog as ml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import streams  # noqa: E402

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian "
                                    "package prometheus; .ci/run installs it)")
DAY = 86400.0


def metrics(batches, duration=DAY, **kw) -> str:
    w = ex.MetricsWriter(duration, **kw)
    for b in batches:
        w.write(b)
    return w.close()


def samples(text: str) -> dict[tuple[str, str], list[tuple[float, int]]]:
    """{(name, labels): [(value, timestamp), ...]} of an OpenMetrics text."""
    out: dict = {}
    for ln in text.splitlines():
        if ln.startswith("#"):
            continue
        m = re.fullmatch(r"(\w+)(\{[^}]*\})? (\S+) (\d+)", ln)
        assert m, ln
        out.setdefault((m[1], m[2] or ""), []).append((float(m[3]), int(m[4])))
    return out


def last(s, name, **labels) -> float:
    hits = [v for (n, lab), v in s.items() if n == name
            and all(f'{k}="{x}"' in lab for k, x in labels.items())]
    assert hits, (name, labels)
    return sum(v[-1][0] for v in hits)


# the exporters' rules (Hsn723 exporter/postfix_exporter.go, same in kumina for these)
_LOGLINE = re.compile(r" ?(postfix|opendkim)(/([\w_\.+/-]+))?\[\d+\]: "
                      r"((?:(warning|error|fatal|panic): )?.*)")
_REJECT = re.compile(r"^NOQUEUE: reject: RCPT from \S+: ([0-9]+) ")
_STATUS = re.compile(r", status=(\w+) ")
_DSN = re.compile(r", dsn=(\d\.\d+\.\d+)")
_DELAYS = re.compile(r", relay=(\S+), .*, delays=([0-9\.]+)/([0-9\.]+)/([0-9\.]+)/([0-9\.]+), ")


def exporter_counts(log: str) -> Counter:
    """What the exporter would count tailing this log (the families exporter.py writes)."""
    c: Counter = Counter()
    for line in log.splitlines():
        m = _LOGLINE.search(line)
        service, rest = m[3], m[4]
        if service == "smtpd":
            if rest.startswith("connect from "):
                c["smtpd_connects"] += 1
            elif rest.startswith("disconnect from "):
                c["smtpd_disconnects"] += 1
            elif ": client=" in rest:
                c["smtpd_processed"] += 1
            elif r := _REJECT.search(rest):
                c[f"rejected {r[1]}"] += 1
        elif service == "cleanup" and ": message-id=<" in rest:
            c["cleanup"] += 1
        elif service == "qmgr":
            if re.search(r":.*, size=(\d+), nrcpt=(\d+) ", rest):
                c["inserted"] += 1
            elif rest.endswith(": removed"):
                c["removed"] += 1
            elif re.search(r":.*, status=(expired|force-expired), returned to sender", rest):
                c["expired"] += 1
        elif service == "smtp" and _DELAYS.search(rest) and (s := _STATUS.search(rest)):
            c[f"status {s[1]}"] += 1
            d = _DSN.search(rest)[1]
            if s[1] == "deferred":
                c[f"deferred dsn {d}"] += 1
            elif s[1] == "bounced":
                c[f"bounced dsn {d}"] += 1
            if s[1] != "deferred":
                c["delay observations"] += 1
        elif service == "bounce" and ": sender non-delivery notification: " in rest:
            c["ndn"] += 1
    return c


@pytest.mark.parametrize("soft_bounce", [False, True], ids=["bounce", "upstream-soft-bounce"])
def test_final_counters_equal_what_the_exporter_reads_in_the_log(soft_bounce):
    batches = streams.stream(seed=3, n=120, soft_bounce=soft_bounce)
    up, relay, _ = _logs(batches)
    s = samples(metrics(batches))
    cu, cr = exporter_counts(up), exporter_counts(relay)
    assert cr["rejected 450"] > 0 and cr["rejected 550"] > 0 and cu["expired"] > 0
    assert (cu["status SOFTBOUNCE"] > 0, cu["status bounced"] > 0) == (soft_bounce,
                                                                       not soft_bounce)
    for inst, c in (("upstream", cu), ("relay", cr)):
        assert last(s, "postfix_smtpd_connects_total", instance=inst) == c["smtpd_connects"]
        assert last(s, "postfix_smtpd_disconnects_total", instance=inst) == c["smtpd_disconnects"]
        assert last(s, "postfix_smtpd_messages_processed_total", instance=inst) == \
            c["smtpd_processed"]
        assert last(s, "postfix_cleanup_messages_processed_total", instance=inst) == c["cleanup"]
        assert last(s, "postfix_qmgr_messages_inserted_recipients_count", instance=inst) == \
            c["inserted"]
    for code in ("450", "550"):
        assert last(s, "postfix_smtpd_messages_rejected_total", code=code) == \
            cr[f"rejected {code}"]
    assert last(s, "postfix_qmgr_messages_removed_total") == cu["removed"]
    assert last(s, "postfix_qmgr_messages_expired_total") == cu["expired"]
    assert last(s, "postfix_bounce_non_delivery_notification_total") == cu["ndn"]
    assert last(s, "postfix_smtp_status_deferred") == cu["status deferred"]
    for st in ("sent", "deferred", "bounced", "SOFTBOUNCE"):
        if cu[f"status {st}"]:
            assert last(s, "postfix_smtp_messages_processed_total", status=st) == \
                cu[f"status {st}"]
    for key, n in cu.items():
        if " dsn " in key:
            kind, _, d = key.split()
            assert last(s, f"postfix_smtp_{kind}_messages_by_dsn_total", dsn=d) == n, key
    assert last(s, "postfix_smtp_delivery_delay_seconds_count", stage="transmission") == \
        cu["delay observations"]
    assert last(s, "postfix_smtp_deferred_messages_total") == 0


def _logs(batches):
    import io
    up, relay = io.StringIO(), io.StringIO()
    w = ml.MaillogWriter(up, relay)
    for b in batches:
        w.write(b)
    w.close()
    return up.getvalue(), relay.getvalue(), None


def _state_at(a: np.ndarray, t: float) -> Counter:
    """Messages per queue at time t, straight from the rows (the naive way)."""
    out: Counter = Counter()
    for q in np.unique(a["qid"]):
        r = a[a["qid"] == q]
        if r["arrival"][0] > t:
            continue
        att = sorted({(int(x["tries"]), float(x["entry"]), float(x["end"]),
                       bool((r["outcome"][r["tries"] == x["tries"]] == ml.DEFERRED).any()))
                      for x in r})
        state = "incoming" if att[0][1] > t else None
        for _k, entry, end, left in att:
            if entry <= t < end:
                state = "active"
            elif end <= t:
                state = "deferred" if left else "gone"
        out[state] += 1
    return out


def test_showq_depth_and_ages_follow_the_messages():
    batches = streams.stream(seed=5, n=80)
    a = streams.concat(batches)
    s = samples(metrics(batches, interval=1800.0))
    depth = {q: [v for v, _ in s[("postfix_showq_queue_depth",
                                  f'{{queue="{q}",instance="upstream",simulated="true"}}')]]
             for q in ex.QUEUES}
    for i, t in enumerate(np.arange(0, DAY + 1, 1800.0)):
        want = _state_at(a, t)
        for q in ("incoming", "active", "deferred"):
            assert depth[q][i] == want[q], (t, q)
    # histogram count is the queue length; every age is >= 0, so le=+Inf == count
    cnt = s[("postfix_showq_message_age_seconds_count",
             '{queue="deferred",instance="upstream",simulated="true"}')]
    assert [v for v, _ in cnt] == depth["deferred"] and max(depth["deferred"]) > 0


def test_same_stream_same_bytes_timestamps_and_labels():
    b = streams.stream(seed=2)
    t1 = metrics(b, labels={"scenario": "seed_story", "seed": "2"})
    assert t1 == metrics(b, labels={"scenario": "seed_story", "seed": "2"})
    assert t1.endswith("# EOF\n")
    s = samples(t1)
    for (_name, lab), pts in s.items():
        assert 'simulated="true"' in lab and 'scenario="seed_story"' in lab
        ts = [t for _, t in pts]
        assert ts == sorted(ts) and ts[0] == int(ml.DEFAULT_EPOCH) and len(ts) == 25
    # families contiguous: a family's samples never resume after another family's
    names = [ln.split("{")[0] for ln in t1.splitlines() if not ln.startswith("#")]
    fam = [re.sub(r"_(bucket|count|sum)$", "", n) for n in names]
    runs = [f for i, f in enumerate(fam) if i == 0 or f != fam[i - 1]]
    assert len(runs) == len(set(runs))


def test_bad_arguments():
    with pytest.raises(ValueError):
        ex.MetricsWriter(DAY, interval=0)
    with pytest.raises(ValueError, match="ATTEMPT"):
        ex.MetricsWriter(DAY).write(np.zeros(1, dtype=[("x", "i8")]))


@needs_promtool
def test_promtool_check_metrics_accepts_it(tmp_path):
    text = metrics(streams.stream(seed=3, n=120))
    res = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                         text=True, timeout=120)
    problems = set((res.stdout + res.stderr).strip().splitlines())
    # the only lint problem is kumina's own name (a counter without _total), kept on purpose
    assert problems == {'postfix_smtp_status_deferred counter metrics should have "_total" '
                        'suffix'}, problems
    assert res.returncode in (0, 3)  # 3: lint problems only; 1 would be a parse error


@needs_promtool
def test_promtool_backfills_it_and_dump_shows_the_values(tmp_path):
    batches = streams.stream(seed=3, n=120)
    text = metrics(batches)
    (tmp_path / "sim.om").write_text(text)
    res = subprocess.run([PROMTOOL, "tsdb", "create-blocks-from", "openmetrics",
                          str(tmp_path / "sim.om"), str(tmp_path / "tsdb")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    (tmp_path / "tsdb" / "wal").mkdir(exist_ok=True)  # dump wants a WAL folder
    res = subprocess.run([PROMTOOL, "tsdb", "dump", "--match",
                          '{__name__="postfix_smtpd_messages_rejected_total",code="450"}',
                          str(tmp_path / "tsdb")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    pts = sorted((int(t), float(v)) for v, t in re.findall(r"\} (\S+) (\d+)$", res.stdout, re.M))
    assert len(pts) == 25 and pts[0][0] == int(ml.DEFAULT_EPOCH) * 1000
    s = samples(text)
    assert pts[-1][1] == last(s, "postfix_smtpd_messages_rejected_total", code="450") > 0


def test_showq_states_of_one_message():
    # arrival 0, first entry 100 (incoming before), active to 4000, deferred to 8000, active
    # to 8500, then sent and removed
    rows = [(0, 0, -1, ml.ORDINARY, 5000, 1, 0.0, 100.0, 150.0, 4000.0, ml.DEFERRED, 450, 1),
            (0, 0, -1, ml.ORDINARY, 5000, 1, 0.0, 8000.0, 8100.0, 8500.0, ml.SENT, 250, 2)]
    s = samples(metrics([np.array(rows, dtype=ml.ATTEMPT)], duration=10_000.0,
                        interval=50.0))
    t = np.arange(0, 10_001, 50.0)

    def depth(q):
        return np.array([v for v, _ in s[("postfix_showq_queue_depth",
                                          f'{{queue="{q}",instance="upstream",'
                                          'simulated="true"}')]])
    assert (depth("incoming") == ((t >= 0) & (t < 100))).all()
    assert (depth("active") == (((t >= 100) & (t < 4000)) | ((t >= 8000) & (t < 8500)))).all()
    assert (depth("deferred") == ((t >= 4000) & (t < 8000))).all()
    age_sum = [v for v, _ in s[("postfix_showq_message_age_seconds_sum",
                                '{queue="deferred",instance="upstream",simulated="true"}')]]
    assert age_sum[t.tolist().index(5000.0)] == 5000
    le = s[("postfix_showq_message_age_seconds_bucket",
            '{queue="deferred",instance="upstream",simulated="true",le="10000"}')]
    assert le[t.tolist().index(5000.0)][0] == 1
    assert last(s, "postfix_qmgr_messages_removed_total") == 1


def test_a_message_queued_before_the_run_is_deferred_until_its_first_attempt():
    """A message of an initial queue (arrived at -3000, deferred before the run: its first
    attempt in the stream is its second) is deferred from the run's start to that entry, not
    incoming."""
    rows = [(0, 0, -1, ml.ORDINARY, 5000, 1, -3000.0, 600.0, 600.0, 601.0, ml.BOUNCED, 550, 2)]
    s = samples(metrics([np.array(rows, dtype=ml.ATTEMPT)], duration=1000.0, interval=100.0))
    t = np.arange(0, 1001, 100.0)

    def depth(q):
        return np.array([v for v, _ in s[("postfix_showq_queue_depth",
                                          f'{{queue="{q}",instance="upstream",'
                                          'simulated="true"}')]])
    assert (depth("deferred") == (t < 600)).all() and not depth("incoming").any()
    age_sum = [v for v, _ in s[("postfix_showq_message_age_seconds_sum",
                                '{queue="deferred",instance="upstream",simulated="true"}')]]
    assert age_sum[0] == 3000 and age_sum[5] == 3500


# --- the real exporter: Debian's prometheus-postfix-exporter (kumina 0.3.0) tailing our log ----

import os  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402

EXPORTER = shutil.which("prometheus-postfix-exporter") or next(
    (p for p in ("/opt/relaysim-tools/postfix-exporter/usr/bin/prometheus-postfix-exporter",)
     if os.access(p, os.X_OK)), None)
needs_exporter = pytest.mark.skipif(EXPORTER is None, reason="prometheus-postfix-exporter not "
                                    "found (.ci/run unpacks Debian's package into "
                                    "/opt/relaysim-tools/postfix-exporter)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for ln in text.splitlines():
        if ln.startswith("postfix_") and " " in ln:
            k, v = ln.rsplit(" ", 1)
            out[k] = float(v)
    return out


def _lines_read(m: dict[str, float]) -> float:
    """Lines the exporter has taken in: each line it reads moves exactly one of these (a
    delivery line observes four stages, a qmgr insert two histograms: counted once)."""
    one = ("postfix_smtpd_connects_total", "postfix_smtpd_disconnects_total",
           "postfix_cleanup_messages_processed_total", "postfix_qmgr_messages_removed_total",
           "postfix_qmgr_messages_inserted_size_bytes_count")
    return (sum(m.get(k, 0) for k in one)
            + sum(v for k, v in m.items() if k.startswith(("postfix_smtpd_messages_processed",
                                                            "postfix_smtpd_messages_rejected",
                                                            "postfix_unsupported"))
                  and 'service=""' not in k)
            + m.get('postfix_smtp_delivery_delay_seconds_count{stage=""}', 0) / 4)


def _real_exporter_reads(log: str, tmp_path: Path, name: str) -> dict[str, float]:
    """Start the real exporter on an empty file on 127.0.0.1, append `log`, scrape once it has
    taken in every line; the exporter (started here) is always stopped."""
    f = tmp_path / f"{name}.maillog"
    f.write_text("")
    port = _free_port()
    proc = subprocess.Popen([EXPORTER, f"--web.listen-address=127.0.0.1:{port}",
                             f"--postfix.logfile_path={f}",
                             f"--postfix.showq_path={tmp_path / 'no-showq'}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                _scrape(port)
                break
            except OSError:
                assert time.monotonic() < deadline, "exporter did not come up"
                time.sleep(0.1)
        # the tailer starts at the file's end: append non-Postfix marker lines until it counts
        # one (under service=""), so none of the log is lost before it looks
        marker = 'postfix_unsupported_log_entries_total{service=""}'
        while _scrape(port).get(marker, 0) == 0:
            assert time.monotonic() < deadline, "the exporter never read its file"
            with f.open("a") as out:
                out.write("relaysim test marker\n")
            time.sleep(0.2)
        with f.open("a") as out:
            out.write(log)
        n = log.count("\n")
        while True:
            seen = _scrape(port)
            if _lines_read(seen) == n:
                return seen
            assert time.monotonic() < deadline + 40, f"read {_lines_read(seen)} of {n} lines"
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@needs_exporter
def test_real_exporter_counts_what_we_export(tmp_path):
    batches = streams.stream(seed=3, n=120)
    up, relay, _ = _logs(batches)
    ours = samples(metrics(batches))
    got = _real_exporter_reads(up, tmp_path, "upstream")
    # every upstream line is understood, except what 0.3.0 does not know (bounce, expiry, the
    # retry service's `delivery temporarily suspended` lines for a dead destination)
    unsupported = {k: v for k, v in got.items() if k.startswith("postfix_unsupported")
                   and 'service=""' not in k}  # the test's own marker lines
    suspended = int((streams.concat(batches)["code"] == SUSPENDED).sum())
    assert suspended > 0 and unsupported == {
        'postfix_unsupported_log_entries_total{service="bounce"}':
            last(ours, "postfix_bounce_non_delivery_notification_total"),
        'postfix_unsupported_log_entries_total{service="qmgr"}':
            last(ours, "postfix_qmgr_messages_expired_total"),
        'postfix_unsupported_log_entries_total{service="error"}': suspended}
    for fam in ("postfix_smtpd_connects_total", "postfix_smtpd_disconnects_total",
                "postfix_cleanup_messages_processed_total", "postfix_qmgr_messages_removed_total"):
        assert got[fam] == last(ours, fam, instance="upstream"), fam
    assert got["postfix_qmgr_messages_inserted_size_bytes_count"] == \
        last(ours, "postfix_qmgr_messages_inserted_size_bytes_count", instance="upstream")
    assert got["postfix_smtp_status_deferred"] == last(ours, "postfix_smtp_status_deferred")
    # kumina observes all four stages of every delivery line under stage="" (formats.md 1c)
    lines = last(ours, "postfix_smtp_messages_processed_total")
    assert got['postfix_smtp_delivery_delay_seconds_count{stage=""}'] == 4 * lines
    got = _real_exporter_reads(relay, tmp_path, "relay")
    # a reject after an accepted recipient carries the queue id: the exporter does not know it
    late = len(re.findall(r": [0-9A-F]+: reject: RCPT", relay))
    assert late > 0 and {k: v for k, v in got.items() if k.startswith("postfix_unsupported")
                         and 'service=""' not in k} \
        == {'postfix_unsupported_log_entries_total{service="smtpd"}': late}
    for code in ("450", "550"):
        assert got[f'postfix_smtpd_messages_rejected_total{{code="{code}"}}'] == \
            last(ours, "postfix_smtpd_messages_rejected_total", code=code) > 0
    assert got['postfix_smtpd_messages_processed_total{sasl_method=""}'] == \
        last(ours, "postfix_smtpd_messages_processed_total", instance="relay")
    for fam in ("postfix_smtpd_connects_total", "postfix_smtpd_disconnects_total"):
        assert got[fam] == last(ours, fam, instance="relay"), fam


PROMETHEUS = shutil.which("prometheus")


@needs_promtool
@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (Debian package "
                    "prometheus; .ci/run installs it)")
def test_prometheus_serves_the_backfill_recipe(tmp_path):
    """The README's recipe end to end: promtool backfill, Prometheus on 127.0.0.1 with a long
    retention (the simulated epoch is in the past), one PromQL query of the simulated incident;
    the Prometheus started here is always stopped."""
    batches = streams.stream(seed=3, n=120)
    text = metrics(batches)
    (tmp_path / "sim.om").write_text(text)
    subprocess.run([PROMTOOL, "tsdb", "create-blocks-from", "openmetrics",
                    str(tmp_path / "sim.om"), str(tmp_path / "data")], check=True,
                   capture_output=True, timeout=300)
    (tmp_path / "prometheus.yml").write_text("global: {}\n")
    port = _free_port()
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'data'}",
                             "--storage.tsdb.retention.time=100y",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        at = int(ml.DEFAULT_EPOCH) + 5 * 3600
        q = ('sum by (instance) (increase(postfix_smtpd_messages_rejected_total{code="450",'
             'simulated="true"}[1h]))')
        url = (f"http://127.0.0.1:{port}/api/v1/query?time={at}&query="
               + urllib.request.quote(q))
        deadline = time.monotonic() + 60
        while True:
            try:
                body = json.loads(urllib.request.urlopen(url, timeout=5).read())
                if body["data"]["result"]:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "prometheus did not answer"
            time.sleep(0.5)
        got = float(body["data"]["result"][0]["value"][1])
        s = samples(text)
        pts = s[("postfix_smtpd_messages_rejected_total",
                 '{code="450",instance="relay",simulated="true"}')]
        by_t = {t: v for v, t in pts}
        # increase() over exactly two samples one hour apart is their difference
        assert got == by_t[at] - by_t[at - 3600] > 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
