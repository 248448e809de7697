"""Capacity: when does the 450 retry traffic eat the upstream's delivery concurrency?

Question: the relay answers 450 to unknown users, so the upstream retries every such message
about every 70 minutes for 5 days. Each retry holds one of the upstream's
default_destination_concurrency_limit delivery agents for an SMTP transaction, like a real
delivery. For which unknown-recipient shares and concurrency limits does valid mail start to
wait behind the retries, and how long?

Figure: capacity (valid-mail p95 delay and agent utilisation against the unknown share, one
line per concurrency limit).
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
    summary_table,
    write_readme,
)

NAME = "capacity"
HERE = Path(__file__).resolve().parent
DAY = 86400.0
FALLBACK = {"senders": [{"rate": "2500/d", "profile": "daily",
                         "unknown_recipient_fraction": 0.35, "forged_sender_fraction": 0.8}]}
SHARES = (0.1, 0.3, 0.5, 0.7, 0.9)
LIMITS = (1, 2, 5, 20)


def main(argv=None) -> int:
    a = experiment_args(__doc__, NAME, argv)
    base = base_scenario(HERE / "scenarios" / "seed_story.toml", FALLBACK)
    shares, limits = ((0.3, 0.9), (1, 20)) if a.quick else (SHARES, LIMITS)
    s0 = base.senders[0]
    rate = sum(s.rate for s in base.senders) / (5 if a.quick else 1)
    life = 1 * DAY if a.quick else base.upstream.maximal_queue_lifetime
    # valid mail starts once the 450 backlog has reached its plateau, and is measured for 2 d
    valid_from = life + 0.25 * DAY
    duration = valid_from + (0.75 if a.quick else 2) * DAY
    scen, keys = [], []
    for share in shares:
        for limit in limits:
            senders = [
                {"name": "to unknown users", "rate": f"{share * rate!r}/s",
                 "profile": s0.profile, "unknown_recipient_fraction": 1.0,
                 "forged_sender_fraction": s0.forged_sender_fraction,
                 "message_size": s0.message_size},
                {"name": "valid mail", "rate": f"{(1 - share) * rate!r}/s",
                 "profile": s0.profile, "unknown_recipient_fraction": 0.0,
                 "message_size": s0.message_size, "start": f"{valid_from:.0f}s"}]
            scen.append(base.with_overrides({
                "senders": senders, "changes": [],
                "relay.unknown_local_recipient_reject_code": 450,
                "upstream.maximal_queue_lifetime": f"{life:.0f}s",
                "upstream.default_destination_concurrency_limit": limit,
                "simulation.duration": f"{duration:.0f}s"}))
            keys.append((share, limit))
    labels = [f"{s:g} unknown, concurrency {c}" for s, c in keys]
    grid = experiment_runs(a, labels, scen)

    def busy(r, limit):  # share of agent time spent on attempts while valid mail flows
        t, att = r.timeseries["t_s"], r.timeseries["attempts"]
        w = t >= valid_from
        mean_tx = r.scenario.upstream.smtp_transaction_time
        return (att[-1] - att[w][0]) * mean_tx / (limit * (t[-1] - t[w][0]))

    shape = (a.seeds, len(shares), len(limits))
    p95, util = np.zeros(shape), np.zeros(shape)
    for (share, limit), runs in zip(keys, grid, strict=True):
        i, j = shares.index(share), limits.index(limit)
        for k, r in enumerate(runs):
            p95[k, i, j] = r.summary["delivery_delay_s"]["p95"]
            util[k, i, j] = 100 * busy(r, limit)

    out = a.out
    x = 100 * np.array(shares)
    with plotting.style():
        fig, (ax1, ax2) = plotting.figure(2, 1, height=8.5)
        fig.suptitle("With few delivery agents, 450 retries of mail to unknown users make "
                     "valid mail wait")
        table = {"unknown_share_percent": x}
        for j, limit in enumerate(limits):
            lab = f"concurrency limit {limit}"
            r1 = plotting.errorbars(ax1, x, p95[:, :, j], lab)
            r2 = plotting.errorbars(ax2, x, util[:, :, j], lab, bounds=(0, 100))
            table.update(plotting.band_columns("p95_delay_s", {lab: r1}))
            table.update(plotting.band_columns("agents_busy_percent", {lab: r2}))
        ax1.set_yscale("log")
        ax1.set_ylabel("valid-mail p95 delay (s, log scale)")
        ax1.set_title("Delay of valid mail (95th percentile, arrival to relay)")
        ax1.legend(loc="upper left")
        ax2.axhline(100, color="0.3", linewidth=1)
        ax2.set_ylabel("delivery agents busy (%)")
        ax2.set_xlabel("share of mail to unknown users (%), answered 450 by the relay")
        ax2.set_title("Agent time spent on delivery attempts (retries and valid mail)")
        ax2.set_ylim(0, 105)
        plotting.interval_note(fig, a.seeds, what="error bars")
        paths = plotting.save(fig, out / NAME)
        plotting.save_table(out / NAME, table)
    plotting.save_table(out / "runs", summary_table(labels, grid))

    m = p95.mean(axis=0)
    base_p95 = m[0, -1]
    slow = m > 10 * max(base_p95, 0.1)  # ten times the lightest setting's p95
    first = {lim: next((shares[i] for i in range(len(shares)) if slow[i, j]), None)
             for j, lim in enumerate(limits)}
    said = "; ".join(f"concurrency {lim}: from {s:.0%} unknown" if s is not None else
                     f"concurrency {lim}: never up to {shares[-1]:.0%}"
                     for lim, s in first.items())
    answer = (
        f"Every queue run hands the relay a batch of 450 retries, and valid mail that arrives "
        f"meanwhile waits behind the batch: with {shares[-1]:.0%} of the mail to unknown users "
        f"and a concurrency limit of {limits[0]}, valid mail's p95 delay is "
        f"{fmt_ci(p95[:, -1, 0], ',.0f', 's')} with the agents "
        f"{fmt_ci(util[:, -1, 0], '.0f', '% busy')}, against "
        f"{fmt_ci(p95[:, 0, -1], '.2f', 's')} at {shares[0]:.0%} unknown and a limit of "
        f"{limits[-1]} ({a.seeds} seeds). The p95 exceeds ten times that at: {said}.")
    write_readme(
        out, "Capacity: 450 retries against delivery concurrency",
        "For which unknown-recipient shares and concurrency limits does the upstream's 450 "
        "retry traffic delay valid mail?",
        [*setup_lines(scen[0]),
         f"two senders: mail to unknown users from the start; valid mail from "
         f"{fmt_time(valid_from)} (after the backlog's plateau) to the end, {rate * DAY:,.0f} "
         f"messages/day in all",
         "swept: unknown share = " + ", ".join(f"{s:g}" for s in shares)
         + "; upstream.default_destination_concurrency_limit = "
         + ", ".join(str(c) for c in limits),
         f"{a.seeds} seeds per point; error bars: {ci_method(a.seeds)}"],
        [(NAME, "Valid-mail p95 delay and agent utilisation")],
        answer, f"python experiments/{NAME}.py" + (" --quick" if a.quick else ""),
        notes=["Every attempt, a 450 retry or a delivery, holds an agent for an exponential "
               "smtp_transaction_time; a real 450 after RCPT may be quicker than a delivery.",
               SCAN_ORDER_NOTE,
               "Agents busy = attempts x mean transaction time / (limit x time), while valid "
               "mail flows."],
        headline=(f"With {shares[-1]:.0%} of the mail to unknown users, valid mail's p95 delay "
                  f"is {np.mean(p95[:, -1, 0]):,.0f} s at a concurrency limit of {limits[0]} "
                  f"(agents {np.mean(util[:, -1, 0]):.0f} % busy) and "
                  f"{np.mean(p95[:, -1, -1]):.1f} s at {limits[-1]}: each queue run's batch of "
                  f"450 retries delays the valid mail queued behind it."))
    print(f"{NAME}: wrote {len(paths)} figures to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
