"""The relaysim command: run a scenario, explain it, print a qshape table, redraw figures.

Public names: main.

Contract:
- main(argv) -> exit status; `relaysim ...` and `python -m sim ...` both call it.
  `run` simulates a scenario file and writes its run folder (sim.reports.output.write_run),
  then prints a short summary on stdout; `explain` prints the effective parameters, the retry
  timeline of one deferred message and the Little's-law plateau of the messages queued
  upstream, deferred + active (computed by
  sim.reports.explain); `qshape` prints the deferred queue's qshape table at a sample of a run
  folder (sim.postfix.qshape); `plot` redraws a run folder's figures without simulating;
  `sweep` runs factors x seeds (sim.studies.command); `replay` simulates the arrivals of a
  real upstream Postfix log (sim.postfix.maillog.read_arrivals, replay_trace) under a
  scenario's configuration instead of its senders and writes the same run folder as `run`
  (plus summary.json's `replay`: what was read and skipped, also one line on stderr).
- Every bad input (scenario, --set, --seed, --out, arguments) is one line on stderr,
  `relaysim: error: <what>`, and exit status 2, before anything is written; the output folder
  is checked writable before simulating. `run` needs the quantities that define a study in the
  file (Scenario.from_toml, require_study). A run that fails or is interrupted leaves the
  previous run's files untouched; Ctrl-C exits with 130, SIGTERM likewise with 143.
- The progress bar (tqdm, simulated days and ETA) goes to stderr, only when stderr is a
  terminal and without --quiet. When `run` has to compile the simulation kernels (numba's
  cache is cold: a fresh clone, a changed kernel), it says so on stderr as the compiling
  starts and how long it took once the run is done, terminal or not (not with --quiet).
This is the only module that prints.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

from sim.errors import ScenarioError

PROG = "relaysim"
DAY = 86400.0

EPILOG_MAIN = """examples:
  relaysim run experiments/scenarios/seed_story.toml
  relaysim run seed_story.toml --seed 7 --set upstream.maximal_queue_lifetime=10d
  relaysim explain seed_story.toml
  relaysim qshape results/seed_story --at 21d
  relaysim plot results/seed_story
  relaysim sweep seed_story.toml --out runs/sw --vary upstream.maximal_queue_lifetime=1d,5d
"""
EPILOG_RUN = """example:
  relaysim run experiments/scenarios/seed_story.toml --out /tmp/story --seed 7 \\
      --set upstream.maximal_queue_lifetime=10d --set relay.unknown_local_recipient_reject_code=550

writes summary.json, timeseries.csv, qshape.csv, delay_cdf.csv and the standard figures into
DIR (default results/<scenario name>/); files of an earlier run there are replaced only once
the new run has finished.
"""
EPILOG_EXPLAIN = """example:
  relaysim explain experiments/scenarios/seed_story.toml --set upstream.queue_run_delay=1000s

shows name = value  # origin (default, file, main_cf, --set), like `postconf -n` (-d: all).
"""
EPILOG_QSHAPE = """examples:
  relaysim qshape results/seed_story --at 21d
  relaysim qshape results/seed_story/postqueue-7d.json --now 2026-01-12T00:00:00Z -s deferred
  relaysim qshape live.jsonl -b 6 -t 60 deferred hold

of a run folder: the deferred messages recorded at the sample nearest to --at, by age since
arrival in qshape's buckets (minutes); of a postqueue -j file (a live queue, or a run's
--snapshot-at files): recipients (-s: messages by sender domain) of the QUEUEs (default
incoming active, as qshape) by age at --now, with qshape's -s, -b, -t and -l. A first line
says which queue, sample time and count the table shows.
"""
EPILOG_PLOT = """example:
  relaysim plot results/seed_story
"""


class _UsageError(Exception):
    """argparse's complaint, raised instead of printing usage and exiting."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise _UsageError(message)


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = _Parser(prog=PROG, description="Simulate an upstream mail queue in front of an SMTP "
                "relay under real MTA retry schedules.", epilog=EPILOG_MAIN,
                formatter_class=fmt)
    from sim import __version__

    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True,
                           parser_class=_Parser)

    def overrides(sp):
        sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any scenario key, checked like the file "
                        "(e.g. upstream.maximal_queue_lifetime=10d, senders.0.rate=5000/d); "
                        "repeatable")

    r = sub.add_parser("run", help="simulate a scenario and write its results",
                       description="Simulate SCENARIO.toml and write its run folder.",
                       epilog=EPILOG_RUN, formatter_class=fmt)
    r.add_argument("scenario", metavar="SCENARIO.toml")
    r.add_argument("--out", metavar="DIR", help="output folder (default results/<name>/)")
    r.add_argument("--seed", type=int, metavar="N", help="root seed (default: the scenario's)")
    r.add_argument("--seeds", type=int, metavar="N", help="N replications (seeds spawned from "
                   "the root seed): runs.csv, summary.csv with 95 %% intervals (as sweep)")
    r.add_argument("--workers", type=int, metavar="N", help="with --seeds: worker processes")
    iq = r.add_argument_group("start from a real queue")
    iq.add_argument("--initial-queue", metavar="FILE", help="postqueue -j output of the "
                    "upstream: the run starts from this queue, every message with its real age "
                    "(time 0 = the snapshot's time)")
    iq.add_argument("--queue-time", metavar="TIME", help="RFC 3339 time the snapshot was taken "
                    "(default: its newest arrival)")
    iq.add_argument("--queue-mtimes", metavar="FILE", help="the deferred files' mtimes (their "
                    "wake-up times), lines 'QUEUE_ID MTIME' as find -printf '%%f %%T@\\n' "
                    "writes them; default: rebuilt from the arrival times")
    _postfix_file_options(r)
    overrides(r)
    r.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar and no summary")
    r.set_defaults(func=_run)

    _replay_parser(sub, fmt, overrides)

    e = sub.add_parser("explain", help="show effective parameters and the retry timeline",
                       description="Show the effective parameters with their origin, the retry "
                       "timeline of one deferred message and the Little's-law plateau of the "
                       "messages queued upstream (deferred + active).",
                       epilog=EPILOG_EXPLAIN, formatter_class=fmt)
    e.add_argument("scenario", metavar="SCENARIO.toml")
    e.add_argument("-d", "--defaults", action="store_true",
                   help="show every parameter, not only those set or differing from defaults")
    overrides(e)
    e.set_defaults(func=_explain)

    _qshape_parser(sub, fmt)

    pl = sub.add_parser("plot", help="redraw a run's figures from its files",
                        description="Redraw the standard figures from a run folder without "
                        "simulating again.", epilog=EPILOG_PLOT, formatter_class=fmt)
    pl.add_argument("results", metavar="RESULTS_DIR")
    pl.set_defaults(func=_plot)

    from sim.studies import command as sweep_command

    sw = sub.add_parser("sweep", help="run a scenario over factors x seeds and summarise it",
                        description="Run the full factorial of the --vary keys, each setting "
                        "with several seeds, resumably, on local processes or a Dask cluster.",
                        epilog=sweep_command.EPILOG, formatter_class=fmt)
    sweep_command.add_arguments(sw)
    overrides(sw)
    sw.set_defaults(func=_sweep)
    return p


def _postfix_file_options(parser, epoch_default: str = "2026-01-05T00:00:00Z, so a seed "
                          "gives the same bytes") -> None:
    """run's and replay's options for Postfix's formats written from the attempt stream."""
    pf = parser.add_argument_group("Postfix's own formats, written from the attempt stream")
    pf.add_argument("--maillog", metavar="DIR", help="write Postfix 3.7 log lines of the "
                    "upstream and the relay (upstream.maillog, relay.maillog), as pflogsumm and "
                    "postfix_exporter read them")
    pf.add_argument("--metrics", metavar="FILE", help="write OpenMetrics text under "
                    "postfix_exporter's names (promtool tsdb create-blocks-from openmetrics)")
    pf.add_argument("--snapshot-at", metavar="TIMES", help="write the upstream queue as "
                    "postqueue -j lists it at these run times (e.g. 7d,14d) and at the end, "
                    "into OUT/postqueue-<time>.json")
    pf.add_argument("--epoch", metavar="TIME", help="wall-clock time of the run's start, "
                    f"RFC 3339 (default {epoch_default})")
    pf.add_argument("--maillog-window", metavar="T0,T1", help="only log lines in [T0, T1) "
                    "run time, e.g. 6d,7d")
    pf.add_argument("--maillog-sample", type=float, metavar="F", default=1.0,
                    help="log a deterministic fraction F of the messages (0 < F <= 1)")


def _interrupted(e: BaseException | None) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt (or SIGTERM's _Terminated) in e's chain of causes, if any."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, to leave by the same path as Ctrl-C."""


def _on_sigterm(signum, frame):
    raise _Terminated


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    import signal
    import threading

    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL):
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        args = _parse(argv)
        return args.func(args)
    except (ScenarioError, _UsageError) as e:
        return _fail(str(e), 2)
    except KeyboardInterrupt as e:
        return _stopped(e)
    except Exception as e:
        # Ctrl-C while compiled (numba) code runs, compiles or calls back into Python surfaces
        # as another exception (SystemError, a numba error, an OSError) caused by the
        # KeyboardInterrupt
        if _interrupted(e):
            return _stopped(_interrupted(e))
        if isinstance(e, OSError):
            return _fail(f"{e.filename or ''}: {e.strerror or e}".lstrip(": "), 1)
        raise


def _parse(argv):
    """The arguments; qshape's queue names may also follow its options, as qshape takes them
    (argparse alone stops reading positionals at the first option)."""
    args, extra = _parser().parse_known_args(argv)
    if extra and getattr(args, "command", None) == "qshape" and not any(
            x.startswith("-") for x in extra):
        args.queues = [*args.queues, *extra]
    elif extra:
        raise _UsageError(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _stopped(e) -> int:
    term = isinstance(e, _Terminated)
    print(f"{PROG}: {'terminated' if term else 'interrupted'}; earlier results left as they "
          "were", file=sys.stderr)
    return 143 if term else 130


def _fail(message: str, status: int) -> int:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return status


# --- scenario loading ------------------------------------------------------------------------

def _set_value(text: str):
    """A --set value: TOML for lists, tables and quoted strings, else the text as written
    (the scenario parses strings for numbers, times, rates and yes/no)."""
    if text[:1] in "[{\"'":
        try:
            return tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            pass
    return text


def _overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or not all(key.split(".")):
            raise ScenarioError("--set", item, "KEY=VALUE, e.g. "
                                "--set upstream.maximal_queue_lifetime=10d")
        out[key] = _set_value(value.strip())
    return out


def _scenario(args, require_study: bool = False, base=None):
    """The scenario file (or `base`) with --set and --seed applied, every schedule parameter
    checked."""
    from sim.model.qmgr import schedule_params
    from sim.scenario import Scenario

    scen = base or Scenario.from_toml(args.scenario, require_study=require_study)
    ov = _overrides(args.set)
    if ov:
        scen = scen.with_overrides(ov)
    if getattr(args, "seed", None) is not None:
        scen = scen.with_overrides({"simulation.seed": args.seed}, origin="--seed")
    for i, (_, up, _) in enumerate(scen.timeline()):
        schedule_params(up)  # Exim retry rules are parsed here, not only mid-run
        _check_attempts(up, "upstream" if i == 0 else f"changes[{i - 1}].upstream")
    return scen


def _warn(scen) -> None:
    """The scenario's warnings, once every check has passed (a bad input stays one line):
    Postfix's own (unused parameter) and keys without effect for the upstream's MTA."""
    from sim.scenario import no_effect

    for w in [*scen.warnings, *no_effect(scen)]:
        print(f"relaysim: warning: {w}", file=sys.stderr)


MAX_ATTEMPTS = 100_000  # per message before it expires: explain's timeline, a run's work
_LIFETIME_KEY = {"postfix": "maximal_queue_lifetime", "exim": "exim_retry_rule",
                 "sendmail": "queuereturn", "qmail": "queuelifetime",
                 "exchange": "message_expiration_timeout",
                 "exchange-online": "message_expiration_timeout", "list": "lifetime"}


def _check_attempts(up, prefix: str) -> None:
    """A schedule that retries one message more than MAX_ATTEMPTS times before it expires
    (1 s gaps over months) is refused: explain would spin on it and a run would do little else."""
    from sim.reports.explain import retry_timeline

    try:
        retry_timeline(up, max_attempts=MAX_ATTEMPTS)
    except ValueError:
        from sim.units import format_time

        key = f"{prefix}.{_LIFETIME_KEY.get(up.mta, 'mta')}"
        value = getattr(up, _LIFETIME_KEY.get(up.mta, "mta"), up.mta)
        raise ScenarioError(key, format_time(value) if isinstance(value, float) else value,
                            f"a schedule that expires a message within {MAX_ATTEMPTS} attempts "
                            "(this one retries more often for longer: shorten the lifetime or "
                            "lengthen the gaps)") from None


# --- run -------------------------------------------------------------------------------------

def _run(args) -> int:
    from sim.reports.output import check_output
    from sim.scenario import check_samples

    scen = _scenario(args, require_study=True)
    check_samples(scen)
    if args.seeds is not None:
        from sim.studies.command import replications

        _warn(scen)
        _only_empty_queue(args, scen, "--seeds")
        status, text = replications(args, scen)
        print(text, end="")
        return status
    out = Path(args.out) if args.out else Path("results") / scen.simulation.name
    check_output(out, "--out" if args.out else "simulation.name")
    initial, epoch = _initial_queue(args, scen)
    files = _postfix_files(args, scen, out, epoch)
    _warn(scen)
    return _simulate_into(args, scen, out, files, initial_queue=initial)


def _simulate_into(args, scen, out: Path, files, summary: dict | None = None, **kw) -> int:
    """Simulate (simulate()'s keywords `kw`), write the run folder and the Postfix files, print
    the summary: the end of `run` and `replay`, once checked; `summary` is added to the
    summary.json's summary."""
    import time

    from sim.model.simulate import simulate
    from sim.reports.output import plotting_available, write_run

    show = not args.quiet and sys.stderr.isatty()
    bar = _bar(scen) if show else None
    wall0 = time.perf_counter()
    try:
        with _CompileNotice(bar, enabled=not args.quiet) as compiling:
            results = simulate(scen, progress=None if bar is None else
                               (lambda t: bar.update(t / DAY - bar.n)),
                               on_attempts=files.on_attempts if files.on else None, **kw)
    except BaseException:
        files.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
    wall1 = time.perf_counter()
    if compiling.seconds:
        print(f"{PROG}: compiled the simulation kernels in {compiling.seconds:.0f} s (numba "
              "caches them: later runs start at once)", file=sys.stderr)
    results.summary.update(summary or {})
    written = write_run(results, out) + files.close()
    if not args.quiet:
        print(_summary_text(results, out, written, (wall1 - wall0, time.perf_counter() - wall1,
                                                    compiling.seconds),
                            plotting_available()), end="")
    return 0


class _CompileNotice:
    """While entered: numba compiling a kernel (a cold cache) prints one line on stderr as it
    starts (above the progress bar) and adds up the compile time in `seconds`."""

    def __init__(self, bar=None, enabled: bool = True):
        self.bar, self.enabled, self.seconds = bar, enabled, 0.0
        self._depth, self._t0 = 0, 0.0

    def __enter__(self):
        import time

        from numba.core import event

        notice = self

        class Listener(event.Listener):
            def on_start(self, ev):
                if notice._depth == 0:
                    if notice.seconds == 0 and notice.enabled:
                        notice._say(f"{PROG}: compiling the simulation kernels (numba; the "
                                    "first run only, a minute or two) ...")
                    notice._t0 = time.perf_counter()
                notice._depth += 1

            def on_end(self, ev):
                notice._depth -= 1
                if notice._depth == 0:
                    notice.seconds += time.perf_counter() - notice._t0

        self._listener = Listener()
        event.register("numba:compile", self._listener)
        return self

    def __exit__(self, *exc):
        from numba.core import event

        event.unregister("numba:compile", self._listener)
        if not self.enabled:
            self.seconds = 0.0
        return False

    def _say(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)


def _stamp(key: str, text: str) -> float:
    """Unix seconds of an RFC 3339 time (UTC when no offset is given)."""
    import datetime as dt

    try:
        stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ScenarioError(key, text, "an RFC 3339 time like 2026-01-05T00:00:00Z") from None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)).timestamp()


def _initial_queue(args, scen):
    """(InitialQueue or None, the snapshot's time as the outputs' epoch or None), from
    --initial-queue, --queue-time and --queue-mtimes or the scenario's simulation.initial_queue,
    queue_time and queue_mtimes (an option wins over its key), read before simulating."""
    import os

    def given(name: str) -> tuple[str, str]:
        """(value, the key to name in errors) of an option or its scenario key."""
        if getattr(args, name, None):
            return getattr(args, name), "--" + name.replace("_", "-")
        return getattr(scen.simulation, name), f"simulation.{name}"

    (file, file_key), (qt, qt_key), (mt, mt_key) = map(given, ("initial_queue", "queue_time",
                                                               "queue_mtimes"))
    if not file:
        for v, key in ((qt, qt_key), (mt, mt_key)):
            if v:
                raise ScenarioError(key, v, "only with --initial-queue or "
                                    "simulation.initial_queue")
        return None, None
    from sim.postfix import postqueue

    for v, key in ((file, file_key), (mt, mt_key)):
        if v and not os.path.isfile(v):
            raise ScenarioError(key, v, "an existing file" + (
                " (relative to the scenario file's folder)" if key.startswith("sim") else ""))
    t = _stamp(qt_key, qt) if qt else None
    snap = postqueue.read_postqueue(file, t)
    mtimes = postqueue.read_mtimes(mt) if mt else None
    q, held = postqueue.initial_queue(snap, scen, mtimes)
    if held:
        print(f"relaysim: warning: {file_key}: {held} message(s) on hold stay held and "
              "are left out of the run", file=sys.stderr)
    return q, snap.time


def _only_empty_queue(args, scen, what: str) -> None:
    """`what` starts every run from an empty queue: refuse an initial queue rather than
    ignore it."""
    file = getattr(args, "initial_queue", None) or scen.simulation.initial_queue
    if file:
        key = "--initial-queue" if getattr(args, "initial_queue", None) else \
            "simulation.initial_queue"
        raise ScenarioError(key, file, f"no initial queue with {what} (it starts every run "
                            "from an empty queue); use relaysim run")


def _postfix_files(args, scen, out: Path, queue_epoch: float | None = None):
    """The run's Postfix-format outputs, checked before simulating (--maillog, --metrics,
    --snapshot-at, --epoch, --maillog-window, --maillog-sample); the epoch defaults to the
    initial queue's time."""
    from sim.reports.postfix_files import PostfixFiles, parse_times

    duration = scen.simulation.duration
    epoch = _stamp("--epoch", args.epoch) if args.epoch else queue_epoch
    window = None
    if args.maillog_window:
        window = tuple(parse_times(args.maillog_window, "--maillog-window", duration))
        if len(window) != 2:
            raise ScenarioError("--maillog-window", args.maillog_window,
                                "two times T0,T1 with T0 < T1, like 6d,7d")
    if not 0 < args.maillog_sample <= 1:
        raise ScenarioError("--maillog-sample", str(args.maillog_sample),
                            "a fraction of the messages, 0 < F <= 1")
    snaps = None
    if args.snapshot_at:
        snaps = (out, parse_times(args.snapshot_at, "--snapshot-at", duration))
    return PostfixFiles(duration, args.maillog, args.metrics, snaps, epoch, window,
                        args.maillog_sample, labels={"scenario": scen.simulation.name},
                        run_folder=out)


def _bar(scen):
    from tqdm import tqdm

    return tqdm(total=scen.simulation.duration / DAY, file=sys.stderr, leave=False,
                desc=scen.simulation.name, dynamic_ncols=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| day {n:.1f} of {total:g} "
                "[{elapsed}<{remaining}]")


def _summary_text(results, out: Path, written, wall: tuple[float, float, float],
                  plotted: bool) -> str:
    """The run's summary; `wall` is (simulating, writing the files and figures, compiling
    while simulating) in seconds."""
    from sim.units import format_time

    s, scen = results.summary, results.scenario
    r = s["recipients"]
    d = s["delivery_delay_s"]

    def delay(v):  # measured: 2 significant digits below a minute, whole seconds above
        return "-" if v is None or v != v else format_time(float(f"{v:.2g}") if v < 60
                                                           else round(v))

    figs = [p.name for p in written if p.suffix in (".png", ".pdf", ".svg")]
    lines = [
        f"{scen.simulation.name} (seed {results.seed}): "
        f"{format_time(scen.simulation.duration)} simulated in {wall[0]:.1f} s"
        + (f" ({wall[2]:.1f} s of it compiling, the first run only)" if wall[2] else "")
        + ", files "
        f"{'and figures ' if figs else ''}written in {wall[1]:.1f} s",
        f"recipients: received {r['received']}, delivered {r['delivered']}, bounced "
        f"{r['bounced']}, expired {r['expired']}, still queued {r['queued_at_end']}",
        f"queued upstream (deferred + active) peak: {s['queued_peak_messages']} messages; "
        f"deferred queue peak: {s['deferred_peak_messages']}",
        f"delivery delay: p50 {delay(d['p50'])}, p95 {delay(d['p95'])}, p99 {delay(d['p99'])}, "
        f"max {delay(d['max'])}",
        f"backscatter: {s['dsn']['backscatter']} DSNs to forged senders (of "
        f"{s['dsn']['nondelivery']} non-delivery DSNs)",
    ]
    if scen.not_modelled:
        lines.append("not modelled (ignored): " + ", ".join(scen.not_modelled))
    lines.append(f"wrote {out}/: " + ", ".join(p.name for p in written
                                               if p.suffix in (".json", ".csv")))
    lines.append(f"figures: {', '.join(figs)}" if figs else "figures: none ("
                 "sim.reports.plotting is not available)" if not plotted else "figures: none")
    return "\n".join(lines) + "\n"


# --- replay ----------------------------------------------------------------------------------

EPILOG_REPLAY = """example:
  relaysim replay /var/log/mail.log experiments/scenarios/seed_story.toml \\
      --set relay.unknown_local_recipient_reject_code=550 --out /tmp/lastweek-550

takes the messages the log shows arriving (smtpd client= and qmgr's first "queue active"
line: time, size, nrcpt, <> or an ordinary sender, the recipients of its delivery lines) and
simulates them under SCENARIO's configuration instead of its [[senders]]. A recipient is
unknown when the relay's reply to it in the log has status X.1.1 (450/550 4.1.1 "User unknown
in local recipient table"), known otherwise. Time 0 is the log's "postfix/master: daemon
started" line before the first arrival, else the first arrival (both to the whole second);
the run lasts to the log's last line unless SCENARIO or --set gives simulation.duration.
Writes the same run folder as relaysim run (default results/replay-<scenario name>/).
"""


def _replay_parser(sub, fmt, overrides) -> None:
    rp = sub.add_parser("replay", help="simulate the arrivals of a real Postfix log under a "
                        "scenario's configuration",
                        description="Replay the arrival process of a real upstream Postfix "
                        "MAILLOG under SCENARIO.toml's configuration (default: Postfix's and "
                        "relaysim's defaults) and write its run folder.",
                        epilog=EPILOG_REPLAY, formatter_class=fmt)
    rp.add_argument("log", metavar="MAILLOG")
    rp.add_argument("scenario", metavar="SCENARIO.toml", nargs="?")
    rp.add_argument("--out", metavar="DIR", help="output folder "
                    "(default results/replay-<scenario name>/)")
    rp.add_argument("--seed", type=int, metavar="N", help="root seed (default: the scenario's)")
    rp.add_argument("--start", metavar="TIME", help="RFC 3339 time of the run's time 0, at or "
                    "before the first arrival (default: the log's daemon start or first "
                    "arrival, to the whole second)")
    rp.add_argument("--year", type=int, metavar="YYYY", help="year of the log's first line "
                    "when its stamps have none (traditional syslog; default: this year)")
    _postfix_file_options(rp, "the run's time 0: the log's own times")
    overrides(rp)
    rp.add_argument("-q", "--quiet", action="store_true",
                    help="no progress bar and no summary")
    rp.set_defaults(func=_replay)


def _replay(args) -> int:
    import datetime as dt

    from sim.postfix import maillog
    from sim.reports.output import check_output
    from sim.scenario import Scenario, check_samples

    base = None if args.scenario else Scenario.from_dict({"simulation": {"name": "postfix"}})
    scen = _scenario(args, base=base)
    _only_empty_queue(args, scen, "replay")
    if args.year is not None and not 1970 <= args.year <= 9999:
        raise ScenarioError("--year", str(args.year), "a year from 1970 to 9999")
    log = maillog.read_arrivals(args.log, year=args.year)
    if not len(log):
        raise ScenarioError("MAILLOG", args.log, "a Postfix log of the upstream with at least "
                            "one message arriving (smtpd `QID: client=` and qmgr `QID: from=<>, "
                            "size=, nrcpt= (queue active)` lines)")
    start = _stamp("--start", args.start) if args.start else maillog.replay_start(
        log, scen.upstream.queue_run_delay if scen.upstream.mta == "postfix" else None)
    if start > log.t[0]:
        raise ScenarioError("--start", args.start, "a time at or before the log's first "
                            "arrival, " + maillog.rfc3339(float(log.t[0])))
    scen = _replay_scenario(scen, log, start, Path(args.log).name)
    check_samples(scen)
    trace = maillog.replay_trace(log, start, scen.relay.local_users)
    limit = scen.upstream.default_destination_recipient_limit
    if trace.rcpt.shape[1] > limit:
        i = int(((trace.rcpt != -2).sum(axis=1)).argmax())
        raise ScenarioError("upstream.default_destination_recipient_limit", limit,
                            f"at least {trace.rcpt.shape[1]}, the recipients of message "
                            f"{log.queue_id[i]} in the log: relaysim delivers one transaction "
                            "per message attempt")
    out = Path(args.out) if args.out else Path("results") / f"replay-{scen.simulation.name}"
    check_output(out, "--out" if args.out else "simulation.name")
    files = _postfix_files(args, scen, out, start)
    late = int((trace.arrival >= scen.simulation.duration).sum())
    r = log.report
    print(f"{PROG}: replay: {args.log}: {r['lines']} lines, {len(log)} messages arriving from "
          f"{dt.datetime.fromtimestamp(start, dt.UTC):%Y-%m-%d %H:%M:%S} UTC ("
          f"{int((trace.rcpt != -2).sum())} recipients, {int(log.unknown.sum())} unknown at the "
          f"relay); skipped: {r['malformed']} malformed, {r['unrelated']} of other programs, "
          f"{r['without_qmgr']} messages never active, {late} arriving after the run",
          file=sys.stderr)
    replay = {"maillog": str(args.log), "start": maillog.rfc3339(start),
              "messages": len(log) - late, "arriving_after_the_run": late,
              "unknown_recipients": int(log.unknown.sum()),
              "lines": {k: r[k] for k in ("lines", "postfix", "unrelated", "malformed",
                                          "without_qmgr")}}
    _warn(scen)
    return _simulate_into(args, scen, out, files, {"replay": replay}, trace=trace)


def _replay_scenario(scen, log, start: float, name: str):
    """The scenario a replay runs: duration to the log's last line (whole seconds, plus one)
    and a sample interval of at most an hour giving about 1000 samples, unless the scenario
    or --set gives them; its senders are the log (one record, rate 0, for the run folder)."""
    import dataclasses
    import math

    from sim.scenario import Sender

    given = {"simulation.duration", "simulation.sample_interval"} & set(scen.origins)
    ov = {}
    if "simulation.duration" not in given:
        ov["simulation.duration"] = f"{max(1, math.ceil(log.last - start) + 1)}s"
    duration = (float(ov["simulation.duration"][:-1]) if "simulation.duration" in ov
                else scen.simulation.duration)
    if "simulation.sample_interval" not in given:
        ov["simulation.sample_interval"] = f"{min(3600, max(1, math.ceil(duration / 1000)))}s"
    if ov:
        scen = scen.with_overrides(ov, origin="replay")
    return dataclasses.replace(scen, senders=(Sender(name=f"replay of {name}", rate=0.0),))


# --- sweep -----------------------------------------------------------------------------------

def _sweep(args) -> int:
    from sim.studies.command import sweep

    scen = _scenario(args)
    _warn(scen)
    _only_empty_queue(args, scen, "sweep")
    status, text = sweep(args, scen, _set_value)
    print(text, end="")
    return status


# --- explain ---------------------------------------------------------------------------------

def _explain(args) -> int:
    from sim.reports import explain

    scen = _scenario(args)
    params = explain.parameters(scen, all_=args.defaults)
    rows = [(f"{p.name} = {p.value}", p.origin) for p in params]
    for i, ch in enumerate(scen.changes):
        _, up, relay = scen.timeline()[i + 1]
        rows.append((f"changes.{i}.at = {explain.format_value(_field(ch, 'at'), ch.at)}",
                     "file"))
        for sec, table, obj in (("upstream", ch.upstream, up), ("relay", ch.relay, relay)):
            for k in table:
                rows.append((f"changes.{i}.{sec}.{k} = "
                             f"{explain.format_value(_field(obj, k), getattr(obj, k))}", "file"))
    width = max((len(a) for a, _ in rows), default=0)
    what = "every parameter" if args.defaults else "parameters set or differing from defaults"
    out = [f"# {scen.simulation.name}: {what} (origin after #)"]
    out += [f"{a.ljust(width)}  # {o}" for a, o in rows]
    if scen.not_modelled:
        out.append("# not modelled (ignored): " + ", ".join(scen.not_modelled))
    if scen.main_cf:
        out += ["", "# pasted main.cf", *explain.main_cf_lines(scen)]
    out += ["", *_timeline_text(scen), "", *_backlog_text(scen)]
    _warn(scen)
    print("\n".join(out))
    return 0


def _field(obj, name: str):
    import dataclasses

    return next(f for f in dataclasses.fields(obj) if f.name == name)


def _timeline_text(scen) -> list[str]:
    from sim.reports import explain
    from sim.units import format_time as span

    up = scen.upstream
    tl = explain.retry_timeline(up)
    lines = [f"# Retry timeline of one deferred message (upstream.mta = {up.mta}, "
             "configuration at t = 0). Assumed: it arrives",
             "# 1 s after a queue-runner start, has a non-null sender, and every attempt is "
             "instantaneous and deferred.",
             f"{'attempt':>7}  {'since arrival':>14}  {'until returned':>14}"]

    def row(n, t):
        return f"{n:>7}  {span(t):>14}  {span(tl.expiry_s - t):>14}"

    times = [t for _, t in tl.attempts]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    i = 0
    while i < len(times):
        lines.append(row(i + 1, times[i]))
        j = i  # gaps i..j are equal: attempts i..j+1 evenly spaced; show the ends only
        while j + 1 < len(gaps) and gaps[j + 1] == gaps[i]:
            j += 1
        if i < len(gaps) and j - i >= 3:
            lines.append(row(i + 2, times[i + 1]))
            lines.append(f"{'...':>7}  {j - i - 1} more, every {span(gaps[i])}")
            i = j + 1
        else:
            i += 1
    lines.append(f"# returned to the sender at attempt {len(times)}, {span(tl.expiry_s)} "
                 "after arrival: its first failed attempt at an age of "
                 f"{span(explain.lifetime(up))} or more")
    return lines


def _backlog_text(scen) -> list[str]:
    from sim.reports import explain
    from sim.units import format_rate
    from sim.units import format_time as span

    b = explain.littles_law(scen)
    lines = ["# Little's-law plateau of the messages queued upstream (deferred + active; "
             "configuration at t = 0)"]
    if b.messages is None:
        return [*lines, f"no estimate: {b.reason}"]
    who = ", ".join(f"senders.{i}" for i in b.senders)
    lines += [
        f"lambda = {format_rate(b.rate_per_s, 6)}: messages with at least one unknown "
        f"recipient from {who}",
        "         (rate x (1 - (1 - unknown_recipient_fraction)^recipients_per_message))",
        f"W = {span(round(b.residence_s))}: lifetime {span(b.lifetime_s)} + mean expiry lag "
        f"{span(round(b.lag_s))} (exact: the schedule iterated over arrival phases)",
        f"Little's-law plateau = lambda x W = {b.messages:.0f} messages queued upstream "
        "(deferred + active)",
    ]
    if scen.changes:
        lines.append(f"# {len(scen.changes)} scheduled change(s) not included")
    return lines


# --- qshape and plot -------------------------------------------------------------------------

def _qshape_parser(sub, fmt) -> None:
    q = sub.add_parser("qshape", help="print a qshape table of a run or a postqueue -j file",
                       description="Print the qshape table of a run folder's deferred queue "
                       "at the sample nearest to --at, or of the queues of a postqueue -j "
                       "file, with qshape's own options.", epilog=EPILOG_QSHAPE,
                       formatter_class=fmt)
    q.add_argument("results", metavar="RESULTS_DIR|POSTQUEUE.json")
    q.add_argument("queues", nargs="*", metavar="QUEUE", help="of a postqueue -j file: "
                   "incoming, active, deferred, hold, maildrop (default: incoming active)")
    q.add_argument("--at", metavar="TIME", help="of a run folder: simulated time like 21d or "
                   "36h (default: the last sample)")
    q.add_argument("--queue", choices=("deferred",), default="deferred",
                   help="of a run folder: the queue (relaysim records the deferred queue's "
                   "ages)")
    q.add_argument("--now", metavar="TIME", help="of a postqueue -j file: RFC 3339 time the "
                   "ages are taken at (default: its newest arrival)")
    q.add_argument("-s", dest="sender", action="store_true", help="messages by sender domain "
                   "(qshape -s)")
    q.add_argument("-b", dest="bucket_count", type=int, metavar="N",
                   help="number of age buckets (qshape -b, default 10)")
    q.add_argument("-t", dest="bucket_time", type=int, metavar="MIN",
                   help="minutes of the first bucket (qshape -t, default 5)")
    q.add_argument("-l", dest="linear", action="store_true",
                   help="buckets of equal width (qshape -l)")
    q.set_defaults(func=_qshape)


MAX_BUCKETS = 1000  # qshape -b: a table wider than this is unreadable anyway


def _qshape(args) -> int:
    import os

    path = args.results
    is_file = os.path.isfile(path) if "\0" not in str(path) else False
    for key, v in (("-b", args.bucket_count), ("-t", args.bucket_time)):
        hi = MAX_BUCKETS if key == "-b" else 10**6
        if v is not None and not 1 <= v <= hi:
            raise ScenarioError(key, str(v), f"a whole number from 1 to {hi}")
    if is_file:
        return _qshape_of_postqueue(args)
    snapshot_only = [k for k, v in (("-s", args.sender), ("-b", args.bucket_count),
                                    ("-t", args.bucket_time), ("-l", args.linear),
                                    ("--now", args.now)) if v]
    if snapshot_only or args.queues:
        key = snapshot_only[0] if snapshot_only else "QUEUE"
        raise ScenarioError(key, str(path), "a postqueue -j file with this option: a run "
                            "folder keeps the deferred queue's ages in qshape's default "
                            "buckets; run with --snapshot-at and give OUT/postqueue-<time>.json")
    from sim.postfix.qshape import RELAY_DOMAIN, caption, format_table, nearest_sample
    from sim.reports.output import read_run
    from sim.units import format_time, parse_time

    run = read_run(path)
    t_s = run.timeseries["t_s"]
    j = len(t_s) - 1
    if args.at is not None:
        at = parse_time("--at", args.at, "s")
        if at > t_s[-1] + (t_s[1] - t_s[0] if len(t_s) > 1 else 0):
            raise ScenarioError("--at", args.at, "a time within the run, 0s to "
                                + format_time(float(t_s[-1])), problem="after the run's end")
        j = nearest_sample(t_s, at)
    when = f"{format_time(float(t_s[j]))} of the run (" + (
        f"the sample nearest to --at {args.at})" if args.at is not None else "its last sample)")
    print(caption(["deferred"], when, messages=True))
    print(format_table({RELAY_DOMAIN: run.qshape[j].tolist()}), end="")
    return 0


def _qshape_of_postqueue(args) -> int:
    from sim.postfix import postqueue
    from sim.postfix.maillog import rfc3339
    from sim.postfix.qshape import bucket_labels, caption, format_table, snapshot_domains

    if args.at is not None:
        raise ScenarioError("--at", args.at, "only with a run folder; give --now for a "
                            "postqueue -j file")
    queues = args.queues or ["incoming", "active"]
    for name in queues:
        if name not in postqueue.QUEUES:
            from sim.errors import did_you_mean
            raise ScenarioError("QUEUE", name, "queues: " + ", ".join(postqueue.QUEUES),
                                did_you_mean(name, postqueue.QUEUES))
    now = _stamp("--now", args.now) if args.now else None
    snap = postqueue.read_postqueue(args.results, now)
    opts = {"bucket_count": args.bucket_count or 10, "bucket_time": args.bucket_time or 5,
            "linear": args.linear}
    when = rfc3339(float(snap.time)) + (" (--now)" if now is not None else
                                        " (the newest arrival: give --now for the snapshot's "
                                        "time)")
    print(caption(queues, when, sender=args.sender))
    print(format_table(snapshot_domains(snap, queues, args.sender, **opts),
                       bucket_labels(**opts)), end="")
    return 0


def _plot(args) -> int:
    from sim.reports.output import draw_figures, plotting_available, read_run, stage_and_commit

    run = read_run(args.results)
    if not plotting_available():
        return _fail("plot: sim.reports.plotting is not available in this installation", 1)
    written = stage_and_commit(args.results, lambda staging: draw_figures(run, staging))
    print("\n".join(str(p) for p in written))
    return 0
