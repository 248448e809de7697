"""simulate(): one run's whole life, from a frozen Scenario to a Results object.

Public names: simulate.

Contract: simulate(scenario, seed=None, record_attempts=False, progress=None, on_attempts=None)
builds the random streams (numpy SeedSequence(seed or scenario.simulation.seed) spawned once
per source: service times, outages, per sender its arrivals and its recipients, and from
the recipients' one its (recipient, sender) pairs, then the salt of the queue files' places
in their directory, sim.model.qmgr.rules.file_place), the
relay timeline and the SimPy processes (one per sender, the upstream qmgr, the scheduled
changes, and a sampler when `progress` is given), runs them to scenario.simulation.duration
and reduces what the metrics recorded into Results. The same scenario and seed give
identical Results.
`progress(simulated_seconds)` is called from the sampler at every sample time;
`initial_queue` (sim.model.qmgr.InitialQueue) starts the upstream from a real queue;
`trace` (sim.model.trace.Trace, checked first: ValueError) is the mail instead of the
scenario's senders (a replayed log: its arrivals, recipients, senders, sizes and, where the
log shows them, the files' places in the deferred scan's order), the
random streams staying those of the scenario (service times, outages);
`on_attempts(batch)` gets the attempt stream as it is computed (numpy arrays of
sim.model.qmgr.ATTEMPT, the attempts that end within the run), in bounded memory, so that a
maillog or metrics writer never holds a whole run. Nothing is printed or written.
"""

from __future__ import annotations

import platform
import time

import numpy as np
import simpy

from sim import __version__
from sim.model.metrics import Recorder
from sim.model.qmgr import QueueHost
from sim.model.relay import RelayTimeline, outage_intervals
from sim.model.sender import pair_count, sender_process
from sim.model.trace import check_trace, trace_process
from sim.results import Results


def _until(on_attempts, duration: float):
    """on_attempts for the attempts that end within the run (Postfix logs an attempt when it
    ends; the engine computes some of the last ticks' attempts beyond the run's end)."""
    def hand_on(batch):
        keep = batch["end"] <= duration
        on_attempts(batch if keep.all() else batch[keep])
    return hand_on


def _names(trace, initial_queue) -> np.ndarray | None:
    """The queue files' places by queue id where the trace gives them (the initial queue's
    files come first, hashed: NaN)."""
    if trace is None or trace.name is None:
        return None
    before = 0 if initial_queue is None else initial_queue.arrival.size
    return np.concatenate([np.full(before, np.nan), np.asarray(trace.name, dtype=float)])


def simulate(scenario, seed: int | None = None, record_attempts: bool = False,
             progress=None, on_attempts=None, initial_queue=None, trace=None) -> Results:
    """Run `scenario` and return its Results (see the module contract)."""
    wall0 = time.perf_counter()
    seed = scenario.simulation.seed if seed is None else int(seed)
    duration = scenario.simulation.duration
    ss = np.random.SeedSequence(seed)
    s_service, s_outage, *s_senders, s_names = ss.spawn(3 + 2 * len(scenario.senders))
    timeline = scenario.timeline()
    relay = RelayTimeline([(t, r) for t, _, r in timeline], outage_intervals(
        scenario.relay.outages, scenario.relay.outage_mtbf, scenario.relay.outage_mttr,
        duration, np.random.default_rng(s_outage)))

    env = simpy.Environment()
    rec = Recorder(duration, scenario.simulation.sample_interval)
    if trace is not None:
        check_trace(trace)
    width = max(([trace.rcpt.shape[1]] if trace is not None else
                 [s.recipients_per_message for s in scenario.senders])
                + ([initial_queue.rcpt.shape[1]] if initial_queue is not None else []))
    host = QueueHost(env, scenario, relay, np.random.default_rng(s_service), rec,
                     record_attempts, None if on_attempts is None else _until(on_attempts,
                                                                             duration),
                     width, initial_queue, sources=None if trace is None else 1,
                     pairs=0 if trace is not None else sum(map(pair_count, scenario.senders)),
                     salt=int(s_names.generate_state(1)[0]), names=_names(trace, initial_queue))

    # senders address every user that has existed so far: mail for a removed user keeps coming
    # (and is now unknown); a new user starts getting mail once added
    users_ever = np.maximum.accumulate(relay.users)

    def users_at(t: np.ndarray) -> np.ndarray:
        return users_ever[np.searchsorted(relay.times, t, side="right") - 1]

    lead = max(host.policy.interval(j) for j in range(len(host.snaps)))
    if trace is not None:
        env.process(trace_process(env, trace, 0, host, duration, lead))
    pair_base = 0
    for i, sender in enumerate(() if trace is not None else scenario.senders):
        s_rcpt = s_senders[2 * i + 1]
        env.process(sender_process(env, sender, i, host, users_at, width,
                                   np.random.default_rng(s_senders[2 * i]),
                                   np.random.default_rng(s_rcpt), duration, lead, pair_base,
                                   np.random.default_rng(s_rcpt.spawn(1)[0])))
        pair_base += pair_count(sender)
    env.process(host.process())

    def changes():
        for j, (t, _, _) in enumerate(timeline[1:], start=1):
            if t > duration:
                return
            yield env.timeout(t - env.now)
            host.reload(j)

    def sampler():
        for t in rec.t:
            yield env.timeout(t - env.now)
            progress(t)

    env.process(changes())
    if progress is not None:
        env.process(sampler())
    try:
        env.run(until=duration + 1e-6)
    finally:
        host.close()

    ts = {"t_s": rec.t}
    ts["incoming"] = np.zeros(rec.n)
    for name in ("active", "active_recipients", "deferred", "deferred_recipients"):
        ts[name] = rec.cumulative(name)
    ts["queued_bytes"] = rec.cumulative("bytes")
    for name in ("received", "delivered", "bounced", "expired", "attempts", "dsn",
                 "backscatter"):
        ts[name] = rec.cumulative(name)
    ts["queued_recipients"] = ts["received"] - ts["delivered"] - ts["bounced"] - ts["expired"]
    for name in ("relay_sessions", "rejects_4xx", "rejects_5xx", "greylisted", "probes",
                 "rejected_at_upstream"):
        ts[name] = rec.per_interval(name)
    g = lambda k: int(round(rec.total(k)))  # noqa: E731
    received, delivered, bounced, expired = (g("received"), g("delivered"), g("bounced"),
                                             g("expired"))
    d = host.delays
    summary = {
        "recipients": {"received": received, "delivered": delivered, "bounced": bounced,
                       "expired": expired,
                       "queued_at_end": received - delivered - bounced - expired,
                       "rejected_at_upstream": g("rejected_at_upstream"),
                       "rejected_at_upstream_4xx": g("rejected_at_upstream_4xx")},
        "messages": {"received": g("received_messages")},
        "attempts": g("attempts"),
        "dsn": {"nondelivery": g("dsn"), "backscatter": g("backscatter"),
                "delay": g("delay_dsn")},
        "relay": {"sessions": g("relay_sessions"), "rejects_4xx": g("rejects_4xx"),
                  "rejects_5xx": g("rejects_5xx"), "greylisted": g("greylisted"),
                  "probes": g("probes"), "hard_error_disconnects": g("hard_error_disconnects")},
        "deferred_peak_messages": int(ts["deferred"].max()) if rec.n else 0,
        "queued_peak_messages": int((ts["deferred"] + ts["active"]).max()) if rec.n else 0,
        "delivery_delay_s": {"p50": d.quantile(0.5), "p95": d.quantile(0.95),
                             "p99": d.quantile(0.99),
                             "max": d.max if d.n else float("nan")},
    }
    wall = time.perf_counter() - wall0
    return Results(
        scenario=scenario, seed=seed, summary=summary, timeseries=ts, qshape=host.qshape,
        delay_cdf=d.cdf(),
        attempts=host.attempts_table() if record_attempts else None,
        provenance={"relaysim": __version__, "python": platform.python_version(),
                    "numpy": np.__version__, "simpy": simpy.__version__,
                    "wall_time_s": round(wall, 3), "seed": seed})
