"""The mail log: Postfix 3.7's own log lines for the upstream and the relay, from an attempt stream.

Public names: ATTEMPT, SENT, DEFERRED, BOUNCED, EXPIRED, ORDINARY, NULL, FORGED, DEFAULT_EPOCH,
MaillogWriter, MaillogFolder, write_maillog, delivery_reason, delivery_status, format_tv, rfc3339,
queue_id, message_index, sender_address, recipient_address, read_attempts, read_arrivals, Arrivals,
unknown_recipients, directory_places, replay_start, replay_trace, UPSTREAM_HOST, RELAY_HOST,
RELAY_DOMAIN, INODE_BASE.

Contract (mta-semantics.md 6.3 and 6.4, formats.md 1b; format strings of PF37
src/global/log_adhoc.c, src/util/format_tv.c, src/smtpd/smtpd_check.c, src/qmgr/qmgr_active.c):
- ATTEMPT is the engine's attempt stream: one row per (attempt, recipient pending at it), the
  rows of one attempt adjacent, a batch in non-decreasing order of the attempts' start. Times
  are seconds since the run's start; `outcome` is SENT, DEFERRED, BOUNCED or EXPIRED (deferred
  at this attempt, then expired); `kind` is the sender: ORDINARY, NULL (<>) or FORGED; `code`
  is the relay's reply (250, 4xx, 5xx) or 0 when no connection was made.
- MaillogWriter(upstream, relay, epoch=DEFAULT_EPOCH) writes each host's lines to its own text
  stream (pflogsumm and the exporters summarise one MTA per file), syslog name `postfix`,
  host names UPSTREAM_HOST and RELAY_HOST, RFC 3339 stamps with microseconds in UTC
  (`2026-01-05T00:00:00.000000+00:00`), the run's time 0 being `epoch` (Unix s). Same stream
  and epoch, same bytes.
- Per attempt, on the upstream: at the first attempt (tries == 1), at arrival, smtpd `connect
  from`, `QID: client=`, cleanup `QID: message-id=<relaysim-N@upstream.example>` (N = qid, the
  lab parser's convention) and `disconnect from`; at entry qmgr `QID: from=<s>, size=N,
  nrcpt=N (queue active)`; at end one smtp delivery line per row, `to=<r>, relay=..., delay=,
  delays=a/b/c/d, dsn=, status=sent|deferred|bounced|SOFTBOUNCE (text)` (delivery_status;
  SOFTBOUNCE: a 5xx reply that the upstream's soft_bounce = yes deferred, dsn of class 4 and
  the relay's reply text), a = entry - arrival, b = start -
  entry, c = 0 (connection setup is not modelled), d = end - start, numbers as Postfix's
  format_tv prints them (format_tv); then, if a row expired, qmgr `from=<s>, status=expired,
  returned to sender`; if a row bounced or expired and the sender is not null, bounce `QID:
  sender non-delivery notification: DSNQID`; if no row stays deferred, qmgr `QID: removed`.
  Code 0 is `relay=none, ... dsn=4.4.1, status=deferred (connect to relay.example[127.0.0.1]:25:
  Connection refused)`; code SUSPENDED (the destination was dead) the error service's
  `relay=none, ... dsn=4.4.1, status=deferred (delivery temporarily suspended: connect to
  ...: Connection refused)`, as Postfix 3.7's retry transport logs it; code LOST (the relay
  went down during the session) `dsn=4.4.2, status=deferred (lost connection with
  relay.example[127.0.0.1] while sending RCPT TO)`, and on the relay only its `connect from`.
  The DSN's own delivery is not simulated and not logged.
- On the relay, per attempt with a connection: smtpd `connect from` at start; per recipient
  at start `NOQUEUE: reject: RCPT from ...: 450 4.1.1 <r>: Recipient address rejected: User
  unknown in local recipient table; from=<s> to=<r> proto=ESMTP helo=<upstream.example>`
  (the relay's queue id instead of NOQUEUE after a recipient was accepted, as smtpd does), or
  for the first accepted one `RQID: client=`; a 421 row is smtpd_hard_error_limit: `too many
  errors after RCPT from ...` once, no reject line; at end, when a recipient was accepted,
  cleanup `RQID: message-id=` and qmgr `RQID: from=<s>, size=, nrcpt= (queue active)` (the
  relay's onward delivery is not simulated), then `disconnect from ... commands=`.
  Texts by code: 250 `Ok: queued as RQID`; 450/550 to an unknown user (user -1) 4.1.1/5.1.1
  "User unknown in local recipient table"; 450 to a known user: postgrey's "Greylisted";
  451 4.3.0 "Temporary lookup failure"; other codes a generic "Access denied".
- Queue ids are Postfix's short ones: five hex digits of the microseconds of the time the
  file was made, then the inode number in hex. relaysim's inodes are INODE_BASE + 2 qid for
  message qid and + 1 for its DSN on the upstream, INODE_BASE + a counter of accepted
  transactions on the relay: unique within a run and a host. message_index() maps a queue id
  back to qid.
- Streaming: memory is bounded by about 1.5 `hold` lines per host: lines wait ordered by
  (time, order written), all but the latest `hold` are written every hold // 2 new lines, and
  all at close(). Output is in time order whenever no line is more than `hold` lines late
  (an attempt's start order leaves arrival and entry lines a little late);
  stats["out_of_order"] counts the lines written earlier than a line already written.
  `window=(t0, t1)` keeps only lines with t0 <= t < t1 (run seconds); `sample=f` keeps a
  deterministic fraction f of the messages (by a hash of qid), all their lines or none.
- read_arrivals(log) reads the arrival process of a real upstream Postfix log (for replay):
  see its docstring; unknown_recipients is how a recipient is told unknown (the relay's own
  reply in the log: X.1.1), replay_start the replay's time 0 (the log's daemon start, on its
  own deferred-scan grid), directory_places the queue files' order in the deferred scans
  (Arrivals.directory_order), replay_trace the sim.model.trace.Trace a run takes.
- read_attempts(upstream_log) reads a relaysim upstream log back into an ATTEMPT array (log
  order): times to the microsecond of the stamps, start = end - d to format_tv's resolution.
Errors: ValueError for a batch that is not of dtype ATTEMPT or a bad window/sample;
read_arrivals: ScenarioError (key MAILLOG) for a file that is not a regular readable file or
has no line of Postfix's.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

import numpy as np

from sim.model.qmgr import ATTEMPT  # noqa: E402  the engine's attempt stream
from sim.model.qmgr.queue_file import EXPIRED  # noqa: E402
from sim.model.qmgr.rules import LOST, NO_SESSION, SUSPENDED  # noqa: E402
from sim.model.relay import BOUNCED, DEFERRED, SENT  # noqa: E402
from sim.model.sender import FORGED, NULL  # noqa: E402

ORDINARY = 0
#: Monday 2026-01-05 00:00:00 UTC: the default time 0 of a run's log
DEFAULT_EPOCH = dt.datetime(2026, 1, 5, tzinfo=dt.UTC).timestamp()

UPSTREAM_HOST, RELAY_HOST = "upstream.example", "relay.example"
RELAY_DOMAIN = "example.com"
_RELAY = f"{RELAY_HOST}[127.0.0.1]"
_RELAY_PORT = f"{_RELAY}:25"
_UP_CLIENT = f"{UPSTREAM_HOST}[127.0.0.1]"
_SENDER_CLIENT = "mail.sender.example[192.0.2.1]"
_SENDER_DOMAIN = {ORDINARY: "sender.example", FORGED: "forged.example"}
INODE_BASE = 0x100000
_PID = {"smtpd": 2101, "cleanup": 2102, "qmgr": 2100, "smtp": 2103, "bounce": 2104,
        "error": 2105}
_GOLDEN = 0x9E3779B97F4A7C15


def format_tv(seconds: float, sig_dig: int = 2, max_dig: int = 2) -> str:
    """A delay as Postfix prints it (format_tv.c with delay_logging_resolution_limit =
    max_dig): whole seconds from 10 s, one decimal from 1 s, else sig_dig significant digits
    and at most max_dig decimals; trailing zeros dropped."""
    us = max(0, round(seconds * 1e6))
    if sig_dig == 2 and max_dig == 2 and us >= 1_000_000:  # the common cases, same result
        if us >= 9_950_000:
            return str((us + 500_000) // 1_000_000)
        sec, usec = divmod(us + 50_000, 1_000_000)
        return f"{sec}.{usec // 100_000}" if usec >= 100_000 else str(sec)
    sec, usec = divmod(us, 1_000_000)
    ures, wid = 1_000_000 // 10 ** max_dig, 10 ** sig_dig
    if ures < 1_000_000:
        if sec > 0:
            n = 1
            while sec >= n and n <= wid // 10:
                n *= 10
            ures = (1_000_000 // wid) * n
        else:
            while usec >= wid * ures:
                ures *= 10
    if ures > 1:
        usec += ures // 2
        if usec >= 1_000_000:
            sec, usec = sec + 1, usec - 1_000_000
    out = str(sec)
    if usec >= ures:
        digits, rem, n = [], usec, 100_000
        while rem >= ures and n > 0:
            digits.append(str(rem // n))
            rem %= n
            n //= 10
        out += "." + "".join(digits)
    return out


def rfc3339(t: float) -> str:
    """Unix time t as an RFC 3339 stamp in UTC with microseconds."""
    us = round(t * 1e6)
    return (dt.datetime.fromtimestamp(us // 1_000_000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
            + f".{us % 1_000_000:06d}+00:00")


def queue_id(t: float, inode: int) -> str:
    """Postfix's short queue id for a file made at Unix time t with this inode number."""
    return f"{round(t * 1e6) % 1_000_000:05X}{inode:X}"


def message_index(qid: str) -> int:
    """The qid of a relaysim upstream queue id (-1 for a DSN's or a foreign id)."""
    try:
        inode = int(qid[5:], 16) - INODE_BASE
    except ValueError:
        return -1
    return inode // 2 if inode >= 0 and inode % 2 == 0 else -1


def sender_address(kind: int, qid: int) -> str:
    """The envelope sender of message qid: '' for the null sender."""
    return "" if kind == NULL else f"{'forged' if kind == FORGED else 'sender'}{qid}@" \
        + _SENDER_DOMAIN.get(kind, "sender.example")


def recipient_address(user: int, qid: int, rcpt: int) -> str:
    """A recipient at the relay's domain: userU for relay user U, unknownQ.R for one unknown."""
    return f"user{user}@{RELAY_DOMAIN}" if user >= 0 else f"unknown{qid}.{rcpt}@{RELAY_DOMAIN}"


def _reply(code: int, user: int, rcpt: str, rqid: str) -> tuple[str, str]:
    """(dsn, reply text) of the relay's answer."""
    if code == 250:
        return "2.0.0", f"250 2.0.0 Ok: queued as {rqid}"
    if code == 421:
        return "4.7.0", f"421 4.7.0 {RELAY_HOST} Error: too many errors"
    if code in (450, 550) and user < 0:
        d = f"{code // 100}.1.1"
        return d, (f"{code} {d} <{rcpt}>: Recipient address rejected: User unknown in local "
                   "recipient table")
    if code == 450:
        return "4.2.0", (f"450 4.2.0 <{rcpt}>: Recipient address rejected: Greylisted, see "
                         f"http://postgrey.schweikert.ch/help/{RELAY_DOMAIN}.html")
    if code == 451:
        return "4.3.0", f"451 4.3.0 <{rcpt}>: Temporary lookup failure"
    d = f"{code // 100}.7.1"
    return d, f"{code} {d} <{rcpt}>: Recipient address rejected: Access denied"


def delivery_reason(code: int, user: int, rcpt: str, rqid: str = "") -> tuple[str, str]:
    """(dsn, text in the parentheses of status=...) of the upstream's delivery line for one
    recipient; the same text is the recipient's delay_reason in postqueue -j."""
    if code == 0:
        return "4.4.1", f"connect to {_RELAY_PORT}: Connection refused"
    if code == SUSPENDED:  # qmgr defers it with the reason that made the destination dead
        return "4.4.1", f"delivery temporarily suspended: connect to {_RELAY_PORT}: Connection " \
            "refused"
    if code == LOST:
        return "4.4.2", f"lost connection with {_RELAY} while sending RCPT TO"
    dsn, reply = _reply(code, user, rcpt, rqid)
    return dsn, reply if code == 250 else f"host {_RELAY} said: {reply} (in reply to RCPT TO " \
        "command)"


def delivery_status(outcome: np.ndarray, code: np.ndarray) -> np.ndarray:
    """status= of the upstream's delivery line per row: sent, bounced, deferred (also when
    the message then expired), or SOFTBOUNCE for a 5xx reply that the upstream deferred
    (soft_bounce = yes: global/bounce.c bounce_append_intern logs it so, with the dsn's
    class changed to 4)."""
    return np.where(outcome == SENT, "sent", np.where(outcome == BOUNCED, "bounced", np.where(
        code >= 500, "SOFTBOUNCE", "deferred")))


def _commands(accepted: int, n: int) -> str:
    def c(name, ok, tot):
        return f" {name}={ok}" if ok == tot else f" {name}={ok}/{tot}"
    data = 1 if accepted else 0
    ok, tot = 3 + accepted + data, 3 + n + data
    return ("ehlo=1 mail=1" + c("rcpt", accepted, n) + (" data=1" if data else "")
            + " quit=1" + c("commands", ok, tot))


class _Host:
    """One host's output: lines waiting in time order (at most about `hold`), a stamp cache.

    Lines are added unsorted; every hold // 2 of them are sorted and merged into the waiting
    ones (timsort merges the two runs in one pass), and all but the latest `hold` are written.
    """

    def __init__(self, out: TextIO, host: str, epoch: float, hold: int):
        self.out, self.host, self.epoch, self.hold = out, host, epoch, hold
        self.waiting: list = []
        self.new: list = []
        self.chunk = max(1, hold // 2)
        self.order = 0
        self.last = -np.inf
        self.lines = self.out_of_order = 0
        self.prefix = {s: f"+00:00 {host} postfix/{s}[{p}]: " for s, p in _PID.items()}
        self._stamps: dict[int, str] = {}

    def add(self, t: float, service: str, text: str) -> None:
        self.new.append((t, self.order, self.prefix[service] + text))
        self.order += 1
        if len(self.new) >= self.chunk:
            self._settle(self.hold)

    def _settle(self, keep: int) -> None:
        self.new.sort()
        w = self.waiting
        w += self.new
        self.new = []
        w.sort()
        if len(w) > keep:
            self._emit(w[:len(w) - keep])
            del w[:len(w) - keep]

    def _stamp(self, sec: int) -> str:
        st = self._stamps.get(sec)
        if st is None:
            if len(self._stamps) > 100_000:
                self._stamps.clear()
            st = dt.datetime.fromtimestamp(sec, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.")
            self._stamps[sec] = st
        return st

    def _emit(self, lines: list) -> None:
        t = np.fromiter((x[0] for x in lines), dtype=float, count=len(lines))
        if t[0] < self.last:
            self.out_of_order += int((t < self.last).sum())
        self.out_of_order += int((t[1:] < np.maximum.accumulate(t)[:-1]).sum())
        self.last = max(self.last, float(t.max()))
        us = np.round((self.epoch + t) * 1e6).astype(np.int64)
        sec, frac = np.divmod(us, 1_000_000)
        stamp = self._stamp
        self.out.write("".join([f"{stamp(s)}{f:06d}{x[2]}\n" for s, f, x in
                                zip(sec.tolist(), frac.tolist(), lines, strict=True)]))
        self.lines += len(lines)

    def flush(self) -> None:
        self._settle(0)


class MaillogWriter:
    """Writes an attempt stream as two Postfix logs; see the module contract."""

    def __init__(self, upstream: TextIO, relay: TextIO, epoch: float = DEFAULT_EPOCH,
                 window: tuple[float, float] | None = None, sample: float = 1.0,
                 hold: int = 100_000):
        if window is not None and not window[0] < window[1]:
            raise ValueError(f"window {window}: the start must be before the end")
        if not 0 < sample <= 1:
            raise ValueError(f"sample {sample}: a fraction in (0, 1]")
        self.epoch = float(epoch)
        self.window = window
        self.sample = sample
        self.up = _Host(upstream, UPSTREAM_HOST, self.epoch, hold)
        self.relay = _Host(relay, RELAY_HOST, self.epoch, hold)
        self.accepted = 0  # relay transactions with an accepted recipient (relay inodes)

    def _keep(self, qid: int) -> bool:
        return self.sample >= 1 or ((qid * _GOLDEN) & 0xFFFFFFFF) < self.sample * 2 ** 32

    def write(self, batch: np.ndarray) -> None:
        """Add one batch of the attempt stream."""
        if batch.dtype != ATTEMPT:
            raise ValueError(f"batch dtype {batch.dtype}; expected maillog.ATTEMPT")
        if len(batch) == 0:
            return
        q, tr = batch["qid"], batch["tries"]
        cut = np.flatnonzero((q[1:] != q[:-1]) | (tr[1:] != tr[:-1])) + 1
        bounds = np.concatenate([[0], cut, [len(batch)]])
        rows = batch.tolist()
        status = delivery_status(batch["outcome"], batch["code"]).tolist()
        for i in range(len(bounds) - 1):
            att = rows[bounds[i]:bounds[i + 1]]
            if self._keep(att[0][0]):
                self._attempt(att, status[bounds[i]:bounds[i + 1]])

    def _add(self, host: _Host, t: float, service: str, text: str) -> None:
        w = self.window
        if w is None or w[0] <= t < w[1]:
            host.add(t, service, text)

    def _attempt(self, att: list, statuses: list) -> None:
        qid, _, _, kind, size, nrcpt, arrival, entry, start, _, _, code0, tries = att[0]
        end = max(r[9] for r in att)
        sender = sender_address(kind, qid)
        qid_s = queue_id(self.epoch + arrival, INODE_BASE + 2 * qid)
        up, add = self.up, self._add
        if tries == 1:
            add(up, arrival, "smtpd", f"connect from {_SENDER_CLIENT}")
            add(up, arrival, "smtpd", f"{qid_s}: client={_SENDER_CLIENT}")
            add(up, arrival, "cleanup", f"{qid_s}: message-id=<relaysim-{qid}@{UPSTREAM_HOST}>")
            add(up, arrival, "smtpd", f"disconnect from {_SENDER_CLIENT} "
                + _commands(nrcpt, nrcpt))
        add(up, entry, "qmgr", f"{qid_s}: from=<{sender}>, size={size}, nrcpt={nrcpt} "
            "(queue active)")
        rqid = self._relay_session(att, sender) if code0 not in NO_SESSION else ""
        a = format_tv(entry - arrival)
        b = format_tv(start - entry)
        deferred = expired = bounced = False
        for (_q, rcpt, user, _k, _s, _n, _a, _e, st, en, outcome, code, _t), status in zip(
                att, statuses, strict=True):
            to = recipient_address(user, qid, rcpt)
            delays = f"delay={format_tv(en - arrival)}, delays={a}/{b}/0/{format_tv(en - st)}"
            dsn, said = delivery_reason(code, user, to, rqid)
            if status == "SOFTBOUNCE":
                dsn = "4" + dsn[1:]
            relay = "none" if code in NO_SESSION else _RELAY_PORT
            # qmgr hands mail for a dead destination to the retry service (error(8))
            add(up, en, "error" if code == SUSPENDED else "smtp", f"{qid_s}: to=<{to}>, "
                f"relay={relay}, {delays}, dsn={dsn}, status={status} ({said})")
            deferred |= outcome == DEFERRED
            expired |= outcome == EXPIRED
            bounced |= outcome == BOUNCED
        if expired:
            add(up, end, "qmgr", f"{qid_s}: from=<{sender}>, status=expired, returned to sender")
        if (bounced or expired) and kind != NULL:
            dsn_id = queue_id(self.epoch + end, INODE_BASE + 2 * qid + 1)
            add(up, end, "bounce", f"{qid_s}: sender non-delivery notification: {dsn_id}")
        if not deferred:
            add(up, end, "qmgr", f"{qid_s}: removed")

    def _relay_session(self, att: list, sender: str) -> str:
        """The relay's lines of one session; returns its queue id ('' if nothing accepted)."""
        relay, add = self.relay, self._add
        qid, _, _, _, size, _, _, _, start, _, _, _, _ = att[0]
        end = max(r[9] for r in att)
        add(relay, start, "smtpd", f"connect from {_UP_CLIENT}")
        if att[0][11] == LOST:  # the relay went down during the session: nothing more
            return ""
        rqid, accepted = "", 0
        for (_q, rcpt, user, _k, _s, _n, _a, _e, _st, _en, _o, code, _t) in att:
            to = recipient_address(user, qid, rcpt)
            if code == 250:
                if not rqid:
                    rqid = queue_id(self.epoch + start, INODE_BASE + self.accepted)
                    self.accepted += 1
                    add(relay, start, "smtpd", f"{rqid}: client={_UP_CLIENT}")
                accepted += 1
            elif code == 421:
                add(relay, start, "smtpd", f"too many errors after RCPT from {_UP_CLIENT}")
                break
            else:
                _, reply = _reply(code, user, to, "")
                add(relay, start, "smtpd", f"{rqid or 'NOQUEUE'}: reject: RCPT from "
                    f"{_UP_CLIENT}: {reply}; from=<{sender}> to=<{to}> proto=ESMTP "
                    f"helo=<{UPSTREAM_HOST}>")
        if rqid:
            add(relay, end, "cleanup", f"{rqid}: message-id=<relaysim-{qid}@{UPSTREAM_HOST}>")
            add(relay, end, "qmgr", f"{rqid}: from=<{sender}>, size={size}, nrcpt={accepted} "
                "(queue active)")
        add(relay, end, "smtpd", f"disconnect from {_UP_CLIENT} " + _commands(accepted, len(att)))
        return rqid

    def close(self) -> dict:
        """Write every held line; the stats {host: {lines, out_of_order}}."""
        for h in (self.up, self.relay):
            h.flush()
        return {h.host: {"lines": h.lines, "out_of_order": h.out_of_order}
                for h in (self.up, self.relay)}


class MaillogFolder:
    """A MaillogWriter into folder/upstream.maillog and folder/relay.maillog for a run that
    hands its batches over as it goes: write(batch) any number of times, then close() (the
    files appear, renamed from temporary names) or abort() (nothing is left). As a context
    manager it closes on success and aborts on an exception."""

    def __init__(self, folder: Path | str, **options):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.names = {h: self.folder / f"{h}.maillog" for h in ("upstream", "relay")}
        self.tmps = {h: p.with_name(f".{p.name}.tmp") for h, p in self.names.items()}
        self.files = {h: t.open("w") for h, t in self.tmps.items()}
        try:
            self.writer = MaillogWriter(self.files["upstream"], self.files["relay"], **options)
        except BaseException:
            self.abort()
            raise

    def write(self, batch: np.ndarray) -> None:
        self.writer.write(batch)

    def close(self) -> dict:
        """Flush, rename into place; the writer's stats."""
        try:
            stats = self.writer.close()
            for f in self.files.values():
                f.close()
            for h in self.names:
                self.tmps[h].replace(self.names[h])
            return stats
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the temporary files (after close(): nothing left to drop)."""
        for f in self.files.values():
            f.close()
        for t in self.tmps.values():
            t.unlink(missing_ok=True)

    def __enter__(self) -> MaillogFolder:
        return self

    def __exit__(self, kind, *_) -> None:
        if kind is None:
            self.stats = self.close()
        else:
            self.abort()


def write_maillog(batches: Iterable[np.ndarray], folder: Path | str, **options) -> dict:
    """MaillogFolder over a whole stream; the writer's stats (nothing half-written on error)."""
    with MaillogFolder(folder, **options) as out:
        for b in batches:
            out.write(b)
    return out.stats


# --- reading relaysim's own upstream log back --------------------------------------------------

_LINE = re.compile(r"^(\S+) \S+ postfix/(\w+)\[\d+\]: (\w+): (.*)$")
_TO = re.compile(r"to=<([^>]*)>, relay=(\S+), delay=[\d.]+, delays=([\d.]+)/([\d.]+)/([\d.]+)/"
                 r"([\d.]+), dsn=[\d.]+, status=(\w+) \((.*)\)$")
_FROM = re.compile(r"from=<([^>]*)>, size=(\d+), nrcpt=(\d+) \(queue active\)$")
_USER = re.compile(r"^(?:user(\d+)|unknown\d+\.\d+)@")
_SAID = re.compile(r" said: (\d{3}) ")
_MSGID = re.compile(r"message-id=<relaysim-(\d+)@")


def read_attempts(path: Path | str, epoch: float = DEFAULT_EPOCH) -> np.ndarray:
    """The attempt rows of a relaysim upstream log (see the module contract), in log order."""
    rows: list[list] = []
    msg: dict[str, dict] = {}
    with Path(path).open() as f:
        for line in f:
            m = _LINE.match(line)
            if not m:
                continue
            t = dt.datetime.fromisoformat(m[1]).timestamp() - epoch
            service, qs, rest = m[2], m[3], m[4]
            s = msg.get(qs)
            if service == "cleanup" and (k := _MSGID.match(rest)):
                msg[qs] = s = {"qid": int(k[1]), "arrival": t, "cols": [], "tries": 0,
                               "last": []}
            if s is None:
                continue
            if service == "smtpd" and rest.startswith("client="):
                s["arrival"] = t
            elif service == "qmgr" and (k := _FROM.match(rest)):
                kind = NULL if not k[1] else FORGED if k[1].startswith("forged") else ORDINARY
                s.update(kind=kind, size=int(k[2]), nrcpt=int(k[3]), entry=t, last=[],
                         tries=s["tries"] + 1, used=set())
            elif service in ("smtp", "error") and (k := _TO.match(rest)):
                addr = k[1]
                if s["tries"] == 1:
                    s["cols"].append(addr)
                col = next(j for j, a in enumerate(s["cols"])
                           if a == addr and j not in s["used"])
                s["used"].add(col)
                u = _USER.match(addr)
                user = int(u[1]) if u and u[1] else -1
                status = k[7]
                outcome = SENT if status == "sent" else BOUNCED if status == "bounced" \
                    else DEFERRED
                code = 250 if status == "sent" else int(c[1]) if (c := _SAID.search(k[8])) \
                    else LOST if k[8].startswith("lost connection") else SUSPENDED if \
                    k[8].startswith("delivery temporarily suspended") else 0
                start = t - float(k[6]) - float(k[5])
                s["last"].append(len(rows))
                rows.append([s["qid"], col, user, s["kind"], s["size"], s["nrcpt"],
                             s["arrival"], s["entry"], start, t, outcome, code, s["tries"]])
            elif service == "qmgr" and "status=expired" in rest:
                for i in s["last"]:
                    if rows[i][10] == DEFERRED:
                        rows[i][10] = EXPIRED
            elif service == "qmgr" and rest == "removed":
                del msg[qs]
    return np.array([tuple(r) for r in rows], dtype=ATTEMPT)


# --- replay: the arrival process of a real upstream Postfix log --------------------------------

_SYSLOG = re.compile(
    r"^(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)?|\d{4}-\d\d-\d\dT\S+) "
    r"(?P<host>\S+) (?P<prog>[^\[:\s]+)(?:\[\d+\])?: (?P<text>.*)$")
_PF = re.compile(r"^(?P<name>postfix[\w.-]*)/(?:(?:smtps|submission)/)?(?P<service>[\w-]+)$")
_ARRIVE = re.compile(r"^(?P<qid>[0-9A-Za-z]+): (?:client=|uid=\d+ from=<)")
_ACTIVE = re.compile(r"^(?P<qid>[0-9A-Za-z]+): from=<(?P<sender>[^>]*)>, size=(?P<size>\d+), "
                     r"nrcpt=(?P<nrcpt>\d+) \(queue active\)$")
_RCPT = re.compile(r"^(?P<qid>[0-9A-Za-z]+): to=<(?P<rcpt>[^>]*)>, (?:orig_to=<[^>]*>, )?"
                   r"relay=(?P<relay>\S+), .*?dsn=(?P<dsn>[\d.]+), status=(?P<status>\w+) "
                   r"\((?P<text>.*)\)$")
_STARTED = re.compile(r"^daemon started")
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"), 1)}


class Arrivals:
    """The arrivals of a real upstream log (read_arrivals): per message queue_id, t (Unix s),
    size (bytes), nrcpt, null_sender, sender, and its recipients address[first[i]:first[i+1]]
    in the order the log first shows them (delivery lines; a message whose recipients never
    reach a delivery line has none listed), each with `unknown`, the relay's verdict
    (unknown_recipients); `started` is the Unix time of the last `postfix/master: daemon
    started` line before the first arrival (None without one), `last` that of the log's last
    Postfix line, `retries` those of the qmgr `(queue active)` lines after a message's first
    (its retries: a deferred-queue scan took it) and `scanned` the message of each of them;
    `report` counts the lines. directory_order() is the order of the deferred scans."""

    def __init__(self, rows: list, addresses: list, report: dict, started=None,
                 last: float | None = None, retries=(), scanned=()):
        self.queue_id = np.array([r[0] for r in rows], dtype=str)
        self.t = np.array([r[1] for r in rows], dtype=float)
        self.size = np.array([r[2] for r in rows], dtype=np.int64)
        self.nrcpt = np.array([r[3] for r in rows], dtype=np.int32)
        self.sender = np.array([r[4] for r in rows], dtype=str)
        self.null_sender = np.array([r[4] == "" for r in rows], dtype=bool)
        self.first = np.concatenate([[0], np.cumsum([len(a) for a in addresses])]).astype(
            np.int64)
        self.address = np.array([x for a in addresses for x, _ in a], dtype=str)
        said = [v for a in addresses for _, v in a]
        self.unknown = unknown_recipients(self.address, said)
        self.started, self.last = started, last
        self.retries = np.array(retries, dtype=float)
        self.scanned = np.array(scanned, dtype=np.int64)
        self.report = report

    def __len__(self) -> int:
        return len(self.t)

    def directory_order(self) -> np.ndarray:
        """Each message's place in [0, 1) in the order Postfix's deferred scans read the queue
        files (directory_places): a scan is the retry `(queue active)` lines of one whole
        second, in log order."""
        sec = np.floor(self.retries)
        cut = np.flatnonzero(np.diff(sec)) + 1
        return directory_places(self.queue_id.tolist(),
                                [s.tolist() for s in np.split(self.scanned, cut)])


def directory_places(queue_ids: list[str], scans: list[list[int]]) -> np.ndarray:
    """Each message's place in [0, 1) in the order Postfix's deferred scans read the queue
    files (sim.model.qmgr.rules.file_place: directory order, fixed per file), from the scans
    a log shows (each a list of message numbers in the order qmgr took them): a topological
    order (Kahn's) of "each comes before the next in its scan". Messages the log leaves
    unordered, or orders both ways (scans disagreeing), go by a crc32 hash of their queue ids,
    which stands for the directory's own hash."""
    import heapq
    import zlib
    n = len(queue_ids)
    tie = [zlib.crc32(q.encode()) for q in queue_ids]
    after: list[set] = [set() for _ in range(n)]
    for scan in scans:
        for a, b in zip(scan, scan[1:], strict=False):
            if a != b:
                after[a].add(b)
    indeg = [0] * n
    for a in after:
        for b in a:
            indeg[b] += 1
    ready = [(tie[i], i) for i in range(n) if indeg[i] == 0]
    heapq.heapify(ready)
    left = set(range(n))
    rank = np.empty(n, dtype=float)
    for r in range(n):
        if ready:
            i = heapq.heappop(ready)[1]
        else:  # a cycle: the scans disagree; the least hash goes first
            i = min(left, key=lambda m: (indeg[m], tie[m]))
        left.discard(i)
        rank[i] = r
        for b in after[i]:
            if b in left:
                indeg[b] -= 1
                if indeg[b] == 0:
                    heapq.heappush(ready, (tie[b], b))
    return rank / max(n, 1)


_UNKNOWN_DSN = re.compile(r"^[45]\.1\.1$")


def unknown_recipients(address: np.ndarray, said: list) -> np.ndarray:
    """Whether each recipient row is unknown at the relay, from the relay's own replies in
    the log: `said[i]` is True when a delivery line of row i carries the relay's reply with
    enhanced status X.1.1 (bad destination mailbox: "User unknown in local recipient table",
    450 or 550), False when the relay answered it otherwise (250, greylisting, ...), None when
    no reply of the relay reached it (connection refused, delivery suspended, not tried).
    A row without a reply takes its address's verdict elsewhere in the log (unknown if the
    relay ever called it unknown), else it is known."""
    said = list(said)
    bad = {a for a, v in zip(address.tolist(), said, strict=True) if v}
    return np.array([v if v is not None else a in bad
                     for a, v in zip(address.tolist(), said, strict=True)], dtype=bool)


def _stamp(ts: str, year: int, last: list) -> float:
    if ts[0].isdigit():
        return dt.datetime.fromisoformat(ts).timestamp()
    mon = _MONTHS[ts[:3]]
    if last and mon < last[0]:
        last[1] += 1  # the log ran over a year end
    if not last:
        last.extend([mon, year])
    last[0] = mon
    main, _, frac = ts.partition(".")
    t = dt.datetime.strptime(f"{last[1]} {main}", "%Y %b %d %H:%M:%S").replace(tzinfo=dt.UTC)
    return t.timestamp() + (float("0." + frac) if frac else 0.0)


def _verdict(relay: str, dsn: str, status: str, text: str) -> bool | None:
    """The relay's word on one delivery line (unknown_recipients): True for a reply with
    X.1.1, False for another reply, None when the relay said nothing."""
    if " said: " in text:
        return bool(_UNKNOWN_DSN.match(dsn))
    return False if status == "sent" and relay != "none" else None


def read_arrivals(path: Path | str, year: int | None = None) -> Arrivals:
    """The arrival process (times, sizes, recipients, null or ordinary senders) of a real
    upstream Postfix log, for replaying it under another configuration.

    A message arrives at its smtpd `QID: client=` line (or pickup's `uid= from=<`); its sender,
    size and nrcpt are those of its first qmgr `(queue active)` line; DSNs Postfix makes itself
    have neither and are not arrivals. A queue id is a new message again after qmgr's `QID:
    removed`. Recipients and the relay's verdict on them (unknown_recipients) come from the
    delivery lines (`QID: to=<...>, relay=..., dsn=..., status=... (...)`). Any syslog name
    starting with `postfix` counts (the lab logs as postfix-upstream). Traditional stamps have
    no year: `year` (default: this year) is the first line's, one more after each
    December-to-January turn; they are read as UTC, RFC 3339 stamps as written. report:
    lines, postfix (lines of Postfix), unrelated (syslog lines of other programs), malformed
    (not syslog lines), messages, without_qmgr (arrived, never active: left out). Never fatal
    for bad lines; ScenarioError if no line is Postfix's (or the file cannot be read as a
    regular file).
    """
    from sim.errors import ScenarioError
    year = dt.date.today().year if year is None else year
    report = dict.fromkeys(("lines", "postfix", "unrelated", "malformed", "messages",
                            "without_qmgr"), 0)
    msgs: list[list] = []  # queue_id, t, size, nrcpt, sender
    rcpts: list[dict] = []  # per message: address -> the relay's verdict so far
    live: dict[str, int] = {}  # queue id -> its message (until qmgr removes it)
    last: list = []
    started = None
    final = ""
    retries: list[float] = []
    scanned: list[int] = []
    with _open_log(path) as f:
        for raw in f:
            report["lines"] += 1
            m = _SYSLOG.match(raw.rstrip("\n"))
            if not m:
                report["malformed"] += 1
                continue
            p = _PF.match(m["prog"])
            if not p:
                report["unrelated"] += 1
                continue
            report["postfix"] += 1
            final = m["ts"]
            service, text = p["service"], m["text"]
            if service in ("smtpd", "pickup") and (k := _ARRIVE.match(text)):
                if k["qid"] not in live:
                    live[k["qid"]] = len(msgs)
                    msgs.append([k["qid"], _stamp(m["ts"], year, last), None, None, None])
                    rcpts.append({})
            elif service == "qmgr" and (k := _ACTIVE.match(text)):
                i = live.get(k["qid"])
                if i is not None and msgs[i][2] is None:
                    msgs[i][2:5] = int(k["size"]), int(k["nrcpt"]), k["sender"]
                elif i is not None:
                    retries.append(_stamp(m["ts"], year, last))
                    scanned.append(i)
            elif service == "qmgr" and text.endswith(": removed"):
                live.pop(text[:-len(": removed")], None)
            elif (k := _RCPT.match(text)) and (i := live.get(k["qid"])) is not None:
                v = _verdict(k["relay"], k["dsn"], k["status"], k["text"])
                seen = rcpts[i].get(k["rcpt"], None)
                rcpts[i][k["rcpt"]] = v if seen is None else seen or bool(v)
            elif service == "master" and not msgs and _STARTED.match(text):
                started = _stamp(m["ts"], year, last)
    if report["postfix"] == 0:
        raise ScenarioError("MAILLOG", str(path), "a Postfix mail log; this is not a Postfix "
                            f"log: none of its {report['lines']} lines is a syslog line of "
                            "Postfix (`postfix/smtpd[pid]: ...`)")
    done = [i for i, r in enumerate(msgs) if r[2] is not None]
    report["messages"] = len(done)
    report["without_qmgr"] = len(msgs) - len(done)
    new = {i: j for j, i in enumerate(done)}
    return Arrivals([msgs[i] for i in done], [list(rcpts[i].items()) for i in done], report,
                    started, _stamp(final, year, last), retries, [new[i] for i in scanned])


def _open_log(path: Path | str):
    """The log as text (bad bytes replaced: a log line is mostly ASCII); ScenarioError for
    a missing file, a folder or anything but a regular file (a FIFO would block)."""
    import os
    import stat

    from sim.errors import ScenarioError
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ScenarioError("MAILLOG", str(path), "an existing file") from None
    except (OSError, ValueError) as e:
        raise ScenarioError("MAILLOG", str(path), "a readable file "
                            f"({getattr(e, 'strerror', None) or e})") from None
    if not stat.S_ISREG(mode):
        raise ScenarioError("MAILLOG", str(path), "a regular text file ("
                            + ("a folder" if stat.S_ISDIR(mode) else "not a regular file") + ")")
    try:
        return Path(path).open(errors="replace")
    except OSError as e:
        raise ScenarioError("MAILLOG", str(path), f"a readable file ({e.strerror})") from None


def replay_start(arrivals: Arrivals, queue_run_delay: float | None = None) -> float:
    """The Unix time a replay's time 0 stands for: the whole second of the log's `daemon
    started` line before the first arrival (the qmgr's timer starts with it), else the first
    arrival's; with `queue_run_delay` (a Postfix upstream) moved onto the log's own
    deferred-queue scan grid, the residue modulo queue_run_delay that most retries' whole
    seconds share, so that relaysim's scans at k * queue_run_delay fall where the log's did:
    the grid second nearest after the base, or one queue_run_delay before it if that is after
    the first arrival (as experiments/postfix_lab.scan_grid_origin finds the live grid)."""
    first = float(np.floor(arrivals.t[0])) if len(arrivals) else 0.0
    base = float(np.floor(arrivals.started)) if arrivals.started is not None else first
    q = int(queue_run_delay or 0)
    if q < 1 or not arrivals.retries.size:
        return base
    res = np.bincount(np.floor(arrivals.retries).astype(np.int64) % q, minlength=q)
    t0 = base + (int(res.argmax()) - int(base)) % q
    return t0 - q if t0 > first else t0


def replay_trace(arrivals: Arrivals, start: float, local_users: int):
    """The sim.model.trace.Trace of a log's arrivals, time 0 at Unix time `start`.

    Known and unknown recipients are the relay's own verdicts in the log (Arrivals.unknown:
    a reply with X.1.1 is unknown). Known addresses are numbered in the order the log first
    shows them, modulo `local_users` (the relay's local_users at time 0, as a sender's mail
    addresses users 0..local_users-1), so that a scheduled change lowering local_users makes
    some of them unknown; unknown ones are -1. A message with more recipients (nrcpt) than
    delivery lines gets the rest as known recipients not seen elsewhere. The null sender is
    NULL, every other sender REAL (a log cannot tell a forged sender). The queue files'
    places in the deferred scans' order are the log's (Arrivals.directory_order). Arrivals
    before `start` are a ValueError.
    """
    from sim.model.sender import REAL
    from sim.model.trace import Trace

    n = len(arrivals)
    listed = np.diff(arrivals.first)
    count = np.maximum(listed, arrivals.nrcpt).astype(np.int64)
    width = int(max(1, count.max())) if n else 1
    rcpt = np.full((n, width), -2, dtype=np.int32)
    users = max(int(local_users), 1)
    ids: dict[str, int] = {}
    fresh = 0
    addr, unknown, first = arrivals.address.tolist(), arrivals.unknown.tolist(), \
        arrivals.first.tolist()
    for i in range(n):
        c = 0
        for j in range(first[i], first[i + 1]):
            if unknown[j]:
                rcpt[i, c] = -1
            else:
                rcpt[i, c] = ids.setdefault(addr[j], len(ids)) % users
            c += 1
        while c < count[i]:
            rcpt[i, c] = (len(ids) + fresh) % users
            fresh += 1
            c += 1
    t = arrivals.t - float(start)
    if n and t[0] < 0:
        raise ValueError(f"the first arrival is {-t[0]:g} s before the replay's start")
    kind = np.where(arrivals.null_sender, NULL, REAL).astype(np.int8)
    return Trace(t, rcpt, kind, np.maximum(arrivals.size, 1), arrivals.directory_order())
