"""Outage recovery: how each upstream MTA's retry schedule turns a relay outage into delay.

Question: the relay (already answering 550 to unknown users) refuses connections for 1 h, 6 h
or 2 d. Under each upstream (Postfix 3.7, Postfix 2.3 defaults, Exim, sendmail, qmail,
Exchange), how late is valid mail delivered, how long after the relay returns is the backlog
gone, and how hard does the returning upstream hit the relay?

Figures: outage_recovery (hours until the deferred queue is empty after the relay returns,
and the worst delay of valid mail, per MTA and outage length), outage_delay_cdf (delay tail of
valid mail, 6 h outage), outage_burst (relay sessions per minute around the return).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from sim.reports import plotting
from sim.studies.statistics import ci_method
from sim.studies.sweep import (
    SCAN_ORDER_NOTE,
    base_scenario,
    experiment_args,
    experiment_runs,
    fmt_ci,
    fmt_time,
    setup_lines,
    stack,
    summary_table,
    write_readme,
)

NAME = "outage_recovery"
HERE = Path(__file__).resolve().parent
DAY, HOUR = 86400.0, 3600.0
FALLBACK = {"senders": [{"rate": "2500/d", "profile": "daily",
                         "unknown_recipient_fraction": 0.35, "forged_sender_fraction": 0.8}]}
MTAS = {
    "Postfix 3.7": {"upstream.mta": "postfix"},
    # 2.3's defaults spelled out: with_overrides keeps 3.7's queue_run_delay and
    # minimal_backoff_time when only postfix_version changes
    "Postfix 2.3": {"upstream.mta": "postfix", "upstream.postfix_version": "2.3",
                    "upstream.queue_run_delay": "1000s", "upstream.minimal_backoff_time": "1000s"},
    "Exim": {"upstream.mta": "exim"},
    "sendmail": {"upstream.mta": "sendmail"},
    "qmail": {"upstream.mta": "qmail"},
    "Exchange": {"upstream.mta": "exchange"},
}
OUTAGES = {"1h": HOUR, "6h": 6 * HOUR, "2d": 2 * DAY}
START = DAY + 10 * HOUR  # Tuesday 10:00, busy hours
AFTER = 2 * DAY  # simulated after the relay returns


def main(argv=None) -> int:
    a = experiment_args(__doc__, NAME, argv)
    base = base_scenario(HERE / "scenarios" / "seed_story.toml", FALLBACK)
    mtas = dict(list(MTAS.items())[:2]) if a.quick else MTAS
    outages = {"1h": HOUR, "6h": 6 * HOUR} if a.quick else OUTAGES
    common = {"changes": [], "relay.unknown_local_recipient_reject_code": 550,
              "simulation.sample_interval": "300s"}
    if a.quick:
        common.update({f"senders.{i}.rate": f"{s.rate / 5!r}/s"
                       for i, s in enumerate(base.senders)})
    keys, scen = [], []
    for mta, mo in mtas.items():
        for out_name, length in outages.items():
            end = START + length + (0.5 * DAY if a.quick else AFTER)
            scen.append(base.with_overrides({
                **common, **mo, "simulation.duration": f"{end:.0f}s",
                "relay.outages": [{"start": f"{START:.0f}s", "duration": f"{length:.0f}s"}]}))
            keys.append((mta, out_name))
    labels = [f"{m}, {o} outage" for m, o in keys]
    grid = experiment_runs(a, labels, scen)

    def drain_h(r, length):  # hours from the relay's return until the deferred queue is empty
        t, q = r.timeseries["t_s"], r.timeseries["deferred"]
        back = START + length
        empty = np.flatnonzero((t >= back) & (q == 0))
        return (t[empty[0]] - back) / HOUR if empty.size else np.nan

    def burst(r, length):  # peak relay sessions per minute within 12 h of the return
        t = r.timeseries["t_s"]
        w = (t > START + length) & (t <= START + length + 12 * HOUR)
        return r.timeseries["relay_sessions"][w].max() / ((t[1] - t[0]) / 60)

    def normal(r):  # sessions per minute on the day before the outage
        t = r.timeseries["t_s"]
        w = (t > START - DAY) & (t <= START)
        return r.timeseries["relay_sessions"][w].mean() / ((t[1] - t[0]) / 60)

    mnames, onames = list(mtas), list(outages)
    shape = (a.seeds, len(mnames), len(onames))
    drain, worst, peak, base_rate = (np.zeros(shape) for _ in range(4))
    for (mta, on), runs in zip(keys, grid, strict=True):
        i, j = mnames.index(mta), onames.index(on)
        for k, r in enumerate(runs):
            drain[k, i, j] = drain_h(r, outages[on])
            worst[k, i, j] = r.summary["delivery_delay_s"]["max"] / HOUR
            peak[k, i, j] = burst(r, outages[on])
            base_rate[k, i, j] = normal(r)

    out = a.out
    with plotting.style():
        fig, (ax1, ax2) = plotting.figure(1, 2, sharex=False, width=13, height=5.2)
        fig.suptitle("After a relay outage, the upstream's retry schedule decides how long the "
                     "backlog lingers")
        table = {"mta": mnames}
        for ax, vals, title, ylabel in (
                (ax1, drain, "Time until the deferred queue is empty",
                 "hours after the relay returns"),
                (ax2, worst, "Worst delay of valid mail", "hours from arrival to relay")):
            series = {f"{on} outage": vals[:, :, j] for j, on in enumerate(onames)}
            # a linear axis with each bar's value: a 0 h bar shows "0.0", not a gap
            res = plotting.grouped_bars(ax, mnames, series, values=".1f")
            ax.set_ylim(0, ax.get_ylim()[1] * 1.06)
            ax.set_title(title)
            ax.set_ylabel(ylabel)
            table.update(plotting.band_columns(title, res))
        fig.legend(*ax1.get_legend_handles_labels(), loc="outside lower left", ncols=3,
                   title="relay outage")
        plotting.interval_note(fig, a.seeds, what="error bars", before=[
            note for mta, note in (
                ("sendmail", "sendmail, 2 d: the queue run at the return delivers all (its "
                             "30-min host-status cache is then in step with the runs)"),
                ("Exim", "Exim, 2 d: the relay's host retry record (F,4d,6h phase) holds all "
                         "mail up to 6 h after the last refusal"))
            if mta in mnames and "2d" in onames] + (["see the README's notes"]
                                                    if "2d" in onames else []))
        paths = plotting.save(fig, out / NAME)
        plotting.save_table(out / NAME, table)

        show = "6h" if "6h" in onames else onames[-1]
        fig, ax = plotting.figure()
        top = 3 * max(r.summary["delivery_delay_s"]["max"] for g in grid for r in g)
        grid_s = np.geomspace(10, top, 500)
        cb = {}
        for (mta, on), runs in zip(keys, grid, strict=True):
            if on == show:
                cdfs = np.array([plotting.cdf_on_grid(r.delay_cdf, grid_s) for r in runs])
                cb[mta] = plotting.band(ax, grid_s, 100 * cdfs, mta, bounds=(0, 100))
        plotting.delay_axis(ax, top)
        ax.set_xlim(10, top)
        low = min(m[0] for m, _, _ in cb.values())  # delivered within 10 s: not delayed
        ax.set_ylim(max(0, np.floor(low - 1)), 100.3)
        fig.suptitle(f"Delivery delay of valid mail with a {show} relay outage")
        ax.set_title(f"The tail: the {100 - low:.0f} % of valid mail that arrived during the "
                     f"outage, delivered in each schedule's own steps")
        ax.legend(loc="lower right", title="upstream")
        plotting.interval_note(fig, a.seeds, (0, 100))
        paths += plotting.save(fig, out / "outage_delay_cdf")
        plotting.save_table(out / "outage_delay_cdf", {
            "delay_s": grid_s, **plotting.band_columns("percent", cb)})

        cols = 3 if len(mnames) > 4 else 2
        rows = -(-len(mnames) // cols)
        fig, axes = plotting.figure(rows, cols, sharex=True, width=13, height=3.4 * rows + 0.6,
                                    squeeze=False)
        fig.suptitle("Relay sessions per minute around the relay's return: the queued mail "
                     "comes back in the upstream's first retry runs")
        bb, tops = {}, []
        for (mta, on), runs in zip(keys, grid, strict=True):
            ax = axes.flat[mnames.index(mta)]
            t = runs[0].timeseries["t_s"]
            back = START + outages[on]
            ends, per_h = plotting.rebin(t, stack(runs, "relay_sessions"), 900)
            w = (ends > back - 0.5 * HOUR) & (ends <= back + 12 * HOUR)
            x = (ends[w] - 450 - back) / HOUR
            bb[f"{mta}, {on} outage"] = plotting.band(ax, x, per_h[:, w] / 60, f"{on} outage",
                                                      alpha=0.15)
            tops.append(per_h[:, w].max() / 60)
            ax.set_title(mta)
        if "Exim" in mnames and "2d" in onames:
            axes.flat[mnames.index("Exim")].annotate(
                "2d outage: no session for about 5 h; the relay's\nhost retry record (F,4d,6h) "
                "holds all mail", xy=(0.06, 0.97), xycoords="axes fraction", va="top",
                fontsize=8.5, color="0.25")  # above the peaks: nothing else is drawn there
        for ax in axes.flat:
            ax.set_yscale("symlog", linthresh=1)
            ax.set_ylim(0, 2 * max(tops))
            plotting.plain_log(ax)
            ax.axvline(0, color="0.35", linestyle="--", linewidth=1)
            plotting.shade_outages(ax, [(-HOUR, 0)], x_scale=HOUR,
                                   label="relay down" if ax is axes.flat[0] else None)
            ax.set_xlim(left=-0.5)
        for ax in axes[-1]:
            ax.set_xlabel("hours since the relay returned")
        for ax in axes[:, 0]:
            ax.set_ylabel("sessions per minute\n(15-min bins)")
        axes.flat[0].legend(loc="upper right", title="relay outage")
        plotting.interval_note(fig, a.seeds)
        paths += plotting.save(fig, out / "outage_burst")
        plotting.save_table(out / "outage_burst", {
            "hours_since_return_bin_centre": x,
            **plotting.band_columns("sessions_per_min", bb)})
    plotting.save_table(out / "runs", summary_table(labels, grid))

    fastest = {on: mnames[int(np.nanargmin(np.nanmean(drain[:, :, j], axis=0)))]
               for j, on in enumerate(onames)}
    slowest = {on: mnames[int(np.nanargmax(np.nanmean(drain[:, :, j], axis=0)))]
               for j, on in enumerate(onames)}
    jl = len(onames) - 1
    il, ih = mnames.index(fastest[onames[jl]]), mnames.index(slowest[onames[jl]])
    i0 = 0
    answer = (
        f"After a {onames[jl]} outage the deferred queue is empty "
        f"{fmt_ci(drain[:, il, jl], '.1f', 'h')} after the relay returns with "
        f"{mnames[il]} (the fastest) and {fmt_ci(drain[:, ih, jl], '.1f', 'h')} with "
        f"{mnames[ih]} (the slowest); the worst-delayed valid message waits "
        f"{fmt_ci(worst[:, il, jl], '.1f', 'h')} and {fmt_ci(worst[:, ih, jl], '.1f', 'h')} "
        f"respectively ({a.seeds} seeds). For a {onames[0]} outage {mnames[i0]} needs "
        f"{fmt_ci(drain[:, i0, 0], '.2f', 'h')}. The returning {mnames[i0]} upstream peaks at "
        f"{fmt_ci(peak[:, i0, jl], ',.0f')} sessions per minute after the {onames[jl]} outage, "
        f"against {fmt_ci(base_rate[:, i0, jl], '.1f')} per minute in normal operation.")
    write_readme(
        out, "Recovery from relay outages, per upstream MTA",
        "When the relay refuses connections for 1 h, 6 h or 2 d, how late is valid mail, how "
        "long until the upstream's backlog is gone, and how hard does the upstream hit the "
        "relay when it returns?",
        [*setup_lines(scen[0]),
         "upstreams: " + "; ".join(f"{m} ({', '.join(f'{k} = {v}' for k, v in o.items())})"
                                   for m, o in mtas.items()) + " (other keys: defaults)",
         f"outage starts at {fmt_time(START)} (Tuesday 10:00) and lasts "
         + ", ".join(onames) + f"; each run ends {fmt_time(AFTER)} after the relay returns",
         "the relay answers 550 to unknown users, so the only backlog is the outage's",
         f"{a.seeds} seeds per setting; error bars and bands: {ci_method(a.seeds)}"],
        [(NAME, "Time to empty the deferred queue and worst valid-mail delay"),
         ("outage_delay_cdf", f"Delay of valid mail, {show} outage"),
         ("outage_burst", "Relay sessions per minute around the return")],
        answer, f"python experiments/{NAME}.py" + (" --quick" if a.quick else ""),
        notes=["Time to empty is measured on 5-minute samples of the deferred queue.",
               SCAN_ORDER_NOTE,
               "sendmail can empty its queue sooner after a 2-day outage than after a 1-hour "
               "one: its host-status cache (Timeout.hoststatus, 30 min) marks the relay down "
               "for 30 min after each refused connection, and mail tried meanwhile is skipped "
               "without refreshing it. In busy hours a new message refreshes the cache "
               "seconds after it expires, so the queue run at the relay's return skips the "
               "relay and the backlog waits for the next run 30 min later (1 h and 6 h "
               "outages); a quiet night lets the cache expire with no new message, a queue run "
               "refreshes it, and from then on it expires exactly at each 30-minute run, so the "
               "run at the moment of return delivers everything (2 d outage; checked with "
               "1-minute samples: outages of 1 h to 12 h from 10:00 empty 30 min after the "
               "return, 24 h and 48 h at once; sim/model/schedules.py HOST_STATUS, "
               "mta-semantics.md 5.2).",
               "Exim sends nothing for about 5 hours after a 2-day outage: the refusals update "
               "the relay host's own retry record (key = its IP address), whose age of 2 days "
               "puts it in the default rule's F,4d,6h phase, so the next try is up to 6 h after "
               "the last refusal, and all mail to that host, new mail included, waits for it "
               "(sim/model/schedules.py HOST_RECORD, mta-semantics.md 5.1). A host error "
               "leaves each message's own retry state alone, and every queue run visits the "
               "waiting mail (`retry time not reached for any host`), so the first run after "
               "the host's retry time delivers the whole backlog (schedules.host_deferral, "
               "checked live: results/validation/exim/outage). Until #20 relaysim also applied "
               "each message's own retry rule, which spread the drain over each message's next "
               "retry time.",
               "Postfix: each refused connection counts 1/window in the relay's in-core queue "
               "(qmgr_queue_throttle); a scan's batch of refusals makes the relay dead for "
               "minimal_backoff_time at the cohort limit, lone refusals of new mail do not "
               "(the in-core queue is discarded with its count). Until #19 the first refusal "
               "made it dead.",
               "Worst delay is the largest arrival-to-delivery delay of any delivered "
               "recipient in the run."],
        headline=(f"After a {onames[jl]} relay outage the upstream's backlog is gone "
                  f"{_gone(np.nanmean(drain[:, il, jl]))} with {mnames[il]} and "
                  f"{np.nanmean(drain[:, ih, jl]):.1f} h after it with {mnames[ih]}; "
                  f"{mnames[i0]} comes back with {np.mean(peak[:, i0, jl]):,.0f} sessions per "
                  f"minute against {np.mean(base_rate[:, i0, jl]):.1f} normally."))
    print(f"{NAME}: wrote {len(paths)} figures to {out}", file=sys.stderr)
    return 0


def _gone(hours: float) -> str:
    """When the backlog is gone, measured from the relay's return, in words."""
    return ("as the relay returns" if hours == 0 else
            f"{hours:.1f} h after the relay returns")


if __name__ == "__main__":
    sys.exit(main())
