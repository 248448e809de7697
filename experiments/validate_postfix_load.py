"""Real Postfix under load vs relaysim, recipient by recipient (validate_postfix.py's `load`).

Question: when two delivery agents serve a relay that holds each transaction a second, with
messages of one to three recipients (some unknown and answered 450), null and forged senders,
delay warnings and the relay stopped for 30 s, does relaysim make the same attempts, at the
same times, with the same outcomes, DSNs and queue series as a real Postfix 3.7 upstream?

Public names: real_rows, attempt_start, real_dsns, workload_trace, arrivals,
transaction_times, sim_scenario, slow_sessions, sim_rows, stories, compare_load, classify,
scan_order, sim_scan_order, batch_places, live_places, warned_messages,
queue_series, live_sessions, attempt_kinds, validate_load, index_row, TARGET_QUEUE_MESSAGES.

Contract:
- The live run is validate_postfix.run() (the same lab, injection, `postqueue -j` sampling and
  saved files); this module reads only saved files (out/upstream.maillog, injected.csv,
  queue.csv, meta.json), so `--compare-only load` reruns it without Postfix.
- real_rows: one row per recipient per attempt (Postfix logs a delivery line per recipient),
  with the attempt's start: MAIL FROM (smtpd's arrival stamp) + delays= a + b (the delivery
  agent took it), narrowed by the whole-second log stamp of its end (attempt_start: Postfix
  logs delays= to two significant digits, so a retry's a is whole seconds); end = start +
  c + d.
- relaysim gets the live run's exact workload as a sim.model.trace.Trace (workload_trace): per
  message its arrival (MAIL FROM + delays= a of the first attempt: qmgr took it), its
  recipients in injection order (alice, bob, carol = relay users 0, 1, 2; unknownI_J = -1), its
  sender kind (null, forged.test = FORGED, else REAL). Recipient j of message i is the same
  recipient on both sides; its queue file's place in the deferred scans' order is the live
  log's (live_places: Postfix's directory order; validate_load also runs relaysim with its own
  hashed order, `own_scan_order`). The transaction time is constant at the median of the
  measured c + d of every transaction that reached the relay and ended normally; validate_load also
  runs relaysim with all of them (empirical) and with the constant raised from the relay's
  first slowed transaction on (slow_sessions(): the relay's error limits), and reports both.
  relaysim's attempts come from its attempt stream (on_attempts: entry, start, end, code).
- compare_load: per recipient (the outcome sequence and the number of attempts), per message
  (its number of attempts: delivery passes, and how it ended), attempt times (relaysim's start
  minus the real start, per (message, recipient, attempt) present on both sides), DSN counts
  (delay warnings, non-delivery notices, those to forged senders) and the active and deferred
  series (relaysim's 1 s series at the latest whole second at or before each real sample).
- Targets (issue 19's "Done when"): the same outcome and attempt count for every recipient and
  message; every attempt time within one queue_run_delay plus the measured transaction time
  (an attempt that ends one transaction time later on one side can fall after a deferred scan
  and be retried a scan later: that much is a path difference, not a model error); the active
  and deferred series within TARGET_QUEUE_MESSAGES at every settled sample (not in a scan's
  second nor just after an arrival: validate_postfix.in_flight); the DSN counts identical.
- classify: every recipient whose story differs or whose attempt times break the target, with
  the first attempt at which it differs (by half a scan or more) and why, by a named cause
  (documented simplifications and rules of the live qmgr) or "unexplained".
- Nothing here models mail: the diagnoses (warned_messages, batch_places) only explain the
  comparison's figures and are checked against the real log where they can be.
Errors: ValueError when the saved run does not fit (a recipient relaysim does not have, an
arrival before t_s 0).
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import postfix_lab as pl  # noqa: E402
import validate_postfix as vp  # noqa: E402

import sim  # noqa: E402
from sim.model.qmgr.engine import ATTEMPT  # noqa: E402
from sim.model.qmgr.queue_file import OUTCOMES  # noqa: E402
from sim.model.qmgr.rules import LOST, SUSPENDED  # noqa: E402
from sim.model.sender import FORGED, NULL, REAL  # noqa: E402
from sim.model.trace import Trace  # noqa: E402
from sim.postfix.maillog import directory_places  # noqa: E402
from sim.reports import plotting  # noqa: E402
from sim.results import write_atomic  # noqa: E402
from sim.studies.sweep import write_readme  # noqa: E402

TARGET_QUEUE_MESSAGES = 2  # active and deferred series within two messages (issue 19)
_DELAY_NOTICE = re.compile(r"(?P<qid>[0-9A-Za-z]+): sender delay notification: (?P<dsn>\w+)")


def _recipients(row: dict) -> list[str]:
    return row["recipient"].split(",")


def real_rows(out: Path, meta: dict) -> tuple[list[dict], dict[int, float]]:
    """(rows, expired): the real attempts, one row per recipient per attempt (message, rcpt:
    its index in the injected RCPT order, address, attempt, start_s, end_s, t_done_s, outcome,
    dsn, relay, reason), in log order; expired: {message: t_s of its expiry line}. Times are
    t_s (seconds since meta's t_s_origin_epoch)."""
    origin = meta["t_s_origin_epoch"]
    injected = {int(r["message"]): r for r in vp._read_csv(out / "injected.csv")}
    rows, expired = [], {}
    for a in pl.parse_maillog(out / "upstream.maillog", vp._year(meta["qmgr_start_epoch"])):
        if a.message < 0:
            continue
        if a.outcome == "expired":
            expired[a.message] = round(a.t_done - origin, 3)
            continue
        inj = injected[a.message]
        rcpts = _recipients(inj)
        if a.recipient not in rcpts:
            raise ValueError(f"message {a.message}: {a.recipient} was not injected")
        da, db, dc, dd = a.delays
        start = attempt_start(float(inj["t_mail_s"]), a.delays, a.t_done - origin)
        rows.append({"message": a.message, "rcpt": rcpts.index(a.recipient),
                     "address": a.recipient, "attempt": a.attempt, "start_s": round(start, 4),
                     "end_s": round(start + dc + dd, 4),
                     "t_active_s": round(a.t_active - origin, 3),
                     "t_done_s": round(a.t_done - origin, 3), "outcome": a.outcome,
                     "dsn": a.dsn, "relay": a.relay, "reason": a.reason,
                     "delays_a": da, "delays_b": db, "c_plus_d": round(dc + dd, 4)})
    return rows, expired


def _ulp(v: float) -> float:
    """Half a unit of the last digit Postfix logs for a delays= value: two significant
    digits, the integer part always whole (0.0082, 0.83, 1.2, 29, 141)."""
    if v <= 0:
        return 0.0
    if v >= 10:
        return 0.5
    return 0.5 * 10.0 ** (math.floor(math.log10(v)) - 1)


def attempt_start(t_mail: float, delays: tuple, t_logged: float) -> float:
    """When the delivery agent took the attempt, in t_s: the interval MAIL FROM + a + b
    (each to the precision Postfix logs, _ulp) intersected with the one the log stamp allows
    (the line is logged in the whole second t_logged when the agent has finished: start in
    [t_logged - (c + d), t_logged + 1 - (c + d))); its midpoint. With a + b under 10 s the
    first is the narrower; a retry's a counts from the arrival, so it is whole seconds and
    the log stamp narrows it to a second."""
    a, b, c, d = delays
    cd, u_cd = c + d, _ulp(c) + _ulp(d)
    lo1, hi1 = t_mail + a + b - _ulp(a) - _ulp(b), t_mail + a + b + _ulp(a) + _ulp(b)
    lo2, hi2 = t_logged - cd - u_cd, t_logged + 1 - cd + u_cd
    lo, hi = max(lo1, lo2), min(hi1, hi2)
    # disjoint (a stamp written late): the log stamp's interval, which Postfix wrote last
    return (lo + hi) / 2 if lo <= hi else (lo2 + hi2) / 2


def real_dsns(out: Path, meta: dict) -> dict:
    """The upstream's DSNs for injected mail: delay warnings, non-delivery notices, and of
    these the ones to forged senders (backscatter), counted from its bounce/defer lines."""
    path = out / "upstream.maillog"
    year = vp._year(meta["qmgr_start_epoch"])
    qids = {a.queue_id: a.message for a in pl.parse_maillog(path, year) if a.message >= 0}
    senders = {int(r["message"]): r["sender"] for r in vp._read_csv(out / "injected.csv")}
    ndn = [qids[q] for q in pl.nondelivery_notices(path, year) if q in qids]
    delay = {m["qid"] for ln in pl.read_log(path, year) if ln.service in ("bounce", "defer")
             and (m := _DELAY_NOTICE.match(ln.text)) and m["qid"] in qids}
    return {"delay": len(delay), "nondelivery": len(ndn),
            "backscatter": sum(senders[m].endswith("@" + pl.FORGED_DOMAIN) for m in ndn)}


def _kind(sender: str) -> int:
    return NULL if not sender else FORGED if sender.endswith("@" + pl.FORGED_DOMAIN) else REAL


def workload_trace(injected: list[dict], arrival: dict[int, float]) -> Trace:
    """The live run's mail as relaysim's Trace, message i = injected message i (arrivals in
    injection order are non-decreasing: ValueError otherwise)."""
    rows = sorted(injected, key=lambda r: int(r["message"]))
    t = np.array([arrival[int(r["message"])] for r in rows])
    if t.size and (t[0] < 0 or (np.diff(t) < 0).any()):
        raise ValueError("arrivals: not non-decreasing from t_s 0 in injection order")
    width = max(len(_recipients(r)) for r in rows)
    rcpt = np.full((len(rows), width), -2, dtype=np.int32)
    for i, r in enumerate(rows):
        for j, addr in enumerate(_recipients(r)):
            user = addr.split("@")[0]
            rcpt[i, j] = pl.KNOWN_USERS.index(user) if user in pl.KNOWN_USERS else -1
    kind = np.array([_kind(r["sender"]) for r in rows], dtype=np.int8)
    return Trace(t, rcpt, kind, np.full(len(rows), 500))


def arrivals(injected: list[dict], rows: list[dict]) -> dict[int, float]:
    """Each message's arrival at qmgr: MAIL FROM + delays= a of its first attempt."""
    a = {r["message"]: r["delays_a"] for r in rows if r["attempt"] == 1}
    return {int(r["message"]): round(float(r["t_mail_s"]) + a[int(r["message"])], 6)
            for r in injected}


def transaction_times(rows: list[dict]) -> list[float]:
    """c + d of every attempt that reached the relay and ended with its reply (not a refused
    connection, relay=none, nor one cut by the outage, dsn 4.4.2), once per transaction
    (a transaction's recipients share one delays=)."""
    seen = {}
    for r in rows:
        if r["relay"] != "none" and r["dsn"] != "4.4.2":
            seen[(r["message"], r["attempt"], r["start_s"])] = r["c_plus_d"]
    return sorted(seen.values())


def sim_scenario(meta: dict, injected: list[dict], times: list[float], duration: float,
                 shape: str = "constant", slowed: tuple[float, float] | None = None,
                 sessions: bool = True) -> sim.Scenario:
    """validate_postfix.sim_scenario's (postconf values, outage) with the measured transaction
    times: `constant` at their median (smtp_transaction_time_distribution = constant), or
    `empirical` (all of them, resampled, at their mean). `slowed` = (t_s, seconds): a
    [[changes]] entry setting the constant transaction time to `seconds` from t_s on (the
    what-if of the relay's error limits as a mean: slow_sessions()). `sessions`: the relay's
    error limits (validate_postfix.RELAY_ERROR_LIMITS) in the upstream's cached sessions,
    else none (smtpd_soft_error_limit = 0: nothing counted across transactions)."""
    t = np.zeros(len(injected))  # the senders are replaced by the trace
    if shape == "constant":
        up = {"smtp_transaction_time": vp._s(float(np.median(times))),
              "smtp_transaction_time_distribution": "constant"}
    else:
        up = {"smtp_transaction_time": vp._s(float(np.mean(times))),
              "smtp_transaction_time_distribution": "empirical",
              "smtp_transaction_times": [vp._s(x) for x in times]}
    changes = [{"at": vp._s(slowed[0]), "upstream": {"smtp_transaction_time": vp._s(slowed[1])}}
               ] if slowed else []
    return vp.sim_scenario(meta, injected, t, duration, upstream=up, changes=changes,
                           relay=None if sessions else {"smtpd_soft_error_limit": 0})


def slow_sessions(rows: list[dict], factor: float = 1.5) -> dict:
    """When the relay's error limits began to slow transactions: the first real transaction
    whose c + d exceeds factor x the median, and how many did. Postfix's smtpd delays every
    reply by smtpd_error_sleep_time (1s) once a session has had smtpd_soft_error_limit (10)
    errors without delivering mail; the upstream's smtp client reuses its connections
    (smtp_connection_cache_on_demand), so a session carrying only unknown recipients (450 to
    each RCPT) reaches the limit and its transactions take several seconds."""
    seen = {}
    for r in rows:
        if r["relay"] != "none" and r["dsn"] != "4.4.2":
            seen[(r["message"], r["attempt"], r["start_s"])] = r["c_plus_d"]
    med = float(np.median(list(seen.values())))
    slow = sorted(t for (_, _, t), cd in seen.items() if cd > factor * med)
    after = [cd for (_, _, t), cd in seen.items() if slow and t >= slow[0]]
    return {"first_t_s": slow[0] if slow else None, "transactions": len(slow),
            "of": len(seen), "threshold_s": round(factor * med, 4),
            "mean_from_first_s": round(float(np.mean(after)), 4) if after else None,
            "transactions_from_first": len(after)}


def sim_rows(batches: list[np.ndarray]) -> tuple[list[dict], dict[int, float]]:
    """relaysim's attempt stream (simulate's on_attempts batches, sim.model.qmgr.ATTEMPT)
    as real_rows' rows (message, rcpt, attempt, entry_s: into the active queue, start_s,
    end_s, code: the reply code logged, sim.model.qmgr.rules' 0 refused, SUSPENDED, LOST;
    outcome), attempts numbered per recipient in time order; an attempt after which
    the message expired is a deferred row, the expiry in `expired` {message: t_s}."""
    a = np.concatenate(batches) if batches else np.empty(0, dtype=ATTEMPT)
    rows, count, expired = [], Counter(), {}
    for i in np.lexsort((a["start"], a["rcpt"], a["qid"])):
        m, j, o = int(a["qid"][i]), int(a["rcpt"][i]), OUTCOMES[int(a["outcome"][i])]
        count[m, j] += 1
        if o == "expired":
            expired[m] = float(a["start"][i])
        rows.append({"message": m, "rcpt": j, "attempt": count[m, j],
                     "entry_s": float(a["entry"][i]), "start_s": float(a["start"][i]),
                     "end_s": float(a["end"][i]), "code": int(a["code"][i]),
                     "outcome": "deferred" if o == "expired" else o})
    return rows, expired


def stories(rows: list[dict], expired: dict[int, float]) -> dict[tuple[int, int], list[str]]:
    """{(message, rcpt): its outcomes in attempt order, then 'expired' if it expired}."""
    out: dict = {}
    for r in sorted(rows, key=lambda r: (r["message"], r["rcpt"], r["attempt"])):
        out.setdefault((r["message"], r["rcpt"]), []).append(r["outcome"])
    for (m, _), seq in out.items():
        if m in expired and seq[-1] == "deferred":
            seq.append("expired")
    return out


def _final(seq: list[str]) -> str:
    return seq[-1] if seq else "none"


def compare_load(real: list[dict], real_exp: dict, ours: list[dict], our_exp: dict,
                 target_dt: float) -> dict:
    """Recipient by recipient and message by message (see the module contract)."""
    rs, ss = stories(real, real_exp), stories(ours, our_exp)
    keys = sorted(set(rs) | set(ss))
    same_story = [k for k in keys if rs.get(k) == ss.get(k)]
    n_att = {k: (sum(o != "expired" for o in rs.get(k, [])),
                 sum(o != "expired" for o in ss.get(k, []))) for k in keys}
    msgs = sorted({k[0] for k in keys})

    def passes(st, m):
        return max(sum(o != "expired" for o in seq) for k, seq in st.items() if k[0] == m)

    def ending(st, m):
        return tuple(sorted(_final(seq) for k, seq in st.items() if k[0] == m))

    sim_by = {(r["message"], r["rcpt"], r["attempt"]): r for r in ours}
    pairs = [(r, sim_by[k]) for r in real
             if (k := (r["message"], r["rcpt"], r["attempt"])) in sim_by]
    dt = np.array([s["start_s"] - r["start_s"] for r, s in pairs])
    first = np.array([r["attempt"] == 1 for r, _ in pairs], dtype=bool)
    ok = np.abs(dt) <= target_dt + 1e-9
    finals_r = Counter(_final(rs.get(k, [])) for k in keys)
    finals_s = Counter(_final(ss.get(k, [])) for k in keys)
    diff_att = Counter(n_att[k][1] - n_att[k][0] for k in keys)
    return {
        "recipients": len(keys), "recipients_same_story": len(same_story),
        "recipients_same_final_outcome": sum(_final(rs.get(k, [])) == _final(ss.get(k, []))
                                             for k in keys),
        "recipients_same_attempt_count": sum(a == b for a, b in n_att.values()),
        "attempt_count_sim_minus_real": {str(k): v for k, v in sorted(diff_att.items())},
        "final_outcomes_real": dict(finals_r), "final_outcomes_sim": dict(finals_s),
        "messages": len(msgs),
        "messages_same_attempt_count": sum(passes(rs, m) == passes(ss, m) for m in msgs),
        "messages_same_ending": sum(ending(rs, m) == ending(ss, m) for m in msgs),
        "messages_expired_real": len(real_exp), "messages_expired_sim": len(our_exp),
        "attempt_rows_real": len(real), "attempt_rows_sim": len(ours),
        "attempt_rows_matched": len(pairs),
        "target_dt_s": target_dt,
        "dt_s": vp._quantiles(dt), "dt_first_s": vp._quantiles(dt[first]),
        "dt_retry_s": vp._quantiles(dt[~first]),
        "rows_within_target": int(ok.sum()),
        "first_attempts_within_target": int(ok[first].sum()),
        "retries_within_target": int(ok[~first].sum()),
    }


def classify(real: list[dict], real_exp: dict, ours: list[dict], our_exp: dict,
             target_dt: float, outage: tuple[float, float], dead_s: float,
             slow_from: float | None = None, busy=None,
             apart_s: float | None = None) -> list[dict]:
    """Every recipient whose story differs or one of whose attempt starts is further apart
    than target_dt, with the attempt at which it first differs and its cause. The first
    difference is the first attempt with another outcome, made on one side only, or whose
    start is `apart_s` or more apart (half a scan interval: one side took it a scan later,
    which need not break the target yet but sets the path; default target_dt). The cause is
    read at that attempt (the real one there, or the last before it) in this order:
    - "session cut by the outage": Postfix lost the connection (dsn 4.4.2, reached relay);
    - "relaysim suspended it before the destination died": relaysim's attempt there (or the
      one before) is logged SUSPENDED (the destination dead) at a time before the outage
      began: a relaysim bug (the report of validate_load, note `suspended_before_outage`);
    - "relay error limits on cached sessions": Postfix's attempt starts after the relay
      began to slow its replies (slow_from, slow_sessions()): relaysim models the error
      count per delivery agent's session (sim.model.agents.Sessions), Postfix's cached
      sessions go to whichever agent asks next, so which transaction is slowed can differ;
    - "place in the scan's batch": a retry that both sides took into the active queue with
      the same scan (relaysim's entry and Postfix's `(queue active)` second at most a second
      apart) and started at another time: its place in the batch for the two agents differs.
      Postfix's deferred scan takes files in its directory order (qmgr_scan.c,
      mail_scan_dir_next), relaysim in the order of their places (the live log's,
      live_places, or its own hashed ones; scan_order() and sim_scan_order() measure both);
    - "previous attempt ended in another second": a retry taken by another scan, the attempt
      before it having ended, on the two sides, in different whole seconds (Postfix's logged
      second, relaysim's end): the backoff counts from that second. Which second an attempt
      ends in depends on its place in the agents' queue (as above);
    - "deferred without a connection": Postfix deferred it with relay=none (refused, or the
      destination dead);
    - "outage and dead destination": the attempt (either side's) starts in the outage or the
      dead-destination time after it (outage end + dead_s);
    - "after a diverged attempt of the same message": another recipient of the message
      diverged at an earlier attempt;
    - "behind mail the outage moved (agents busy)": (_knock_on) a start apart with the same
      outcomes so far, after the first outage-caused difference, at a time when either
      side's active queue held mail (`busy(t)`), so that its wait depends on what entered
      the active queue before it: an inference, not a proof;
    - "unexplained" otherwise."""
    apart = target_dt if apart_s is None else apart_s
    rs, ss = stories(real, real_exp), stories(ours, our_exp)
    by_r = {(r["message"], r["rcpt"], r["attempt"]): r for r in real}
    by_s = {(r["message"], r["rcpt"], r["attempt"]): r for r in ours}
    lo, hi = outage[0], outage[1] + dead_s

    def first_difference(k, seq_r, seq_s, limit):
        for n in range(1, max(len(seq_r), len(seq_s)) + 1):
            a, b = by_r.get((*k, n)), by_s.get((*k, n))
            o_r = seq_r[n - 1] if n <= len(seq_r) else None
            o_s = seq_s[n - 1] if n <= len(seq_s) else None
            if o_r == o_s == "expired" and n == len(seq_r) == len(seq_s):
                continue  # the stories' expiry marker: no attempt of its own on either side
            if o_r != o_s or a is None or b is None or \
                    abs(b["start_s"] - a["start_s"]) > limit + 1e-9:
                return n
        return None

    first_of_msg: dict = {}
    diverged: list[tuple] = []
    for k in sorted(set(rs) | set(ss)):
        seq_r, seq_s = rs.get(k, []), ss.get(k, [])
        if first_difference(k, seq_r, seq_s, target_dt) is None:
            continue
        n = first_difference(k, seq_r, seq_s, min(apart, target_dt) - 1e-6)
        a, b = by_r.get((*k, n)) or by_r.get((*k, n - 1)), by_s.get((*k, n))
        times = [x["start_s"] for x in (a, b) if x is not None]
        same_scan = (n > 1 and a is not None and b is not None and "entry_s" in b
                     and a is by_r.get((*k, n)) and seq_r[n - 1] == seq_s[n - 1]
                     and abs(math.floor(b["entry_s"]) - math.floor(a["t_active_s"])) <= 1)
        early = [x for x in (b, by_s.get((*k, n - 1))) if x is not None
                 and x.get("code") == SUSPENDED and x["start_s"] < outage[0]]
        if a is not None and a["dsn"] == "4.4.2" and a["relay"] != "none":
            cause = "session cut by the outage"
        elif early:
            cause = "relaysim suspended it before the destination died"
        elif slow_from is not None and a is not None and a["start_s"] >= slow_from:
            cause = "relay error limits on cached sessions"
        elif same_scan:
            cause = "place in the scan's batch"
        elif n > 1 and _ended_apart(by_r.get((*k, n - 1)), by_s.get((*k, n - 1))):
            cause = "previous attempt ended in another second"
        elif a is not None and a["relay"] == "none":
            cause = "deferred without a connection"
        elif any(lo <= t <= hi for t in times):
            cause = "outage and dead destination"
        elif k[0] in first_of_msg and first_of_msg[k[0]] < n:
            cause = "after a diverged attempt of the same message"
        else:
            cause = "unexplained"
        first_of_msg[k[0]] = min(first_of_msg.get(k[0], n), n)
        diverged.append((min(times) if times else math.inf, cause, k, n, a, b))
    return _knock_on(diverged, rs, ss, lo, busy)


def _ended_apart(prev_real: dict | None, prev_sim: dict | None) -> bool:
    """classify()'s test: the previous attempt ended in different whole seconds."""
    if prev_real is None or prev_sim is None or "end_s" not in prev_sim:
        return False
    return math.floor(prev_sim["end_s"]) != math.floor(prev_real["t_done_s"])


def scan_order(out: Path, meta: dict) -> dict:
    """How the live deferred scans ordered their files: for every pair of retries that entered
    the active queue in the same whole second (qmgr's `(queue active)` lines of a message's
    second and later entries, in log order), whether the earlier-arrived message (the lower
    injected index) went first; and the evidence for a fixed directory order: the pairs that
    two or more scans took together, and how many of them every such scan took in the same
    order."""
    by_second = _live_batches(out, meta)
    pairs, inversions = _inversions(by_second.values())
    seen: dict[tuple, list] = {}
    for order in by_second.values():
        for i in range(len(order)):
            for j in range(i + 1, len(order)):
                a, b = order[i], order[j]
                if a != b:
                    seen.setdefault((min(a, b), max(a, b)), []).append(a < b)
    met = [v for v in seen.values() if len(v) > 1]
    return {"scan_seconds": sum(len(o) > 1 for o in by_second.values()), "pairs": pairs,
            "pairs_out_of_arrival_order": inversions, "pairs_met_twice_or_more": len(met),
            "same_order_every_time": sum(len(set(v)) == 1 for v in met)}


def _inversions(orders) -> tuple[int, int]:
    """(pairs, pairs out of arrival order) over batches of injected indices in scan order."""
    pairs = inversions = 0
    for order in orders:
        for i in range(len(order)):
            for j in range(i + 1, len(order)):
                pairs += 1
                inversions += order[i] > order[j]
    return pairs, inversions


def warned_messages(rows: list[dict], injected: list[dict], arrival: dict[int, float],
                    delay_warning_time: float) -> set[int]:
    """A diagnosis of the delay-warning counts, not a model: the messages with a non-null
    sender that one side deferred in a second at least floor(arrival) + delay_warning_time
    - 1 (the rule of mta-semantics.md section 8). On the real rows it must give the messages
    Postfix logged `sender delay notification` for (checked in validate_load); on relaysim's
    it tells which messages its extra or missing warnings belong to."""
    null = {int(r["message"]) for r in injected if not r["sender"]}
    return {r["message"] for r in rows if r["outcome"] == "deferred" and r["message"] not in null
            and math.floor(r["start_s"]) >= math.floor(arrival[r["message"]])
            + delay_warning_time - 1}


def _live_batches(out: Path, meta: dict) -> dict[int, list[int]]:
    """{epoch second: injected indices of the retries qmgr took into the active queue in it,
    in log order} (a message's second and later `(queue active)` lines)."""
    return _live_scans(out, meta)[0]


def _live_scans(out: Path, meta: dict) -> tuple[dict[int, list[int]], dict[int, str]]:
    """(_live_batches, {injected index: its queue id})."""
    year = vp._year(meta["qmgr_start_epoch"])
    index: dict[str, int] = {}
    entries: Counter = Counter()
    by_second: dict[int, list[int]] = {}
    for ln in pl.read_log(out / "upstream.maillog", year):
        if ln.service == "cleanup" and (m := pl._MSGID.match(ln.text)):
            k = pl._MSGID_INDEX.match(m["msgid"])
            if k:
                index[m["qid"]] = int(k.group(1))
        elif ln.service == "qmgr" and (m := pl._ACTIVE.match(ln.text)) and m["qid"] in index:
            entries[m["qid"]] += 1
            if entries[m["qid"]] > 1:
                by_second.setdefault(int(ln.t), []).append(index[m["qid"]])
    return by_second, {i: q for q, i in index.items()}


def live_places(out: Path, meta: dict, n: int) -> np.ndarray:
    """The n injected messages' places in the live deferred scans' order
    (sim.postfix.maillog.directory_places on the log's scans: Postfix's directory order, as
    relaysim's replay of a log takes it)."""
    by_second, qid = _live_scans(out, meta)
    return directory_places([qid.get(i, str(i)) for i in range(n)], list(by_second.values()))


def batch_places(out: Path, meta: dict, ours: list[dict], diffs: list[dict]) -> dict:
    """A check of the `place in the scan's batch` differences: for each, its place in the
    live scan's batch (its rank in the log's order of that scan's seconds, as a share of the
    batch) and in relaysim's (its rank by start among the retries of the same entry time);
    consistent when the side that placed it later started it later."""
    origin = meta["t_s_origin_epoch"]
    live = _live_batches(out, meta)
    sim_batches: dict[float, set] = {}
    for r in ours:  # one entry per message and scan, whichever recipients it still has
        if r["attempt"] > 1:
            sim_batches.setdefault(round(r["entry_s"], 6), set()).add((r["start_s"],
                                                                       r["message"]))
    consistent = checked = 0
    for d in diffs:
        if d["cause"] != "place in the scan's batch":
            continue
        m = d["message"]
        scan = [sec for sec, ms in live.items() if m in ms
                and abs(sec - origin - d["real_t_s"]) < 60]
        batch = [x for sec in sorted(scan) for x in live[sec]
                 if min(scan) <= sec <= min(scan) + 1] if scan else []
        sim = next((sorted(b) for b in sim_batches.values()
                    if any(x[1] == m and abs(x[0] - d["sim_t_s"]) < 1e-3 for x in b)), None)
        if not batch or sim is None or m not in batch:
            continue
        checked += 1
        real_place = batch.index(m) / len(batch)
        sim_place = [x[1] for x in sim].index(m) / len(sim)
        consistent += (real_place > sim_place) == (d["real_t_s"] > d["sim_t_s"])
    return {"checked": checked, "consistent": consistent}


def sim_scan_order(ours: list[dict]) -> dict:
    """scan_order() of relaysim's run: its retries grouped by the scan that took them (the
    same active-queue entry time), in the order its agents started them (FIFO: its queue
    order), one per message."""
    first: dict[tuple, tuple] = {}
    for r in ours:
        if r["attempt"] > 1:
            k = (r["message"], r["attempt"])
            if k not in first or r["start_s"] < first[k][1]:
                first[k] = (round(r["entry_s"], 6), r["start_s"], r["message"])
    batches: dict[float, list] = {}
    for entry, start, m in first.values():
        batches.setdefault(entry, []).append((start, m))
    pairs, inversions = _inversions([m for _, m in sorted(b)] for b in batches.values())
    return {"scans": sum(len(b) > 1 for b in batches.values()), "pairs": pairs,
            "pairs_out_of_arrival_order": inversions}


def _knock_on(diverged: list[tuple], rs: dict, ss: dict, outage_start: float,
              busy) -> list[dict]:
    """classify()'s rows, an unexplained timing-only difference after the first outage-caused
    one, at a time both active queues held mail, renamed as the knock-on it is."""
    moved = [t for t, cause, *_ in diverged if cause in (
        "outage and dead destination", "session cut by the outage",
        "deferred without a connection")]
    first = min(moved, default=math.inf)
    out = []
    for t, cause, k, n, a, b in diverged:
        seq_r, seq_s = rs.get(k, []), ss.get(k, [])
        timing_only = a is not None and b is not None and seq_r[:n] == seq_s[:n]
        if cause == "unexplained" and timing_only and t > first and busy is not None \
                and busy(t):
            cause = "behind mail the outage moved (agents busy)"
        out.append({"message": k[0], "rcpt": k[1], "at_attempt": n, "cause": cause,
                    "real": " ".join(seq_r), "sim": " ".join(seq_s),
                    "real_t_s": None if a is None else a["start_s"],
                    "sim_t_s": None if b is None else round(b["start_s"], 3),
                    "real_reason": None if a is None else a["reason"][:80]})
    return out


def queue_series(queue: list[dict], res: sim.Results, flight=None) -> dict:
    """Real `postqueue -j` active and deferred counts against relaysim's 1 s series at the
    latest whole second at or before each sample: error in messages, over every sample and
    over the settled ones (`flight` False: validate_postfix.in_flight(), a sample in a scan
    second or just after an arrival may catch mail in flight that relaysim has settled, or
    a scan relaysim starts later in that second). The target is judged on settled samples."""
    t = np.array([float(r["t_s"]) for r in queue])
    settled = ~np.asarray(flight if flight is not None else np.zeros(t.size), dtype=bool)
    ts = res.timeseries
    j = np.clip(np.searchsorted(ts["t_s"], t, side="right") - 1, 0, ts["t_s"].size - 1)
    out = {"samples": int(t.size), "samples_settled": int(settled.sum()), "t_s": t,
           "settled": settled}
    beyond = np.zeros(t.size, dtype=bool)
    for name in ("active", "deferred"):
        real = np.array([int(r[name]) for r in queue], dtype=float)
        ours = np.asarray(ts[name], dtype=float)[j]
        err = np.abs(ours - real)
        worst = int(np.argmax(np.where(settled, err, -1)))
        out[name] = {"peak_real": int(real.max()), "peak_sim": int(ours.max()),
                     "max_abs_error": int(err[settled].max()) if settled.any() else 0,
                     "max_abs_error_t_s": float(t[worst]),
                     "max_abs_error_all_samples": int(err.max()),
                     "mean_abs_error": float(err[settled].mean()) if settled.any() else 0.0,
                     "samples_within_target": int((err[settled]
                                                   <= TARGET_QUEUE_MESSAGES).sum()),
                     "real": real, "sim": ours}
        beyond |= settled & (err > TARGET_QUEUE_MESSAGES)
    out["first_t_s_beyond_target"] = float(t[beyond][0]) if beyond.any() else None
    return out


def _public(q: dict) -> dict:
    return {k: ({kk: vv for kk, vv in v.items() if kk not in ("real", "sim")}
                if isinstance(v, dict) else v) for k, v in q.items()
            if k not in ("t_s", "settled", "slow_from")}


def live_sessions(out: Path, meta: dict, rows: list[dict], limit: int, queue: list[dict]
                  ) -> dict:
    """What the live run shows of the agents and the relay's sessions: the longest wait for
    an agent (delays= b), the `postqueue -j` samples with more active messages than the
    concurrency limit (mail waiting for an agent), the most transactions one cached
    connection carried (conn_use=) and the relay's `too many errors` disconnects."""
    text = (out / "upstream.maillog").read_text()
    uses = [int(x) for x in re.findall(r"conn_use=(\d+)", text)]
    return {"max_wait_for_agent_s": max(r["delays_b"] for r in rows),
            "samples_active_above_limit": sum(int(r["active"]) > limit for r in queue),
            "max_conn_use": max(uses, default=1),
            "relay_too_many_errors": (out / "relay.maillog").read_text().count(
                "too many errors")}


def _outage(meta: dict) -> tuple[float, float]:
    ev = {e["event"]: e for e in meta["events"]}
    return ev["relay_stop"]["t_s_begin"], ev["relay_start"]["t_s"]


def validate_load(out: Path, seed: int = 1) -> dict:
    """relaysim on the saved load run in `out`: comparison.json, CSVs, figures, README."""
    meta = json.loads((out / "meta.json").read_text())
    injected = vp._read_csv(out / "injected.csv")
    queue = vp._read_csv(out / "queue.csv")
    real, real_exp = real_rows(out, meta)
    times = transaction_times(real)
    arrival = arrivals(injected, real)
    # relaysim runs on past the live run's end (its queue empty) by a maximal backoff and two
    # scans, so that mail it still holds there finishes its story (and counts as different)
    timing = meta["scenario"]["timing"]
    duration = math.ceil(max(max(float(r["t_s"]) for r in queue),
                             max(r["end_s"] for r in real))) + vp._seconds(
        timing["maximal_backoff_time"]) + 2 * vp._seconds(timing["queue_run_delay"])
    trace = workload_trace(injected, arrival)._replace(
        name=live_places(out, meta, len(injected)))
    outage = _outage(meta)
    slow = slow_sessions(real)
    dsn_real = real_dsns(out, meta)
    runs = {shape: _run(meta, injected, queue, real, real_exp, times, duration, trace, seed,
                        outage, slow, shape) for shape in ("constant", "empirical")}
    runs["own_order"] = _run(meta, injected, queue, real, real_exp, times, duration,
                             trace._replace(name=None), seed, outage, slow, "constant")
    runs["no_sessions"] = _run(meta, injected, queue, real, real_exp, times, duration, trace,
                               seed, outage, slow, "constant", sessions=False)
    if slow["first_t_s"] is not None:
        runs["slowed"] = _run(meta, injected, queue, real, real_exp, times, duration, trace,
                              seed, outage, slow, "constant",
                              (slow["first_t_s"], slow["mean_from_first_s"]), sessions=False)
    scenario, res, ours, cmp, diffs, q, dsn_sim = runs["constant"]
    dsn = {"real": dsn_real, "sim": dsn_sim}
    relay_real = [r for r in vp._read_csv(out / "rejects.csv")] if (
        out / "rejects.csv").exists() else []
    # "delivery temporarily suspended: connect to ...: Connection refused" is a suspension
    real_none = Counter("suspended" if "suspended" in r["reason"] else "refused"
                        if "refused" in r["reason"] else "other"
                        for r in real if r["relay"] == "none")
    tt = np.array(times)
    summary = {
        "scenario": "load", "postfix_version": meta["postfix_version"],
        "sim_seed": seed, "sim_provenance": res.provenance,
        "smtp_transaction_time_s": {**vp._quantiles(tt),
                                    "cv": float(tt.std() / tt.mean()) if tt.size else 0.0},
        "outage_t_s": list(outage),
        "compare": cmp, "queue": _public(q), "dsn": dsn,
        "relay_rejects": {"real": len(relay_real),
                          "sim": res.summary["relay"]["rejects_4xx"]},
        "real_deferred_without_relay": dict(real_none),
        "cut_sessions_also_cut_in_sim": _also_cut(real, ours),
        "attempt_kinds": attempt_kinds(real, ours),
        "suspended_before_outage": [
            {"message": r["message"], "rcpt": r["rcpt"], "attempt": r["attempt"],
             "t_s": round(r["start_s"], 4)}
            for r in ours if r["code"] == SUSPENDED and r["start_s"] < outage[0]],
        "before_slow_sessions": _split(real, ours, slow["first_t_s"], cmp["target_dt_s"]),
        "sim_deferred_without_relay": {
            "refused": sum(r["code"] == 0 and r["outcome"] == "deferred" for r in ours),
            "suspended": sum(r["code"] == SUSPENDED for r in ours)},
        "real_lost_connection_rows": sum(r["dsn"] == "4.4.2" and r["relay"] != "none"
                                         for r in real),
        "delay_warnings": _warnings(out, meta, injected, arrival, real, ours,
                                    scenario.upstream.delay_warning_time, diffs),
        "after_outage": _after_outage(real, ours, outage, scenario.upstream),
        "real_slow_sessions": slow,
        "real_sessions": live_sessions(out, meta, real, int(
            scenario.upstream.default_destination_concurrency_limit), queue),
        "real_scan_order": scan_order(out, meta),
        "sim_scan_order": sim_scan_order(ours),
        "batch_places": batch_places(out, meta, ours, diffs),
        "empirical_transaction_times": _brief(runs["empirical"], dsn_real),
        "own_scan_order": _brief(runs["own_order"], dsn_real),
        "without_session_error_limits": _brief(runs["no_sessions"], dsn_real),
        "slowed_from_first_slow_transaction": _brief(runs["slowed"], dsn_real)
        if "slowed" in runs else None,
        "queue_max_abs_error_from_slow": _brief(runs["constant"], dsn_real)[
            "queue_max_abs_error_from_slow"],
        "differences": diffs,
        "difference_causes": dict(Counter(x["cause"] for x in diffs)),
        "differing_messages": len({x["message"] for x in diffs}),
    }
    summary["targets_met"] = {
        "same_outcomes_and_attempt_counts": cmp["recipients_same_story"] == cmp["recipients"]
        and cmp["messages_same_attempt_count"] == cmp["messages"],
        "attempt_times_within_target": cmp["rows_within_target"] == cmp["attempt_rows_real"]
        == cmp["attempt_rows_sim"],
        "queue_series_within_2_messages": all(
            q[n]["samples_within_target"] == q["samples_settled"]
            for n in ("active", "deferred")),
        "dsn_counts_identical": dsn["real"] == dsn["sim"]}
    write_atomic(out / "comparison.json", json.dumps(summary, indent=1, default=_json) + "\n")
    vp._write_csv(out / "recipient_attempts.csv", real)
    vp._write_csv(out / "sim_recipient_attempts.csv",
                  [{**r, "start_s": round(r["start_s"], 6)} for r in ours])
    vp._write_csv(out / "differences.csv", diffs)
    _figures(out, meta, real, ours, q, outage, cmp["target_dt_s"])
    _readme(out, meta, scenario, summary)
    return summary


def _run(meta, injected, queue, real, real_exp, times, duration, trace, seed, outage, slow,
         shape, slowed=None, sessions=True):
    """relaysim with the transaction-time shape `shape` (and `slowed`, `sessions`,
    sim_scenario) on the saved run, compared."""
    scenario = sim_scenario(meta, injected, times, duration, shape, slowed, sessions)
    batches: list[np.ndarray] = []
    res = sim.simulate(scenario, seed=seed, on_attempts=batches.append, trace=trace)
    ours, our_exp = sim_rows(batches)
    up = scenario.upstream
    target = up.queue_run_delay + up.smtp_transaction_time
    cmp = compare_load(real, real_exp, ours, our_exp, target)
    scans = meta.get("scans", [])
    live_t = [x for g in scans for x in range(int(g["t_s"]), int(g["last_t_s"]) + 1)]
    t_q = [float(r["t_s"]) for r in queue]
    q = queue_series(queue, res, vp.in_flight(t_q, up.queue_run_delay,
                                              list(trace.arrival), live_t))
    q["slow_from"] = slow["first_t_s"]
    diffs = classify(real, real_exp, ours, our_exp, target, outage, up.minimal_backoff_time,
                     slow["first_t_s"], _busy(q), up.queue_run_delay / 2)
    d = res.summary["dsn"]
    return (scenario, res, ours, cmp, diffs, q,
            {"delay": d["delay"], "nondelivery": d["nondelivery"],
             "backscatter": d["backscatter"]})


def _warnings(out, meta, injected, arrival, real, ours, dwt, diffs) -> dict:
    """Which messages got a delay warning on each side (warned_messages), the diagnosis
    checked against the real log's notices, and the first difference of each message that
    relaysim warned and Postfix did not (or the other way round)."""
    year = vp._year(meta["qmgr_start_epoch"])
    path = out / "upstream.maillog"
    index = {a.queue_id: a.message for a in pl.parse_maillog(path, year) if a.message >= 0}
    logged = {index[m["qid"]] for ln in pl.read_log(path, year)
              if (m := _DELAY_NOTICE.match(ln.text)) and m["qid"] in index}
    wr, ws = warned_messages(real, injected, arrival, dwt), warned_messages(ours, injected,
                                                                           arrival, dwt)
    first = {}
    for d in diffs:
        first.setdefault(d["message"], d["cause"])
    return {"diagnosis_matches_real_log": wr == logged,
            "only_sim": sorted(ws - logged), "only_real": sorted(logged - ws),
            "causes": dict(Counter(first.get(m, "no recipient differs")
                                   for m in ws ^ logged))}


def _after_outage(real: list[dict], ours: list[dict], outage: tuple[float, float],
                  up) -> dict:
    """Recipient attempts by outcome on each side from the first deferred scan at or after
    the relay is back (relaysim's grid k * queue_run_delay, which the live scans share until
    then) for one queue_run_delay."""
    lo = math.ceil(outage[1] / up.queue_run_delay) * up.queue_run_delay
    hi = lo + up.queue_run_delay

    def count(rows):
        return dict(Counter(r["outcome"] for r in rows if lo <= r["start_s"] < hi))

    return {"from_t_s": round(lo, 3), "to_t_s": round(hi, 3), "real": count(real),
            "sim": count(ours)}


def _split(real: list[dict], ours: list[dict], t: float | None, target: float) -> dict:
    """Attempt rows that Postfix started before t (the first slowed transaction): how many,
    how many relaysim has too, and how many of those start within the target."""
    if t is None:
        return {}
    sim_by = {(r["message"], r["rcpt"], r["attempt"]): r for r in ours}
    rows = [r for r in real if r["start_s"] < t]
    pairs = [(r, y) for r in rows
             if (y := sim_by.get((r["message"], r["rcpt"], r["attempt"]))) is not None]
    return {"t_s": t, "rows": len(rows), "matched": len(pairs),
            "within_target": sum(abs(y["start_s"] - r["start_s"]) <= target + 1e-9
                                 for r, y in pairs),
            "same_outcome": sum(y["outcome"] == r["outcome"] for r, y in pairs)}


def _kind_real(r: dict) -> str:
    if r["relay"] == "none":
        return "suspended" if "suspended" in r["reason"] else "refused"
    return "lost" if r["dsn"] == "4.4.2" else "transaction"


def _kind_sim(r: dict) -> str:
    return {0: "refused", SUSPENDED: "suspended", LOST: "lost"}.get(r["code"], "transaction")


def attempt_kinds(real: list[dict], ours: list[dict]) -> dict:
    """Per attempt present on both sides, what it was on each: a transaction with the relay,
    refused, suspended (the destination dead) or lost (cut by the stop): the number that
    agree and {real kind -> relaysim kind: count} for the others."""
    sim_by = {(r["message"], r["rcpt"], r["attempt"]): r for r in ours}
    pairs = Counter((_kind_real(r), _kind_sim(y)) for r in real
                    if (y := sim_by.get((r["message"], r["rcpt"], r["attempt"]))) is not None)
    return {"same": sum(v for (a, b), v in pairs.items() if a == b),
            "of": sum(pairs.values()),
            "differ": {f"{a} -> {b}": v for (a, b), v in sorted(pairs.items()) if a != b}}


def _also_cut(real: list[dict], ours: list[dict]) -> int:
    """Postfix's attempts lost to the stop (dsn 4.4.2 after reaching the relay) that relaysim
    cut too (the same attempt logged LOST there)."""
    sim_by = {(r["message"], r["rcpt"], r["attempt"]): r for r in ours}
    return sum(1 for r in real if r["dsn"] == "4.4.2" and r["relay"] != "none"
               and (y := sim_by.get((r["message"], r["rcpt"], r["attempt"]))) is not None
               and y["code"] == LOST)


def _busy(q: dict):
    """busy(t): either side's active queue held mail at the last real sample at or before t
    (mail waiting for an agent on one side and not on the other is such a difference)."""
    def busy(t: float) -> bool:
        i = max(int(np.searchsorted(q["t_s"], t, side="right")) - 1, 0)
        return bool(q["active"]["real"][i] > 0 or q["active"]["sim"][i] > 0)
    return busy


def _brief(run, dsn_real) -> dict:
    """The key figures of a comparison run (the alternative transaction-time shape)."""
    scenario, _, _, cmp, diffs, q, dsn_sim = run
    late = q["t_s"] >= (q["slow_from"] if q.get("slow_from") is not None else np.inf)
    return {
            "queue_max_abs_error_from_slow": {
                n: int(np.abs(q[n]["sim"] - q[n]["real"])[late & q["settled"]].max())
                if (late & q["settled"]).any() else 0 for n in ("active", "deferred")},
            "smtp_transaction_time_s": scenario.upstream.smtp_transaction_time,
            "recipients_same_story": cmp["recipients_same_story"],
            "messages_same_attempt_count": cmp["messages_same_attempt_count"],
            "rows_within_target": cmp["rows_within_target"], "target_dt_s": cmp["target_dt_s"],
            "dt_s": cmp["dt_s"], "active_max_abs_error": q["active"]["max_abs_error"],
            "active_peak_sim": q["active"]["peak_sim"],
            "deferred_max_abs_error": q["deferred"]["max_abs_error"],
            "deferred_peak_sim": q["deferred"]["peak_sim"], "dsn_sim": dsn_sim,
            "queue_first_t_s_beyond_target": q["first_t_s_beyond_target"],
            "dsn_identical": dsn_sim == dsn_real,
            "difference_causes": dict(Counter(x["cause"] for x in diffs))}


def _json(x):
    if isinstance(x, np.integer | np.floating):
        return x.item()
    return str(x)


def _figures(out: Path, meta: dict, real: list[dict], ours: list[dict], q: dict,
             outage: tuple[float, float], target: float) -> None:
    t = q["t_s"]
    with plotting.style():
        fig, axes = plotting.figure(2, 1, height=6.4)
        fig.suptitle("Scenario load: active and deferred queue, real Postfix vs relaysim")
        for ax, name in zip(axes, ("active", "deferred"), strict=True):
            s = q[name]
            ax.plot(t, s["real"], marker="o", markersize=4, linestyle="none",
                    markerfacecolor="none", label="real Postfix (postqueue -j)")
            ax.step(t, s["sim"], where="post", linewidth=1.0,
                    label="relaysim (1 s series, latest second at or before)")
            ax.set_ylabel(f"{name} messages")
            ax.set_title(f"{name}: peak {s['peak_real']} real, {s['peak_sim']} relaysim; "
                         f"largest error {s['max_abs_error']} messages at t_s "
                         f"{s['max_abs_error_t_s']:g}", fontsize=9)
            plotting.shade_outages(ax, [outage], x_scale=1.0, label="relay down")
            ax.legend(loc="upper right", fontsize=8)
        axes[-1].set_xlabel("t_s: seconds since qmgr's scan grid origin")
        plotting.save(fig, out / "queue_series")
        plotting.save_table(out / "queue_series", {
            "t_s": t, "real_active": q["active"]["real"], "sim_active": q["active"]["sim"],
            "real_deferred": q["deferred"]["real"], "sim_deferred": q["deferred"]["sim"]})

        sim_by = {(r["message"], r["rcpt"], r["attempt"]): r for r in ours}
        pairs = [(r, sim_by[k]) for r in real
                 if (k := (r["message"], r["rcpt"], r["attempt"])) in sim_by]
        dt = np.array([s["start_s"] - r["start_s"] for r, s in pairs])
        n = np.array([r["attempt"] for r, _ in pairs])
        fig, ax = plotting.figure()
        fig.suptitle("Scenario load: attempt start, relaysim - real Postfix, per recipient")
        lim = max(2 * target, float(np.abs(dt).max()) if dt.size else 1.0)
        bins = np.linspace(-lim, lim, 61)
        ax.hist([dt[n == 1], dt[n > 1]], bins=bins, stacked=True,
                label=["first attempt", "retry"])
        ax.axvspan(-target, target, color="0.92", zorder=0,
                   label=f"target: within {target:.2f} s (scan interval + transaction time)")
        ax.set_xlabel("relaysim start - Postfix start (s)")
        ax.set_ylabel("recipient attempts")
        ax.set_title(f"{int((np.abs(dt) <= target).sum())} of {dt.size} matched attempts "
                     "within the target", fontsize=9)
        ax.legend(loc="upper left", fontsize=8)
        plotting.save(fig, out / "attempt_dt")
        plotting.save_table(out / "attempt_dt", {
            "message": [r["message"] for r, _ in pairs], "rcpt": [r["rcpt"] for r, _ in pairs],
            "attempt": n, "real_start_s": [r["start_s"] for r, _ in pairs], "dt_s": dt})


def _until(t: float | None) -> str:
    """' until t_s T' for the first sample beyond the target, '' if there is none."""
    return "" if t is None else f" until t_s {t:g}"


def _counts(d: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(d.items()))


def _verdict(s: dict) -> str:
    return vp._verdict(s)


def _readme(out: Path, meta: dict, scenario: sim.Scenario, s: dict) -> None:
    c, q, dsn, tt = s["compare"], s["queue"], s["dsn"], s["smtp_transaction_time_s"]
    sl, em = s["real_slow_sessions"], s["empirical_transaction_times"]
    bs = s["before_slow_sessions"]
    so, dw, ro = s["real_scan_order"], s["delay_warnings"], s["after_outage"]
    sw = s["slowed_from_first_slow_transaction"] or {}
    bp, sb = s["batch_places"], s["suspended_before_outage"]
    os_, ns = s["own_scan_order"], s["without_session_error_limits"]
    sc, ls = meta["scenario"], s["real_sessions"]
    up = scenario.upstream
    extra = meta["postconf"].get("relay_extra", {})
    setup = [
        f"Real side: Postfix {meta['postfix_version']} upstream and relay on 127.0.0.1 "
        f"(experiments/postfix_lab.py); {c['messages']} messages with {c['recipients']} "
        f"recipients injected by SMTP over {sc['spread_s']:g} s (validate_postfix."
        "load_workload: P(1, 2, 3 recipients) = " + ", ".join(
            f"{p:g}" for p in sc["recipients_p"]) + f", each unknown with probability "
        f"{sc['unknown_fraction']:g}, null senders {sc['null_fraction']:g}, forged senders "
        f"(forged.test) {sc['forged_fraction']:g}); the relay answers "
        + meta["postconf"]["relay"]["unknown_local_recipient_reject_code"]
        + " to unknown users and is slowed by " + ", ".join(
            f"{k} = {v}" for k, v in extra.items()) + " (a one-second pause at every MAIL FROM).",
        "Upstream (postconf -hx, passed to relaysim unchanged): " + ", ".join(
            f"{k} = {v}" for k, v in meta["postconf"]["upstream"].items()) + ".",
        f"Relay stopped (`postfix stop`) at t_s {s['outage_t_s'][0]:g} and started again, "
        f"`postfix start` returning at t_s {s['outage_t_s'][1]:g}: relaysim's outage is that "
        "interval.",
        "relaysim: the live run's exact workload as a trace (sim.model.trace.Trace, as "
        "`relaysim replay` builds from a mail log): per message its arrival (MAIL FROM + "
        "Postfix's delays= a of the first attempt), its recipients in RCPT order (known users "
        "alice, bob, carol = relay users 0 to 2, unknownI_J unknown) and its sender kind "
        "(null, forged, real); smtp_transaction_time_distribution = constant at "
        f"{up.smtp_transaction_time:.4f} s, the median of the {tt['n']} measured c + d of the "
        "transactions that reached the relay (range "
        f"{tt['min']:.3f} to {tt['max']:.3f} s, mean {tt['mean']:.3f} s, coefficient of "
        f"variation {tt['cv']:.3f}); seed {s['sim_seed']}. Why constant, not empirical: no "
        f"transaction took more than {sl['threshold_s']:g} s until t_s {sl['first_t_s']:g}; "
        f"from there the relay's error limits slowed {sl['transactions']} of the {sl['of']} "
        f"transactions, up to {tt['max']:g} s (see the notes): a transaction's time depends "
        "on its session's history, and an independent draw per attempt spreads the slow ones "
        "over the whole run, into the phase where the concurrency limit binds. With constant "
        "times the active and deferred series agree within "
        f"{TARGET_QUEUE_MESSAGES} messages at every settled sample"
        f"{_until(q['first_t_s_beyond_target'])}, with empirical ones"
        f"{_until(em['queue_first_t_s_beyond_target'])}; the empirical "
        "run's other figures are in the notes.",
        f"The concurrency limit binds: {ls['samples_active_above_limit']} of {q['samples']} "
        "`postqueue -j` samples show more active messages than the limit (mail waiting for "
        f"an agent), and the longest wait for an agent (delays= b) was "
        f"{ls['max_wait_for_agent_s']:g} s.",
        "Attempt times: each side's start of the transaction, per recipient: real = MAIL FROM "
        "+ delays= a + b (Postfix's own clock, logged to two significant digits), narrowed by "
        "the whole-second stamp of the line that ends the attempt (attempt_start), relaysim = "
        "its attempt's start. "
        f"Target: within queue_run_delay + the transaction time = {c['target_dt_s']:.2f} "
        "s, because an attempt that ends one transaction later on one side can fall after a "
        "deferred scan and be retried one scan later.",
    ]
    met = s["targets_met"]
    answer = (
        f"{_verdict(s)}. Recipients: {c['recipients_same_story']} of {c['recipients']} have the "
        f"same outcome sequence, {c['recipients_same_final_outcome']} the same final outcome "
        f"(real {_counts(c['final_outcomes_real'])}; relaysim "
        f"{_counts(c['final_outcomes_sim'])}), {c['recipients_same_attempt_count']} the same "
        "number of attempts (relaysim minus real: " + ", ".join(
            f"{int(k):+d} for {v}" for k, v in c["attempt_count_sim_minus_real"].items())
        + f"). Messages: "
        f"{c['messages_same_attempt_count']} of {c['messages']} the same number of attempts, "
        f"{c['messages_same_ending']} the same ending; expired {c['messages_expired_real']} "
        f"real, {c['messages_expired_sim']} relaysim. Attempt rows: {c['attempt_rows_real']} "
        f"real, {c['attempt_rows_sim']} relaysim, {c['attempt_rows_matched']} on both sides; "
        f"start relaysim - real {vp._fmt_q(c['dt_s'])} s, {c['rows_within_target']} within "
        f"{c['target_dt_s']:.2f} s (first attempts {vp._fmt_q(c['dt_first_s'])}; retries "
        f"{vp._fmt_q(c['dt_retry_s'])}); of the {bs['rows']} attempts Postfix started "
        f"before its first slowed transaction (t_s {bs['t_s']:g}), relaysim has "
        f"{bs['matched']}, {bs['same_outcome']} with the same outcome and "
        f"{bs['within_target']} within the target. DSNs real/relaysim: delay warnings "
        f"{dsn['real']['delay']}/{dsn['sim']['delay']}, non-delivery notices "
        f"{dsn['real']['nondelivery']}/{dsn['sim']['nondelivery']}, to forged senders "
        f"{dsn['real']['backscatter']}/{dsn['sim']['backscatter']}. Queue (messages): active "
        f"peak {q['active']['peak_real']} real, {q['active']['peak_sim']} relaysim, largest "
        f"error {q['active']['max_abs_error']} at t_s {q['active']['max_abs_error_t_s']:g} "
        f"({q['active']['samples_within_target']} of {q['samples_settled']} settled samples "
        f"within {TARGET_QUEUE_MESSAGES}; {q['active']['max_abs_error_all_samples']} over all "
        f"{q['samples']}); deferred peak {q['deferred']['peak_real']} real, "
        f"{q['deferred']['peak_sim']} relaysim, largest error {q['deferred']['max_abs_error']} "
        f"at t_s {q['deferred']['max_abs_error_t_s']:g} "
        f"({q['deferred']['samples_within_target']} of {q['samples_settled']} within "
        f"{TARGET_QUEUE_MESSAGES}; {q['deferred']['max_abs_error_all_samples']} over all); "
        "settled samples are those not in a deferred scan's second nor within "
        f"{vp.TRANSIT_S:g} s after an arrival (validate_postfix.in_flight). Targets: " + ", ".join(
            f"{k.replace('_', ' ')} {'met' if v else 'NOT met'}" for k, v in met.items())
        + ".")
    causes = s["difference_causes"]
    notes = [
        f"The relay's RCPT rejects: {s['relay_rejects']['real']} real, "
        f"{s['relay_rejects']['sim']} relaysim" + (
            "" if s["relay_rejects"]["sim"] == s["relay_rejects"]["real"]
            else " (the attempts the two sides do not share, above)") + ". Without "
        "reaching the relay (relay=none) Postfix deferred "
        f"{s['real_deferred_without_relay'].get('refused', 0)} recipient attempts with "
        "`Connection refused` and "
        f"{s['real_deferred_without_relay'].get('suspended', 0)} with `delivery temporarily "
        "suspended` (the destination dead), "
        f"{sum(s['real_deferred_without_relay'].values())} in all; relaysim "
        f"{s['sim_deferred_without_relay']['refused']} refused and "
        f"{s['sim_deferred_without_relay']['suspended']} suspended. "
        f"Postfix lost {s['real_lost_connection_rows']} recipient attempts to the stop "
        "(dsn 4.4.2, `lost connection ... while sending MAIL FROM`); relaysim cut "
        f"{s['cut_sessions_also_cut_in_sim']} of them too. Attempt by attempt (a transaction "
        "with the relay, refused, suspended, lost): the same kind for "
        f"{s['attempt_kinds']['same']} of {s['attempt_kinds']['of']}" + (
            "; the others, Postfix -> relaysim: " + ", ".join(
                f"{k} {v}" for k, v in s["attempt_kinds"]["differ"].items())
            if s["attempt_kinds"]["differ"] else "") + ".",
        f"Recipients that differ: {len(s['differences'])} in {s['differing_messages']} "
        "messages, by the cause at their first difference: " + (", ".join(
            f"{v} {k}" for k, v in sorted(causes.items())) or "none") + " (classify() in "
        "experiments/validate_postfix_load.py defines each; differences.csv lists them all).",
        ("relaysim bug: it logged " + (
            f"{len(sb)} recipient attempts suspended (the destination dead) before the relay "
            f"went down at t_s {s['outage_t_s'][0]:g}: " + ", ".join(
                f"message {x['message']} recipient {x['rcpt']} attempt {x['attempt']} at t_s "
                f"{x['t_s']:g}" for x in sb) + ". Postfix took the same mail into the active "
            "queue then, it waited for an agent, and was suspended when the sessions cut by "
            "the stop throttled the destination (after t_s "
            f"{s['outage_t_s'][0]:g}). relaysim's site rule tests only the end of the dead "
            "time (sim/model/qmgr/site.py, refuse: t < state[_DEAD]), and the death at the "
            "stop, computed while serving an earlier tick whose sessions it cut, is already "
            "in the state when the later tick of that scan is served: the scan's batch is "
            "suspended at its own, earlier, time. Its deferral second is then one earlier, so "
            "is its backoff (`relaysim suspended it before the destination died`).")
         if sb else "Suspended before the relay went down: no relaysim attempt (the check of "
         "a relaysim bug this run showed, since fixed in the engine: the site state had no "
         "start of the dead time, so a death computed while serving an earlier tick "
         "suspended a later tick's batch at its own, earlier, time)."),
        "The relay back after the outage: in the first deferred scan interval after "
        f"`postfix start` (t_s {ro['from_t_s']:g} to {ro['to_t_s']:g}) Postfix made "
        f"{_counts(ro['real'])} recipient attempts, relaysim {_counts(ro['sim'])}. "
        + ("The backlog comes back in the same scan on both sides: relaysim's dead-destination "
           "rule (Postfix's qmgr_queue_throttle: failures counted per in-core queue as "
           "1/window, dead at the cohort limit, the count lost when the queue has nothing "
           "pending, dead for minimal_backoff_time on the whole-second timer; mta-semantics.md "
           "sections 3 and 8) lets it through when Postfix does."
           if abs(ro["sim"].get("deferred", 0) - ro["real"].get("deferred", 0)) <= 2 else
           "relaysim deferred that scan's batch once more where Postfix delivered it: its "
           "destination was still dead at the scan, so the backlog comes back a scan later "
           "(the dead-destination rule: mta-semantics.md sections 3 and 8, issue 19 item 3)."),
        "Without the relay's error limits (relay.smtpd_soft_error_limit = 0: one session per "
        "attempt as far as the relay's counting goes, relaysim's default): "
        f"{ns['recipients_same_story']} of {c['recipients']} recipients with the same story, "
        f"{ns['messages_same_attempt_count']} of {c['messages']} messages with the same "
        f"attempt count, {ns['rows_within_target']} attempts within the target, largest queue "
        f"error from t_s {sl['first_t_s']:g} on: active "
        f"{ns['queue_max_abs_error_from_slow']['active']}, deferred "
        f"{ns['queue_max_abs_error_from_slow']['deferred']} messages (with them "
        f"{s['queue_max_abs_error_from_slow']['active']} and "
        f"{s['queue_max_abs_error_from_slow']['deferred']}). The old what-if instead, a "
        "[[changes]] entry that raises the constant transaction time from t_s "
        f"{sl['first_t_s']:g} to {sl['mean_from_first_s']:g} s (the mean c + d Postfix "
        f"measured from there over {sl['transactions_from_first']} transactions), without "
        f"the error limits: {sw['recipients_same_story']} recipients, "
        f"{sw['messages_same_attempt_count']} messages, queue errors "
        f"{sw['queue_max_abs_error_from_slow']['active']} and "
        f"{sw['queue_max_abs_error_from_slow']['deferred']}: a mean cannot give which "
        "transactions are slow, the sessions past the error limit.",
        "Delay warnings: the messages with a non-null sender deferred at an age of at least "
        "delay_warning_time - 1 s (mta-semantics.md section 8) are, on the real rows, exactly "
        "the ones Postfix logged a `sender delay notification` for: "
        + ("yes" if dw["diagnosis_matches_real_log"] else "NO") + f". relaysim warned "
        f"{len(dw['only_sim'])} messages Postfix did not ("
        + (", ".join(map(str, dw["only_sim"])) or "none") + ") and missed "
        f"{len(dw['only_real'])} (" + (", ".join(map(str, dw["only_real"])) or "none")
        + "); the first difference of these messages: " + (", ".join(
            f"{v} {k}" for k, v in sorted(dw["causes"].items())) or "none") + ".",
        "Order within a scan: in the live run's deferred scans, "
        f"{so['pairs_out_of_arrival_order']} of {so['pairs']} pairs of retries that entered "
        f"the active queue in the same second ({so['scan_seconds']} seconds with two or more) "
        "went in the opposite order of their arrival, and of the "
        f"{so['pairs_met_twice_or_more']} pairs that met in two or more scans, "
        f"{so['same_order_every_time']} came in the same order every time: Postfix's scan "
        "reads the deferred queue's hashed directories in directory order (qmgr_scan.c, "
        "readdir()), fixed per file and unrelated to arrival. relaysim takes the live log's "
        "order (the trace's places, sim.postfix.maillog.directory_places; "
        f"{s['sim_scan_order']['pairs_out_of_arrival_order']} of "
        f"{s['sim_scan_order']['pairs']} pairs against arrival in its "
        f"{s['sim_scan_order']['scans']} scans). With the concurrency limit binding, a "
        "message's place in the batch sets its wait for an agent, so the second its attempt "
        "ends in, so its backoff (counted from that second), so whether it makes the next "
        "scan. With relaysim's own hashed order instead (rules.file_place: the same rule, "
        f"another filesystem's hash): {os_['recipients_same_story']} of {c['recipients']} "
        f"recipients with the same story, {os_['messages_same_attempt_count']} of "
        f"{c['messages']} messages with the same attempt count, {os_['rows_within_target']} "
        "attempts within the target; its first differences: "
        + _counts(os_["difference_causes"]) + "." + (
            " Of the `place in the scan's batch` recipients whose batch could be found on "
            f"both sides ({bp['checked']}), {bp['consistent']} started later on the side "
            "that placed them later in the batch." if bp["checked"] else ""),
        f"The relay's error limits: from t_s {sl['first_t_s']:g}, when the traffic left was "
        "mostly retries of unknown recipients, the upstream's smtp client kept reusing its "
        f"connections (smtp_connection_cache_on_demand; up to {ls['max_conn_use']} "
        "transactions a session, conn_use= in the log) and the relay's smtpd, after "
        "smtpd_soft_error_limit = 10 "
        "rejected RCPTs in a session without delivered mail, delayed every reply by "
        f"smtpd_error_sleep_time = 1s: {sl['transactions']} transactions took more than "
        f"{sl['threshold_s']:g} s (up to {tt['max']:g} s), and at smtpd_hard_error_limit = 20 "
        f"it closed the session ({ls['relay_too_many_errors']} `too many errors` lines in "
        "relay.maillog), which the client absorbed "
        "by opening a new one. relaysim runs with the relay's limits as the lab has them "
        "(Postfix's defaults: smtpd_soft_error_limit = 10, smtpd_hard_error_limit = 20, "
        "smtpd_error_sleep_time = 1s) and models the upstream's cached sessions one per "
        "delivery agent (the README's simplification 'Cached sessions and the relay's error "
        "limits, one session per delivery agent'); "
        + ("with them every recipient keeps its story." if not s["differences"] else
           "the differences left from that time on are which session carries which error "
           "count: Postfix hands a cached session to whichever agent asks next."),
        "With smtp_transaction_time_distribution = empirical (the same measured c + d, mean "
        f"{em['smtp_transaction_time_s']:.3f} s, target {em['target_dt_s']:.2f} s): "
        f"{em['recipients_same_story']} of {c['recipients']} recipients with the same story, "
        f"{em['messages_same_attempt_count']} of {c['messages']} messages with the same "
        f"attempt count, {em['rows_within_target']} attempts within the target, active peak "
        f"{em['active_peak_sim']} (largest error {em['active_max_abs_error']}), deferred peak "
        f"{em['deferred_peak_sim']} (largest error {em['deferred_max_abs_error']}), delay "
        f"warnings {em['dsn_sim']['delay']}, non-delivery notices "
        f"{em['dsn_sim']['nondelivery']}. Worse than constant times on every count: the "
        "measured c + d include the relay smtpd's sleeps past its error limit, which "
        "relaysim's sessions add again, and an independent draw per attempt puts slow "
        "transactions into the phase where the concurrency limit binds.",
    ]
    for x in s["differences"]:
        if x["cause"] == "unexplained":
            notes.append(f"Unexplained: message {x['message']} recipient {x['rcpt']} from "
                         f"attempt {x['at_attempt']}: real `{x['real']}` (start "
                         f"{x['real_t_s']}), relaysim `{x['sim']}` (start {x['sim_t_s']}).")
    cmd = ("sudo .venv/bin/python experiments/validate_postfix.py load   # or, on the saved "
           "run: --compare-only load")
    write_readme(out, "Real Postfix vs relaysim: scenario load",
                 "Does relaysim reproduce a real Postfix upstream when "
                 + vp.QUESTIONS["load"] + "?", setup,
                 [("queue_series", "Active and deferred queue: real postqueue -j samples vs "
                   "relaysim's 1 s series"),
                  ("attempt_dt", "Attempt start, relaysim minus Postfix, per recipient "
                   "attempt")],
                 answer, cmd, notes)


def index_row(s: dict) -> str:
    """The load scenario's line in results/validation/postfix/README.md."""
    c, q, dsn = s["compare"], s["queue"], s["dsn"]
    return (f"| [load](load/README.md) | {c['messages']} / {c['recipients']} | "
            f"{c['recipients_same_story']}/{c['recipients']} | "
            f"{c['messages_same_attempt_count']}/{c['messages']} | "
            f"{c['rows_within_target']}/{c['attempt_rows_real']} (target "
            f"{c['target_dt_s']:.1f} s) | {q['active']['max_abs_error']} / "
            f"{q['deferred']['max_abs_error']} | {dsn['real']['delay']}/{dsn['sim']['delay']}, "
            f"{dsn['real']['nondelivery']}/{dsn['sim']['nondelivery']} | {_verdict(s)} |")
