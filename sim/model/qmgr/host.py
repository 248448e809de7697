"""The upstream mail-queue host's queue manager (qmgr) as one SimPy process.

Public names: QueueHost, InitialQueue, Policy, schedule_params, TICK, ATTEMPT.

Contract (mta-semantics.md sections 2 and 3; one SimPy process for the qmgr, never one per
message):
- New mail gets its first attempt on arrival: the senders hand it to receive() (validated and
  queued by sim.model.qmgr.incoming), and each qmgr tick enters the mail arriving before the
  next tick into the delivery agents' FIFO queue at its arrival times, behind the tick's scan.
- Ticks: for Postfix the deferred-queue scans at T = k * queue_run_delay (k >= 1, the qmgr's
  timer starts with the run), taking every message whose wake-up time is at most T + 1 s;
  Exim and sendmail their queue-runner grid; qmail, Exchange and list a tick every TICK = 60 s
  serving each message at its own wake-up time. A reload that changes the interval keeps the
  pending tick, which takes whatever is due by then; later ticks follow the new grid.
- Every tick of every schedule runs in the compiled engine (sim.model.qmgr.engine: the rules
  in sim.model.qmgr.rules, schedules, relay and site; counting in observe), as many ticks a
  call as the senders have handed over the mail for (heard_until) and no further than the
  next scheduled change, which reload() applies first (`postfix reload`).
- Per-message state lives in numpy arrays (queue_file.FIELDS), filed in the deferred queue
  (sim.model.deferred) under the tick that will take the message; memory grows with the
  queue, not with the mail simulated. Where the schedule keeps a 4xx to RCPT per (recipient,
  sender) pair (Exim), the `pairs` pairs the senders number have their retry records
  (sim.model.qmgr.retry_records), shared by their messages.
- Everything observed goes to a metrics.Recorder, the DelaySketch, `qshape` (messages per
  qshape age bucket at each sample) and, when asked for, the attempt log: streamed to
  `on_attempts` in batches (numpy structured arrays of ATTEMPT, bounded memory) or kept for
  attempts_table(); nothing is printed.
Simplifications (documented in the README): one SMTP transaction per message attempt, and
Postfix's cached sessions one per delivery agent (a reload that changes the concurrency limit
starts them afresh); the scan and the hand-over to the delivery agents take no time; when an
outage begins in the middle of a scan batch, agents are freed at that moment; a scheduled
change of the concurrency limit or the transaction time reaches new mail from the next qmgr
tick on.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from sim.model import schedules
from sim.model.agents import ServiceTimes, Shape, new_sessions
from sim.model.deferred import DeferredQueue
from sim.model.metrics import DelaySketch, Recorder, qshape_edges
from sim.model.qmgr import engine, observe, retry_records, site
from sim.model.qmgr.incoming import Incoming
from sim.model.qmgr.observe import SERIES, stays
from sim.model.qmgr.queue_file import (
    FIELDS,
    FORCED,
    LAST_END,
    LAST_FAIL,
    LAST_NEXT,
    OUTCOMES,
    TRIES,
    Grid,
    NewMail,
    new_files,
)
from sim.model.relay import RelayTimeline, smtpd_code


class InitialQueue(NamedTuple):
    """Mail queued at the upstream when the run starts (a real queue, e.g. postqueue -j):
    per message its arrival and create time (s, <= 0), sender kind, size, recipients (relay
    user ids, -1 unknown, -2 none; a row per message), whether it is deferred (else it is
    taken by the first tick, as incoming or active mail is after a restart), its wake-up time
    (deferred ones) and Postfix 3.5's forced_expire."""
    arrival: np.ndarray
    create: np.ndarray
    kind: np.ndarray
    size: np.ndarray
    rcpt: np.ndarray
    deferred: np.ndarray
    wake: np.ndarray
    forced: np.ndarray


TICK = 60  # processing period of schedules without a queue-runner grid (qmail, exchange, list)
ATTEMPT = engine.ATTEMPT


def schedule_params(up):
    """The sim.model.schedules parameters object for an [upstream] snapshot (whole seconds)."""
    sched = schedules.SCHEDULES[up.mta]
    i = int
    if up.mta == "postfix":
        return sched.params(i(up.queue_run_delay), i(up.minimal_backoff_time),
                            i(up.maximal_backoff_time), i(up.maximal_queue_lifetime),
                            i(min(up.bounce_queue_lifetime, up.maximal_queue_lifetime)))
    if up.mta == "exim":
        return sched.params(rules=schedules.parse_exim_rules(up.exim_retry_rule),
                            queue_interval=i(up.queue_runner_interval))
    if up.mta == "sendmail":
        return sched.params(queue_interval=i(up.queue_interval),
                            min_queue_age=i(up.min_queue_age), queuereturn=i(up.queuereturn),
                            hoststatus=i(up.hoststatus))
    if up.mta == "qmail":
        return sched.params(queuelifetime=i(up.queuelifetime))
    if up.mta.startswith("exchange"):
        d = sched.params()
        return sched.params(message_retry_interval=i(up.message_retry_interval
                                                     or d.message_retry_interval),
                            message_expiration_timeout=i(up.message_expiration_timeout
                                                         or d.message_expiration_timeout))
    return sched.params(gaps=tuple(i(g) for g in up.retry_list), lifetime=i(up.lifetime))


class Policy:
    """The upstream's retry schedule over the scenario's snapshots (scheduled changes)."""

    def __init__(self, snaps):
        self.sched = schedules.SCHEDULES[snaps[0].mta]
        self.params = [schedule_params(up) for up in snaps]
        self.packed = [schedules.pack(p) for p in self.params]
        self.slack = self.sched.slack

    def interval(self, snap: int) -> int:
        """Runner interval in force for snapshot `snap` (TICK where the MTA has no grid)."""
        return getattr(self.params[snap], self.sched.runner) if self.sched.runner else TICK

    def retry(self, snap, create, now, tries, last_fail, last_next, null):
        """(wake, give_up) per message under snapshot `snap` (schedules.due)."""
        return schedules._retry(self.sched.rule, self.packed[snap], create, now, tries,
                                last_fail, last_next, null)

    def entry(self, wake: np.ndarray, snap: int) -> np.ndarray:
        """When a message with this wake-up time is next taken: the runner start, or (no grid)
        the wake-up time itself."""
        if self.sched.runner:
            return schedules.next_queue_run(wake, self.interval(snap), self.slack)
        return wake

    def key(self, wake: np.ndarray, snap: int, pending: int) -> np.ndarray:
        """The qmgr tick that takes a message with this wake-up time (rules.tick_key)."""
        R, grid = self.interval(snap), self.sched.runner is not None
        return np.array([engine.rules.tick_key(w, pending, R, self.slack, grid)
                         for w in np.asarray(wake, dtype=np.int64).tolist()], dtype=np.int64)


class QueueHost:
    """The upstream queue host (see the module contract)."""

    DELAYS = 1 << 16  # room for delays in one call of the engine, to begin with
    LOG = 1 << 16  # rows of the attempt log's buffer, to begin with
    MAX_TICKS = None  # at most this many ticks a call of the engine (None: no limit)

    def __init__(self, env, scenario, relay: RelayTimeline, rng_service: np.random.Generator,
                 recorder: Recorder, record_attempts: bool = False, on_attempts=None,
                 width: int | None = None, initial: InitialQueue | None = None,
                 sources: int | None = None, pairs: int = 0, salt: int = 0,
                 names: np.ndarray | None = None):
        self.env = env
        timeline = scenario.timeline()
        self.snaps = [up for _, up, _ in timeline]
        self.snap_times = np.array([t for t, _, _ in timeline], dtype=float)
        self.cur = 0  # the upstream snapshot in force
        self.duration = scenario.simulation.duration
        self.relay = relay
        self.policy = Policy(self.snaps)
        up0 = self.snaps[0]
        self.service = ServiceTimes(rng_service, Shape(
            up0.smtp_transaction_time_distribution, up0.smtp_transaction_time_sigma,
            up0.smtp_transaction_times))
        self.rec = recorder
        self.delays = DelaySketch()
        width = width or max(s.recipients_per_message for s in scenario.senders)
        self.incoming = Incoming(self.snaps, self.snap_times, relay, recorder, width)
        unit = math.gcd(*(self.policy.interval(j) for j in range(len(self.snaps))))
        self.queue = DeferredQueue(len(FIELDS), width, unit, self.duration)
        self.next_tick = 0.0  # the qmgr tick that will run next
        # per source of mail (the senders, or a replayed trace): its mail before this is here
        self.heard = np.zeros(len(scenario.senders) if sources is None else sources)
        self._qdiff = np.zeros((recorder.n + 1, 10), dtype=np.int64)  # see observe.stay
        self._edges = qshape_edges()
        rows = recorder.rows(SERIES)  # created now: compiled code adds to them
        extra = recorder.rows(("delay_dsn", "greylisted", "hard_error_disconnects"))
        self._obs = observe.Obs(recorder.acc, rows, *(int(r) for r in extra), recorder.duration,
                               recorder.interval, recorder.n, float(self.duration), self._qdiff,
                               self._edges)
        g = scenario.relay.greylisting
        grey = np.array([1.0, g.delay, g.retry_window, g.auto_whitelist_clients]
                        if g is not None else [0.0, 0.0, 0.0, 0.0])
        codes = smtpd_code(relay.code, relay.soft).astype(np.int64)
        self._relay = engine.Relay(
            relay.times, relay.users, np.array([relay.unknown_reply(j) for j in
                                                range(relay.times.size)], dtype=np.int64),
            codes, relay.down_start, relay.down_end, grey,
            int(scenario.relay.smtpd_hard_error_limit or 0),
            np.array([float(scenario.relay.smtpd_soft_error_limit),
                      float(scenario.relay.smtpd_error_sleep_time)]))
        width_p = max(p.size for p in self.policy.packed)
        self._soft = np.array([up.soft_bounce for up in self.snaps], dtype=np.bool_)
        self._P = np.zeros((len(self.snaps), width_p), dtype=np.int64)
        for j, p in enumerate(self.policy.packed):
            self._P[j, :p.size] = p
        hours = int((self.duration + 2 * max(self.policy.interval(j) for j in
                                             range(len(self.snaps)))) // 3600) + 64
        self._state = engine.State(
            np.zeros(self.snaps[0].default_destination_concurrency_limit), site.new_state(
                *_concurrency(self.snaps[0])),
            np.full(hours, np.inf), np.array([np.inf]), np.array([-np.inf, np.inf]),
            retry_records.new_records(pairs if self.policy.sched.pairs else 0),
            np.empty(0) if names is None else np.asarray(names, dtype=float),
            new_sessions(self.snaps[0].default_destination_concurrency_limit))
        self.salt = int(salt)
        self._delays = np.empty(self.DELAYS)
        self._io = np.zeros(len(engine.IO))
        self._log = np.empty(self.LOG if (record_attempts or on_attempts) else 0, dtype=ATTEMPT)
        self.on_attempts = on_attempts
        self.log: list[np.ndarray] | None = [] if record_attempts else None
        if initial is not None:
            self.load(initial)

    # --- arrivals ------------------------------------------------------------------------
    def receive(self, msgs: dict) -> None:
        """New mail from a sender (arrival times may lie ahead of the clock)."""
        self.incoming.receive(msgs)

    def heard_until(self, source: int, t: float) -> None:
        """Sender `source` has handed over all its mail arriving before t (inf: all)."""
        self.heard[source] = t

    def load(self, q: InitialQueue) -> None:
        """Start from a real queue (before the run): its deferred messages are filed under the
        tick their wake-up time gives, with one attempt so far (its time is not known: the
        retry rules that use it, Exim's G and H, start afresh), counted in the deferred queue
        and qshape from time 0; the others wait for the first tick. Every message is counted
        as received at time 0 (bin 0), so conservation holds from the first sample."""
        n = q.arrival.size
        if n == 0:
            return
        rec = self.rec
        f = np.empty((n, len(FIELDS)))
        rcpt = np.asarray(q.rcpt, dtype=np.int32)
        new_files(f, self.incoming.next_qid, NewMail(
            np.asarray(q.arrival, float), np.asarray(q.create, float), np.asarray(q.kind, float),
            np.asarray(q.size, float), np.full(n, -1.0), rcpt, np.full(n, -1.0)),
            Grid(rec.acc, self.incoming._rows, rec.duration, rec.interval, rec.n))
        self.incoming.next_qid += n
        f[:, FORCED] = np.asarray(q.forced, dtype=float)
        d = np.asarray(q.deferred, dtype=bool)
        if d.any():
            fd, rd = f[d], rcpt[d]
            fd[:, TRIES] = 1.0
            fd[:, LAST_FAIL] = -1.0
            fd[:, LAST_NEXT] = np.asarray(q.wake, float)[d]
            fd[:, LAST_END] = 0.0
            key = self.policy.key(fd[:, LAST_NEXT], self.cur, 0)
            stays(self._qdiff, self._edges, rec.interval, fd, self._until(fd, key), 1)
            zero = rec.bins(np.zeros(1))
            rec.add("deferred", zero, float(d.sum()))
            rec.add("deferred_recipients", zero, float((rd != -2).sum()))
            self.queue.reserve(len(fd))
            self.queue.put(fd, rd, key)
        if (~d).any():
            order = np.argsort(f[~d][:, 1], kind="stable")
            inc = self.incoming
            inc.f = np.concatenate([f[~d][order], inc.f]) if len(inc.f) else f[~d][order]
            inc.rcpt = (np.concatenate([rcpt[~d][order], inc.rcpt]) if len(inc.rcpt)
                        else rcpt[~d][order])

    # --- the ticks -----------------------------------------------------------------------
    def _upstream(self) -> engine.Upstream:
        up, sched = self.snaps[self.cur], self.policy.sched
        return engine.Upstream(sched.rule, sched.site, self._P, self.snap_times, self.cur,
                               sched.runner is not None, int(self.policy.interval(self.cur)),
                               int(self.policy.slack), int(up.qmgr_message_active_limit),
                               float(up.delay_warning_time), float(up.smtp_transaction_time),
                               bool(sched.phase and up.qmgr_timer_phase), self._soft,
                               sched.hashed, self.salt, _cache(up))

    def run_ticks(self, T: float) -> float:
        """The ticks from T on, in the compiled engine, as far as they can run now (see
        engine.run); returns the first tick not run."""
        q, io, service, inc = self.queue, self._io, self.service, self.incoming
        up = self._upstream()
        stop_at = (self.snap_times[self.cur + 1] if self.cur + 1 < self.snap_times.size
                   else math.inf)
        need = 0
        while True:
            buf, pos = service.window(need)
            io[:] = 0
            io[engine.I_T], io[engine.I_NOW], io[engine.I_POS] = T, self.env.now, pos
            io[engine.I_HORIZON], io[engine.I_STOP_AT] = self.heard.min(), stop_at
            io[engine.I_MAX] = self.MAX_TICKS or 0
            store = engine.Store(q.f, q.rcpt, q.head, q.tail, q.count, q.chunks, q.state,
                                 q.unit)
            obs = self._obs._replace(acc=self.rec.acc)  # new series reallocate acc
            engine.run(store, engine.Mail(inc.f, inc.rcpt), buf, self._relay, up, obs,
                       self._log, self._state, self._delays, io)
            T = float(io[engine.I_T])
            service.skip(int(io[engine.I_POS]) - pos)
            inc.drop(int(io[engine.I_NEW]))
            if io[engine.I_DELAYS]:
                self.delays.add(self._delays[:int(io[engine.I_DELAYS])].copy())
            if io[engine.I_LOGGED]:
                self._flush(int(io[engine.I_LOGGED]))
            why, need = int(io[engine.I_WHY]), int(io[engine.I_NEED])
            if why == engine.ROOM:
                q.reserve(need)
            elif why == engine.DELAY_ROOM:
                self._delays = np.empty(max(need, 2 * self._delays.size))
            elif why == engine.LOG_ROOM:
                self._log = np.empty(max(need, self._log.size), dtype=ATTEMPT)
            elif why != engine.SERVICE:
                return T

    def _flush(self, n: int) -> None:
        """Hand the log's first n rows on (on_attempts) or keep them (attempts_table)."""
        batch = np.empty(n, dtype=ATTEMPT)  # a plain memcpy: copy() of a packed structured
        batch.view(np.uint8)[:] = self._log[:n].view(np.uint8)  # array is ~20x slower
        if self.on_attempts is not None:
            self.on_attempts(batch)
        if self.log is not None:
            self.log.append(batch)

    def rebucket(self) -> None:
        """After a reload that changed the runner interval: re-file every deferred message
        (in the order of their old ticks)."""
        q = self.queue
        ticks = q.ticks()
        if not ticks:
            return
        parts = [q.take(t) for t in ticks]
        f = np.concatenate([p[0] for p in parts])
        rcpt = np.concatenate([p[1] for p in parts])
        old = np.repeat(ticks, [p[0].shape[0] for p in parts])
        stays(self._qdiff, self._edges, self.rec.interval, f, self._until(f, old), -1)
        key = self.policy.key(f[:, LAST_NEXT], self.cur, int(self.next_tick))
        stays(self._qdiff, self._edges, self.rec.interval, f, self._until(f, key), 1)
        q.put(f, rcpt, key)

    def _until(self, f: np.ndarray, key: np.ndarray) -> np.ndarray:
        """Until when queue files filed under these ticks count as deferred (observe.stay):
        the tick, or without a runner grid their own wake-up time."""
        return key if self.policy.sched.runner else f[:, LAST_NEXT].astype(np.int64)

    # --- observation ---------------------------------------------------------------------
    @property
    def qshape(self) -> np.ndarray:
        """Messages in the deferred queue per qshape age bucket at each sample (int64, samples
        x 10 buckets)."""
        return np.cumsum(self._qdiff[:-1], axis=0)

    def attempts_table(self) -> dict[str, np.ndarray]:
        """All recorded attempts (record_attempts=True), in the order they were computed."""
        a = np.concatenate(self.log) if self.log else np.empty(0, dtype=ATTEMPT)
        a = a[a["start"] <= self.duration]
        return {"message_id": a["qid"], "recipient": a["rcpt"], "t_s": a["start"],
                "outcome": np.array(OUTCOMES)[a["outcome"].astype(np.int64)] if a.size
                else np.empty(0, dtype="<U8")}

    # --- the SimPy process ---------------------------------------------------------------
    def process(self):
        """qmgr: a tick at 0 and at every runner interval, as many a call as can run now."""
        env = self.env
        T = 0.0
        while T <= self.duration:
            self.next_tick = T
            yield env.timeout(T - env.now)
            T = self.run_ticks(T)

    def close(self) -> None:
        """The run is over: stop drawing service times ahead."""
        self.service.close()

    def reload(self, snap: int) -> None:
        """`postfix reload` into upstream snapshot `snap` (a scheduled change)."""
        old, self.cur = self.cur, snap
        c = self.snaps[snap].default_destination_concurrency_limit
        site.configure(self._state.site, *_concurrency(self.snaps[snap]))
        free = self._state.free
        if c != free.size:
            f = np.sort(free)
            free = f[:c] if c <= f.size else np.concatenate([f, np.full(c - f.size,
                                                                        self.env.now)])
            self._state = self._state._replace(free=free, sessions=new_sessions(c))
        if self.policy.interval(snap) != self.policy.interval(old):
            self.rebucket()


def _cache(up) -> np.ndarray:
    """engine.Upstream.cache: Postfix's connection cache (on, its idle and reuse limits);
    off for the other MTAs (one session per attempt)."""
    return np.array([float(up.smtp_connection_cache_on_demand and up.mta == "postfix"),
                     float(up.smtp_connection_cache_time_limit),
                     float(up.smtp_connection_reuse_time_limit)])


def _concurrency(up) -> tuple[int, int, int]:
    """The transport's initial concurrency, failed-cohort limit and concurrency limit."""
    return (up.initial_destination_concurrency,
            up.default_destination_concurrency_failed_cohort_limit,
            up.default_destination_concurrency_limit)
