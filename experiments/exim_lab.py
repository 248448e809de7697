"""Real-Exim lab: Exim 4 as the upstream queue host in front of a Postfix relay, on 127.0.0.1.

Public names: LAB_ROOT, EXIM, TRUSTED_CONFIGS, EximLab, available, exim_version, config_text,
at_phase, lab, read_mainlog, MainLine, parse_mainlog, queue_runs, Attempt.

Contract:
- Exim is Debian's exim4-daemon-light, unpacked (`dpkg-deb -x`, see .ci/run) under LAB_ROOT
  (default <repo>/.lab/root, or $RELAYSIM_LAB_ROOT), never installed: Debian's Exim, sendmail
  and Postfix packages conflict. It needs the library package libidn12 installed (a setuid
  binary re-exec'ing itself ignores LD_LIBRARY_PATH) and the system user Debian-exim (compiled
  in as EXIM_USER); .ci/run provides both.
- Exim keeps root for a -C configuration only if the file is listed in TRUSTED_CONFIGS
  (Debian's TRUSTED_CONFIG_LIST); lab() adds its configuration there for the run and removes the
  line (and the file and folder, if lab() created them) afterwards, also on errors.
- One throw-away directory holds the Exim configuration, spool, logs and pid file and the
  relay: a Postfix instance from postfix_lab (450 or 550 for unknown users). Exim listens on
  127.0.0.1:<port> only, routes example.test to [127.0.0.1]:<relay port> (manualroute, `self =
  send`, `allow_localhost`), sends its bounces to upstream.test into `:blackhole:` and fails
  every other domain: nothing leaves the machine. No DNS, no ident, no TLS.
- The daemon runs in the foreground (`-bdf -q<interval>`), started 0.1 s into a second
  (at_phase), in its own process group; lab()
  stops it with SIGTERM to the group (SIGKILL after 10 s), then any process still running the
  lab's Exim binary with the lab's configuration (delivery children that outlived it), then the
  relay. logs_to receives mainlog, rejectlog, paniclog (if any) and relay.maillog.
- Logs: Exim's mainlog with `log_selector = +millisec` (local time, milliseconds). parse_mainlog()
  turns it into one Attempt per delivery attempt of a recipient (=>, ==, **), each tied to the
  injected message by its Message-ID (`id=<relaysim-N@upstream.test>` on the <= line) and to
  the queue run it belonged to (the runner's pid, or -1 for the delivery on arrival).
Errors: FileNotFoundError when the unpacked Exim is missing (available() says why first),
TimeoutError when the daemon does not listen, subprocess.CalledProcessError from the relay.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import postfix_lab as pl  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
LAB_ROOT = Path(os.environ.get("RELAYSIM_LAB_ROOT", REPO / ".lab" / "root"))
EXIM = LAB_ROOT / "usr" / "sbin" / "exim4"
TRUSTED_CONFIGS = Path("/etc/exim4/trusted_configs")
EXIM_USER = "Debian-exim"
_LOCK = Path(tempfile.gettempdir()) / "relaysim-exim-trusted.lock"
#: Compressed time (issue 20): the G rule grows 30 s by 1.5 between 2 and 4 minutes of failing,
#: and the address times out after 8 minutes.
RETRY_RULE = "F,2m,20s; G,4m,30s,1.5; F,8m,1m"
QUEUE_INTERVAL = 10


def available() -> tuple[bool, str]:
    """(True, "") when the lab can run Exim here, else (False, the reason)."""
    if os.geteuid() != 0:
        return False, "needs root (Exim's daemon and the relay's Postfix master start as root)"
    if not EXIM.exists():
        return False, f"no unpacked Exim at {EXIM} (see .ci/run: apt-get download + dpkg-deb -x)"
    try:
        import pwd
        pwd.getpwnam(EXIM_USER)
    except KeyError:
        return False, f"no user {EXIM_USER} (Exim's compiled-in EXIM_USER; .ci/run adds it)"
    if not Path(pl.POSTFIX).exists():
        return False, "no Postfix for the relay"
    res = subprocess.run([str(EXIM), "-bV", "-C", "/dev/null"], capture_output=True, text=True,
                         env=_env())
    if "Exim version" not in res.stdout:
        return False, f"the unpacked Exim does not run: {(res.stderr or res.stdout).strip()}"
    return True, ""


def _env() -> dict:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "TZ": os.environ.get("TZ", "UTC")}


def exim_version() -> str:
    res = subprocess.run([str(EXIM), "-bV", "-C", "/dev/null"], capture_output=True, text=True,
                         env=_env())
    m = re.search(r"Exim version (\S+)", res.stdout)
    return m.group(1) if m else "unknown"


def config_text(base: Path, port: int, relay_port: int, retry_rule: str) -> str:
    """The upstream's whole Exim configuration (see the module contract)."""
    return f"""\
exim_path = {EXIM}
keep_environment = TZ
primary_hostname = upstream.lab
qualify_domain = upstream.test
local_interfaces = 127.0.0.1
daemon_smtp_ports = {port}
disable_ipv6 = true
tls_advertise_hosts =
spool_directory = {base}/spool
log_file_path = {base}/log/%slog
pid_file_path = {base}/exim.pid
log_selector = +pid +millisec +queue_time +deliver_time +delivery_size +retry_defer
exim_user = {EXIM_USER}
exim_group = {EXIM_USER}
never_users = root
host_lookup =
rfc1413_hosts =
dns_cname_loops = 0
acl_smtp_rcpt = acl_check_rcpt
received_header_text = Received: from $sender_helo_name by $primary_hostname id $message_exim_id
smtp_accept_max = 50
smtp_accept_queue_per_connection = 0
remote_max_parallel = 1
queue_run_max = 1

begin acl
acl_check_rcpt:
  accept hosts = 127.0.0.1
  deny message = only 127.0.0.1

begin routers
to_relay:
  driver = manualroute
  domains = example.test
  route_list = * 127.0.0.1
  self = send
  transport = remote_smtp
  no_more
dsn_sink:
  driver = redirect
  domains = upstream.test
  data = :blackhole:
nowhere:
  driver = redirect
  data = :fail: no delivery off this machine

begin transports
remote_smtp:
  driver = smtp
  port = {relay_port}
  allow_localhost
  hosts_avoid_tls = *
  hosts_try_chunking =
  hosts_try_prdr =

begin retry
* * {retry_rule}
"""


@dataclass
class EximLab:
    """A running Exim upstream and Postfix relay. root: the temporary directory of both."""

    root: Path
    port: int
    relay: pl.Instance
    config: Path
    daemon: subprocess.Popen
    queue_interval: int
    retry_rule: str

    @property
    def mainlog(self) -> Path:
        return self.root / "exim" / "log" / "mainlog"

    def stop_relay(self) -> None:
        pl.stop(self.relay)

    def start_relay(self) -> None:
        pl.start(self.relay)

    def queue_count(self) -> int:
        """Messages on Exim's queue now (`exim -bpc`)."""
        res = subprocess.run([str(EXIM), "-C", str(self.config), "-bpc"], capture_output=True,
                             text=True, env=_env(), timeout=30)
        return int(res.stdout.strip() or 0)


@contextlib.contextmanager
def _trusted(config: Path) -> Iterator[None]:
    """List config in TRUSTED_CONFIGS for the duration; leave the file as it was.

    Labs may run at once: edits are serialised (_locked), and the first lab to create the file
    (and its folder) leaves a note beside the lock, so that whichever lab removes the last
    line also removes what the labs created."""
    note = _LOCK.with_suffix(".created")
    with _locked():
        if not TRUSTED_CONFIGS.exists():
            made = "dir" if not TRUSTED_CONFIGS.parent.exists() else "file"
            if not note.exists() or not note.read_text().strip():
                note.write_text(made)
        TRUSTED_CONFIGS.parent.mkdir(parents=True, exist_ok=True)
        with TRUSTED_CONFIGS.open("a") as f:
            f.write(f"{config}\n")
        TRUSTED_CONFIGS.chmod(0o644)
    try:
        yield
    finally:
        with _locked():
            keep = [ln for ln in TRUSTED_CONFIGS.read_text().splitlines() if ln != str(config)]
            made = note.read_text().strip() if note.exists() else ""
            if not keep and made:
                TRUSTED_CONFIGS.unlink()
                if made == "dir":
                    with contextlib.suppress(OSError):
                        TRUSTED_CONFIGS.parent.rmdir()
                note.unlink()
            else:
                TRUSTED_CONFIGS.write_text("".join(f"{ln}\n" for ln in keep))


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """Serialise edits of TRUSTED_CONFIGS between labs running at once."""
    with open(_LOCK, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _lab_processes(config: Path) -> list[int]:
    """Pids of processes running the lab's Exim binary with this configuration."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (p / "cmdline").read_bytes().split(b"\0")
            if str(config).encode() in argv and os.readlink(p / "exe") == str(EXIM):
                out.append(int(p.name))
    return out


def _stop_daemon(daemon: subprocess.Popen, config: Path) -> None:
    if daemon.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(timeout=10)
    for _ in range(50):  # delivery children of the daemon, if any outlived it
        left = _lab_processes(config)
        if not left:
            return
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM if _ < 40 else signal.SIGKILL)
        time.sleep(0.1)


@contextlib.contextmanager
def lab(reject_code: int = 450, retry_rule: str = RETRY_RULE,
        queue_interval: int = QUEUE_INTERVAL, keep: bool = False,
        logs_to: Path | None = None) -> Iterator[EximLab]:
    """Start the relay, then Exim's daemon with a queue runner every queue_interval seconds;
    always stop both on exit and copy their logs to logs_to (see the module contract)."""
    ok, why = available()
    if not ok:
        raise FileNotFoundError(why)
    root = Path(tempfile.mkdtemp(prefix="relaysim-exim-"))
    root.chmod(0o755)
    base = root / "exim"
    for d in (base, base / "spool", base / "log"):
        d.mkdir(parents=True, exist_ok=True)
        shutil.chown(d, EXIM_USER, EXIM_USER)
    base.chmod(0o755)
    relay_port, port = pl.free_port(), pl.free_port()
    relay = pl.make_instance(root, "relay", relay_port, pl.relay_params(reject_code))
    config = root / "exim.conf"
    config.write_text(config_text(base, port, relay_port, retry_rule))
    config.chmod(0o644)
    daemon = None
    relay_started = False
    try:
        pl.start(relay)
        relay_started = True
        _warm_up(relay_port)
        with _trusted(config):
            at_phase(0.1)
            daemon = subprocess.Popen(
                [str(EXIM), "-C", str(config), "-bdf", f"-q{int(queue_interval)}s"],
                env=_env(), start_new_session=True, stdout=subprocess.DEVNULL,
                stderr=(root / "exim.stderr").open("w"))
            try:
                _wait_port(port, daemon)
                yield EximLab(root, port, relay, config, daemon, int(queue_interval),
                              retry_rule)
            finally:
                _stop_daemon(daemon, config)
    finally:
        if relay_started:
            pl.stop(relay)
        if logs_to is not None:
            logs_to = Path(logs_to)
            logs_to.mkdir(parents=True, exist_ok=True)
            for name in ("mainlog", "rejectlog", "paniclog"):
                if (base / "log" / name).exists():
                    shutil.copyfile(base / "log" / name, logs_to / name)
            if relay.log_file.exists():
                shutil.copyfile(relay.log_file, logs_to / "relay.maillog")
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def at_phase(phase: float) -> None:
    """Sleep until the wall clock is `phase` seconds into a second. The daemons' queue runs
    follow their start on whole-second alarms; started early in a second, a run's start and
    its drift of a few ms per run stay inside the second that relaysim's whole-second runs
    stand for."""
    time.sleep((phase - time.time()) % 1.0)


def _warm_up(port: int) -> None:
    """One SMTP session with the relay, so that the first delivery does not wait for Postfix
    to spawn its first smtpd (measured: 1.1 s for the first delivery of a cold relay)."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname="warmup.lab", timeout=30) as s:
        s.ehlo()
        s.noop()


def _wait_port(port: int, daemon: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise TimeoutError(f"{daemon.args[0]}: the daemon exited with status "
                               f"{daemon.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{daemon.args[0]}: nothing listening on 127.0.0.1:{port}")


# --- the mainlog ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class MainLine:
    t: float  # Unix epoch seconds, to the millisecond
    pid: int  # with log_selector +pid; 0 otherwise
    text: str


_STAMP = re.compile(r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)(?: \[(?P<pid>\d+)\])? "
                    r"(?P<text>.*)$")


def read_mainlog(path: Path | str) -> list[MainLine]:
    """Every stamped line of an Exim log (local time), in file order."""
    out = []
    for raw in Path(path).read_text(errors="replace").splitlines():
        if m := _STAMP.match(raw):
            t = dt.datetime.strptime(m["ts"][:19], "%Y-%m-%d %H:%M:%S").timestamp()
            frac = m["ts"][19:]
            out.append(MainLine(t + (float(frac) if frac else 0.0), int(m["pid"] or 0),
                                m["text"]))
    return out
