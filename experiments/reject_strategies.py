"""Reject strategies: what the answer to unknown users costs, for the same traffic.

Question: with the seed story's traffic, what do the strategies the model supports cost in
upstream backlog, DSNs (and backscatter), relay load and delay of valid mail: the relay's 450
(the incident), its 550 (the fix), and, with the relay still on 450, what the upstream's
operator can do alone: a 1-day lifetime, or recipient validation at SMTP time
(relay_recipient_maps, or reject_unverified_recipient probes of the relay)?

Figures: reject_strategies (bars: backlog, DSNs per day, relay rejects per hour, valid-mail
p95 delay), queue (backlog over time), delay_cdf (valid mail).
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np

from sim.reports import plotting
from sim.studies.statistics import ci_method
from sim.studies.sweep import (
    base_scenario,
    experiment_args,
    experiment_runs,
    fmt_ci,
    setup_lines,
    stack,
    summary_table,
    write_readme,
)

NAME = "reject_strategies"
HERE = Path(__file__).resolve().parent
DAY = 86400.0
FALLBACK = {"senders": [{"rate": "2500/d", "unknown_recipient_fraction": 0.35,
                         "forged_sender_fraction": 0.8}]}
STRATEGIES = {
    "450 (the incident)": {"relay.unknown_local_recipient_reject_code": 450},
    "550 (the fix)": {"relay.unknown_local_recipient_reject_code": 550},
    "450, upstream lifetime 1d": {"relay.unknown_local_recipient_reject_code": 450,
                                  "upstream.maximal_queue_lifetime": "1d"},
    "450, upstream relay_recipient_maps": {
        "relay.unknown_local_recipient_reject_code": 450,
        "upstream.recipient_validation": "relay_recipient_maps"},
    "450, upstream verify": {"relay.unknown_local_recipient_reject_code": 450,
                             "upstream.recipient_validation": "verify"},
}
SHORT = ("450\n(incident)", "550\n(fix)", "450 +\nlifetime 1d", "450 +\nrecipient maps",
         "450 +\nverify")  # bar labels, in STRATEGIES order


def main(argv=None) -> int:
    a = experiment_args(__doc__, NAME, argv)
    base = base_scenario(HERE / "scenarios" / "seed_story.toml", FALLBACK)
    days_total, steady_from = (3, 1.5) if a.quick else (14, 6)
    common = {"simulation.duration": f"{days_total}d", "changes": []}
    if a.quick:
        common["upstream.maximal_queue_lifetime"] = "1d"
        common.update({f"senders.{i}.rate": f"{s.rate / 5!r}/s"
                       for i, s in enumerate(base.senders)})
    scen = {lab: base.with_overrides({**common, **o}) for lab, o in STRATEGIES.items()}
    labels = list(scen)
    grid = experiment_runs(a, labels, list(scen.values()))
    t = grid[0][0].timeseries["t_s"]
    days = t / DAY
    steady = t >= steady_from * DAY
    span = (t[-1] - t[steady][0]) / DAY

    def per_run(fn):
        return np.array([[fn(r) for r in runs] for runs in grid]).T  # (seeds, strategies)

    def window(r, key):  # events in the steady window
        x = r.timeseries[key]
        return x[-1] - x[steady][0]

    m = {
        "backlog": per_run(lambda r: (r.timeseries["deferred"] + r.timeseries["active"])[
            steady].mean()),
        "dsn": per_run(lambda r: window(r, "dsn") / span),
        "backscatter": per_run(lambda r: window(r, "backscatter") / span),
        "rejects": per_run(lambda r: (r.timeseries["rejects_4xx"] + r.timeseries[
            "rejects_5xx"])[steady].sum() / (span * 24)),
        "sessions": per_run(lambda r: r.timeseries["relay_sessions"][steady].sum()
                            / (span * 24)),
        "probes": per_run(lambda r: r.timeseries["probes"][steady].sum() / (span * 24)),
        "turned_away": per_run(lambda r: r.timeseries["rejected_at_upstream"][steady].sum()
                               / span),
        "p95": per_run(lambda r: r.summary["delivery_delay_s"]["p95"]),
    }

    out = a.out
    with plotting.style():
        fig, axes = plotting.figure(2, 2, sharex=False, width=14, height=9.5)
        fig.suptitle("A 550 empties the upstream queue but still bounces every spam message, "
                     "mostly as backscatter;\nrecipient validation at the upstream refuses it "
                     "at SMTP time instead")
        panels = [
            (axes[0, 0], {"messages queued upstream": m["backlog"]}, "Upstream backlog",
             "messages (deferred + active)"),
            (axes[0, 1], {"DSNs sent by the upstream": m["dsn"],
                          "of which to forged senders (backscatter)": m["backscatter"],
                          "recipients refused at SMTP time (no DSN from the upstream)":
                          m["turned_away"]},
             "Bounces", "per day"),
            (axes[1, 0], {"rejected RCPTs": m["rejects"], "SMTP sessions": m["sessions"],
                          "verify probes": m["probes"]},
             "Load on the relay", "per hour"),
            (axes[1, 1], {"valid mail, p95": m["p95"]}, "Delay of valid mail (95th percentile)",
             "seconds from arrival to relay"),
        ]
        table = {"strategy": labels}
        for ax, series, title, ylabel in panels:
            res = plotting.grouped_bars(ax, SHORT, series,
                                        values=".2f" if "seconds" in ylabel else ",.0f")
            ax.set_title(title)
            ax.set_ylabel(ylabel)
            if "seconds" not in ylabel:
                plotting.thousands(ax)
            if len(series) > 1:
                ax.set_ylim(top=ax.get_ylim()[1] * 1.25)
                ax.legend(loc="upper right")
            table.update(plotting.band_columns(title, res))
        axes[1, 1].set_ylim(bottom=0)
        plotting.interval_note(fig, a.seeds, what="error bars")
        paths = plotting.save(fig, out / NAME)
        plotting.save_table(out / NAME, table)

        fig, ax = plotting.figure()
        fig.suptitle("Upstream queue under each strategy")
        queued = {lab: stack(g, "deferred") + stack(g, "active")
                  for lab, g in zip(labels, grid, strict=True)}
        top = max(float(q.mean(axis=0).max()) for q in queued.values())
        qb = {lab: plotting.band(ax, days, q, plotting.zero_label(lab, q.mean(axis=0), top=top,
                                                                  unit="messages"))
              for lab, q in queued.items()}
        ax.set_title(f"The 450 plateaus at {m['backlog'][:, 0].mean():,.0f} messages; the 550 "
                     f"keeps {m['backlog'][:, 1].mean():,.0f} queued")
        ax.set_ylabel("messages queued upstream\n(deferred + active)")
        ax.set_ylim(bottom=0)
        plotting.zero_visible(ax)
        plotting.thousands(ax)
        plotting.days_axis(ax, days[-1])
        ax.legend(loc="center right")
        plotting.interval_note(fig, a.seeds)
        paths += plotting.save(fig, out / "queue")
        plotting.save_table(out / "queue", {"t_days": days,
                                            **plotting.band_columns("queued", qb)})

        fig, ax = plotting.figure()
        top = 3 * max(r.summary["delivery_delay_s"]["max"] for g in grid for r in g)
        grid_s = np.geomspace(5e-3, top, 400)
        cb = {}
        for lab, g in zip(labels, grid, strict=True):
            runs = np.array([plotting.cdf_on_grid(r.delay_cdf, grid_s) for r in g]) * 100
            cb[lab] = plotting.band(ax, grid_s, runs, lab, bounds=(0, 100))
        plotting.delay_axis(ax, top)
        fig.suptitle("Delivery delay of valid mail")
        nb = "\xa0"  # no line break between a strategy and its delay
        p95 = [f"{short.replace(chr(10), ' ')}{nb}{plotting.duration_text(v).replace(' ', nb)}"
               for short, v in zip(SHORT, m["p95"].mean(axis=0), strict=True)]
        ax.set_title(textwrap.fill("p95: " + "; ".join(p95), 90, break_long_words=False))
        ax.legend(loc="lower right")
        plotting.interval_note(fig, a.seeds, (0, 100))
        paths += plotting.save(fig, out / "delay_cdf")
        plotting.save_table(out / "delay_cdf", {"delay_s": grid_s,
                                                **plotting.band_columns("percent", cb)})
    plotting.save_table(out / "runs", summary_table(labels, grid))

    i450, i550, i1d, imaps, iver = range(5)
    answer = (
        f"Over days {steady_from:g} to {days_total} ({a.seeds} seeds), the 450 keeps "
        f"{fmt_ci(m['backlog'][:, i450])} messages queued upstream and costs the relay "
        f"{fmt_ci(m['rejects'][:, i450])} rejected RCPTs per hour; the 550 keeps "
        f"{fmt_ci(m['backlog'][:, i550], ',.0f')} queued and the relay sees "
        f"{fmt_ci(m['rejects'][:, i550])} rejects per hour, one per new message to an unknown "
        f"user. Once the lifetime has passed the upstream sends "
        f"{fmt_ci(m['dsn'][:, i450])} DSNs per day with 450 and {fmt_ci(m['dsn'][:, i550])} "
        f"with 550 ({fmt_ci(m['backscatter'][:, i550])} of them backscatter): a 4xx postpones "
        f"each bounce by the upstream's lifetime, it does not prevent it. Shortening that "
        f"lifetime to 1 day cuts the backlog to {fmt_ci(m['backlog'][:, i1d])} messages. "
        f"Recipient validation at the upstream refuses "
        f"{fmt_ci(m['turned_away'][:, imaps])} recipients per day at SMTP time "
        f"(relay_recipient_maps), so the upstream queues "
        f"{fmt_ci(m['backlog'][:, imaps], ',.0f')} messages and sends "
        f"{fmt_ci(m['dsn'][:, imaps])} DSNs per day; with verify probes the relay answers "
        f"{fmt_ci(m['probes'][:, iver])} probes per hour and the upstream queues "
        f"{fmt_ci(m['backlog'][:, iver], ',.0f')}. "
        f"Valid mail's p95 delay is {fmt_ci(m['p95'][:, i450], '.2f', 's')} with 450 and "
        f"{fmt_ci(m['p95'][:, i550], '.2f', 's')} with 550.")
    write_readme(
        out, "Reject strategies for unknown users",
        "What do the relay's 450, its 550, and, with the relay on 450, a short upstream "
        "lifetime or recipient validation at the upstream (relay_recipient_maps, verify) cost "
        "in backlog, DSNs and backscatter, relay load and delay of valid mail?",
        [*setup_lines(scen[labels[0]]), "strategies: " + "; ".join(
            f"{lab} ({', '.join(f'{k} = {v}' for k, v in STRATEGIES[lab].items())})"
            for lab in labels),
         f"steady state: days {steady_from:g} to {days_total}; {a.seeds} seeds per strategy; "
         f"error bars and bands: {ci_method(a.seeds)}"],
        [(NAME, "Backlog, DSNs, relay load and valid-mail delay per strategy"),
         ("queue", "Upstream queue over time per strategy"),
         ("delay_cdf", "Delivery delay of valid mail per strategy")],
        answer, f"python experiments/{NAME}.py" + (" --quick" if a.quick else ""),
        notes=["Recipients refused at SMTP time are bounced, if at all, by the sending client; "
               "this model does not follow them there.",
               "verify: the upstream probes the relay for each new address "
               "(reject_unverified_recipient); the relay's 450 makes the probe fail "
               "temporarily, so the upstream answers 450 and the sender retries.",
               "soft_bounce = yes on the relay turns its 550 into 450: the same as the first "
               "strategy."],
        headline=(f"550 instead of 450 takes the upstream backlog from "
                  f"{m['backlog'][:, i450].mean():,.0f} to {m['backlog'][:, i550].mean():,.0f} "
                  f"messages and the relay's rejects from {m['rejects'][:, i450].mean():,.0f} "
                  f"to {m['rejects'][:, i550].mean():,.0f} per hour; DSNs per day stay at "
                  f"{m['dsn'][:, i450].mean():,.0f} against {m['dsn'][:, i550].mean():,.0f}: "
                  f"the 450 only delays them. Validating recipients at the upstream (relay_"
                  f"recipient_maps) leaves {m['dsn'][:, imaps].mean():,.0f} DSNs per day."))
    print(f"{NAME}: wrote {len(paths)} figures to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
