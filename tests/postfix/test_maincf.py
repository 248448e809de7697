"""sim.postfix.maincf: main.cf parsing, parameter names, $-expansion and time units, as Postfix 3.7.

The tests marked `postfix` compare against the installed Postfix (postconf, postconf(5)); they
never start Postfix and are skipped where it is not installed.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest

from sim.errors import ScenarioError
from sim.postfix import maincf

# ---------------------------------------------------------------------------------------------
# parse

PARSE_CASES = [
    ("one-line", "maximal_queue_lifetime = 5d", {"maximal_queue_lifetime": "5d"}),
    ("no-spaces", "queue_run_delay=300s", {"queue_run_delay": "300s"}),
    ("spaces-around-and-after", "relayhost   =   [mx.example]:587   \t",
     {"relayhost": "[mx.example]:587"}),
    ("empty-value", "relayhost =", {"relayhost": ""}),
    ("equals-in-value", "smtp_helo_name = a=b", {"smtp_helo_name": "a=b"}),
    ("comment-and-blank-lines", "# tuning\n\n   # indented comment\nqueue_run_delay = 5m\n\n",
     {"queue_run_delay": "5m"}),
    ("hash-after-value-is-value", "relayhost = mx # not a comment",
     {"relayhost": "mx # not a comment"}),
    ("continuation", "mynetworks = 127.0.0.0/8\n    10.0.0.0/8,\n\t192.168.0.0/16",
     {"mynetworks": "127.0.0.0/8 10.0.0.0/8, 192.168.0.0/16"}),
    ("comment-and-blank-inside-continuation", "mynetworks = a\n# note\n\n  b\nrelayhost = c",
     {"mynetworks": "a b", "relayhost": "c"}),
    ("later-wins", "queue_run_delay = 300s\nminimal_backoff_time = 1m\nqueue_run_delay = 5m",
     {"queue_run_delay": "5m", "minimal_backoff_time": "1m"}),
    ("postconf-e-bare", "postconf -e maximal_queue_lifetime=1h", {"maximal_queue_lifetime": "1h"}),
    ("postconf-e-single-quotes", "postconf -e 'maximal_backoff_time = 15m'",
     {"maximal_backoff_time": "15m"}),
    ("postconf-e-double-quotes", 'postconf -e "mynetworks = 10.0.0.0/8, [::1]/128"',
     {"mynetworks": "10.0.0.0/8, [::1]/128"}),
    ("postconf-e-several", "sudo postconf -e minimal_backoff_time=5m 'queue_run_delay = 5m'",
     {"minimal_backoff_time": "5m", "queue_run_delay": "5m"}),
    ("postconf-e-then-main-cf-wins", "postconf -e queue_run_delay=5m\nqueue_run_delay = 1m",
     {"queue_run_delay": "1m"}),
    ("postconf-n-output", "compatibility_level = 3.6\nmydestination = $myhostname, localhost\n"
     "relayhost = [smtp.example]:587\nsmtpd_relay_restrictions = permit_mynetworks "
     "permit_sasl_authenticated defer_unauth_destination",
     {"compatibility_level": "3.6", "mydestination": "$myhostname, localhost",
      "relayhost": "[smtp.example]:587",
      "smtpd_relay_restrictions":
          "permit_mynetworks permit_sasl_authenticated defer_unauth_destination"}),
    ("windows-line-ends", "queue_run_delay = 5m\r\nrelayhost = mx\r\n",
     {"queue_run_delay": "5m", "relayhost": "mx"}),
]


@pytest.mark.parametrize("text, expected", [c[1:] for c in PARSE_CASES],
                         ids=[c[0] for c in PARSE_CASES])
def test_parse(text, expected):
    assert maincf.parse(text) == expected


MALFORMED_CASES = [
    ("no-equals", "relayhost\n", 1, "relayhost"),
    ("no-name", "queue_run_delay = 5m\n= 5m", 2, "= 5m"),
    ("space-in-name", "# x\nqueue run delay = 5m", 2, "queue run delay = 5m"),
    ("continuation-without-line", "  queue_run_delay = 5m", 1, "  queue_run_delay = 5m"),
    ("postconf-e-without-equals", "postconf -e queue_run_delay", 1, "postconf -e queue_run_delay"),
    ("postconf-e-unbalanced-quote", "postconf -e 'queue_run_delay = 5m", 1,
     "postconf -e 'queue_run_delay = 5m"),
    ("postconf-without-e", "postconf queue_run_delay=5m", 1, "postconf queue_run_delay=5m"),
    ("line-number-is-logical-start", "\n\nmynetworks\n  10.0.0.0/8", 3, "mynetworks 10.0.0.0/8"),
]


@pytest.mark.parametrize("text, line_no, shown", [c[1:] for c in MALFORMED_CASES],
                         ids=[c[0] for c in MALFORMED_CASES])
def test_parse_malformed_line(text, line_no, shown):
    with pytest.raises(ScenarioError) as err:
        maincf.parse(text, origin="site.cf")
    assert err.value.key == f"site.cf line {line_no}"
    assert err.value.value == shown
    assert err.value.allowed == "a main.cf line 'parameter = value'"


# ---------------------------------------------------------------------------------------------
# DEFAULTS and check_names

def test_defaults_are_postfix_3_7_11():
    d = maincf.DEFAULTS
    assert d["mail_version"] == "3.7.11"
    assert (d["maximal_queue_lifetime"], d["queue_run_delay"], d["minimal_backoff_time"],
            d["maximal_backoff_time"], d["delay_warning_time"]) == ("5d", "300s", "300s",
                                                                     "4000s", "0h")
    assert d["default_destination_concurrency_limit"] == "20"
    assert "smtp_destination_concurrency_limit" not in d   # from master.cf, not built in
    assert len(d) > 800


ACCEPTED_NAMES = [
    ("builtin", "maximal_queue_lifetime = 2d"),
    ("builtin-per-transport", "local_destination_concurrency_limit = 4"),
    ("transport-concurrency", "relay_destination_concurrency_limit = 5"),
    ("transport-recipient-limit", "smtp_destination_recipient_limit = 10"),
    ("transport-slot-cost", "relay_delivery_slot_cost = 2"),
    ("transport-rate-delay", "smtp_transport_rate_delay = 1s"),
    ("transport-initial-concurrency", "relay_initial_destination_concurrency = 2"),
    ("pipe-time-limit", "maildrop_time_limit = 600s"),
    ("dashed-service-name", "scalemail-backend_destination_rate_delay = 1s"),
    ("legacy-name-a-default-reads", "virtual_maps = hash:/etc/postfix/virtual"),
    ("user-macro-referenced", "my_nets = 10.0.0.0/8\nmynetworks = 127.0.0.0/8 $my_nets"),
    ("user-macro-referenced-conditionally", "my_relay = mx\nrelayhost = ${my_relay?[$my_relay]}"),
]


@pytest.mark.parametrize("text", [c[1] for c in ACCEPTED_NAMES],
                         ids=[c[0] for c in ACCEPTED_NAMES])
def test_check_names_accepts(text):
    params = maincf.parse(text)
    assert maincf.check_names(params) == params


REJECTED_NAMES = [
    ("typo", "maximal_queue_lifetme = 3", "maximal_queue_lifetme",
     "did you mean 'maximal_queue_lifetime'?"),
    ("typo-backoff", "minimal_backof_time = 5m", "minimal_backof_time",
     "did you mean 'minimal_backoff_time'?"),
    ("suffix-without-transport", "_destination_concurrency_limit = 5",
     "_destination_concurrency_limit", None),
    ("default-suffix-that-is-not-per-transport", "relay_process_limit = 5",
     "relay_process_limit", None),
    ("user-macro-unreferenced", "my_nets = 10.0.0.0/8", "my_nets", None),
    ("dollar-dollar-is-not-a-reference", "my_nets = 1\nrelayhost = $$my_nets", "my_nets", None),
]


@pytest.mark.parametrize("text, name, hint", [c[1:] for c in REJECTED_NAMES],
                         ids=[c[0] for c in REJECTED_NAMES])
def test_check_names_rejects(text, name, hint):
    with pytest.raises(ScenarioError) as err:
        maincf.check_names(maincf.parse(text), "site.cf")
    assert err.value.key == name
    assert err.value.allowed == "a Postfix parameter name in site.cf"
    if hint is not None:
        assert err.value.hint == hint


# ---------------------------------------------------------------------------------------------
# expand

# Each case is main.cf text; the last parameter it sets is the one checked.
EXPAND_CASES = [
    ("dollar-name-from-defaults",
     "smtp_destination_concurrency_limit = $default_destination_concurrency_limit", "20"),
    ("braces", "relayhost = ${default_destination_concurrency_limit}", "20"),
    ("legacy-parentheses", "relayhost = $(default_destination_concurrency_limit)", "20"),
    ("space-inside-braces", "relayhost = ${ queue_run_delay }", "300s"),
    ("params-before-defaults", "default_destination_concurrency_limit = 5\n"
     "relay_destination_concurrency_limit = $default_destination_concurrency_limit", "5"),
    ("unset-transport-parameter-has-its-default",
     "relayhost = $relay_destination_concurrency_limit", "20"),
    ("longest-transport-suffix", "relayhost = $relay_destination_recipient_limit", "50"),
    ("recursive", "mydomain = example.org\nmyhostname = mx.$mydomain\nmyorigin = $myhostname",
     "mx.example.org"),
    ("order-does-not-matter", "myorigin = $myhostname\nmyhostname = mx.$mydomain\n"
     "mydomain = example.org\nrelayhost = $myorigin", "mx.example.org"),
    ("through-defaults", "mydestination = $myhostname, localhost.$mydomain",
     "vm.localdomain, localhost.localdomain"),
    ("undefined-is-empty", "relayhost = [$no_such_parameter]", "[]"),
    ("dollar-dollar", "relayhost = a$$b$$$mydomain", "a$b$localdomain"),
    ("raw-parameter-kept", "forward_path = $home/.forward${recipient_delimiter}$extension",
     "$home/.forward${recipient_delimiter}$extension"),
    # conditionals (postconf(5), "${name?value}" ...)
    ("if-set-set", "relayhost = mx\nsmtp_helo_name = ${relayhost?relayed}", "relayed"),
    ("if-set-empty", "relayhost =\nsmtp_helo_name = ${relayhost?relayed}", ""),
    ("if-set-braces-spaces", "relayhost = mx\nsmtp_helo_name = ${relayhost ? {a b} }", "a b"),
    ("if-empty-empty", "relayhost =\nsmtp_helo_name = ${relayhost:direct}", "direct"),
    ("if-empty-undefined", "smtp_helo_name = ${no_such_parameter:direct}", "direct"),
    ("if-empty-set", "relayhost = mx\nsmtp_helo_name = ${relayhost:{direct}}", ""),
    ("ternary-true", "relayhost = mx\nsmtp_helo_name = ${relayhost?{via $relayhost}:{direct}}",
     "via mx"),
    ("ternary-false", "relayhost =\nsmtp_helo_name = ${relayhost?{via $relayhost}:{direct}}",
     "direct"),
    ("ternary-bare-second", "relayhost =\nsmtp_helo_name = ${relayhost?{x}:direct}", "direct"),
    ("legacy-colon-is-text", "relayhost = mx\nsmtp_helo_name = ${relayhost?a:b}", "a:b"),
    ("test-is-on-raw-value", "bounce_template_file =\nrelayhost = $bounce_template_file\n"
     "smtp_helo_name = ${relayhost?{nonempty}:{empty}}", "nonempty"),
    ("nested", "relayhost =\nsmtp_helo_name = ${relayhost?{x}:{${mydomain?{in $mydomain}}}}",
     "in localdomain"),
    ("relational-equal", "relayhost = mx\nsmtp_helo_name = ${{$relayhost} == {mx} ? {y} : {n}}",
     "y"),
    ("relational-not-equal", "smtp_helo_name = ${{a} != {a} ? {y} : {n}}", "n"),
    ("relational-numeric", "smtp_helo_name = ${{10} > {9} ? {y} : {n}}", "y"),
    ("relational-text", "smtp_helo_name = ${{10} > {9x} ? {y} : {n}}", "n"),
    ("relational-bare-value", "smtp_helo_name = [${{1} <= {2}}][${{1} >= {2}}]", "[true][]"),
    ("compatibility-level", "compatibility_level = 3.10\n"
     "smtp_helo_name = ${{$compatibility_level} <level {3.6} ? {old} : {new}}", "new"),
    ("default-uses-level-old", "relayhost = $relay_domains",
     "vm.localdomain, localhost.localdomain, localhost"),
    ("default-uses-level-new", "compatibility_level = 3.6\nrelayhost = $relay_domains", ""),
    ("default-stress-conditional", "relayhost = $smtpd_timeout", "300s"),
    ("default-stress-conditional-set", "stress = yes\nrelayhost = $smtpd_timeout", "10s"),
]


@pytest.mark.parametrize("text, expected", [c[1:] for c in EXPAND_CASES],
                         ids=[c[0] for c in EXPAND_CASES])
def test_expand(text, expected):
    params = maincf.parse(text)
    assert maincf.expand(params)[list(params)[-1]] == expected


def test_expand_returns_only_the_given_names():
    expanded = maincf.expand({"relayhost": "$mydomain"})
    assert expanded == {"relayhost": "localdomain"}


EXPAND_ERRORS = [
    ("self-reference", {"mydestination": "$mydestination, example.org"}, "mydestination",
     "mydestination -> mydestination"),
    ("two-cycle", {"myorigin": "$myhostname", "myhostname": "$myorigin"}, "myorigin",
     "myorigin -> myhostname -> myorigin"),
    ("cycle-reached-from-outside", {"relayhost": "$myorigin", "myorigin": "$myhostname",
                                    "myhostname": "mx.$myorigin"}, "myorigin",
     "myorigin -> myhostname -> myorigin"),
    ("cycle-in-conditional", {"relayhost": "${relayhost?{$relayhost}}"}, "relayhost",
     "relayhost -> relayhost"),
    ("unclosed-brace", {"relayhost": "${mydomain"}, "relayhost", "closing }"),
    ("unclosed-parenthesis", {"relayhost": "$(mydomain"}, "relayhost", "closing )"),
    ("lone-dollar", {"relayhost": "cost $ 5"}, "relayhost", "write $$"),
    ("trailing-dollar", {"relayhost": "x$"}, "relayhost", "write $$"),
    ("bad-name", {"relayhost": "${my-domain}"}, "relayhost", "${name?value}"),
    ("garbage-after-value2", {"relayhost": "${mydomain?{a}:{b}c}"}, "relayhost", "nothing after"),
    ("garbage-after-value1", {"relayhost": "${mydomain?{a}b}"}, "relayhost", ": after"),
    ("unknown-operator", {"relayhost": "${{a} =~ {b} ? {x}}"}, "relayhost", "op =="),
    ("missing-right-operand", {"relayhost": "${{a} == b}"}, "relayhost", "balanced {}"),
    ("bad-level", {"relayhost": "${{x} <level {3.6} ? {x}}"}, "relayhost", "compatibility"),
    ("error-is-named-where-it-is", {"relayhost": "$myorigin", "myorigin": "${oops"},
     "myorigin", "closing }"),
]


@pytest.mark.parametrize("params, key, words", [c[1:] for c in EXPAND_ERRORS],
                         ids=[c[0] for c in EXPAND_ERRORS])
def test_expand_errors_name_the_parameter(params, key, words):
    with pytest.raises(ScenarioError) as err:
        maincf.expand(params)
    assert err.value.key == key
    assert err.value.value == params[key]
    assert words in err.value.allowed


# ---------------------------------------------------------------------------------------------
# time units

TIME_CASES = [
    ("lifetime-bare-is-days", "maximal_queue_lifetime", "2", 172800.0),
    ("delay-warning-bare-is-hours", "delay_warning_time", "4", 14400.0),
    ("queue-run-delay-bare-is-seconds", "queue_run_delay", "300", 300.0),
    ("backoff-bare-is-seconds", "minimal_backoff_time", "300", 300.0),
    ("bounce-lifetime-bare-is-days", "bounce_queue_lifetime", "1", 86400.0),
    ("explicit-unit-wins", "maximal_queue_lifetime", "2400s", 2400.0),
    ("minutes", "maximal_backoff_time", "15m", 900.0),
    ("weeks", "maximal_queue_lifetime", "1w", 604800.0),
    ("number-from-toml", "maximal_queue_lifetime", 3, 259200.0),
    ("decimal-beyond-postfix", "delay_warning_time", "1.5", 5400.0),
    ("transport-parameter-uses-builtin-unit", "relay_destination_rate_delay", "2", 2.0),
    ("conditional-default-unit", "smtpd_timeout", "5", 5.0),
    ("default-unit-of-reference", "lmtp_connection_cache_time_limit", "3", 3.0),
]


@pytest.mark.parametrize("name, value, seconds", [c[1:] for c in TIME_CASES],
                         ids=[c[0] for c in TIME_CASES])
def test_time_seconds(name, value, seconds):
    assert maincf.time_seconds(name, value) == seconds


@pytest.mark.parametrize("name, unit", [
    ("maximal_queue_lifetime", "d"), ("bounce_queue_lifetime", "d"), ("delay_warning_time", "h"),
    ("queue_run_delay", "s"), ("minimal_backoff_time", "s"), ("maximal_backoff_time", "s"),
    ("smtpd_timeout", "s"), ("postscreen_dnsbl_max_ttl", "h"),
], ids=lambda v: v)
def test_time_default_unit(name, unit):
    assert maincf.TIME_DEFAULT_UNIT[name] == unit


@pytest.mark.parametrize("name, value, hint", [
    ("message_size_limit", "10240000", ""),
    ("maximal_queue_lifetme", "2", "did you mean 'maximal_queue_lifetime'?"),
], ids=["not-a-time-parameter", "typo"])
def test_time_seconds_refuses_non_time_parameters(name, value, hint):
    with pytest.raises(ScenarioError) as err:
        maincf.time_seconds(name, value)
    assert (err.value.key, err.value.allowed, err.value.hint) == (
        name, "a Postfix time parameter", hint)


@pytest.mark.parametrize("value", ["2x", "1d # one day", "2h30m", "-1"],
                         ids=["bad-unit", "trailing-comment", "compound", "negative"])
def test_time_seconds_refuses_bad_values(value):
    with pytest.raises(ScenarioError) as err:
        maincf.time_seconds("maximal_queue_lifetime", value)
    assert err.value.key == "maximal_queue_lifetime"


# ---------------------------------------------------------------------------------------------
# load

def test_load_parses_checks_and_expands():
    text = """
# queue host tuning, pasted from postconf -n
bounce_queue_lifetime = 2
maximal_queue_lifetime = $bounce_queue_lifetime
postconf -e 'minimal_backoff_time = 5m'
smtp_destination_concurrency_limit = $default_destination_concurrency_limit
"""
    params = maincf.load(text)
    assert params == {"bounce_queue_lifetime": "2", "maximal_queue_lifetime": "2",
                      "minimal_backoff_time": "5m", "smtp_destination_concurrency_limit": "20"}
    assert maincf.time_seconds("maximal_queue_lifetime", params["maximal_queue_lifetime"]) \
        == 172800.0


def test_load_reference_takes_the_unit_of_the_parameter_it_lands_in():
    # As in Postfix: the number is copied, the unit is the target parameter's (2 h, not 2 d).
    params = maincf.load("bounce_queue_lifetime = 2\ndelay_warning_time = $bounce_queue_lifetime")
    assert maincf.time_seconds("delay_warning_time", params["delay_warning_time"]) == 7200.0


def test_load_rejects_typo_with_origin():
    with pytest.raises(ScenarioError, match="maximal_queue_lifetme.*in upstream.cf.*did you mean"):
        maincf.load("maximal_queue_lifetme = 3", origin="upstream.cf")


# ---------------------------------------------------------------------------------------------
# against the installed Postfix (postconf only; Postfix is never started)

POSTCONF = shutil.which("postconf") or (
    "/usr/sbin/postconf" if Path("/usr/sbin/postconf").exists() else None)
MACHINE_VALUES = {"myhostname", "mydomain", "mynetworks", "process_id"}
needs_postfix_3_7_11 = pytest.mark.skipif(
    POSTCONF is None or subprocess.run([POSTCONF, "-dh", "mail_version"], capture_output=True,
                                       text=True).stdout.strip() != "3.7.11",
    reason="needs Postfix 3.7.11's postconf, which generated sim/postfix/data/postfix_defaults.txt")


def postconf(tmp_path: Path, main_cf: str, *args: str) -> dict[str, str]:
    """`postconf -c <tmp> args` on a config dir with this main.cf and an empty master.cf."""
    (tmp_path / "main.cf").write_text(main_cf)
    (tmp_path / "master.cf").write_text("")
    out = subprocess.run([POSTCONF, "-c", str(tmp_path), *args], capture_output=True, text=True,
                         check=True).stdout
    return maincf.parse(out)


def same_words(params: dict[str, str]) -> dict[str, str]:
    """postconf prints values with whitespace runs collapsed."""
    return {k: " ".join(v.split()) for k, v in params.items() if k not in MACHINE_VALUES}


@pytest.mark.postfix
@needs_postfix_3_7_11
def test_defaults_match_postconf_d(tmp_path):
    assert same_words(maincf.DEFAULTS) == same_words(postconf(tmp_path, "", "-d"))


@pytest.mark.postfix
@needs_postfix_3_7_11
def test_expanded_defaults_match_postconf_dx(tmp_path):
    assert same_words(maincf.expand(maincf.DEFAULTS)) == same_words(
        postconf(tmp_path, "", "-dx"))


@pytest.mark.postfix
@needs_postfix_3_7_11
def test_load_matches_postconf_nx(tmp_path):
    main_cf = """\
compatibility_level = 3.6
mydomain = example.org
myhostname = mx.$mydomain
my_relay = smarthost.$mydomain
relayhost = ${my_relay?{[$my_relay]:587}:{}}
smtp_helo_name = ${relayhost?{via $relayhost}:{direct}}
smtp_bind_address = ${{$compatibility_level} <level {3.6} ? {old} : {new}}
smtpd_banner = $myhostname ESMTP $$ ${bounce_template_file:none} $(mail_name)
mynetworks = 127.0.0.0/8
    10.0.0.0/8
bounce_queue_lifetime = 2
maximal_queue_lifetime = $bounce_queue_lifetime
fallback_relay = [backup.$mydomain]
relay_domains = $mydestination
mydestination = $myhostname, localhost.$mydomain
forward_path = $home/.forward
"""
    real = postconf(tmp_path, main_cf, "-nx")
    del real["config_directory"]                    # postconf -c adds it
    assert maincf.load(main_cf) == real


@pytest.mark.postfix
@pytest.mark.skipif(not Path("/usr/share/man/man5/postconf.5.gz").exists(),
                    reason="needs the postconf(5) manual page of the installed Postfix")
def test_time_default_unit_matches_postconf_manual():
    """postconf(5) says "The default time unit is X" for most time parameters; agree with all."""
    manual = gzip.open("/usr/share/man/man5/postconf.5.gz", "rt").read()
    documented = {}
    for entry in manual.split("\n.SH ")[1:]:
        name, _, body = entry.partition(" ")
        sentence = " ".join(body.split()).partition("The default time unit is ")[2]
        if sentence:
            documented[name] = sentence[0]
    # postscreen_dnsbl_ttl is a legacy name spliced into postscreen_dnsbl_max_ttl's default
    # (`${postscreen_dnsbl_ttl?{$postscreen_dnsbl_ttl}:{1}}h`); it has no unit of its own.
    documented.pop("postscreen_dnsbl_ttl")
    assert len(documented) > 80
    ours = {name: maincf.TIME_DEFAULT_UNIT.get(maincf._builtin(name) or "")
            for name in documented}
    assert ours == documented
