"""Postfix main.cf settings, read as Postfix 3.7 reads them, so users can paste real ones.

Public names: load, parse, check_names, expand, time_seconds, DEFAULTS, TIME_DEFAULT_UNIT.

Contract:
- parse(text, origin) -> {name: raw value}. main.cf syntax (postconf(5)): one logical line
  `name = value`; whitespace around `=` and at the end is ignored; blank lines and lines whose
  first non-blank is `#` are ignored, also between continuation lines; a line that starts with
  whitespace continues the logical line (joined with one space). `postconf -n` output is the
  same syntax; `postconf -e name=value` and `postconf -e 'name = value' ...` lines (optionally
  after `sudo`) count as assignments. The last assignment of a name wins. A `#` after a value
  is part of the value, as in Postfix.
- DEFAULTS: Postfix 3.7.11's built-in defaults, raw, from sim/postfix/data/postfix_defaults.txt
  (`postconf -d` with an empty master.cf, stored once; see its header).
- check_names(params, origin): every name is one Postfix would use: listed by `postconf -d`; a
  per-transport one, `<transport>_<suffix>` with one of the 17 suffixes Postfix derives for
  each master.cf service (smtp_destination_concurrency_limit, relay_destination_rate_delay,
  pipe_time_limit; postconf(5) `transport_*`), whose default is the built-in it is named after;
  or a name that some value refers to as $name: a legacy name a default still reads
  (virtual_maps, fallback_relay) or a user's own macro (`my_nets = ...` with
  `mynetworks = $my_nets`). Postfix's `postconf -n` warns about exactly the other names.
- expand(params) -> {name: value} for the names of `params`, with $name, ${name}, $(name),
  ${name?value}, ${name:value}, ${name?{v1}:{v2}}, ${{a} == {b} ? {v1} : {v2}} (also !=, <, <=,
  >, >=, and `<level` etc. on compatibility levels) and $$ evaluated recursively against
  params, then DEFAULTS; an undefined name is empty. As in Postfix, `${name?...}` tests the
  raw value: `${a?x}` is x when a = $b even if b is empty. The raw parameters that Postfix
  expands later, per message (forward_path, mailbox_command, smtpd_reject_footer, ...), are
  returned as written, as `postconf -x` does.
- TIME_DEFAULT_UNIT: {parameter: unit of a bare number}, for every time-valued default of
  Postfix 3.7; the unit is the letter that ends the (expanded) default, as in Postfix's
  get_def_time_unit(): maximal_queue_lifetime = 2 is two days, delay_warning_time = 4 is four
  hours, queue_run_delay = 300 is 300 seconds.
- time_seconds(name, value) -> seconds, via sim.units.parse_time with that unit. Per-transport
  names use their built-in's unit. Unlike Postfix, which takes only an integer and one optional
  letter, decimals are accepted (1.5h).
- load(text, origin) = expand(check_names(parse(text, origin), origin)); the one call others use.
Errors: every problem raises ScenarioError. Malformed line: key "<origin> line <n>", the line.
Unknown name: key the name, with a did-you-mean. Reference loop or bad ${...} syntax: key the
parameter whose value is at fault. Nothing is printed.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from importlib.resources import files
from typing import NoReturn

from sim.errors import ScenarioError, did_you_mean
from sim.units import parse_time

_ASSIGNMENT = re.compile(r"([^\s=]+)\s*=\s*(.*?)\s*")
_POSTCONF_E = re.compile(r"(?:sudo\s+)?postconf\s+-e\s+(.*)")
_MAIN_CF_LINE = "a main.cf line 'parameter = value'"
_NAME = re.compile(r"[A-Za-z0-9_]+")
_REFERENCE = re.compile(r"\$\$|\$[{(]?\s*([A-Za-z0-9_]+)")     # group 1: a referenced name
_OPERATOR = re.compile(r"(==|!=|<=|>=|<|>)(level)?\s*")

# Per-transport parameters: Postfix derives them from these suffixes for each master.cf
# delivery service (_time_limit only for pipe and spawn); the default is `$<built-in>`
# (postconf_service.c; `postconf relay_destination_rate_delay` on a stock master.cf).
_TRANSPORT_SUFFIXES = {
    **{suffix: "default" + suffix for suffix in (
        "_delivery_slot_cost", "_delivery_slot_discount", "_delivery_slot_loan",
        "_destination_concurrency_failed_cohort_limit", "_destination_concurrency_limit",
        "_destination_concurrency_negative_feedback",
        "_destination_concurrency_positive_feedback", "_destination_rate_delay",
        "_destination_recipient_limit", "_extra_recipient_limit", "_minimum_delivery_slots",
        "_recipient_limit", "_recipient_refill_delay", "_recipient_refill_limit",
        "_transport_rate_delay")},
    "_initial_destination_concurrency": "initial_destination_concurrency",
    "_time_limit": "command_time_limit",
}
_SUFFIXES_LONGEST_FIRST = sorted(_TRANSPORT_SUFFIXES, key=len, reverse=True)

# Parameters Postfix stores unexpanded: their $names are filled in per message or per client
# (found with `postconf -nx` on a main.cf that sets every parameter to $myhostname).
_RAW = frozenset({
    "command_execution_directory", "default_rbl_reply", "forward_path", "luser_relay",
    "mailbox_command", "postscreen_expansion_filter", "postscreen_reject_footer",
    "smtpd_expansion_filter", "smtpd_reject_footer"})


def parse(text: str, origin: str = "main_cf") -> dict[str, str]:
    """Raw `{name: value}` from main.cf text, `postconf -n` output or `postconf -e` lines."""
    logical: list[tuple[int, str]] = []          # (first physical line number, text)
    for n, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[0].isspace():
            if not logical:
                raise ScenarioError(f"{origin} line {n}", line, _MAIN_CF_LINE,
                                    hint="an indented line continues the line before it")
            start, joined = logical[-1]
            logical[-1] = (start, f"{joined} {stripped}")
        else:
            logical.append((n, stripped))
    params: dict[str, str] = {}
    for n, line in logical:
        for name, value in _assignments(line, f"{origin} line {n}"):
            params[name] = value
    return params


def _assignments(line: str, where: str) -> list[tuple[str, str]]:
    """The (name, value) pairs of one logical line: one, or one per `postconf -e` argument."""
    m = _POSTCONF_E.fullmatch(line)
    try:
        items = shlex.split(m.group(1)) if m else [line]
    except ValueError:                           # unbalanced quotes
        items = []
    pairs = [_ASSIGNMENT.fullmatch(item.strip()) for item in items]
    if not pairs or not all(pairs):
        raise ScenarioError(where, line, _MAIN_CF_LINE)
    return [(p.group(1), p.group(2)) for p in pairs]


DEFAULTS: dict[str, str] = parse(
    (files("sim.postfix") / "data" / "postfix_defaults.txt").read_text(encoding="utf-8"),
    "postfix_defaults.txt")


def _builtin(name: str) -> str | None:
    """The built-in parameter whose default `name` has: itself, or default_* for a transport's."""
    if name in DEFAULTS:
        return name
    for suffix in _SUFFIXES_LONGEST_FIRST:       # relay_destination_recipient_limit is not
        if name.endswith(suffix) and len(name) > len(suffix):       # relay_destination's
            return _TRANSPORT_SUFFIXES[suffix]                      # _recipient_limit
    return None


def _referenced(values: Iterable[str]) -> set[str]:
    """Names that the values refer to with $name, ${name...} or $(name...)."""
    return {m.group(1) for value in values for m in _REFERENCE.finditer(value) if m.group(1)}


# Renamed parameters whose old names the new defaults still read (virtual_maps, ...).
_LEGACY = _referenced(v for k, v in DEFAULTS.items() if k not in _RAW) - DEFAULTS.keys()


def check_names(params: Mapping[str, str], origin: str = "main_cf") -> Mapping[str, str]:
    """`params` unchanged if Postfix would use every name in it; else ScenarioError."""
    used = _LEGACY | _referenced(params.values())
    for name, value in params.items():
        if _builtin(name) is None and name not in used:
            raise ScenarioError(name, value, f"a Postfix parameter name in {origin}",
                                hint=did_you_mean(name, DEFAULTS))
    return params


def expand(params: Mapping[str, str]) -> dict[str, str]:
    """`params` with every $-expression evaluated (see the module contract)."""
    expander = _Expander(params)
    return {name: value if name in _RAW else expander.value(name, ())
            for name, value in params.items()}


class _Expander:
    """Postfix's mac_expand() over params-then-DEFAULTS, remembering finished values."""

    def __init__(self, params: Mapping[str, str]):
        self.params, self.done = params, {}

    def raw(self, name: str) -> str | None:
        if name in self.params:
            return self.params[name]
        if name in DEFAULTS:
            return DEFAULTS[name]
        builtin = _builtin(name)
        return f"${builtin}" if builtin else None

    def value(self, name: str, chain: tuple[str, ...]) -> str:
        if name in chain:
            loop = " -> ".join((*chain[chain.index(name):], name))
            raise ScenarioError(name, self.raw(name), "a value whose $names do not lead back "
                                f"to it; {loop} is a loop, which Postfix rejects too "
                                "('unreasonable macro call nesting')")
        if name not in self.done:
            self.done[name] = self.text(self.raw(name) or "", (*chain, name))
        return self.done[name]

    def text(self, text: str, chain: tuple[str, ...]) -> str:
        """mac_parse(): literal text, $$, $name, ${...} and $(...)."""
        out, i = [], 0
        while (j := text.find("$", i)) >= 0:
            out.append(text[i:j])
            opener = text[j + 1:j + 2]
            if opener == "$":
                out.append("$")
                i = j + 2
            elif opener in ("{", "("):
                end = _balanced(text, j + 1)
                if end < 0:
                    self.fail(chain, f"a closing {'}' if opener == '{' else ')'} for each "
                              f"${opener}")
                out.append(self.expression(text[j + 2:end], chain))
                i = end + 1
            else:
                m = _NAME.match(text, j + 1)
                if not m:
                    self.fail(chain, "a $ followed by a parameter name (write $$ for a $)")
                out.append(self.value(m.group(), chain))
                i = m.end()
        out.append(text[i:])
        return "".join(out)

    def expression(self, expr: str, chain: tuple[str, ...]) -> str:
        """The inside of ${...}: a name or a relational test, then an optional ?/: part."""
        rest = expr.lstrip()
        if rest.startswith("{"):
            left, rest = self.curly(rest, chain)
            m = _OPERATOR.match(rest)
            if not m:
                self.fail(chain, "${{value} op {value} ? ...} with op ==, !=, <, <=, >= or >, "
                          "optionally followed by level")
            right, rest = self.curly(rest[m.end():], chain)
            try:
                test = _compare(self.text(left, chain), m.group(1), self.text(right, chain),
                                bool(m.group(2)))
            except ValueError:
                self.fail(chain, "compatibility levels like 2 or 3.6 on both sides of <level")
            if not rest:
                return "true" if test else ""
        else:
            m = _NAME.match(rest)
            if not m or rest[m.end():].lstrip()[:1] not in ("", "?", ":"):
                self.fail(chain, "${name}, ${name?value}, ${name:value} or "
                          "${name?{value1}:{value2}}")
            name, rest = m.group(), rest[m.end():].lstrip()
            if not rest:
                return self.value(name, chain)
            test = bool(self.raw(name))        # Postfix tests the raw, unexpanded value
        if rest[0] not in "?:":
            self.fail(chain, "? or : after the test in ${...}")
        result = ""
        if rest[0] == "?":
            iftrue, rest = self.operand(rest[1:], chain)
            if test:
                result = self.text(iftrue, chain)
            if not rest:
                return result
            if rest[0] != ":":
                self.fail(chain, ": after {value1} in ${name?{value1}:{value2}}")
        iffalse, rest = self.operand(rest[1:], chain)
        if rest:
            self.fail(chain, "nothing after {value2} in ${...}")
        return result if test else self.text(iffalse, chain)

    def operand(self, text: str, chain: tuple[str, ...]) -> tuple[str, str]:
        """A `{value}` (then what follows it) or, without braces, all the rest as the value."""
        if text.lstrip().startswith("{"):
            return self.curly(text.lstrip(), chain)
        return text, ""

    def curly(self, text: str, chain: tuple[str, ...]) -> tuple[str, str]:
        """The payload of the leading {...} and the rest after it, whitespace stripped."""
        end = _balanced(text, 0) if text.startswith("{") else -1
        if end < 0:
            self.fail(chain, "balanced {} in ${...}")
        return text[1:end], text[end + 1:].lstrip()

    def fail(self, chain: tuple[str, ...], allowed: str) -> NoReturn:
        name = chain[-1]
        raise ScenarioError(name, self.raw(name), allowed)


def _balanced(text: str, start: int) -> int:
    """Index of the bracket that closes the one at text[start], or -1."""
    opener = text[start]
    closer = {"{": "}", "(": ")"}[opener]
    depth = 0
    for i in range(start, len(text)):
        depth += (text[i] == opener) - (text[i] == closer)
        if depth == 0:
            return i
    return -1


def _compare(left: str, op: str, right: str, level: bool) -> bool:
    """Postfix's relational operators: numeric when both sides are digits, else by text;
    `<level` etc. compare compatibility levels such as 3.6 < 3.10."""
    if level:
        if not all(re.fullmatch(r"[0-9]+(\.[0-9]+){0,2}", s) for s in (left, right)):
            raise ValueError(f"not a compatibility level: {left!r} or {right!r}")
        a, b = (tuple(int(x) for x in (s.split(".") + ["0", "0"])[:3]) for s in (left, right))
    elif re.fullmatch(r"[0-9]+", left) and re.fullmatch(r"[0-9]+", right):
        a, b = int(left), int(right)
    else:
        a, b = left, right
    return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


TIME_DEFAULT_UNIT: dict[str, str] = {
    name: value[-1] for name, value in expand(DEFAULTS).items()
    if re.fullmatch(r"[0-9]+[smhdw]", value)}


def time_seconds(name: str, value: object) -> float:
    """Seconds for a Postfix time parameter; a bare number is in the parameter's default unit."""
    builtin = _builtin(name)
    unit = TIME_DEFAULT_UNIT.get(builtin or "")
    if unit is None:
        raise ScenarioError(name, value, "a Postfix time parameter",
                            hint="" if builtin else did_you_mean(name, TIME_DEFAULT_UNIT))
    return parse_time(name, value, unit)


def load(text: str, origin: str = "main_cf") -> dict[str, str]:
    """Checked, expanded `{name: value}` from main.cf text: parse, check_names, expand."""
    return expand(check_names(parse(text, origin), origin))
