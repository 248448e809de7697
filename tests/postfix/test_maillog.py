"""The mail log writer and reader (sim/postfix/maillog.py), checked with Debian's pflogsumm and
with the live-Postfix lab's own parser (experiments/postfix_lab.py).

The attempt stream comes from tests/postfix/streams.py (a small generator with 450, 550,
outages, expiry and several recipients per message). pflogsumm must count, in each host's
file, exactly what the stream holds; the tests skip with the reason when pflogsumm is absent
(.ci/run installs it).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sim.postfix import maillog as ml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import streams  # noqa: E402

EXP = Path(__file__).resolve().parents[2] / "experiments"
PFLOGSUMM = shutil.which("pflogsumm") or (
    "/usr/sbin/pflogsumm" if Path("/usr/sbin/pflogsumm").exists() else None)
needs_pflogsumm = pytest.mark.skipif(PFLOGSUMM is None, reason="pflogsumm not installed "
                                     "(Debian package pflogsumm; .ci/run installs it)")


@pytest.mark.parametrize("seconds, text", [
    (0, "0"), (0.0001, "0"), (0.004, "0"), (0.005, "0.01"), (0.0028, "0"), (0.013, "0.01"),
    (0.045, "0.05"), (0.1234, "0.12"), (0.999, "1"), (1.0, "1"), (1.04, "1"), (1.06, "1.1"),
    (9.96, "10"), (12.4, "12"), (544.49, "544"), (86400, "86400"),
], ids=lambda v: str(v))
def test_format_tv(seconds, text):
    # delay_logging_resolution_limit = 2 (the default); format_tv.c rounds half up
    assert ml.format_tv(seconds) == text


def test_format_tv_resolution_limit_6():
    # the lab's main.cf sets delay_logging_resolution_limit = 6: its log shows 0.0028, 0.00042
    assert ml.format_tv(0.0028, max_dig=6) == "0.0028"
    assert ml.format_tv(0.00042, max_dig=6) == "0.00042"
    assert ml.format_tv(0.013, max_dig=6) == "0.013"


def test_queue_ids_unique_and_decoded():
    a = streams.concat(streams.stream(n=200))
    ids = {ml.queue_id(ml.DEFAULT_EPOCH + t, ml.INODE_BASE + 2 * q)
           for q, t in zip(a["qid"].tolist(), a["arrival"].tolist(), strict=True)}
    assert len(ids) == len(np.unique(a["qid"]))
    for q in (0, 1, 77, 10**8):
        s = ml.queue_id(ml.DEFAULT_EPOCH + 0.123456, ml.INODE_BASE + 2 * q)
        assert re.fullmatch(r"[0-9A-F]{11,}", s) and ml.message_index(s) == q
        assert ml.message_index(ml.queue_id(0.5, ml.INODE_BASE + 2 * q + 1)) == -1


def write(batches, **kw):
    up, relay = io.StringIO(), io.StringIO()
    w = ml.MaillogWriter(up, relay, **kw)
    for b in batches:
        w.write(b)
    stats = w.close()
    return up.getvalue(), relay.getvalue(), stats


def expected(a: np.ndarray) -> dict:
    """What pflogsumm should count, computed from the stream (not from the writer)."""
    deferred = np.isin(a["outcome"], (ml.DEFERRED, ml.EXPIRED))
    first = a[a["tries"] == 1]
    att = np.unique(np.stack([a["qid"], a["tries"]], 1), axis=0, return_inverse=True)[1]
    accepted_attempts = len(np.unique(att.ravel()[a["code"] == 250]))
    rejects = (a["code"] >= 400) & (a["code"] != 421)
    return {"upstream": {"received": len(np.unique(first["qid"])),
                         "delivered": int((a["outcome"] == ml.SENT).sum()),
                         "deferred": len(np.unique(a["qid"][deferred])),
                         "deferrals": int(deferred.sum()),
                         "bounced": int((a["outcome"] == ml.BOUNCED).sum()),
                         "rejected": 0,
                         "bytes received": int(first["size"][
                             np.unique(first["qid"], return_index=True)[1]].sum())},
            "relay": {"received": accepted_attempts, "delivered": 0, "deferred": 0,
                      "deferrals": 0, "bounced": 0, "rejected": int(rejects.sum())}}


_TOTAL = re.compile(r"^\s*(\d+)([km]?)\s+(received|delivered|deferred|bounced|rejected|"
                    r"bytes received)\b(?:\s+\((\d+) +deferrals\))?", re.M)


def pflogsumm(path: Path) -> dict:
    res = subprocess.run([PFLOGSUMM, str(path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    grand = res.stdout.split("Grand Totals", 1)[1].split("Per-Hour", 1)[0]
    out = {"deferrals": 0}
    for m in _TOTAL.finditer(grand):
        assert m[2] == "", f"pflogsumm abbreviated {m[0]!r}: keep the test's counts small"
        out[m[3]] = int(m[1])
        if m[4]:
            out["deferrals"] = int(m[4])
    return out


@needs_pflogsumm
def test_pflogsumm_counts_equal_the_stream(tmp_path):
    batches = streams.stream(seed=3, n=120)
    stats = ml.write_maillog(batches, tmp_path)
    a = streams.concat(batches)
    exp = expected(a)
    assert exp["upstream"]["bounced"] > 0 and exp["upstream"]["deferrals"] > 0
    assert exp["relay"]["rejected"] > 0 and (a["code"] == 0).any()
    assert (a["code"] == ml.SUSPENDED).any()  # postfix/error lines count as deferrals too
    for host in ("upstream", "relay"):
        got = pflogsumm(tmp_path / f"{host}.maillog")
        want = exp[host]
        assert {k: got[k] for k in want} == want, host
    assert stats["upstream.example"]["out_of_order"] == 0


@needs_pflogsumm
def test_pflogsumm_windowed_and_sampled(tmp_path):
    batches = streams.stream(seed=4, n=150)
    ml.write_maillog(batches, tmp_path, sample=0.5)
    a = streams.concat(batches)
    keep = [q for q in np.unique(a["qid"]) if ml.MaillogWriter(io.StringIO(), io.StringIO(),
                                                               sample=0.5)._keep(int(q))]
    assert 0.3 < len(keep) / len(np.unique(a["qid"])) < 0.7
    got = pflogsumm(tmp_path / "upstream.maillog")
    want = expected(a[np.isin(a["qid"], keep)])["upstream"]
    assert {k: got[k] for k in want} == want


def test_same_stream_same_bytes_and_epoch():
    b = streams.stream(seed=5)
    assert write(b)[:2] == write(b)[:2]
    later = write(b, epoch=ml.DEFAULT_EPOCH + 86400)[0]
    assert later.startswith("2026-01-06T") and write(b)[0].startswith("2026-01-05T")


def test_window_keeps_only_its_lines():
    b = streams.stream(seed=6)
    up, relay, _ = write(b, window=(3600.0, 7200.0))
    stamps = [ml.dt.datetime.fromisoformat(ln.split()[0]).timestamp() - ml.DEFAULT_EPOCH
              for ln in (up + relay).splitlines()]
    assert stamps and min(stamps) >= 3600 and max(stamps) < 7200
    with pytest.raises(ValueError):
        ml.MaillogWriter(io.StringIO(), io.StringIO(), window=(5.0, 5.0))


def test_bounded_hold_counts_late_lines():
    b = streams.stream(seed=7, n=80)
    up, _, stats = write(b, hold=2)
    times = [ln.split()[0] for ln in up.splitlines()]
    late = sum(1 for x, y in zip(times, times[1:], strict=False) if y < x)
    assert stats["upstream.example"]["out_of_order"] >= late > 0
    up2, _, stats2 = write(b)
    assert stats2["upstream.example"]["out_of_order"] == 0
    assert sorted(up.splitlines()) == sorted(up2.splitlines())


def test_read_attempts_gives_back_the_stream(tmp_path):
    batches = streams.stream(seed=8, n=100)
    ml.write_maillog(batches, tmp_path)
    a = streams.concat(batches)
    back = ml.read_attempts(tmp_path / "upstream.maillog")
    key = ("qid", "tries", "rcpt")
    a, back = np.sort(a, order=key), np.sort(back, order=key)
    assert len(back) == len(a)
    for f in ("qid", "rcpt", "user", "kind", "size", "nrcpt", "outcome", "tries"):
        assert (back[f] == a[f]).all(), f
    assert (back["code"] == np.where(a["code"] == 421, 421, a["code"])).all()
    for f in ("arrival", "entry", "end"):
        np.testing.assert_allclose(back[f], a[f], atol=2e-6, err_msg=f)
    # start = end - d, d printed by format_tv: 0.01 s below 1 s, 0.1 s below 10 s
    np.testing.assert_allclose(back["start"], a["start"], atol=0.051)


def test_lab_parser_reads_the_log(tmp_path):
    sys.path.insert(0, str(EXP))
    import postfix_lab as pl
    batches = streams.stream(seed=9, n=60)
    ml.write_maillog(batches, tmp_path)
    a = streams.concat(batches)
    lab = pl.parse_maillog(tmp_path / "upstream.maillog")
    rows = [x for x in lab if x.outcome != "expired"]
    assert len(rows) == len(a)
    assert {x.message for x in lab} == set(np.unique(a["qid"]).tolist())
    names = {ml.SENT: "sent", ml.DEFERRED: "deferred", ml.BOUNCED: "bounced",
             ml.EXPIRED: "deferred"}
    assert sorted(x.outcome for x in rows) == sorted(names[o] for o in a["outcome"])
    expired = {x.message for x in lab if x.outcome == "expired"}
    assert expired == set(np.unique(a["qid"][a["outcome"] == ml.EXPIRED]).tolist())
    rejects = pl.relay_rejects(tmp_path / "relay.maillog")
    assert len(rejects) == int(((a["code"] >= 400) & (a["code"] != 421)).sum())
    assert len(pl.nondelivery_notices(tmp_path / "upstream.maillog")) == len(np.unique(
        a["qid"][np.isin(a["outcome"], (ml.BOUNCED, ml.EXPIRED)) & (a["kind"] != ml.NULL)]))


def test_rejects_wrong_dtype():
    w = ml.MaillogWriter(io.StringIO(), io.StringIO())
    with pytest.raises(ValueError, match="ATTEMPT"):
        w.write(np.zeros(3, dtype=[("qid", "i8")]))


def test_write_maillog_leaves_nothing_on_error(tmp_path):
    def broken():
        yield streams.stream(seed=1)[0]
        raise RuntimeError("engine failed")
    with pytest.raises(RuntimeError):
        ml.write_maillog(broken(), tmp_path)
    assert list(tmp_path.iterdir()) == []


def _shape(line: str) -> str:
    """A log line with its stamp, host, pid, queue ids, addresses, ports and numbers blanked."""
    line = re.sub(r"^(\S+T\S+|[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) \S+ ", "", line)
    line = re.sub(r"^postfix(-\w+)?/(\w+)\[\d+\]", r"postfix/\2[N]", line)
    line = re.sub(r"\b[0-9A-F]{10,}\b", "QID", line)
    line = re.sub(r"<[^>]*>", "<A>", line)
    line = re.sub(r"[\w.-]+\[[\d.]+\](:\d+)?", "HOST", line)
    return re.sub(r"\d+(\.\d+)?", "9", line)


def test_lines_have_the_shape_of_real_postfix_lines():
    """Every kind of line relaysim writes has the same shape as a real Postfix 3.7.11 line of
    tests/data/postfix_sample.log (the lab's log), numbers, ids and names aside."""
    real = {_shape(ln) for ln in (Path(__file__).resolve().parents[1] / "data"
                                  / "postfix_sample.log").read_text().splitlines()}
    up, relay, _ = write(streams.stream(seed=3, n=120))
    ours = {_shape(ln) for ln in (up + relay).splitlines()}
    # lines the lab's log has no example of: connect/disconnect (not kept in the sample), a
    # dead relay, and a reject after an accepted recipient (one recipient per lab message)
    ours = {s for s in ours if not re.search(r"(dis)?connect from|relay=none|QID: reject:", s)}
    assert ours and ours <= real, sorted(ours - real)


def test_greylist_lookup_failure_and_hard_error_limit_lines():
    rows = [(7, r, u, ml.ORDINARY, 500, 3, 0.0, 1.0, 1.5, 2.0, ml.DEFERRED, c, 1)
            for r, (u, c) in enumerate([(3, 450), (4, 451), (-1, 421)])]
    up, relay, _ = write([np.array(rows, dtype=ml.ATTEMPT)])
    assert "said: 450 4.2.0 <user3@example.com>: Recipient address rejected: Greylisted" in up
    assert "said: 451 4.3.0 <user4@example.com>: Temporary lookup failure" in up
    assert "said: 421 4.7.0 relay.example Error: too many errors" in up
    assert relay.count("NOQUEUE: reject: RCPT") == 2
    assert "too many errors after RCPT from upstream.example[127.0.0.1]" in relay
    assert ": removed" not in up


def test_upstream_soft_bounce_lines(tmp_path):
    """The relay's 550 that the upstream's soft_bounce = yes deferred, then expired: written as
    Postfix 3.7.11 logged it (tests/data/postfix_live/soft_bounce), read back as deferrals."""
    rows = [(5, 0, -1, ml.ORDINARY, 500, 1, 0.0, 0.0, 0.1, 0.2, ml.DEFERRED, 550, 1),
            (5, 0, -1, ml.ORDINARY, 500, 1, 0.0, 30.0, 30.1, 30.2, ml.EXPIRED, 550, 2)]
    batch = np.array(rows, dtype=ml.ATTEMPT)
    up, relay, _ = write([batch])
    to = "<unknown5.0@example.com>"
    soft = [ln for ln in up.splitlines() if "postfix/smtp[" in ln]
    assert len(soft) == 2 and all(ln.endswith(
        f"dsn=4.1.1, status=SOFTBOUNCE (host relay.example[127.0.0.1] said: 550 5.1.1 {to}: "
        "Recipient address rejected: User unknown in local recipient table (in reply to RCPT "
        "TO command))") for ln in soft)
    tail = [ln.split(": ", 2)[-1] for ln in up.splitlines()[-3:]]
    assert tail == ["from=<sender5@sender.example>, status=expired, returned to sender",
                    tail[1], "removed"] and tail[1].startswith("sender non-delivery")
    assert relay.count(": reject: RCPT from upstream.example[127.0.0.1]: 550 5.1.1") == 2
    assert ml.delivery_status(batch["outcome"], batch["code"]).tolist() == ["SOFTBOUNCE"] * 2
    (tmp_path / "upstream.maillog").write_text(up)
    back = ml.read_attempts(tmp_path / "upstream.maillog")
    assert back["outcome"].tolist() == [ml.DEFERRED, ml.EXPIRED]
    assert back["code"].tolist() == [550, 550]


# --- replay: arrivals of a real log -------------------------------------------------------------

RESULTS = Path(__file__).resolve().parents[2] / "results" / "validation" / "postfix"


@pytest.mark.parametrize("run", ["quick", "450", "550", "fix", "outage"])
def test_read_arrivals_of_the_real_postfix_logs(run):
    """The validation's real Postfix 3.7.11 logs: every injected message (a cleanup
    message-id=<relaysim-N@...>) arrives once, DSNs Postfix made itself do not."""
    path = RESULTS / run / "upstream.maillog"
    text = path.read_text()
    injected = set(re.findall(r"message-id=<relaysim-(\d+)@", text))
    year = ml.dt.datetime.fromtimestamp(json.loads((RESULTS / run / "meta.json").read_text())[
        "t_s_origin_epoch"], ml.dt.UTC).year  # the run's (the log's stamps have none)
    a = ml.read_arrivals(path, year=year)
    assert len(a) == len(injected) > 0
    assert a.report["malformed"] == a.report["unrelated"] == 0
    assert a.report["postfix"] == a.report["lines"] == text.count("\n")
    assert (np.diff(a.t) >= 0).all() and (a.size > 300).all() and (a.nrcpt == 1).all()
    assert (np.diff(a.first) == 1).all()
    assert all(x.endswith("@example.test") for x in a.address)
    m = re.search(r"^(\w{3}) +(\d+) (\d\d):(\d\d):(\d\d) \S+ \S+/smtpd\[\d+\]: \w+: client=",
                  text, re.M)
    month = "JanFebMarAprMayJunJulAugSepOctNovDec".index(m[1]) // 3 + 1
    assert a.t[0] == ml.dt.datetime(year, month, *map(int, m.groups()[1:]),
                                    tzinfo=ml.dt.UTC).timestamp()


def test_read_arrivals_of_our_own_log(tmp_path):
    batches = streams.stream(seed=12, n=90)
    ml.write_maillog(batches, tmp_path)
    a = streams.concat(batches)
    first = a[(a["tries"] == 1) & (a["rcpt"] == 0)]
    first = first[np.argsort(first["arrival"], kind="stable")]
    got = ml.read_arrivals(tmp_path / "upstream.maillog")
    assert len(got) == len(first)
    np.testing.assert_allclose(got.t - ml.DEFAULT_EPOCH, first["arrival"], atol=2e-6)
    assert (got.size == first["size"]).all() and (got.nrcpt == first["nrcpt"]).all()
    assert (got.null_sender == (first["kind"] == ml.NULL)).all()
    # every recipient had a delivery line; a user twice in one message is one address
    rows = a[a["tries"] == 1]
    distinct = {(int(q), ml.recipient_address(int(u), int(q), int(r)))
                for q, u, r in zip(rows["qid"], rows["user"], rows["rcpt"], strict=True)}
    assert (np.diff(got.first) <= got.nrcpt).all() and got.first[-1] == len(distinct)


def test_read_arrivals_counts_bad_lines_and_rejects_other_logs(tmp_path):
    sample = (Path(__file__).resolve().parents[1] / "data" / "postfix_sample.log").read_text()
    p = tmp_path / "mixed.log"
    p.write_text("garbage line\n" + sample
                 + "Nov 25 19:30:00 upstream sshd[77]: Accepted publickey for root\n\n")
    a = ml.read_arrivals(p, year=2025)
    assert a.report["malformed"] == 2 and a.report["unrelated"] == 1 and len(a) == 8
    other = tmp_path / "nginx.log"
    other.write_text('127.0.0.1 - - [25/Nov/2025:19:30:00 +0000] "GET / HTTP/1.1" 200 612\n')
    with pytest.raises(ml_errors().ScenarioError, match="not a Postfix log") as e:
        ml.read_arrivals(other)
    assert "\n" not in str(e.value)


def ml_errors():
    import sim.errors
    return sim.errors


def test_read_arrivals_year_turn(tmp_path):
    p = tmp_path / "turn.log"
    line = "{} host postfix/smtpd[1]: {}: client=x[192.0.2.1]\n{} host postfix/qmgr[2]: {}: " \
           "from=<>, size=500, nrcpt=1 (queue active)\n"
    p.write_text(line.format("Dec 31 23:59:59", "AAAAAA1", "Dec 31 23:59:59", "AAAAAA1")
                 + line.format("Jan  1 00:00:01", "AAAAAA2", "Jan  1 00:00:01", "AAAAAA2"))
    a = ml.read_arrivals(p, year=2025)
    assert a.t.tolist() == [ml.dt.datetime(2025, 12, 31, 23, 59, 59, tzinfo=ml.dt.UTC).timestamp(),
                            ml.dt.datetime(2026, 1, 1, 0, 0, 1, tzinfo=ml.dt.UTC).timestamp()]
    assert a.null_sender.all()


def test_maillog_folder_fed_as_a_run_goes(tmp_path):
    batches = streams.stream(seed=2)
    with ml.MaillogFolder(tmp_path / "logs") as out:
        for b in batches:
            out.write(b)
        assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == [
            ".relay.maillog.tmp", ".upstream.maillog.tmp"]  # nothing visible before the end
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == [
        "relay.maillog", "upstream.maillog"]
    assert (tmp_path / "logs" / "upstream.maillog").read_text() == write(batches)[0]
    out = ml.MaillogFolder(tmp_path / "x")
    out.write(batches[0])
    out.abort()
    assert list((tmp_path / "x").iterdir()) == []


@pytest.mark.parametrize("said, known_elsewhere, expected", [
    ([True], None, [True]), ([False], None, [False]), ([None], None, [False]),
    ([None, True], None, [True, True]), ([None, False], None, [False, False]),
], ids=["x.1.1", "other-reply", "no-reply", "no-reply-unknown-elsewhere",
        "no-reply-known-elsewhere"])
def test_unknown_recipients(said, known_elsewhere, expected):
    """A row is unknown when the relay's reply said X.1.1; a row the relay never answered
    takes its address's verdict elsewhere in the log, else it is known."""
    address = np.array(["a@x"] * len(said))
    assert ml.unknown_recipients(address, said).tolist() == expected


def test_the_relays_verdict_in_a_log(tmp_path):
    """Deferred 450 4.1.1 and bounced 550 5.1.1 are unknown; sent, greylisted (4.2.0) and a
    refused connection are known; a queue id is a new message after `removed`."""
    head = "Nov 25 19:49:59 up postfix/{}[1]: {}"
    to = "to=<{}@example.test>, relay={}, delay=1, delays=0/0/0/1, dsn={}, status={} ({})"
    said = "host relay[127.0.0.1] said: {} (in reply to RCPT TO command)"
    lines = [head.format("smtpd", "AAA1: client=x[192.0.2.1]"),
             head.format("qmgr", "AAA1: from=<s@y>, size=10, nrcpt=5 (queue active)")]
    for user, dsn, status, text in [
            ("u450", "4.1.1", "deferred", said.format("450 4.1.1 <u450@example.test>: User "
                                                      "unknown in local recipient table")),
            ("u550", "5.1.1", "bounced", said.format("550 5.1.1 User unknown")),
            ("ok", "2.0.0", "sent", "250 2.0.0 Ok: queued as 1"),
            ("grey", "4.2.0", "deferred", said.format("450 4.2.0 Greylisted")),
            ("down", "4.4.1", "deferred", "connect to relay[127.0.0.1]:25: Connection refused")]:
        relay = "none" if user == "down" else "relay[127.0.0.1]:25"
        lines.append(head.format("smtp", "AAA1: " + to.format(user, relay, dsn, status, text)))
    lines += [head.format("qmgr", "AAA1: removed"), head.format("smtpd", "AAA1: client=x"),
              head.format("qmgr", "AAA1: from=<>, size=20, nrcpt=1 (queue active)"),
              head.format("qmgr", "AAA1: from=<>, size=20, nrcpt=1 (queue active)")]
    p = tmp_path / "m.log"
    p.write_text("\n".join(lines) + "\n")
    a = ml.read_arrivals(p, year=2026)
    assert len(a) == 2 and a.queue_id.tolist() == ["AAA1", "AAA1"]
    assert a.address.tolist() == [f"{u}@example.test" for u in
                                  ("u450", "u550", "ok", "grey", "down")]
    assert a.unknown.tolist() == [True, True, False, False, False]
    assert a.retries.size == 1 and a.null_sender.tolist() == [False, True]
    tr = ml.replay_trace(a, ml.replay_start(a), local_users=2)
    # known addresses numbered in order, modulo local_users; the DSN-less second message
    # has nrcpt=1 and no delivery line: one known recipient not seen before
    assert tr.rcpt.tolist() == [[-1, -1, 0, 1, 0], [1, -2, -2, -2, -2]]
    assert tr.kind.tolist() == [ml.ORDINARY, ml.NULL] and tr.size.tolist() == [10, 20]


def test_replay_start_on_the_logs_scan_grid():
    """Time 0 is the log's daemon-start second moved onto its retries' grid (residue 1 here),
    and never after the first arrival."""
    a = ml.Arrivals([["Q", 1000.0, 1, 1, ""]], [[]], {}, started=997.2,
                    retries=[1008.5, 1018.1, 1028.9, 1029.0])
    assert ml.replay_start(a) == 997.0
    assert ml.replay_start(a, 10) == 998.0  # 1008, 1018, 1028 share residue 8
    b = ml.Arrivals([["Q", 999.5, 1, 1, ""]], [[]], {}, started=None,
                    retries=[1005.0, 1015.0])
    assert ml.replay_start(b, 10) == 995.0  # 1005 would be after the first arrival


def test_directory_places_follow_the_scans_of_a_log():
    """Each scan says its messages come in that order: 2 before 0, 0 before 1, 2 before 1;
    message 3, never in a scan, gets a place by its queue id's hash; scans that disagree (a
    cycle) still give every message its own place."""
    p = ml.directory_places(["A", "B", "C", "D"], [[2, 0], [0, 1], [2, 1]])
    assert p[2] < p[0] < p[1] and len(set(p.tolist())) == 4
    assert ((0 <= p) & (p < 1)).all()
    q = ml.directory_places(["A", "B", "C"], [[0, 1], [1, 0], [2]])
    assert sorted(q.tolist()) == [0, 1 / 3, 2 / 3]
    assert ml.directory_places([], []).size == 0


def test_directory_order_of_the_live_load_log():
    """The live load run's deferred scans: every scan second's retries, in log order, have
    increasing places (the log never orders two files both ways), and the replay's trace
    carries them."""
    out = RESULTS / "load"
    year = ml.dt.datetime.fromtimestamp(json.loads((out / "meta.json").read_text())[
        "t_s_origin_epoch"], ml.dt.UTC).year
    a = ml.read_arrivals(out / "upstream.maillog", year=year)
    place = a.directory_order()
    assert a.scanned.size == a.retries.size > 100
    sec = np.floor(a.retries)
    for s in np.unique(sec):
        order = place[a.scanned[sec == s]]
        assert (np.diff(order) > 0).all()
    assert (ml.replay_trace(a, ml.replay_start(a), 3).name == place).all()
