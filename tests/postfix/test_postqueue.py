"""postqueue -j in and out (sim/postfix/postqueue.py), on real Postfix 3.7 output.

tests/data/postqueue/running.jsonl and stopped.jsonl are real `postqueue -j` output written by
experiments/postqueue_fixture.py (a private upstream + relay pair on 127.0.0.1, relay answering
450 for unknown users, one destination refusing connections, one message held, one forced to
expire, a null sender, a message in maildrop of the stopped instance). The live test rebuilds
such a queue and runs the real postqueue on it (root and Postfix needed, else skipped).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sim.errors import ScenarioError
from sim.postfix import postqueue as pq

DATA = Path(__file__).resolve().parents[1] / "data" / "postqueue"
RUNNING, STOPPED = DATA / "running.jsonl", DATA / "stopped.jsonl"


def test_reads_the_real_listing():
    s = pq.read_postqueue(RUNNING)
    assert len(s) == 7 and s.first[-1] == 8
    assert list(np.array(pq.QUEUES)[s.queue]).count("hold") == 1
    assert s.in_queue("deferred").sum() == 6
    assert s.forced_expire.sum() == 1
    # the null sender shows as MAILER-DAEMON in real output
    assert s.null_sender.sum() == 1 and s.sender[s.null_sender][0] == ""
    assert s.time == s.arrival.max() and (s.age >= 0).all()
    big = int(np.argmax(s.size))
    assert s.nrcpt[big] == 2  # carol was delivered; unknown7 and unknown8 are left


@pytest.mark.parametrize("text, scope, code", [
    (None, "none", 0),
    ("host 127.0.0.1[127.0.0.1] said: 450 4.1.1 <u@example.test>: Recipient address rejected: "
     "User unknown in local recipient table (in reply to RCPT TO command)", "recipient", 450),
    ("host mx[192.0.2.1] said: 550 5.1.1 <u@d>: User unknown (in reply to RCPT TO command)",
     "recipient", 550),
    ("host mx[192.0.2.1] said: 452 4.3.1 Insufficient system storage (in reply to MAIL FROM "
     "command)", "message", 452),
    ("connect to 127.0.0.1[127.0.0.1]:48803: Connection refused", "site", 0),
    ("lost connection with mx[192.0.2.1] while receiving the initial server greeting", "site", 0),
    ("host mx[192.0.2.1] refused to talk to me: 421 4.3.2 Service shutting down", "site", 421),
    ("delivery temporarily suspended: connect to mx[192.0.2.1]:25: Connection refused", "site",
     0),
    ("something else", "other", 0),
], ids=["absent", "450-rcpt", "550-rcpt", "452-mail", "refused", "lost", "greeting-421",
        "suspended", "other"])
def test_classify_reason(text, scope, code):
    assert pq.classify_reason(text) == (pq.SCOPES.index(scope), code)


def test_real_reasons_classified():
    s = pq.read_postqueue(RUNNING)
    scopes = [pq.SCOPES[x] for x in s.scope]
    assert scopes.count("site") == 1 and scopes.count("recipient") == 7
    assert set(s.code[s.scope == 1]) == {450}
    m = pq.read_postqueue(STOPPED)
    assert pq.SCOPES[m.scope[m.first[m.in_queue("maildrop").argmax()]]] == "none"


@pytest.mark.parametrize("path", [RUNNING, STOPPED], ids=["running", "stopped"])
def test_round_trip_gives_the_same_bytes(path, tmp_path):
    s = pq.read_postqueue(path)
    out = tmp_path / "q.jsonl"
    pq.write_postqueue(s, out)
    assert out.read_bytes() == path.read_bytes()


def test_unknown_members_ignored_and_time_given():
    obj = json.loads(RUNNING.read_text().splitlines()[0])
    obj["future_member"] = {"x": 1}
    del obj["forced_expire"]  # Postfix before 3.5
    s = pq.parse_postqueue([json.dumps(obj)], time=obj["arrival_time"] + 3600)
    assert len(s) == 1 and s.age[0] == 3600 and not s.forced_expire[0]


def test_empty_queue():
    s = pq.parse_postqueue(["", "\n"])
    assert len(s) == 0 and s.first.tolist() == [0] and s.time == 0


def test_malformed_line_names_its_number():
    lines = RUNNING.read_text().splitlines()
    lines[3] = lines[3][:40]
    with pytest.raises(ScenarioError,
                       match=r"line 4 = .*: not a JSON object; expected a JSON object per line"):
        pq.parse_postqueue(lines, "q.jsonl")
    bad = json.loads(lines[0])
    bad["queue_name"] = "deffered"
    with pytest.raises(ScenarioError,
                       match=r"q.jsonl line 2 = .*: queue_name .deffered. is not a Postfix queue"):
        pq.parse_postqueue([lines[0], json.dumps(bad)], "q.jsonl")
    del bad["recipients"]
    bad["queue_name"] = "deferred"
    with pytest.raises(ScenarioError, match=r"line 2 = .*: recipients missing"):
        pq.parse_postqueue([lines[0], json.dumps(bad)], "q.jsonl")


@pytest.mark.parametrize("first, hint", [
    ("-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------", "postqueue -p"),
    ("Nov 25 19:19:32 upstream postfix/smtpd[1]: connect from x[127.0.0.1]", ""),
    ('{"some": "json"}', ""),
], ids=["mailq", "maillog", "other-json"])
def test_not_postqueue_output_is_one_line(first, hint, tmp_path):
    p = tmp_path / "x.txt"
    p.write_text(first + "\n")
    with pytest.raises(ScenarioError) as e:
        pq.read_postqueue(p)
    msg = str(e.value)
    assert "\n" not in msg and "not postqueue -j output" in msg and hint in msg


def test_read_mtimes(tmp_path):
    p = tmp_path / "m.txt"
    p.write_text("87F9620C03D 1796304410.5\n\n921AC20C0B5 1796304411\n")
    assert pq.read_mtimes(p) == {"87F9620C03D": 1796304410.5, "921AC20C0B5": 1796304411.0}
    p.write_text("87F9620C03D\n")
    with pytest.raises(ScenarioError, match="line 1"):
        pq.read_mtimes(p)


def _cannot_run_postfix() -> str | None:
    for tool in ("postfix", "postqueue", "postsuper", "sendmail"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            return f"{tool} not installed"
    if os.geteuid() != 0:
        return "needs root (private Postfix instances)"
    return None


@pytest.mark.postfix
@pytest.mark.skipif(_cannot_run_postfix() is not None, reason=str(_cannot_run_postfix()))
def test_live_postqueue_reads_back(tmp_path, monkeypatch):
    """Rebuild the fixture with real Postfix into tmp_path and read what postqueue printed."""
    exp = Path(__file__).resolve().parents[2] / "experiments"
    monkeypatch.syspath_prepend(str(exp))
    res = subprocess.run([sys.executable, str(exp / "postqueue_fixture.py"), str(tmp_path),
                          "--quick"],
                         capture_output=True, text=True, timeout=240, cwd=exp)
    assert res.returncode == 0, res.stderr[-2000:]
    live = pq.read_postqueue(tmp_path / "running.jsonl")
    saved = pq.read_postqueue(RUNNING)
    assert len(live) == len(saved)
    assert sorted(live.queue.tolist()) == sorted(saved.queue.tolist())
    assert sorted(live.scope.tolist()) == sorted(saved.scope.tolist())
    # sizes include Postfix's Received: header (queue id, date): equal to a few bytes
    assert np.abs(np.sort(live.size) - np.sort(saved.size)).max() <= 8
    assert live.null_sender.sum() == 1 and live.forced_expire.sum() == 1
    # the real qshape on the same live queue prints what format_snapshot prints
    from sim.postfix.qshape import format_snapshot
    from tests.postfix.test_qshape import _options
    for run in json.loads((tmp_path / "qshape.json").read_text()):
        queues, opts = _options(run["args"])
        # qshape reads its clock a moment after ours: the same second or the next
        tables = {format_snapshot(pq.read_postqueue(tmp_path / "running.jsonl", time=t),
                                  queues, **opts) for t in (int(run["now"]), int(run["now"]) + 1)}
        assert run["output"] in tables, run["args"]


# --- snapshots of a simulated queue ------------------------------------------------------------

sys.path.insert(0, str(Path(__file__).resolve().parent))
import streams  # noqa: E402

from sim.postfix import maillog as ml  # noqa: E402


def _snapshots(batches, times):
    w = pq.SnapshotWriter(times)
    for b in batches:
        w.write(b)
    return w.close()


def test_snapshot_of_one_message_through_its_queues():
    rows = [(4, 0, -1, ml.NULL, 900, 2, 0.0, 100.0, 150.0, 4000.0, ml.DEFERRED, 450, 1),
            (4, 1, 7, ml.NULL, 900, 2, 0.0, 100.0, 150.0, 4000.0, ml.SENT, 250, 1),
            (4, 0, -1, ml.NULL, 900, 2, 0.0, 8000.0, 8100.0, 8500.0, ml.DEFERRED, 0, 2)]
    snaps = _snapshots([np.array(rows, dtype=ml.ATTEMPT)], [50, 1000, 5000, 8200, 9000])
    queues = [[pq.QUEUES[q] for q in s.queue] for s in snaps]
    assert queues == [["incoming"], ["active"], ["deferred"], ["active"], ["deferred"]]
    inc, act, dfr, act2, dfr2 = snaps
    assert inc.nrcpt.tolist() == [2] and inc.delay_reason.tolist() == ["", ""]
    assert act.nrcpt.tolist() == [2] and dfr.nrcpt.tolist() == [1]
    assert pq.SCOPES[dfr.scope[0]] == "recipient" and dfr.code[0] == 450
    assert "User unknown in local recipient table" in dfr.delay_reason[0]
    assert act2.delay_reason[0] == dfr.delay_reason[0]  # in active: the previous reason
    assert pq.SCOPES[dfr2.scope[0]] == "site"
    assert dfr.null_sender[0] and dfr.time == ml.DEFAULT_EPOCH + 5000 and dfr.age[0] == 5000
    assert dfr.queue_id[0] == ml.queue_id(ml.DEFAULT_EPOCH, ml.INODE_BASE + 8)


def test_snapshot_matches_the_stream_and_reads_back(tmp_path):
    batches = streams.stream(seed=5, n=80)
    a = streams.concat(batches)
    times = np.arange(0, 86401, 1800.0)
    snaps = _snapshots(batches, times)
    for t, s in zip(times, snaps, strict=True):
        # deferred messages at t: last attempt ended at or before t left a recipient deferred
        # and the next attempt has not entered yet
        want = 0
        for q in np.unique(a["qid"]):
            r = a[a["qid"] == q]
            done = r[r["end"] <= t]
            if len(done) == 0 or (r["entry"][r["tries"] > done["tries"].max()] <= t).any():
                continue
            want += bool((done["outcome"][done["tries"] == done["tries"].max()]
                          == ml.DEFERRED).any())
        assert s.in_queue("deferred").sum() == want, t
        p = tmp_path / f"q{int(t)}.jsonl"
        pq.write_postqueue(s, p)
        back = pq.read_postqueue(p, time=s.time)
        assert back.queue_id.tolist() == s.queue_id.tolist()
        assert back.scope.tolist() == s.scope.tolist() and back.first.tolist() == s.first.tolist()
    assert max(s.in_queue("deferred").sum() for s in snaps) > 10


def test_snapshot_lines_have_the_members_of_real_lines():
    real = json.loads(RUNNING.read_text().splitlines()[0])
    snaps = _snapshots(streams.stream(seed=5, n=80), [7200.0])
    ours = json.loads(next(iter(pq.format_postqueue(snaps[0]))))
    assert list(ours) == list(real)
    assert list(ours["recipients"][0]) == list(real["recipients"][0])


# --- wake-up times and users -------------------------------------------------------------------

def _one_deferred(arrival: float, t: float) -> pq.QueueSnapshot:
    line = json.loads(RUNNING.read_text().splitlines()[1])
    line["arrival_time"] = arrival
    return pq.parse_postqueue([json.dumps(line)], time=t)


@pytest.mark.parametrize("phase, last_attempt_age, next_age", [
    (1, 4799, 8999),    # arrival just after a scan (mta-semantics.md 2.4, first column)
    (150, 4650, 8850),  # arrival mid-grid (second column)
], ids=["after-scan", "mid-grid"])
def test_rebuild_wakeup_follows_postfix_schedule(phase, last_attempt_age, next_age):
    a = 1_796_000_000
    s = _one_deferred(a, a + 5000)
    wake, nxt = pq.rebuild_wakeup(s, grid=a - phase)
    assert wake[0] == a + last_attempt_age + 4000 and nxt[0] == a + next_age
    # the grid's phase is unknown: any phase moves the next attempt by less than queue_run_delay
    # (an attempt near the snapshot time may move it by one retry interval: 30000 s here)
    for t, steps in ((5000, (0,)), (200_000, (0,)), (30_000, (-4200, 0, 4200))):
        s = _one_deferred(a, a + t)
        ref = pq.rebuild_wakeup(s)[1][0]
        for g in range(0, 300, 7):
            n = pq.rebuild_wakeup(s, grid=a - g)[1][0]
            assert min(abs(n - ref - k) for k in steps) < 300, (t, g)


def test_rebuild_wakeup_only_deferred_and_takes_real_mtimes():
    s = pq.read_postqueue(RUNNING, time=pq.read_postqueue(RUNNING).time + 3600)
    wake, nxt = pq.rebuild_wakeup(s)
    assert np.isnan(wake[s.in_queue("hold")]).all()
    d = s.in_queue("deferred")
    assert (wake[d] > s.time - 4000).all() and (nxt[d] >= wake[d] - 1).all()
    assert (nxt[d] > s.time).all()
    qid = str(s.queue_id[d][0])
    wake2, nxt2 = pq.rebuild_wakeup(s, mtimes={qid: s.time + 123.0})
    i = int(np.flatnonzero(d)[0])
    assert wake2[i] == s.time + 123 and s.time + 123 - 1 <= nxt2[i] < s.time + 123 + 300


def test_recipient_users():
    s = pq.read_postqueue(RUNNING)
    assert (pq.recipient_users(s) == -1).all()  # the lab's unknown users, and bob@down.test
    u = pq.recipient_users(s, known={"BOB@down.test": 3})
    assert u[s.address == "bob@down.test"].tolist() == [3]
    snaps = _snapshots(streams.stream(seed=5, n=80), [600.0, 1200.0])
    for snap in snaps:
        users = pq.recipient_users(snap)
        assert ((users >= 0) == np.char.startswith(snap.address.astype(str), "user")).all()
