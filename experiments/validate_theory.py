"""Validation against queueing theory: the delivery pool as M/M/c, the deferred queue by Little.

Questions:
(a) With every recipient valid, Poisson arrivals and exponential transaction times, the
    upstream's delivery agents are an M/M/c queue (c = default_destination_concurrency_limit,
    FIFO). Do relaysim's mean wait and P(wait > 0) match Erlang C for rho = 0.3 .. 0.9 and
    c = 1, 5, 20?
(b) Little's law on a 450 scenario: is the time-average deferred queue (Results.timeseries)
    equal to the rate at which mail enters the deferred queue times its mean time there (both
    from the attempts table), within 1 %? The run starts and ends with an empty queue, so the
    law holds exactly for the sample path: the check is that relaysim's queue series and its
    per-message attempts tell the same story. (A window in mid-run would add edge terms of
    relative size about W / window, noise that says nothing about the model.)
(c) Under a 450, every message to an unknown user stays from arrival to its expiry, so the
    deferred queue is an M/G/infinity queue: backlog = rate_unknown x (lifetime + mean expiry
    lag). Does relaysim's steady-state backlog match, for several lifetimes? Two references:
    the domain brief's mean lag of half the steady retry interval (2100 s with defaults), and
    the exact mean lag, derived here by iterating Postfix's rule (qmgr_active.c, qmgr.c) over
    the arrival phase within a queue-run interval.

How: (a) explicit arrival times drawn here (numpy, own seed), so each message's wait is its
attempt's start (Results.attempts, message id = order of arrival) minus its arrival; the first
5 % of messages are dropped as warm-up. (b), (c): Poisson senders; smtp_transaction_time = 0,
so an attempt starts and ends at the same instant and a message is in the deferred queue
exactly between consecutive attempts. Every check compares a closed form with the 95 %
t-interval over seeds (sim.studies.sweep.mean_ci).

Figures: mmc_wait (mean wait, P(wait > 0) and their relative error vs rho, per c),
littles_law (deferred queue over time with L and lambda x W), expiry_lag (backlog / rate -
lifetime vs lifetime: relaysim, the exact lag, the brief's 2100 s).

Usage: .venv/bin/python experiments/validate_theory.py [--quick] [--out DIR] [--seeds N]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

import sim
from sim.reports import plotting
from sim.results import write_atomic
from sim.studies.sweep import mean_ci, write_readme

OUT = Path(__file__).resolve().parent.parent / "results" / "validation" / "theory"
DAY = 86400.0
MEAN_SERVICE = 1.0  # s, (a)
WARMUP_SHARE = 0.05  # (a): share of messages dropped from the start
RHOS = (0.3, 0.5, 0.7, 0.8, 0.9)
CS = (1, 5, 20)
LIFETIMES_D = (1, 2, 3, 5)


# --- closed forms ------------------------------------------------------------------------------

def erlang_c(c: int, a: float) -> float:
    """P(wait > 0) in M/M/c with offered load a = lambda/mu < c (Erlang's C formula), by the
    stable recursion over Erlang B: B(0) = 1, B(k) = a B(k-1) / (k + a B(k-1))."""
    if not 0 <= a < c:
        raise ValueError(f"offered load {a} must be in [0, c = {c})")
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    rho = a / c
    return b / (1 - rho + rho * b)


def mmc_mean_wait(c: int, lam: float, mu: float) -> float:
    """Mean wait before service in M/M/c: C(c, lambda/mu) / (c mu - lambda)."""
    return erlang_c(c, lam / mu) / (c * mu - lam)


def mg1_mean_wait(lam: float, mean: float, second_moment: float) -> float:
    """Mean wait before service in M/G/1 (Pollaczek-Khinchine): lambda E[S^2] / (2 (1 - rho))."""
    return lam * second_moment / (2 * (1 - lam * mean))


def steady_retry_interval(up) -> float:
    """Postfix's retry interval once the backoff is capped: deferred at scan T, the file's
    mtime is T + maximal_backoff_time and the first scan T' with mtime <= T' + 1 takes it."""
    r = up.queue_run_delay
    return r * math.ceil((up.maximal_backoff_time - 1) / r)


def expiry_lag(up, phases: int = 3000) -> float:
    """Mean time (s) from lifetime to expiry of a message that is always deferred, over arrival
    phases spread evenly within one queue-run interval. Postfix's rule, written out here
    independently of relaysim's engine: first attempt on arrival, create = floor(arrival); after
    an attempt at T (now = floor(T)) the message expires if now >= create + lifetime, else its
    mtime is now + clamp(now - create, minimal_backoff_time, maximal_backoff_time) and the next
    attempt is the first scan k * queue_run_delay (k >= 1) with mtime <= scan + 1."""
    r, lo, hi = up.queue_run_delay, up.minimal_backoff_time, up.maximal_backoff_time
    life = up.maximal_queue_lifetime
    a = 100 * r + (np.arange(phases) + 0.5) * r / phases
    create = np.floor(a)
    t = a.copy()
    live = np.floor(t) < create + life
    while live.any():
        now = np.floor(t[live])
        mtime = now + np.clip(now - create[live], lo, hi)
        t[live] = np.maximum(1, np.ceil((mtime - 1) / r)) * r
        live = np.floor(t) < create + life
    return float(np.mean(t - a - life))


# --- (a) M/M/c ---------------------------------------------------------------------------------

def mmc_scenario(c: int, rho: float, n: int, seed: int,
                 upstream: dict | None = None) -> tuple[sim.Scenario, np.ndarray]:
    """All-valid scenario with n Poisson arrivals (drawn from `seed`) at rate rho c / service
    (upstream: more [upstream] keys, e.g. the attempt durations' shape)."""
    lam = rho * c / MEAN_SERVICE
    t = np.cumsum(np.random.default_rng([seed, c, int(rho * 1000)]).exponential(1 / lam, n))
    t = np.round(t, 6)  # the scenario holds them as "<s>.<us>s"
    scenario = sim.Scenario.from_dict({
        "simulation": {"name": f"mmc-c{c}-rho{rho}", "duration": f"{t[-1] + 3600:.6f}s",
                       "sample_interval": "3600s"},
        "senders": [{"arrivals": [f"{x:.6f}s" for x in t], "unknown_recipient_fraction": 0}],
        "upstream": {"default_destination_concurrency_limit": c,
                     "smtp_transaction_time": f"{MEAN_SERVICE}s", **(upstream or {})},
        "relay": {"local_users": 100}})
    return scenario, t


def mmc_run(c: int, rho: float, n: int, seed: int,
            upstream: dict | None = None) -> tuple[float, float]:
    """(mean wait s, P(wait > 0)) of one run, after the warm-up."""
    scenario, t = mmc_scenario(c, rho, n, seed, upstream)
    a = sim.simulate(scenario, seed=seed, record_attempts=True).attempts
    if a["t_s"].size != n or (a["outcome"] != "sent").any():
        raise AssertionError("all-valid mail must have exactly one attempt each, all sent")
    start = np.empty(n)
    start[a["message_id"]] = a["t_s"]  # message id = order of receipt = order of arrival
    wait = (start - t)[int(WARMUP_SHARE * n):]
    return float(wait.mean()), float((wait > 0).mean())


# --- (b) and (c): the deferred queue under a 450 -----------------------------------------------

def deferred_scenario(lifetime: float, rate_per_day: float, unknown: float, duration: float,
                      seed: int, sample: str = "60s", stop: float | None = None) -> sim.Scenario:
    """450 at the relay, Postfix defaults except the lifetime; transactions take no time; the
    sender stops at `stop` (default: never)."""
    sender = {"rate": f"{rate_per_day}/d", "unknown_recipient_fraction": unknown}
    if stop is not None:
        sender["stop"] = f"{stop:.0f}s"
    return sim.Scenario.from_dict({
        "simulation": {"name": "deferred", "duration": f"{duration:.0f}s",
                       "sample_interval": sample, "seed": seed},
        "senders": [sender],
        "upstream": {"maximal_queue_lifetime": f"{lifetime:.0f}s",
                     "bounce_queue_lifetime": f"{lifetime:.0f}s", "smtp_transaction_time": "0s"},
        "relay": {"unknown_local_recipient_reject_code": 450, "local_users": 100}})


def deferred_spells(attempts: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(message, from, to) of every stay in the deferred queue: from a deferred attempt to the
    message's next attempt (inf if none was recorded before the end of the run)."""
    order = np.lexsort((attempts["t_s"], attempts["message_id"]))
    m, t, o = (attempts[k][order] for k in ("message_id", "t_s", "outcome"))
    same_next = np.r_[m[1:] == m[:-1], False]
    t_next = np.where(same_next, np.r_[t[1:], np.inf], np.inf)
    d = o == "deferred"
    return m[d], t[d], t_next[d]


def littles_law(results: sim.Results) -> dict:
    """Little's law over a whole run that starts and ends with an empty deferred queue: the
    time average of timeseries['deferred'] (mean of its samples) against lambda x W from the
    attempts table (lambda: messages that were ever deferred per second of the run; W: their
    mean total time in the deferred queue). With the queue empty at both ends the law holds
    exactly for the sample path, so what is left is the sampling of the level (events between
    samples) and any disagreement between the series and the attempts table."""
    ts = results.timeseries
    if ts["deferred"][-1] != 0:
        raise ValueError("the deferred queue is not empty at the end of the run")
    level = float(ts["deferred"].mean())
    span = ts["t_s"].size * (ts["t_s"][1] - ts["t_s"][0])  # each sample stands for one interval
    m, lo, hi = deferred_spells(results.attempts)
    stay = np.bincount(m, weights=hi - lo)[np.unique(m)]
    if not np.isfinite(stay).all():
        raise ValueError("some messages were still deferred at the end of the run")
    lam = stay.size / span
    w = float(stay.mean())
    return {"L_time_average": level, "lambda_per_day": lam * DAY, "W_s": w, "lambda_W": lam * w,
            "relative_difference": lam * w / level - 1, "messages": int(stay.size)}


def littles_run(seed: int, quick: bool = False) -> dict:
    """(b): 1 d lifetime, 2000 messages/d of which 30 % to unknown users (600/d deferred), for
    14 d (quick: 4 d); then no new mail until the last message has expired."""
    stop = (4 if quick else 14) * DAY
    r = sim.simulate(
        deferred_scenario(DAY, 2000, 0.3, stop + DAY + 3 * 3600, seed, stop=stop),
        record_attempts=True)
    return {"seed": seed, **littles_law(r)}


def backlog_run(lifetime: float, seed: int, window: float,
                rate_unknown_per_day: float) -> tuple[float, float]:
    """(c): (time-average deferred queue over `window` after a warm-up of lifetime + 3 h,
    mean expiry lag in s of the messages that arrived in the window and expired, from the
    attempts table: expiry attempt - first attempt - lifetime)."""
    t1 = lifetime + 3 * 3600
    r = sim.simulate(deferred_scenario(lifetime, 2 * rate_unknown_per_day, 0.5,
                                       t1 + window + lifetime + 2 * 3600, seed, sample="300s"),
                     record_attempts=True)
    ts = r.timeseries
    keep = (ts["t_s"] >= t1) & (ts["t_s"] < t1 + window)
    a = r.attempts
    m = a["message_id"]
    first = np.full(m.max() + 1, np.inf)
    np.minimum.at(first, m, a["t_s"])
    gone = a["outcome"] == "expired"
    arrived = first[m[gone]]
    lag = (a["t_s"][gone] - arrived - lifetime)[(arrived >= t1) & (arrived < t1 + window)]
    return float(ts["deferred"][keep].mean()), float(lag.mean())


# --- the experiment ----------------------------------------------------------------------------

def _pool(fn, jobs, workers):
    if workers == 1:
        return [fn(*j) for j in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, *zip(*jobs, strict=True)))


def _inside(lo, hi, x, n_total: int | None = None) -> bool:
    """x within [lo, hi]. A zero-width interval (every run saw no wait at all) is judged by
    the rule of three instead: seeing no event in n_total trials is consistent with any
    probability up to 3 / n_total (95 %)."""
    if hi == lo and n_total:
        return bool(x <= 3 / n_total) if lo == 0 else bool(lo == x)
    return bool(lo <= x <= hi)


def run_mmc(seeds: list[int], n: int, workers: int, rhos=RHOS, cs=CS) -> list[dict]:
    jobs = [(c, rho, n, s) for c in cs for rho in rhos for s in seeds]
    res = iter(_pool(mmc_run, jobs, workers))
    rows = []
    for c in cs:
        for rho in rhos:
            w, p = np.array([next(res) for _ in seeds]).T
            mw, wlo, whi = mean_ci(w)
            mp, plo, phi = mean_ci(p)
            tw = mmc_mean_wait(c, rho * c / MEAN_SERVICE, 1 / MEAN_SERVICE)
            tp = erlang_c(c, rho * c)
            total = len(seeds) * (n - int(WARMUP_SHARE * n))
            rows.append({"c": c, "rho": rho, "seeds": len(seeds), "messages": n,
                         "wait_theory_s": tw, "wait_sim_s": float(mw), "wait_lo": float(wlo),
                         "wait_hi": float(whi),
                         "wait_inside_ci": _inside(wlo, whi, tw) or bool(
                             whi == wlo == 0 and _inside(0, 0, tp, total)),
                         "pwait_theory": tp, "pwait_sim": float(mp), "pwait_lo": float(plo),
                         "pwait_hi": float(phi),
                         "pwait_inside_ci": _inside(plo, phi, tp, total)})
    return rows


def recheck(rows: list[dict], n: int, workers: int, seeds=range(1001, 1101)) -> list[dict]:
    """Every (c, rho) whose interval missed a closed form, run again with 100 fresh seeds: with
    30 checks at 95 % about 1.5 misses are expected by chance, and a real bias persists."""
    return [run_mmc(list(seeds), n, workers, rhos=(r["rho"],), cs=(r["c"],))[0] for r in rows
            if not (r["wait_inside_ci"] and r["pwait_inside_ci"])]


def run_backlog(seeds: list[int], workers: int, window: float, rate: float,
                lifetimes_d=LIFETIMES_D) -> list[dict]:
    jobs = [(d * DAY, s, window, rate) for d in lifetimes_d for s in seeds]
    res = iter(_pool(backlog_run, jobs, workers))
    up0 = sim.Scenario.from_dict({}).upstream
    interval = steady_retry_interval(up0)
    rows = []
    for d in lifetimes_d:
        q, per_msg = np.array([next(res) for _ in seeds]).T
        lag_sim, lo, hi = (x / (rate / DAY) - d * DAY for x in mean_ci(q))
        up = sim.Scenario.from_dict({"upstream": {"maximal_queue_lifetime": f"{d}d"}}).upstream
        lag = expiry_lag(up)
        rows.append({"lifetime_d": d, "backlog_sim": float(np.mean(q)),
                     "backlog_exact_lag": rate / DAY * (d * DAY + lag),
                     "backlog_half_interval": rate / DAY * (d * DAY + interval / 2),
                     "lag_sim_s": float(lag_sim), "lag_lo_s": float(lo), "lag_hi_s": float(hi),
                     "lag_per_message_s": float(np.mean(per_msg)),
                     "lag_exact_s": lag, "lag_half_interval_s": interval / 2,
                     "exact_inside_ci": _inside(lo, hi, lag),
                     "half_interval_inside_ci": _inside(lo, hi, interval / 2)})
    return rows


def _fig_mmc(rows, out):
    with plotting.style():
        fig, axes = plotting.figure(1, 3, sharex=True, width=14, height=4.6)
        fig.suptitle("(a) Delivery pool as M/M/c: relaysim (95 % CI over seeds) vs Erlang C")
        for k, c in enumerate(CS):
            r = [x for x in rows if x["c"] == c]
            rho = np.array([x["rho"] for x in r])
            color = f"C{k}"
            for ax, key, th in ((axes[0], "wait", "wait_theory_s"),
                                (axes[1], "pwait", "pwait_theory")):
                ax.plot(rho, [x[th] for x in r], color=color, linewidth=1, label=f"Erlang C, c={c}")
                m = np.array([x[f"{key}_sim" if key == "pwait" else "wait_sim_s"] for x in r])
                lo = np.array([x[f"{key}_lo"] for x in r])
                hi = np.array([x[f"{key}_hi"] for x in r])
                ax.errorbar(rho, m, yerr=[m - lo, hi - m], color=color, marker="o",
                            linestyle="none", markersize=4, label=f"relaysim, c={c}")
                if key == "wait":  # relative error where waiting is common enough to measure
                    ok = np.array([x["pwait_theory"] >= 0.01 for x in r])
                    th_ = np.array([x[th] for x in r])[ok]
                    mm, ll, hh = m[ok], lo[ok], hi[ok]
                    axes[2].errorbar(rho[ok] + 0.006 * (k - 1), 100 * (mm / th_ - 1),
                                     yerr=[100 * (mm - ll) / th_, 100 * (hh - mm) / th_],
                                     color=color, marker="o", linestyle="none", markersize=4,
                                     label=f"mean wait, c={c}")
        axes[0].set_yscale("log")
        axes[0].set_ylabel("mean wait before an agent (s), service mean 1 s")
        axes[0].set_title("Mean wait")
        axes[1].set_ylabel("P(wait > 0)")
        axes[1].set_title("Share of messages that wait")
        axes[2].axhline(0, color="0.3", linewidth=1)
        axes[2].set_ylabel("relaysim / Erlang C - 1 (%)")
        axes[2].set_title("Relative error of the mean wait (P(wait) >= 1 %)")
        for ax in axes:
            ax.set_xlabel("utilisation rho = lambda / (c mu)")
        axes[1].legend(fontsize=8, loc="upper left")
        axes[2].legend(fontsize=8)
        plotting.save(fig, out / "mmc_wait")
    plotting.save_table(out / "mmc_wait", {k: [r[k] for r in rows] for k in rows[0]})


def _fig_littles(example: sim.Results, rows, out):
    ts = example.timeseries
    r0 = rows[0]
    with plotting.style():
        fig, ax = plotting.figure()
        fig.suptitle("(b) Little's law on the deferred queue (450, lifetime 1 d)")
        ax.plot(ts["t_s"] / DAY, ts["deferred"], linewidth=0.6,
                label="deferred queue (60 s samples)")
        ax.axhline(r0["L_time_average"], color="C1", linewidth=2,
                   label=f"time average L = {r0['L_time_average']:.2f}")
        ax.axhline(r0["lambda_W"], color="C2", linestyle="--", linewidth=2,
                   label=f"lambda x W = {r0['lambda_W']:.2f}")
        ax.set_title(f"Seed {r0['seed']}: lambda x W / L - 1 = "
                     f"{100 * r0['relative_difference']:+.3f} %; every seed within "
                     f"{100 * max(abs(r['relative_difference']) for r in rows):.3f} %")
        ax.set_ylabel("messages")
        plotting.days_axis(ax)
        ax.set_ylim(bottom=0)
        ax.legend(loc="lower center")
        plotting.save(fig, out / "littles_law")
    plotting.save_table(out / "littles_law", {k: [r[k] for r in rows] for k in rows[0]})


def _fig_lag(rows, out, rate):
    up0 = sim.Scenario.from_dict({}).upstream
    grid = np.arange(0.9 * DAY, 5.2 * DAY, 150.0)
    exact = [expiry_lag(sim.Scenario.from_dict(
        {"upstream": {"maximal_queue_lifetime": f"{x:.0f}s"}}).upstream, phases=300)
        for x in grid]
    with plotting.style():
        fig, ax = plotting.figure()
        fig.suptitle("(c) Steady-state backlog under a 450: rate x (lifetime + mean expiry lag)")
        ax.plot(grid / DAY, exact, linewidth=0.6, alpha=0.6, label="exact mean lag (Postfix "
                "rule iterated over the arrival phase), sawtooth of period 4200 s")
        ax.axhline(steady_retry_interval(up0) / 2, color="C1", linestyle="--",
                   label="half the steady retry interval (2100 s, domain brief)")
        x = np.array([r["lifetime_d"] for r in rows])
        m = np.array([r["lag_sim_s"] for r in rows])
        lo = np.array([r["lag_lo_s"] for r in rows])
        hi = np.array([r["lag_hi_s"] for r in rows])
        ax.errorbar(x, m, yerr=[m - lo, hi - m], color="C2", marker="o", linestyle="none",
                    label="relaysim: backlog / rate - lifetime (95 % CI)")
        ax.plot(x, [r["lag_exact_s"] for r in rows], color="C0", marker="_", markersize=22,
                linestyle="none", markeredgewidth=2, label="exact mean lag at these lifetimes")
        ax.plot(x, [r["lag_per_message_s"] for r in rows], color="C3", marker="x",
                linestyle="none", markersize=9,
                label="relaysim: mean over messages of expiry - arrival - lifetime")
        ax.set_xlabel("maximal_queue_lifetime (days)")
        ax.set_ylabel("mean expiry lag (s)")
        ax.set_title(f"rate to unknown users {rate:,.0f}/d; the lag depends on lifetime mod "
                     f"{steady_retry_interval(up0):.0f} s")
        fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=1,
                   fontsize=8.5)  # below the axes: the sawtooth fills the plot
        plotting.save(fig, out / "expiry_lag")
    plotting.save_table(out / "expiry_lag", {k: [r[k] for r in rows] for k in rows[0]})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small runs (a smoke test)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: "
                   "results/validation/theory/; with --quick: results-quick/validation/theory/)")
    p.add_argument("--seeds", type=int, default=None, help="replications (default 10; quick 3)")
    p.add_argument("--workers", type=int, default=None, help="parallel processes")
    a = p.parse_args(argv)
    if a.out is None:
        a.out = OUT.parents[2] / "results-quick" / "validation" / "theory" if a.quick else OUT
    n_seeds = a.seeds or (3 if a.quick else 10)
    seeds = list(range(1, n_seeds + 1))
    workers = a.workers or os.cpu_count() or 1
    a.out.mkdir(parents=True, exist_ok=True)

    n = 20000 if a.quick else 200000
    mmc = run_mmc(seeds, n, workers)
    _fig_mmc(mmc, a.out)
    again = [] if a.quick else recheck(mmc, n, workers)

    lit = _pool(littles_run, [(s, a.quick) for s in seeds], workers)
    stop = (4 if a.quick else 14) * DAY
    example = sim.simulate(deferred_scenario(DAY, 2000, 0.3, stop + DAY + 3 * 3600, seeds[0],
                                             stop=stop))
    _fig_littles(example, lit, a.out)

    rate, window = (500.0, 3 * DAY) if a.quick else (2000.0, 10 * DAY)
    lags = run_backlog(seeds, workers, window, rate, (1, 2) if a.quick else LIFETIMES_D)
    _fig_lag(lags, a.out, rate)

    summary = {"mmc": mmc, "mmc_recheck": again, "littles_law": lit, "backlog": lags,
               "seeds": seeds, "quick": a.quick}
    write_atomic(a.out / "summary.json",
                 json.dumps(summary, indent=1, default=lambda o: o.item()) + "\n")
    _readme(a.out, mmc, again, lit, lags, seeds, n, rate, window, a.quick)
    bad = sum(not r["wait_inside_ci"] for r in mmc) + sum(not r["pwait_inside_ci"] for r in mmc)
    print(f"M/M/c: {2 * len(mmc) - bad} of {2 * len(mmc)} closed-form values inside the 95 % CI; "
          f"Little: max |lambda W / L - 1| = "
          f"{max(abs(r['relative_difference']) for r in lit):.3%}; backlog: exact lag inside CI "
          f"for {sum(r['exact_inside_ci'] for r in lags)} of {len(lags)} lifetimes")
    return 0


def _readme(out, mmc, again, lit, lags, seeds, n, rate, window, quick):
    inside_w = sum(r["wait_inside_ci"] for r in mmc)
    inside_p = sum(r["pwait_inside_ci"] for r in mmc)
    common = [r for r in mmc if r["pwait_theory"] >= 0.01] or mmc
    worst = max(common, key=lambda r: abs(r["wait_sim_s"] / r["wait_theory_s"] - 1))
    lmax = max(abs(r["relative_difference"]) for r in lit)
    exact_in = sum(r["exact_inside_ci"] for r in lags)
    half_in = sum(r["half_interval_inside_ci"] for r in lags)
    k = 2 * len(mmc)
    answer = (
        f"(a) Erlang C's mean wait lies inside relaysim's 95 % interval for {inside_w} of "
        f"{len(mmc)} (c, rho) settings and P(wait > 0) for {inside_p} of {len(mmc)} (about "
        f"{0.05 * k:.1f} of {k} would fall outside by chance); where at least 1 % of mail "
        f"waits, the largest relative deviation of the mean wait is "
        f"{worst['wait_sim_s'] / worst['wait_theory_s'] - 1:+.1%} (c = {worst['c']}, rho = "
        f"{worst['rho']})." + "".join(
            f" Re-run with {r['seeds']} fresh seeds, c = {r['c']}, rho = {r['rho']} gives a mean "
            f"wait of {r['wait_sim_s']:.4f} s ({r['wait_lo']:.4f} to {r['wait_hi']:.4f}; Erlang "
            f"C {r['wait_theory_s']:.4f}, {'inside' if r['wait_inside_ci'] else 'OUTSIDE'}) and "
            f"P(wait > 0) = {r['pwait_sim']:.4f} ({r['pwait_lo']:.4f} to {r['pwait_hi']:.4f}; "
            f"{r['pwait_theory']:.4f}, {'inside' if r['pwait_inside_ci'] else 'OUTSIDE'})."
            for r in again) + " (b) Little's law holds to "
        f"{lmax:.3%} or better on every seed (target 1 %). (c) With the exact mean expiry lag the "
        f"closed form lies inside relaysim's interval for {exact_in} of {len(lags)} lifetimes; "
        f"with the brief's 2100 s for {half_in}: the mean lag is not half the retry interval "
        "but a sawtooth in the lifetime (lifetime mod 4200 s), because Postfix's backoff is "
        "anchored to each message's own arrival, so all messages of a given lifetime expire "
        "within one 300 s window of lags.")
    setup = [
        f"Seeds {seeds[0]}..{seeds[-1]} ({len(seeds)} per setting); 95 % Student-t intervals "
        "over seeds (sim.studies.sweep.mean_ci).",
        f"(a) {n:,} messages per run, explicit Poisson arrival times (numpy, own seed), "
        f"every recipient known, smtp_transaction_time = {MEAN_SERVICE:g} s (exponential), "
        f"default_destination_concurrency_limit = c; the first {WARMUP_SHARE:.0%} of messages "
        "are dropped as warm-up; wait = attempt start (Results.attempts) - arrival.",
        f"(b) 2000 messages/d (Poisson) for {4 if quick else 14} d, then none; 30 % to unknown "
        "users, relay answers 450, Postfix defaults with maximal_queue_lifetime = 1d, "
        "smtp_transaction_time = 0; run until the last message expired. L = mean of "
        "timeseries['deferred'] (60 s samples) over the run; lambda = messages ever deferred "
        "per second, W = their mean total time in the deferred queue, both from the attempts "
        "table (a message is deferred from a deferring attempt to its next attempt).",
        f"(c) {rate:,.0f} messages/d to unknown users (plus as many to known ones), relay "
        f"answers 450, Postfix defaults, lifetimes {', '.join(str(r['lifetime_d']) for r in lags)} "
        f"d; backlog = mean of timeseries['deferred'] over {window / DAY:.0f} d after a warm-up "
        "of lifetime + 3 h.",
    ]
    table = ["| c | rho | mean wait: Erlang C | relaysim (95 % CI) | P(wait>0): Erlang C | "
             "relaysim (95 % CI) |", "|---|---|---|---|---|---|"]
    for r in mmc:
        table.append(f"| {r['c']} | {r['rho']} | {r['wait_theory_s']:.4f} | "
                     f"{r['wait_sim_s']:.4f} ({r['wait_lo']:.4f} to {r['wait_hi']:.4f})"
                     f"{'' if r['wait_inside_ci'] else ' **outside**'} | "
                     f"{r['pwait_theory']:.4f} | {r['pwait_sim']:.4f} ({r['pwait_lo']:.4f} to "
                     f"{r['pwait_hi']:.4f}){'' if r['pwait_inside_ci'] else ' **outside**'} |")
    lag_table = ["| lifetime | exact mean lag (s) | brief: half interval (s) | relaysim: "
                 "backlog / rate - lifetime (95 % CI, s) | relaysim: mean lag per message (s) | "
                 "backlog relaysim | backlog exact | backlog brief |",
                 "|---|---|---|---|---|---|---|---|"]
    for r in lags:
        lag_table.append(
            f"| {r['lifetime_d']} d | {r['lag_exact_s']:.0f} | {r['lag_half_interval_s']:.0f} | "
            f"{r['lag_sim_s']:.0f} ({r['lag_lo_s']:.0f} to {r['lag_hi_s']:.0f}) | "
            f"{r['lag_per_message_s']:.1f} | {r['backlog_sim']:.1f} | "
            f"{r['backlog_exact_lag']:.1f} | {r['backlog_half_interval']:.1f} |")
    lit_table = ["| seed | L (time average) | lambda (1/d) | W (s) | lambda x W | "
                 "lambda W / L - 1 |", "|---|---|---|---|---|---|"]
    for r in lit:
        lit_table.append(f"| {r['seed']} | {r['L_time_average']:.2f} | "
                         f"{r['lambda_per_day']:.1f} | {r['W_s']:.0f} | {r['lambda_W']:.2f} | "
                         f"{100 * r['relative_difference']:+.3f} % |")
    notes = [
        "Mean expiry lag, exact: iterate Postfix's rule (first attempt on arrival, create = "
        "floor(arrival); after an attempt at T the message expires if floor(T) >= create + "
        "lifetime, else mtime = floor(T) + clamp(age, minimal_backoff_time, "
        "maximal_backoff_time) and the next attempt is the first scan k x queue_run_delay with "
        "mtime <= scan + 1) from arrivals spread over one queue-run interval (expiry_lag(); "
        "it agrees with sim.studies.sweep.residence_time, the engine's own reference, "
        "to the second).",
        "The domain brief (mta-semantics.md sections 0.6, 2.4 and 7) puts the mean lag at "
        "about 2100 s, half the 4200 s steady retry interval, assuming the retry cycle's phase "
        "is uniform. It is not: backoff is anchored to each message's own arrival, so the ages "
        "at which a message is retried depend only on where it arrived within a 300 s "
        "queue-run interval; for one lifetime all messages expire within a 300 s window of "
        "lags whose position follows lifetime mod 4200 s (mean 1051 s for the default 5 d, "
        "4023 s for 2 d). 2100 s is the average over lifetimes. The backlog error of the "
        "brief's formula is below 1.2 % for lifetimes of a day or more.",
    ]
    write_readme(out, "relaysim against queueing theory",
                 "Does relaysim's delivery pool behave as M/M/c (Erlang C), and does its "
                 "deferred queue obey Little's law and the M/G/infinity backlog "
                 "rate x (lifetime + mean expiry lag)?",
                 setup,
                 [("mmc_wait", "(a) Mean wait and P(wait > 0): relaysim vs Erlang C"),
                  ("littles_law", "(b) Time-average deferred queue vs lambda x W"),
                  ("expiry_lag", "(c) Mean expiry lag: relaysim, exact, and the brief's 2100 s")],
                 answer, "python experiments/validate_theory.py" + (" --quick" if quick else ""),
                 notes)
    text = (out / "README.md").read_text()
    extra = ["## Tables", "", "### (a) M/M/c" + (" (quick run)" if quick else ""), "", *table,
             "", "### (b) Little's law", "", *lit_table, "",
             "### (c) Backlog and mean expiry lag", "", *lag_table, ""]
    write_atomic(out / "README.md", text.replace("## Notes", "\n".join(extra) + "\n## Notes"))


if __name__ == "__main__":
    sys.exit(main())
