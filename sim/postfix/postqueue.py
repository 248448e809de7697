"""postqueue -j: Postfix's queue listing (JSON lines) read into numpy arrays, and written back.

Public names: QueueSnapshot, read_postqueue, parse_postqueue, write_postqueue, format_postqueue,
read_mtimes, classify_reason, SnapshotWriter, rebuild_wakeup, recipient_users, initial_queue,
QUEUES, SCOPES, NULL_SENDER_SHOWN.

Contract (postqueue(1) "JSON OBJECT FORMAT", Postfix 3.1+; mta-semantics.md 6.2; formats.md 1a):
- One JSON object per line, one line per queue file, no enclosing array; members used:
  queue_name, queue_id, arrival_time (epoch s), message_size (bytes), forced_expire (bool,
  Postfix 3.5+, false when absent), sender, recipients [{address, delay_reason?}]. Members not
  listed are ignored, as postqueue(1) asks. Blank lines are skipped; an empty file is an empty
  queue (postqueue -j prints nothing for one).
- The null sender: real Postfix 3.7 prints it as "MAILER-DAEMON" (showq substitutes
  empty_address_recipient; seen in tests/data/postqueue/*.jsonl), not as "". Both "" and
  NULL_SENDER_SHOWN read as null_sender=True; the writer prints NULL_SENDER_SHOWN, as showq does.
- QueueSnapshot holds one entry per message (queue index into QUEUES, queue_id, arrival, size,
  forced_expire, null_sender, sender) and one per recipient in message order (address,
  delay_reason, scope, code), messages' recipients being rcpt[first[i]:first[i + 1]].
  `time` is the snapshot's time: given, else the newest arrival (0 for an empty queue).
- classify_reason(text) -> (scope, code): scope is an index into SCOPES: "none" (no
  delay_reason: delivery in progress or never tried), "recipient" (host said NNN in reply to
  RCPT TO: a recipient-level reject, e.g. the 450 of an unknown user), "message" (NNN in reply
  to MAIL FROM, DATA or end of DATA), "site" (connect failed, lost connection, timeout,
  greeting refused, delivery temporarily suspended: the destination is throttled, 3.3), or
  "other"; code is the SMTP reply code (e.g. 450) when the text has one, else 0.
- format_postqueue(snapshot) writes the same format back, members in Postfix's order with
  Postfix's separators, so reading real output and writing it again gives the same bytes
  (tests/postfix/test_postqueue.py checks it on the real output).
- SnapshotWriter(times) builds, from the engine's attempt stream, the upstream's queue at
  chosen run times as QueueSnapshots (write them with write_postqueue to chain runs or to
  compare with a live `postqueue -j`); its docstring says which queue a message is in when.
- rebuild_wakeup(snapshot) rebuilds each deferred message's next wake-up from arrival_time
  with Postfix's schedule (uncertain by one queue_run_delay: the scan grid's phase), or takes
  it from read_mtimes; recipient_users(snapshot, known) maps addresses to relay user ids.
- initial_queue(snapshot, scenario) turns a snapshot into the model's InitialQueue (a run that
  starts from this queue; see its docstring for what is kept and what is rebuilt).
- read_mtimes(path): {queue_id: mtime} from `find .../deferred -type f -printf '%f %T@\n'` (the
  deferred file's mtime is its next wake-up time, which postqueue -j does not show).
Errors: ScenarioError (one line): a file that is not postqueue -j output (its first line is
not a JSON object with queue_name and queue_id; `postqueue -p`/mailq text is named as such),
or a malformed line, naming the file and the line number, the offending text and what a line
must hold. Nothing here prints.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.errors import ScenarioError
from sim.results import write_atomic

QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")
SCOPES = ("none", "recipient", "message", "site", "other")
NULL_SENDER_SHOWN = "MAILER-DAEMON"
_NEEDS = ("a JSON object per line with queue_name (one of " + ", ".join(QUEUES)
          + "), queue_id, arrival_time, message_size, sender and recipients [{address}], "
          "as `postqueue -j` prints (Postfix 3.1 or later)")

_SAID = re.compile(r" said: (\d{3})[ -].*\(in reply to (RCPT TO|MAIL FROM|DATA|end of DATA) "
                   r"command\)$")
_SITE = re.compile(r"^(connect to |lost connection with |conversation with .* timed out"
                   r"|delivery temporarily suspended: |host \S+ refused to talk to me: "
                   r"|Host or domain name not found)")
_CODE = re.compile(r"(?:said|refused to talk to me): (\d{3})\b")


def classify_reason(text: str | None) -> tuple[int, int]:
    """(index into SCOPES, reply code or 0) of one recipient's delay_reason."""
    if not text:
        return 0, 0
    m = _SAID.search(text)
    if m and m[2] == "RCPT TO":
        return 1, int(m[1])
    if m:
        return 2, int(m[1])
    c = _CODE.search(text)
    return (3 if _SITE.match(text) else 4), int(c[1]) if c else 0


@dataclass(frozen=True)
class QueueSnapshot:
    """A queue listing as arrays; see the module contract. Times are Unix epoch seconds."""

    time: float
    queue: np.ndarray          # int8, index into QUEUES
    queue_id: np.ndarray       # str
    arrival: np.ndarray        # float64, epoch s
    size: np.ndarray           # int64, bytes
    forced_expire: np.ndarray  # bool
    null_sender: np.ndarray    # bool
    sender: np.ndarray         # str ("" for the null sender)
    first: np.ndarray          # int64, len = messages + 1: recipients of i are first[i]:first[i+1]
    address: np.ndarray        # str, per recipient
    delay_reason: np.ndarray   # str, per recipient ("" when absent)
    scope: np.ndarray          # int8, index into SCOPES
    code: np.ndarray           # int16, reply code or 0

    def __len__(self) -> int:
        return len(self.queue)

    @property
    def nrcpt(self) -> np.ndarray:
        """Recipients still queued per message."""
        return np.diff(self.first)

    @property
    def age(self) -> np.ndarray:
        """Age of each message at the snapshot time, seconds (qshape's and showq's age)."""
        return self.time - self.arrival

    def in_queue(self, name: str) -> np.ndarray:
        """Mask of the messages in queue `name`."""
        return self.queue == QUEUES.index(name)


def _fail(where: str, n: int, text: str, why: str) -> ScenarioError:
    shown = text if len(text) <= 60 else text[:57] + "..."
    return ScenarioError(f"{where} line {n}", shown, _NEEDS, problem=why)


def parse_postqueue(lines: Iterable[str], where: str = "postqueue -j",
                    time: float | None = None) -> QueueSnapshot:
    """QueueSnapshot of postqueue -j lines (see the module contract); `where` names the source
    in errors, `time` is the snapshot time (default: the newest arrival)."""
    msgs, rcpts = [], []
    n = 0
    for n, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text:
            continue
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        if not msgs and not (isinstance(obj, dict) and "queue_name" in obj
                             and "queue_id" in obj):
            hint = ("this is `postqueue -p` (mailq) text; run `postqueue -j`"
                    if text.startswith(("-Queue ID-", "Mail queue is empty")) else "")
            raise ScenarioError(where, "not postqueue -j output", _NEEDS, hint)
        if not isinstance(obj, dict):
            raise _fail(where, n, text, "not a JSON object")
        msgs.append(_message(obj, where, n, text, rcpts))
    if not msgs:
        return _snapshot([], [], 0.0 if time is None else float(time))
    t = max(m[2] for m in msgs) if time is None else float(time)
    return _snapshot(msgs, rcpts, t)


def _message(obj: dict, where: str, n: int, text: str, rcpts: list) -> tuple:
    def need(key, types):
        v = obj.get(key)
        if not isinstance(v, types) or isinstance(v, bool) and bool not in types:
            raise _fail(where, n, text, f"{key} missing or not a {types[0].__name__}")
        return v

    queue = need("queue_name", (str,))
    if queue not in QUEUES:
        raise _fail(where, n, text, f"queue_name {queue!r} is not a Postfix queue")
    qid = need("queue_id", (str,))
    arrival = float(need("arrival_time", (int, float)))
    size = int(need("message_size", (int, float)))
    forced = obj.get("forced_expire", False)
    if not isinstance(forced, bool):
        raise _fail(where, n, text, "forced_expire not true or false")
    sender = need("sender", (str,))
    rl = need("recipients", (list,))
    for r in rl:
        if not isinstance(r, dict) or not isinstance(r.get("address"), str):
            raise _fail(where, n, text, "a recipient without an address")
        reason = r.get("delay_reason", "")
        if not isinstance(reason, str):
            raise _fail(where, n, text, "delay_reason not a string")
        rcpts.append((r["address"], reason, *classify_reason(reason)))
    null = sender in ("", NULL_SENDER_SHOWN)
    return (QUEUES.index(queue), qid, arrival, size, forced, null, "" if null else sender,
            len(rl))


def _snapshot(msgs: list, rcpts: list, t: float) -> QueueSnapshot:
    cols = list(zip(*msgs, strict=True)) if msgs else [()] * 7
    rc = list(zip(*rcpts, strict=True)) if rcpts else [()] * 4
    return QueueSnapshot(
        time=t, queue=np.array(cols[0], dtype=np.int8), queue_id=np.array(cols[1], dtype=str),
        arrival=np.array(cols[2], dtype=float), size=np.array(cols[3], dtype=np.int64),
        forced_expire=np.array(cols[4], dtype=bool), null_sender=np.array(cols[5], dtype=bool),
        sender=np.array(cols[6], dtype=str),
        first=np.concatenate([[0], np.cumsum(np.array(cols[7], dtype=np.int64))]).astype(np.int64)
        if msgs else np.zeros(1, dtype=np.int64),
        address=np.array(rc[0], dtype=str), delay_reason=np.array(rc[1], dtype=str),
        scope=np.array(rc[2], dtype=np.int8), code=np.array(rc[3], dtype=np.int16))


def read_postqueue(path: Path | str, time: float | None = None) -> QueueSnapshot:
    """parse_postqueue of a file; ScenarioError if it cannot be read."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8", errors="strict") as f:
            return parse_postqueue(f, str(path), time)
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError(str(path), "unreadable", "a readable postqueue -j file",
                            type(e).__name__) from None


def format_postqueue(s: QueueSnapshot) -> Iterable[str]:
    """The snapshot as postqueue -j lines (each ending in a newline), in array order."""
    for i in range(len(s)):
        rl = []
        for j in range(s.first[i], s.first[i + 1]):
            r = {"address": str(s.address[j])}
            if s.delay_reason[j]:
                r["delay_reason"] = str(s.delay_reason[j])
            rl.append(r)
        arrival = float(s.arrival[i])
        obj = {"queue_name": QUEUES[s.queue[i]], "queue_id": str(s.queue_id[i]),
               "arrival_time": int(arrival) if arrival.is_integer() else arrival,
               "message_size": int(s.size[i]), "forced_expire": bool(s.forced_expire[i]),
               "sender": NULL_SENDER_SHOWN if s.null_sender[i] else str(s.sender[i]),
               "recipients": rl}
        yield json.dumps(obj, ensure_ascii=False) + "\n"


def write_postqueue(s: QueueSnapshot, path: Path | str) -> None:
    """format_postqueue into `path`, atomically (a temporary name, then a rename)."""
    write_atomic(Path(path), "".join(format_postqueue(s)))


def read_mtimes(path: Path | str) -> dict[str, float]:
    """{queue_id: mtime} from `find QUEUE/deferred -type f -printf '%f %T@\\n'` output."""
    out = {}
    for n, raw in enumerate(Path(path).read_text().splitlines(), 1):
        if not raw.strip():
            continue
        parts = raw.split()
        try:
            out[parts[0]] = float(parts[1])
        except (IndexError, ValueError):
            raise ScenarioError(f"{path} line {n}", raw[:60],
                                "a line must be 'QUEUE_ID MTIME' (find -printf '%f %T@\\n')"
                                ) from None
    return out


# --- snapshots of a simulated queue, from the attempt stream -----------------------------------

_SHOWQ_ORDER = ("maildrop", "active", "incoming", "deferred", "hold")  # showq.c's scan order


class SnapshotWriter:
    """The upstream's queue at chosen run times, as postqueue -j would list it, built from the
    attempt stream (sim/postfix/maillog.py ATTEMPT; batches in any order).

    A message is `incoming` from its arrival to its first entry into the active queue (all its
    recipients, no delay_reason), `active` from each entry to that attempt's end (the attempt's
    recipients, each with the reason of its previous attempt if it had one), `deferred` from
    the end of an attempt that left recipients deferred until the next entry (those
    recipients, each with that attempt's reason: the text of maillog.delivery_reason), and gone
    once removed (sent, bounced or expired). Queue ids, addresses and senders are maillog's, so
    a snapshot and the log of the same run name the same messages. Snapshot times are run
    seconds; a snapshot's `time` is epoch + that. Memory: one record per message queued at a
    snapshot time, plus one per message in the queue.
    """

    def __init__(self, times, epoch: float | None = None):
        from sim.postfix import maillog
        self.ml = maillog
        self.times = np.sort(np.asarray(times, dtype=float))
        self.epoch = maillog.DEFAULT_EPOCH if epoch is None else float(epoch)
        self.found: list[list] = [[] for _ in self.times]
        self.live: dict[int, tuple] = {}  # qid -> (head row, last end, deferred rows)

    def _put(self, queue: str, lo: float, hi: float, head: tuple, rcpts: list) -> None:
        i0, i1 = np.searchsorted(self.times, [lo, hi], side="left")
        for i in range(i0, i1):
            self.found[i].append((queue, head, rcpts))

    def write(self, batch: np.ndarray) -> None:
        """Add one batch of the attempt stream."""
        ml = self.ml
        if batch.dtype != ml.ATTEMPT:
            raise ValueError(f"batch dtype {batch.dtype}; expected maillog.ATTEMPT")
        rows = batch.tolist()
        i = 0
        while i < len(rows):
            j = i + 1
            while j < len(rows) and rows[j][0] == rows[i][0] and rows[j][12] == rows[i][12]:
                j += 1
            self._attempt(rows[i:j])
            i = j

    def _attempt(self, att: list) -> None:
        ml = self.ml
        head = att[0]
        qid, entry = head[0], head[7]
        end = max(r[9] for r in att)
        prev = self.live.pop(qid, None)
        if prev is None:
            self._put("incoming", head[6], entry, head, [(r[1], r[2], None) for r in att])
            reasons = {}
        else:
            self._put("deferred", prev[1], entry, prev[0], prev[2])
            reasons = {rc: code for rc, _u, code in prev[2]}
        self._put("active", entry, end, head, [(r[1], r[2], reasons.get(r[1])) for r in att])
        left = [(r[1], r[2], r[11]) for r in att if r[10] == ml.DEFERRED]
        if left:
            self.live[qid] = (head, end, left)

    def close(self) -> list[QueueSnapshot]:
        """One QueueSnapshot per snapshot time, in time order."""
        ml = self.ml
        for head, last, left in self.live.values():
            self._put("deferred", last, np.inf, head, left)
        self.live = {}
        out = []
        for t, found in zip(self.times, self.found, strict=True):
            found.sort(key=lambda f: (_SHOWQ_ORDER.index(f[0]), f[1][6], f[1][0]))
            msgs, rcpts = [], []
            for queue, h, rl in found:
                qid, kind, size, arrival = h[0], h[3], h[4], h[6]
                msgs.append((QUEUES.index(queue),
                             ml.queue_id(self.epoch + arrival, ml.INODE_BASE + 2 * qid),
                             round(self.epoch + arrival), size, False, kind == ml.NULL,
                             ml.sender_address(kind, qid), len(rl)))
                for rc, user, code in rl:
                    addr = ml.recipient_address(user, qid, rc)
                    reason = "" if code is None else ml.delivery_reason(code, user, addr)[1]
                    rcpts.append((addr, reason, *classify_reason(reason)))
            out.append(_snapshot(msgs, rcpts, self.epoch + float(t)))
        return out


# --- what postqueue -j does not show: wake-up times, and who the relay knows -------------------

def rebuild_wakeup(s: QueueSnapshot, p=None, grid: float | None = None,
                   mtimes: dict[str, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(wake-up time, next attempt) of each deferred message, Unix seconds (NaN for the other
    queues), with Postfix's own schedule (sim.model.schedules.postfix_retry; p: PostfixParams,
    default Postfix 3.x's). postqueue -j has no wake-up time (the deferred file's mtime), so it
    is rebuilt from arrival_time for a message deferred at every attempt: the first attempt at
    arrival, each later one at the first deferred-queue scan, on the grid grid + k *
    queue_run_delay, that finds mtime <= scan + 1, while that scan is not after the snapshot.
    The real qmgr's grid phase is unknown (default: a scan at the snapshot time), so each real
    attempt is within one queue_run_delay of a rebuilt one: the real next attempt is within
    queue_run_delay of the rebuilt one, or, when the last attempt falls within queue_run_delay
    of the snapshot time (it may have happened or not), one retry interval off. `mtimes`
    ({queue_id: mtime}, read_mtimes) replaces the rebuilt wake-up times where it has them.
    Lifetimes are not applied: a message older than its lifetime gets its times all the same
    (it would expire at that next attempt).
    """
    from sim.model.schedules import PostfixParams, next_queue_run, postfix_retry
    p = PostfixParams() if p is None else p
    R = int(p.queue_run_delay)
    wake = np.full(len(s), np.nan)
    nxt = np.full(len(s), np.nan)
    d = np.flatnonzero(s.in_queue("deferred"))
    if len(d) == 0:
        return wake, nxt
    now_abs = float(s.time)
    g = now_abs if grid is None else float(grid)
    # whole seconds since an origin on the scan grid, before every arrival (the schedule
    # functions count time like time_t, from a run start at a scan)
    origin = g - R * (np.ceil((g - s.arrival[d].min()) / R) + 1)
    create = np.floor(s.arrival[d] - origin).astype(np.int64)
    snap = int(np.floor(now_abs - origin))
    now = create.copy()
    w = np.zeros_like(now)
    todo = np.ones(len(d), dtype=bool)
    while todo.any():
        w_t, _ = postfix_retry(create[todo], now[todo], 1, -1, -1, p,
                               null_sender=s.null_sender[d][todo])
        n_t = next_queue_run(w_t, R, 1)
        w[todo] = w_t
        stay = n_t <= snap
        idx = np.flatnonzero(todo)
        now[idx[stay]] = n_t[stay]
        todo[idx[~stay]] = False
    wake[d] = w + origin
    nxt[d] = next_queue_run(w, R, 1) + origin
    if mtimes:
        for i in d:
            m = mtimes.get(str(s.queue_id[i]))
            if m is not None:
                wake[i] = m
                nxt[i] = next_queue_run(np.array([int(np.ceil(m - origin))]), R, 1)[0] + origin
    return wake, nxt


_RELAYSIM_USER = re.compile(r"^user(\d+)@", re.I)


def recipient_users(s: QueueSnapshot, known: dict[str, int] | None = None) -> np.ndarray:
    """The relay's user id of each recipient (int32), -1 for one the relay does not know.

    An address in `known` (address -> user id, compared in lower case; e.g. built from the
    relay's local_recipient_maps) is that user; otherwise relaysim's own `userN@` addresses
    (the ones its snapshots and logs write) are user N; every other address is unknown (-1),
    which is what a 4xx "User unknown" delay_reason says; a recipient deferred for another
    reason (a site failure, greylisting) needs `known` to be counted as a real user.
    """
    known = {k.lower(): v for k, v in (known or {}).items()}
    out = np.full(len(s.address), -1, dtype=np.int32)
    for j, a in enumerate(s.address.tolist()):
        a = a.lower()
        if a in known:
            out[j] = known[a]
        elif m := _RELAYSIM_USER.match(a):
            out[j] = int(m[1])
    return out


def initial_queue(s: QueueSnapshot, scenario, mtimes: dict[str, float] | None = None,
                  known: dict[str, int] | None = None):
    """(sim.model.qmgr.InitialQueue, held) for starting a run from snapshot `s`: the run's
    time 0 is the snapshot's time, every message keeps its real age (arrival and create time
    before 0), a null sender (<>) is the null sender, recipients map to relay users as
    recipient_users says, and forced_expire expires at the next deferral. Deferred messages
    wake up at rebuild_wakeup's time for Postfix (or the mtimes given); for another upstream
    MTA the same rebuild with that MTA's schedule (an attempt at arrival, then each at the
    next runner start after its wake-up time). maildrop, incoming and active messages are
    taken by the first tick. `held` counts the messages on hold: they stay held (never tried)
    and are left out of the run."""
    from sim.model.qmgr import InitialQueue, Policy
    from sim.model.sender import NULL
    up = scenario.upstream
    hold = s.in_queue("hold")
    users = recipient_users(s, known)
    n = len(s)
    nr = s.nrcpt
    width = max(int(nr.max()) if n else 1, 1)
    rcpt = np.full((n, width), -2, dtype=np.int32)
    for i in range(n):
        rcpt[i, :nr[i]] = users[s.first[i]:s.first[i + 1]]
    deferred = s.in_queue("deferred")
    if up.mta == "postfix":
        from sim.model.qmgr import schedule_params
        wake, _ = rebuild_wakeup(s, schedule_params(up), mtimes=mtimes)
    else:
        wake = _rebuild_any(s, Policy([up]), deferred)
        for i in np.flatnonzero(deferred) if mtimes else ():
            m = mtimes.get(str(s.queue_id[i]))
            wake[i] = wake[i] if m is None else m
    keep = ~hold
    rel = s.arrival - s.time
    q = InitialQueue(rel[keep], np.floor(rel[keep]),
                     np.where(s.null_sender[keep], NULL, 0).astype(np.int8),
                     s.size[keep].astype(np.int64), rcpt[keep], deferred[keep],
                     np.ceil(np.nan_to_num(wake[keep] - s.time, nan=0.0)),
                     s.forced_expire[keep])
    return q, int(hold.sum())


def _rebuild_any(s: QueueSnapshot, policy, deferred: np.ndarray) -> np.ndarray:
    """rebuild_wakeup with any schedule (sim.model.qmgr.Policy), on a runner grid through
    the snapshot's time (or each message at its own wake-up time without a grid)."""
    wake = np.full(len(s), np.nan)
    d = np.flatnonzero(deferred)
    if len(d) == 0:
        return wake
    R = policy.interval(0)
    origin = s.time - R * (np.ceil((s.time - s.arrival[d].min()) / R) + 1)
    create = np.floor(s.arrival[d] - origin).astype(np.int64)
    snap = int(np.floor(s.time - origin))
    now, tries = create.copy(), np.ones(len(d), dtype=np.int64)
    last_fail, last_next = np.full(len(d), -1), np.full(len(d), -1)
    w = np.zeros_like(now)
    todo = np.ones(len(d), dtype=bool)
    while todo.any():
        i = np.flatnonzero(todo)
        w_t, _ = policy.retry(0, create[i], now[i], tries[i], last_fail[i], last_next[i],
                              s.null_sender[d][i])
        n_t = np.asarray(policy.entry(w_t, 0), dtype=np.int64)
        w[i] = w_t
        stay = n_t <= snap
        last_fail[i[stay]], last_next[i[stay]] = now[i[stay]], w_t[stay]
        now[i[stay]], tries[i[stay]] = n_t[stay], tries[i[stay]] + 1
        todo[i[~stay]] = False
    wake[d] = w + origin
    return wake
