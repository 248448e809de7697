"""qmgr's timer phase: what modelling Postfix's whole-second event loop changes, by timer scale.

Question: Postfix's qmgr runs its deferred scan when its event loop wakes for the timer: at the
due second plus the sub-second phase of the loop's last wake-up (events.c; the scenario key
upstream.qmgr_timer_phase, on by default). An attempt that then ends in the next second backs
off from that second. This moved single messages in the live validation (10 s scans). What does
it change at production timers (300 s scans, the seed story) and at the lab's timers?

Each setting runs with the phase off (scans exactly on the grid's seconds) and on, with the same
seeds; the table gives both means and the paired difference (on - off) with its 95 % interval.
Figure: timer_phase (per statistic, the relative change on - off with its 95 % interval, one
panel per timer scale), with the table in the README.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from sim.reports import plotting
from sim.studies import statistics
from sim.studies.sweep import (
    base_scenario,
    experiment_args,
    experiment_runs,
    setup_lines,
    summary_table,
    write_readme,
)

NAME = "timer_phase"
HERE = Path(__file__).resolve().parent
FALLBACK = {"simulation": {"duration": "28d", "seed": 1},
            "senders": [{"rate": "2500/d", "unknown_recipient_fraction": 0.35}],
            "relay": {"unknown_local_recipient_reject_code": 450}}
LAB = {"upstream.queue_run_delay": "10s", "upstream.minimal_backoff_time": "10s",
       "upstream.maximal_backoff_time": "40s", "upstream.maximal_queue_lifetime": "180s",
       "upstream.bounce_queue_lifetime": "180s", "upstream.smtp_transaction_time": 0.008}
STATS = {  # name: (how it is read from one run, format)
    "recipients delivered": (lambda r: r.summary["recipients"]["delivered"], ",.1f"),
    "recipients expired": (lambda r: r.summary["recipients"]["expired"], ",.1f"),
    "recipients bounced": (lambda r: r.summary["recipients"]["bounced"], ",.1f"),
    "delivery attempts": (lambda r: r.summary["attempts"], ",.1f"),
    "non-delivery DSNs": (lambda r: r.summary["dsn"]["nondelivery"], ",.1f"),
    "queued recipients, mean over samples": (
        lambda r: float(np.mean(r.timeseries["queued_recipients"])), ",.2f"),
    "deferred messages, peak over samples": (lambda r: r.summary["deferred_peak_messages"],
                                             ",.1f"),
    "delivery delay p50 (s)": (lambda r: r.summary["delivery_delay_s"]["p50"], ".4f"),
    "delivery delay p95 (s)": (lambda r: r.summary["delivery_delay_s"]["p95"], ".4f"),
}


def paired(stat: str, off, on) -> dict:
    """statistics.paired of one statistic: x off, y on."""
    get = STATS[stat][0]
    return statistics.paired([get(r) for r in off], [get(r) for r in on])


def _row(stat: str, p: dict) -> str:
    return statistics.paired_row(stat, p, STATS[stat][1], ".2%")


def _figure(out: Path, table: dict[str, dict[str, dict]], seeds: int) -> None:
    """Relative change (on - off) / off per statistic, one panel per setting."""
    stats = [k for k in STATS]
    cols: dict[str, list] = {"setting": [], "statistic": [], "off": [], "on": [],
                             "change_pct": [], "lo_pct": [], "hi_pct": []}
    with plotting.style():
        fig, axes = plotting.figure(1, len(table), sharex=False, height=3.6, squeeze=False)
        for ax, (label, rows) in zip(axes[0], table.items(), strict=True):
            y = np.arange(len(stats))[::-1]
            for yi, stat in zip(y, stats, strict=True):
                p = rows[stat]
                scale = 100 / p["x"] if p["x"] else 0.0
                c, lo, hi = p["d"] * scale, p["lo"] * scale, p["hi"] * scale
                for k, v in (("setting", label.split(" (")[0]), ("statistic", stat),
                             ("off", p["x"]), ("on", p["y"]), ("change_pct", c),
                             ("lo_pct", lo), ("hi_pct", hi)):
                    cols[k].append(v)
                err = None if np.isnan(lo) else [[c - lo], [hi - c]]
                ax.errorbar(c, yi, xerr=err, fmt="o", color="C0", capsize=3)
            ax.axvline(0, color="0.4", linewidth=0.8)
            ax.set_yticks(y, stats if ax is axes[0][0] else [""] * len(stats))
            ax.set_xlabel("phase on - off (% of off)")
            ax.set_title(label.split(" (")[0])
        fig.suptitle(f"What qmgr's timer phase changes (mean and 95 % interval over {seeds} "
                     "paired seeds)")
        plotting.save(fig, out / NAME)
    plotting.save_table(out / NAME, cols)


def main(argv=None) -> int:
    a = experiment_args(__doc__, NAME, argv, seeds=10)
    seed_story = base_scenario(HERE / "scenarios" / "seed_story.toml", FALLBACK)
    quick = {"simulation.duration": "1d"} if a.quick else {}
    settings = {
        "production timers (the seed story: 300 s scans, backoff 300 s to 4000 s, 5 d)":
            seed_story.with_overrides(quick),
        "lab timers (the seed story's traffic for 1 d; 10 s scans, backoff 10 s to 40 s, "
        "180 s lifetime, 8 ms transactions as measured in the live 450 run)":
            seed_story.with_overrides({**LAB, "simulation.duration": "1d"}),
    }
    scen, labels = [], []
    for label, s in settings.items():
        for phase in (False, True):
            scen.append(s.with_overrides({"upstream.qmgr_timer_phase": phase}))
            labels.append(f"{label}, phase {'on' if phase else 'off'}")
    grid = experiment_runs(a, labels, scen)
    table = summary_table(labels, grid)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    plotting.save_table(out / "runs", table)

    answer, moved, pairs = [], {}, {}
    for j, label in enumerate(settings):
        off, on = grid[2 * j], grid[2 * j + 1]
        pairs[label] = {stat: paired(stat, off, on) for stat in STATS}
        answer += [f"**{label}**, {a.seeds} seeds:", "",
                   "| statistic | phase off | phase on | on - off (95 % interval) | relative |",
                   "|---|---|---|---|---|"]
        answer += [_row(stat, p) for stat, p in pairs[label].items()] + [""]
        p = pairs[label]["delivery attempts"]
        moved[label] = p["d"] / p["x"]
    _figure(out, pairs, a.seeds)
    prod, lab = list(settings)
    headline = (f"at production timers the phase changes the delivery attempts by "
                f"{moved[prod]:+.3%} and the outcomes within noise; at the lab's 10 s timers "
                f"by {moved[lab]:+.2%}. The deferred peak over samples rises because a sample at "
                "a scan's due second now sees the queue before the scan (the total queued is "
                "unchanged).")
    notes = [
        "Scans are due on whole seconds k * queue_run_delay in both modes; only their start "
        "within the second differs. Sample instants are whole multiples of sample_interval, "
        "which are scan seconds: with the phase on, a sample at a scan's due second sees the "
        "queue before that scan has taken its files (as a `postqueue -j` at that instant "
        "would), with it off just after. That moves messages between the deferred and active "
        "series at those samples, not in or out of the queue (queued recipients).",
        "Paired seeds share their random streams, but the phase reorders some agent "
        "assignments, so service times fall to other messages: small differences in delay "
        "quantiles are that reshuffling, within the seed-to-seed spread.",
    ]
    base = settings[prod]
    question = " ".join(__doc__.split("\n\n")[1].replace("Question: ", "").split())
    write_readme(out, "qmgr's timer phase: what it changes", question, setup_lines(base) + [
        "lab timers: " + ", ".join(f"{k} = {v}" for k, v in LAB.items()),
        "each setting with upstream.qmgr_timer_phase = false and = true, paired seeds",
    ], [(NAME, "Relative change of each statistic with the phase on, per timer scale")],
        "\n".join(answer), f"python experiments/{NAME}.py" + (" --quick" if a.quick else ""),
        notes=notes, headline=headline[0].upper() + headline[1:])
    print(f"{NAME}: {headline}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
