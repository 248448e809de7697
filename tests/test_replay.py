"""relaysim replay: a real upstream Postfix log's arrivals simulated under a scenario.

The validation keeps the logs of live runs of real Postfix 3.7.11 (results/validation/postfix/
<run>/upstream.maillog; their configuration in meta.json). Replaying a run's own log under its
own configuration must give its outcomes: the same delivered, bounced and expired counts, and
the same outcome per message (relaysim's mail log read back by the same reader as the real
one). Then the same log under another configuration (550 instead of 450). Bad input:
tests/test_bad_inputs.py (tests/data/bad/replay/).
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from sim import cli
from sim.postfix import maillog as ml

RUNS = Path(__file__).resolve().parent.parent / "results" / "validation" / "postfix"
_STATUS = re.compile(r" postfix[\w-]*/\w+\[\d+\]: (\w+): (?:to=<[^>]*>, .*status=(sent|bounced)"
                     r"|from=<[^>]*>, (status=expired))")


def outcomes(log: Path) -> list[str]:
    """Each arriving message's final outcome (sent, bounced, expired, or queued), in arrival
    order, by the same reader for the real log and relaysim's."""
    final: dict[str, str] = {}
    for line in log.read_text().splitlines():
        if m := _STATUS.search(line):
            final[m[1]] = m[2] or "expired"
    return [final.get(q, "queued") for q in ml.read_arrivals(log, year=2026).queue_id]


def own_scenario(run: str, path: Path) -> Path:
    """The live run's own configuration as a scenario file (postconf -hx of both hosts, the
    measured transaction time, the relay's outage or its switch to 550), times from the
    replay's time 0 (the log's daemon start second)."""
    meta = json.loads((RUNS / run / "meta.json").read_text())
    up = dict(meta["postconf"]["upstream"])
    start = ml.replay_start(ml.read_arrivals(RUNS / run / "upstream.maillog", year=2026),
                            int(up["queue_run_delay"].rstrip("s")))
    shift = meta["t_s_origin_epoch"] - start  # the lab's t_s is from its own scan origin
    lines = ["[upstream]"]
    lines += [f'{k} = "{v}"' for k, v in up.items() if not k.startswith("smtp_")]
    lines += [f'default_destination_concurrency_limit = {up["smtp_destination_concurrency_limit"]}',
              f'default_destination_recipient_limit = {up["smtp_destination_recipient_limit"]}',
              f'smtp_transaction_time = "{meta["smtp_transaction_time_s"]}s"',
              "[relay]", "local_users = 3", "unknown_local_recipient_reject_code = "
              + meta["postconf"]["relay"]["unknown_local_recipient_reject_code"]]
    ev = {e["event"]: e for e in meta["events"]}
    if "relay_stop" in ev:
        t0, t1 = ev["relay_stop"]["t_s_begin"] + shift, ev["relay_start"]["t_s"] + shift
        lines.append(f'outages = [{{start = "{t0:.3f}s", duration = "{t1 - t0:.3f}s"}}]')
    if "fix" in ev:
        lines += ["[[changes]]", f'at = "{ev["fix"]["t_s"] + shift:.3f}s"',
                  "relay.unknown_local_recipient_reject_code = 550"]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("run", ["quick", "450", "550", "fix", "outage"])
def test_replaying_a_live_run_reproduces_its_outcomes(run, tmp_path, capsys):
    log = RUNS / run / "upstream.maillog"
    scen = own_scenario(run, tmp_path / f"{run}.toml")
    status = cli.main(["replay", str(log), str(scen), "--out", str(tmp_path / "out"),
                       "--maillog", str(tmp_path / "logs"), "--year", "2026", "-q"])
    err = capsys.readouterr().err
    assert status == 0, err
    assert "0 malformed, 0 of other programs, 0 messages never active" in err
    real = outcomes(log)
    sim = outcomes(tmp_path / "logs" / "upstream.maillog")
    assert len(real) == len(sim) == json.loads((RUNS / run / "meta.json").read_text())[
        "scenario"]["n_messages"]
    assert sim == real  # per message
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())["summary"]
    r = summary["recipients"]
    assert (r["delivered"], r["bounced"], r["expired"], r["queued_at_end"]) == (
        real.count("sent"), real.count("bounced"), real.count("expired"), 0)
    assert summary["replay"]["messages"] == len(real)


def test_the_same_log_with_550(tmp_path, capsys):
    """The 450 run's log under 550: the unknown recipients bounce at their first attempt
    instead of expiring, and nothing else changes."""
    log = RUNS / "450" / "upstream.maillog"
    scen = own_scenario("450", tmp_path / "450.toml")
    assert cli.main(["replay", str(log), str(scen), "--out", str(tmp_path / "out"), "--maillog",
                     str(tmp_path / "logs"), "--year", "2026", "-q", "--set",
                     "relay.unknown_local_recipient_reject_code=550"]) == 0
    real, sim = outcomes(log), outcomes(tmp_path / "logs" / "upstream.maillog")
    assert real.count("expired") == 23
    assert sim == ["bounced" if o == "expired" else o for o in real]
    attempts = ml.read_attempts(tmp_path / "logs" / "upstream.maillog",
                                epoch=ml.replay_start(ml.read_arrivals(log, year=2026), 10))
    assert (attempts["tries"] == 1).all()  # every message done at its first attempt


def test_unrelated_and_malformed_lines_are_counted_not_fatal(tmp_path, capsys):
    text = (RUNS / "550" / "upstream.maillog").read_text()
    mixed = tmp_path / "mixed.log"
    mixed.write_text("not a syslog line\n" + text.replace(
        "\n", "\nNov 25 19:50:00 upstream sshd[77]: Accepted publickey for root\n", 3)
        + "\x00\x01 binary junk\n")
    assert cli.main(["replay", str(mixed), "--out", str(tmp_path / "out"), "--year", "2026"]) \
        == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "2 malformed, 3 of other programs" in err[0], err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["summary"]["replay"]["lines"]["malformed"] == 2
    assert summary["summary"]["recipients"]["received"] == 30
    # without a scenario: Postfix's and relaysim's defaults (550 to unknown users)
    assert summary["summary"]["recipients"]["bounced"] == 23
    assert summary["scenario"]["senders"][0]["name"] == "replay of mixed.log"


def test_duration_and_start(tmp_path, capsys):
    """--set simulation.duration cuts the replay (later arrivals are left out and counted);
    --start moves time 0."""
    log = RUNS / "550" / "upstream.maillog"
    a = ml.read_arrivals(log, year=2026)
    assert a.started == ml.replay_start(a) == ml.dt.datetime(2026, 11, 25, 19, 49, 57,
                                                             tzinfo=ml.dt.UTC).timestamp()
    cut = 10.0
    late = int((a.t - a.started >= cut).sum())
    assert 0 < late < len(a)
    assert cli.main(["replay", str(log), "--out", str(tmp_path / "out"), "--year", "2026",
                     "-q", "--set", f"simulation.duration={cut:g}s", "--start",
                     "2026-11-25T19:49:57Z"]) == 0
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["summary"]["replay"]["arriving_after_the_run"] == late
    assert s["summary"]["messages"]["received"] == len(a) - late
    from sim import Scenario
    assert Scenario.from_dict(s["scenario"]).simulation.duration == cut


def test_a_trace_is_the_mail_instead_of_the_senders():
    """The Python API: simulate(trace=...) runs no sender; the same trace, the same results."""
    from sim import Scenario
    from sim.model.sender import NULL, REAL
    from sim.model.simulate import simulate
    from sim.model.trace import Trace

    scen = Scenario.from_dict({"simulation": {"duration": "2h", "sample_interval": "10m"},
                               "senders": [{"rate": "100000/d"}],
                               "relay": {"local_users": 5}})
    trace = Trace(np.array([0.0, 10.0, 10.0, 3000.0]),
                  np.array([[0, -2], [-1, 1], [2, -2], [-1, -2]], dtype=np.int32),
                  np.array([REAL, REAL, NULL, NULL], dtype=np.int8),
                  np.array([100, 2000, 50, 7]))
    a, b = simulate(scen, trace=trace), simulate(scen, trace=trace)
    r = a.summary["recipients"]
    assert a.summary["messages"]["received"] == 4 and r["received"] == 5
    assert (r["delivered"], r["bounced"]) == (3, 2)  # 550 by default
    assert a.summary["dsn"]["nondelivery"] == 1  # the null sender's bounce makes no DSN
    assert a.summary == b.summary
    with pytest.raises(ValueError, match="arrival"):
        simulate(scen, trace=trace._replace(arrival=trace.arrival[::-1].copy()))
