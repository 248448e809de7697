"""The upstream mail-queue host: Postfix's queue manager (qmgr) and SMTP client, in batches.

Public names: QueueHost, Batch, Policy, schedule_params, FIELDS, TICK.

Contract (mta-semantics.md sections 2 and 3; one SimPy process for the qmgr, never one per
message):
- New mail gets its first attempt on arrival: receive() queues it, and each qmgr tick enters
  the mail arriving before the next tick into the delivery agents' FIFO queue at its arrival
  times, behind the tick's scan. Mail that arrives at the same instant as a scan goes first.
- Deferred-queue scans run at T = k * queue_run_delay (k >= 1, the qmgr's timer starts with the
  run) and take every message whose wake-up time is at most T + 1 s; one scan is one batch.
  Other MTAs: their queue-runner grid (Exim, sendmail), or 60 s ticks serving each message at
  its own wake-up time (qmail, Exchange, list). A reload that changes the interval keeps the
  pending tick, which takes whatever is due by then; later ticks follow the new grid.
- An attempt's outcome is decided at its start time by the relay (sim.model.relay): known recipients
  are sent, 4xx recipients deferred, 5xx recipients bounced (greylisting and
  smtpd_hard_error_limit when configured). The relay being down (connection refused) defers
  every recipient and throttles the destination as the MTA's site policy says (Postfix:
  minimal_backoff_time); while throttled, jobs are deferred without a connection and without
  agent time.
- Recipient validation at the upstream (relay_recipient_maps, verify) happens in receive():
  turned-away recipients never enter the queue.
- At the end of an attempt, in whole seconds (Postfix's time_t): a message with bounced
  recipients and a non-null sender gets one non-delivery DSN; a message with deferred
  recipients either expires (the retry policy's give_up: for Postfix, age >= lifetime, and
  bounce_queue_lifetime for null-sender mail) or is deferred until its wake-up time (for
  Postfix, now + clamp(age, minimal_backoff_time, maximal_backoff_time)).
- Per-message state lives in numpy arrays (FIELDS), filed in the deferred queue
  (sim.model.deferred) under the tick that will take the message; memory grows with the queue, not
  with the mail simulated. Two paths compute a tick, and give the same run (a test holds them
  to it, bit for bit):
  - the fused one (_run_fused, _run_postfix, _scan_postfix): for a run with Postfix's
    schedule, one configuration, no greylisting, error limit or attempt log, and
    transactions that take time, one compiled call runs tick after tick, as far as the
    senders have handed over the new mail (heard_until); it leaves a tick to the general
    path (changing nothing) when the relay is down or throttled while the tick's attempts
    start, or the scan overflows the active queue;
  - the general one: numpy around compiled per-batch loops: replies (sim.model.relay),
    _retry_inputs, the schedule's retry policy, and _settle, which records the batch and
    re-files the survivors.
  Both count each survivor's stay in the deferred queue for qshape when it is filed.
- Everything observed goes to a metrics.Recorder, the DelaySketch and `qshape` (messages per
  qshape age bucket at each sample, counted when a message is filed); nothing is printed.
Simplifications (documented in the README): one SMTP transaction per message attempt; the
scan and the hand-over to the delivery agents take no time; when an outage begins in the
middle of a scan batch, agents are freed at that moment; a scheduled change of the
concurrency limit or the transaction time reaches new mail from the next qmgr tick on.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from sim.model import schedules
from sim.model.agents import Agents, ServiceTimes, fifo
from sim.model.deferred import DeferredQueue, file_rows, peek_rows, slot_rows
from sim.model.metrics import DelaySketch, Recorder, bin_near, bin_of, qshape_edges
from sim.model.relay import BOUNCED, DEFERRED, SENT, RelayTimeline, outcome, replies
from sim.model.sender import FORGED, NULL

FIELDS = ("qid", "arrival", "create", "kind", "size", "source", "tries", "last_fail",
          "last_next", "last_end", "warned", "grey_first", "grey_ok")
(QID, ARRIVAL, CREATE, KIND, SIZE, SOURCE, TRIES, LAST_FAIL, LAST_NEXT, LAST_END, WARNED,
 GREY_FIRST, GREY_OK) = range(13)
OUTCOMES = ("sent", "deferred", "bounced", "expired")
# the series one attempt changes, in the order _record adds them: at the time the message
# enters the active queue, at the attempt's start, at its end
SERIES = ("active", "active_recipients",
          "attempts", "relay_sessions", "rejects_4xx", "rejects_5xx",
          "active", "active_recipients", "delivered", "bounced", "expired", "dsn", "backscatter",
          "bytes", "deferred", "deferred_recipients")
_LEFT = SERIES.index("deferred")  # and deferred_recipients next: files leaving the queue
EXPIRED = 3


_NONE = np.zeros(1, dtype=np.int64)  # no greylisted recipients (and, sliced, no rows)
_NO = np.zeros(0, dtype=bool)
TICK = 60  # processing period of schedules without a queue-runner grid (qmail, exchange, list)


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
                            min_queue_age=i(up.min_queue_age), queuereturn=i(up.queuereturn))
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
        """(wake, give_up) per message; snap: the snapshot in force, one int for all or an
        array per message."""
        rule = self.sched.rule
        if isinstance(snap, int) or snap.min() == snap.max():
            j = snap if isinstance(snap, int) else int(snap[0])
            return schedules._retry(rule, self.packed[j], create, now, tries, last_fail,
                                    last_next, null)
        wake = np.empty(now.size, dtype=np.int64)
        give_up = np.empty(now.size, dtype=bool)
        for j in np.unique(snap):
            m = snap == j
            wake[m], give_up[m] = schedules._retry(rule, self.packed[j], create[m], now[m],
                                                   tries[m], last_fail[m], last_next[m],
                                                   null[m])
        return wake, give_up

    def entry(self, wake: np.ndarray, snap: int) -> np.ndarray:
        """When a message with this wake-up time is next taken: the runner start, or (no grid)
        the wake-up time itself."""
        if self.sched.runner:
            return schedules.next_queue_run(wake, self.interval(snap), self.slack)
        return wake

    def key(self, wake: np.ndarray, snap: int) -> np.ndarray:
        """The qmgr tick that processes it: the runner start, or (no grid) the tick before
        the wake-up time, which serves everything due up to the next tick."""
        if self.sched.runner:
            return self.entry(wake, snap)
        return (-(-wake // TICK) - 1) * TICK


class Batch:
    """The queue files of a group of messages: a float64 row of fields (columns QID ..
    WARNED) and a row of recipient ids (-1 unknown, -2 done). Two arrays instead of one per
    field, because taking and joining batches is what the engine does most."""

    __slots__ = ("f", "rcpt")

    def __init__(self, f: np.ndarray, rcpt: np.ndarray):
        self.f, self.rcpt = f, rcpt

    def __len__(self) -> int:
        return self.f.shape[0]

    def take(self, idx) -> Batch:
        return Batch(self.f[idx], self.rcpt[idx])

    @staticmethod
    def concat(batches: list[Batch]) -> Batch:
        if len(batches) == 1:
            return batches[0]
        return Batch(np.concatenate([b.f for b in batches]),
                     np.concatenate([b.rcpt for b in batches]))


class _Site:
    """The relay as a destination: refused while down; after a refused connection no delivery
    is tried until the MTA's site policy allows (schedules.SCHEDULES[mta].site). Queried at
    non-decreasing times within one batch."""

    def __init__(self, relay: RelayTimeline, policy: Policy):
        self.relay = relay
        self.policy = policy
        self.snap = 0
        self.dead_until = -math.inf
        self.first_failed = None  # first refusal since the relay last accepted a connection
        self.tries = 0
        self.last = (-1, -1)  # (last refusal, the retry time computed then)
        self._down = (-math.inf, -math.inf)

    def clear(self, t0: float, t1: float) -> bool:
        """True if no attempt in [t0, t1] would be refused or throttled."""
        return t0 >= self.dead_until and self.relay.next_down(t0)[0] > t1

    def __call__(self, t: float) -> bool:
        if t < self.dead_until:
            return True
        if not (self._down[0] <= t < self._down[1]):
            if t >= self._down[1]:
                self._down = self.relay.next_down(t)
            if not (self._down[0] <= t < self._down[1]):
                self.first_failed, self.tries = None, 0  # it accepts connections again
                return False
        return self.refused(t)

    def refused(self, t: float) -> bool:
        """A site-level failure at t: throttle as the MTA's site policy says."""
        now = math.floor(t)
        if self.first_failed is None:
            self.first_failed, self.last = now, (-1, -1)
        self.tries += 1
        nxt = int(schedules.site_due(self.policy.sched.site, self.policy.packed[self.snap],
                                     self.first_failed, now, self.tries, *self.last))
        self.last = (now, nxt)
        self.dead_until = max(float(nxt), t)
        return True


class QueueHost:
    """The upstream queue host (see the module contract)."""

    DELAYS = 1 << 16  # room for delays in one call of _run_postfix, to begin with

    def __init__(self, env, scenario, relay: RelayTimeline, rng_service: np.random.Generator,
                 recorder: Recorder, record_attempts: bool = False):
        self.env = env
        self.snaps = [up for _, up, _ in scenario.timeline()]
        self.snap_times = np.array([t for t, _, _ in scenario.timeline()])
        self.up = self.snaps[0]
        self.duration = scenario.simulation.duration
        self.relay = relay
        self.service = ServiceTimes(rng_service)
        self.agents = Agents(self.up.default_destination_concurrency_limit)
        self.rec = recorder
        self.delays = DelaySketch()
        self.incoming: Batch | None = None  # sorted by arrival
        self.next_qid = 0
        self.log: list[tuple] | None = [] if record_attempts else None
        self.policy = Policy(self.snaps)
        self.validating = any(up.recipient_validation != "none" for up in self.snaps)
        width = max(s.recipients_per_message for s in scenario.senders)
        unit = math.gcd(*(self.policy.interval(j) for j in range(len(self.snaps))))
        self.queue = DeferredQueue(len(FIELDS), width, unit, self.duration)
        self.site = _Site(relay, self.policy)
        self.cur = 0  # index of the upstream snapshot in force
        self.next_tick = 0.0  # the qmgr tick that will run next
        self.heard = np.zeros(len(scenario.senders))  # per sender: its mail before this is here
        self.last_probe = np.empty(0)  # verify cache: last probe time per known user id
        self.grey = scenario.relay.greylisting
        self.relay_limit = scenario.relay.smtpd_hard_error_limit
        self.grey_pass_hours: dict[int, float] = {}  # postgrey auto-whitelist: hour -> time
        self.whitelisted_at = math.inf
        # qshape's view of the deferred queue at each sample (messages per age bucket),
        # counted when a message is filed: it waits from its attempt's end to its tick
        self._qdiff = np.zeros((recorder.n + 1, 10), dtype=np.int64)  # see _stay
        self.qshape_edges = qshape_edges()
        # the common case, decided once: no greylisting or error limit, one reject code
        self.plain = self.grey is None and not self.relay_limit
        self.soft = (np.array([relay.code[0] < 500]) if self.grey is None and
                     relay.code.size == 1 and not relay.soft.any() else None)
        self._series_rows = recorder.rows(SERIES)  # created now: compiled code adds to them
        self._received_rows = recorder.rows(("received", "received_messages", "bytes"))
        self._warn_row = int(recorder.rows(("delay_dsn",))[0])
        # the common Postfix case, run tick after tick in compiled code (_run_fused): one
        # relay configuration (soft), no greylisting or error limit, no attempt log
        self.fused = self.soft is not None and self.plain and not record_attempts
        if self.fused:  # one configuration for the whole run (soft): fixed arguments
            sched = self.policy.sched
            self._R = self.policy.interval(0)
            self._fused_args = (
                float(self.up.smtp_transaction_time), int(self.up.qmgr_message_active_limit),
                int(relay.users[0]), relay.unknown_reply(0), self.soft, sched.rule,
                self.policy.packed[0], sched.runner is not None,
                self._R, self.policy.slack, self._series_rows, self._warn_row,
                recorder.duration, recorder.interval, recorder.n, self.duration,
                float(self.up.delay_warning_time), self._qdiff, self.qshape_edges)
            self._no_mail = (np.empty((0, len(FIELDS))), np.zeros((0, width), dtype=np.int32))
            self._delays = np.empty(self.DELAYS)  # the delays a call of _run_postfix found
            self._io = np.zeros(_NEED + 1)

    # --- service times -------------------------------------------------------------------
    def _draw(self, shape):
        mean = self.up.smtp_transaction_time
        # numpy's exponential(mean) is mean * standard_exponential(), number for number
        return (self.service.take(math.prod(shape)).reshape(shape) * mean if mean > 0
                else np.zeros(shape))

    # --- arrivals ------------------------------------------------------------------------
    def receive(self, msgs: dict) -> None:
        """New mail from a sender (arrival times may lie ahead of the clock)."""
        # recipient validation as configured at each message's arrival (mail is received ahead
        # of the clock, so a scheduled change must be looked up, not taken from self.up)
        if self.validating:
            snap = np.searchsorted(self.snap_times, msgs["arrival"], side="right") - 1
            parts = [self._validate({k: v[snap == j] for k, v in msgs.items()}, self.snaps[j])
                     for j in np.unique(snap)]
            msgs = {k: np.concatenate([p[k] for p in parts]) for k in msgs}
        n = msgs["arrival"].size
        f = np.empty((n, len(FIELDS)))
        rec = self.rec
        _queue_files(f, self.next_qid, msgs["arrival"], msgs["create"], msgs["kind"],
                     msgs["size"], msgs["source"], msgs["rcpt"], rec.acc, self._received_rows,
                     rec.duration, rec.interval, rec.n)
        self.next_qid += n
        new = Batch(f, msgs["rcpt"])
        if self.incoming is not None and len(self.incoming):
            new = Batch.concat([self.incoming, new])
            if n and f[0, ARRIVAL] < self.incoming.f[-1, ARRIVAL]:  # several senders
                new = new.take(np.argsort(new.f[:, ARRIVAL], kind="stable"))
        self.incoming = new

    def _validate(self, msgs: dict, up) -> dict:
        """Recipient validation at the upstream's smtpd: turned-away recipients never enter
        the queue (counted in rejected_at_upstream); messages left with none are not queued.
        relay_recipient_maps: the relay's users as of `relay_recipient_maps_lag` ago.
        verify (reject_unverified_recipient): the answer to a probe of the relay at arrival:
        delivered -> accept; bounced -> unverified_recipient_reject_code; deferred or relay
        down -> 450. Probes are counted once per unknown recipient and once per known user per
        address_verify_positive_refresh_time (the verify cache); a stale positive cache entry
        after a user is removed is not modelled."""
        if up.recipient_validation == "none":
            return msgs
        relay, rec = self.relay, self.rec
        t = msgs["arrival"]
        rcpt = msgs["rcpt"]
        pending = rcpt != -2
        if up.recipient_validation == "relay_recipient_maps":
            users = relay.users_at(t - up.relay_recipient_maps_lag)[:, None]
            turned = pending & ~((rcpt >= 0) & (rcpt < users))
            code = np.full(t.size, up.unknown_relay_recipient_reject_code)
        else:
            reply = relay.reply(t, rcpt)
            down = relay.down(t)
            reply[down] = DEFERRED
            turned = pending & (reply != SENT)
            bounced = (reply == BOUNCED).any(axis=1)
            code = np.where(bounced, up.unverified_recipient_reject_code, 450)
            self._count_probes(t, rcpt, pending, up.address_verify_positive_refresh_time)
        nturned = turned.sum(axis=1)
        bins = rec.bins(t)
        rec.add("rejected_at_upstream", bins, nturned)
        rec.add("rejected_at_upstream_4xx", bins, np.where(code < 500, nturned, 0))
        rcpt = np.where(turned, -2, rcpt).astype(np.int32)
        keep = (rcpt != -2).any(axis=1)
        out = {k: v[keep] for k, v in msgs.items()}
        out["rcpt"] = rcpt[keep]
        return out

    def _count_probes(self, t, rcpt, pending, refresh: float) -> None:
        rows, cols = np.nonzero(pending)
        ids = rcpt[rows, cols]
        unknown = ids < 0
        n = int(unknown.sum())
        known = ids[~unknown]
        if known.size:
            first_t = t[rows[~unknown]]
            uid, first = np.unique(known, return_index=True)
            top = int(uid.max()) + 1
            if top > self.last_probe.size:
                self.last_probe = np.concatenate([self.last_probe,
                                                  np.full(top - self.last_probe.size, -np.inf)])
            due = first_t[first] - self.last_probe[uid] >= refresh
            self.last_probe[uid[due]] = first_t[first][due]
            n += int(due.sum())
        self.rec.add("probes", self.rec.bins(t[:1]), float(n))

    def _due_arrivals(self, t: float) -> Batch | None:
        """Take the mail that arrived at or before t out of `incoming`, in arrival order."""
        if self.incoming is None:
            return None
        i = int(np.searchsorted(self.incoming.f[:, ARRIVAL], t, side="right"))
        if i == 0:
            return None
        due, self.incoming = self.incoming.take(slice(0, i)), self.incoming.take(slice(i, None))
        return due

    def _serve_timed(self, entry: np.ndarray) -> tuple:
        """(entry, start, end, vetoed) of mail entering the agents' queue at sorted times."""
        start, end, vetoed = self.agents.timed(entry, self._draw, self.site, self.site.clear)
        return entry, start, end, vetoed

    def _leave_deferred(self, batch: Batch, entry: np.ndarray) -> None:
        rec = self.rec
        _leaving(rec.acc, self._series_rows[_LEFT:_LEFT + 2], entry, batch.rcpt, rec.duration,
                 rec.interval, rec.n)

    def scan(self, T: float) -> None:
        """One qmgr tick at T, one batch: the deferred-queue scan at T (every message bucketed
        for T, entering together), then the new mail that arrives before the next tick, in
        arrival order and at its own times (first come, first served after the scan's
        messages). Without a runner grid, the tick's retries and new mail enter one by one at
        their own times. Deciding new mail one tick ahead is exact: the relay is a fixed
        function of time, and mail that arrives just after a scan can still be due at the
        next one (wake <= T + 1), as in Postfix."""
        files = self.queue.take(T)  # a copy of the scan's queue files, in filing order
        old = None if files is None else Batch(*files)
        new = self._due_arrivals(T + self.policy.interval(self.cur))
        if not self.policy.sched.runner:
            if old is not None:
                self._leave_deferred(old, old.f[:, LAST_NEXT])
                new = old if new is None else Batch.concat([new, old])
            if new is None:
                return
            entry = np.where(new.f[:, TRIES] > 0, new.f[:, LAST_NEXT], new.f[:, ARRIVAL])
            order = np.argsort(entry, kind="stable")
            self._attempt(new.take(order), *self._serve_timed(entry[order]))
            return
        present = [p for p in (old, new) if p is not None]
        if not present:
            return
        b = Batch.concat(present)  # the scan's messages, then the new mail
        parts = []
        if old is not None:
            parts.append(self._serve_scan(T, old))
        if new is not None:
            parts.append(self._serve_timed(new.f[:, ARRIVAL]))
        self._attempt(b, *(parts[0] if len(parts) == 1 else
                           (np.concatenate([p[i] for p in parts]) for i in range(4))))

    def heard_until(self, source: int, t: float) -> None:
        """Sender `source` has handed over all its mail arriving before t (inf: all)."""
        self.heard[source] = t

    def _run_fused(self, T: float) -> float:
        """The ticks from T on, in one compiled call (_run_postfix), each as scan() would run
        it, while no tick needs the general path or mail not handed over yet: the tick at T
        runs with the mail there is (as scan's does); a later tick only when the senders
        have handed over all mail arriving by the tick after it (`heard`). Stops to reserve
        room in the deferred queue, see more service times or make room for delays, and
        goes on. Returns the first tick not run: T itself when the general path must take
        it (the relay down or throttled while its attempts start, or a scan that overflows
        the active queue)."""
        q, site, io, service = self.queue, self.site, self._io, self.service
        # the same for every tick before it (without a grid, a tick's retries may start
        # before it: look from the tick before)
        o_start = float(self.relay.next_down(T if self.policy.sched.runner else
                                             max(T - TICK, 0.0))[0])
        horizon = float(self.heard.min())
        now, need = T, 0
        while True:
            inc = self.incoming
            inc_f, inc_r = (inc.f, inc.rcpt) if inc is not None else self._no_mail
            buf, pos = service.window(need)
            io[:] = 0
            io[_T], io[_NOW], io[_POS], io[_FIRST_OLD] = T, now, pos, -1
            _run_postfix(q.f, q.rcpt, q.head, q.tail, q.count, q.chunks, q.state, q.unit,
                         horizon, inc_f, inc_r, self.agents.free, buf, float(site.dead_until),
                         o_start, self.rec.acc, self._delays, io, *self._fused_args)
            T = int(io[_T])
            service.skip(int(io[_POS]) - pos)
            if io[_NEW]:
                self.incoming = inc.take(slice(int(io[_NEW]), None))
            if io[_DELAYS]:
                self.delays.add(self._delays[:int(io[_DELAYS])].copy())
            if io[_FIRST_OLD] >= 0 and site.first_failed is not None:
                site(io[_FIRST_OLD])  # what the general path's check of the relay leaves
            why, need = int(io[_WHY]), int(io[_NEED])
            if why == _ROOM:
                q.reserve(need)
            elif why == _DELAY_ROOM:
                self._delays = np.empty(max(need, 2 * self._delays.size))
            elif why != _SERVICE:
                return T

    def _serve_scan(self, T: float, batch: Batch) -> tuple:
        n = batch.f[:, ARRIVAL].size
        if self.site(T):
            start = np.full(n, float(T))
            end = start.copy()
            vetoed = np.ones(n, dtype=bool)
        else:
            start, end = self.agents.batch(T, n, self._draw)
            vetoed = np.zeros(n, dtype=bool)
            o_start, _ = self.relay.next_down(T)
            if o_start <= start[-1]:
                first = int(np.searchsorted(start, max(o_start, T)))
                s_f = float(start[first])
                self.site(s_f)
                start[first:] = end[first:] = s_f
                vetoed[first:] = True
                self.agents.free = np.minimum(self.agents.free, s_f)
        limit = self.up.qmgr_message_active_limit
        entry = np.full(n, float(T))
        if n > limit:  # the rest wait in the deferred queue until the active queue has room
            entry[limit:] = np.maximum(T, end[:-limit])
        self._leave_deferred(batch, entry)
        return entry, start, end, vetoed

    def _key(self, wake: np.ndarray) -> np.ndarray:
        """The tick that will take a message with this wake-up time."""
        # no earlier than the next tick: a runner under way has passed these messages already;
        # and the next tick takes whatever is due by then, even when a reload has moved the
        # grid and that pending tick is not on the new one
        nxt = int(self.next_tick)
        if self.policy.sched.runner:
            return _runner_ticks(np.asarray(wake, dtype=np.int64), nxt,
                                 self.policy.interval(self.cur), self.policy.slack)
        return np.maximum(self.policy.key(wake, self.cur), nxt)

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
        _stays(self._qdiff, self.qshape_edges, self.rec.interval, f, old, -1)
        key = self._key(f[:, LAST_NEXT].astype(np.int64))
        _stays(self._qdiff, self.qshape_edges, self.rec.interval, f, key, 1)
        q.put(f, rcpt, key)

    # --- one attempt per message of a batch ----------------------------------------------
    def _attempt(self, b: Batch, entry, start, end, vetoed) -> None:
        """Outcomes of one attempt of every message in `b` (rows in FIFO order), recorded;
        survivors re-filed in the deferred queue."""
        rec, relay, rcpt = self.rec, self.relay, b.rcpt
        snap = relay.snap_of(start)
        if self.plain and isinstance(snap, int) and not vetoed.any():
            out = replies(rcpt, relay.users[snap], relay.unknown_reply(snap))
            greyed = _NONE
        else:
            ok = ~vetoed
            pending = rcpt != -2
            out = np.full(rcpt.shape, DEFERRED, dtype=np.int8)
            if ok.all():
                out = relay.reply(start, rcpt)
            elif ok.any():
                out[ok] = relay.reply(start[ok], rcpt[ok])
            greyed = (np.atleast_1d(self._greylist(b, start, ok, out)).astype(np.int64)
                      if self.grey is not None else _NONE)
            out[~pending] = -1
            if self.relay_limit:
                self._hard_error_limit(out, start, end, ok, self.relay_limit)
        tally = _tally(out)

        # the retry policy for every message with deferred recipients
        r, create, tries, last_fail, last_next, null, now = _retry_inputs(b.f, end, tally)
        wake = key = _NONE[:0]
        give_up = _NO
        if r.size:
            snaps = (0 if self.snap_times.size == 1 else
                     np.searchsorted(self.snap_times, end[r], side="right") - 1)
            wake, give_up = self.policy.retry(snaps, create, now, tries, last_fail, last_next,
                                              null)
            key = self._key(wake)

        # what this batch changes in the time series, the delivered recipients' delays, and
        # the survivors re-filed: one compiled pass
        soft = self.soft if self.soft is not None else relay.reject_codes(start) < 500
        q = self.queue
        q.reserve(r.size)
        delays = _settle(
            rec.acc, self._series_rows, self._warn_row, rec.duration, rec.interval, rec.n,
            self.duration, entry, start, end, tally, vetoed, greyed, soft, b.f, rcpt, out, r,
            now, wake, give_up, key, float(self.up.delay_warning_time), self._qdiff,
            self.qshape_edges, q.f, q.rcpt, q.head, q.tail, q.count, q.chunks, q.state, q.unit)
        self.delays.add(delays)
        if self.log is not None:
            o = out.copy()
            o[r[give_up]] = np.where(out[r[give_up]] == DEFERRED, EXPIRED, out[r[give_up]])
            rr, cc = np.nonzero(rcpt != -2)
            self.log.append((b.f[rr, QID], cc.astype(np.int16), start[rr], o[rr, cc]))

    def _hard_error_limit(self, out, start, end, ok, limit: int) -> None:
        """smtpd_hard_error_limit at the relay: a session with `limit` or more rejected RCPTs
        gets 421 and is disconnected before DATA. The upstream sees a lost connection, a
        site-level failure: every recipient of the message is deferred and the relay is
        throttled from the end of that session (for the next tick's mail; mail already
        scheduled in this tick keeps its times). Derived from Postfix's smtpd.c, not verified
        on a live system."""
        hit = ok & (((out == DEFERRED) | (out == BOUNCED)).sum(axis=1) >= limit)
        if not hit.any():
            return
        out[hit] = np.where(out[hit] >= 0, DEFERRED, out[hit])
        self.rec.add("hard_error_disconnects", self.rec.bins(start[hit]))
        self.site.refused(float(end[hit].max()))

    def _greylist(self, b: Batch, start, ok, out) -> np.ndarray:
        """postgrey before the relay's recipient check: a new (client, sender, recipient)
        triplet is deferred with 450 4.2.0 until `delay` has passed since its first attempt;
        a first retry later than `retry_window` starts over; the client is whitelisted after
        `auto_whitelist_clients` passes counted once per hour. Unknown recipients still get
        the unknown-user code (greylisting is DEFER_IF_PERMIT). Triplets do not repeat across
        messages (true for forged spam senders; for real mail it overstates greylisting)."""
        g, f = self.grey, b.f
        first = f[:, GREY_FIRST]
        fresh = (first < 0) | ((f[:, GREY_OK] == 0) & (start - first > g.retry_window))
        first = np.where(fresh, start, first)
        f[:, GREY_FIRST] = first  # b's rows are copied into the deferred queue afterwards
        passed = (f[:, GREY_OK] == 1) | (start - first >= g.delay) | (start >= self.whitelisted_at)
        new_pass = ok & passed & (f[:, GREY_OK] == 0) & (start - first >= g.delay)
        f[:, GREY_OK] = np.where(ok & passed, 1, f[:, GREY_OK])
        held = ok & ~passed
        greyed = held[:, None] & (out == SENT)
        out[greyed] = DEFERRED
        per_row = greyed.sum(axis=1)
        self.rec.add("greylisted", self.rec.bins(start[held]), per_row[held])
        if g.auto_whitelist_clients and new_pass.any() and self.whitelisted_at == math.inf:
            for h, t in zip(np.floor(start[new_pass] / 3600).astype(int).tolist(),
                            start[new_pass].tolist(), strict=True):
                self.grey_pass_hours[h] = min(t, self.grey_pass_hours.get(h, math.inf))
            if len(self.grey_pass_hours) >= g.auto_whitelist_clients:
                self.whitelisted_at = sorted(self.grey_pass_hours.values())[
                    g.auto_whitelist_clients - 1]
        return per_row

    # --- observation ---------------------------------------------------------------------
    @property
    def qshape(self) -> np.ndarray:
        """Messages in the deferred queue per qshape age bucket at each sample (int64, samples
        x 10 buckets)."""
        return np.cumsum(self._qdiff[:-1], axis=0)

    def attempts_table(self) -> dict[str, np.ndarray]:
        """All recorded attempts (record_attempts=True), in the order they were computed."""
        parts = self.log or []
        cols = [np.concatenate([p[i] for p in parts]) if parts else np.empty(0)
                for i in range(4)]
        keep = cols[2] <= self.duration
        names = np.array(OUTCOMES)
        return {"message_id": cols[0][keep].astype(np.int64),
                "recipient": cols[1][keep].astype(np.int16),
                "t_s": cols[2][keep].astype(float),
                "outcome": names[cols[3][keep].astype(np.int64)] if keep.any()
                else np.empty(0, dtype="<U8")}

    # --- the SimPy process ---------------------------------------------------------------
    def process(self):
        """qmgr: a tick at 0 and at every runner interval (see scan). A run on the fused path
        (see `fused`) runs all the ticks it can in one event (_run_fused)."""
        env = self.env
        T = 0.0
        while T <= self.duration:
            self.next_tick = T
            yield env.timeout(T - env.now)
            if self.fused:
                done = self._run_fused(T)
                if done > T:
                    T = done
                    continue
            R = self.policy.interval(self.cur)
            self.next_tick = (math.floor(T / R + 1e-9) + 1) * R
            self.scan(T)
            T = self.next_tick

    def close(self) -> None:
        """The run is over: stop drawing service times ahead."""
        self.service.close()

    def reload(self, snap: int) -> None:
        """`postfix reload` into upstream snapshot `snap` (a scheduled change)."""
        old, self.cur = self.cur, snap
        self.up = self.snaps[snap]
        self.site.snap = snap
        c = self.up.default_destination_concurrency_limit
        if c != self.agents.free.size:
            self.agents.resize(c, self.env.now)
        if self.policy.interval(snap) != self.policy.interval(old):
            self.rebucket()


@njit(cache=True)
def _leaving(acc, rows, entry, rcpt, rec_duration, interval, nbins):
    """Queue files leaving the deferred queue at `entry`, counted in acc[rows] (SERIES:
    deferred, deferred_recipients)."""
    for i in range(entry.size):
        b = bin_of(entry[i], rec_duration, interval, nbins)
        r = 0
        for c in range(rcpt.shape[1]):
            r += rcpt[i, c] != -2
        acc[rows[0], b] -= 1.0
        acc[rows[1], b] -= r


@njit(cache=True)
def _queue_files(f, qid, arrival, create, kind, size, source, rcpt, acc, rows, rec_duration,
                 interval, nbins):
    """f[i]: the queue file of new message i (queue id qid + i, not tried yet), counted at
    its arrival in acc[rows] (received recipients, messages and bytes; whole numbers, so
    the sums do not depend on their order)."""
    for i in range(f.shape[0]):
        f[i, QID] = qid + i
        f[i, ARRIVAL] = arrival[i]
        f[i, CREATE] = create[i]
        f[i, KIND] = kind[i]
        f[i, SIZE] = size[i]
        f[i, SOURCE] = source[i]
        f[i, TRIES] = f[i, WARNED] = f[i, GREY_OK] = 0.0
        f[i, LAST_FAIL] = f[i, LAST_NEXT] = f[i, GREY_FIRST] = -1.0
        f[i, LAST_END] = -np.inf
        b = bin_of(arrival[i], rec_duration, interval, nbins)
        r = 0
        for c in range(rcpt.shape[1]):
            r += rcpt[i, c] != -2
        acc[rows[0], b] += r
        acc[rows[1], b] += 1.0
        acc[rows[2], b] += size[i]


# --- compiled per-attempt bookkeeping (numba): one pass over a batch instead of dozens ---------
@njit(cache=True)
def _runner_tick(wake, pending, interval, slack):
    """The tick that takes a message with this wake-up time on a runner grid: the pending
    tick if the message is due by then (a runner under way has passed it already, and after
    a reload the pending tick may be off the new grid), else the first runner start
    (schedules.queue_run)."""
    return pending if wake - slack <= pending else schedules.queue_run(wake, interval, slack)


@njit(cache=True)
def _runner_ticks(wake, pending, interval, slack):
    out = np.empty_like(wake)
    for i in range(wake.size):
        out[i] = _runner_tick(wake[i], pending, interval, slack)
    return out


@njit(cache=True)
def _tally(out):
    """Per message (row of RCPT outcomes, -1 where no recipient is pending): pending, sent,
    deferred and bounced recipients."""
    n, r = out.shape
    t = np.zeros((n, 4), dtype=np.int64)
    for i in range(n):
        for j in range(r):
            o = out[i, j]
            if o >= 0:
                t[i, 0] += 1
                t[i, 1 + o] += 1  # SENT 0, DEFERRED 1, BOUNCED 2
    return t


@njit(cache=True)
def _record(acc, rows, rec_duration, interval, nbins, duration, entry, start, end, tally,
            vetoed, greyed, soft, kind, size, arrival, expired, keep):
    """Add one batch of attempts to the recorder's series (acc[rows[k]], SERIES order) and
    return the delivered recipients' delays (end - arrival, one per sent recipient, attempts
    ending within the run). One pass: each of the three groups (at the entry, start and end
    times) is summed in registers while consecutive attempts share its bin, and added to acc
    when the bin changes. Every column is a whole number (bytes too: sizes are whole bytes),
    so the sums are exact whatever their order."""
    n = start.size
    b0 = b1 = b2 = -1
    lo0 = lo1 = lo2 = np.inf  # each group's bin's interior (see bin_near)
    hi0 = hi1 = hi2 = -np.inf
    a0 = a1 = 0.0  # at entry: active, active_recipients
    s0 = s1 = s2 = s3 = 0.0  # at the start: attempts, relay_sessions, rejects_4xx, rejects_5xx
    e0 = e1 = e2 = e3 = e4 = e5 = e6 = e7 = e8 = e9 = 0.0  # at the end: see SERIES
    for i in range(n):
        b, lo0, hi0 = bin_near(entry[i], b0, lo0, hi0, rec_duration, interval, nbins)
        if b != b0:
            _spill(acc, rows, 0, b0, (a0, a1))
            b0, a0, a1 = b, 0.0, 0.0
        a0 += 1.0
        a1 += tally[i, 0]
        gr = greyed[i if greyed.size > 1 else 0]
        ok = 0 if vetoed[i] else 1
        rej = (tally[i, 2] + tally[i, 3] - gr) * ok
        sf = soft[i if soft.size > 1 else 0]
        b, lo1, hi1 = bin_near(start[i], b1, lo1, hi1, rec_duration, interval, nbins)
        if b != b1:
            _spill(acc, rows, 2, b1, (s0, s1, s2, s3))
            b1, s0, s1, s2, s3 = b, 0.0, 0.0, 0.0, 0.0
        s0 += tally[i, 0]
        s1 += ok
        s2 += (rej if sf else 0) + gr * ok
        s3 += 0 if sf else rej
        nd, nb = tally[i, 2], tally[i, 3]
        real = kind[i] != NULL
        dsn = (1 if (nb > 0 and real) else 0) + (1 if (expired[i] and real) else 0)
        b, lo2, hi2 = bin_near(end[i], b2, lo2, hi2, rec_duration, interval, nbins)
        if b != b2:
            _spill(acc, rows, 6, b2, (e0, e1, e2, e3, e4, e5, e6, e7, e8, e9))
            b2 = b
            e0 = e1 = e2 = e3 = e4 = e5 = e6 = e7 = e8 = e9 = 0.0
        e0 -= 1.0
        e1 -= tally[i, 0]
        e2 += tally[i, 1]
        e3 += nb
        e4 += nd * expired[i]
        e5 += dsn
        e6 += dsn * (kind[i] == FORGED)
        e7 -= 0.0 if keep[i] else size[i]
        e8 += keep[i]
        e9 += nd * keep[i]
    _spill(acc, rows, 0, b0, (a0, a1))
    _spill(acc, rows, 2, b1, (s0, s1, s2, s3))
    _spill(acc, rows, 6, b2, (e0, e1, e2, e3, e4, e5, e6, e7, e8, e9))
    m = 0
    for i in range(n):
        if end[i] <= duration:
            m += tally[i, 1]
    delays = np.empty(m)
    m = 0
    for i in range(n):
        if end[i] <= duration:
            for _ in range(tally[i, 1]):
                delays[m] = end[i] - arrival[i]
                m += 1
    return delays


@njit(cache=True, inline="always")
def _spill(acc, rows, first, b, part):
    """acc[rows[first + c], b] += part[c] (nothing before the first bin, b < 0)."""
    if b >= 0:
        for c in range(len(part)):
            acc[rows[first + c], b] += part[c]


@njit(cache=True)
def _retry_inputs(f, end, tally):
    """The rows with deferred recipients and what the retry policy needs of them (int64, as
    Postfix's time_t): create, tries including this one, last failure, last wake-up time,
    null sender, and now = the attempt's end in whole seconds."""
    n = tally.shape[0]
    m = 0
    for i in range(n):
        if tally[i, 2] > 0:
            m += 1
    r = np.empty(m, dtype=np.int64)
    create = np.empty(m, dtype=np.int64)
    tries = np.empty(m, dtype=np.int64)
    last_fail = np.empty(m, dtype=np.int64)
    last_next = np.empty(m, dtype=np.int64)
    null = np.empty(m, dtype=np.bool_)
    now = np.empty(m, dtype=np.int64)
    m = 0
    for i in range(n):
        if tally[i, 2] > 0:
            r[m] = i
            create[m] = np.int64(f[i, CREATE])
            tries[m] = np.int64(f[i, TRIES]) + 1
            last_fail[m] = np.int64(f[i, LAST_FAIL])
            last_next[m] = np.int64(f[i, LAST_NEXT])
            null[m] = f[i, KIND] == NULL
            now[m] = np.int64(math.floor(end[i]))
            m += 1
    return r, create, tries, last_fail, last_next, null, now


@njit(cache=True)
def _settle(acc, rows, warn_row, rec_duration, interval, nbins, duration, entry, start, end,
            tally, vetoed, greyed, soft, f, rcpt, out, r, now, wake, give_up, key, dwt,
            qshape, edges, qf, qr, head, tail, count, chunks, state, unit):
    """After the retry policy: record the batch (see _record), and file the messages it
    keeps (rows r[i] without give_up[i]) in the deferred queue (sim.model.deferred; room reserved
    by the caller) under tick key[i], in batch order, with the attempt written into their
    queue file (see _refile). Returns the delays."""
    n = start.size
    expired = np.zeros(n, dtype=np.bool_)
    keep = np.zeros(n, dtype=np.bool_)
    slots = np.zeros(n, dtype=np.int64)
    now_ = np.zeros(n, dtype=np.int64)
    wake_ = np.zeros(n, dtype=np.int64)
    key_ = np.zeros(n, dtype=np.int64)
    for i in range(r.size):
        m = r[i]
        if give_up[i]:
            expired[m] = True
        else:
            keep[m] = True
            slots[m] = min(key[i] // unit, head.size - 1)
            now_[m], wake_[m], key_[m] = now[i], wake[i], key[i]
    delays = _record(acc, rows, rec_duration, interval, nbins, duration, entry, start, end,
                     tally, vetoed, greyed, soft, f[:, KIND], f[:, SIZE], f[:, ARRIVAL], expired,
                     keep)
    dest = file_rows(head, tail, count, chunks, state, slots, keep)
    for i in range(n):
        if keep[i]:
            d = dest[i]
            for c in range(f.shape[1]):
                qf[d, c] = f[i, c]
            for c in range(rcpt.shape[1]):
                qr[d, c] = -2 if out[i, c] != DEFERRED else rcpt[i, c]
    _refile(qf, dest, keep, now_, wake_, key_, end, dwt, acc, warn_row, rec_duration, interval,
            nbins, qshape, edges)
    return delays


@njit(cache=True)
def _refile(qf, dest, keep, now, wake, key, end, dwt, acc, warn_row, rec_duration, interval,
            nbins, qshape, edges):
    """Queue file dest[i] of each message i kept after a deferral at now[i] (whole seconds)
    of an attempt that ended at end[i]: TRIES + 1, LAST_FAIL = now, LAST_NEXT = wake,
    LAST_END = end; if dwt > 0, a delay warning (counted in acc[warn_row] at the end's bin)
    for real mail not yet warned whose age reaches dwt; its stay in the deferred queue until
    tick key[i] is counted in `qshape` (see _stay)."""
    for i in range(dest.size):
        if not keep[i]:
            continue
        d = dest[i]
        qf[d, TRIES] += 1
        qf[d, LAST_FAIL] = now[i]
        qf[d, LAST_NEXT] = wake[i]
        qf[d, LAST_END] = end[i]
        if dwt > 0 and qf[d, WARNED] == 0 and qf[d, KIND] != NULL and (
                now[i] >= qf[d, CREATE] + dwt - 1):
            acc[warn_row, bin_of(end[i], rec_duration, interval, nbins)] += 1.0
            qf[d, WARNED] = 1
        _stay(qshape, edges, interval, end[i], key[i], qf[d, ARRIVAL], 1)


# _run_postfix's io array: in: the first tick, the clock's tick, the position in the service
# times; out: why it stopped, the first tick not run, the position in the service times, new
# mail taken, delays written, the first tick that took deferred mail, what it needs
_T, _NOW, _POS, _WHY, _NEW, _DELAYS, _FIRST_OLD, _NEED = range(8)
# why: ran past the run's end, waits for mail, the general path must take the tick, or it
# needs room in the deferred queue (NEED files), service times (NEED from POS) or room for
# delays (NEED)
_DONE, _WAIT, _GENERAL, _ROOM, _SERVICE, _DELAY_ROOM = range(6)


@njit(cache=True, nogil=True)  # the service-time thread draws meanwhile
def _run_postfix(qf, qr, head, tail, count, chunks, state, unit, horizon, inc_f, inc_r, free,
                 buf, dead_until, o_start, acc, dbuf, io, mean, active_limit, users, unknown,
                 soft, rule, P, grid, R, slack, rows, warn_row,
                 rec_duration, interval, nbins, duration, dwt, qshape, edges):
    """qmgr ticks T = io[_T], the next tick, ... each as _scan_postfix, until one
    cannot run here (io[_WHY]): past the run's end; a tick after the clock's (io[_NOW])
    whose new mail may not all be here (the senders have handed over the mail arriving
    before `horizon`); one the general path must take (the relay down from o_start or
    throttled until dead_until while its attempts start, or a scan of more than
    active_limit messages); or one that needs room or service times. The service times
    are the standard exponentials buf[io[_POS]:], times `mean`, taken in the general
    path's order (one per message of the tick, in queue order). New mail is taken from the
    front of inc_f, the delays are written to dbuf. A tick that stops changes nothing.
    rule, P: the schedule's rule and packed parameters (schedules.due); grid: the MTA has a
    queue-runner grid of R s (else ticks every R = TICK s serve each message at its own
    wake-up time)."""
    width = qr.shape[1]
    T = io[_T]
    pos = np.int64(io[_POS])
    p_in = 0
    nd = 0
    why = _DONE
    need = 0
    while T <= duration:
        if T > io[_NOW] and T + R >= horizon:
            why = _WAIT
            break
        k = min(np.int64(T) // unit, head.size - 1)
        n_old = count[k]
        n_new = 0
        while p_in + n_new < inc_f.shape[0] and inc_f[p_in + n_new, ARRIVAL] <= T + R:
            n_new += 1
        nxt = np.int64((math.floor(T / R + 1e-9) + 1) * R)
        if n_old or n_new:
            n = n_old + n_new
            if (grid and n_old > active_limit) or T < dead_until or o_start <= T:
                why = _GENERAL
                break
            if state[0] + n > qf.shape[0] or state[1] + n > chunks.shape[0]:
                why, need = _ROOM, n
                break
            if nd + n * width > dbuf.size:
                why, need = _DELAY_ROOM, nd + n * width
                break
            if pos + n > buf.size:
                why, need = _SERVICE, n
                break
            code, delays = _scan_postfix(
                qf, qr, head, tail, count, chunks, state, unit, k, T, inc_f[p_in:],
                inc_r[p_in:], n_new, free, buf[pos:pos + n] * mean, dead_until, o_start, users,
                unknown, soft, rule, P, grid, R, slack, nxt, acc,
                rows, warn_row, rec_duration, interval, nbins, duration, dwt, qshape, edges)
            if code:
                why = _GENERAL
                break
            pos += n
            p_in += n_new
            dbuf[nd:nd + delays.size] = delays
            nd += delays.size
            if grid and n_old and io[_FIRST_OLD] < 0:
                io[_FIRST_OLD] = T
        T = float(nxt)
    io[_WHY], io[_T], io[_POS], io[_NEW], io[_DELAYS], io[_NEED] = why, T, pos, p_in, nd, need


@njit(cache=True, nogil=True)  # the service-time thread draws meanwhile
def _scan_postfix(qf, qr, head, tail, count, chunks, state, unit, k, T, inc_f, inc_r, n_new,
                  free, service, dead_until, o_start, users, unknown, soft, rule, P, grid, R,
                  slack, nxt, acc, rows, warn_row, rec_duration,
                  interval, nbins, duration, dwt, qshape, edges):
    """One qmgr tick at T, as the general path computes it (QueueHost.scan with
    _serve_scan, _serve_timed, _attempt and _settle), in one pass: the files of slot k of the
    deferred queue (sim.deferred) and the first n_new rows of the incoming mail, in queue
    order (grid: the scan's files entering at T, then new mail at its arrival; no grid: every
    message at its own time, the wake-up time or the arrival, new mail first among equals),
    are served by the agents (free, updated in place; `service`: one service time each, in
    that order), answered by the relay (one configuration: users, unknown, soft), retried by
    schedules.due and filed again (room reserved by the caller). Returns (code, delays): 0
    done; 1 (nothing changed) an attempt would start while the relay is down (o_start: the
    next outage) or throttled (dead_until): the general path must take the tick."""
    n_old = count[k]
    n = n_old + n_new
    idx = peek_rows(head, count, chunks, k)
    entry = np.empty(n)
    p_old = np.empty(n_old, dtype=np.int64)
    p_new = np.empty(n_new, dtype=np.int64)
    if grid:
        for i in range(n_old):
            p_old[i] = i
            entry[i] = T
        for i in range(n_new):
            p_new[i] = n_old + i
            entry[n_old + i] = inc_f[i, ARRIVAL]
    else:
        ent = np.empty(n)
        for i in range(n_new):
            ent[i] = inc_f[i, ARRIVAL]
        for i in range(n_old):
            ent[n_new + i] = qf[idx[i], LAST_NEXT]
        order = np.argsort(ent, kind="mergesort")
        for q in range(n):
            m = order[q]
            entry[q] = ent[m]
            if m < n_new:
                p_new[m] = q
            else:
                p_old[m - n_new] = q
    start, end, fr = fifo(entry, service, free)
    if o_start <= start[n - 1] or (n_new and start[n_old] < dead_until) or (
            not grid and start[0] < dead_until):
        return 1, np.empty(0)
    free[:] = fr
    slot_rows(head, tail, count, chunks, k)  # the scan takes them
    tally = np.zeros((n, 4), dtype=np.int64)
    kind = np.empty(n)
    size = np.empty(n)
    arrived = np.empty(n)
    now = np.empty(n, dtype=np.int64)
    wake = np.empty(n, dtype=np.int64)
    key = np.empty(n, dtype=np.int64)
    slots = np.zeros(n, dtype=np.int64)
    expired = np.zeros(n, dtype=np.bool_)
    keep = np.zeros(n, dtype=np.bool_)
    due = (R, slack, nxt, unit, head.size - 1)
    new = np.arange(n_new)
    # one call per source, each looping over its messages: a call per message would cost
    # more than the message (numba passes every array as a dozen scalars)
    _answer(qf, qr, idx, p_old, users, unknown, end, rule, P, grid, due, tally, kind, size,
            arrived, now, wake, key, slots, expired, keep)
    _answer(inc_f, inc_r, new, p_new, users, unknown, end, rule, P, grid, due, tally, kind,
            size, arrived, now, wake, key, slots, expired, keep)
    for m in range(n_old):  # SERIES: deferred, deferred_recipients, as they leave
        i = p_old[m]
        b = bin_of(entry[i], rec_duration, interval, nbins)
        acc[rows[_LEFT], b] -= 1.0
        acc[rows[_LEFT + 1], b] -= tally[i, 0]
    delays = _record(acc, rows, rec_duration, interval, nbins, duration, entry, start, end,
                     tally, np.zeros(n, dtype=np.bool_), np.zeros(1, dtype=np.int64), soft, kind,
                     size, arrived, expired, keep)
    dest = file_rows(head, tail, count, chunks, state, slots, keep)
    _move(qf, qr, idx, p_old, keep, dest, qf, qr, users, unknown)
    _move(inc_f, inc_r, new, p_new, keep, dest, qf, qr, users, unknown)
    _refile(qf, dest, keep, now, wake, key, end, dwt, acc, warn_row, rec_duration, interval,
            nbins, qshape, edges)
    return 0, delays


@njit(cache=True)
def _tick_key(wake, pending, R, slack, grid):
    """The tick that takes a message with this wake-up time: on a runner grid, see
    _runner_tick; without one, the tick before the wake-up time (which serves everything due
    up to the next tick), no earlier than the pending tick."""
    if grid:
        return _runner_tick(wake, pending, R, slack)
    return max((-(-wake // R) - 1) * R, pending)


@njit(cache=True)
def _answer(sf, sr, src, at, users, unknown, end, rule, P, grid, due, tally, kind, size,
            arrived, now, wake, key, slots, expired, keep):
    """_scan_postfix for messages i = at[m], queue files src[m] of (sf, sr): the relay's
    answers, and for deferred recipients the schedule's retry (schedules.due; due: R, slack,
    next tick, the queue's unit and last slot)."""
    R, slack, nxt, unit, last = due
    for m in range(src.size):
        i, j = at[m], src[m]
        for c in range(sr.shape[1]):
            o = outcome(sr[j, c], users, unknown)
            if o >= 0:
                tally[i, 0] += 1
                tally[i, 1 + o] += 1
        kind[i] = sf[j, KIND]
        size[i] = sf[j, SIZE]
        arrived[i] = sf[j, ARRIVAL]
        if tally[i, 2] > 0:
            now[i] = np.int64(math.floor(end[i]))
            wake[i], give_up = schedules.due(
                rule, P, np.int64(sf[j, CREATE]), now[i], np.int64(sf[j, TRIES]) + 1,
                np.int64(sf[j, LAST_FAIL]), np.int64(sf[j, LAST_NEXT]), kind[i] == NULL)
            if give_up:
                expired[i] = True
            else:
                keep[i] = True
                key[i] = _tick_key(wake[i], nxt, R, slack, grid)
                slots[i] = min(key[i] // unit, last)


@njit(cache=True)
def _move(sf, sr, src, at, keep, dest, qf, qr, users, unknown):
    """Queue file src[m] of (sf, sr) of each kept message i = at[m] copied to row dest[i]
    of the deferred queue, its recipients that are not deferred (known, or bounced) done."""
    for m in range(src.size):
        i, j = at[m], src[m]
        if not keep[i]:
            continue
        d = dest[i]
        for c in range(sf.shape[1]):
            qf[d, c] = sf[j, c]
        for c in range(sr.shape[1]):
            qr[d, c] = sr[j, c] if outcome(sr[j, c], users, unknown) == DEFERRED else -2


@njit(cache=True, inline="always")
def _stay(qdiff, edges, interval, left_at, key, arrival, sign):
    """qshape[j, b] += sign for every sample t_j = j * interval with left_at <= t_j < key, as
    differences over j (qdiff[j0, b] += sign, qdiff[j1, b] -= sign; qshape is their running
    sum, QueueHost.qshape): a message whose attempt ended at left_at waits in the deferred
    queue until the tick at `key` takes it; b is its qshape age bucket at t_j, the number of
    edges <= its age (metrics.qshape_edges). Its cost is the buckets it crosses, not the
    samples."""
    top = edges.size
    n = qdiff.shape[0] - 1
    j = np.int64(left_at * (1.0 / interval))  # the first sample at or after left_at: this
    if j > 0 and (j - 1) * interval >= left_at:  # guess is off by one at most, and the
        j -= 1                                   # comparisons below are exact
    elif j * interval < left_at:
        j += 1
    j1 = np.int64(key * (1.0 / interval))  # the first sample at or after key (none after n)
    if j1 > 0 and (j1 - 1) * interval >= key:
        j1 -= 1
    elif j1 * interval < key:
        j1 += 1
    j1 = min(j1, n)
    while j < j1:
        age = j * interval - arrival
        b = top
        if age < edges[top - 1]:
            b = 0
            while age >= edges[b]:
                b += 1
        jn = j1  # the first sample of the next bucket
        if b < top:
            e = edges[b]
            g = np.int64(math.ceil((e + arrival) * (1.0 / interval)))
            g = max(g, j + 1)
            while g - 1 > j and (g - 1) * interval - arrival >= e:
                g -= 1
            while g * interval - arrival < e:
                g += 1
            jn = min(g, j1)
        qdiff[j, b] += sign
        qdiff[jn, b] -= sign
        j = jn


@njit(cache=True)
def _stays(qshape, edges, interval, f, key, sign):
    """_stay for every queue file of f, row i filed under tick key[i]."""
    for i in range(f.shape[0]):
        _stay(qshape, edges, interval, f[i, LAST_END], key[i], f[i, ARRIVAL], sign)
