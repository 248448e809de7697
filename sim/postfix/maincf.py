"""Postfix main.cf settings, read as Postfix 3.x reads them, so users can paste real ones.

Public names: read, MainCf, load, parse, check_names, expand, time_seconds, int_value,
bool_value, delivery_transport, recipient_validation, DEFAULTS, NEWER_NAMES, TIME_DEFAULT_UNIT,
LIMITS.

Contract:
- parse(text, origin) -> {name: raw value}. main.cf syntax (postconf(5)): one logical line
  `name = value`; whitespace around `=` and at the end is ignored; blank lines and lines whose
  first non-blank is `#` are ignored, also between continuation lines; a line that starts with
  whitespace continues the logical line (joined with one space). `postconf -n` output is the
  same syntax. postconf(1) command lines count too, optionally after `sudo` or a path:
  `postconf -e name=value 'name = value' ...`, the same without -e (Postfix >= 2.8), with
  `-c DIR` or `-o name=value` before them, and `postconf -X name ...` / `postconf -# name ...`,
  which remove a name set before. Lines are applied in order; the last assignment wins. A `#`
  after a value is part of the value, as in Postfix. A line that is none of these is an error;
  one that looks like master.cf or a shell command says so.
- DEFAULTS: Postfix 3.7.11's built-in defaults, raw, from sim/postfix/data/postfix_defaults.txt
  (`postconf -d` with an empty master.cf, stored once; see its header). NEWER_NAMES: the
  parameters Postfix 3.8 to 3.11.6 added (data/postfix_names_3.11.txt, from postconf.proto of
  tag v3.11.6); known names without a default here (an undefined name expands to empty).
- check_names(params, origin, modelled) -> the unused names. A name is Postfix's if
  `postconf -d` lists it, it is in NEWER_NAMES, it is a per-transport one
  (`<transport>_<suffix>` with one of the 17 suffixes Postfix derives for each master.cf
  service, postconf(5) `transport_*`; its default is the built-in it is named after), or some
  value refers to it as $name (a legacy name a default still reads, like virtual_maps, or a
  user's own macro, `my_nets = ...` with `mynetworks = $my_nets`). Any other name is unused,
  and read() gives it Postfix's warning, "<origin>: unused parameter: name=value" (Postfix does
  not warn when a master.cf `-o x=$name` uses it; relaysim cannot see master.cf), except a name
  one edit (an inserted, deleted, replaced or swapped letter) away from a name in `modelled`:
  that is a ScenarioError with a did-you-mean, because a silently lost `maximal_queue_lifetme`
  would make a wrong study.
- expand(params) -> {name: value} for the names of `params`, with $name, ${name}, $(name),
  ${name?value}, ${name:value}, ${name?{v1}:{v2}}, ${{a} == {b} ? {v1} : {v2}} (also !=, <, <=,
  >, >=, and `<level` etc. on compatibility levels) and $$ evaluated recursively against
  params, then DEFAULTS; an undefined name is empty. As in Postfix, `${name?...}` tests the
  raw value: `${a?x}` is x when a = $b even if b is empty. The raw parameters that Postfix
  expands later, per message (forward_path, mailbox_command, smtpd_reject_footer, ...), are
  returned as written, as `postconf -x` does. expanded(params, name) gives one name's value,
  set or not (its default, expanded).
- read(text, origin, modelled) -> MainCf(params (expanded), raw, lines, unused, warnings):
  parse, check_names, expand, with the first physical line of each name's last assignment.
  load(text, origin) = read(text, origin).params.
- Values as Postfix's daemons convert them (global/conv_time.c, mail_conf_int.c,
  mail_conf_bool.c): time_seconds(name, value) -> whole seconds: an optional sign and digits,
  then nothing (the parameter's default unit, TIME_DEFAULT_UNIT) or a unit letter s, m, h, d,
  w after which the rest is ignored (`5days` and `2d # two days` are days); no decimals, no
  space before the letter. int_value: the whole value is an integer. bool_value: yes or no, in
  any case. Each then checks LIMITS, the (min, max) the daemon that reads the parameter gives
  it (0: none), as Postfix does; per-transport names take their built-in's unit and limits.
- TIME_DEFAULT_UNIT: {parameter: unit of a bare number}, for every time-valued default of
  Postfix 3.7; the unit is the letter that ends the (expanded) default, as in Postfix's
  get_def_time_unit(): maximal_queue_lifetime = 2 is two days, delay_warning_time = 4 is four
  hours, queue_run_delay = 300 is 300 seconds.
- delivery_transport(params) -> (transport, why): the upstream's transport to the relay's
  domain (ADDRESS_CLASS_README): `$relay_transport` (relay) when the paste makes it a relay
  domain (relay_recipient_maps, or relay_domains set non-empty), else `$default_transport`
  (smtp); nexthops after `:` dropped. transport_maps, which can pick another, are not read.
- recipient_validation(params) -> (mode, why) or None when the paste sets nothing about it:
  "verify" when reject_unverified_recipient comes in smtpd_relay_restrictions or
  smtpd_recipient_restrictions before any reject_unlisted_recipient, else
  "relay_recipient_maps" when relay_recipient_maps is non-empty and unlisted recipients are
  rejected (smtpd_reject_unlisted_recipient = yes, or reject_unlisted_recipient listed),
  else "none".
Errors: every problem raises ScenarioError. Malformed line: key "<origin> line <n>", the line.
A near-miss of a modelled name: key the name, with a did-you-mean. Reference loop or bad ${...}
syntax: key the parameter whose value is at fault. A bad value: key the name, with what Postfix
accepts. Nothing is printed.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from importlib.resources import files
from typing import NamedTuple, NoReturn

from sim.errors import ScenarioError, did_you_mean
from sim.units import TIME_UNITS

_ASSIGNMENT = re.compile(r"([^\s=]+)\s*=\s*(.*?)\s*")
_POSTCONF = re.compile(r"(?:sudo(?:\s+-\S+(?:\s+(?!\S*postconf\b)[^-\s]\S*)?)*\s+)?"
                       r"(?:\S*/)?postconf(?:\s+(.*))?")
_MAIN_CF_LINE = "a main.cf line 'parameter = value'"
_NAME = re.compile(r"[A-Za-z0-9_]+")
_REFERENCE = re.compile(r"\$\$|\$[{(]?\s*([A-Za-z0-9_]+)")     # group 1: a referenced name
_OPERATOR = re.compile(r"(==|!=|<=|>=|<|>)(level)?\s*")
# master(5): service type private unpriv chroot wakeup maxproc command
_MASTER_CF = re.compile(r"\S+\s+(inet|unix|unix-dgram|fifo|pass)\s+[-yn]\s+[-yn]\s+[-yn]\s")
_SHELL = re.compile(r"(if|then|else|elif|fi|for|while|do|done|case|esac|echo|printf|export|set|"
                    r"cat|sed|cp|mv|rm|mkdir|chmod|chown|service|systemctl|exit|source|RUN|ENV)\b"
                    r"|\[\s|\S+\s*\(\)\s*\{|.*(&&|\|\||;\s*$|\$\()")
_SHELL_END = {"||", "&&", ";", "|", "&"}

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

# (min, max) of the parameters relaysim converts, as the CONFIG_*_TABLE of the daemon that reads
# them says (0: no limit; Postfix 3.7.11 qmgr/qmgr.c, smtpd/smtpd.c, verify/verify.c,
# bounce/bounce.c); per-transport ones are read with min 0 (qmgr/qmgr_transport.c).
LIMITS = {
    "queue_run_delay": (1, 0), "minimal_backoff_time": (1, 0), "maximal_backoff_time": (1, 0),
    "maximal_queue_lifetime": (0, 8640000), "bounce_queue_lifetime": (0, 8640000),
    "delay_warning_time": (0, 0), "qmgr_message_active_limit": (1, 0),
    "default_destination_concurrency_limit": (0, 0),
    "initial_destination_concurrency": (1, 0),
    "default_destination_concurrency_failed_cohort_limit": (0, 0),
    "default_destination_recipient_limit": (0, 0), "smtpd_hard_error_limit": (1, 0),
    "smtpd_soft_error_limit": (1, 0),
    "unknown_local_recipient_reject_code": (0, 0),
    "unknown_relay_recipient_reject_code": (0, 0),
    "unverified_recipient_reject_code": (200, 599),
    "address_verify_positive_refresh_time": (1, 0),
}


def parse(text: str, origin: str = "main_cf") -> dict[str, str]:
    """Raw `{name: value}` from main.cf text, `postconf -n` output or postconf commands."""
    return _parse(text, origin)[0]


def _parse(text: str, origin: str) -> tuple[dict[str, str], dict[str, int]]:
    """(raw values, first physical line of each name's last assignment)."""
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
    lines: dict[str, int] = {}
    for n, line in logical:
        for name, value in _assignments(line, f"{origin} line {n}"):
            params.pop(name, None)               # keeps the order of the last assignments
            lines.pop(name, None)
            if value is not None:
                params[name], lines[name] = value, n
    return params, lines


def _assignments(line: str, where: str) -> list[tuple[str, str | None]]:
    """The (name, value) pairs of one logical line; value None removes the name."""
    m = _POSTCONF.fullmatch(line)
    if not m:
        a = _ASSIGNMENT.fullmatch(line)
        if not a:
            raise ScenarioError(where, line, _MAIN_CF_LINE, hint=_looks_like(line))
        return [(a.group(1), a.group(2))]
    try:
        words = shlex.split(m.group(1) or "")
    except ValueError:                           # unbalanced quotes
        raise ScenarioError(where, line, _MAIN_CF_LINE + " or a postconf command",
                            hint="a quote is not closed") from None
    mode, args, words = "", [], iter(words)
    for word in words:
        if word in _SHELL_END or word.startswith((">", "2>", "#")):
            break                                # `postconf -e x=y || exit 1  # why`
        if word.startswith("-") and len(word) > 1 and not args:
            for i, letter in enumerate(word[1:]):
                if letter in "co":               # -c config_dir, -o name=value
                    if not word[i + 2:]:
                        next(words, None)
                    break
                if letter in "eX#MFP":
                    mode = mode or letter
        elif word.strip():
            args.append(word.strip())
    if mode in ("M", "F", "P"):
        return []                                # master.cf edits: not main.cf
    if mode in ("X", "#"):
        return [(name, None) for name in args]
    pairs = [_ASSIGNMENT.fullmatch(arg) for arg in args]
    if mode == "e" and (not pairs or not all(pairs)):
        raise ScenarioError(where, line, "postconf -e with name=value arguments")
    return [(p.group(1), p.group(2)) for p in pairs if p]    # `postconf name` only shows it


def _looks_like(line: str) -> str:
    """A hint for a line that is not main.cf: what it looks like instead."""
    if _MASTER_CF.match(line + " "):
        return ("this looks like master.cf (service type private unpriv chroot wakeup maxproc "
                "command); main_cf takes main.cf or `postconf -n` text")
    if _SHELL.match(line):
        return ("this looks like a shell command; main_cf takes main.cf lines and postconf "
                "commands, not scripts")
    return ""


DEFAULTS: dict[str, str] = parse(
    (files("sim.postfix") / "data" / "postfix_defaults.txt").read_text(encoding="utf-8"),
    "postfix_defaults.txt")
NEWER_NAMES: frozenset[str] = frozenset(
    line.strip() for line in (files("sim.postfix") / "data" / "postfix_names_3.11.txt")
    .read_text(encoding="utf-8").splitlines() if line.strip() and not line.startswith("#"))


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


def _one_edit(a: str, b: str) -> bool:
    """True when b is a with one letter inserted, deleted, replaced or two neighbours swapped."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) != len(b):
        short, long_ = sorted((a, b), key=len)
        i = next((k for k in range(len(short)) if short[k] != long_[k]), len(short))
        return short[i:] == long_[i + 1:]
    d = [k for k in range(len(a)) if a[k] != b[k]]
    return len(d) == 1 or (len(d) == 2 and d[1] == d[0] + 1 and a[d[0]] == b[d[1]]
                           and a[d[1]] == b[d[0]])


def check_names(params: Mapping[str, str], origin: str = "main_cf",
                modelled: Iterable[str] = ()) -> tuple[str, ...]:
    """The names of `params` that Postfix calls unused (see the module contract)."""
    used = _LEGACY | _referenced(params.values())
    modelled = tuple(modelled)
    unused = []
    for name, value in params.items():
        if _builtin(name) or name in NEWER_NAMES or name in used:
            continue
        near = [m for m in modelled if _one_edit(name, m)]
        if near:
            raise ScenarioError(name, value, "a Postfix parameter name",
                                hint=f"did you mean {near[0]!r}?",
                                problem=f"unknown parameter in {origin}")
        unused.append(name)
    return tuple(unused)


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
_STRTOL = re.compile(r"\s*[-+]?[0-9]+")


def _limits(name: str, value: object, number: int, builtin: str, what: str) -> int:
    lo, hi = LIMITS.get(name, (0, 0)) if name == builtin else (0, 0)
    if (lo and number < lo) or (hi and number > hi):
        bound = f"at least {lo}" if lo and number < lo else f"at most {hi}"
        raise ScenarioError(name, value, f"{what} of {bound}, as Postfix requires (it stops "
                            f"with 'invalid {name} parameter value')")
    return number


def time_seconds(name: str, value: object) -> int:
    """Whole seconds of a Postfix time value, converted as conv_time() does (see the contract)."""
    builtin = _builtin(name) or ""
    unit = TIME_DEFAULT_UNIT.get(builtin)
    if unit is None:
        raise ScenarioError(name, value, "a Postfix time parameter",
                            hint="" if builtin else did_you_mean(name, TIME_DEFAULT_UNIT))
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str):
        text = ""
    m = _STRTOL.match(text)                      # strtol(): no digits leave end at the start
    number, end = (int(m.group()), m.end()) if m else (0, 0)
    letter = text[end:end + 1] or unit
    if not text or number < 0 or letter not in TIME_UNITS or number >= 2**31:
        raise ScenarioError(name, value, "a Postfix time value: a whole number, then nothing "
                            f"(bare: {unit!r}) or one of the letters s, m, h, d, w (Postfix "
                            "ignores what follows the letter and reads no decimals)")
    seconds = number * TIME_UNITS[letter]
    if seconds >= 2**31:
        raise ScenarioError(name, value, "a Postfix time value below 2^31 seconds")
    return _limits(name, value, seconds, builtin, "a time")


def int_value(name: str, value: object) -> int:
    """A Postfix integer parameter, as mail_conf_int.c converts and checks it."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _STRTOL.fullmatch(text):
        raise ScenarioError(name, value, "a whole number (Postfix: 'bad numerical "
                            "configuration')")
    return _limits(name, value, int(text), _builtin(name) or "", "a number")


def bool_value(name: str, value: object) -> bool:
    """A Postfix boolean parameter: yes or no in any case (mail_conf_bool.c)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("yes", "no"):
        return value.lower() == "yes"
    raise ScenarioError(name, value, "yes or no (Postfix: 'bad boolean configuration')")


class MainCf(NamedTuple):
    """One pasted main.cf as relaysim reads it."""
    params: dict[str, str]      # name -> expanded value, for each name set
    raw: dict[str, str]         # name -> value as written
    lines: dict[str, int]       # name -> line of its (last) assignment
    unused: tuple[str, ...]     # the names Postfix does not know
    warnings: tuple[str, ...]   # "unused parameter" warnings, in Postfix's words


def read(text: str, origin: str = "main_cf", modelled: Iterable[str] = ()) -> MainCf:
    """Parsed, checked and expanded main.cf text (see the module contract)."""
    raw, lines = _parse(text, origin)
    unused = check_names(raw, origin, modelled)
    warnings = tuple(f"{origin}: unused parameter: {name}={raw[name]}" for name in unused)
    return MainCf(expand(raw), raw, lines, unused, warnings)


def load(text: str, origin: str = "main_cf") -> dict[str, str]:
    """Expanded `{name: value}` from main.cf text: read(text, origin).params."""
    return read(text, origin).params


def expanded(params: Mapping[str, str], name: str) -> str:
    """The expanded value of one name, set in params or not (then its default)."""
    return _Expander(params).value(name, ())


def delivery_transport(params: Mapping[str, str]) -> tuple[str, str]:
    """(transport, why): the upstream's transport to the relay (see the module contract)."""
    if expanded(params, "relay_recipient_maps").strip() or (
            "relay_domains" in params and expanded(params, "relay_domains").strip()):
        name, why = "relay_transport", "relay_domains or relay_recipient_maps make the " \
            "relay's domain a relay domain, delivered by $relay_transport"
    else:
        name, why = "default_transport", "the relay's domain is not a relay domain here, " \
            "so $default_transport delivers to it"
    transport = expanded(params, name).strip().split(":")[0] or "smtp"
    return transport, why


def recipient_validation(params: Mapping[str, str]) -> tuple[str, str] | None:
    """How the upstream's smtpd validates recipients (see the module contract), or None."""
    read_here = ("relay_recipient_maps", "smtpd_recipient_restrictions",
                 "smtpd_relay_restrictions", "smtpd_reject_unlisted_recipient")
    if not any(name in params for name in read_here):
        return None
    words = [w for name in ("smtpd_relay_restrictions", "smtpd_recipient_restrictions")
             for w in re.split(r"[\s,]+", expanded(params, name)) if w]
    if "reject_unverified_recipient" in words and (
            "reject_unlisted_recipient" not in words
            or words.index("reject_unverified_recipient")
            < words.index("reject_unlisted_recipient")):
        return "verify", "reject_unverified_recipient in the smtpd restrictions"
    if expanded(params, "relay_recipient_maps").strip() and (
            "reject_unlisted_recipient" in words
            or expanded(params, "smtpd_reject_unlisted_recipient").lower() == "yes"):
        return "relay_recipient_maps", "relay_recipient_maps is set"
    return "none", "no reject_unverified_recipient and no relay_recipient_maps"
