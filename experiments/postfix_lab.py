"""Real-Postfix lab: an upstream queue host in front of a relay, both on 127.0.0.1, for validation.

Public names: Instance, Lab, TIMING, free_port, make_instance, upstream_params, relay_params,
start, stop, reload, set_params, get_params, master_pid, lab, qmgr_start_time, inject,
sample_queue, read_log, parse_timestamp, parse_maillog, nondelivery_notices, scan_grid_origin,
attempt_table, relay_rejects, probe_qmgr_params.

Contract:
- Two throw-away Postfix instances live in one temporary directory, each with its own
  config_directory (main.cf, master.cf), queue_directory, data_directory and log file written by
  postlogd (`maillog_file`). Nothing is chrooted, nothing listens off 127.0.0.1, nothing routes
  off the machine: the relay has `default_transport = error` and discards local mail; the upstream
  sends example.test to `smtp:[127.0.0.1]:<relay port>` and everything else to `error:`; DNS is
  off (`smtp_dns_support_level = disabled`, numeric nexthops). `/etc/postfix` is never read or
  written (`postfix -c DIR` only; as root Postfix does not require DIR to be listed in the default
  main.cf's alternate_config_directories).
- `lab()` is a context manager that always runs `postfix -c DIR stop` on both instances (also on
  errors and KeyboardInterrupt) and removes the temporary directory unless `keep=True`.
- The UPSTREAM accepts mail for example.test from 127.0.0.1 and delivers the DSNs it generates to
  its own senders' domain (upstream.test) with `discard:`, so a bounce or expiry leaves
  `sender non-delivery notification` lines and nothing more.
- The RELAY has `mydestination = example.test`, `local_recipient_maps` = an inline map of known
  users, `unknown_local_recipient_reject_code` 450 or 550, and `local_transport = discard`.
  Mail it accepts shows up in the UPSTREAM log as `status=sent (250 2.0.0 Ok: queued as ...)`.

Time compression (measured on Postfix 3.7.11 with `validate_postfix.py --limits`):
- queue_run_delay, minimal_backoff_time, maximal_backoff_time: smallest accepted value 1s.
  0 is refused: qmgr exits with `fatal: invalid queue_run_delay: 0 (min 1)` (same wording for
  the others), master logs `bad command startup -- throttling`, and no mail moves. `postfix
  check` and `postfix start` do NOT catch it; only the qmgr log shows it.
- maximal_queue_lifetime, bounce_queue_lifetime: 0 accepted (postconf(5): try only once); at most
  100d (`fatal: invalid maximal_queue_lifetime: 8726400 (max 8640000)` for 101d).
- Fractions are refused by every one (`fatal: parameter queue_run_delay: bad time value or
  unit: 0.5s`): whole seconds only.
- Nothing is raised silently. The only adjustment is bounce_queue_lifetime lowered to
  maximal_queue_lifetime when larger, with `warning: bounce_queue_lifetime is larger than
  maximal_queue_lifetime - adjusting bounce_queue_lifetime`. maximal_backoff_time <
  minimal_backoff_time and queue_run_delay > minimal_backoff_time pass without any warning.
TIMING below (10s/10s/40s/180s) makes the 450 scenario last about four minutes.

Log format: postlogd (`maillog_file`) writes `Mmm dd HH:MM:SS host syslog_name/service[pid]:
text`: local time, WHOLE seconds (no fraction, no year, not RFC 3339; the stamp is formatted
by the logging process and `postconf -d` of 3.7 lists no parameter for it). parse_timestamp()
also reads fractional syslog stamps and RFC 3339 in case another logger is used. Within a
second, the line order is the only order.

Scan grid: qmgr runs its first deferred-queue scan in post_init and re-arms the timer every
queue_run_delay on whole-second event time, so scans happen at B + k * queue_run_delay, where
B = time(0) in post_init. qmgr logs nothing on start (only `qmgr -v` logs each
`qmgr_scan_start: start deferred queue scan`); qmgr_start_time() reads the process start from
/proc (10 ms resolution), and B = floor(that) unless post_init runs in the next second: seen
on Postfix 3.7.11 with a process start at x.987 s (B = x + 1; post_init takes some 10 to 20 ms).
scan_grid_origin() therefore takes B from the run's own retries, which all share it.
A `postfix reload` of the UPSTREAM would restart qmgr and the grid. The event loop sleeps whole
seconds (events.c: select delay = next timer - time(0)), so a scan due at B + k * delay starts
somewhere within that second, and qmgr stamps a deferred file's mtime (now + backoff, now =
time(0)) when it has finished the message, which was seen to be the second after the attempt's
logged one (450 run, message 6: retried one scan later than the rule with the logged second).

Errors: subprocess.CalledProcessError from postfix commands (with their output), TimeoutError
when an instance does not come up, smtplib exceptions from inject().
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import re
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
POSTCONF = shutil.which("postconf") or "/usr/sbin/postconf"
POSTQUEUE = shutil.which("postqueue") or "/usr/sbin/postqueue"
RELAY_DOMAIN = "example.test"
SENDER_DOMAIN = "upstream.test"
#: Senders' domain of forged-sender mail: the upstream delivers the DSNs it sends there with
#: `discard:` too (a third party's mailbox in real life; nothing leaves the machine here).
FORGED_DOMAIN = "forged.test"
KNOWN_USERS = ("alice", "bob", "carol")

#: Compressed upstream timing: one 450 scenario (lifetime 180 s) takes about four minutes.
TIMING = {
    "queue_run_delay": "10s",
    "minimal_backoff_time": "10s",
    "maximal_backoff_time": "40s",
    "maximal_queue_lifetime": "180s",
    "bounce_queue_lifetime": "180s",
}

_COMMON = {
    "compatibility_level": "3.6",
    "inet_interfaces": "127.0.0.1",
    "inet_protocols": "ipv4",
    "mynetworks": "127.0.0.0/8",
    "smtp_dns_support_level": "disabled",
    "smtpd_peername_lookup": "no",
    "smtp_host_lookup": "native",
    "biff": "no",
    "append_dot_mydomain": "no",
    "alias_maps": "",
    "alias_database": "",
    "relayhost": "",
    "default_transport": "error:no delivery off this machine",
    "delay_logging_resolution_limit": "6",
    "daemon_timeout": "60s",
    "ipc_timeout": "60s",
}

# Minimal master.cf; every service unchrooted so no chroot jail needs populating.
_MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60   1 pickup
cleanup   unix  n - n -    0 cleanup
qmgr      unix  n - n 300  1 qmgr{qmgr_flags}
rewrite   unix  - - n -    - trivial-rewrite
bounce    unix  - - n -    0 bounce
defer     unix  - - n -    0 bounce
trace     unix  - - n -    0 bounce
verify    unix  - - n -    1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -    - proxymap
smtp      unix  - - n -    - smtp
relay     unix  - - n -    - smtp
showq     unix  n - n -    - showq
error     unix  - - n -    - error
retry     unix  - - n -    - error
discard   unix  - - n -    - discard
local     unix  - n n -    - local
anvil     unix  - - n -    1 anvil
scache    unix  - - n -    1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


@dataclass(frozen=True)
class Instance:
    """One Postfix instance in `base`: its directories, log file and smtpd port."""

    name: str
    base: Path
    port: int

    @property
    def config_dir(self) -> Path:
        return self.base / "etc"

    @property
    def queue_dir(self) -> Path:
        return self.base / "spool"

    @property
    def data_dir(self) -> Path:
        return self.base / "lib"

    @property
    def log_file(self) -> Path:
        return self.base / "maillog"


@dataclass
class Lab:
    """A running upstream + relay pair. `root` is the temporary directory holding both."""

    root: Path
    upstream: Instance
    relay: Instance
    upstream_params: dict = field(default_factory=dict)
    relay_params: dict = field(default_factory=dict)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_instance(base: Path, name: str, port: int, params: dict, qmgr_flags: str = "") -> Instance:
    """Write main.cf and master.cf for a new instance under base/name; create its directories."""
    inst = Instance(name, base / name, port)
    for d in (inst.config_dir, inst.queue_dir, inst.data_dir):
        d.mkdir(parents=True, exist_ok=True)
    # The postfix user must traverse to the queue and data directories.
    for d in (base, inst.base):
        d.chmod(0o755)
    # master.lock and the verify/scache files live here; Postfix wants mail_owner to own it.
    shutil.chown(inst.data_dir, "postfix", "postfix")
    main = {
        **_COMMON,
        "myhostname": f"{name}.lab",
        "mydomain": "lab",
        "myorigin": "$myhostname",
        "syslog_name": f"postfix-{name}",
        "queue_directory": str(inst.queue_dir),
        "data_directory": str(inst.data_dir),
        "maillog_file": str(inst.log_file),
        "maillog_file_prefixes": str(base),
        **params,
    }
    text = "".join(f"{k} = {v}\n" for k, v in main.items())
    (inst.config_dir / "main.cf").write_text(text)
    (inst.config_dir / "master.cf").write_text(_MASTER_CF.format(port=port, qmgr_flags=qmgr_flags))
    return inst


def upstream_params(relay_port: int, timing: dict | None = None) -> dict:
    """main.cf of the queue host: relay example.test to [127.0.0.1]:relay_port, DSNs discarded."""
    return {
        "mydestination": f"$myhostname, {SENDER_DOMAIN}, {FORGED_DOMAIN}",
        "local_recipient_maps": "",
        "local_transport": "discard:upstream-local",
        "relay_domains": RELAY_DOMAIN,
        "relay_transport": f"smtp:[127.0.0.1]:{relay_port}",
        "transport_maps": f"inline:{{{RELAY_DOMAIN}=smtp:[127.0.0.1]:{relay_port}}}",
        **(TIMING if timing is None else timing),
    }


def relay_params(reject_code: int, users: Iterable[str] = KNOWN_USERS,
                 extra: dict | None = None) -> dict:
    """main.cf of the relay: local example.test users, unknown ones rejected with reject_code;
    `extra` adds parameters (e.g. a `sleep` restriction that slows every transaction)."""
    entries = ", ".join(f"{u}@{RELAY_DOMAIN}=ok" for u in users)
    return {
        "mydestination": RELAY_DOMAIN,
        "local_recipient_maps": f"inline:{{{entries}}}",
        "unknown_local_recipient_reject_code": str(reject_code),
        "local_transport": "discard:relay-local",
        "relay_domains": "",
        "relay_transport": "error:no relaying",
        **(extra or {}),
    }


def _run(*argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode:
        raise subprocess.CalledProcessError(res.returncode, argv, res.stdout, res.stderr)
    return res


def start(inst: Instance, timeout: float = 20) -> None:
    """`postfix -c DIR start` (creates missing queue directories), then wait for the smtpd port."""
    _run(POSTFIX, "-c", str(inst.config_dir), "check")
    _run(POSTFIX, "-c", str(inst.config_dir), "start")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", inst.port), 1):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{inst.name}: smtpd on 127.0.0.1:{inst.port} did not come up")


def stop(inst: Instance) -> None:
    """`postfix -c DIR stop`, waiting until the master process has gone; quiet if not running."""
    if not master_pid(inst):
        return
    _run(POSTFIX, "-c", str(inst.config_dir), "stop", check=False)
    for _ in range(100):
        if not master_pid(inst):
            return
        time.sleep(0.1)


def reload(inst: Instance) -> None:
    """`postfix -c DIR reload`: master re-reads main.cf; smtpd and qmgr processes restart."""
    _run(POSTFIX, "-c", str(inst.config_dir), "reload")


def set_params(inst: Instance, **params: str) -> None:
    """`postconf -c DIR -e name=value ...` (takes effect after reload())."""
    _run(POSTCONF, "-c", str(inst.config_dir), "-e", *(f"{k}={v}" for k, v in params.items()))


def get_params(inst: Instance, *names: str) -> dict[str, str]:
    """`postconf -c DIR -hx name ...`: the values in force (defaults included, $names
    expanded), as Postfix spells them (e.g. "10s")."""
    res = _run(POSTCONF, "-c", str(inst.config_dir), "-hx", *names)
    return dict(zip(names, res.stdout.splitlines(), strict=True))


def master_pid(inst: Instance) -> int | None:
    """The running master's pid from queue_directory/pid/master.pid, or None."""
    try:
        pid = int((inst.queue_dir / "pid" / "master.pid").read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


def _children(pid: int) -> Iterator[tuple[int, str]]:
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (p / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[1]) == pid:
                yield int(p.name), stat
    return


def _proc_start_epoch(stat: str) -> float:
    # btime in /proc/stat is whole seconds; measure the age against /proc/uptime instead.
    ticks = int(stat[stat.rindex(")") + 2:].split()[19])
    now = time.time()
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return now - (uptime - ticks / os.sysconf("SC_CLK_TCK"))


def qmgr_start_time(inst: Instance, timeout: float = 10) -> tuple[int, float]:
    """(pid, start time as Unix epoch) of the instance's running qmgr, from /proc.

    qmgr starts its deferred-scan timer in post_init, some 10 to 20 ms after this, so this is
    the phase of the scan grid unless the start falls in the last moments of a second (see
    scan_grid_origin). /proc/<pid>/stat counts clock ticks (10 ms) since boot, read against
    /proc/uptime, so the value is good to about 10 ms.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        master = master_pid(inst)
        for pid, stat in _children(master) if master else ():
            if "(qmgr)" in stat:
                return pid, _proc_start_epoch(stat)
        time.sleep(0.1)
    raise TimeoutError(f"{inst.name}: no qmgr process")


@contextlib.contextmanager
def lab(reject_code: int = 450, timing: dict | None = None, keep: bool = False,
        logs_to: Path | None = None, qmgr_verbose: bool = False,
        upstream: dict | None = None, relay: dict | None = None) -> Iterator[Lab]:
    """Start relay then upstream in a fresh temporary directory; always stop both on exit.

    `upstream` adds main.cf parameters of the upstream (e.g. {"soft_bounce": "yes"}), after
    the timing; `relay` adds main.cf parameters of the relay (relay_params' extra). After
    both have stopped, their logs are copied to logs_to/{upstream,relay}.maillog when
    logs_to is given (also after an error); the directory is removed unless keep.
    """
    root = Path(tempfile.mkdtemp(prefix="relaysim-postfix-"))
    relay_port, upstream_port = free_port(), free_port()
    rl_params = relay_params(reject_code, extra=relay)
    up_params = {**upstream_params(relay_port, timing), **(upstream or {})}
    try:  # a failure writing the instances (no postfix user) still removes root
        relay = make_instance(root, "relay", relay_port, rl_params)
        upstream = make_instance(root, "upstream", upstream_port, up_params,
                                 qmgr_flags=" -v" if qmgr_verbose else "")
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    started: list[Instance] = []
    try:
        for inst in (relay, upstream):
            started.append(inst)
            start(inst)
        yield Lab(root, upstream, relay, up_params, rl_params)
    finally:
        for inst in reversed(started):
            stop(inst)
        if logs_to is not None:
            Path(logs_to).mkdir(parents=True, exist_ok=True)
            for inst in (upstream, relay):
                if inst.log_file.exists():
                    shutil.copyfile(inst.log_file, Path(logs_to) / f"{inst.name}.maillog")
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


# --- workload ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Injected:
    """One message handed to the upstream: index, wall times (epoch) when the SMTP session
    began, when MAIL FROM was sent (the upstream's smtpd stamps the message's arrival time then)
    and when the 250 reply to DATA came back (the message is queued by then), envelope and its
    queue id."""

    index: int
    t_epoch: float
    sender: str
    recipient: str
    queue_id: str
    t_mail_epoch: float = 0.0
    t_queued_epoch: float = 0.0


def message_id(index: int) -> str:
    return f"<relaysim-{index}@{SENDER_DOMAIN}>"


_MSGID_INDEX = re.compile(r"<relaysim-(\d+)@")


def inject(host: str, port: int, messages: Iterable[tuple[float, str, str | tuple[str, ...]]],
           t0: float | None = None) -> list[Injected]:
    """Send each (offset_s, sender, recipient) at wall time t0 + offset_s, one SMTP session each.

    recipient is one address or a tuple of them (one RCPT each; Injected.recipient then lists
    them joined by ","); sender "" is the null sender (MAIL FROM:<>).

    Message i gets Message-ID <relaysim-i@upstream.test> (cleanup logs it, which maps upstream
    queue ids back to i). The queue id is also taken from the 250 reply to DATA. t_mail_epoch is
    read just before MAIL FROM, t_queued_epoch just after the 250 to DATA (qmgr may already be
    delivering by then: cleanup notifies it before smtpd replies).
    """
    t0 = time.time() if t0 is None else t0
    out = []
    for i, (offset, sender, rcpt) in enumerate(sorted(messages, key=lambda m: m[0])):
        delay = t0 + offset - time.time()
        if delay > 0:
            time.sleep(delay)
        msg = EmailMessage()
        rcpts = (rcpt,) if isinstance(rcpt, str) else tuple(rcpt)
        msg["From"] = sender or f"MAILER-DAEMON@{SENDER_DOMAIN}"
        msg["To"] = ", ".join(rcpts)
        msg["Subject"] = f"relaysim message {i}"
        msg["Message-ID"] = message_id(i)
        msg.set_content(f"relaysim validation message {i}\n")
        with smtplib.SMTP(host, port, local_hostname="sender.lab", timeout=30) as s:
            t = time.time()
            s.ehlo()
            t_mail = time.time()
            s.mail(sender)
            for r in rcpts:
                code, reply = s.rcpt(r)
                if code != 250:
                    raise smtplib.SMTPRecipientsRefused({r: (code, reply)})
            code, reply = s.data(msg.as_bytes())
            t_queued = time.time()
        qid = re.search(rb"queued as (\w+)", reply)
        out.append(Injected(i, t, sender, ",".join(rcpts), qid.group(1).decode() if qid else "",
                            t_mail, t_queued))
    return out


def sample_queue(config_dir: Path | str) -> Counter:
    """Messages per queue_name (incoming, active, deferred, hold, maildrop) from `postqueue -j`."""
    res = _run(POSTQUEUE, "-c", str(config_dir), "-j", timeout=30)
    counts: Counter = Counter()
    for line in res.stdout.splitlines():
        if line.strip():
            counts[json.loads(line)["queue_name"]] += 1
    return counts


# --- log parsing ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class LogLine:
    t: float  # Unix epoch seconds (local time in the log, year assumed current)
    host: str
    service: str  # e.g. "qmgr", "smtp", "smtpd", "bounce"
    pid: int
    text: str


_SYSLOG = re.compile(
    r"^(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)?|\d{4}-\d\d-\d\dT\S+) "
    r"(?P<host>\S+) (?P<prog>[^\[:\s]+)(?:\[(?P<pid>\d+)\])?: (?P<text>.*)$")


def parse_timestamp(ts: str, year: int | None = None) -> float:
    """Epoch seconds for 'Mmm dd HH:MM:SS[.frac]' (local time) or an RFC 3339 stamp."""
    if ts[0].isdigit():
        return dt.datetime.fromisoformat(ts).timestamp()
    year = dt.date.today().year if year is None else year
    main, _, frac = ts.partition(".")
    t = dt.datetime.strptime(f"{year} {main}", "%Y %b %d %H:%M:%S")
    return t.timestamp() + (float("0." + frac) if frac else 0.0)


def read_log(path: Path | str, year: int | None = None) -> list[LogLine]:
    """Every syslog-shaped line of a maillog file, in file order; other lines are skipped."""
    out = []
    for raw in Path(path).read_text(errors="replace").splitlines():
        m = _SYSLOG.match(raw)
        if not m:
            continue
        service = m["prog"].rsplit("/", 1)[-1]
        out.append(LogLine(parse_timestamp(m["ts"], year), m["host"], service,
                           int(m["pid"] or 0), m["text"]))
    return out


_QID = r"(?P<qid>[0-9A-Za-z]+)"
_DELIVERY = re.compile(
    _QID + r": to=<(?P<rcpt>[^>]*)>,(?: orig_to=<[^>]*>,)? relay=(?P<relay>[^,]+), "
    r"(?:.*?delay=(?P<delay>[\d.]+), delays=(?P<delays>[\d./]+), )?.*?"
    r"dsn=(?P<dsn>[\d.]+), status=(?P<status>\w+) \((?P<reason>.*)\)$")
_ACTIVE = re.compile(_QID + r": from=<(?P<sender>[^>]*)>, size=\d+, nrcpt=\d+ \(queue active\)$")
_EXPIRED = re.compile(_QID + r": from=<(?P<sender>[^>]*)>, status=(?:force-)?expired")
_MSGID = re.compile(_QID + r": message-id=(?P<msgid><[^>]*>)")
_REJECT = re.compile(r"(?P<qid>NOQUEUE|[0-9A-Za-z]+): reject: RCPT from \S+: (?P<code>\d{3}) "
                     r"(?P<dsn>[\d.]+) <(?P<rcpt>[^>]*)>: (?P<reason>[^;]*);")
_NDN = re.compile(_QID + r": sender non-delivery notification: (?P<ndn>\w+)")


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt of one upstream message (or its expiry, outcome 'expired').

    t_active: when qmgr moved it into the active queue (the scan that picked it up); t_done:
    when the delivery agent logged the result. Both Unix epoch seconds. message: injected index
    from the Message-ID, -1 for mail we did not inject (DSNs). delays: Postfix's
    `delays=a/b/c/d` in seconds (a: before the active queue, b: in the active queue, c:
    connection setup, d: transmission; sub-second, unlike the log stamps), None for expiry
    rows; delay: the total `delay=` (arrival to this log line, two significant digits).
    """

    message: int
    queue_id: str
    attempt: int
    t_active: float
    t_done: float
    outcome: str  # sent | deferred | bounced | expired (status=SOFTBOUNCE is deferred)
    dsn: str
    relay: str
    reason: str
    delays: tuple[float, float, float, float] | None = None
    delay: float | None = None
    recipient: str = ""  # the to= address ("" on expiry rows, which are per message)


def parse_maillog(path: Path | str, year: int | None = None) -> list[Attempt]:
    """Per-attempt records of every queue id in a maillog (upstream side), in log order.

    One record per delivery line (one per recipient per attempt); `attempt` counts the lines
    of that recipient of that queue id, so a message with several recipients numbers each
    recipient's attempts on its own. An expiry row carries the largest attempt number of its
    queue id's recipients (with one recipient: the attempt that triggered it)."""
    lines = read_log(path, year)
    index: dict[str, int] = {}
    active: dict[str, float] = {}
    count: Counter = Counter()
    tries: Counter = Counter()
    out = []
    for ln in lines:
        if ln.service == "cleanup" and (m := _MSGID.match(ln.text)):
            k = _MSGID_INDEX.match(m["msgid"])
            index[m["qid"]] = int(k.group(1)) if k else -1
        elif ln.service == "qmgr" and (m := _ACTIVE.match(ln.text)):
            active[m["qid"]] = ln.t
        elif ln.service == "qmgr" and (m := _EXPIRED.match(ln.text)):
            qid = m["qid"]
            out.append(Attempt(index.get(qid, -1), qid, tries[qid], active.get(qid, ln.t),
                               ln.t, "expired", "", "", "expired"))
        elif (m := _DELIVERY.match(ln.text)) and ln.service != "qmgr":
            qid = m["qid"]
            count[qid, m["rcpt"]] += 1
            tries[qid] = max(tries[qid], count[qid, m["rcpt"]])
            delays = tuple(float(x) for x in m["delays"].split("/")) if m["delays"] else None
            # soft_bounce = yes logs a 5xx reply as status=SOFTBOUNCE and keeps the
            # recipient queued (global/bounce.c): a deferral
            status = "deferred" if m["status"] == "SOFTBOUNCE" else m["status"]
            out.append(Attempt(index.get(qid, -1), qid, count[qid, m["rcpt"]],
                               active.get(qid, ln.t), ln.t, status, m["dsn"], m["relay"],
                               m["reason"], delays, float(m["delay"]) if m["delay"] else None,
                               m["rcpt"]))
    return out


def nondelivery_notices(path: Path | str, year: int | None = None) -> dict[str, str]:
    """{queue id: queue id of its DSN} for every `sender non-delivery notification` line (one
    per bounced or expired message with a non-null sender)."""
    return {m["qid"]: m["ndn"] for ln in read_log(path, year)
            if ln.service in ("bounce", "defer") and (m := _NDN.match(ln.text))}


@dataclass(frozen=True)
class Reject:
    t: float
    code: int
    dsn: str
    recipient: str
    reason: str


def relay_rejects(path: Path | str, year: int | None = None) -> list[Reject]:
    """The relay smtpd's RCPT rejects: time, reply code, DSN code, recipient."""
    return [Reject(ln.t, int(m["code"]), m["dsn"], m["rcpt"], m["reason"])
            for ln in read_log(path, year)
            if ln.service == "smtpd" and (m := _REJECT.match(ln.text))]


def scan_grid_origin(attempts: Iterable[Attempt], qmgr_start: float,
                     queue_run_delay: int) -> tuple[int, dict[int, int]]:
    """(B, residues): the whole second B at which qmgr's deferred-scan timer started, so scans
    run at B + k * queue_run_delay; and how many retries showed each residue of
    floor(t_active) - floor(qmgr_start) modulo queue_run_delay.

    B is floor(qmgr_start) + the residue most retries share, if that is 0 or 1 (post_init ran
    in the second of the process start or the next); with no retries, floor(qmgr_start).
    Retries are the attempts after a message's first one; expiry rows are not attempts.
    A scan that takes the qmgr more than a second would show a residue of 1 for some messages
    only: then the most common residue is still the base.
    """
    base = math.floor(qmgr_start)
    residues: Counter = Counter()
    for a in attempts:
        if a.attempt > 1 and a.outcome != "expired":
            residues[(math.floor(a.t_active) - base) % queue_run_delay] += 1
    if not residues:
        return base, {}
    offset = residues.most_common(1)[0][0]
    if offset not in (0, 1):
        raise ValueError(f"retries are not on a grid starting at the qmgr start: {residues}")
    return base + offset, dict(sorted(residues.items()))


def attempt_table(attempts: Iterable[Attempt], t0: float) -> list[dict]:
    """Rows (message, attempt, t_s, outcome) of injected mail; t_s = t_active - t0 in seconds.

    An expiry is its own row with the attempt number of the attempt that triggered it.
    """
    return [{"message": a.message, "attempt": a.attempt, "t_s": round(a.t_active - t0, 6),
             "outcome": a.outcome} for a in attempts if a.message >= 0]


def probe_qmgr_params(params: dict, wait: float = 2.5) -> tuple[bool, list[str]]:
    """Start a lone upstream with `params` over TIMING; (qmgr still running, its log complaints).

    Used to find the smallest time values qmgr accepts: a refused value makes qmgr exit with
    `fatal: invalid <name>: <value> (min N)` and master throttle it.
    """
    root = Path(tempfile.mkdtemp(prefix="relaysim-limits-"))
    inst = make_instance(root, "upstream", free_port(),
                         upstream_params(free_port(), {**TIMING, **params}))
    try:
        start(inst)
        time.sleep(wait)
        try:
            qmgr_start_time(inst, timeout=0.5)
            running = True
        except TimeoutError:
            running = False
        notes = [ln.text for ln in read_log(inst.log_file) if ln.service in ("qmgr", "master")
                 and ("warning" in ln.text or "fatal" in ln.text)]
        return running, notes
    finally:
        stop(inst)
        shutil.rmtree(root, ignore_errors=True)
