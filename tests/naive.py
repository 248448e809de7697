"""Naive reference model: one SimPy process per message, for tests and the benchmark.

Public names: naive_simulate, backoff, next_queue_run, relay_reply, in_outage.

Contract:
- naive_simulate(scenario, seed=None, record_attempts=False) runs the upstream queue host in front
  of the relay with Postfix qmgr semantics and returns a plain dict:
  * "summary": recipients {received, delivered, bounced, expired, queued_at_end}, messages
    {received}, attempts (recipient delivery attempts), dsn {nondelivery, backscatter},
    deferred_peak_messages, delivery_delay_s {p50, p95, p99, max} (seconds from arrival to the
    end of the successful attempt, over delivered recipients; NaN when none).
  * "timeseries": numpy arrays sampled at t = 0, sample_interval, ... <= duration: t_s, deferred,
    active (messages), queued_recipients, and cumulative received, delivered, bounced, expired,
    attempts (recipients).
  * "attempts" (only with record_attempts): (message_index, recipient_index, start_time_s,
    outcome) with outcome in sent, deferred, bounced, expired.
- It is written for clarity, not speed: it is the slow, obviously-correct yardstick the fast
  engine is compared against, so it shares no code with `sim/` beyond the Scenario.
- Time: float seconds since the start of the run; Postfix's own arithmetic (age, backoff, expiry)
  is in whole seconds, now = floor(time).
- The deferred scan due at k * queue_run_delay runs when qmgr's event loop wakes for it: at the
  due second plus the sub-second phase of the loop's last event (an arrival, an attempt's end,
  the previous scan), or at the first event after the due second if that comes earlier
  (Postfix events.c; upstream.qmgr_timer_phase = false: at the due second). The scan takes
  its messages in directory order: each message's queue file has a place, a uniform draw made
  at its arrival, and the scan asks for agents in ascending place.
- A state (deferred, active) holds over [entered, left); an event at time x counts in a sample
  at t iff x <= t. The run covers every event at t <= duration.
- An attempt counts (summary, cumulative series, record) when it starts. An attempt still running
  at `duration` keeps the relay's answer as its recorded outcome (its expiry is never decided).
- The deferred peak is the exact maximum over time of that half-open count, not over samples.
  Delay percentiles are numpy's default (linear interpolation).
- Delivery agents (postfix) are taken in the order they became free; each keeps its SMTP
  session to the relay, reused for its next delivery while Postfix's connection cache allows
  (smtp_connection_cache_on_demand, _time_limit, smtp_connection_reuse_time_limit), and the
  relay's smtpd counts errors in it and sleeps before its replies past
  smtpd_soft_error_limit (smtpd_sleeps); an outage ends every session.
- Messages are numbered in arrival order over all senders (ties: sender order). Requests for an
  agent at the same instant are served in SimPy's event order (earlier-scheduled first).
- A known recipient is drawn from [0, local_users at arrival); with no local users it is -1.
- Randomness: SeedSequence(seed, default scenario.simulation.seed) spawns four generators:
  arrivals, recipients (recipients and envelope sender), service times, the queue files'
  places in their directory.
Invariants: received = delivered + bounced + expired + queued_at_end, in the summary and at every
sample. Same seed, same result.
- Exim (upstream.mta = "exim", the agreement test of its retry records): a queue runner every
  queue_runner_interval visits every deferred message, oldest first, each message's first
  attempt being on arrival; a 4xx to RCPT writes the retry record of its key, the message's
  own or, when the sender's pools make pairs repeat, its (recipient, sender) pair's, shared by
  the pair's messages (Exim's R:<recipient>:<sender>): first failure, last try, next try from
  Exim's F/G/H rules on max(now - first failure, age), capped at 24 h, the message timed out
  when no rule covers that. A run routes a message whose record's next try has come or that
  is older than the last cutoff (the ultimate timeout); of a pair only the first routed in a
  run is tried, unless a later one is older than the last cutoff, while the relay answers
  unknown users with a 4xx; a 250 or 5xx deletes the pair's record, which is also ignored
  7 d after it was last written. Pairs are drawn from the sender's pools with the recipients'
  generator: a sender address uniformly, the null sender its own, an unknown recipient
  uniformly.
Errors: NotImplementedError for what this model leaves out: non-flat sender profiles, random
outages (outage_mtbf > 0), an upstream MTA other than postfix and exim, queue_run_delay or the
concurrency limit changing mid-run, and for exim: outages, H rules, scheduled changes.
Ignored: message_size, delay_warning_time, default_destination_recipient_limit,
qmgr_message_active_limit.
"""

from __future__ import annotations

import bisect
import collections
import math
from dataclasses import dataclass, field

import numpy as np
import simpy

from sim.scenario import Relay, Scenario, Upstream

OUTCOMES = ("sent", "deferred", "bounced", "expired")


# --- policies: small pure functions, no SimPy ----------------------------------------------------

def backoff(age: int, minimal: float, maximal: float) -> float:
    """Postfix's per-message cool-off after a pass with deferred recipients (qmgr_active.c)."""
    return min(max(age, minimal), maximal)


def next_queue_run(wake: float, deferred_at: float, queue_run_delay: float) -> float:
    """The first deferred-queue scan k * queue_run_delay (k >= 1) that picks the message up.

    A scan skips files whose mtime (`wake`) is more than 1 s in the future, and it can only see a
    file that is already in the deferred queue.
    """
    k = math.ceil(max(wake - 1, deferred_at) / queue_run_delay)
    return max(k, 1) * queue_run_delay


def relay_reply(user: int, relay: Relay, upstream_soft_bounce: bool = False) -> str:
    """sent, deferred or bounced for one RCPT TO (user -1: never a local user), as the upstream
    takes it: its own soft_bounce = yes defers a 5xx as well."""
    if 0 <= user < relay.local_users:
        return "sent"
    code = relay.unknown_local_recipient_reject_code
    if relay.soft_bounce and 500 <= code <= 599:
        code -= 100
    return "deferred" if code < 500 or upstream_soft_bounce else "bounced"


def in_outage(relay: Relay, t: float) -> bool:
    return any(o.start <= t < o.start + o.duration for o in relay.outages)


# --- the model -----------------------------------------------------------------------------------

@dataclass
class Message:
    """One message in the upstream queue; `pending` holds recipient indices not yet done."""
    index: int
    arrival: float
    create_time: int
    sender: str  # "real", "forged" or "null"
    users: list[int]  # one per recipient; -1 for a user the relay does not know
    pending: list[int]
    state: str = "active"  # "active" (in the delivery queue or in an attempt) or "deferred"
    key: tuple = ()  # exim: the key of its retry record (its own, or its pair's)
    wake: simpy.Event | None = None  # exim: the queue run that routes it
    name: float = 0.0  # postfix: its queue file's place in the deferred scan's order


@dataclass
class Agent:
    """One delivery agent's SMTP session to the relay: when it connected (None: no session),
    the relay's error count in it, when the agent was last free."""
    connected: float | None = None
    errors: int = 0
    free: float = 0.0


@dataclass
class Run:
    """Everything shared by the message processes of one run."""
    scenario: Scenario
    env: simpy.Environment
    pool: simpy.Resource
    arrivals_rng: np.random.Generator
    recipients_rng: np.random.Generator
    service_rng: np.random.Generator
    record_attempts: bool
    names_rng: np.random.Generator | None = None
    snap_times: list[float] = field(default_factory=list)
    snaps: list[tuple[Upstream, Relay]] = field(default_factory=list)
    dead_until: float = -math.inf
    # Postfix's in-core queue for the relay (qmgr_queue.c): its concurrency window, its failed
    # pseudo-cohorts, and how many messages are in the active queue (waiting or in a session)
    window: float = 0.0
    fail_cohorts: float = 0.0
    pending: int = 0
    window_rule: str = "limit"  # "busy": Postfix's own growth rule (see site_success)
    live: dict[int, Message] = field(default_factory=dict)
    messages: int = 0
    received: int = 0
    delivered: int = 0
    bounced: int = 0
    expired: int = 0
    attempts: int = 0
    nondelivery: int = 0
    backscatter: int = 0
    delays: list[float] = field(default_factory=list)
    deferrals: list[tuple[float, float]] = field(default_factory=list)  # [deferred, queue run)
    attempt_log: list[list] = field(default_factory=list)
    last_event: float = -math.inf  # qmgr's event loop: when it last woke
    waiter: simpy.Event | None = None  # a scan waiting for its phase, woken by any event
    scans: dict[float, list] = field(default_factory=dict)  # due second -> (place, index,
    # event) of each message waiting for that scan
    records: dict[tuple, dict] = field(default_factory=dict)  # exim: retry records by key
    agents: list = field(default_factory=list)  # postfix: the delivery agents' sessions
    idle: collections.deque = field(default_factory=collections.deque)  # the free ones, by
    # when they became free

    def hang_up(self) -> None:
        """The relay is down: every agent's session is gone."""
        for ag in self.agents:
            ag.connected = None

    def event(self, t: float) -> None:
        """Something woke qmgr's event loop at t (an arrival, an attempt's end, a scan)."""
        self.last_event = t
        if self.waiter is not None and not self.waiter.triggered:
            self.waiter.succeed()

    def scan(self, due: float, msg: Message) -> simpy.Event:
        """msg waits for the deferred scan due at `due`: the event succeeds when the scan
        takes it."""
        ev = self.env.event()
        self.scans.setdefault(due, []).append((msg.name, msg.index, ev))
        return ev

    def snapshot(self, t: float) -> tuple[Upstream, Relay]:
        """The upstream and relay settings in force at t: the last snapshot at or before t."""
        return self.snaps[bisect.bisect_right(self.snap_times, t) - 1]

    def initial_window(self) -> float:
        up = self.scenario.upstream
        return min(up.initial_destination_concurrency, up.default_destination_concurrency_limit)

    def site_failure(self, t: float) -> None:
        """A site-level failure at t (a refused connection, a session lost): it counts
        1/window unless the destination is dead already; at the failed-cohort limit it is dead
        for minimal_backoff_time on qmgr's whole-second timer, else the window drops by one."""
        if t < self.dead_until:
            return
        up, _ = self.snapshot(t)
        self.fail_cohorts += 1 / self.window
        limit = up.default_destination_concurrency_failed_cohort_limit
        if limit > 0 and self.fail_cohorts >= limit:
            self.dead_until = math.floor(t) + up.minimal_backoff_time
            self.window, self.fail_cohorts = self.initial_window(), 0.0
        else:
            self.window = max(self.window - 1, 1)

    def site_success(self) -> None:
        """A delivery that reached the relay without site-level trouble: the window grows by
        one up to the concurrency limit (relaysim's rule); window_rule "busy": only while it
        is below the sessions in progress (this one included) plus the initial concurrency,
        as qmgr_queue_unthrottle has it."""
        up = self.scenario.upstream
        self.fail_cohorts = 0.0
        limit = up.default_destination_concurrency_limit
        if self.window_rule == "busy":
            if self.window < limit and self.window < self.pool.count + self.initial_window():
                self.window += 1
        else:
            self.window = min(self.window + 1, limit)

    def attempt_over(self) -> None:
        """An attempt is over: with nothing else in the active queue the in-core queue is
        discarded, its window and count with it."""
        if self.pending == 1:
            self.window, self.fail_cohorts = self.initial_window(), 0.0

    def take_replies(self, msg: Message, replies: dict[int, str], end: float) -> None:
        """The attempt that ended at `end`: its sent and bounced recipients leave msg.pending,
        counted (a delay per delivery, one DSN for the bounces)."""
        sent = [r for r in msg.pending if replies[r] == "sent"]
        bounced = [r for r in msg.pending if replies[r] == "bounced"]
        msg.pending = [r for r in msg.pending if replies[r] == "deferred"]
        self.delivered += len(sent)
        self.delays += [end - msg.arrival] * len(sent)
        self.bounced += len(bounced)
        if bounced:
            self.notify_sender(msg)

    def expire(self, msg: Message, records: list[list]) -> None:
        """msg's deferred recipients expire at its last attempt (its records): counted, one
        DSN, and the message leaves the queue."""
        self.expired += len(msg.pending)
        self.notify_sender(msg)
        for record in records:
            if record[3] == "deferred":
                record[3] = "expired"
        msg.pending = []
        del self.live[msg.index]

    def notify_sender(self, msg: Message) -> None:
        """One non-delivery DSN (bounce or expiry); none for the null sender."""
        if msg.sender != "null":
            self.nondelivery += 1
            self.backscatter += msg.sender == "forged"


def naive_simulate(scenario: Scenario, seed: int | None = None,
                   record_attempts: bool = False, window_rule: str = "limit") -> dict:
    """Run `scenario` with one SimPy process per message; see the module contract
    (window_rule: Run.site_success)."""
    _check_supported(scenario)
    seq = np.random.SeedSequence(scenario.simulation.seed if seed is None else seed)
    arrivals_rng, recipients_rng, service_rng, names_rng = (np.random.default_rng(s)
                                                            for s in seq.spawn(4))
    env = simpy.Environment()
    agents = simpy.Resource(env, scenario.upstream.default_destination_concurrency_limit)
    run = Run(scenario, env, agents, arrivals_rng, recipients_rng, service_rng, record_attempts,
              names_rng)
    run.window, run.window_rule = run.initial_window(), window_rule
    run.agents = [Agent() for _ in range(scenario.upstream.default_destination_concurrency_limit)]
    run.idle = collections.deque(run.agents)
    timeline = scenario.timeline()
    run.snap_times = [t for t, _, _ in timeline]
    run.snaps = [(up, relay) for _, up, relay in timeline]

    sim = scenario.simulation
    sample_times = np.arange(int(sim.duration // sim.sample_interval) + 1) * sim.sample_interval
    series: dict[str, list] = {k: [] for k in SERIES}
    env.process(source(run, arrival_schedule(scenario, arrivals_rng)))
    env.process(scanner(run) if scenario.upstream.mta == "postfix" else exim_runner(run))
    env.run(until=env.process(sampler(run, sample_times, series)))

    out = {"summary": summarise(run), "timeseries": {"t_s": sample_times.astype(float)}}
    out["timeseries"].update({k: np.asarray(v, dtype=np.int64) for k, v in series.items()})
    if record_attempts:
        out["attempts"] = [tuple(a) for a in run.attempt_log]
    return out


def _check_supported(scenario: Scenario) -> None:
    for s in scenario.senders:
        if s.profile != "flat":
            raise NotImplementedError(f"naive model: sender profile {s.profile!r} (only flat)")
    first = scenario.upstream
    for _, up, relay in scenario.timeline():
        if relay.outage_mtbf > 0:
            raise NotImplementedError("naive model: random outages (relay.outage_mtbf > 0)")
        if up.mta not in ("postfix", "exim"):
            raise NotImplementedError(f"naive model: upstream.mta {up.mta!r} (only postfix "
                                      "and exim)")
        if up.mta == "exim" and (relay.outages or scenario.changes or any(
                r[0] == "H" for r in exim_rules(up.exim_retry_rule))
                or relay.smtpd_soft_error_limit):
            raise NotImplementedError("naive model: exim with outages, changes, H rules or "
                                      "smtpd_soft_error_limit")
        # The scan grid and the pool are built once, from the initial settings.
        for name in ("queue_run_delay", "default_destination_concurrency_limit"):
            if getattr(up, name) != getattr(first, name):
                raise NotImplementedError(f"naive model: upstream.{name} changing mid-run")


def arrival_schedule(scenario: Scenario, rng: np.random.Generator) -> list[tuple[float, int]]:
    """(arrival time, sender index) of every message, merged in time order (ties: sender order)."""
    duration = scenario.simulation.duration
    arrivals = []
    for i, sender in enumerate(scenario.senders):
        if sender.arrivals:
            arrivals += [(t, i) for t in sender.arrivals if t <= duration]
            continue
        end = min(sender.stop, duration)
        t = sender.start
        while sender.rate > 0:
            t += rng.exponential(1 / sender.rate)
            if t >= end:
                break
            arrivals.append((float(t), i))
    return sorted(arrivals, key=lambda a: a[0])


def source(run: Run, arrivals: list[tuple[float, int]]):
    """Receive each message at its arrival time and start its life."""
    env, rng = run.env, run.recipients_rng
    for index, (t, sender_index) in enumerate(arrivals):
        yield env.timeout(t - env.now)
        sender = run.scenario.senders[sender_index]
        _, relay = run.snapshot(t)
        # Always two uniforms for the envelope sender, so the stream does not depend on outcomes.
        forged, null = rng.random() < sender.forged_sender_fraction, rng.random()
        kind = "forged" if forged else "null" if null < sender.null_sender_fraction else "real"
        users = []
        for _ in range(sender.recipients_per_message):
            unknown = rng.random() < sender.unknown_recipient_fraction
            known = not unknown and relay.local_users > 0
            users.append(int(rng.integers(0, relay.local_users)) if known else -1)
        msg = Message(index, t, math.floor(t), kind, users, list(range(len(users))),
                      name=float(run.names_rng.random()))
        msg.key = ("message", index)
        if sender.sender_addresses and sender.unknown_recipients_per_sender:
            address = int(rng.integers(sender.sender_addresses))
            to = int(rng.integers(sender.unknown_recipients_per_sender))
            if users[0] == -1:  # a pair of (sender address or <>, unknown recipient)
                msg.key = ("pair", sender_index, "<>" if kind == "null" else address, to)
        run.event(t)
        run.live[index] = msg
        run.messages += 1
        run.received += len(users)
        env.process(message_life(run, msg) if run.scenario.upstream.mta == "postfix"
                    else exim_life(run, msg))


def message_life(run: Run, msg: Message):
    """From arrival to removal: attempts, deferrals in the deferred queue, expiry."""
    env = run.env
    while True:
        msg.state = "active"
        run.pending += 1
        with run.pool.request() as agent:
            yield agent
            start = env.now
            ag = run.idle.popleft()  # the agent free longest
            replies, hold, lost, session = attempt(run, msg, start, ag)
            run.attempts += len(msg.pending)
            # Records are lists so that an expiry at the end can still change their outcome.
            records = [[msg.index, r, start, replies[r]] for r in msg.pending]
            if run.record_attempts:
                run.attempt_log += records
            if hold > 0:
                yield env.timeout(hold)
            if lost:  # a site-level failure, now
                run.site_failure(env.now)
            elif session:
                run.site_success()
            run.attempt_over()
            ag.free = env.now
            run.idle.append(ag)
        run.pending -= 1
        end = env.now
        now = math.floor(end)
        run.event(end)

        run.take_replies(msg, replies, end)
        if not msg.pending:
            del run.live[msg.index]
            return

        up, _ = run.snapshot(end)
        lifetime = up.bounce_queue_lifetime if msg.sender == "null" else up.maximal_queue_lifetime
        if now - msg.create_time >= lifetime:
            run.expire(msg, records)
            return

        wake = now + backoff(now - msg.create_time, up.minimal_backoff_time,
                             up.maximal_backoff_time)
        queue_run = next_queue_run(wake, end, up.queue_run_delay)
        msg.state = "deferred"
        yield run.scan(queue_run, msg)
        run.deferrals.append((end, env.now))


def attempt(run: Run, msg: Message, start: float, ag: Agent
            ) -> tuple[dict[int, str], float, bool, bool]:
    """The relay's answer per pending recipient at `start`, how long the agent is held,
    whether the session is lost and whether there was one.

    A dead destination or a refused connection defers everything at once and takes no time; a
    refused connection is a site-level failure (Run.site_failure). A session the relay's going
    down cuts holds the agent until then and defers everything (lost; the caller counts the
    failure when it ends). With relay.smtpd_soft_error_limit the agent is also held for the
    relay smtpd's sleeps in the agent's session (smtpd_sleeps).
    """
    up, relay = run.snapshot(start)
    if start < run.dead_until:
        return dict.fromkeys(msg.pending, "deferred"), 0.0, False, False
    if in_outage(relay, start):
        run.site_failure(start)
        run.hang_up()
        return dict.fromkeys(msg.pending, "deferred"), 0.0, False, False
    replies = {r: relay_reply(msg.users[r], relay, up.soft_bounce) for r in msg.pending}
    hold = transaction_time(run.service_rng, up)
    if relay.smtpd_soft_error_limit > 0:
        hold += smtpd_sleeps(up, relay, ag, start, [replies[r] for r in msg.pending])
    down = min((o.start for o in relay.outages if o.start > start), default=math.inf)
    if down < start + hold:
        run.hang_up()
        return dict.fromkeys(msg.pending, "deferred"), down - start, True, True
    return replies, hold, False, True


def smtpd_sleeps(up: Upstream, relay: Relay, ag: Agent, start: float, replies: list[str]
                 ) -> float:
    """The seconds the relay's smtpd sleeps before its replies in one transaction on agent
    ag's session, which it reuses if it connected less than smtp_connection_reuse_time_limit
    ago and has been idle at most smtp_connection_cache_time_limit (else a new session).
    smtpd counts an error per rejected RCPT and for DATA without a valid recipient, sleeps
    before every reply once the count reaches smtpd_soft_error_limit, clears it when it
    queues a message, and at smtpd_hard_error_limit answers the next command 421 (after the
    sleep too) and closes the session; a session closed while idle in the cache is replaced
    (count 0). A failed transaction ends with RSET when the cache keeps the session. The
    rejected RCPTs come first."""
    soft, hard = relay.smtpd_soft_error_limit, relay.smtpd_hard_error_limit
    reuse = (up.smtp_connection_cache_on_demand and ag.connected is not None
             and start - ag.free <= up.smtp_connection_cache_time_limit
             and start - ag.connected < up.smtp_connection_reuse_time_limit)
    if not reuse:
        ag.connected, ag.errors = start, 0
    slept = 0.0

    def reply(error: int) -> bool:
        """One reply, after smtpd's sleep; False if it is the 421 that closes the session."""
        nonlocal slept
        if ag.errors >= soft:
            slept += relay.smtpd_error_sleep_time
        if hard and ag.errors >= hard:
            ag.connected = None
            return False
        ag.errors += error
        return True

    if reuse and hard and ag.errors >= hard:
        ag.connected, ag.errors = start, 0  # closed while idle: a new session
    elif reuse and ag.errors >= soft:
        slept += relay.smtpd_error_sleep_time  # the RSET probe
    sent = replies.count("sent")
    steps = [0] + [1] * (len(replies) - sent) + [0] * sent  # MAIL, the RCPTs
    steps += [0, 0] if sent else [1] + ([0] if up.smtp_connection_cache_on_demand else [])
    for error in steps:  # then DATA and 250 queued, or DATA's 554 and the RSET that keeps it
        if not reply(error):
            return slept
    if sent:
        ag.errors = 0
    return slept


def transaction_time(rng: np.random.Generator, up: Upstream) -> float:
    """One attempt's duration: mean smtp_transaction_time, shaped by its distribution."""
    mean, kind = up.smtp_transaction_time, up.smtp_transaction_time_distribution
    if kind == "constant":
        return mean
    if kind == "lognormal":
        s = up.smtp_transaction_time_sigma
        return mean * math.exp(s * rng.standard_normal() - s * s / 2)
    if kind == "empirical":
        times = up.smtp_transaction_times
        return mean * times[int(rng.integers(len(times)))] / (sum(times) / len(times))
    return float(rng.exponential(mean))


def scanner(run: Run):
    """qmgr's deferred-scan timer: due every queue_run_delay, run at the event loop's phase."""
    env, up = run.env, run.scenario.upstream
    k, due = 1, up.queue_run_delay
    while due <= run.scenario.simulation.duration:
        yield env.timeout(due - env.now)
        last = run.last_event
        phase = last - math.floor(last) if up.qmgr_timer_phase and last > -math.inf else 0.0
        if phase > 0:
            run.waiter = env.event()
            yield env.timeout(phase) | run.waiter
            run.waiter = None
        run.event(env.now)
        for _, _, ev in sorted(run.scans.pop(due, []), key=lambda w: w[:2]):
            ev.succeed()  # in directory order
        k += 1
        due = max(k, 1) * up.queue_run_delay  # as next_queue_run() computes it


# --- Exim: retry records, the queue runner -------------------------------------------------------

EXIM_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def exim_rules(text: str) -> list[tuple[str, int, int, float]]:
    """(letter, cutoff, interval, multiplier) of Exim retry rules like 'F,2h,15m; G,16h,1h,1.5'."""
    def seconds(t: str) -> int:
        total, number = 0, ""
        for ch in t.strip():
            if ch.isdigit():
                number += ch
            else:
                total, number = total + int(number) * EXIM_UNITS[ch], ""
        return total + (int(number) if number else 0)
    rules = []
    for item in filter(None, (x.strip() for x in text.split(";"))):
        parts = [x.strip() for x in item.split(",")]
        rules.append((parts[0].upper(), seconds(parts[1]), seconds(parts[2]),
                      float(parts[3]) if len(parts) > 3 else 1.0))
    return rules


def exim_failure(record: dict | None, create: int, now: int, rules) -> tuple[dict, bool]:
    """Exim's retry_update on one record after a failure at `now`: the new record and
    whether the address timed out."""
    if record is None or now - record["stamp"] > 7 * 86400:
        record = {"first": now, "last": now, "next": now}
    failing = max(now - record["first"], now - create)
    rule = next((r for r in rules if failing <= r[1]), None)
    letter, _, interval, mult = rule or rules[-1]
    gap = interval
    if letter == "G":
        last_gap = min(record["next"] - record["last"], now - record["last"])
        gap = interval if last_gap < interval else int(last_gap * int(round(mult * 1000)) //
                                                       1000)
    return {"first": record["first"], "last": now, "next": now + min(gap, 86400),
            "stamp": now}, rule is None


def exim_life(run: Run, msg: Message):
    """An Exim message: attempts on arrival and when a queue run routes it (exim_runner)."""
    env, rules = run.env, exim_rules(run.scenario.upstream.exim_retry_rule)
    while True:
        msg.state = "active"
        with run.pool.request() as agent:
            yield agent
            start = env.now
            replies, hold, _, _ = attempt(run, msg, start, Agent())  # no outages, no error limits
            run.attempts += len(msg.pending)
            records = [[msg.index, r, start, replies[r]] for r in msg.pending]
            if run.record_attempts:
                run.attempt_log += records
            if hold > 0:
                yield env.timeout(hold)
        end = env.now
        run.take_replies(msg, replies, end)
        if not msg.pending:
            if msg.key[0] == "pair":  # a 250 or 5xx deletes the pair's record
                run.records.pop(msg.key, None)
            del run.live[msg.index]
            return
        record, timed_out = exim_failure(run.records.get(msg.key), msg.create_time,
                                         math.floor(end), rules)
        run.records[msg.key] = record
        if timed_out:
            run.expire(msg, records)
            return
        msg.state = "deferred"
        msg.wake = env.event()
        yield msg.wake
        run.deferrals.append((end, env.now))


def exim_runner(run: Run):
    """Exim's queue runner every queue_runner_interval: each deferred message, oldest first,
    routed or left alone by its retry record (see the contract)."""
    env, up = run.env, run.scenario.upstream
    rules = exim_rules(up.exim_retry_rule)
    last_cutoff = rules[-1][1] if rules else -1
    k = 1
    while k * up.queue_runner_interval <= run.scenario.simulation.duration:
        T = k * up.queue_runner_interval
        yield env.timeout(T - env.now)
        now = math.floor(T)
        four_xx = relay_reply(-1, run.snapshot(T)[1]) == "deferred"
        tried = set()
        for msg in sorted(run.live.values(), key=lambda m: m.index):
            if msg.state != "deferred" or msg.wake is None or msg.wake.triggered:
                continue
            record = run.records.get(msg.key)
            live = record is not None and now - record["stamp"] <= 7 * 86400
            overdue = bool(rules) and now - msg.create_time > last_cutoff
            if live and now < record["next"] and not overdue:
                continue  # retry time not reached
            if msg.key in tried and four_xx and not overdue:
                continue  # the pair's first message of this run moved its next try
            tried.add(msg.key)
            msg.wake.succeed()
        k += 1


# --- observation ---------------------------------------------------------------------------------

SERIES = ("deferred", "active", "queued_recipients", "received", "delivered", "bounced", "expired",
          "attempts")


def settle(env: simpy.Environment):
    """Wait until no other event is due now, so what follows sees every event at t <= now."""
    while env.peek() <= env.now:
        yield env.timeout(0)


def sampler(run: Run, times: np.ndarray, series: dict[str, list]):
    """Sample the queue at each of `times`, then close the run at `duration`."""
    env = run.env
    for t in times:
        yield env.timeout(float(t) - env.now)
        yield from settle(env)
        live = run.live.values()
        series["deferred"].append(sum(m.state == "deferred" for m in live))
        series["active"].append(sum(m.state == "active" for m in live))
        series["queued_recipients"].append(sum(len(m.pending) for m in live))
        for name in ("received", "delivered", "bounced", "expired", "attempts"):
            series[name].append(getattr(run, name))
    yield env.timeout(run.scenario.simulation.duration - env.now)
    yield from settle(env)


def peak_overlap(intervals: list[tuple[float, float]]) -> int:
    """Most half-open intervals [a, b) covering one instant."""
    # At equal times the -1 of a leaving interval sorts before the +1 of an entering one.
    edges = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    peak = level = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak


def summarise(run: Run) -> dict:
    delays = np.asarray(run.delays, dtype=float)
    if delays.size:
        p50, p95, p99 = np.percentile(delays, [50, 95, 99])
        delay = {"p50": float(p50), "p95": float(p95), "p99": float(p99),
                 "max": float(delays.max())}
    else:
        delay = dict.fromkeys(("p50", "p95", "p99", "max"), math.nan)
    return {
        "recipients": {"received": run.received, "delivered": run.delivered,
                       "bounced": run.bounced, "expired": run.expired,
                       "queued_at_end": sum(len(m.pending) for m in run.live.values())},
        "messages": {"received": run.messages},
        "attempts": run.attempts,
        "dsn": {"nondelivery": run.nondelivery, "backscatter": run.backscatter},
        "deferred_peak_messages": peak_overlap(run.deferrals),
        "delivery_delay_s": delay,
    }
