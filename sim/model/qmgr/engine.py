"""The queue manager's tick engine: every qmgr tick of every schedule, in compiled code.

Public names: Store, Mail, Relay, Upstream, State, ATTEMPT, run, tick, IO, I_T .. I_NEED,
WHY, DONE .. LOG_ROOM.

Contract (mta-semantics.md sections 2 and 3):
- A tick at T takes the deferred queue's files filed under T (sim.model.deferred) and the new
  mail arriving before the next tick. Where the schedule reads its queue in directory order
  (Postfix's qmgr_scan, up.hashed) the files are taken in the order of their places
  (rules.scan_order: a trace's places, st.names by queue id, or rules.file_place with the
  run's salt), else in filing order. On a runner grid (Postfix's queue_run_delay, Exim's and
  sendmail's -q interval) the scan's files enter the active queue together when the scan starts
  (Postfix: rules.scan_start, qmgr's event loop; else at T; new mail whose arrival woke the loop
  for it first, as qmgr_loop alternates the incoming and deferred scans), then the new mail at
  its arrival; without a grid (qmail, Exchange, list) every message enters at its own wake-up or
  arrival time, new mail first among equals. sim.model.qmgr.active gives them delivery agents (or
  none: a dead or refusing destination).
- The relay answers each recipient of a session as configured at the attempt's start (a
  session the relay's going down cut, active.serve: none, every recipient deferred)
  (rules.snapshot, relay.outcome; the upstream's rules.soft_bounce as configured then), after
  postgrey (rules.greylist) and with smtpd_hard_error_limit (rules.hard_error_hit, which
  throttles the destination from the end of the session).
  Where the relay has smtpd_soft_error_limit, each job also holds its agent for the relay
  smtpd's sleeps in the agent's cached session (sim.model.agents.Sessions, the recipients it
  rejects and accepts under the configuration at the scan).
- At the attempt's end (whole seconds) a message with deferred recipients is retried by its
  schedule (schedules.due, with the upstream configuration in force then) or expires; one that
  is kept is filed again under its tick (rules.tick_key) with only its deferred recipients,
  its stay counted for qshape and a delay warning sent when rules.delay_warning says so.
- qmgr's event loop (State.loop) remembers its last wake-up before the next tick and its
  first after it (_wakeups: the scan, new mail, the agents' ends), for rules.scan_start.
- run(...) runs ticks from io[I_T] on until one cannot run here (io[I_WHY], WHY): past the
  run's end; at or after io[I_STOP_AT] (a scheduled change: the caller reloads first) or
  after io[I_MAX] ticks (0: no limit); a tick
  after the clock's (io[I_NOW]) whose new mail may not all be here (the senders have handed
  over the mail arriving before io[I_HORIZON]); or one that needs room in the deferred queue,
  service times, room for delays or for the attempt log (io[I_NEED]). A tick that stops
  changes nothing. Results: io[I_POS] service times used, io[I_NEW] new mail taken from the
  front of Mail, io[I_DELAYS] delays written to the delay buffer, io[I_LOGGED] rows written
  to the Log (a Log of size 0 records nothing).
- Log rows are one per (attempt, recipient pending then), in the order computed, with
  the fields of ATTEMPT, the attempt stream (the log is an array of it).
Observation goes through sim.model.qmgr.observe; the rules are those of sim.model.qmgr.rules,
sim.model.schedules, sim.model.relay and sim.model.qmgr.site. No SimPy, nothing printed.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from sim.model import schedules
from sim.model.agents import Sessions
from sim.model.deferred import file_rows, slot_rows
from sim.model.metrics import bin_of
from sim.model.qmgr import retry_records, rules, site
from sim.model.qmgr.active import serve
from sim.model.qmgr.observe import LEFT, Attempts, record, stay
from sim.model.qmgr.queue_file import (
    ARRIVAL,
    CREATE,
    EXPIRED,
    FORCED,
    GREY_FIRST,
    GREY_OK,
    KIND,
    LAST_END,
    LAST_FAIL,
    LAST_NEXT,
    NRCPT,
    PAIR,
    QID,
    SIZE,
    TRIES,
    WARNED,
)
from sim.model.relay import BOUNCED, DEFERRED, SENT, outcome
from sim.model.sender import NULL


class Store(NamedTuple):
    """The deferred queue's arrays (sim.model.deferred.DeferredQueue)."""
    f: np.ndarray
    rcpt: np.ndarray
    head: np.ndarray
    tail: np.ndarray
    count: np.ndarray
    chunks: np.ndarray
    state: np.ndarray
    unit: int


class Mail(NamedTuple):
    """New mail handed over by the senders, in arrival order (queue files)."""
    f: np.ndarray
    rcpt: np.ndarray


class Relay(NamedTuple):
    """The relay as a step function of time (sim.model.relay.RelayTimeline): per
    configuration its start, local users, an unknown user's outcome and reject code (after
    soft_bounce); outages; postgrey (on, delay, retry_window, auto_whitelist_clients) and
    smtpd_hard_error_limit (0: none); smtpd_soft_error_limit (0: none) and
    smtpd_error_sleep_time."""
    times: np.ndarray
    users: np.ndarray
    unknown: np.ndarray
    code: np.ndarray
    down_start: np.ndarray
    down_end: np.ndarray
    grey: np.ndarray
    limit: int
    smtpd: np.ndarray = np.zeros(2)  # smtpd_soft_error_limit (0: none), smtpd_error_sleep_time


class Upstream(NamedTuple):
    """The upstream's schedule (rule and site numbers, packed parameters per configuration
    and their start times) and the configuration in force (cur): runner grid or not, interval
    R, slack, active-queue limit, delay_warning_time, the mean transaction time, whether
    scans start at the event loop's phase (rules.scan_start; else on the grid's seconds), and
    soft_bounce per configuration (bool); whether a scan reads its files in directory order
    (rules.scan_order) and the run's salt for rules.file_place; the connection cache (on,
    smtp_connection_cache_time_limit, smtp_connection_reuse_time_limit)."""
    rule: int
    site: int
    P: np.ndarray
    times: np.ndarray
    cur: int
    grid: bool
    R: int
    slack: int
    active_limit: int
    dwt: float
    mean: float
    phase: bool
    soft: np.ndarray
    hashed: bool = False
    salt: int = 0
    cache: np.ndarray = np.zeros(3)  # connection cache on (1/0), its time limit, reuse limit


# the attempt stream: one row per (attempt, recipient pending at it); the attempt log is an
# array of it (size 0: no log)
ATTEMPT = np.dtype([("qid", "i8"), ("rcpt", "i2"), ("user", "i4"), ("kind", "i1"),
                    ("size", "i8"), ("nrcpt", "i2"), ("arrival", "f8"), ("entry", "f8"),
                    ("start", "f8"), ("end", "f8"), ("outcome", "i1"), ("code", "i2"),
                    ("tries", "i2")])


class State(NamedTuple):
    """What persists between ticks besides the queue: the agents' free times, the site state
    (sim.model.qmgr.site), postgrey's first pass per hour and [whitelisted_at], qmgr's
    event loop [its last wake-up before the pending tick, its first at or after it], and the
    (recipient, sender) pairs' retry records (sim.model.qmgr.retry_records; no rows: every
    message keeps its own), the files' places in their directory by queue id (NaN, or
    beyond the array: rules.file_place) and the agents' SMTP sessions."""
    free: np.ndarray
    site: np.ndarray
    grey_hours: np.ndarray
    grey: np.ndarray
    loop: np.ndarray
    rec: np.ndarray = retry_records.new_records(0)  # none: every message keeps its own
    names: np.ndarray = np.empty(0)  # none: every file's place is hashed
    sessions: np.ndarray = np.zeros((0, 2))  # per agent: its session (agents.Sessions.state)


# io: in: the first tick, the clock, the position in the service times, the senders' horizon,
# the next scheduled change, at most this many ticks (0: any); out: why it stopped, new mail
# taken, delays and log rows written, what it needs (and the first tick not run, in I_T, and
# the position in the service times, in I_POS)
IO = ("t", "now", "pos", "horizon", "stop_at", "max_ticks", "why", "new", "delays", "logged",
      "need")
(I_T, I_NOW, I_POS, I_HORIZON, I_STOP_AT, I_MAX, I_WHY, I_NEW, I_DELAYS, I_LOGGED,
 I_NEED) = range(11)
WHY = ("done", "wait", "change", "room", "service", "delay_room", "log_room")
DONE, WAIT, CHANGE, ROOM, SERVICE, DELAY_ROOM, LOG_ROOM = range(7)


@njit(cache=True, nogil=True)  # the service-time thread draws meanwhile
def run(store, mail, buf, relay, up, obs, log, st, dbuf, io):
    """qmgr ticks from io[I_T] on (see the contract)."""
    width = store.rcpt.shape[1]
    R = up.R
    T = io[I_T]
    pos = np.int64(io[I_POS])
    p_in = 0
    cur = np.zeros(2, dtype=np.int64)  # delays written, log rows written
    why = DONE
    need = 0
    ran = 0
    while T <= obs.duration:
        if T >= io[I_STOP_AT] or (io[I_MAX] and ran >= io[I_MAX]):
            why = CHANGE
            break
        ran += 1
        if T > io[I_NOW] and T + R >= io[I_HORIZON]:
            why = WAIT
            break
        k = min(np.int64(T) // store.unit, store.head.size - 1)
        n_old = store.count[k]
        n_new = 0
        while p_in + n_new < mail.f.shape[0] and mail.f[p_in + n_new, ARRIVAL] <= T + R:
            n_new += 1
        nxt = np.int64((math.floor(T / R + 1e-9) + 1) * R)
        S = T
        if up.phase:
            S = rules.scan_start(T, st.loop[0], min(st.loop[1], mail.f[p_in, ARRIVAL]
                                                    if n_new else np.inf))
        if n_old or n_new:
            n = n_old + n_new
            if store.state[0] + n > store.f.shape[0] or store.state[1] + n > \
                    store.chunks.shape[0]:
                why, need = ROOM, n
                break
            if cur[0] + n * width > dbuf.size:
                why, need = DELAY_ROOM, cur[0] + n * width
                break
            if pos + n > buf.size:
                why, need = SERVICE, n
                break
            if log.size and cur[1] + n * width > log.size:
                why, need = LOG_ROOM, n * width
                break
            used, a = tick(store, Mail(mail.f[p_in:], mail.rcpt[p_in:]), n_new, k,
                           (T, S, float(nxt)), buf[pos:pos + n], relay, up, obs, log, st,
                           (dbuf, cur))
            pos += used
            p_in += n_new
            if up.phase:
                _wakeups(st, S, nxt, a.entry, a.end)
        elif up.phase:
            _wakeups(st, S, nxt, np.empty(0), np.empty(0))
        T = float(nxt)
    io[I_WHY], io[I_T], io[I_POS], io[I_NEW], io[I_DELAYS], io[I_LOGGED], io[I_NEED] = (
        why, T, pos, p_in, cur[0], cur[1], need)


@njit(cache=True, nogil=True)
def tick(store, mail, n_new, k, clock, service, relay, up, obs, log, st, sink):
    """One qmgr tick: slot k of the deferred queue and the first n_new rows of the new mail
    (see the contract); clock: (the tick T, its scan's start, the next tick); sink: (the
    delay buffer, [delays written, log rows written], advanced here). Returns (service times
    used, the tick's Attempts)."""
    T, S, nxt = clock
    dbuf, cur = sink
    inc_f, inc_r = mail.f, mail.rcpt
    qf, qr = store.f, store.rcpt
    idx = slot_rows(store.head, store.tail, store.count, store.chunks, k)
    held_back = np.empty(0, dtype=np.int64)
    pairs = st.rec.shape[0] > 0
    if pairs and idx.size:  # a pair's record holds its messages back: not tried
        P = up.P[0 if up.times.size == 1 else rules.snapshot(up.times, S)]
        snap0 = rules.snapshot(relay.times, S)
        expect = rules.soft_bounce(relay.unknown[snap0], up.soft[
            0 if up.times.size == 1 else rules.snapshot(up.times, S)]) == DEFERRED
        skip = _held_back(qf, idx, st.rec, P, np.int64(T), expect)
        held_back = idx[skip]
        idx = idx[~skip]
    n_old = idx.size
    n = n_old + n_new
    # the tick's queue files, gathered in queue order (f, r), and whether each was deferred
    width = qr.shape[1]
    f = np.empty((n, qf.shape[1]))
    r = np.empty((n, width), dtype=qr.dtype)
    old = np.zeros(n, dtype=np.bool_)
    entry = np.empty(n)
    # new mail whose arrival woke qmgr's loop for the scan (S) is fed with the scan's first
    # file (qmgr_loop alternates between the incoming and the deferred scan): ahead of it
    lead = 1 if (up.grid and n_new and n_old and inc_f[0, ARRIVAL] == S) else 0
    # qmgr_scan reads the files in directory order (up.hashed): the scan's p-th job is row
    # lead + perm[p] (the rows stay in filing order, read in runs)
    hashed = up.hashed and up.grid and n_old > 1
    place = np.empty(n_old if hashed else 0)
    if up.grid:
        for i in range(lead):
            _copy(inc_f, inc_r, i, f, r, i)
            entry[i] = S
        for i in range(n_old):
            _copy(qf, qr, idx[i], f, r, lead + i)
            old[lead + i], entry[lead + i] = True, S
            if hashed:  # read while the row is at hand
                place[i] = _place(f[lead + i, QID], st.names, up.salt)
        for i in range(lead, n_new):
            _copy(inc_f, inc_r, i, f, r, n_old + i)
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
                _copy(inc_f, inc_r, m, f, r, q)
            else:
                _copy(qf, qr, idx[m - n_new], f, r, q)
                old[q] = True
    perm = rules.scan_order(place) if hashed else np.empty(0, dtype=np.int64)
    n_scan = n_old + lead if up.grid else 0
    if relay.smtpd[0] > 0:  # the relay's smtpd_soft_error_limit: its sessions count errors
        start, end, vetoed, suspended, cut, used = serve(
            entry, n_scan, S, service, relay, up, st, _sessions(st, r, relay, up, S, perm, lead))
    else:
        start, end, vetoed, suspended, cut, used = serve(entry, n_scan, S, service, relay, up,
                                                         st)
    queue = np.arange(n if log.size else 0)  # the rows in queue order, for the log
    if perm.size:  # the jobs' times (and, where any is set, their flags) to their rows
        _to_rows(start, perm, lead)
        _to_rows(end, perm, lead)
        if lead + n_old > up.active_limit:
            _to_rows(entry, perm, lead)
        for y in (vetoed, suspended, cut):
            if y[lead:lead + n_old].any():
                _to_rows(y, perm, lead)
        if log.size:
            queue[lead:lead + n_old] = lead + perm
    # a sample in [T, entry) sees a scanned file still deferred (the loop's phase, a full
    # active queue): qshape counts it there; none before the first sample at or after T
    # (a bound a little low, so that no such sample is missed)
    sample = math.ceil(T / obs.interval) * obs.interval * (1.0 - 1e-12) - 1e-9
    for i in range(n):  # SERIES: deferred, deferred_recipients, as the files leave
        if old[i]:
            left = 0
            for c in range(width):
                left += r[i, c] != -2
            b = bin_of(entry[i], obs.rec_duration, obs.interval, obs.nbins)
            obs.acc[obs.rows[LEFT], b] -= 1.0
            obs.acc[obs.rows[LEFT + 1], b] -= left
            if up.grid and entry[i] > T and entry[i] > sample:
                stay(obs.qdiff, obs.edges, obs.interval, T, entry[i], f[i, ARRIVAL], 1)

    # the relay's answers, postgrey and the hard error limit
    out = np.empty((n, width), dtype=np.int8)
    held = np.zeros(n, dtype=np.bool_)
    hit = np.zeros(n, dtype=np.bool_)
    greyed = np.zeros(n if relay.grey[0] else 1, dtype=np.int64)
    new_pass = False
    hit_end = -np.inf
    one, one_up = relay.times.size == 1, up.times.size == 1
    snap = np.zeros(n, dtype=np.int64)  # the relay's configuration at each start
    for i in range(n):
        if not one:
            snap[i] = rules.snapshot(relay.times, start[i])
        users = relay.users[snap[i]]
        unknown = rules.soft_bounce(relay.unknown[snap[i]],
                                    up.soft[0 if one_up else rules.snapshot(up.times, start[i])])
        for c in range(width):
            u = r[i, c]
            out[i, c] = -1 if u == -2 else (DEFERRED if vetoed[i] or cut[i] else
                                            outcome(u, users, unknown))
        if relay.grey[0]:
            first, ok_now, fresh_pass, held[i] = rules.greylist(
                f[i, GREY_FIRST], f[i, GREY_OK] == 1, start[i], relay.grey[1], relay.grey[2],
                st.grey[0], not (vetoed[i] or cut[i]))
            f[i, GREY_FIRST] = first
            if ok_now:
                f[i, GREY_OK] = 1.0
            if held[i]:
                for c in range(width):
                    if out[i, c] == SENT:
                        out[i, c] = DEFERRED
                        greyed[i] += 1
                obs.acc[obs.grey_row, bin_of(start[i], obs.rec_duration, obs.interval,
                                             obs.nbins)] += greyed[i]
            if fresh_pass and relay.grey[3] and st.grey[0] == np.inf:
                h = min(np.int64(math.floor(start[i] / 3600.0)), st.grey_hours.size - 1)
                st.grey_hours[h] = min(st.grey_hours[h], start[i])
                new_pass = True
        if relay.limit and not (vetoed[i] or cut[i]):
            rejected = 0
            for c in range(width):
                rejected += out[i, c] == DEFERRED or out[i, c] == BOUNCED
            if rules.hard_error_hit(rejected, relay.limit):
                hit[i] = True
                for c in range(width):
                    if out[i, c] >= 0:
                        out[i, c] = DEFERRED
                obs.acc[obs.err_row, bin_of(start[i], obs.rec_duration, obs.interval,
                                            obs.nbins)] += 1.0
                hit_end = max(hit_end, end[i])
    if hit_end > -np.inf:  # the hard error limit's disconnections: site-level failures
        site.failed(st.site, up.site, up.P[up.cur], hit_end, hit.sum())
    if new_pass:
        _whitelist(st, int(relay.grey[3]))

    # per message: the outcome's tally and, with deferred recipients, the retry
    tally = np.zeros((n, 4), dtype=np.int64)
    soft = np.empty(n, dtype=np.bool_)
    now = np.zeros(n, dtype=np.int64)
    wake = np.zeros(n, dtype=np.int64)
    key = np.zeros(n, dtype=np.int64)
    slots = np.zeros(n, dtype=np.int64)
    expired = np.zeros(n, dtype=np.bool_)
    keep = np.zeros(n, dtype=np.bool_)
    host = np.zeros(n, dtype=np.bool_)  # deferred by the host's record only
    last = store.head.size - 1
    for i in range(n):
        for c in range(width):
            o = out[i, c]
            if o >= 0:
                tally[i, 0] += 1
                tally[i, 1 + o] += 1
        soft[i] = relay.code[snap[i]] < 500
        if tally[i, 2] > 0:
            now[i] = rules.now_of(end[i])
            P = up.P[0 if one_up else rules.snapshot(up.times, end[i])]
            if (vetoed[i] or cut[i]) and schedules.host_deferral(up.site):
                wake[i], give_up, host[i] = now[i], False, True
            elif pairs and f[i, PAIR] >= 0 and not (vetoed[i] or cut[i] or hit[i]):
                # the relay's 4xx to RCPT: the pair's record (a site failure: the message's)
                wake[i], give_up = retry_records.update(P, st.rec[np.int64(f[i, PAIR])],
                                                        np.int64(f[i, CREATE]), now[i])
            else:
                wake[i], give_up = schedules.due(
                    up.rule, P, np.int64(f[i, CREATE]), now[i], np.int64(f[i, TRIES]) + 1,
                    np.int64(f[i, LAST_FAIL]), np.int64(f[i, LAST_NEXT]), f[i, KIND] == NULL)
            if give_up or f[i, FORCED]:  # forced_expire (postsuper -e): at this deferral
                expired[i] = True
            else:
                keep[i] = True
                key[i] = rules.tick_key(wake[i], nxt, up.R, up.slack, up.grid)
                slots[i] = min(key[i] // store.unit, last)
        elif pairs and f[i, PAIR] >= 0 and (tally[i, 1] or tally[i, 3]):
            retry_records.forget(st.rec[np.int64(f[i, PAIR])])  # a 250 or 5xx to RCPT
    a = Attempts(f, entry, start, end, vetoed, suspended, cut, held, greyed, hit, tally, soft,
                 expired, keep, snap)
    delays = record(obs, a)
    dbuf[cur[0]:cur[0] + delays.size] = delays
    cur[0] += delays.size
    if log.size:
        cur[1] = _log(log, cur[1], a, r, out, relay, queue)

    # the survivors filed again, with only their deferred recipients (and the files a
    # pair's record held back, unchanged, for when it lets them through)
    if held_back.size:
        slots, keep = _hold(store, held_back, st.rec, up, T, nxt, slots, keep, obs)
    dest = file_rows(store.head, store.tail, store.count, store.chunks, store.state, slots, keep)
    for j in range(held_back.size):
        d, src = dest[n + j], held_back[j]
        for c in range(qf.shape[1]):
            qf[d, c] = qf[src, c]
        for c in range(width):
            qr[d, c] = qr[src, c]
    for i in range(n):
        if not keep[i]:
            continue
        d = dest[i]
        for c in range(f.shape[1]):
            qf[d, c] = f[i, c]
        for c in range(width):
            qr[d, c] = r[i, c] if out[i, c] == DEFERRED else -2
        qf[d, TRIES] += 1
        if not host[i]:
            qf[d, LAST_FAIL] = now[i]
            qf[d, LAST_NEXT] = wake[i]
        qf[d, LAST_END] = end[i]
        if rules.delay_warning(now[i], qf[d, CREATE], qf[d, KIND], qf[d, WARNED], up.dwt):
            obs.acc[obs.warn_row, bin_of(end[i], obs.rec_duration, obs.interval,
                                         obs.nbins)] += 1.0
            qf[d, WARNED] = 1
        # in the deferred queue until the tick takes it (no grid: until its own wake-up time,
        # when it enters the active queue)
        stay(obs.qdiff, obs.edges, obs.interval, end[i], key[i] if up.grid else wake[i],
             qf[d, ARRIVAL], 1)
    return used, a


@njit(cache=True)
def _held_back(qf, idx, rec, P, run, expect):
    """Which of a queue run's files (rows idx of qf) their pair's record holds back
    (retry_records.skipped; and, when the relay is expected to answer 4xx (expect), every
    message of a pair that the run does not try, retry_records.claims / tried)."""
    skip = np.zeros(idx.size, dtype=np.bool_)
    for j in range(idx.size):
        p = np.int64(qf[idx[j], PAIR])
        if p >= 0:
            skip[j] = retry_records.skipped(P, rec[p], np.int64(qf[idx[j], CREATE]), run)
            if expect and not skip[j]:
                retry_records.claims(rec[p], run, np.int64(qf[idx[j], QID]))
    if expect:
        for j in range(idx.size):
            p = np.int64(qf[idx[j], PAIR])
            if p >= 0 and not skip[j]:
                skip[j] = not retry_records.tried(P, rec[p], np.int64(qf[idx[j], CREATE]), run,
                                                  np.int64(qf[idx[j], QID]))
    return skip


@njit(cache=True)
def _hold(store, held_back, rec, up, T, nxt, slots, keep, obs):
    """The held-back files' ticks (retry_records.wake, after the run's failures wrote their
    records), appended to slots and keep; their wait in the deferred queue goes on."""
    n = slots.size
    s2 = np.empty(n + held_back.size, dtype=np.int64)
    k2 = np.zeros(n + held_back.size, dtype=np.bool_)
    s2[:n] = slots
    k2[:n] = keep
    P = up.P[0 if up.times.size == 1 else rules.snapshot(up.times, T)]
    last = store.head.size - 1
    now = np.int64(T)
    for j in range(held_back.size):
        row = held_back[j]
        w = retry_records.wake(P, rec[np.int64(store.f[row, PAIR])],
                               np.int64(store.f[row, CREATE]), now)
        key = rules.tick_key(w, nxt, up.R, up.slack, up.grid)
        s2[n + j] = min(key // store.unit, last)
        k2[n + j] = True
        stay(obs.qdiff, obs.edges, obs.interval, T, key, store.f[row, ARRIVAL], 1)
    return s2, k2


@njit(cache=True)
def _wakeups(st, S, nxt, entry, end):
    """qmgr's event loop after the tick whose scan it ran at S (rules.scan_start), in
    st.loop: its last wake-up before the next tick (nxt) and its first at or after it, from
    what wakes it: the scan itself, new mail (entry), delivery agents' statuses (the jobs'
    ends, the agents' last ends) and the first wake-up known from earlier ticks."""
    last, first = (max(S, st.loop[1]), np.inf) if st.loop[1] < nxt else (S, st.loop[1])
    for times in (entry, end, st.free):
        for e in times:
            if e < nxt:
                last = max(last, e)
            else:
                first = min(first, e)
    st.loop[0], st.loop[1] = last, first


@njit(cache=True, inline="always")
def _place(qid, names, salt):
    """A queue file's place in its directory (names by queue id where known, NaN not, else
    rules.file_place)."""
    q = np.int64(qid)
    return names[q] if q < names.size and names[q] == names[q] else rules.file_place(q, salt)


@njit(cache=True)
def _sessions(st, r, relay, up, S, perm, lead):
    """The tick's Sessions (sim.model.agents): per job in queue order the recipients the relay
    rejects and accepts (its configuration at the scan, S; greylisting aside), and the
    relay's and the upstream's session parameters."""
    n = r.shape[0]
    snap = rules.snapshot(relay.times, S)
    unknown = rules.soft_bounce(relay.unknown[snap], up.soft[
        0 if up.times.size == 1 else rules.snapshot(up.times, S)])
    rej = np.zeros(n, dtype=np.int64)
    acc = np.zeros(n, dtype=np.int64)
    for q in range(n):
        i = lead + perm[q - lead] if lead <= q < lead + perm.size else q
        for c in range(r.shape[1]):
            o = outcome(r[i, c], relay.users[snap], unknown)
            if o == SENT:
                acc[q] += 1
            elif o >= 0:
                rej[q] += 1
    par = np.array([relay.smtpd[0], relay.limit, relay.smtpd[1], up.cache[0], up.cache[1],
                    up.cache[2]])
    return Sessions(st.sessions, rej, acc, par)


@njit(cache=True)
def _to_rows(x, perm, lead):
    """x[lead + p], given per queue position p, moved to row lead + perm[p]."""
    block = x[lead:lead + perm.size].copy()
    for p in range(perm.size):
        x[lead + perm[p]] = block[p]


@njit(cache=True, inline="always")
def _copy(sf, sr, j, f, r, i):
    """Queue file j of (sf, sr) copied to row i of (f, r), element by element."""
    for c in range(sf.shape[1]):
        f[i, c] = sf[j, c]
    for c in range(sr.shape[1]):
        r[i, c] = sr[j, c]


@njit(cache=True)
def _whitelist(st, clients):
    """postgrey's auto-whitelist: the client is whitelisted from its `clients`-th pass,
    passes counted once per hour."""
    seen = st.grey_hours[st.grey_hours < np.inf]
    if seen.size >= clients:
        st.grey[0] = np.sort(seen)[clients - 1]


@njit(cache=True)
def _log(log, nl, a, r, out, relay, queue):
    """The tick's Attempts (a; recipients r, answers out) written to the log from row nl on,
    rows in queue order (queue: the rows in that order); returns the next free row."""
    f = a.f
    for k in range(f.shape[0]):
        i = queue[k]
        snap = a.snap[i]
        for c in range(r.shape[1]):
            u = r[i, c]
            if u == -2:
                continue
            o = out[i, c]
            row = log[nl]
            row.qid = np.int64(f[i, QID])
            row.rcpt = c
            row.user = u
            row.kind = np.int8(f[i, KIND])
            row.size = np.int64(f[i, SIZE])
            row.nrcpt = np.int16(f[i, NRCPT])
            row.arrival = f[i, ARRIVAL]
            row.entry = a.entry[i]
            row.start = a.start[i]
            row.end = a.end[i]
            row.outcome = EXPIRED if (a.expired[i] and o == DEFERRED) else o
            row.code = rules.reply_code(o, u, relay.users[snap], relay.code[snap], a.vetoed[i],
                                        a.suspended[i], a.held[i], a.hit[i], a.cut[i])
            row.tries = np.int16(f[i, TRIES] + 1)
            nl += 1
    return nl
