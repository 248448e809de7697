"""Real-sendmail lab: sendmail 8.17 as the upstream queue host in front of a Postfix relay.

Public names: SENDMAIL, CF_DIR, SendmailLab, available, mc_text, lab, inject,
SyslogSink, read_maillog, LogLine.

Contract:
- sendmail is Debian's sendmail-bin, its cf from sendmail-cf, both unpacked (`dpkg-deb -x`,
  see .ci/run) under exim_lab.LAB_ROOT, never installed (Debian's MTA packages conflict). It
  needs the library package libwrap0 and m4 (to build sendmail.cf from the .mc), which .ci/run
  installs; they conflict with nothing.
- sendmail logs only through syslog(3) to /dev/log, which this machine has not. The daemon
  runs in a private mount namespace (`unshare --mount`) whose /dev is a fresh tmpfs holding
  null, zero, random, urandom and tty (bind mounts of the real ones) and `log`, a symlink to a
  datagram socket in the lab's directory; /etc/hosts, resolv.conf and nsswitch.conf are the
  lab's (_ETC: the host name qualified from the hosts file, the only resolver 127.0.0.1), so
  sendmail never asks DNS, on or off the machine. A SyslogSink thread reads that socket and
  writes each line with its receipt time (epoch, microseconds) to the lab's maillog. Nothing
  outside the namespace sees the changed /dev or /etc files.
- One throw-away directory (under LAB_ROOT/../run: sendmail refuses a host-status directory
  below world-writable /tmp) holds sendmail.mc/.cf, queue, host-status directory, pid file and
  the relay (a Postfix instance from postfix_lab, 450 or 550 for unknown users). sendmail
  listens on 127.0.0.1:<port> only (DAEMON_OPTIONS), sends everything to the smart host
  [127.0.0.1]:<relay port> (no DNS: bracketed, `nocanonify`, hosts from a files-only service
  switch) and takes mail for upstream.test (its own bounces) as local, aliased to /dev/null
  for root, postmaster, MAILER-DAEMON and sender0..sender499: nothing leaves the machine.
- Timing: the daemon runs `-bD -q<interval>s`, started 0.1 s into a second
  (exim_lab.at_phase); Timeout.queuereturn, MinQueueAge and Timeout.hoststatus come from the
  caller; Timeout.queuewarn is off; HostStatusDirectory is
  on, so that queue runs share the host-status cache.
- lab() stops the daemon with SIGTERM to its process group (SIGKILL after 10 s), then any
  process still running the lab's sendmail with the lab's cf, then the relay, also on errors;
  logs_to receives maillog (sendmail's lines), relay.maillog and sendmail.cf.
Errors: FileNotFoundError when something is missing (available() says what), TimeoutError when
the daemon does not listen, subprocess.CalledProcessError from m4 or the relay.
"""

from __future__ import annotations

import contextlib
import email.policy
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import exim_lab as el  # noqa: E402
import postfix_lab as pl  # noqa: E402

SENDMAIL = el.LAB_ROOT / "usr" / "libexec" / "sendmail" / "sendmail"
CF_DIR = el.LAB_ROOT / "usr" / "share" / "sendmail" / "cf"
M4 = shutil.which("m4") or "/usr/bin/m4"
UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"
QUEUE_INTERVAL = 10
SENDERS = 500  # sender0 ... sender499@upstream.test have an alias to /dev/null


def available() -> tuple[bool, str]:
    """(True, "") when the lab can run sendmail here, else (False, the reason)."""
    if os.geteuid() != 0:
        return False, "needs root (sendmail's daemon, the mount namespace, Postfix's master)"
    for what, path in (("unpacked sendmail", SENDMAIL), ("sendmail's cf (sendmail-cf)", CF_DIR),
                       ("m4", Path(M4)), ("unshare", Path(UNSHARE)),
                       ("Postfix for the relay", Path(pl.POSTFIX))):
        if not path.exists():
            return False, f"no {what} at {path} (see .ci/run)"
    # not by running it: outside the lab's namespace sendmail asks DNS to qualify the host name
    res = subprocess.run(["ldd", str(SENDMAIL)], capture_output=True, text=True)
    missing = [ln.split()[0] for ln in res.stdout.splitlines() if "not found" in ln]
    if res.returncode or missing:
        return False, f"the unpacked sendmail lacks libraries: {missing or res.stderr.strip()}"
    return True, ""


def _version(namespace: list[str], env: dict) -> str:
    res = subprocess.run([*namespace, str(SENDMAIL), "-d0.1", "-bt", "-C", "/dev/null"],
                         input="", capture_output=True, text=True, env=env, timeout=60)
    m = re.search(r"Version (\S+)", res.stdout)
    return m.group(1) if m else "unknown"


def mc_text(base: Path, port: int, relay_port: int, queuereturn: str, min_queue_age: str,
            hoststatus: str) -> str:
    """sendmail.mc of the upstream (see the module contract)."""
    return f"""\
divert(-1)
include(`{CF_DIR}/m4/cf.m4')
divert(0)dnl
VERSIONID(`relaysim lab')dnl
OSTYPE(`linux')dnl
define(`confDOMAIN_NAME', `upstream.lab')dnl
define(`confDONT_PROBE_INTERFACES', `True')dnl
define(`confSERVICE_SWITCH_FILE', `{base}/service.switch')dnl
define(`confHOSTS_FILE', `{base}/hosts')dnl
define(`QUEUE_DIR', `{base}/mqueue')dnl
define(`confHOST_STATUS_DIRECTORY', `{base}/hoststat')dnl
define(`STATUS_FILE', `{base}/sendmail.st')dnl
define(`confPID_FILE', `{base}/sendmail.pid')dnl
define(`ALIAS_FILE', `{base}/aliases')dnl
define(`confTO_QUEUERETURN', `{queuereturn}')dnl
define(`confTO_QUEUEWARN', `0')dnl
define(`confMIN_QUEUE_AGE', `{min_queue_age}')dnl
define(`confTO_HOSTSTATUS', `{hoststatus}')dnl
define(`confDELIVERY_MODE', `background')dnl
define(`confLOG_LEVEL', `9')dnl
define(`confDONT_BLAME_SENDMAIL', `GroupWritableDirPathSafe')dnl
define(`confCON_EXPENSIVE', `False')dnl
define(`confMAX_DAEMON_CHILDREN', `0')dnl
define(`confREFUSE_LA', `999')dnl
define(`confQUEUE_LA', `999')dnl
define(`confDELAY_LA', `0')dnl
define(`SMART_HOST', `esmtp:[127.0.0.1]')dnl
define(`ESMTP_MAILER_ARGS', `TCP $h {relay_port}')dnl
FEATURE(`nocanonify')dnl
FEATURE(`accept_unresolvable_domains')dnl
FEATURE(`no_default_msa')dnl
DAEMON_OPTIONS(`Port={port}, Addr=127.0.0.1, Name=MTA')dnl
LOCAL_DOMAIN(`upstream.test')dnl
MAILER(`local')dnl
MAILER(`smtp')dnl
"""


class SyslogSink:
    """A datagram socket at `path` that appends every syslog message it gets to `log`, each
    line prefixed with its receipt time (epoch seconds, 6 decimals)."""

    def __init__(self, path: Path, log: Path):
        self.path, self.log = path, log
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        path.chmod(0o666)
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        with self.log.open("a") as f:
            while not self._stop.is_set():
                try:
                    data = self.sock.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                f.write(f"{time.time():.6f} {data.decode(errors='replace').rstrip()}\n")
                f.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


_NAMESPACE = """\
set -e
mkdir -p "$LAB/olddev"
mount --rbind /dev "$LAB/olddev"
mount -t tmpfs -o mode=755 relaysim-dev /dev
for n in null zero random urandom tty; do
    touch /dev/$n
    mount --bind "$LAB/olddev/$n" /dev/$n
done
ln -s /proc/self/fd /dev/fd
ln -s "$LAB/log.sock" /dev/log
umount -l "$LAB/olddev"
for f in hosts resolv.conf nsswitch.conf; do
    mount --bind "$LAB/etc/$f" /etc/$f
done
exec "$@"
"""
#: Name service inside the namespace: the host's own name is qualified from the hosts file
#: (sendmail would otherwise ask DNS to qualify it, off the machine), and the only resolver is
#: 127.0.0.1, where nothing answers.
_ETC = {"hosts": "127.0.0.1 {host}.upstream.lab {host} localhost upstream.lab\n",
        "resolv.conf": "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
        "nsswitch.conf": "hosts: files\npasswd: files\ngroup: files\naliases: files\n"}


@dataclass
class SendmailLab:
    """A running sendmail upstream and Postfix relay; root: their temporary directory."""

    root: Path
    port: int
    relay: pl.Instance
    cf: Path
    daemon: subprocess.Popen
    queue_interval: int
    version: str
    daemon_started: float  # epoch, just before the daemon was started

    @property
    def maillog(self) -> Path:
        return self.root / "maillog"

    def stop_relay(self) -> None:
        pl.stop(self.relay)

    def start_relay(self) -> None:
        pl.start(self.relay)

    def queue_count(self) -> int:
        """Injected messages in sendmail's queue now: qf files with a recipient at the relay's
        domain (example.test). sendmail's own DSNs go to the local senders (upstream.test) or
        postmaster; when local delivery defers them they stay queued, and a count of every
        non-<> qf file then counted them (seen once in CI: three DSNs queued from 40 s on)."""
        n = 0
        for p in (self.root / "sm" / "mqueue").iterdir():
            if p.name.startswith("qf"):
                with contextlib.suppress(OSError):
                    lines = p.read_text(errors="replace").splitlines()
                    n += any(ln.startswith("R") and "@example.test" in ln for ln in lines)
        return n


def _lab_processes(cf: Path) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (p / "cmdline").read_bytes().split(b"\0")
            if str(cf).encode() in argv and os.readlink(p / "exe") == str(SENDMAIL):
                out.append(int(p.name))
    return out


def _stop_daemon(daemon: subprocess.Popen, cf: Path) -> None:
    if daemon.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(timeout=10)
    for k in range(50):
        left = _lab_processes(cf)
        if not left:
            return
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM if k < 40 else signal.SIGKILL)
        time.sleep(0.1)


@contextlib.contextmanager
def lab(reject_code: int = 450, queue_interval: int = QUEUE_INTERVAL, queuereturn: str = "3m",
        min_queue_age: str = "0", hoststatus: str = "30s", keep: bool = False,
        logs_to: Path | None = None, relay_extra: dict | None = None) -> Iterator[SendmailLab]:
    """Start the relay (postfix_lab.relay_params plus relay_extra), then sendmail's daemon
    with a queue run every queue_interval seconds; always stop both on exit and copy the logs
    to logs_to (see the module contract)."""
    ok, why = available()
    if not ok:
        raise FileNotFoundError(why)
    # not under /tmp: sendmail refuses host-status files below a world-writable directory
    runs = el.LAB_ROOT.parent / "run"
    runs.mkdir(mode=0o755, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="sendmail-", dir=runs))
    root.chmod(0o755)
    base = root / "sm"
    for d in (base, base / "mqueue", base / "hoststat"):
        d.mkdir(parents=True, exist_ok=True)
    (base / "mqueue").chmod(0o700)
    (base / "service.switch").write_text("hosts files\naliases files\n")
    (base / "hosts").write_text("127.0.0.1 localhost upstream.lab\n")
    # the bounces to our senders, and the postmaster copies, end in /dev/null (sendmail
    # discards mail to it); the local mailer would otherwise want a passwd entry per sender
    (base / "aliases").write_text("".join(
        f"{name}: /dev/null\n" for name in ("root", "postmaster", "MAILER-DAEMON",
                                            *(f"sender{i}" for i in range(SENDERS)))))
    relay_port, port = pl.free_port(), pl.free_port()
    relay = pl.make_instance(root, "relay", relay_port,
                             {**pl.relay_params(reject_code), **(relay_extra or {})})
    mc = base / "sendmail.mc"
    mc.write_text(mc_text(base, port, relay_port, queuereturn, min_queue_age, hoststatus))
    cf = base / "sendmail.cf"
    cf.write_text(subprocess.run([M4, str(mc)], capture_output=True, text=True,
                                 check=True).stdout)
    (root / "etc").mkdir()
    for name, text in _ETC.items():
        (root / "etc" / name).write_text(text.format(host=socket.gethostname()))
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LAB": str(root),
           "TZ": os.environ.get("TZ", "UTC")}
    namespace = [UNSHARE, "--mount", "--propagation", "private", "sh", "-c", _NAMESPACE, "lab"]
    subprocess.run([*namespace, str(SENDMAIL), "-C", str(cf), "-bi"], env=env,
                   capture_output=True, check=False, timeout=60)
    version = _version(namespace, env)
    sink = SyslogSink(root / "log.sock", root / "maillog")
    daemon = None
    relay_started = False
    try:
        pl.start(relay)
        relay_started = True
        el._warm_up(relay_port)
        el.at_phase(0.1)
        started = time.time()
        daemon = subprocess.Popen(
            [*namespace, str(SENDMAIL), "-C", str(cf), "-bD", f"-q{int(queue_interval)}s"],
            env=env, start_new_session=True, stdout=subprocess.DEVNULL,
            stderr=(root / "sendmail.stderr").open("w"))
        try:
            el._wait_port(port, daemon)
            yield SendmailLab(root, port, relay, cf, daemon, int(queue_interval), version,
                              started)
        finally:
            _stop_daemon(daemon, cf)
    finally:
        sink.close()
        if relay_started:
            pl.stop(relay)
        if logs_to is not None:
            logs_to = Path(logs_to)
            logs_to.mkdir(parents=True, exist_ok=True)
            for src, name in ((root / "maillog", "maillog"), (cf, "sendmail.cf"),
                              (relay.log_file, "relay.maillog")):
                if src.exists():
                    shutil.copyfile(src, logs_to / name)
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def inject(host: str, port: int, messages, t0: float | None = None) -> list[pl.Injected]:
    """postfix_lab.inject, with CRLF line ends in the message (smtplib sends bytes as they are,
    and this sendmail refuses bare LF: `collect: ... Bare linefeed (LF) not allowed`)."""
    t0 = time.time() if t0 is None else t0
    out = []
    for i, (offset, sender, rcpt) in enumerate(sorted(messages, key=lambda m: m[0])):
        delay = t0 + offset - time.time()
        if delay > 0:
            time.sleep(delay)
        msg = EmailMessage()
        msg["From"], msg["To"] = sender, rcpt
        msg["Subject"] = f"relaysim message {i}"
        msg["Message-ID"] = pl.message_id(i)
        msg.set_content(f"relaysim validation message {i}\n")
        with smtplib.SMTP(host, port, local_hostname="sender.lab", timeout=30) as s:
            t = time.time()
            s.ehlo()
            t_mail = time.time()
            s.mail(sender)
            code, reply = s.rcpt(rcpt)
            if code != 250:
                raise smtplib.SMTPRecipientsRefused({rcpt: (code, reply)})
            code, reply = s.data(msg.as_bytes(policy=email.policy.SMTP))
            t_queued = time.time()
        qid = re.search(rb"(\w+) Message accepted", reply)
        out.append(pl.Injected(i, t, sender, rcpt, qid.group(1).decode() if qid else "",
                               t_mail, t_queued))
    return out


# --- the log -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LogLine:
    t: float  # receipt time at the lab's syslog socket (epoch, microseconds)
    pid: int
    text: str  # the message after `sm-mta[pid]: `


_LINE = re.compile(r"^(?P<t>\d+\.\d+) <\d+>(?:\w{3} [ \d]\d \d\d:\d\d:\d\d )?(?P<tag>[^\[:]+)"
                   r"(?:\[(?P<pid>\d+)\])?: (?P<text>.*)$")


def read_maillog(path: Path | str) -> list[LogLine]:
    """Every syslog line the lab's sink stored, in order."""
    out = []
    for raw in Path(path).read_text(errors="replace").splitlines():
        if m := _LINE.match(raw):
            out.append(LogLine(float(m["t"]), int(m["pid"] or 0), m["text"]))
    return out
