"""The real-sendmail harness (experiments/sendmail_lab.py, validate_sendmail.py's log reading)
on the saved logs of the live runs in results/validation/sendmail/, and its configuration
without sendmail. The live quick run is in test_validate_sendmail.py.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
import sendmail_lab as sl  # noqa: E402
import validate_exim as ve  # noqa: E402
import validate_sendmail as vs  # noqa: E402

SAVED = Path(__file__).resolve().parents[2] / "results" / "validation" / "sendmail"


def test_mc_listens_on_loopback_and_routes_only_there(tmp_path):
    text = sl.mc_text(tmp_path, 2525, 2526, "3m", "25s", "20s")
    assert "DAEMON_OPTIONS(`Port=2525, Addr=127.0.0.1, Name=MTA')" in text
    assert "define(`SMART_HOST', `esmtp:[127.0.0.1]')" in text  # bracketed: no MX lookup
    assert "define(`ESMTP_MAILER_ARGS', `TCP $h 2526')" in text
    assert "define(`confTO_QUEUERETURN', `3m')" in text
    assert "define(`confMIN_QUEUE_AGE', `25s')" in text
    assert "define(`confTO_HOSTSTATUS', `20s')" in text
    assert "define(`confTO_QUEUEWARN', `0')" in text


@pytest.mark.skipif(not Path(sl.M4).exists() or not sl.CF_DIR.exists(),
                    reason="needs m4 and the unpacked sendmail-cf (see .ci/run)")
def test_m4_builds_a_cf_with_the_timeouts(tmp_path):
    mc = tmp_path / "sendmail.mc"
    mc.write_text(sl.mc_text(tmp_path, 2525, 2526, "3m", "25s", "20s"))
    cf = subprocess.run([sl.M4, str(mc)], capture_output=True, text=True, check=True).stdout
    for line in ("O Timeout.queuereturn=3m", "O MinQueueAge=25s", "O Timeout.hoststatus=20s",
                 f"O QueueDirectory={tmp_path}/mqueue", "DSesmtp:[127.0.0.1]",
                 "O DaemonPortOptions=Port=2525, Addr=127.0.0.1, Name=MTA",
                 "\t\tA=TCP $h 2526"):
        assert line in cf.splitlines(), line


def test_syslog_sink_stamps_each_datagram(tmp_path):
    sink = sl.SyslogSink(tmp_path / "log.sock", tmp_path / "maillog")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as c:
            before = time.time()
            c.sendto(b"<22>Dec  3 13:48:48 sendmail[7]: ABCDEFGHIJKLMN: to=<a@b>, stat=Sent",
                     str(tmp_path / "log.sock"))
        for _ in range(50):
            if (tmp_path / "maillog").exists() and (tmp_path / "maillog").read_text():
                break
            time.sleep(0.05)
    finally:
        sink.close()
    (line,) = sl.read_maillog(tmp_path / "maillog")
    assert line.pid == 7 and line.text == "ABCDEFGHIJKLMN: to=<a@b>, stat=Sent"
    assert before <= line.t < before + 5


@pytest.fixture(scope="module")
def saved_450():
    return vs.parse_maillog(SAVED / "450" / "maillog")


def test_every_injected_message_arrives_and_is_tried_at_once(saved_450):
    attempts, _, arrival = saved_450
    assert sorted(arrival) == list(range(30))
    first = {}
    for a in attempts:
        first.setdefault(a.message, a)
    # DeliveryMode background: the first attempt follows the from= line within tens of ms
    assert all(0 <= first[m].t - arrival[m] < 0.2 for m in arrival)


def test_return_is_an_expiry_row_after_the_deferral(saved_450):
    attempts, other, _ = saved_450
    rows = ve.attempt_rows(attempts, 0.0)
    expired = [r for r in rows if r["outcome"] == "expired"]
    assert expired and len(expired) == other["dsn"]
    by = {(r["message"], r["attempt"], r["outcome"]): r for r in rows}
    for r in expired:
        assert 0 <= r["t_s"] - by[(r["message"], r["attempt"], "deferred")]["t_s"] < 0.1
