"""The `relaysim sweep` command: its arguments, and from them a checked sweep that is run and
written.

Public names: add_arguments, sweep, replications, EPILOG.

Contract:
- add_arguments(parser) declares SCENARIO.toml, --vary (repeatable), --seeds N|auto,
  --precision, --precision-of, --min-seeds, --max-seeds, --out, --workers, --scheduler,
  --fail-fast and --quiet on the `sweep` subparser (sim.cli adds --set).
- sweep(args, scenario, parse_value) -> (exit status, text for stdout). `scenario` is the file
  with --set applied (sim.cli), parse_value the conversion --set applies to a value. Everything
  is checked before any run starts: every --vary key and value (sim.studies.factorial, on
  every setting of the factorial), --seeds, the precision options, --workers, --out, and the
  scheduler (connected to, or ScenarioError). Then sim.studies.sweep.run_sweep runs what the
  run store lacks and write_sweep writes the tables, figures and README into --out.
- Exit status 0 when every run finished; 1 when runs failed (each reported on stderr with its
  setting and seed; the tables hold the runs that finished, and the same command again retries
  the failed ones), or at the first failure with --fail-fast (nothing but the run store is
  written then). Ctrl-C: KeyboardInterrupt reaches sim.cli (exit 130); finished runs stay in
  the store.
- replications(args, scenario) -> (exit status, text) is `relaysim run --seeds N`: the same
  machinery without factors (store, runs.csv, summary.csv and README in --out, default
  results/<name>/), and the run's summary lines with 95 % intervals over the seeds.
Errors: ScenarioError for every bad argument (sim.cli prints it as one line, exit status 2).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from sim.errors import ScenarioError, did_you_mean

EPILOG = """examples:
  relaysim sweep experiments/scenarios/seed_story.toml --out runs/lifetimes \\
      --vary upstream.maximal_queue_lifetime=1d,5d,30d \\
      --vary relay.unknown_local_recipient_reject_code=450,550 --seeds 5
  relaysim sweep seed_story.toml --out runs/auto --vary upstream.maximal_queue_lifetime=1d,5d \\
      --seeds auto --precision 2% --precision-of deferred_peak_messages
  relaysim sweep seed_story.toml --out runs/big --vary ... --scheduler tcp://SCHEDULER:8786

writes DIR/runs.csv (one row per run), DIR/summary.csv (mean and 95 % interval per setting),
a figure per headline figure against each varied key, DIR/README.md, and DIR/runs/ (one record
per finished run): the same command again runs only what is missing.
"""


def add_arguments(p) -> None:
    """The sweep subparser's arguments (module contract)."""
    p.add_argument("scenario", metavar="SCENARIO.toml")
    p.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="a scenario key and its values, checked like --set; repeatable: the "
                   "sweep is the full factorial of all --vary keys")
    p.add_argument("--seeds", default="3", metavar="N|auto",
                   help="seeds per setting (default 3), or auto: add seeds until --precision")
    p.add_argument("--precision", metavar="P", help="with --seeds auto: the relative "
                   "half-width of the 95 %% interval to reach (default 2%%)")
    p.add_argument("--precision-of", metavar="FIGURE", default="deferred_peak_messages",
                   help="with --seeds auto: the summary figure (default deferred_peak_messages)")
    p.add_argument("--min-seeds", type=int, default=3, metavar="N",
                   help="with --seeds auto: seeds to start with (default 3)")
    p.add_argument("--max-seeds", type=int, default=30, metavar="N",
                   help="with --seeds auto: at most this many seeds per setting (default 30)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder; its runs/ store makes a repeated command resume")
    p.add_argument("--workers", type=int, metavar="N",
                   help="local worker processes (default: the number of cores)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="run on this dask.distributed scheduler instead (the sweep extra)")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first failed run")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress and no summary")


def _seeds(args):
    from sim.studies.replications import Precision, parse_precision
    from sim.studies.sweep import SUMMARY_FIGURES

    if args.seeds.strip().lower() == "auto":
        if args.precision_of not in SUMMARY_FIGURES:
            raise ScenarioError("--precision-of", args.precision_of, "a summary figure such as "
                                "deferred_peak_messages or recipients.expired",
                                did_you_mean(args.precision_of, SUMMARY_FIGURES))
        return Precision(args.precision_of, parse_precision(args.precision or "2%"),
                         args.min_seeds, args.max_seeds)
    if args.precision is not None:
        raise ScenarioError("--precision", args.precision, "--seeds auto as well",
                            problem="only used with --seeds auto")
    try:
        n = int(args.seeds)
    except ValueError:
        n = 0
    if n < 1:
        raise ScenarioError("--seeds", args.seeds, "a number of seeds (at least 1) or auto")
    return n


def _command(args) -> str:
    """The command that reproduces these files (without --workers, --scheduler, --quiet)."""
    words = [args.scenario]
    for item in args.set:
        words += ["--set", item]
    for item in args.vary:
        words += ["--vary", item]
    words += ["--seeds", args.seeds]
    if args.seeds.strip().lower() == "auto":
        words += ["--precision", args.precision or "2%", "--precision-of", args.precision_of,
                  "--min-seeds", str(args.min_seeds), "--max-seeds", str(args.max_seeds)]
    words += ["--out", args.out]
    return "relaysim sweep " + shlex.join(words)


def sweep(args, scenario, parse_value) -> tuple[int, str]:
    """Check everything, run what is missing, write the files (module contract)."""
    from sim.studies.factorial import parse_vary

    factors = [parse_vary(v, parse_value) for v in args.vary]
    result, out, written, status = _execute(args, scenario, factors, _seeds(args), args.out,
                                            _command(args))
    if args.quiet or result is None:
        return status, ""
    n_runs = sum(len(s) for s in result.seeds)
    per = sorted({len(s) for s in result.seeds})
    seeds_text = (f"{per[0]}" if len(per) == 1 else f"{per[0]} to {per[-1]}") + " seed(s)"
    lines = [f"sweep of {scenario.simulation.name}: {len(result.settings)} setting(s) x "
             f"{seeds_text} = {n_runs} runs ({result.reused} from an earlier sweep, "
             f"{result.ran} run now) in {result.wall_s:.1f} s"]
    if result.precision and not all(result.sharp):
        lines.append(f"{result.sharp.count(False)} setting(s) reached --max-seeds "
                     f"{result.precision.max_seeds} before {result.precision.figure} was within "
                     f"{result.precision.target:.4g}")
    return status, "\n".join(lines + _tail(result, out, written)) + "\n"


def replications(args, scenario) -> tuple[int, str]:
    """`relaysim run --seeds N`: N seeds of one scenario through the sweep's machinery (its
    run store, tables and README in --out); the text gives every headline with its 95 %
    interval."""
    from sim.studies.sweep import _flatten, mean_ci

    if args.seeds < 1:
        raise ScenarioError("--seeds", args.seeds, "at least 1")
    out = args.out or str(Path("results") / scenario.simulation.name)
    words = [args.scenario, *(w for item in args.set for w in ("--set", item))]
    if args.seed is not None:
        words += ["--seed", str(args.seed)]
    command = "relaysim run " + shlex.join([*words, "--seeds", str(args.seeds), "--out", out])
    result, out, written, status = _execute(args, scenario, [], args.seeds, out, command)
    if args.quiet:
        return status, ""
    (recs,) = result.records
    flat = [_flatten(r["summary"]) for r in recs]

    def ci(key, fmt=",.0f"):
        v = [float(f[key]) for f in flat if f.get(key) is not None]
        if not v:
            return "-"
        m, lo, hi = mean_ci(v)
        return f"{m:{fmt}}" + ("" if lo != lo else f" ({lo:{fmt}} to {hi:{fmt}})")

    lines = [f"{scenario.simulation.name}: {len(recs)} seed(s) spawned from seed "
             f"{scenario.simulation.seed} ({result.reused} from an earlier run, {result.ran} "
             f"run now) in {result.wall_s:.1f} s; mean (95 % interval) over seeds",
             "recipients: received " + ci("recipients.received") + ", delivered "
             + ci("recipients.delivered") + ", bounced " + ci("recipients.bounced")
             + ", expired " + ci("recipients.expired") + ", still queued "
             + ci("recipients.queued_at_end"),
             "queued upstream (deferred + active) peak: " + ci("queued_peak_messages")
             + " messages; deferred queue peak: " + ci("deferred_peak_messages"),
             "delivery delay: p50 " + ci("delivery_delay_s.p50", ".3g") + " s, p95 "
             + ci("delivery_delay_s.p95", ".3g") + " s",
             "backscatter: " + ci("dsn.backscatter") + " DSNs to forged senders (of "
             + ci("dsn.nondelivery") + " non-delivery DSNs)"]
    return status, "\n".join(lines + _tail(result, out, written)) + "\n"


def _tail(result, out, written) -> list[str]:
    lines = []
    if result.failed:
        lines.append(f"{len(result.failed)} run(s) failed (listed in README.md); the same "
                     "command again retries them")
    lines.append(f"wrote {out}/: " + ", ".join(p.name for p in written if p.suffix != ".svg"))
    return lines


def _execute(args, scenario, factors, seeds, out_text, command):
    """Check the rest, run, write: (SweepResult or None, out, files, exit status)."""
    from sim.studies.factorial import factorial
    from sim.studies.sweep import SweepStopped, make_backend, run_sweep, write_sweep

    out = Path(out_text)
    if out.exists() and not out.is_dir():
        raise ScenarioError("--out", str(out), "a folder", problem="a file")
    workers, scheduler = args.workers, getattr(args, "scheduler", None)
    if workers is not None and workers < 1:
        raise ScenarioError("--workers", workers, "at least 1")
    settings = factorial(scenario, factors)
    cap = seeds if isinstance(seeds, int) else seeds.max_seeds
    backend = make_backend(workers, scheduler, len(settings) * cap)
    try:
        result = run_sweep(settings, seeds, out, backend, progress=not args.quiet,
                           fail_fast=getattr(args, "fail_fast", False))
    except SweepStopped as e:
        sys.stderr.write(f"relaysim sweep: stopped (--fail-fast) after {e}\n")
        return None, out, [], 1
    written = write_sweep(result, out, scenario, command)
    return result, out, written, 1 if result.failed else 0
