"""explain: what a scenario means before it runs: effective parameters, the retry timeline of
one deferred message, and the steady-state deferred backlog by Little's law.

Public names: parameters, Parameter, main_cf, PastedParameter, main_cf_lines, retry_timeline,
Timeline,
residence_time, littles_law, Backlog, littles_law_backlog, lifetime, steady_interval,
format_value.

Contract:
- parameters(scenario, all_=False) -> [Parameter(name, value, origin, doc)] in declaration
  order, named as --set names them (simulation.duration, senders.0.rate, relay.outages). Like
  `postconf -n`, only what was set or differs from the default, unless all_ (`postconf -d`
  style). `value` is sim.units' spelling with its unit (5d, 10000/d, 20k, never); `origin` is
  where it came from: Scenario.origins (file, main_cf, --set, ...), else "default" when it
  equals the default and "file" otherwise (sender tables record no origins). Values are the
  effective ones: a bounce_queue_lifetime above maximal_queue_lifetime is shown lowered to it,
  as Postfix's qmgr lowers it (qmgr.c, "adjusting bounce_queue_lifetime"), with the value set
  in the origin.
- main_cf(scenario) -> [PastedParameter(host, name, value, source, status, effect, note)]: every
  parameter of the pasted main.cf files, in paste order, upstream first. `source` is
  "<host>.main_cf line <n>"; `status` is modelled, overridden (the scenario file sets the key),
  other host (relaysim models it on the other host), not modelled (accepted) or unused parameter
  (Postfix does not know the name either); `effect` is "<key> = <effective value>" for the
  scenario key it is read for, else ""; `note` says how or why not. main_cf_lines(scenario)
  is that listing as text lines for the command line, one per parameter:
  `<source>: <name> = <value>  # <status>: <effect> (<note>)`.
- retry_timeline(upstream) -> Timeline(attempts, expiry_s): the attempts [(number, seconds since
  arrival)] of one message, sent by a non-null sender, whose recipient is deferred at every
  attempt, under the upstream's MTA schedule (sim.model.schedules), until it is returned;
  expiry_s is the age at that last attempt. Assumptions: attempts take no time, the first is on
  arrival, and the message arrives `phase_s` seconds (default 1 s) after a queue-runner start; MTAs
  without a runner grid retry at the wake time itself.
- littles_law(scenario) -> Backlog: the Little's-law plateau of the messages queued upstream
  (deferred, or active during a queue run) in steady state, L = lambda * W, for the
  configuration at t = 0. lambda counts messages with at least one unknown recipient from the
  senders with a constant Poisson inflow (no explicit arrivals, no stop time): per sender
  rate * (1 - (1 - f)^k), f = unknown_recipient_fraction (1 when relay.local_users is 0), k =
  recipients_per_message.
  W = residence_time(upstream): the mean time from arrival to the expiring attempt of an
  always-deferred message, iterated with the engine's own retry policy over arrival phases
  spread across one queue-run interval (expiry waits for the first attempt past the lifetime;
  the lag is not half a retry interval: backoff counts from each message's own arrival, so for
  one lifetime the lags fall in a window of one queue-run interval). `messages` is None, with
  a `reason`, when unknown recipients are not deferred (5xx without soft_bounce on either
  host: the upstream's defers the relay's 5xx too) or no sender
  has a constant inflow.
  Null-sender mail is counted with the ordinary lifetime.
Errors: ScenarioError from sim.model.qmgr.schedule_params (bad Exim rules). Nothing is printed.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import NamedTuple

import numpy as np

from sim.model.qmgr import Policy, schedule_params
from sim.model.schedules import SCHEDULES, next_queue_run
from sim.units import format_rate, format_size, format_time


class Parameter(NamedTuple):
    name: str
    value: str
    origin: str
    doc: str


def format_value(f: dataclasses.Field, value) -> str:
    """A field's value with its unit, as sim.units writes it: 5d, never, 10000/d, 20k, yes."""
    kind = f.metadata["kind"]
    if kind == "time":
        return format_time(value)
    if kind == "rate":
        return format_rate(value)
    if kind == "size":
        return format_size(value)
    if kind == "times":
        return "[" + ", ".join(format_time(v) for v in value) + "]"
    if kind == "outages":
        return "[" + ", ".join(f"{{start = {format_time(o.start)}, duration = "
                               f"{format_time(o.duration)}}}" for o in value) + "]"
    if kind == "bool":
        return "yes" if value else "no"
    if kind == "float":
        return f"{value:g}"
    return str(value)


def parameters(scenario, all_: bool = False) -> list[Parameter]:
    """The effective parameters (see the module contract)."""
    tables = [("simulation", scenario.simulation), *(
        (f"senders.{i}", s) for i, s in enumerate(scenario.senders)),
        ("upstream", scenario.upstream), ("relay", scenario.relay)]
    out = []
    for prefix, obj in tables:
        default_obj = type(obj)()
        for f in dataclasses.fields(obj):
            name = f"{prefix}.{f.name}"
            value, default = getattr(obj, f.name), getattr(default_obj, f.name)
            origin = scenario.origins.get(name) or scenario.origins.get(
                re.sub(r"^senders\.(\d+)", r"senders[\1]", name))
            if origin is None:
                origin = "default" if value == default else "file"
            if all_ or origin != "default":
                shown, origin = _effective(scenario, name, format_value(f, value), origin)
                out.append(Parameter(name, shown, origin, f.metadata["doc"]))
    return out


class PastedParameter(NamedTuple):
    host: str       # whose main.cf: upstream or relay
    name: str
    value: str      # expanded, as `postconf -nx` shows it
    source: str     # upstream.main_cf line 12
    status: str     # modelled, overridden, other host, not modelled, unused parameter
    effect: str     # upstream.default_destination_concurrency_limit = 5, or ""
    note: str


def main_cf(scenario) -> list[PastedParameter]:
    """The pasted main.cf parameters and what relaysim does with each (see the contract)."""
    shown = {p.name: p for p in parameters(scenario, all_=True)}
    out = []
    for p in scenario.main_cf:
        effect, note = "", p.note
        if p.key in shown:
            effect = f"{p.key} = {shown[p.key].value}"
            lowered = shown[p.key].origin.partition("; set ")[2]
            note = "; ".join(filter(None, (note, lowered and "set " + lowered)))
        out.append(PastedParameter(p.host, p.name, p.value, f"{p.host}.main_cf line {p.line}",
                                   p.status, effect, note))
    return out


def main_cf_lines(scenario) -> list[str]:
    """main_cf(scenario) as printable lines (see the module contract)."""
    out = []
    for p in main_cf(scenario):
        what = "; ".join(filter(None, (p.effect, p.note)))
        out.append(f"{p.source}: {p.name} = {p.value}  # {p.status}" + (f": {what}" if what
                                                                        else ""))
    return out


def _effective(scenario, name: str, value: str, origin: str) -> tuple[str, str]:
    """(value, origin) as the run uses them: bounce_queue_lifetime at most the lifetime."""
    up = scenario.upstream
    if name == "upstream.bounce_queue_lifetime" and (
            up.bounce_queue_lifetime > up.maximal_queue_lifetime):
        f = next(f for f in dataclasses.fields(up) if f.name == "maximal_queue_lifetime")
        return format_value(f, up.maximal_queue_lifetime), (
            f"{origin}; set {value}, lowered to maximal_queue_lifetime as Postfix's qmgr does")
    return value, origin


class Timeline(NamedTuple):
    attempts: list[tuple[int, int]]  # (attempt number, seconds since arrival)
    expiry_s: int  # age at the last attempt, when the message is returned to its sender


def retry_timeline(upstream, phase_s: int = 1, max_attempts: int = 1_000_000) -> Timeline:
    """Attempts of one always-deferred message until it is returned (see the contract)."""
    sched = SCHEDULES[upstream.mta]
    p = schedule_params(upstream)
    grid = getattr(p, sched.runner) if sched.runner else 0
    create = grid + phase_s if grid else 0
    now, tries, last_fail, last_next = create, 0, -1, -1
    attempts = []
    while tries < max_attempts:
        tries += 1
        attempts.append((tries, now - create))
        wake, give_up = sched.retry(*(np.array([v]) for v in (create, now, tries, last_fail,
                                                                last_next)), p)
        if give_up[0]:
            return Timeline(attempts, now - create)
        last_fail, last_next = now, int(wake[0])
        now = int(next_queue_run(wake, grid, sched.slack)[0]) if grid else int(wake[0])
    raise ValueError(f"no expiry within {max_attempts} attempts")  # pragma: no cover


def lifetime(upstream) -> int:
    """The smallest age at which a failed attempt returns the message (bisection on the
    schedule's give_up, which depends on the age only)."""
    sched = SCHEDULES[upstream.mta]
    p = schedule_params(upstream)

    def gives_up(age: int) -> bool:
        a = [np.array([v]) for v in (0, age, 1, -1, -1)]
        return bool(sched.retry(*a, p)[1][0])

    lo, hi = -1, retry_timeline(upstream).expiry_s  # gives_up(hi) is true
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if gives_up(mid) else (mid, hi)
    return hi


def steady_interval(tl: Timeline) -> int:
    """The last full gap between attempts (the final one may be cut short by an ultimate
    timeout), 0 for a single attempt."""
    t = [s for _, s in tl.attempts]
    gaps = np.diff(t)
    return int(gaps[-2:].max()) if gaps.size else 0


def residence_time(up, phases: int = 600) -> float:
    """Mean time (s) from arrival until a message that is always deferred is returned: the
    upstream's retry schedule iterated from arrival times spread over one queue-run interval."""
    pol = Policy([up])
    step = pol.interval(0)
    arrival = 10 * step + (np.arange(phases) + 0.5) * step / phases
    create = np.floor(arrival).astype(np.int64)
    now = create.copy()
    tries = np.zeros(phases, dtype=np.int64)
    last_fail = np.full(phases, -1, dtype=np.int64)
    last_next = np.full(phases, -1, dtype=np.int64)
    done = np.full(phases, np.nan)
    live = np.ones(phases, dtype=bool)
    null = np.zeros(phases, dtype=bool)
    for _ in range(100000):
        if not live.any():
            break
        idx = np.flatnonzero(live)
        tries[idx] += 1
        wake, give_up = pol.retry(0, create[idx], now[idx], tries[idx], last_fail[idx],
                                  last_next[idx], null[idx])
        done[idx[give_up]] = (now[idx] - arrival[idx])[give_up]
        live[idx[give_up]] = False
        go = idx[~give_up]
        last_fail[go] = now[go]
        last_next[go] = wake[~give_up]
        now[go] = pol.entry(wake[~give_up], 0)
    return float(np.nanmean(done))


class Backlog(NamedTuple):
    messages: float | None  # steady-state deferred messages; None when there is none
    rate_per_s: float  # lambda: messages with at least one unknown recipient, per second
    lifetime_s: float
    lag_s: float  # mean expiry lag: residence time minus the lifetime
    senders: tuple[int, ...]  # indexes of the senders counted
    reason: str  # why messages is None, else ""

    @property
    def residence_s(self) -> float:
        return self.lifetime_s + self.lag_s


def littles_law(scenario) -> Backlog:
    """Steady-state deferred backlog from unknown recipients (see the module contract)."""
    relay, up = scenario.relay, scenario.upstream
    deferred = (relay.unknown_local_recipient_reject_code < 500 or relay.soft_bounce
                or up.soft_bounce)
    steady = tuple(i for i, s in enumerate(scenario.senders)
                   if not s.arrivals and s.stop == math.inf and s.rate > 0)
    lam = 0.0
    for i in steady:
        s = scenario.senders[i]
        f = 1.0 if relay.local_users == 0 else s.unknown_recipient_fraction
        lam += s.rate * (1 - (1 - f) ** s.recipients_per_message)
    life = lifetime(up)
    lag = residence_time(up) - life
    reason = ""
    if not deferred:
        reason = (f"the relay answers unknown recipients with "
                  f"{relay.unknown_local_recipient_reject_code}, so they bounce at the first "
                  "attempt instead of waiting in the deferred queue (soft_bounce = no on "
                  "both hosts)")
    elif not steady:
        reason = "no sender has a constant inflow (explicit arrivals or a stop time)"
    messages = None if reason else lam * (life + lag)
    return Backlog(messages, lam, float(life), lag, steady, reason)


def littles_law_backlog(scenario) -> float | None:
    """Steady-state deferred messages, lambda_unknown * (lifetime + mean expiry lag), or None."""
    return littles_law(scenario).messages
