"""The scenario: every knob of a run, declared once with its default, unit and bounds.

Public names: Scenario, Simulation, Sender, Upstream, Relay, Outage, Change, Pasted, FIELDS_DOC,
check_samples, no_effect, reference_markdown, INT_MAX, TIME_MAX, RATE_MAX, SIZE_MAX, MAX_SAMPLES.

Contract:
- A Scenario is frozen. It is built by Scenario.from_toml(path) or Scenario.from_dict(d); sweeps
  derive new ones with Scenario.with_overrides({"upstream.maximal_queue_lifetime": "10d"}) or
  dataclasses.replace. Nothing mutates a scenario.
- Every field carries metadata: `kind` (time, rate, size, int, float, bool, choice, str,
  path), its `unit` after parsing (times in seconds, rates per second, sizes in bytes),
  Postfix's default
  unit for bare numbers (`default_unit`), bounds (`min`, `max`) and a one-line `doc`. Field names
  are Postfix's parameter names wherever Postfix has the parameter.
- Defaults are Postfix 3.7's. `upstream.postfix_version` below "2.4" switches the defaults of
  queue_run_delay and minimal_backoff_time to 1000 s, as in Postfix 2.3 and earlier.
- Scheduled changes ([[changes]] with `at` and `relay.X = ...` / `upstream.X = ...`) are checked
  when the scenario is loaded; Scenario.timeline() gives the (time, Upstream, Relay) snapshots.
- `origins` records where each non-default value came from (file, main_cf, main_cf: <why>,
  --set); `main_cf` holds one Pasted record per pasted parameter (its host, line, status:
  modelled, overridden, other host, not modelled or unused parameter, and the key it sets);
  `not_modelled` names the pasted parameters relaysim ignores, once each ("x (the relay's)",
  "x (unused parameter)"); `warnings` holds Postfix's "unused parameter" warnings, for the
  command line to print once. None of these takes part in equality. no_effect(scenario) gives
  the warnings for the [upstream] keys set for another MTA's schedule (each knob's `mta`);
  they are parsed and checked all the same (exim_retry_rule too, whatever the MTA).
- `path` fields (simulation.initial_queue, queue_mtimes) are file names, relative ones taken
  against the scenario file's folder in from_toml; the command line reads the files.
- [upstream] and [relay] accept `main_cf = '''...'''` (main.cf or `postconf -n` text, or
  postconf commands) and `main_cf_file = "path"` (relative to the scenario file's folder in
  from_toml): read by sim.postfix.maincf as Postfix reads it, values converted as Postfix's
  daemons do. The Postfix names of a section's knobs set them; on the upstream also the limits
  of the transport that reaches the relay (they win over default_destination_*),
  recipient_validation from relay_recipient_maps and reject_unverified_recipient, and a
  minimal_backoff_time above maximal_backoff_time raises the maximum to it (qmgr_active.c
  clamps to the minimum last). Explicit TOML keys win over pasted ones.
- Every number has bounds (the knob's, else INT_MAX, TIME_MAX, RATE_MAX, SIZE_MAX); a run
  keeps at most MAX_SAMPLES samples and all senders together send at most RATE_MAX; names are
  folder names (simulation.name) or printable labels. reference_markdown() states them all.
  from_toml(path, require_study=True) (relaysim run) also wants the quantities that define a
  study in the file; check_samples(scenario) wants sample_interval at most duration.
Errors: every bad key, type, unit or value raises ScenarioError naming the key (dotted, e.g.
`upstream.maximal_queue_lifetime`), the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

from sim.errors import MISSING, ScenarioError, did_you_mean, read_text_file
from sim.units import format_rate, format_size, format_time, parse_rate, parse_size, parse_time

INF = math.inf
#: Bounds every number has unless its knob says less (README, scenario reference): Postfix keeps
#: times (seconds) and counts in C ints, and so do relaysim's compiled kernels' int64 arrays with
#: room to spare; a rate is bounded by the memory of one hour of arrivals (1000/s: 3.6 million
#: messages an hour); sizes by 1 GB a message.
INT_MAX = 2**31 - 1
TIME_MAX = float(2**31 - 1)
RATE_MAX = 1000.0
SIZE_MAX = 1e9
PAIRS_MAX = 10_000_000  # (recipient, sender) pairs of one run: four int64 each in memory
MAX_SAMPLES = 200_000  # time-series rows of one run: about 300 MB in memory, 60 MB of CSV
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]{0,99}$")
_NAME_RULE = ("a plain folder name: 1 to 100 letters, digits and . _ + -, not starting with "
              ". or - (the default output folder is results/<name>/; choose another folder "
              "with --out)")


def knob(default, kind, doc, unit="", default_unit="s", lo=None, hi=None, choices=None,
         mta=None):
    """A scenario field with its metadata (see the module contract); numbers without an upper
    bound get the common ones (INT_MAX, TIME_MAX, RATE_MAX, SIZE_MAX); `mta` names the
    upstream MTAs whose schedule reads it (None: every one)."""
    if hi is None:
        hi = {"int": INT_MAX, "time": TIME_MAX, "times": TIME_MAX, "rate": RATE_MAX,
              "size": SIZE_MAX}.get(kind)
    meta = {"kind": kind, "doc": doc, "unit": unit, "default_unit": default_unit,
            "min": lo, "max": hi, "choices": choices, "mta": mta}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Simulation:
    """How long to simulate and how to observe it."""
    name: str = knob("scenario", "name", "name of the run; default output folder results/<name>/")
    duration: float = knob(28 * 86400.0, "time", "simulated time (required in a scenario file)",
                           "s", lo=1)
    seed: int = knob(1, "int", "root seed of all random streams", lo=0, hi=2**63 - 1)
    sample_interval: float = knob(3600.0, "time", "time between samples of the time series "
                                  f"(at most duration, and at most {MAX_SAMPLES} samples)", "s",
                                  lo=1)
    initial_queue: str = knob("", "path", "postqueue -j output of the upstream: `relaysim run` "
                              "starts from this queue, every message with its real age (time 0 "
                              "= the snapshot's time; --initial-queue wins)")
    queue_time: str = knob("", "str", "RFC 3339 time the initial queue was listed (default: its "
                           "newest arrival; --queue-time wins)")
    queue_mtimes: str = knob("", "path", "the initial queue's deferred files' mtimes (wake-up "
                             "times), lines `QUEUE_ID MTIME` (default: rebuilt from the arrival "
                             "times; --queue-mtimes wins)")


@dataclass(frozen=True)
class Sender:
    """One traffic source: Poisson arrivals (with a daily/weekly profile) or explicit times."""
    name: str = knob("internet", "str", "label of this source")
    rate: float = knob(10000 / 86400, "rate", "mean message arrival rate (a scenario file gives "
                       f"rate or arrivals; all senders together at most {RATE_MAX:g}/s)", "1/s")
    arrivals: tuple = knob((), "times", "explicit arrival times instead of Poisson", "s", lo=0)
    profile: str = knob("flat", "choice", "rate shape over the day/week", choices=(
        "flat", "daily", "weekly"))
    start: float = knob(0.0, "time", "when this source starts sending", "s", lo=0)
    stop: float = knob(INF, "time", "when it stops (default: never)", "s", lo=0)
    recipients_per_message: int = knob(1, "int", "envelope recipients per message", lo=1, hi=50)
    unknown_recipient_fraction: float = knob(
        0.3, "float", "share of recipients not in the relay's recipient map", lo=0, hi=1)
    forged_sender_fraction: float = knob(
        0.0, "float", "share of messages with a forged envelope sender (bounces = backscatter)",
        lo=0, hi=1)
    null_sender_fraction: float = knob(
        0.0, "float", "share of messages with the null sender <> (bounces; never bounced)",
        lo=0, hi=1)
    message_size: float = knob(20000.0, "size", "mean message size (lognormal, sigma 1)", "bytes",
                               lo=1)
    sender_addresses: int = knob(
        0, "int", "distinct envelope sender addresses of this source, each message's drawn at "
        "random (0: every message its own); with unknown_recipients_per_sender, (recipient, "
        "sender) pairs repeat and share Exim's retry record", lo=0, hi=PAIRS_MAX)
    unknown_recipients_per_sender: int = knob(
        0, "int", "distinct unknown recipients each sender address writes to, each message's "
        "drawn at random (0: every message its own; set with sender_addresses and "
        "recipients_per_message = 1)", lo=0, hi=PAIRS_MAX)


_POSTFIX = ("postfix",)
_EXCHANGE = ("exchange", "exchange-online")


@dataclass(frozen=True)
class Upstream:
    """The mail-queue host in front of the relay (Postfix qmgr and smtp client by default)."""
    mta: str = knob("postfix", "choice", "retry schedule of the upstream MTA", choices=(
        "postfix", "exim", "sendmail", "qmail", "exchange", "exchange-online", "list"))
    postfix_version: str = knob("3.7", "str", "Postfix version whose defaults apply",
                                mta=_POSTFIX)
    queue_run_delay: float = knob(300.0, "time", "deferred queue scan period", "s", lo=1,
                                  hi=100 * 86400, mta=_POSTFIX)
    minimal_backoff_time: float = knob(300.0, "time", "lower clamp of the per-message backoff",
                                       "s", lo=1, hi=100 * 86400, mta=_POSTFIX)
    maximal_backoff_time: float = knob(4000.0, "time", "upper clamp of the per-message backoff",
                                       "s", lo=1, hi=100 * 86400, mta=_POSTFIX)
    maximal_queue_lifetime: float = knob(5 * 86400.0, "time", "lifetime of mail (0: try once)",
                                         "s", default_unit="d", lo=0, hi=100 * 86400,
                                         mta=_POSTFIX)
    bounce_queue_lifetime: float = knob(5 * 86400.0, "time", "lifetime of null-sender mail", "s",
                                        default_unit="d", lo=0, hi=100 * 86400, mta=_POSTFIX)
    delay_warning_time: float = knob(0.0, "time", "send one delay DSN after this (0: off)", "s",
                                     default_unit="h", lo=0)
    default_destination_concurrency_limit: int = knob(
        20, "int", "parallel deliveries to the relay", lo=1, hi=10000)
    initial_destination_concurrency: int = knob(
        5, "int", "the relay's concurrency window when qmgr starts delivering to it (at most "
        "the limit); each delivery raises it by one, each site-level failure lowers it",
        lo=1, hi=10000, mta=_POSTFIX)
    default_destination_concurrency_failed_cohort_limit: int = knob(
        1, "int", "the relay is dead (no delivery tried for minimal_backoff_time) when its "
        "site-level failures, each counted 1/window, reach this (0: never)", lo=0, hi=10000,
        mta=_POSTFIX)
    default_destination_recipient_limit: int = knob(
        50, "int", "recipients per delivery transaction", lo=1, hi=100000)
    qmgr_message_active_limit: int = knob(20000, "int", "messages in the active queue", lo=1)
    soft_bounce: bool = knob(False, "bool", "defer a recipient the relay rejects with 5xx "
                             "instead of bouncing it (expired mail is still returned; "
                             "mta = postfix only)", mta=_POSTFIX)
    smtp_transaction_time: float = knob(
        0.5, "time", "mean duration of one delivery attempt (its shape: "
        "smtp_transaction_time_distribution)", "s", lo=0, hi=3600)
    smtp_transaction_time_distribution: str = knob(
        "exponential", "choice", "shape of the attempt durations around their mean: "
        "exponential, constant, lognormal (spread: smtp_transaction_time_sigma) or empirical "
        "(smtp_transaction_times, rescaled to the mean); not in [[changes]]",
        choices=("exponential", "constant", "lognormal", "empirical"))
    smtp_transaction_time_sigma: float = knob(
        1.0, "float", "lognormal: standard deviation of log(duration)", lo=0, hi=10)
    smtp_transaction_times: tuple = knob(
        (), "times", "empirical: measured durations (e.g. Postfix's delays= c + d), resampled "
        "and rescaled to mean smtp_transaction_time (1 to 100000 values)", "s", lo=0, hi=3600)
    qmgr_timer_phase: bool = knob(
        True, "bool", "a deferred scan due at second T starts at T plus the sub-second phase "
        "of qmgr's last wake-up (its whole-second select() timers); false: exactly at T",
        mta=_POSTFIX)
    smtp_connection_cache_on_demand: bool = knob(
        True, "bool", "reuse a delivery agent's SMTP session for its next delivery to the "
        "relay when deliveries come back to back (the relay's smtpd error count goes on in it; "
        "matters where relay.smtpd_soft_error_limit is set)", mta=_POSTFIX)
    smtp_connection_cache_time_limit: float = knob(
        2.0, "time", "how long a cached session waits idle for the next delivery", "s", lo=1,
        hi=3600, mta=_POSTFIX)
    smtp_connection_reuse_time_limit: float = knob(
        300.0, "time", "no reuse of a session older than this (from its connection)", "s",
        lo=1, hi=86400, mta=_POSTFIX)
    recipient_validation: str = knob(
        "none", "choice", "check recipients at SMTP time: none, relay_recipient_maps or verify",
        choices=("none", "relay_recipient_maps", "verify"))
    relay_recipient_maps_lag: float = knob(
        0.0, "time", "how long the upstream's copy of the relay's users lags behind", "s", lo=0)
    unknown_relay_recipient_reject_code: int = knob(
        550, "int", "reply for a recipient not in relay_recipient_maps", lo=400, hi=599)
    unverified_recipient_reject_code: int = knob(
        450, "int", "reply when the verification probe bounced", lo=400, hi=599)
    address_verify_positive_refresh_time: float = knob(
        7 * 86400.0, "time", "re-probe a known-good address after this", "s", default_unit="d",
        lo=1)
    # --- other MTAs' schedules (mta = ...); see sim.model.schedules for their sources -----------
    exim_retry_rule: str = knob("F,2h,15m; G,16h,1h,1.5; F,4d,6h", "str",
                                "exim: retry rules in Exim's syntax (at most 1000 characters)",
                                mta=("exim",))
    queue_runner_interval: float = knob(1800.0, "time", "exim: queue runner interval (-q30m)",
                                        "s", lo=1, mta=("exim",))
    queue_interval: float = knob(1800.0, "time", "sendmail: queue run interval (-q30m)", "s",
                                 lo=1, mta=("sendmail",))
    min_queue_age: float = knob(0.0, "time", "sendmail: MinQueueAge", "s", lo=0,
                                mta=("sendmail",))
    queuereturn: float = knob(5 * 86400.0, "time", "sendmail: Timeout.queuereturn", "s",
                              default_unit="d", lo=0, mta=("sendmail",))
    hoststatus: float = knob(1800.0, "time", "sendmail: Timeout.hoststatus, how long a host "
                             "that refused a connection is skipped by the queue runs", "s",
                             lo=0, mta=("sendmail",))
    queuelifetime: float = knob(7 * 86400.0, "time", "qmail: queuelifetime", "s", lo=0,
                                mta=("qmail",))
    message_retry_interval: float = knob(
        0.0, "time", "exchange: MessageRetryInterval (0: 15m; exchange-online: 1h, assumed)",
        "s", lo=0, mta=_EXCHANGE)
    message_expiration_timeout: float = knob(
        0.0, "time", "exchange: MessageExpirationTimeout (0: 2d; exchange-online: 24h)", "s",
        lo=0, mta=_EXCHANGE)
    retry_list: tuple = knob((120.0, 300.0, 600.0), "times",
                             "list: gaps between attempts, the last repeating (1 to 1000 "
                             "gaps)", "s", lo=1, hi=100 * 86400, mta=("list",))
    lifetime: float = knob(5 * 86400.0, "time", "list: lifetime", "s", default_unit="d", lo=0,
                           mta=("list",))


@dataclass(frozen=True)
class Outage:
    """An interval during which the relay refuses connections."""
    start: float = knob(0.0, "time", "when the outage begins (required)", "s", lo=0)
    duration: float = knob(3600.0, "time", "how long it lasts (required)", "s", lo=0)


@dataclass(frozen=True)
class Greylisting:
    """postgrey in front of the relay's recipient check (mta-semantics.md 4.4)."""
    delay: float = knob(300.0, "time", "postgrey --delay: greylist time of a new triplet", "s",
                        lo=0)
    retry_window: float = knob(2 * 86400.0, "time",
                               "postgrey --retry-window: a later first retry starts over", "s",
                               lo=1)
    max_age: float = knob(35 * 86400.0, "time", "postgrey --max-age (accepted, not modelled)",
                          "s", lo=1)
    auto_whitelist_clients: int = knob(
        5, "int", "whitelist the client after this many passes, counted once per hour (0: off)",
        lo=0)


@dataclass(frozen=True)
class Relay:
    """The local Postfix relay: recipient map, reject codes, availability."""
    local_users: int = knob(100, "int", "users in local_recipient_maps", lo=0)
    unknown_local_recipient_reject_code: int = knob(
        550, "int", "reply to RCPT for an unknown local user (450 or 550 in practice)",
        lo=400, hi=599)
    soft_bounce: bool = knob(False, "bool", "turn every 5xx reply into 4xx")
    outages: tuple = knob((), "outages", "scheduled outages [{start, duration}]")
    outage_mtbf: float = knob(0.0, "time", "mean time between random outages (0: none; else at "
                              "least 60s)", "s", lo=0)
    outage_mttr: float = knob(3600.0, "time", "mean duration of a random outage", "s", lo=0)
    smtpd_hard_error_limit: int = knob(
        0, "int", "421 and disconnect after this many rejected RCPTs in a session (0: off; "
        "Postfix's default is 20, but see the README: derived, not verified live)", lo=0)
    smtpd_soft_error_limit: int = knob(
        0, "int", "from this many errors in a session on (a rejected RCPT, DATA without a "
        "valid recipient), sleep smtpd_error_sleep_time before every reply (0: off; Postfix's "
        "default is 10; see the README)", lo=0)
    smtpd_error_sleep_time: float = knob(
        1.0, "time", "the sleep before each reply past smtpd_soft_error_limit", "s", lo=0,
        hi=3600)
    greylisting: Greylisting | None = knob(None, "greylisting",
                                           "postgrey settings, or true (defaults) or false "
                                           "(none); absent: no greylisting")


@dataclass(frozen=True)
class Change:
    """A scheduled configuration change: at time `at`, set relay.X / upstream.X."""
    at: float = knob(0.0, "time", "when the change takes effect", "s", lo=0)
    upstream: Mapping = knob({}, "overrides", "upstream parameters to set")
    relay: Mapping = knob({}, "overrides", "relay parameters to set")


SECTIONS = {"simulation": Simulation, "senders": Sender, "upstream": Upstream, "relay": Relay,
            "changes": Change}
FIELDS_DOC = {name: cls for name, cls in SECTIONS.items()}


def _parse_value(key: str, f: dataclasses.Field, value: Any) -> Any:
    """One field from its TOML value, by its metadata kind; bounds checked."""
    m = f.metadata
    kind = m["kind"]
    if kind == "time":
        out = parse_time(key, value, m["default_unit"], never=f.default == INF)
        if out == INF and f.default == INF and str(value).strip() in ("never", "inf"):
            return out
    elif kind == "rate":
        out = parse_rate(key, value)
    elif kind == "size":
        out = parse_size(key, value)
    elif kind == "int":
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioError(key, value, "a whole number" + _bounds(m))
        out = value
    elif kind == "float":
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, int) and not isinstance(value, bool):
            value = float(value) if abs(value) < 2**1000 else math.copysign(INF, value)
        if not isinstance(value, float) or math.isnan(value):
            raise ScenarioError(key, value, "a number" + _bounds(m))
        out = value
    elif kind == "bool":
        if isinstance(value, str) and value.lower() in ("yes", "no", "true", "false"):
            value = value.lower() in ("yes", "true")
        if not isinstance(value, bool):
            raise ScenarioError(key, value, "true or false (Postfix: yes or no)")
        return value
    elif kind == "choice":
        if value not in m["choices"]:
            raise ScenarioError(key, value, "one of " + ", ".join(m["choices"]),
                                did_you_mean(str(value), m["choices"]))
        return value
    elif kind in ("str", "path"):
        if not isinstance(value, str) or not value or not value.isprintable() or len(value) > 1000:
            raise ScenarioError(key, value, "a non-empty string of printable characters (at most "
                                "1000)")
        return value
    elif kind == "name":
        if not isinstance(value, str) or not _NAME.match(value):
            raise ScenarioError(key, value, _NAME_RULE)
        return value
    elif kind == "times":
        if not isinstance(value, list):
            raise ScenarioError(key, value, 'a list of times like ["0s", "90s", "2h"]')
        most = 1000 if f.name == "retry_list" else 1_000_000
        if f.name == "retry_list" and not value:
            raise ScenarioError(key, value, 'at least one gap, like ["2m", "5m", "10m"]')
        if len(value) > most:
            raise ScenarioError(key, f"a list of {len(value)} times", f"at most {most}",
                                problem="too many")
        times = tuple(_parse_value(f"{key}[{i}]", _one_time(m["min"] or 0, m["max"]), v)
                      for i, v in enumerate(value))
        return tuple(sorted(times)) if f.name == "arrivals" else times
    elif kind == "greylisting":
        if isinstance(value, bool):
            return Greylisting() if value else None
        return _build(Greylisting, value, key)
    elif kind == "outages":
        if not isinstance(value, list):
            raise ScenarioError(key, value, 'a list like [{ start = "2d", duration = "6h" }]')
        return tuple(_build(Outage, v, f"{key}[{i}]") for i, v in enumerate(value))
    else:  # pragma: no cover - a knob declared with a kind this function does not know
        raise AssertionError(kind)
    if isinstance(out, float) and math.isnan(out):
        raise ScenarioError(key, value, "a number" + _bounds(m))
    if (m["min"] is not None and out < m["min"]) or (m["max"] is not None and out > m["max"]):
        raise ScenarioError(key, value, "a value" + _bounds(m), problem="out of range")
    return out


def _one_time(lo: float, hi: float) -> SimpleNamespace:
    """One element of a `times` list, as _parse_value reads a field: a time in [lo, hi]."""
    return SimpleNamespace(name="t", default=0.0, metadata={
        "kind": "time", "doc": "", "unit": "s", "default_unit": "s", "min": lo, "max": hi,
        "choices": None})


def _bounds(m: Mapping) -> str:
    lo, hi = m["min"], m["max"]
    if m["kind"] == "rate":
        def num(x):
            return format_rate(x) if x else "0"
    else:
        unit = f" {m['unit']}" if m["unit"] and m["unit"] != "s" else ""

        def num(x):
            if m["kind"] == "size":
                return format_size(x)
            if m["unit"] == "s":
                if x == TIME_MAX:  # Postfix's ceiling, as its C int is written
                    return f"{int(x)}s"
                return format_time(x) if x else "0"
            return (str(int(x)) if float(x).is_integer() else f"{x:g}") + unit
    if lo is not None and hi is not None:
        return f" from {num(lo)} to {num(hi)}"
    if lo is not None:
        return f" of at least {num(lo)}"
    if hi is not None:
        return f" of at most {num(hi)}"
    return ""


def _key_list(prefix: str, fields) -> str:
    """What an unknown key's error allows: the section's keys when they are few, else where
    they are listed."""
    section = prefix.split("[")[0]
    if len(fields) <= 8:
        return "one of " + ", ".join(fields)
    return (f"one of the {len(fields)} keys of [{section}] (relaysim explain -d lists them; "
            "README: scenario reference)")


def _build(cls, table: Any, prefix: str, defaults: Mapping[str, Any] | None = None):
    """An instance of `cls` from a TOML table, every key checked and parsed."""
    if not isinstance(table, Mapping):
        raise ScenarioError(prefix, table, f"a table of {cls.__name__} settings")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = dict(defaults or {})
    for key, value in table.items():
        dotted = f"{prefix}.{key}"
        if key not in fields:
            raise ScenarioError(dotted, value, _key_list(prefix, fields),
                                did_you_mean(key, fields), problem=f"unknown key in "
                                f"[{prefix.split('[')[0]}]")
        kwargs[key] = _parse_value(dotted, fields[key], value)
    return cls(**kwargs)


def _resolved(table: Any, cls, base: Path | None) -> Any:
    """The table with its relative `path` values taken against `base` (the scenario file's
    folder), so a scenario names its files as main_cf_file does."""
    if base is None or not isinstance(table, Mapping):
        return table
    paths = {f.name for f in dataclasses.fields(cls) if f.metadata.get("kind") == "path"}
    return {k: str(base / v) if k in paths and isinstance(v, str) and v and
            not Path(v).is_absolute() else v for k, v in table.items()}


class Pasted(NamedTuple):
    """One parameter of a pasted main.cf and what relaysim does with it."""
    host: str       # whose main.cf: upstream or relay
    name: str
    value: str      # expanded, as `postconf -nx` shows it
    line: int       # of its (last) assignment
    status: str     # modelled, overridden, other host, not modelled, unused parameter
    key: str        # the scenario key it is read for (upstream.recipient_validation), or ""
    note: str       # how it is read, or why it is not


# Postfix parameters that the upstream's main.cf is read for beyond the knobs of the same name.
_TRANSPORT_LIMITS = ("destination_concurrency_limit", "destination_recipient_limit")
_VALIDATION = ("relay_recipient_maps", "smtpd_recipient_restrictions", "smtpd_relay_restrictions",
               "smtpd_reject_unlisted_recipient")
_ROUTING = ("relay_domains", "relay_transport", "default_transport")


def _postfix_knobs(cls) -> dict[str, dataclasses.Field]:
    """The fields of `cls` named after a Postfix parameter (they take main.cf values)."""
    from sim.postfix import maincf

    return {f.name: f for f in dataclasses.fields(cls) if f.name in maincf.DEFAULTS}


def _modelled_names() -> set[str]:
    """Every Postfix name relaysim reads on either host (a near-miss of one is an error)."""
    return {*_postfix_knobs(Upstream), *_postfix_knobs(Relay), *_VALIDATION, *_ROUTING,
            "soft_bounce", *(f"{t}_{s}" for t in ("smtp", "relay") for s in _TRANSPORT_LIMITS)}


def _main_cf_value(name: str, f: dataclasses.Field, value: str) -> Any:
    """A pasted value converted as Postfix's daemons do, for the scenario knob `f`."""
    from sim.postfix import maincf

    kind = f.metadata["kind"]
    if kind == "time":
        return f"{maincf.time_seconds(name, value)}s"
    if kind == "int":
        return maincf.int_value(name, value)
    if kind == "bool":
        return maincf.bool_value(name, value)
    return value


def _with_main_cf(table: Any, cls, prefix: str, origins: dict, pasted: list,
                  warnings: list, base: Path | None = None) -> Any:
    """The section's table with pasted main.cf settings merged in (explicit TOML keys win).

    `main_cf = '''...'''` holds main.cf or `postconf -n` text, `main_cf_file` a path to one
    (relative to the scenario file's folder). Each pasted parameter is recorded in `pasted`
    with what it does; Postfix's warnings go to `warnings` (sim.postfix.maincf)."""
    if not isinstance(table, Mapping) or not ({"main_cf", "main_cf_file"} & set(table)):
        return table
    from sim.postfix import maincf

    table = dict(table)
    text = table.pop("main_cf", "")
    path = table.pop("main_cf_file", None)
    if not isinstance(text, str):
        raise ScenarioError(f"{prefix}.main_cf", text, "main.cf text in a string")
    origin = f"{prefix}.main_cf"
    if path is not None:                         # its lines first, then main_cf's
        file = Path(str(path)).expanduser()
        origin = f"{prefix}.main_cf_file" + (" and main_cf" if text.strip() else "")
        text = read_text_file(base / file if base else file,
                              f"{prefix}.main_cf_file") + "\n" + text
    mc = maincf.read(text, origin, _modelled_names())
    warnings.extend(mc.warnings)
    knobs = _postfix_knobs(cls)
    merged: dict[str, Any] = {}
    notes: dict[str, tuple[str, str, str]] = {}  # name -> (status, key, note)

    def take(key: str, name: str, value: Any, why: str = "") -> None:
        if key in table:
            notes[name] = ("overridden", f"{prefix}.{key}", "the scenario file sets it")
            return
        merged[key] = value
        origins[f"{prefix}.{key}"] = "main_cf" + (f": {why}" if why else "")
        notes.setdefault(name, ("modelled", f"{prefix}.{key}", why))

    for name, f in knobs.items():
        if name in mc.params and not (cls is Upstream and name.startswith("default_")):
            take(name, name, _main_cf_value(name, f, mc.params[name]))
    if cls is Upstream:
        transport, why = maincf.delivery_transport(mc.raw)
        for suffix in _TRANSPORT_LIMITS:
            key, own = f"default_{suffix}", f"{transport}_{suffix}"
            if key in mc.params or own in mc.params:
                value = maincf.int_value(own, maincf.expanded(mc.raw, own))
                name = own if own in mc.params else key
                take(key, name, value, own if own in mc.params else "")
                if notes[name][0] == "modelled":
                    notes[name] = ("modelled", f"{prefix}.{key}", f"the limit of the {transport} "
                                   f"transport, by which the upstream reaches the relay ({why})")
                if own in mc.params and key in mc.params:
                    notes[key] = ("overridden", f"{prefix}.{key}",
                                  f"{own} wins for the {transport} transport")
            for name in mc.params:
                if name.endswith("_" + suffix) and name not in (key, own):
                    notes[name] = ("not modelled", "", f"the upstream reaches the relay "
                                   f"through its {transport} transport ({why})")
        validation = maincf.recipient_validation(mc.raw)
        if validation:
            mode, reason = validation
            for name in _VALIDATION:
                if name in mc.params and mode != "none":
                    take("recipient_validation", name, mode, reason)
                elif name in mc.params:
                    notes[name] = ("modelled", f"{prefix}.recipient_validation", reason)
        _clamp_backoff(table, merged, origins, prefix)
    other, where = (Relay, "relay") if cls is Upstream else (Upstream, "upstream")
    for name, value in mc.params.items():
        key = ""
        if name in mc.unused:
            status, note = "unused parameter", "Postfix warns too (unless master.cf uses it)"
        elif name in notes:
            status, key, note = notes[name]
        elif name in _postfix_knobs(other):
            status, note = "other host", (f"relaysim models it on the {where}: set it in "
                                          f"[{where}]")
        elif name in _VALIDATION and cls is Relay:
            status, note = "not modelled", ("the relay's recipient check is relay.local_users "
                                            "and unknown_local_recipient_reject_code")
        elif name in _ROUTING and cls is Upstream:
            status, note = "modelled", "read to choose the upstream's transport to the relay"
        else:
            status, note = "not modelled", "accepted; relaysim does not model it"
        pasted.append(Pasted(prefix, name, value, mc.lines[name], status, key, note))
    return {**merged, **table}


def _not_modelled(pasted: list[Pasted]) -> tuple[str, ...]:
    """The pasted names relaysim ignores, once each: `name`, `name (the relay's)` for one
    modelled on the other host, `name (unused parameter)` for one Postfix does not know."""
    tags = {"not modelled": "", "unused parameter": " (unused parameter)",
            "other host": " (the {}'s)"}
    return tuple(dict.fromkeys(
        p.name + tags[p.status].format("relay" if p.host == "upstream" else "upstream")
        for p in pasted if p.status in tags))


def _clamp_backoff(table: Mapping, merged: dict, origins: dict, prefix: str) -> None:
    """Postfix's qmgr raises a backoff below minimal_backoff_time to it, also above
    maximal_backoff_time (qmgr_active.c), so a pasted minimum above the maximum is the
    maximum too; relaysim's knobs require maximal >= minimal."""
    keys = ("minimal_backoff_time", "maximal_backoff_time")
    if not any(k in merged for k in keys) or any(k in table for k in keys):
        return
    old = _older_than_24(prefix, table.get("postfix_version", "3.7"))
    low = float(merged.get(keys[0], "1000s" if old else "300s")[:-1])
    high = float(merged.get(keys[1], "4000s")[:-1])
    if low > high:
        merged[keys[1]] = f"{int(low)}s"
        origins[f"{prefix}.{keys[1]}"] = ("main_cf: minimal_backoff_time, as Postfix's qmgr "
                                          "never waits less")


def _upstream(table: Mapping, prefix: str = "upstream") -> Upstream:
    version = table.get("postfix_version", "3.7")
    defaults = {}
    if _older_than_24(prefix, version):
        defaults = {"queue_run_delay": 1000.0, "minimal_backoff_time": 1000.0}
    up = _build(Upstream, table, prefix, defaults)
    _check_upstream(up, prefix)
    return up


def _older_than_24(prefix: str, version: Any) -> bool:
    try:
        major, minor = (int(x) for x in str(version).split(".")[:2])
    except ValueError:
        raise ScenarioError(f"{prefix}.postfix_version", version,
                            'a Postfix version like "3.7" or "2.3"') from None
    return (major, minor) < (2, 4)


SHAPE_KEYS = ("smtp_transaction_time_distribution", "smtp_transaction_time_sigma",
              "smtp_transaction_times")


def _check_upstream(up: Upstream, prefix: str) -> None:
    if up.smtp_transaction_time_distribution == "empirical":
        times = up.smtp_transaction_times
        if not 1 <= len(times) <= 100_000 or not sum(times) > 0:
            raise ScenarioError(f"{prefix}.smtp_transaction_times",
                                "[" + ", ".join(format_time(t) for t in times[:3])
                                + (", ...]" if len(times) > 3 else "]"),
                                "1 to 100000 measured durations, not all 0",
                                problem="needed by smtp_transaction_time_distribution = "
                                "empirical")
    from sim.model.schedules import parse_exim_rules

    parse_exim_rules(up.exim_retry_rule, f"{prefix}.exim_retry_rule")  # whatever the MTA
    if up.soft_bounce and up.mta != "postfix":
        raise ScenarioError(f"{prefix}.soft_bounce", "true", "false unless mta = \"postfix\" "
                            f"(soft_bounce is a Postfix parameter; mta = \"{up.mta}\")")
    if up.maximal_backoff_time < up.minimal_backoff_time:
        raise ScenarioError(f"{prefix}.maximal_backoff_time",
                            format_time(up.maximal_backoff_time), "at least "
                            f"minimal_backoff_time ({format_time(up.minimal_backoff_time)})")
    for name in ("maximal_queue_lifetime", "bounce_queue_lifetime"):
        life = getattr(up, name)
        if 0 < life < up.minimal_backoff_time:
            raise ScenarioError(f"{prefix}.{name}", format_time(life),
                                "0 (one attempt) or at least minimal_backoff_time "
                                f"({format_time(up.minimal_backoff_time)})")


@dataclass(frozen=True)
class Scenario:
    """One run's complete configuration. Build with from_toml / from_dict."""
    simulation: Simulation = field(default_factory=Simulation)
    senders: tuple[Sender, ...] = (Sender(),)
    upstream: Upstream = field(default_factory=Upstream)
    relay: Relay = field(default_factory=Relay)
    changes: tuple[Change, ...] = ()
    origins: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    not_modelled: tuple[str, ...] = field(default=(), compare=False, repr=False)
    main_cf: tuple[Pasted, ...] = field(default=(), compare=False, repr=False)
    warnings: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def from_toml(cls, path: str | Path, require_study: bool = False) -> Scenario:
        """The scenario of a TOML file. With require_study (relaysim run), the quantities that
        define a study must be in the file: simulation.duration, one or more [[senders]] each
        with rate or arrivals, and start and duration of every outage."""
        path = Path(path)
        data = _load_toml(read_text_file(path, "scenario"), path.name)
        given = dict(data)
        if isinstance(data.get("simulation", {}), dict):
            data["simulation"] = {"name": _safe_name(path.stem), **data.get("simulation", {})}
        scen = cls.from_dict(data, origin="file", base=path.parent)
        if require_study:  # after the values: a wrong one is reported before a missing one
            _require_study(given)
        return scen

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], origin: str = "dict",
                  base: Path | None = None) -> Scenario:
        if not isinstance(d, Mapping):
            raise ScenarioError("scenario", d, "a table of sections")
        for key in d:
            if key not in SECTIONS:
                raise ScenarioError(key, "[section]", "one of " + ", ".join(SECTIONS),
                                    did_you_mean(str(key), SECTIONS),
                                    problem="unknown section")
        for key in ("simulation", "upstream", "relay"):
            if key in d and not isinstance(d[key], Mapping):
                raise ScenarioError(key, d[key], f"a [{key}] table of settings")
        for key in ("senders", "changes"):
            if key in d and not isinstance(d[key], list):
                raise ScenarioError(key, d[key], f"a list of [[{key}]] tables")
        origins = {f"{sec}.{k}": origin for sec in ("simulation", "upstream", "relay")
                   for k in (d.get(sec) or {}) if k not in ("main_cf", "main_cf_file")}
        pasted: list[Pasted] = []
        warnings: list[str] = []
        up_table = _with_main_cf(d.get("upstream", {}), Upstream, "upstream", origins, pasted,
                                 warnings, base)
        relay_table = _with_main_cf(d.get("relay", {}), Relay, "relay", origins, pasted,
                                    warnings, base)
        not_modelled = _not_modelled(pasted)
        sim = _build(Simulation, _resolved(d.get("simulation", {}), Simulation, base),
                     "simulation")
        senders_raw = d.get("senders", [{}])
        if not isinstance(senders_raw, list) or not senders_raw:
            raise ScenarioError("senders", senders_raw, "one or more [[senders]] tables")
        senders = tuple(_build(Sender, s, f"senders[{i}]") for i, s in enumerate(senders_raw))
        up = _upstream(up_table)
        relay = _build(Relay, relay_table, "relay")
        changes_raw = d.get("changes", [])
        if not isinstance(changes_raw, list):
            raise ScenarioError("changes", changes_raw, "a list of [[changes]] tables")
        changes = []
        for i, c in enumerate(changes_raw):
            prefix = f"changes[{i}]"
            if not isinstance(c, Mapping) or "at" not in c:
                raise ScenarioError(prefix, c, 'a table with at = "<time>" and relay.X = ...')
            for key in c:
                if key not in ("at", "upstream", "relay"):
                    raise ScenarioError(f"{prefix}.{key}", c[key],
                                        "at, upstream.<parameter> or relay.<parameter>",
                                        did_you_mean(key, ("at", "upstream", "relay")),
                                        problem="unknown key in [[changes]]")
            at = _parse_value(f"{prefix}.at", _field(Change, "at"), c["at"])
            for sec in ("upstream", "relay"):
                if not isinstance(c.get(sec, {}), Mapping):
                    raise ScenarioError(f"{prefix}.{sec}", c[sec],
                                        f"{sec}.<parameter> = <value> settings")
            changes.append(Change(at=at, upstream=dict(c.get("upstream", {})),
                                  relay=dict(c.get("relay", {}))))
        changes.sort(key=lambda ch: ch.at)
        for i, snd in enumerate(senders):
            if snd.recipients_per_message > up.default_destination_recipient_limit:
                raise ScenarioError(
                    f"senders[{i}].recipients_per_message", snd.recipients_per_message,
                    f"at most default_destination_recipient_limit "
                    f"({up.default_destination_recipient_limit}): relaysim delivers one "
                    "transaction per message attempt")
        _check_pairs(senders)
        scen = cls(sim, senders, up, relay, tuple(changes), origins,
                   tuple(not_modelled), tuple(pasted), tuple(warnings))
        _check_run(scen)
        scen.timeline()  # checks every change now, not mid-run
        return scen

    def timeline(self) -> list[tuple[float, Upstream, Relay]]:
        """(time, upstream, relay) snapshots: the initial one at 0, then one per change."""
        snaps = [(0.0, self.upstream, self.relay)]
        for i, ch in enumerate(self.changes):
            t, up, relay = snaps[-1]
            if ch.upstream:
                up = _apply(up, ch.upstream, f"changes[{i}].upstream")
            if ch.relay:
                relay = _apply(relay, ch.relay, f"changes[{i}].relay")
            snaps.append((ch.at, up, relay))
        return snaps

    def with_overrides(self, overrides: Mapping[str, Any], origin: str = "--set") -> Scenario:
        """A new scenario with dotted keys set, e.g. {"upstream.maximal_queue_lifetime": "10d"}."""
        d = self.to_dict()
        if "upstream.postfix_version" in overrides:
            # the version decides these defaults: keep them only where they were set explicitly
            for key in ("queue_run_delay", "minimal_backoff_time"):
                if f"upstream.{key}" not in self.origins:
                    del d["upstream"][key]
        for dotted, value in overrides.items():
            if dotted.split(".")[-1] in ("main_cf", "main_cf_file"):
                raise ScenarioError(dotted, value, "single parameters, --set "
                                    "upstream.<name>=<value>", problem="main_cf is read from "
                                    "the scenario file only")
            parts = dotted.split(".")
            node: Any = d
            if parts[0] not in SECTIONS:
                raise ScenarioError(dotted, value, "a key like upstream.queue_run_delay",
                                    did_you_mean(parts[0], SECTIONS),
                                    problem=f"unknown section {parts[0]!r}")
            for j, part in enumerate(parts[:-1]):
                if isinstance(node, list):
                    if not node:
                        raise ScenarioError(dotted, value, "an existing entry (add them in "
                                            "the file)", problem=f"the scenario has no "
                                            f"{parts[j - 1]}")
                    if not part.isdigit() or int(part) >= len(node):
                        raise ScenarioError(dotted, value, f"an index from 0 to {len(node) - 1}"
                                            f" after {'.'.join(parts[:j])}")
                    node = node[int(part)]
                elif isinstance(node, dict):
                    node = node.setdefault(part, {})
                    if isinstance(node, list) and j == len(parts) - 2:
                        raise ScenarioError(dotted, value, f"an index: {part}.0.<key>")
                else:
                    raise ScenarioError(dotted, value, f"a key inside a table: "
                                        f"{'.'.join(parts[:j])} is a single value")
            if isinstance(node, list):
                raise ScenarioError(dotted, value, f"{dotted}.<key> with an index first")
            if not isinstance(node, dict):
                raise ScenarioError(dotted, value, f"a key inside a table: "
                                    f"{'.'.join(parts[:-1])} is a single value")
            node[parts[-1]] = value
        new = Scenario.from_dict(d, origin="dict")
        origins = dict(self.origins)
        origins.update({k: origin for k in overrides})
        return dataclasses.replace(new, origins=origins, not_modelled=self.not_modelled,
                                   main_cf=self.main_cf, warnings=self.warnings)

    def to_dict(self) -> dict[str, Any]:
        """A plain, TOML/JSON-friendly dict that from_dict turns back into this scenario."""
        return {
            "simulation": _as_table(self.simulation),
            "senders": [_as_table(s) for s in self.senders],
            "upstream": _as_table(self.upstream),
            "relay": _as_table(self.relay),
            "changes": [{"at": format_time(c.at), **({"upstream": dict(c.upstream)} if c.upstream
                                                 else {}),
                         **({"relay": dict(c.relay)} if c.relay else {})} for c in self.changes],
        }


def _load_toml(text: str, name: str) -> dict:
    """tomllib's table, its complaints as one line naming the file (and a duplicate key)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        why = str(e)
        m = re.search(r"line (\d+)", why)
        if m and "overwrite" in why:
            line = text.splitlines()[int(m.group(1)) - 1] if int(m.group(1)) <= len(
                text.splitlines()) else ""
            key = line.split("=")[0].strip().strip("[]").strip()
            why += f"; {key!r} is set twice" if key else ""
        raise ScenarioError(name, "malformed TOML", "valid TOML", problem=why) from None
    except RecursionError:
        raise ScenarioError(name, "TOML nested too deep", "tables and arrays nested a few "
                            "levels, as a scenario needs", problem="nested too deep") from None


def _safe_name(stem: str) -> str:
    """A file's stem as a default run name (_NAME): other characters become '_'."""
    name = re.sub(r"[^A-Za-z0-9._+-]+", "_", stem).lstrip(".-")[:100]
    return name if _NAME.match(name) else "scenario"


def _require_study(data: Mapping) -> None:
    """The keys a scenario file must give (Scenario.from_toml, require_study)."""
    sim = data.get("simulation")
    if not isinstance(sim, Mapping) or "duration" not in sim:
        raise ScenarioError("simulation.duration", MISSING, 'the simulated time, e.g. '
                            '[simulation] duration = "28d"')
    senders = data.get("senders")
    if not isinstance(senders, list) or not senders:
        raise ScenarioError("senders", MISSING, "one or more [[senders]] tables with rate "
                            "or arrivals")
    for i, snd in enumerate(senders):
        if isinstance(snd, Mapping) and not {"rate", "arrivals"} & set(snd):
            raise ScenarioError(f"senders[{i}].rate", MISSING, 'rate = "10000/d" or '
                                'arrivals = ["0s", "90s"]')
    relay = data.get("relay")
    outages = relay.get("outages") if isinstance(relay, Mapping) else None
    for i, o in enumerate(outages if isinstance(outages, list) else ()):
        for key in ("start", "duration"):
            if isinstance(o, Mapping) and key not in o:
                raise ScenarioError(f"relay.outages[{i}].{key}", MISSING,
                                    'an outage with start and duration, like { start = "2d", '
                                    'duration = "6h" }')


def no_effect(scen: Scenario) -> list[str]:
    """Warnings for the [upstream] keys the scenario sets (file, main_cf, --set, a change)
    that the upstream's MTA does not read: another MTA's schedule (`mta` of the knob)."""
    up = scen.upstream
    given = [k.split(".", 1)[1] for k in scen.origins if k.startswith("upstream.")]
    given += [k for ch in scen.changes for k in ch.upstream]
    fields = {f.name: f for f in dataclasses.fields(Upstream)}
    out = []
    for name in dict.fromkeys(given):
        mtas = fields[name].metadata["mta"] if name in fields else None
        if mtas and up.mta not in mtas:
            out.append(f"upstream.{name} has no effect with upstream.mta = {up.mta} (only "
                       f"{' and '.join(mtas)} read{'s' if len(mtas) == 1 else ''} it); "
                       "checked all the same")
    return out


def check_samples(scen: Scenario) -> None:
    """A run's time series has more than its first sample: sample_interval at most duration
    (relaysim run; a library caller may want the one row)."""
    sim = scen.simulation
    if sim.sample_interval > sim.duration:
        raise ScenarioError("simulation.sample_interval", format_time(sim.sample_interval),
                            f"at most simulation.duration ({format_time(sim.duration)})",
                            problem="longer than the run: the time series would be its "
                            "first, empty sample")


def _check_pairs(senders: tuple[Sender, ...]) -> None:
    """The pair pools: both or neither, one recipient a message, at most PAIRS_MAX pairs."""
    for i, snd in enumerate(senders):
        a, m = snd.sender_addresses, snd.unknown_recipients_per_sender
        if bool(a) != bool(m):
            key = "unknown_recipients_per_sender" if a else "sender_addresses"
            raise ScenarioError(f"senders[{i}].{key}", getattr(snd, key),
                                "more than 0 when sender_addresses or "
                                "unknown_recipients_per_sender is (pairs repeat only with both)")
        if a and snd.recipients_per_message != 1:
            raise ScenarioError(f"senders[{i}].recipients_per_message",
                                snd.recipients_per_message,
                                "1 when sender_addresses and unknown_recipients_per_sender are "
                                "set (relaysim keys a pair per message)")
    # as sim.model.sender.pair_count: the sender addresses and <>, each with its recipients
    total = sum((s.sender_addresses + 1) * s.unknown_recipients_per_sender for s in senders
                if s.sender_addresses)
    if total > PAIRS_MAX:
        raise ScenarioError("senders.unknown_recipients_per_sender", total,
                            f"at most {PAIRS_MAX} (recipient, sender) pairs in all: "
                            "(sender_addresses + 1) x unknown_recipients_per_sender per sender")


def _check_run(scen: Scenario) -> None:
    """Bounds that involve several keys (README, scenario reference)."""
    sim = scen.simulation
    samples = math.floor(sim.duration / sim.sample_interval) + 1
    if samples > MAX_SAMPLES:
        raise ScenarioError("simulation.sample_interval", format_time(sim.sample_interval),
                            f"at least {format_time(math.ceil(sim.duration / (MAX_SAMPLES - 1)))}"
                            f" for a duration of {format_time(sim.duration)} (at most "
                            f"{MAX_SAMPLES} samples)", problem=f"too many samples: {samples} "
                            f"would take about {samples * 1600 // 10**6} MB")
    total = sum(s.rate for s in scen.senders if not s.arrivals)
    if total > RATE_MAX:
        raise ScenarioError("senders.rate", f"{format_rate(total)} in all",
                            f"at most {format_rate(RATE_MAX)} over all senders",
                            problem="too much traffic")
    if 0 < scen.relay.outage_mtbf < 60:
        raise ScenarioError("relay.outage_mtbf", format_time(scen.relay.outage_mtbf),
                            "0 (no random outages) or at least 60s")


def _field(cls, name: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(cls) if f.name == name)


def _as_table(obj) -> dict[str, Any]:
    """Fields as TOML values that parse back to the same object (times as '<n>s')."""
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        kind = f.metadata["kind"]
        if kind == "time":
            v = format_time(v)
        elif kind == "rate":
            v = format_rate(v)
        elif kind == "times":
            v = [format_time(x) for x in v]
        elif kind == "outages":
            v = [_as_table(o) for o in v]
        elif kind == "greylisting":
            if v is None:
                continue
            v = _as_table(v)
        elif kind in ("str", "path") and v == "":
            continue  # not set (an empty string is not a value a file may give)
        elif kind == "size":
            v = format_size(v)
        out[f.name] = v
    return out


def _apply(obj, overrides: Mapping[str, Any], prefix: str):
    """`obj` with `overrides` (raw TOML values) parsed and applied; Upstream rules re-checked."""
    fields = [f.name for f in dataclasses.fields(obj)]
    for k, v in overrides.items():
        if k not in fields:
            section = prefix.rsplit('.', 1)[-1]
            raise ScenarioError(f"{prefix}.{k}", v, _key_list(section, fields),
                                did_you_mean(k, fields), problem=f"unknown key in [{section}]")
    if isinstance(obj, Upstream) and "mta" in overrides:
        raise ScenarioError(f"{prefix}.mta", overrides["mta"], "changes of the MTA's "
                            "parameters only", problem="the MTA cannot change during a run")
    for k in SHAPE_KEYS:
        if isinstance(obj, Upstream) and k in overrides:
            raise ScenarioError(f"{prefix}.{k}", overrides[k], "a setting of [upstream] only",
                                problem="the attempt durations' shape cannot change during a "
                                "run (smtp_transaction_time, their mean, can)")
    new = _build(type(obj), {**_as_table(obj), **overrides}, prefix)
    if isinstance(new, Upstream):
        _check_upstream(new, prefix)
    return new


def _default_text(f: dataclasses.Field) -> str:
    m = f.metadata
    v = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    if v is None:
        return "absent"
    if v == "":
        return "none"
    if m["kind"] == "time":
        return format_time(v)
    if m["kind"] == "rate":
        return format_rate(v)
    if m["kind"] == "times":
        return "[" + ", ".join(format_time(x) for x in v) + "]" if v else "[]"
    if m["kind"] == "size":
        return format_size(v)
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, tuple | list | Mapping):
        return "none" if not v else str(v)
    return str(v)


def reference_markdown() -> str:
    """The scenario reference (every key, its unit, default and meaning) as Markdown tables,
    generated from the knobs themselves so the README cannot drift from the code."""
    out = []
    tables = [("[simulation]", Simulation), ("[[senders]]", Sender), ("[upstream]", Upstream),
              ("[relay]", Relay), ("[relay.greylisting]", Greylisting),
              ("outages = [{...}]", Outage), ("[[changes]]", Change)]
    for title, cls in tables:
        out += [f"**{title}**", "", "| key | default | unit | bounds | meaning |",
                "|---|---|---|---|---|"]
        for f in dataclasses.fields(cls):
            m = f.metadata
            unit = m["unit"]
            if m["kind"] == "time":
                unit = f"time (bare number = {m['default_unit']})"
            elif m["kind"] == "choice":
                unit = " \\| ".join(m["choices"])
            elif m["kind"] == "rate":
                unit = "rate (N/s, N/m, N/h, N/d, N/w)"
            out.append(f"| `{f.name}` | {_default_text(f)} | {unit} | {_bounds_text(f)} | "
                       f"{m['doc']} |")
        out.append("")
    out.append(_LIMITS)
    return "\n".join(out)


_LIMITS = (
    "Bounds: every number has one, checked before anything runs. Counts and times have "
    f"Postfix's own ceiling, a C int ({INT_MAX} and {INT_MAX} s, about 68 years) unless the row "
    f"says less; rates at most {RATE_MAX:g}/s in all (one hour of arrivals is held in memory "
    f"at once); sizes at most {SIZE_MAX:g} bytes; a run keeps at most {MAX_SAMPLES} samples "
    "(about 1.6 kB each in memory); `relaysim run` also wants `sample_interval` at most "
    "`duration`, and its file must give `duration`, one or more `[[senders]]` each with "
    "`rate` or `arrivals`, and `start` and `duration` of every outage; the upstream's schedule "
    "(and each scheduled change of it) must expire a message within 100000 attempts (checked "
    "by `run` and `explain`). Strings are printable "
    "text of at most 1000 characters; `simulation.name` is a plain folder name (letters, "
    "digits, `. _ + -`, 1 to 100, not starting with `.` or `-`). Files (the scenario, "
    "`main_cf_file`) are regular UTF-8 text files of at most 16 MB.\n")


def _bounds_text(f: dataclasses.Field) -> str:
    m = f.metadata
    if m["kind"] == "name":
        return "folder name"
    if m["kind"] == "times":
        return ("1 to 1000 gaps, each" if f.name == "retry_list" else "each") + _bounds(m)
    text = _bounds(m).strip()
    return text.replace("of at least", "at least").replace("of at most", "at most")
