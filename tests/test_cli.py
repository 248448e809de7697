"""The relaysim command end to end: `python -m sim ...` in a subprocess, short scenarios."""

import fcntl
import json
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from sim.errors import ScenarioError
from sim.postfix.qshape import format_table
from sim.results import QSHAPE_LABELS, TIMESERIES_UNITS

AGES = [f"age_{lab}" for lab in QSHAPE_LABELS]
RELAYSIM = Path(sys.executable).with_name("relaysim")

SHORT = """\
[simulation]
duration = "1d"
sample_interval = "1h"
seed = 3

[[senders]]
rate = "2000/d"
unknown_recipient_fraction = 0.3
forged_sender_fraction = 0.8

[upstream]
maximal_queue_lifetime = "5d"

[relay]
unknown_local_recipient_reject_code = 450

[[changes]]
at = "12h"
relay.unknown_local_recipient_reject_code = 550
"""


def relaysim(*args, cwd=None, **kw):
    return subprocess.run([sys.executable, "-m", "sim", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=120, **kw)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One run with a --set override, shared by the read-only tests below."""
    d = tmp_path_factory.mktemp("run")
    scen = write(d / "short.toml", SHORT)
    proc = relaysim("run", scen, "--out", d / "out", "--set",
                    "upstream.maximal_queue_lifetime=2d")
    assert proc.returncode == 0, proc.stderr
    return d / "out", proc


# --- run -------------------------------------------------------------------------------------

def test_run_writes_the_documented_files_and_columns(run_dir):
    out, proc = run_dir
    assert {"summary.json", "timeseries.csv", "qshape.csv", "delay_cdf.csv"} <= set(
        os.listdir(out))
    assert not [n for n in os.listdir(out) if n.startswith(".")]  # no staging left behind
    rows = (out / "timeseries.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert header[0] == "t_s"
    assert {"deferred", "received", "delivered", "bounced", "expired", "backscatter"} <= set(
        header)
    assert all(c in TIMESERIES_UNITS or c in AGES for c in header)
    assert header[-10:] == AGES
    assert len(rows) == 1 + 25  # samples at 0, 1h, ..., 24h
    assert [float(r.split(",")[0]) for r in rows[1:3]] == [0.0, 3600.0]
    q = (out / "qshape.csv").read_text().splitlines()
    assert q[0].split(",") == ["t_s", *AGES] and len(q) == len(rows)
    assert (out / "delay_cdf.csv").read_text().splitlines()[0] == "delay_s,share"
    meta = json.loads((out / "summary.json").read_text())
    assert set(meta) >= {"summary", "scenario", "seed", "provenance", "events", "origins"}
    assert meta["seed"] == 3
    assert {"relaysim", "python", "numpy", "wall_time_s"} <= set(meta["provenance"])
    r = meta["summary"]["recipients"]
    assert r["received"] == r["delivered"] + r["bounced"] + r["expired"] + r["queued_at_end"]
    assert meta["events"] == [[43200.0, "relay.unknown_local_recipient_reject_code = 550"]]
    assert (out / "summary.json").stat().st_mode & 0o044  # readable like any output file


def test_run_prints_a_short_summary(run_dir):
    _, proc = run_dir
    meta = json.loads((run_dir[0] / "summary.json").read_text())["summary"]
    for word in ("received", "delivered", "bounced", "expired", "still queued",
                 "deferred queue peak", "p50", "p95", "p99", "backscatter"):
        assert word in proc.stdout
    assert f"received {meta['recipients']['received']}," in proc.stdout
    assert (f"queued upstream (deferred + active) peak: {meta['queued_peak_messages']} messages; "
            f"deferred queue peak: {meta['deferred_peak_messages']}") in proc.stdout
    assert meta["queued_peak_messages"] >= meta["deferred_peak_messages"]
    assert re.search(r"simulated in \d+\.\d s( \(\d+\.\d s of it compiling, the first run "
                     r"only\))?, files (and figures )?written in \d+\.\d s", proc.stdout)
    # no progress bar when stderr is not a terminal; only the notice of a cold numba cache
    assert all(x.startswith("relaysim: compil") for x in proc.stderr.splitlines())


def test_set_wins_over_the_file(run_dir):
    meta = json.loads((run_dir[0] / "summary.json").read_text())
    assert meta["scenario"]["upstream"]["maximal_queue_lifetime"] == "2d"
    # as written, in the user's units (sim.units), not "86400.0s" or "0.023148148148148147/s"
    assert meta["scenario"]["simulation"]["duration"] == "1d"
    assert meta["scenario"]["senders"][0]["rate"] == "2000/d"
    assert meta["scenario"]["senders"][0]["stop"] == "never"
    assert meta["origins"]["upstream.maximal_queue_lifetime"] == "--set"
    assert meta["origins"]["relay.unknown_local_recipient_reject_code"] == "file"


def test_same_seed_same_bytes_and_progress_on_a_terminal(run_dir, tmp_path):
    """A second run of the same scenario and seed, with stderr on a pseudo-terminal: the
    progress bar shows, and timeseries.csv is byte-identical to the first run's."""
    out, _ = run_dir
    scen = write(tmp_path / "short.toml", SHORT)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a real size
    proc = subprocess.Popen([sys.executable, "-m", "sim", "run", str(scen), "--out",
                             str(tmp_path / "again"), "--set",
                             "upstream.maximal_queue_lifetime=2d"],
                            stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    proc.communicate(timeout=60)
    os.close(master)
    assert proc.returncode == 0
    assert b"day" in seen and b"of 1" in seen
    assert (tmp_path / "again" / "timeseries.csv").read_bytes() == (
        out / "timeseries.csv").read_bytes()


def test_quiet_prints_nothing_and_default_out_is_results_slash_name(tmp_path):
    scen = write(tmp_path / "tiny.toml", SHORT.replace('duration = "1d"', 'duration = "2h"'))
    proc = relaysim("run", scen, "--quiet", "--seed", "5", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == ""
    meta = json.loads((tmp_path / "results" / "tiny" / "summary.json").read_text())
    assert meta["seed"] == 5 and meta["origins"]["simulation.seed"] == "--seed"


def test_sigint_keeps_the_previous_run_and_exits_130(run_dir, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(run_dir[0], out)
    before = snapshot(out)
    long = write(tmp_path / "long.toml", SHORT.replace('duration = "1d"', 'duration = "300d"'))
    # a CI job started in the background by a non-interactive shell inherits SIGINT ignored,
    # and Python then installs no KeyboardInterrupt handler: give the child the default back
    proc = subprocess.Popen([sys.executable, "-m", "sim", "run", str(long), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(1.5)
    assert proc.poll() is None, "the long run ended before the signal"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert len(stderr.splitlines()) == 1 and "interrupted" in stderr
    assert "Traceback" not in stderr and stdout == ""
    assert snapshot(out) == before


@pytest.mark.parametrize("existing", [True, False], ids=["previous-run", "new-folder"])
def test_a_write_interrupted_before_the_renames_changes_nothing(run_dir, tmp_path, existing):
    from sim.reports.output import stage_and_commit

    out = tmp_path / "out"
    if existing:
        shutil.copytree(run_dir[0], out)
    before = snapshot(out) if existing else None

    def fill(staging):
        (staging / "summary.json").write_text("half a run")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stage_and_commit(out, fill)
    assert (snapshot(out) == before) if existing else not out.exists()


# --- bad input: one line, exit 2, nothing written ---------------------------------------------

def edit(old, new):
    assert old in SHORT
    return SHORT.replace(old, new)


BAD = [
    # id, scenario text (None: no file), extra arguments, text the error line must contain
    ("unknown-key", edit('maximal_queue_lifetime = "5d"', 'maximal_queue_lifetme = "5d"'), [],
     "upstream.maximal_queue_lifetme"),
    ("unknown-section", edit("[upstream]", "[upstrem]"), [], "upstrem"),
    ("wrong-type", edit("seed = 3", 'seed = "three"'), [], "simulation.seed"),
    ("bad-unit", edit('"5d"', '"5y"'), [], "upstream.maximal_queue_lifetime"),
    ("negative-time", edit('"5d"', "-5"), [], "upstream.maximal_queue_lifetime"),
    ("lifetime-below-backoff", edit('"5d"', '"100s"'), [], "upstream.maximal_queue_lifetime"),
    ("concurrency-0", edit("[upstream]", "[upstream]\ndefault_destination_concurrency_limit = 0"),
     [], "upstream.default_destination_concurrency_limit"),
    ("fraction-above-1", edit("unknown_recipient_fraction = 0.3",
                              "unknown_recipient_fraction = 1.5"), [],
     "senders[0].unknown_recipient_fraction"),
    ("fraction-below-0", edit("forged_sender_fraction = 0.8", "forged_sender_fraction = -0.1"),
     [], "senders[0].forged_sender_fraction"),
    ("malformed-toml", edit("seed = 3", "seed = = 3"), [], "line 4"),
    ("missing-file", None, [], "scenario"),
    ("bad-rate", edit('"2000/d"', '"2000/y"'), [], "senders[0].rate"),
    ("duration-zero", edit('duration = "1d"', 'duration = "0s"'), [], "simulation.duration"),
    ("sample-interval-zero", edit('sample_interval = "1h"', 'sample_interval = 0'), [],
     "simulation.sample_interval"),
    ("backoff-max-below-min", edit("[upstream]", "[upstream]\nmaximal_backoff_time = 100"), [],
     "upstream.maximal_backoff_time"),
    ("bad-mta", edit("[upstream]", '[upstream]\nmta = "postfx"'), [], "did you mean"),
    ("reject-code-600", edit("code = 450", "code = 600"), [],
     "relay.unknown_local_recipient_reject_code"),
    ("bad-bool", edit("[relay]", '[relay]\nsoft_bounce = "maybe"'), [], "relay.soft_bounce"),
    ("bad-outages", edit("[relay]", '[relay]\noutages = "6h"'), [], "relay.outages"),
    ("empty-senders", 'senders = []\n[simulation]\nduration = "1d"\n', [], "senders"),
    ("change-without-at", edit('at = "12h"\n', ""), [], "changes[0]"),
    ("change-unknown-key", edit("relay.unknown_local_recipient_reject_code = 550",
                                "relay.unknown_code = 550"), [], "changes[0].relay.unknown_code"),
    ("change-of-mta", edit("relay.unknown_local_recipient_reject_code = 550",
                           'upstream.mta = "exim"'), [], "changes[0].upstream.mta"),
    ("bad-exim-rule", edit("[upstream]", '[upstream]\nmta = "exim"\nexim_retry_rule = "X,2h"'),
     [], "upstream.exim_retry_rule"),
    ("postfix-version", edit("[upstream]", '[upstream]\npostfix_version = "three"'), [],
     "upstream.postfix_version"),
    ("recipients-0", edit("unknown_recipient_fraction = 0.3",
                          "unknown_recipient_fraction = 0.3\nrecipients_per_message = 0"), [],
     "senders[0].recipients_per_message"),
    ("set-no-equals", SHORT, ["--set", "upstream.maximal_queue_lifetime"], "--set"),
    ("set-empty-key", SHORT, ["--set", "=5d"], "--set"),
    ("set-unknown-key", SHORT, ["--set", "upstream.lifetime_max=5d"],
     "upstream.lifetime_max"),
    ("set-unknown-section", SHORT, ["--set", "upstrem.queue_run_delay=5m"], "upstrem"),
    ("set-bad-value", SHORT, ["--set", "upstream.maximal_queue_lifetime=forever"],
     "upstream.maximal_queue_lifetime"),
    ("set-bad-int", SHORT, ["--set", "relay.local_users=many"], "relay.local_users"),
    ("set-sender-index", SHORT, ["--set", "senders.5.rate=1/s"], "senders.5.rate"),
    ("seed-negative", SHORT, ["--seed", "-1"], "simulation.seed"),
    ("seed-not-a-number", SHORT, ["--seed", "abc"], "--seed"),
    ("unknown-option", SHORT, ["--bogus"], "--bogus"),
]


@pytest.mark.parametrize("text, args, key", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, text, args, key):
    scen = tmp_path / "bad.toml"
    if text is not None:
        write(scen, text)
    out = tmp_path / "out"
    proc = relaysim("run", scen, "--out", out, *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("relaysim: error: ")
    assert key in lines[0]
    assert proc.stdout == ""
    assert not out.exists()


@pytest.mark.parametrize("args, key", [
    ([], "required"),
    (["frobnicate"], "frobnicate"),
    (["run"], "SCENARIO.toml"),
    (["qshape", "RESULTS"], "RESULTS_DIR"),
    (["explain", "missing.toml", "-x"], "-x"),
], ids=["no-command", "unknown-command", "run-without-file", "qshape-not-a-run",
        "unknown-explain-option"])
def test_usage_errors_are_one_line_too(tmp_path, args, key):
    proc = relaysim(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1 and key in proc.stderr
    assert proc.stderr.startswith("relaysim: error: ")


def test_out_must_not_be_a_file(tmp_path):
    scen = write(tmp_path / "s.toml", SHORT)
    target = write(tmp_path / "taken", "keep me")
    proc = relaysim("run", scen, "--out", target)
    assert proc.returncode == 2 and "--out" in proc.stderr
    assert target.read_text() == "keep me"


# --- explain ---------------------------------------------------------------------------------

def timeline_rows(stdout: str) -> list[tuple[int, int]]:
    """(attempt, seconds since arrival) of explain's timeline, each time read back with the
    one parser (sim.units) as written once, without a second spelling in brackets."""
    from sim.units import parse_time

    rows = []
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].isdigit():
            rows.append((int(parts[0]), int(parse_time("since arrival", parts[1]))))
    return rows


def test_explain_postfix_default_timeline(tmp_path):
    scen = write(tmp_path / "d.toml", "")
    proc = relaysim("explain", scen)
    assert proc.returncode == 0, proc.stderr
    rows = timeline_rows(proc.stdout)
    assert rows[:7] == [(1, 0), (2, 299), (3, 599), (4, 1199), (5, 2399), (6, 4799),
                        (7, 8999)]
    assert "every 70m" in proc.stdout
    last_n, last_t = rows[-1]
    assert last_n == 108 and last_t == 4799 + 4200 * (108 - 6)
    assert "1 s after a queue-runner start" in proc.stdout and "instantaneous" in proc.stdout


def test_explain_shows_origins_and_defaults(tmp_path):
    scen = write(tmp_path / "e.toml", SHORT)
    proc = relaysim("explain", scen, "--set", "upstream.queue_run_delay=1000s")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()

    def line(name):
        return next(x for x in lines if x.startswith(name + " "))

    assert line("upstream.queue_run_delay = 1000s").endswith("# --set")
    assert line("upstream.maximal_queue_lifetime = 5d").endswith("# file")
    assert line("senders.0.rate = 2000/d").endswith("# file")
    assert not any(x.startswith("upstream.maximal_backoff_time ") for x in lines)
    assert "changes.0.relay.unknown_local_recipient_reject_code = 550" in proc.stdout
    full = relaysim("explain", scen, "-d").stdout
    assert any(x.startswith("upstream.maximal_backoff_time = 4000s") and x.endswith(
        "# default") for x in full.splitlines())


def test_explain_littles_law(tmp_path):
    scen = write(tmp_path / "e.toml", SHORT)
    out = relaysim("explain", scen).stdout
    # lambda = 2000/d x 0.3 = 600/d; W = the exact residence time of the default schedule
    from sim.reports.explain import residence_time
    from sim.scenario import Upstream
    expected = 600 / 86400 * residence_time(Upstream())
    assert 3005 < expected < 3010  # 5 d plus about 17.5 min
    assert "lambda = 600/d" in out
    assert f"Little's-law plateau = lambda x W = {expected:.0f} messages" in out
    out550 = relaysim("explain", scen, "--set",
                      "relay.unknown_local_recipient_reject_code=550").stdout
    assert "no estimate" in out550 and "550" in out550


MAIN_CF = '''
[upstream]
main_cf = """
# pasted from postconf -n
maximal_queue_lifetime = 2
smtpd_banner = $myhostname ESMTP
"""

[relay]
main_cf = """
smtpd_banner = relay ESMTP
unknown_local_recipient_reject_code = 450
"""
'''


def test_main_cf_bare_number_is_days_with_origin_main_cf(tmp_path):
    scen = write(tmp_path / "m.toml", MAIN_CF)
    proc = relaysim("explain", scen)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(x.startswith("upstream.maximal_queue_lifetime = 2d ") and x.endswith(
        "# main_cf") for x in lines)
    assert any(x.startswith("relay.unknown_local_recipient_reject_code = 450 ") and x.endswith(
        "# main_cf") for x in lines)


def test_main_cf_unknown_name_is_an_error_with_did_you_mean(tmp_path):
    scen = write(tmp_path / "m.toml", MAIN_CF.replace("maximal_queue_lifetime = 2",
                                                      "maximal_queue_lifetim = 2"))
    for command in ("explain", "run"):
        proc = relaysim(command, scen, *(["--out", tmp_path / "o"] if command == "run" else []))
        assert proc.returncode == 2
        assert len(proc.stderr.splitlines()) == 1
        assert "maximal_queue_lifetim" in proc.stderr
        assert "did you mean 'maximal_queue_lifetime'" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_main_cf_not_modelled_names_are_listed_once(tmp_path):
    scen = write(tmp_path / "m.toml", MAIN_CF)
    out = relaysim("explain", scen).stdout
    listed = [x for x in out.splitlines() if x.startswith("# not modelled")]
    assert len(listed) == 1 and listed[0].count("smtpd_banner") == 1
    # and the pasted main.cf's listing names each host's line once
    assert sum("main_cf line" in x and "smtpd_banner" in x for x in out.splitlines()) == 2


def test_main_cf_file_passes_through(tmp_path):
    cf = write(tmp_path / "main.cf", "maximal_queue_lifetime = 3\nqueue_run_delay = 1000\n")
    scen = write(tmp_path / "f.toml", f'[upstream]\nmain_cf_file = "{cf}"\n')
    proc = relaysim("explain", scen)
    assert proc.returncode == 0, proc.stderr
    assert "upstream.maximal_queue_lifetime = 3d" in proc.stdout
    assert timeline_rows(proc.stdout)[1] == (2, 999)


# --- qshape and plot -------------------------------------------------------------------------

def test_qshape_prints_the_table_at_the_nearest_sample(run_dir):
    out, _ = run_dir
    rows = [[int(v) for v in line.split(",")] for line in
            (out / "qshape.csv").read_text().splitlines()[1:]]
    proc = relaysim("qshape", out, "--at", "11h")
    assert proc.returncode == 0, proc.stderr
    head, _, table = proc.stdout.partition("\n")
    assert head == ("deferred queue at 11h of the run (the sample nearest to --at 11h), "
                    "messages by recipient domain, age since arrival in minutes")
    assert table == format_table({"example.com": rows[11][1:]})
    assert table.splitlines()[0].split() == ["T", *QSHAPE_LABELS]
    near = relaysim("qshape", out, "--at", "41000s").stdout  # 11.4h: nearest 11
    assert near.startswith("deferred queue at 11h of the run (the sample nearest to --at "
                           "41000s)") and near.partition("\n")[2] == table
    assert relaysim("qshape", out, "--at", "11.6h").stdout.partition("\n")[2] == format_table(
        {"example.com": rows[12][1:]})
    last = relaysim("qshape", out, "--queue", "deferred").stdout
    assert last == ("deferred queue at 1d of the run (its last sample), messages by recipient "
                    "domain, age since arrival in minutes\n"
                    + format_table({"example.com": rows[-1][1:]}))


def test_qshape_rejects_times_outside_the_run_and_other_queues(run_dir):
    out, _ = run_dir
    for args, key in ((["--at", "3d"], "--at"), (["--at", "soon"], "--at"),
                      (["--queue", "active"], "--queue"), (["-s"], "-s"), (["-b", "4"], "-b"),
                      (["deferred"], "QUEUE")):
        proc = relaysim("qshape", out, *args)
        assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
        assert key in proc.stderr


POSTQUEUE = Path(__file__).resolve().parent / "data" / "postqueue"


@pytest.mark.parametrize("case", json.loads((POSTQUEUE / "qshape.json").read_text()),
                         ids=lambda r: " ".join(r["args"]) or "default")
def test_qshape_of_a_postqueue_file_is_the_real_qshape(case):
    """relaysim qshape FILE with qshape's own options prints, under its caption line, what
    real Postfix 3.7.11 qshape printed on the same live queue (tests/data/postqueue)."""
    import datetime as dt

    now = dt.datetime.fromtimestamp(int(case["now"]), dt.UTC).isoformat()
    proc = relaysim("qshape", POSTQUEUE / "running.jsonl", "--now", now, *case["args"])
    assert proc.returncode == 0, proc.stderr
    head, _, table = proc.stdout.partition("\n")
    assert table == case["output"]
    queues = [a for a in case["args"] if not a.startswith("-") and not a.isdigit()]
    assert head.startswith(" and ".join(queues or ["incoming", "active"]) + " queue")
    assert f"at {now.replace('+00:00', '.000000+00:00')} (--now)" in head
    assert ("messages by sender domain" if "-s" in case["args"] else "recipients by domain") \
        in head


def test_qshape_of_a_postqueue_file_rejects_bad_options(tmp_path):
    f = POSTQUEUE / "running.jsonl"
    for args, key in ((["-b", "0"], "-b"), (["-t", "-5"], "-t"), (["defered"], "QUEUE"),
                      (["--at", "1d"], "--at"), (["--now", "soon"], "--now")):
        proc = relaysim("qshape", f, *args)
        assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
        assert key in proc.stderr and "Traceback" not in proc.stderr
    assert "did you mean 'deferred'" in relaysim("qshape", f, "defered").stderr
    other = tmp_path / "mailq.txt"
    other.write_text("-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n")
    proc = relaysim("qshape", other)
    assert proc.returncode == 2 and "postqueue -j" in proc.stderr


def test_plot_redraws_the_figures_from_saved_files(run_dir, tmp_path):
    pytest.importorskip("sim.reports.plotting")
    out = tmp_path / "copy"
    shutil.copytree(run_dir[0], out)
    figures = {p.name for p in out.iterdir() if p.suffix in (".png", ".svg")}
    assert figures, "the run drew no figures"
    for name in figures:
        (out / name).unlink()
    data = {n: (out / n).read_bytes() for n in ("timeseries.csv", "summary.json")}
    proc = relaysim("plot", out)
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in out.iterdir() if p.suffix in (".png", ".svg")} == figures
    assert {n: (out / n).read_bytes() for n in data} == data


# --- help ------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [[], ["run"], ["explain"], ["qshape"], ["plot"], ["replay"]],
                         ids=["main", "run", "explain", "qshape", "plot", "replay"])
def test_help_shows_an_example(command):
    proc = relaysim(*command, "--help")
    assert proc.returncode == 0
    assert "example" in proc.stdout and "relaysim " + " ".join(command) in proc.stdout


def test_console_script_matches_python_m_sim():
    if not RELAYSIM.exists():
        pytest.skip("relaysim console script not installed in this environment")
    a = subprocess.run([RELAYSIM, "--help"], capture_output=True, text=True)
    b = relaysim("--help")
    assert a.returncode == b.returncode == 0 and a.stdout == b.stdout
    c = subprocess.run([RELAYSIM, "run", "missing.toml"], capture_output=True, text=True)
    assert c.returncode == 2 and c.stderr == relaysim("run", "missing.toml").stderr


# --- run folders: checked first, replaced as a whole, SIGTERM like SIGINT ----------------------

def test_sigterm_keeps_the_previous_run_and_exits_143(run_dir, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(run_dir[0], out)
    before = snapshot(out)
    long = write(tmp_path / "long.toml", SHORT.replace('duration = "1d"', 'duration = "300d"'))
    proc = subprocess.Popen([sys.executable, "-m", "sim", "run", str(long), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    assert proc.poll() is None, "the long run ended before the signal"
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert len(stderr.splitlines()) == 1 and "terminated" in stderr and "Traceback" not in stderr
    assert snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_file_that_cannot_be_replaced_leaves_the_old_run_whole(run_dir, tmp_path):
    # the old run folder has a directory where the new run writes summary.json: the folders
    # are swapped as a whole (before: every other file new, that one old)
    from sim.reports.output import stage_and_commit

    out = tmp_path / "out"
    shutil.copytree(run_dir[0], out)
    (out / "summary.json").unlink()
    (out / "summary.json").mkdir()
    (out / "notes.txt").write_text("mine")
    written = stage_and_commit(out, lambda st: [(st / n).write_text("new") for n in
                                                ("summary.json", "timeseries.csv")])
    assert {p.name for p in written} == {"summary.json", "timeseries.csv"}
    assert (out / "summary.json").read_text() == "new" and (out / "notes.txt").read_text() == "mine"
    assert (out / "timeseries.csv").read_text() == "new"
    assert (out / "qshape.csv").read_bytes() == (run_dir[0] / "qshape.csv").read_bytes()


def test_stale_staging_folders_of_killed_runs_are_removed(run_dir, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(run_dir[0], out)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".out.staging-{dead.pid}-abc"
    stale.mkdir()
    (stale / "summary.json").write_text("half a run")
    alive = tmp_path / f".out.staging-{os.getpid()}-xyz"  # a run still going: kept
    alive.mkdir()
    scen = write(tmp_path / "s.toml", SHORT.replace('duration = "1d"', 'duration = "2h"'))
    proc = relaysim("run", scen, "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert not stale.exists() and alive.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [alive.name]


def test_sigkill_while_writing_leaves_the_old_run_and_the_next_run_cleans_up(run_dir, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(run_dir[0], out)
    before = snapshot(out)
    code = ("import os, signal, sys\nfrom sim.reports import output\n"
            "def fill(st):\n    (st / 'summary.json').write_text('half')\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n"
            f"output.stage_and_commit({str(out)!r}, fill)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL
    assert snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.staging-")]
    from sim.reports.output import check_output

    check_output(out)  # what every run does first
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("out, key", [
    ("/proc/relaysim-nope", "--out"), ("x" * 5000, "--out"), ("a\0b", "--out"),
    ("/etc", "--out")], ids=["proc", "long-name", "nul", "not-a-run-folder"])
def test_out_is_checked_before_simulating(tmp_path, out, key):
    from sim.reports.output import check_output

    with pytest.raises(ScenarioError) as e:
        check_output(out)
    assert e.value.key == key
    assert not list(tmp_path.iterdir())


def test_the_default_folder_stays_under_results(tmp_path):
    scen = write(tmp_path / "weird name!.toml", SHORT.replace('duration = "1d"',
                                                              'duration = "2h"'))
    proc = relaysim("run", scen, "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in (tmp_path / "results").iterdir()] == ["weird_name_"]


def test_plot_and_qshape_refuse_a_folder_with_an_empty_summary(run_dir, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(run_dir[0], out)
    (out / "summary.json").write_text("{}")
    for command in ("qshape", "plot"):
        proc = relaysim(command, out)
        assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
        assert "RESULTS_DIR" in proc.stderr and "Traceback" not in proc.stderr


def test_figures_stay_small_however_many_samples(tmp_path):
    pytest.importorskip("sim.reports.plotting")
    # 2 days every 2 s: 86,401 samples (before: a 1.2 GB qshape.svg for 28 days at 1 s)
    scen = write(tmp_path / "dense.toml", SHORT.replace('duration = "1d"', 'duration = "2d"')
                 .replace('sample_interval = "1h"', 'sample_interval = "2s"'))
    proc = relaysim("run", scen, "--out", tmp_path / "out", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert len((tmp_path / "out" / "timeseries.csv").read_text().splitlines()) == 86402
    sizes = {p.name: p.stat().st_size for p in (tmp_path / "out").iterdir()
             if p.suffix in (".svg", ".png")}
    assert sizes and max(sizes.values()) < 5_000_000, sizes


def test_a_linked_run_folder_is_replaced_where_it_points(run_dir, tmp_path):
    from sim.reports.output import stage_and_commit

    real = tmp_path / "real"
    shutil.copytree(run_dir[0], real)
    (tmp_path / "link").symlink_to(real)
    stage_and_commit(tmp_path / "link", lambda st: (st / "summary.json").write_text("new"))
    assert (tmp_path / "link").is_symlink() and (real / "summary.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


def test_compiling_is_announced_once_and_timed(capsys):
    """A cold numba cache: one line as compiling starts, the time added up; warm: silent."""
    from numba import njit

    from sim.cli import _CompileNotice

    kernel = njit(lambda x: x + 1)
    with _CompileNotice() as cold:
        kernel(1)
        njit(lambda x: x * 2)(1)
    assert capsys.readouterr().err == ("relaysim: compiling the simulation kernels (numba; the "
                                       "first run only, a minute or two) ...\n")
    assert cold.seconds > 0
    with _CompileNotice() as warm:
        kernel(2)
    assert capsys.readouterr().err == "" and warm.seconds == 0
    with _CompileNotice(enabled=False) as quiet:
        njit(lambda x: x - 1)(1)
    assert capsys.readouterr().err == "" and quiet.seconds == 0


def test_keys_of_another_mta_warn_after_every_check(tmp_path):
    """A key of Exim's schedule with mta = postfix: checked, one warning once the input is
    good; a bad input after it is still one line (the warning is not printed before it)."""
    scen = write(tmp_path / "o.toml", SHORT.replace("[upstream]\n", '[upstream]\nexim_retry_rule'
                                                    ' = "F,2h,15m"\n'))
    proc = relaysim("explain", scen)
    assert proc.returncode == 0 and proc.stderr == (
        "relaysim: warning: upstream.exim_retry_rule has no effect with upstream.mta = postfix "
        "(only exim reads it); checked all the same\n")
    bad = relaysim("run", scen, "--queue-time", "2026-01-01T00:00:00Z", "--out", tmp_path / "x")
    assert bad.returncode == 2 and bad.stderr.startswith("relaysim: error: --queue-time = ")
    assert len(bad.stderr.splitlines()) == 1 and not (tmp_path / "x").exists()
    bad = relaysim("explain", scen, "--set", "upstream.exim_retry_rule=F,2x")
    assert bad.returncode == 2 and bad.stderr.startswith(
        "relaysim: error: upstream.exim_retry_rule = F,2x: expected Exim retry rules")
