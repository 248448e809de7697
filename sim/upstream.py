"""The upstream mail-queue host: Postfix's queue manager (qmgr) and SMTP client, in batches.

Public names: QueueHost, Message fields (FIELDS).

Contract (mta-semantics.md sections 2 and 3; one SimPy process for the qmgr, never one per
message):
- New mail gets its first attempt on arrival: receive() queues it, and feed(t) enters every
  message that arrived at or before t into the delivery agents' FIFO queue, in arrival order.
  Mail that arrives at the same instant as a scan goes first.
- Deferred-queue scans run at T = k * queue_run_delay (k >= 1, the qmgr's timer starts with the
  run) and take every message whose wake-up time is at most T + 1 s; one scan is one batch.
- An attempt's outcome is decided at its start time by the relay (sim.relay): known recipients
  are sent, 4xx recipients deferred, 5xx recipients bounced. The relay being down (connection
  refused) defers every recipient and throttles the destination for minimal_backoff_time; while
  throttled, jobs are deferred without a connection and without agent time.
- At the end of an attempt, in whole seconds (Postfix's time_t): a message with bounced
  recipients and a non-null sender gets one non-delivery DSN; a message with deferred
  recipients either expires (the retry policy's give_up: for Postfix, age >= lifetime, and
  bounce_queue_lifetime for null-sender mail) or is deferred until its wake-up time (for
  Postfix, now + clamp(age, minimal_backoff_time, maximal_backoff_time)).
- Per-message state lives in numpy arrays (FIELDS), bucketed by the scan that will take the
  message; memory grows with the queue, not with the mail simulated.
- Everything observed goes to a metrics.Recorder and DelaySketch; nothing is printed.
Simplifications (documented in the README): one SMTP transaction per message attempt; the
scan and the hand-over to the delivery agents take no time; when an outage begins in the
middle of a scan batch, agents are freed at that moment.
"""

from __future__ import annotations

import math

import numpy as np

from sim import schedules
from sim.concurrency import Agents
from sim.metrics import DelaySketch, Recorder, qshape_bucket
from sim.relay import BOUNCED, DEFERRED, SENT, RelayTimeline
from sim.sender import FORGED, NULL

FIELDS = ("qid", "arrival", "create", "rcpt", "kind", "size", "source", "tries", "last_fail",
          "last_next", "last_end", "warned")
OUTCOMES = ("sent", "deferred", "bounced", "expired")
EXPIRED = 3


TICK = 60  # processing period of schedules without a queue-runner grid (qmail, exchange, list)


def schedule_params(up):
    """The sim.schedules parameters object for an [upstream] snapshot (whole seconds)."""
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
        self.slack = self.sched.slack

    def interval(self, snap: int) -> int:
        """Runner interval in force for snapshot `snap` (TICK where the MTA has no grid)."""
        return getattr(self.params[snap], self.sched.runner) if self.sched.runner else TICK

    def retry(self, snap, create, now, tries, last_fail, last_next, null):
        wake = np.empty(now.size, dtype=np.int64)
        give_up = np.empty(now.size, dtype=bool)
        for j in np.unique(snap):
            m = snap == j
            kw = {"null_sender": null[m]} if self.sched.retry is schedules.postfix_retry else {}
            wake[m], give_up[m] = self.sched.retry(create[m], now[m], tries[m], last_fail[m],
                                                   last_next[m], self.params[j], **kw)
        return wake, give_up

    def entry(self, wake: np.ndarray, snap: int) -> np.ndarray:
        """When a message with this wake-up time is next taken: the runner start, or (no grid)
        the wake-up time itself."""
        if self.sched.runner:
            return schedules.next_queue_run(wake, self.interval(snap), self.slack)
        return wake

    def key(self, wake: np.ndarray, snap: int) -> np.ndarray:
        """The qmgr tick that processes it."""
        if self.sched.runner:
            return self.entry(wake, snap)
        return -(-wake // TICK) * TICK


def _take(batch: dict, idx) -> dict:
    return {k: v[idx] for k, v in batch.items()}


def _concat(batches: list[dict]) -> dict:
    if len(batches) == 1:
        return batches[0]
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


class _Site:
    """The relay as a destination: refused while down; throttled for minimal_backoff_time after
    a refused connection. Queried at non-decreasing times within one batch."""

    def __init__(self, relay: RelayTimeline):
        self.relay = relay
        self.dead_until = -math.inf
        self.backoff = 300.0
        self._down = (-math.inf, -math.inf)

    def __call__(self, t: float) -> bool:
        if t < self.dead_until:
            return True
        if not (self._down[0] <= t < self._down[1]):
            if t >= self._down[1]:
                self._down = self.relay.next_down(t)
            if not (self._down[0] <= t < self._down[1]):
                return False
        self.dead_until = t + self.backoff
        return True


class QueueHost:
    """The upstream queue host (see the module contract)."""

    def __init__(self, env, scenario, relay: RelayTimeline, rng_service: np.random.Generator,
                 recorder: Recorder, record_attempts: bool = False):
        self.env = env
        self.snaps = [up for _, up, _ in scenario.timeline()]
        self.snap_times = np.array([t for t, _, _ in scenario.timeline()])
        self.up = self.snaps[0]
        self.duration = scenario.simulation.duration
        self.relay = relay
        self.site = _Site(relay)
        self.site.backoff = self.up.minimal_backoff_time
        self.rng = rng_service
        self.agents = Agents(self.up.default_destination_concurrency_limit)
        self.rec = recorder
        self.delays = DelaySketch()
        self.incoming: list[dict] = []
        self.deferred: dict[int, list[dict]] = {}
        self.next_qid = 0
        self.log: list[tuple] | None = [] if record_attempts else None
        self.policy = Policy(self.snaps)
        self.cur = 0  # index of the upstream snapshot in force
        self.scanned = -math.inf  # time of the latest tick that has taken its bucket

    # --- service times -------------------------------------------------------------------
    def _draw(self, shape):
        mean = self.up.smtp_transaction_time
        return self.rng.exponential(mean, shape) if mean > 0 else np.zeros(shape)

    # --- arrivals ------------------------------------------------------------------------
    def receive(self, msgs: dict) -> None:
        """New mail from a sender (arrival times may lie ahead of the clock)."""
        n = msgs["arrival"].size
        msgs = dict(msgs)
        msgs["qid"] = np.arange(self.next_qid, self.next_qid + n, dtype=np.int64)
        self.next_qid += n
        msgs["tries"] = np.zeros(n, dtype=np.int32)
        msgs["last_fail"] = np.full(n, -1, dtype=np.int64)
        msgs["last_next"] = np.full(n, -1, dtype=np.int64)
        msgs["last_end"] = np.full(n, -np.inf)
        msgs["warned"] = np.zeros(n, dtype=bool)
        self.incoming.append(msgs)
        pending = (msgs["rcpt"] != -2).sum(axis=1)
        self.rec.event("received", msgs["arrival"], pending)
        self.rec.event("received_messages", msgs["arrival"])
        self.rec.step("bytes", msgs["arrival"], msgs["size"])

    def _due_arrivals(self, t: float) -> dict | None:
        """Take the mail that arrived at or before t out of `incoming`, in arrival order."""
        if not self.incoming:
            return None
        allm = _concat(self.incoming)
        due = allm["arrival"] <= t
        if not due.any():
            self.incoming = [allm]
            return None
        self.incoming = [_take(allm, ~due)] if not due.all() else []
        batch = _take(allm, due)
        return _take(batch, np.argsort(batch["arrival"], kind="stable"))

    def _serve_timed(self, batch: dict, entry: np.ndarray) -> tuple:
        self.site.backoff = self.up.minimal_backoff_time
        start, end, vetoed = self.agents.timed(entry, self._draw, self.site)
        return batch, entry, start, end, vetoed

    def _leave_deferred(self, batch: dict, entry: np.ndarray) -> None:
        self.rec.step("deferred", entry, -1.0)
        self.rec.step("deferred_recipients", entry, -(batch["rcpt"] != -2).sum(axis=1))

    def feed(self, t: float) -> None:
        """First attempts of all mail that arrived at or before t, in arrival order."""
        batch = self._due_arrivals(t)
        if batch is not None:
            self._attempt(*self._serve_timed(batch, batch["arrival"]))

    def scan(self, T: float) -> None:
        """One qmgr tick at T: new mail first, then the deferred-queue scan, every message
        bucketed for T as one batch. Without a runner grid, the tick's messages and new mail
        enter one by one at their own times. One _attempt call per tick."""
        if self.policy.sched.runner:
            # new mail first, in its own batch: mail that arrived just after the previous
            # scan may already be due at this one (wake <= T + 1), as in Postfix
            self.feed(T)
        batches = self.deferred.pop(int(T), None)
        self.scanned = T
        new = self._due_arrivals(T)
        parts = []
        if not self.policy.sched.runner:
            if batches:
                old = _concat(batches)
                self._leave_deferred(old, old["last_next"].astype(float))
                new = old if new is None else _concat([new, old])
            if new is not None:
                entry = np.where(new["tries"] > 0, new["last_next"], new["arrival"]).astype(float)
                order = np.argsort(entry, kind="stable")
                parts.append(self._serve_timed(_take(new, order), entry[order]))
        else:
            if new is not None:
                parts.append(self._serve_timed(new, new["arrival"]))
            if batches:
                parts.append(self._serve_scan(T, _concat(batches)))
        if len(parts) == 1:
            self._attempt(*parts[0])
        elif parts:
            self._attempt(_concat([p[0] for p in parts]),
                          *(np.concatenate([p[i] for p in parts]) for i in range(1, 5)))

    def _serve_scan(self, T: float, batch: dict) -> tuple:
        n = batch["arrival"].size
        self.site.backoff = self.up.minimal_backoff_time
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
        return batch, entry, start, end, vetoed

    def _bucket(self, batch: dict, wake: np.ndarray) -> None:
        key = self.policy.key(wake, self.cur)
        # a runner that is under way has passed these messages already: the next one takes them
        key = np.where(key <= self.scanned, key + self.policy.interval(self.cur), key)
        order = np.argsort(key, kind="stable")
        key = key[order]
        batch = _take(batch, order)
        bounds = np.flatnonzero(np.diff(key)) + 1
        for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, key.size], strict=True):
            self.deferred.setdefault(int(key[lo]), []).append(_take(batch, slice(lo, hi)))

    def rebucket(self) -> None:
        """After a reload that changed the runner interval: re-file every deferred message."""
        allb = [b for bs in self.deferred.values() for b in bs]
        self.deferred = {}
        if allb:
            batch = _concat(allb)
            self._bucket(batch, batch["last_next"])

    # --- one attempt per message of a batch ----------------------------------------------
    def _attempt(self, b: dict, entry, start, end, vetoed) -> None:
        n = start.size
        rcpt = b["rcpt"]
        pending = rcpt != -2
        npend = pending.sum(axis=1)
        out = np.full(rcpt.shape, -1, dtype=np.int8)
        ok = ~vetoed
        if ok.any():
            out[ok] = self.relay.reply(start[ok], rcpt[ok])
        out[vetoed] = DEFERRED
        out[~pending] = -1
        rec = self.rec
        rec.step("active", entry)
        rec.step("active", end, -1.0)
        rec.step("active_recipients", entry, npend)
        rec.step("active_recipients", end, -npend)
        rec.event("attempts", start, npend)
        rec.event("relay_sessions", start[ok])
        sent, bounced, deferred = (out == SENT), (out == BOUNCED), (out == DEFERRED)
        nsent, nb, nd = sent.sum(axis=1), bounced.sum(axis=1), deferred.sum(axis=1)
        rej = (ok & (nd + nb > 0))
        if rej.any():
            codes = self.relay.reject_codes(start[rej])
            cnt = (nd + nb)[rej]
            rec.event("rejects_4xx", start[rej], np.where(codes < 500, cnt, 0))
            rec.event("rejects_5xx", start[rej], np.where(codes >= 500, cnt, 0))
        rec.event("delivered", end, nsent)
        rec.event("bounced", end, nb)
        has = nsent > 0
        if has.any():
            rows, _ = np.nonzero(sent)
            d_end = end[rows]
            self.delays.add((d_end - b["arrival"][rows])[d_end <= self.duration])
        kind = b["kind"]
        dsn = (nb > 0) & (kind != NULL)
        rec.event("dsn", end[dsn])
        rec.event("backscatter", end[dsn & (kind == FORGED)])

        tries = b["tries"] + 1
        now = np.floor(end).astype(np.int64)
        retry = nd > 0
        wake = np.zeros(n, dtype=np.int64)
        give_up = np.zeros(n, dtype=bool)
        if retry.any():
            snap = np.searchsorted(self.snap_times, end[retry], side="right") - 1
            wake[retry], give_up[retry] = self.policy.retry(
                snap, b["create"][retry], now[retry], tries[retry],
                b["last_fail"][retry], b["last_next"][retry], kind[retry] == NULL)
        expired = retry & give_up
        if expired.any():
            rec.event("expired", end[expired], nd[expired])
            edsn = expired & (kind != NULL)
            rec.event("dsn", end[edsn])
            rec.event("backscatter", end[edsn & (kind == FORGED)])
        if self.log is not None:
            o = out.copy()
            o[expired[:, None] & (out == DEFERRED)] = EXPIRED
            r, c = np.nonzero(pending)
            self.log.append((b["qid"][r], c.astype(np.int16), start[r], o[r, c]))

        keep = retry & ~give_up
        gone = ~keep
        rec.step("bytes", end[gone], -b["size"][gone])
        if keep.any():
            k = np.flatnonzero(keep)
            nb_ = _take(b, k)
            r = nb_["rcpt"].copy()
            r[out[k] != DEFERRED] = -2
            nb_["rcpt"] = r
            nb_["tries"] = tries[k]
            nb_["last_fail"] = now[k]
            nb_["last_next"] = wake[k]
            nb_["last_end"] = end[k]
            dwt = self.up.delay_warning_time
            if dwt > 0:
                warn = ~nb_["warned"] & (nb_["kind"] != NULL) & (
                    now[k] >= nb_["create"] + dwt - 1)
                rec.event("delay_dsn", end[k][warn])
                nb_["warned"] = nb_["warned"] | warn
            rec.step("deferred", end[k])
            rec.step("deferred_recipients", end[k], nd[k])
            self._bucket(nb_, wake[k])

    # --- observation ---------------------------------------------------------------------
    def deferred_ages(self, t: float) -> np.ndarray:
        """Ages (s, since arrival) of the messages in the deferred queue at time t."""
        ages = [b["arrival"][b["last_end"] <= t] for key, bs in self.deferred.items()
                if key > t for b in bs]
        return t - np.concatenate(ages) if ages else np.empty(0)

    def qshape(self, t: float, buckets: int = 10) -> np.ndarray:
        """Messages in the deferred queue at t per qshape age bucket (5 10 20 ... 1280+ min)."""
        return np.bincount(qshape_bucket(self.deferred_ages(t), 5, buckets), minlength=buckets)

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
        """qmgr: feed new mail, then scan the deferred queue, every runner interval."""
        env = self.env
        T = self.policy.interval(self.cur)
        while T <= self.duration:
            yield env.timeout(T - env.now)
            self.scan(T)
            R = self.policy.interval(self.cur)
            T = (math.floor(T / R + 1e-9) + 1) * R

    def reload(self, snap: int) -> None:
        """`postfix reload` into upstream snapshot `snap` (a scheduled change)."""
        old, self.cur = self.cur, snap
        self.up = self.snaps[snap]
        c = self.up.default_destination_concurrency_limit
        if c != self.agents.free.size:
            self.agents.resize(c, self.env.now)
        if self.policy.interval(snap) != self.policy.interval(old):
            self.rebucket()
