"""Lifetime sweep: how the upstream's maximal_queue_lifetime sets the backlog a 450 leaves.

Question: with the relay answering 450 to unknown users, how large is the upstream's
steady-state backlog (messages and bytes) as a function of maximal_queue_lifetime (1 h to
30 d) and of the share of mail to unknown users, and does it follow Little's law
(arrivals to unknown users x time in queue)?

Figure: lifetime_sweep (simulated backlog with 95 % intervals over seeds against the
Little's-law line per unknown share, log-log, data volume on the right axis; below, the ratio
of simulation to Little's law).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from matplotlib.ticker import NullLocator

from sim.reports import plotting
from sim.reports.explain import littles_law, residence_time
from sim.studies.statistics import ci_method
from sim.studies.sweep import (
    base_scenario,
    experiment_args,
    experiment_runs,
    fmt_ci,
    fmt_time,
    mean_ci,
    setup_lines,
    summary_table,
    write_readme,
)

NAME = "lifetime_sweep"
HERE = Path(__file__).resolve().parent
DAY = 86400.0
FALLBACK = {"senders": [{"rate": "2500/d", "unknown_recipient_fraction": 0.35,
                         "forged_sender_fraction": 0.8}]}
LIFETIMES = ("1h", "6h", "1d", "2d", "5d", "10d", "30d")
SHARES = (0.1, 0.35, 0.6)


def _little(scenario):
    return littles_law(scenario).messages


def main(argv=None) -> int:
    a = experiment_args(__doc__, NAME, argv)
    base = base_scenario(HERE / "scenarios" / "seed_story.toml", FALLBACK)
    lifetimes, shares = (("1h", "6h"), (0.35,)) if a.quick else (LIFETIMES, SHARES)
    # Samples off the 300 s queue-run grid (590 s: 30 phases): a sample taken at a scan
    # instant sees the queue before that scan's expiries leave, biased high by ~lambda x 150 s.
    common = {"changes": [], "relay.unknown_local_recipient_reject_code": 450,
              "simulation.sample_interval": "590s"}
    if a.quick:
        common.update({f"senders.{i}.rate": f"{s.rate / 5!r}/s"
                       for i, s in enumerate(base.senders)})
    points, scen = [], []
    for share in shares:
        for life in lifetimes:
            s = base.with_overrides({**common, "upstream.maximal_queue_lifetime": life, **{
                f"senders.{i}.unknown_recipient_fraction": share
                for i in range(len(base.senders))}})
            # steady state from half a day after the lifetime, over one whole day
            s = s.with_overrides({"simulation.duration":
                                  f"{s.upstream.maximal_queue_lifetime + 1.5 * DAY:.0f}s"})
            points.append((share, life))
            scen.append(s)
    labels = [f"{p[1]} lifetime, {p[0]:g} unknown" for p in points]
    grid = experiment_runs(a, labels, scen)

    def steady(r, key):
        t = r.timeseries["t_s"]
        w = t >= t[-1] - DAY
        return float(np.mean(r.timeseries[key][w]))

    msgs = np.array([[steady(r, "deferred") + steady(r, "active") for r in runs]
                     for runs in grid]).T  # (seeds, points)
    mbytes = np.array([[steady(r, "queued_bytes") for r in runs] for runs in grid]).T / 1e6
    little = np.array([_little(s) for s in scen])
    life_s = np.array([s.upstream.maximal_queue_lifetime for s in scen])
    mb_per_msg = mbytes.sum() / max(msgs.sum(), 1)

    out = a.out
    with plotting.style():
        fig, (ax, rx) = plotting.figure(2, 1, height=8, height_ratios=(3, 1))
        fig.suptitle("The backlog a 450 leaves grows in proportion to the upstream's lifetime "
                     "and\nthe share of mail to unknown users, as Little's law says")
        table = {"unknown_share": [p[0] for p in points],
                 "lifetime": [p[1] for p in points], "lifetime_days": life_s / DAY,
                 "littles_law_messages": little}
        for share in shares:
            j = [k for k, p in enumerate(points) if p[0] == share]
            x = life_s[j] / DAY
            m, lo, hi = plotting.errorbars(ax, x, msgs[:, j], f"simulated, {share:.0%} unknown",
                                           linestyle="none")
            color = ax.get_lines()[-1].get_color()
            ax.plot(x, little[j], color=color, linestyle=":", linewidth=1.3,
                    label=f"Little's law, {share:.0%} unknown")
            rm, rlo, rhi = mean_ci(msgs[:, j] / little[j], plotting.COUNTS)
            rx.errorbar(x, rm, yerr=None if np.isnan(rlo).all() else [rm - rlo, rhi - rm],
                        color=color, marker="o", linestyle="-", linewidth=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylabel("messages queued upstream\n(steady state, deferred + active)")
        ax.set_title("Steady-state backlog under a 450 (mean of the last simulated day)")
        plotting.thousands(ax)
        sec = ax.secondary_yaxis("right", functions=(lambda v: v * mb_per_msg,
                                                     lambda v: v / mb_per_msg))
        sec.set_ylabel(f"queued data (MB; {mb_per_msg * 1e3:.0f} kB per message measured)")
        plotting.plain_log(sec)
        ax.legend(loc="upper left", ncols=2)
        rx.axhline(1.0, color="0.3", linewidth=1)
        rx.set_ylabel("simulated ÷\nLittle's law")
        rx.set_xlabel("upstream maximal_queue_lifetime (log scale)")
        ticks = life_s[: len(lifetimes)] / DAY
        rx.set_xticks(ticks, list(lifetimes))
        rx.minorticks_off()
        ax.xaxis.set_minor_locator(NullLocator())
        plotting.interval_note(fig, a.seeds, what="error bars")
        paths = plotting.save(fig, out / NAME)
        for col, vals in (("messages", msgs), ("MB", mbytes)):
            m, lo, hi = mean_ci(vals)
            table.update({f"{col} mean": m, f"{col} lo": lo, f"{col} hi": hi})
        plotting.save_table(out / NAME, table)
    plotting.save_table(out / "runs", summary_table(labels, grid))

    ratio = msgs / little
    k5 = next((k for k, p in enumerate(points) if p == (0.35, "5d")), len(points) - 1)
    k30 = next((k for k, p in enumerate(points) if p == (0.35, "30d")), 0)
    r_all = mean_ci(ratio.mean(axis=1))
    up = scen[k5].upstream
    per = ratio.mean(axis=0)
    lo_p, hi_p = points[int(per.argmin())], points[int(per.argmax())]
    answer = (
        f"Simulated backlog over Little's law is {r_all[0]:.3f} on average over all "
        f"{len(points)} settings ({a.seeds} seeds), from {per.min():.3f} (at {lo_p[1]}, "
        f"{lo_p[0]:.0%} unknown) to {per.max():.3f} (at {hi_p[1]}, {hi_p[0]:.0%} unknown). "
        f"With {points[k5][0]:.0%} of the mail to unknown users and a {points[k5][1]} "
        f"lifetime the upstream holds {fmt_ci(msgs[:, k5])} "
        f"messages, that is {fmt_ci(mbytes[:, k5], ',.0f', 'MB')}; a {points[k30][1]} "
        f"lifetime holds {fmt_ci(msgs[:, k30])} messages, "
        f"{fmt_ci(mbytes[:, k30], ',.0f', 'MB')}. A message "
        f"stays lifetime + {(residence_time(up) - up.maximal_queue_lifetime) / 60:.0f} min "
        f"with Postfix's default backoff: its last attempt is the first one after the "
        f"lifetime.")
    write_readme(
        out, "Backlog versus upstream lifetime",
        "How large is the upstream's steady-state backlog under a 450, as a function of its "
        "maximal_queue_lifetime and of the share of mail to unknown users, and does it follow "
        "Little's law?",
        [*setup_lines(scen[k5]),
         "swept: upstream.maximal_queue_lifetime = " + ", ".join(lifetimes)
         + "; senders' unknown_recipient_fraction = " + ", ".join(f"{s:g}" for s in shares),
         "each run lasts lifetime + 1.5 d; the steady state is the mean over its last day",
         "Little's law: arrivals with an unknown recipient x residence time, the residence "
         "time from the engine's own retry policy iterated over arrival phases "
         "(sim.reports.explain.residence_time)",
         f"{a.seeds} seeds per point; error bars: {ci_method(a.seeds)}"],
        [(NAME, "Steady-state backlog versus lifetime and unknown share, with Little's law")],
        answer, f"python experiments/{NAME}.py" + (" --quick" if a.quick else ""),
        notes=["Samples are 590 s apart, off the 300 s queue-run grid: samples taken at scan "
               "instants see the queue just before that scan's expiries leave and read high "
               "by about lambda_unknown x half a queue_run_delay (+3 % at a 1 h lifetime).",
               "Run lengths: " + ", ".join(fmt_time(s.simulation.duration)
                                           for s in scen[:len(lifetimes)]) + "."],
        headline=(f"The backlog is arrivals to unknown users × (lifetime + the lag to the last "
                  f"retry): simulation over Little's law is {r_all[0]:.3f} on average, "
                  f"{per.min():.3f} to {per.max():.3f} over lifetimes from {lifetimes[0]} to "
                  f"{lifetimes[-1]}."))
    print(f"{NAME}: wrote {len(paths)} figures to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
