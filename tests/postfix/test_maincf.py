"""sim.postfix.maincf: main.cf parsing, parameter names, $-expansion and values, as Postfix 3.x.

The tests marked `postfix` compare against the installed Postfix (postconf, postconf(5)); they
never start Postfix and are skipped where it is not installed.
"""

from __future__ import annotations

import gzip
import os
import shlex
import shutil
import subprocess
import time
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
    # postconf(1) command forms
    ("postconf-without-e", "postconf queue_run_delay=5m", {"queue_run_delay": "5m"}),
    ("postconf-c-dir-e", 'postconf -c /etc/postfix-out -e "queue_run_delay = 5m"',
     {"queue_run_delay": "5m"}),
    ("postconf-c-attached", "postconf -c/etc/postfix-out -e queue_run_delay=5m",
     {"queue_run_delay": "5m"}),
    ("postconf-path-and-sudo-flags", "sudo -u root /usr/sbin/postconf -e queue_run_delay=5m",
     {"queue_run_delay": "5m"}),
    ("postconf-o-is-not-an-edit", "postconf -o relayhost=mx -e queue_run_delay=5m",
     {"queue_run_delay": "5m"}),
    ("postconf-shell-tail-ignored", "postconf -e queue_run_delay=5m || exit 1",
     {"queue_run_delay": "5m"}),
    ("postconf-shell-comment-ignored", "postconf -e 'queue_run_delay = 5m'  # faster",
     {"queue_run_delay": "5m"}),
    ("postconf-hash-inside-a-word-kept", "postconf -e smtpd_banner=a#b",
     {"smtpd_banner": "a#b"}),
    ("postconf-X-removes", "queue_run_delay = 5m\nrelayhost = mx\npostconf -X queue_run_delay",
     {"relayhost": "mx"}),
    ("postconf-hash-removes", "queue_run_delay = 5m\npostconf -# queue_run_delay", {}),
    ("postconf-X-then-set-again", "queue_run_delay = 5m\npostconf -X queue_run_delay\n"
     "relayhost = mx\nqueue_run_delay = 1m", {"relayhost": "mx", "queue_run_delay": "1m"}),
    ("postconf-query-changes-nothing", "queue_run_delay = 5m\npostconf mail_version\npostconf -n",
     {"queue_run_delay": "5m"}),
    ("postconf-M-edits-master-cf", "postconf -M submission/inet='submission inet n - n - - "
     "smtpd'\npostconf -P submission/inet/syslog_name=postfix/submission", {}),
]


@pytest.mark.parametrize("text, expected", [c[1:] for c in PARSE_CASES],
                         ids=[c[0] for c in PARSE_CASES])
def test_parse(text, expected):
    assert maincf.parse(text) == expected


MAIN_CF_LINE = "a main.cf line 'parameter = value'"
MALFORMED_CASES = [
    ("no-equals", "relayhost\n", 1, "relayhost", MAIN_CF_LINE, ""),
    ("no-name", "queue_run_delay = 5m\n= 5m", 2, "= 5m", MAIN_CF_LINE, ""),
    ("space-in-name", "# x\nqueue run delay = 5m", 2, "queue run delay = 5m", MAIN_CF_LINE, ""),
    ("continuation-without-line", "  queue_run_delay = 5m", 1, "  queue_run_delay = 5m",
     MAIN_CF_LINE, "continues the line before"),
    ("postconf-e-without-equals", "postconf -e queue_run_delay", 1, "postconf -e queue_run_delay",
     "postconf -e with name=value arguments", ""),
    ("postconf-e-unbalanced-quote", "postconf -e 'queue_run_delay = 5m", 1,
     "postconf -e 'queue_run_delay = 5m", MAIN_CF_LINE + " or a postconf command", "quote"),
    ("line-number-is-logical-start", "\n\nmynetworks\n  10.0.0.0/8", 3, "mynetworks 10.0.0.0/8",
     MAIN_CF_LINE, ""),
    ("master-cf-line", "smtp      inet  n       -       y       -       -       smtpd", 1,
     "smtp      inet  n       -       y       -       -       smtpd", MAIN_CF_LINE,
     "looks like master.cf"),
    ("master-cf-with-options", "submission inet n - n - - smtpd\n  -o syslog_name=x", 1,
     "submission inet n - n - - smtpd -o syslog_name=x", MAIN_CF_LINE, "looks like master.cf"),
    ("shell-if", "#!/bin/sh\nif [ -f /etc/x ]; then", 2, "if [ -f /etc/x ]; then", MAIN_CF_LINE,
     "looks like a shell command"),
    ("shell-export", 'export HOST="$(hostname)"', 1, 'export HOST="$(hostname)"', MAIN_CF_LINE,
     "looks like a shell command"),
    ("shell-source", "source setup/functions.sh", 1, "source setup/functions.sh", MAIN_CF_LINE,
     "looks like a shell command"),
]


@pytest.mark.parametrize("text, line_no, shown, allowed, hint",
                         [c[1:] for c in MALFORMED_CASES], ids=[c[0] for c in MALFORMED_CASES])
def test_parse_malformed_line(text, line_no, shown, allowed, hint):
    with pytest.raises(ScenarioError) as err:
        maincf.parse(text, origin="site.cf")
    assert err.value.key == f"site.cf line {line_no}"
    assert err.value.value == shown
    assert err.value.allowed == allowed
    assert hint in err.value.hint and bool(hint) == bool(err.value.hint)


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


def test_newer_names_are_postfix_3_8_to_3_11s():
    names = maincf.NEWER_NAMES
    assert {"smtp_tlsrpt_enable", "maillog_file_permissions", "use_srv_lookup"} <= names
    assert not names & maincf.DEFAULTS.keys() and len(names) == 42


MODELLED = ("maximal_queue_lifetime", "minimal_backoff_time", "queue_run_delay",
            "smtp_destination_concurrency_limit")
QUIET_NAMES = [
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
    ("postfix-3.9-tlsrpt", "smtp_tlsrpt_enable = yes"),
    ("postfix-3.9-maillog-permissions", "maillog_file_permissions = 0644"),
    ("postfix-3.8-srv", "use_srv_lookup = submission"),
]


@pytest.mark.parametrize("text", [c[1] for c in QUIET_NAMES], ids=[c[0] for c in QUIET_NAMES])
def test_check_names_is_quiet_about_postfix_names(text):
    assert maincf.check_names(maincf.parse(text), "site.cf", MODELLED) == ()


WARNED_NAMES = [
    ("own-name-used-from-master-cf",
     "mua_sender_restrictions = permit_sasl_authenticated, reject",
     "mua_sender_restrictions=permit_sasl_authenticated, reject"),
    ("suffix-without-transport", "_destination_concurrency_limit = 5",
     "_destination_concurrency_limit=5"),
    ("default-suffix-that-is-not-per-transport", "relay_process_limit = 5",
     "relay_process_limit=5"),
    ("user-macro-unreferenced", "my_nets = 10.0.0.0/8", "my_nets=10.0.0.0/8"),
    ("dollar-dollar-is-not-a-reference", "my_nets = 1\nrelayhost = $$my_nets", "my_nets=1"),
    ("typo-of-a-parameter-not-modelled", "smtpd_bannr = mx ESMTP", "smtpd_bannr=mx ESMTP"),
    ("two-edits-from-a-modelled-one", "maximal_queue_lifetm = 1d", "maximal_queue_lifetm=1d"),
]


@pytest.mark.parametrize("text, shown", [c[1:] for c in WARNED_NAMES],
                         ids=[c[0] for c in WARNED_NAMES])
def test_read_warns_like_postfix(text, shown):
    mc = maincf.read(text, "site.cf", MODELLED)
    assert mc.warnings == (f"site.cf: unused parameter: {shown}",)
    assert mc.unused == (shown.split("=")[0],)


REJECTED_NAMES = [
    ("letter-missing", "maximal_queue_lifetme = 3", "maximal_queue_lifetme",
     "maximal_queue_lifetime"),
    ("letter-missing-backoff", "minimal_backof_time = 5m", "minimal_backof_time",
     "minimal_backoff_time"),
    ("letter-added", "queue_run_delayy = 5m", "queue_run_delayy", "queue_run_delay"),
    ("letter-replaced", "queue_run_deley = 5m", "queue_run_deley", "queue_run_delay"),
    ("letters-swapped", "queue_run_dealy = 5m", "queue_run_dealy", "queue_run_delay"),
    ("transport-one", "smtp_destination_concurrency_limt = 5",
     "smtp_destination_concurrency_limt", "smtp_destination_concurrency_limit"),
]


@pytest.mark.parametrize("text, name, meant", [c[1:] for c in REJECTED_NAMES],
                         ids=[c[0] for c in REJECTED_NAMES])
def test_check_names_rejects_one_edit_from_a_modelled_name(text, name, meant):
    with pytest.raises(ScenarioError) as err:
        maincf.check_names(maincf.parse(text), "site.cf", MODELLED)
    assert err.value.key == name
    assert err.value.allowed == "a Postfix parameter name"
    assert err.value.problem == "unknown parameter in site.cf"
    assert err.value.hint == f"did you mean {meant!r}?"


@pytest.mark.parametrize("a, b, one", [
    ("abc", "abc", False), ("abc", "abcd", True), ("abcd", "abc", True), ("abc", "xbc", True),
    ("abc", "bac", True), ("abc", "cba", False), ("abc", "ab", True), ("abc", "a", False),
    ("abcd", "abdc", True), ("abcd", "badc", False), ("abc", "axbc", True), ("abc", "xyz", False),
], ids=lambda v: str(v))
def test_one_edit(a, b, one):
    assert maincf._one_edit(a, b) is one


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
    ("lifetime-bare-is-days", "maximal_queue_lifetime", "2", 172800),
    ("delay-warning-bare-is-hours", "delay_warning_time", "4", 14400),
    ("queue-run-delay-bare-is-seconds", "queue_run_delay", "300", 300),
    ("backoff-bare-is-seconds", "minimal_backoff_time", "300", 300),
    ("bounce-lifetime-bare-is-days", "bounce_queue_lifetime", "1", 86400),
    ("explicit-unit-wins", "maximal_queue_lifetime", "2400s", 2400),
    ("minutes", "maximal_backoff_time", "15m", 900),
    ("weeks", "maximal_queue_lifetime", "1w", 604800),
    ("number-from-toml", "maximal_queue_lifetime", 3, 259200),
    # conv_time(): strtol(), then one letter; what follows the letter is not read
    ("word-after-the-letter", "maximal_queue_lifetime", "5days", 432000),
    ("comment-after-the-letter", "bounce_queue_lifetime", "2d # two days", 172800),
    ("compound-reads-the-first", "maximal_backoff_time", "2h30m", 7200),
    ("plus-sign", "queue_run_delay", "+60", 60),
    ("no-digits-is-zero", "delay_warning_time", "h", 0),
    ("transport-parameter-uses-builtin-unit", "relay_destination_rate_delay", "2", 2),
    ("conditional-default-unit", "smtpd_timeout", "5", 5),
    ("default-unit-of-reference", "lmtp_connection_cache_time_limit", "3", 3),
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


@pytest.mark.parametrize("value", ["2x", "1.5d", "5 d", "-1", "", "x", 1.5, "3000000000s"],
                         ids=["bad-unit", "decimal", "space-before-unit", "negative", "empty",
                              "no-number", "float-from-toml", "beyond-int"])
def test_time_seconds_refuses_what_postfix_refuses(value):
    with pytest.raises(ScenarioError) as err:
        maincf.time_seconds("maximal_queue_lifetime", value)
    assert err.value.key == "maximal_queue_lifetime"


@pytest.mark.parametrize("name, value, words", [
    ("queue_run_delay", "0", "at least 1"), ("minimal_backoff_time", "0s", "at least 1"),
    ("maximal_queue_lifetime", "101d", "at most 8640000"),
    ("bounce_queue_lifetime", "8640001s", "at most 8640000"),
], ids=["queue-run-delay-zero", "backoff-zero", "lifetime-over-100d", "bounce-over-100d"])
def test_time_seconds_checks_postfix_limits(name, value, words):
    with pytest.raises(ScenarioError) as err:
        maincf.time_seconds(name, value)
    assert err.value.key == name and words in err.value.allowed


INT_CASES = [
    ("plain", "smtpd_hard_error_limit", "20", 20),
    ("leading-space-and-sign", "qmgr_message_active_limit", " +5", 5),
    ("from-toml", "default_destination_concurrency_limit", 5, 5),
    ("zero-concurrency-means-no-limit", "default_destination_concurrency_limit", "0", 0),
    ("transport-zero", "smtp_destination_concurrency_limit", "0", 0),
    ("code-without-limits", "unknown_local_recipient_reject_code", "450", 450),
    ("verify-code-at-the-top", "unverified_recipient_reject_code", "599", 599),
]


@pytest.mark.parametrize("name, value, number", [c[1:] for c in INT_CASES],
                         ids=[c[0] for c in INT_CASES])
def test_int_value(name, value, number):
    assert maincf.int_value(name, value) == number


@pytest.mark.parametrize("name, value, words", [
    ("smtpd_hard_error_limit", "0", "at least 1"),
    ("qmgr_message_active_limit", "0", "at least 1"),
    ("unverified_recipient_reject_code", "600", "at most 599"),
    ("unverified_recipient_reject_code", "199", "at least 200"),
    ("smtpd_hard_error_limit", "20 # twenty", "bad numerical"),
    ("smtpd_hard_error_limit", "2.5", "bad numerical"),
    ("smtpd_hard_error_limit", "", "bad numerical"),
], ids=["hard-error-limit-zero", "active-limit-zero", "verify-code-600", "verify-code-199",
        "comment-after-number", "decimal", "empty"])
def test_int_value_refuses_what_postfix_refuses(name, value, words):
    with pytest.raises(ScenarioError) as err:
        maincf.int_value(name, value)
    assert err.value.key == name and words in err.value.allowed


@pytest.mark.parametrize("value, truth", [("yes", True), ("NO", False), ("Yes", True),
                                          (True, True)], ids=lambda v: str(v))
def test_bool_value(value, truth):
    assert maincf.bool_value("soft_bounce", value) is truth


@pytest.mark.parametrize("value", ["true", "1", "yes please", ""], ids=lambda v: repr(v))
def test_bool_value_refuses_what_postfix_refuses(value):
    with pytest.raises(ScenarioError, match="bad boolean"):
        maincf.bool_value("soft_bounce", value)


# ---------------------------------------------------------------------------------------------
# what the upstream's main.cf says about the way to the relay

TRANSPORT_CASES = [
    ("default-smtp", "relayhost = [relay.example]", "smtp"),
    ("relay-domains-relay", "relay_domains = example.org", "relay"),
    ("relay-recipient-maps-relay", "relay_recipient_maps = hash:/etc/postfix/rcpt", "relay"),
    ("empty-relay-domains-smtp", "relay_domains =", "smtp"),
    ("relay-domains-through-a-macro", "mine = example.org\nrelay_domains = $mine", "relay"),
    ("own-relay-transport", "relay_domains = example.org\nrelay_transport = bulk:[gw]", "bulk"),
    ("own-default-transport", "default_transport = smtp-out", "smtp-out"),
    ("default-relay-domains-are-not-counted", "compatibility_level = 2", "smtp"),
]


@pytest.mark.parametrize("text, transport", [c[1:] for c in TRANSPORT_CASES],
                         ids=[c[0] for c in TRANSPORT_CASES])
def test_delivery_transport(text, transport):
    assert maincf.delivery_transport(maincf.parse(text))[0] == transport


VALIDATION_CASES = [
    ("nothing-said", "relayhost = mx", None),
    ("relay-recipient-maps", "relay_recipient_maps = hash:/etc/postfix/rcpt",
     "relay_recipient_maps"),
    ("maps-but-unlisted-check-off", "relay_recipient_maps = hash:/x\n"
     "smtpd_reject_unlisted_recipient = no", "none"),
    ("maps-unlisted-check-off-but-explicit", "relay_recipient_maps = hash:/x\n"
     "smtpd_reject_unlisted_recipient = no\n"
     "smtpd_recipient_restrictions = reject_unlisted_recipient", "relay_recipient_maps"),
    ("verify", "smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination, "
     "reject_unverified_recipient", "verify"),
    ("verify-in-relay-restrictions", "smtpd_relay_restrictions = reject_unverified_recipient",
     "verify"),
    ("verify-after-unlisted", "relay_recipient_maps = hash:/x\nsmtpd_recipient_restrictions = "
     "reject_unlisted_recipient, reject_unverified_recipient", "relay_recipient_maps"),
    ("verify-before-unlisted", "relay_recipient_maps = hash:/x\nsmtpd_recipient_restrictions = "
     "reject_unverified_recipient reject_unlisted_recipient", "verify"),
    ("restrictions-without-either", "smtpd_recipient_restrictions = permit_mynetworks, "
     "reject_unauth_destination", "none"),
    ("verify-through-a-macro", "checks = reject_unverified_recipient\n"
     "smtpd_recipient_restrictions = $checks", "verify"),
]


@pytest.mark.parametrize("text, mode", [c[1:] for c in VALIDATION_CASES],
                         ids=[c[0] for c in VALIDATION_CASES])
def test_recipient_validation(text, mode):
    found = maincf.recipient_validation(maincf.parse(text))
    assert (found and found[0]) == mode


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


def test_read_rejects_typo_of_a_modelled_name_with_origin():
    with pytest.raises(ScenarioError, match="maximal_queue_lifetme.*in upstream.cf.*did you mean"):
        maincf.read("maximal_queue_lifetme = 3", "upstream.cf", MODELLED)


def test_read_gives_lines_and_warnings():
    mc = maincf.read("# tuning\nqueue_run_delay = 5m\nmy_thing = 1\nmynetworks = a\n  b\n"
                     "postconf -e queue_run_delay=1m\n", "site.cf")
    assert mc.lines == {"my_thing": 3, "mynetworks": 4, "queue_run_delay": 6}
    assert mc.params == {"my_thing": "1", "mynetworks": "a b", "queue_run_delay": "1m"}
    assert mc.warnings == ("site.cf: unused parameter: my_thing=1",)


# ---------------------------------------------------------------------------------------------
# against the installed Postfix (postconf only; Postfix is never started)

POSTCONF = shutil.which("postconf") or (
    "/usr/sbin/postconf" if Path("/usr/sbin/postconf").exists() else None)
MACHINE_VALUES = {"myhostname", "mydomain", "mynetworks", "process_id"}
needs_postfix_3_7_11 = pytest.mark.skipif(
    POSTCONF is None or subprocess.run([POSTCONF, "-dh", "mail_version"], capture_output=True,
                                       text=True).stdout.strip() != "3.7.11",
    reason="needs Postfix 3.7.11's postconf, which generated sim/postfix/data/postfix_defaults.txt")


def write_config(config_dir: Path, main_cf: str | None, master_cf: str = "") -> None:
    """main.cf and master.cf, dated a minute back: postconf waits about 2 s before it reads a
    main.cf written within the last second."""
    if main_cf is not None:
        (config_dir / "main.cf").write_text(main_cf)
    (config_dir / "master.cf").write_text(master_cf)
    past = time.time() - 60
    for name in ("main.cf", "master.cf"):
        os.utime(config_dir / name, (past, past))


def postconf(tmp_path: Path, main_cf: str, *args: str) -> dict[str, str]:
    """`postconf -c <tmp> args` on a config dir with this main.cf and an empty master.cf."""
    write_config(tmp_path, main_cf)
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


def postconf_warnings(stderr: str) -> set[str]:
    """The names postconf calls 'unused parameter' in main.cf."""
    return {line.split("unused parameter: ", 1)[1].split("=", 1)[0]
            for line in stderr.splitlines() if "main.cf: unused parameter: " in line}


@pytest.mark.postfix
@pytest.mark.skipif(POSTCONF is None, reason="needs Postfix's postconf")
@pytest.mark.parametrize("text", [c[1] for c in QUIET_NAMES + WARNED_NAMES if "3." not in c[0]],
                         ids=[c[0] for c in QUIET_NAMES + WARNED_NAMES if "3." not in c[0]])
def test_unused_parameter_warnings_match_postconf(text, tmp_path):
    """The same names draw postconf's warning (names of Postfix > 3.7 left out: the installed
    postconf is 3.7's), with a master.cf that has the services the cases name."""
    write_config(tmp_path, text + "\n", MASTER_CF)
    proc = subprocess.run([POSTCONF, "-c", str(tmp_path), "-n"], capture_output=True, text=True,
                          check=True)
    assert set(maincf.check_names(maincf.parse(text))) == postconf_warnings(proc.stderr)


# ---------------------------------------------------------------------------------------------
# the corpus: real main.cf files of public projects (tests/data/maincf, each names its source)

CORPUS = sorted((Path(__file__).parents[1] / "data" / "maincf").iterdir())
# The services of a stock master.cf that deliver mail, so that postconf knows the
# per-transport parameters (smtp_destination_concurrency_limit, ...), as it does on a real host.
MASTER_CF = "".join(f"{s} unix - - n - - {cmd}\n" for s, cmd in (
    ("smtp", "smtp"), ("relay", "smtp"), ("local", "local"), ("virtual", "virtual"),
    ("lmtp", "lmtp"), ("maildrop", "pipe"), ("scalemail-backend", "pipe")))
# The defaults that depend on the machine, fixed to postfix_defaults.txt's so that postconf
# computes the same values on any host (a pasted file's own settings come later and win).
MACHINE = "".join(f"{name} = {maincf.DEFAULTS[name]}\n" for name in (
    "myhostname", "mydomain", "mynetworks"))


def expectation(path: Path) -> str:
    return next(line[len("# expect: "):] for line in path.read_text().splitlines()
                if line.startswith("# expect: "))


def is_script(text: str) -> bool:
    return any(line.startswith("postconf ") for line in text.splitlines())


def test_the_corpus_has_files_of_each_kind():
    kinds = [expectation(p).split(":")[0].split(";")[0] for p in CORPUS]
    assert kinds.count("valid") >= 8 and kinds.count("error") >= 4
    assert any(is_script(p.read_text()) for p in CORPUS)
    assert all(p.read_text().startswith("# relaysim main.cf corpus: ") and "Licence: " in
               p.read_text()[:1000] for p in CORPUS)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
@pytest.mark.parametrize("host", ["upstream", "relay"])
def test_corpus_file_is_read_as_expected(path, host):
    """Valid files are accepted with exactly the expected unused-parameter warnings; invalid
    ones get one line that says what is wrong."""
    from sim.scenario import Scenario

    expect = expectation(path)
    text = path.read_text()
    if expect.startswith("valid"):
        scen = Scenario.from_dict({host: {"main_cf": text}})
        unused = expect.partition("; unused: ")[2]
        assert {w.split("unused parameter: ", 1)[1].split("=", 1)[0]
                for w in scen.warnings if "unused parameter" in w} == (
            set(unused.split(", ")) if unused else set())
        assert scen.main_cf and all(p.host == host for p in scen.main_cf)
    else:
        with pytest.raises(ScenarioError) as err:
            Scenario.from_dict({host: {"main_cf": text}})
        words = expect[len("error: "):]
        assert all(w in str(err.value) for w in words.split(", "))
        assert "\n" not in str(err.value)


def apply_postconf_lines(text: str, config_dir: Path) -> None:
    """Run the postconf commands of a script for real, against config_dir (no shell)."""
    for line in text.splitlines():
        if line.startswith("postconf "):
            subprocess.run([POSTCONF, "-c", str(config_dir), *shlex.split(line)[1:]],
                           check=True, capture_output=True)
            write_config(config_dir, None, MASTER_CF)


VALID = [p for p in CORPUS if expectation(p).startswith("valid")]


@pytest.mark.postfix
@pytest.mark.skipif(POSTCONF is None, reason="needs Postfix's postconf (CI installs Postfix)")
@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_corpus_values_match_postconf(path, tmp_path):
    """Every name set, and every parameter relaysim reads (set or not), has the value that
    `postconf -nx` / `postconf -hx` computes; the unused-parameter warnings agree too (except
    for names newer than the installed Postfix)."""
    from sim.scenario import _modelled_names

    text = MACHINE + path.read_text()
    write_config(tmp_path, MACHINE if is_script(text) else text, MASTER_CF)
    if is_script(text):
        apply_postconf_lines(text, tmp_path)
    proc = subprocess.run([POSTCONF, "-c", str(tmp_path), "-nx"], capture_output=True,
                          text=True, check=True)
    # postconf -c sets config_directory, whatever main.cf says; relaysim's is the default's
    real = maincf.parse(proc.stdout.replace(str(tmp_path), maincf.DEFAULTS["config_directory"]))
    mc = maincf.read(text)
    if "config_directory" not in mc.params:
        del real["config_directory"]
    for name in [n for n, v in mc.raw.items() if "process_id" in v]:   # debugger_command
        del mc.params[name], real[name]
    unused = set(mc.unused)
    assert unused - maincf.NEWER_NAMES == postconf_warnings(proc.stderr) - maincf.NEWER_NAMES
    # postconf -n leaves out the parameters it calls unused
    assert same_words({k: v for k, v in mc.params.items() if k not in unused}) == same_words(
        {k: v for k, v in real.items() if k not in maincf.NEWER_NAMES})
    names = sorted(_modelled_names())
    hx = subprocess.run([POSTCONF, "-c", str(tmp_path), "-hx", *names], capture_output=True,
                        text=True, check=True).stdout.replace(
        str(tmp_path), maincf.DEFAULTS["config_directory"]).splitlines()
    assert same_words({n: maincf.expanded(mc.raw, n) for n in names}) == same_words(
        dict(zip(names, hx, strict=True)))


# ---------------------------------------------------------------------------------------------
# a pasted main.cf in a scenario: what each host's main.cf sets (sim.scenario._with_main_cf)

def scenario(upstream: str = "", relay: str = "", up_table=None, relay_table=None):
    from sim.scenario import Scenario

    d = {"upstream": dict(up_table or {}), "relay": dict(relay_table or {})}
    if upstream:
        d["upstream"]["main_cf"] = upstream
    if relay:
        d["relay"]["main_cf"] = relay
    return Scenario.from_dict(d)


def pasted(scen, name: str):
    return next(p for p in scen.main_cf if p.name == name)


@pytest.mark.parametrize("text", [
    "smtp_destination_concurrency_limit = 5\ndefault_destination_concurrency_limit = 50",
    "default_destination_concurrency_limit = 50\nsmtp_destination_concurrency_limit = 5",
], ids=["transport-first", "default-first"])
def test_transport_limit_wins_whatever_the_order(text):
    scen = scenario(text)
    assert scen.upstream.default_destination_concurrency_limit == 5
    assert scen.origins["upstream.default_destination_concurrency_limit"] == (
        "main_cf: smtp_destination_concurrency_limit")
    assert pasted(scen, "default_destination_concurrency_limit").status == "overridden"


def test_relay_domain_uses_the_relay_transports_limits():
    scen = scenario("relay_domains = example.org\nsmtp_destination_concurrency_limit = 5\n"
                    "relay_destination_concurrency_limit = 3\n"
                    "relay_destination_recipient_limit = 10\n")
    assert scen.upstream.default_destination_concurrency_limit == 3
    assert scen.upstream.default_destination_recipient_limit == 10
    assert pasted(scen, "smtp_destination_concurrency_limit").status == "not modelled"
    assert "relay transport" in pasted(scen, "smtp_destination_concurrency_limit").note


def test_default_limit_alone_still_applies_through_the_transport():
    scen = scenario("default_destination_concurrency_limit = 7")
    assert scen.upstream.default_destination_concurrency_limit == 7
    assert scen.origins["upstream.default_destination_concurrency_limit"] == "main_cf"


def test_minimal_backoff_above_the_default_maximum_runs_as_in_postfix():
    scen = scenario("minimal_backoff_time = 2h")
    assert scen.upstream.minimal_backoff_time == scen.upstream.maximal_backoff_time == 7200
    assert "minimal_backoff_time" in scen.origins["upstream.maximal_backoff_time"]


def test_maximal_backoff_below_the_default_minimum_is_raised_to_it():
    assert scenario("maximal_backoff_time = 100s").upstream.maximal_backoff_time == 300


def test_backoff_keys_in_the_scenario_file_keep_their_own_check():
    with pytest.raises(ScenarioError, match="maximal_backoff_time"):
        scenario("minimal_backoff_time = 2h", up_table={"maximal_backoff_time": "1h"})


@pytest.mark.parametrize("text, seconds", [
    ("maximal_queue_lifetime = 5days", 5 * 86400),
    ("maximal_queue_lifetime = 2d # two days", 2 * 86400),
    ("maximal_queue_lifetime = 2", 2 * 86400),
    ("queue_run_delay = 1000", 1000),
], ids=["word-after-unit", "comment-after-unit", "bare-days", "bare-seconds"])
def test_pasted_times_read_as_postfix_reads_them(text, seconds):
    scen = scenario(text)
    name = text.split()[0]
    assert getattr(scen.upstream, name) == seconds


def test_pasted_decimal_time_is_refused_but_a_toml_key_may_have_one():
    with pytest.raises(ScenarioError) as err:
        scenario("delay_warning_time = 1.5h")
    assert err.value.key == "delay_warning_time" and "no decimals" in err.value.allowed
    assert scenario(up_table={"delay_warning_time": "1.5h"}).upstream.delay_warning_time == 5400


def test_pasted_hard_error_limit_has_postfixs_minimum():
    with pytest.raises(ScenarioError) as err:
        scenario(relay="smtpd_hard_error_limit = 0")
    assert err.value.key == "smtpd_hard_error_limit" and "at least 1" in err.value.allowed
    assert scenario(relay="smtpd_hard_error_limit = ${stress?1}${stress:5}"
                    ).relay.smtpd_hard_error_limit == 5
    assert scenario(relay_table={"smtpd_hard_error_limit": 0}).relay.smtpd_hard_error_limit == 0


@pytest.mark.parametrize("text, mode, code", [
    ("relay_domains = example.org\nrelay_recipient_maps = hash:/etc/postfix/relay_recipients",
     "relay_recipient_maps", None),
    ("smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination,\n"
     "    reject_unverified_recipient\nunverified_recipient_reject_code = 550", "verify", 550),
], ids=["relay-recipient-maps", "reject-unverified-recipient"])
def test_upstream_recipient_validation_from_main_cf(text, mode, code):
    scen = scenario(text)
    assert scen.upstream.recipient_validation == mode
    assert scen.origins["upstream.recipient_validation"].startswith("main_cf: ")
    if code:
        assert scen.upstream.unverified_recipient_reject_code == code
    assert scen.not_modelled == ()


def test_recipient_validation_key_in_the_scenario_file_wins():
    scen = scenario("relay_recipient_maps = hash:/x", up_table={"recipient_validation": "none"})
    assert scen.upstream.recipient_validation == "none"
    assert pasted(scen, "relay_recipient_maps").status == "overridden"


def test_soft_bounce_on_each_host():
    relay = scenario(relay="soft_bounce = yes")
    assert relay.relay.soft_bounce is True and relay.upstream.soft_bounce is False
    assert relay.warnings == ()
    up = scenario("soft_bounce = yes")
    assert up.upstream.soft_bounce is True and up.relay.soft_bounce is False
    p = pasted(up, "soft_bounce")
    assert (p.host, p.status, p.key) == ("upstream", "modelled", "upstream.soft_bounce")
    assert up.origins["upstream.soft_bounce"] == "main_cf"
    assert up.warnings == () and up.not_modelled == ()
    assert scenario("soft_bounce = no").upstream.soft_bounce is False


@pytest.mark.parametrize("value, truth", [("yes", True), ("YES", True), ("no", False),
                                          ("${flag}", True)],
                         ids=["yes", "upper-case", "no", "expanded"])
def test_upstream_soft_bounce_value_as_postfix_reads_it(value, truth):
    text = f"flag = yes\nsoft_bounce = {value}\n"
    assert scenario(text).upstream.soft_bounce is truth


def test_upstream_soft_bounce_key_in_the_scenario_file_wins():
    scen = scenario("soft_bounce = yes", up_table={"soft_bounce": False})
    assert scen.upstream.soft_bounce is False
    assert pasted(scen, "soft_bounce").status == "overridden"


def test_upstream_soft_bounce_with_another_mta_is_refused():
    from sim.errors import ScenarioError

    with pytest.raises(ScenarioError, match="upstream.soft_bounce"):
        scenario("soft_bounce = yes", up_table={"mta": "sendmail"})


def test_a_parameter_of_the_other_host_says_where_it_belongs():
    scen = scenario("unknown_local_recipient_reject_code = 450",
                    relay="maximal_queue_lifetime = 1d")
    assert scen.relay.unknown_local_recipient_reject_code == 550
    assert scen.upstream.maximal_queue_lifetime == 5 * 86400
    assert pasted(scen, "unknown_local_recipient_reject_code").status == "other host"
    assert "[relay]" in pasted(scen, "unknown_local_recipient_reject_code").note
    assert scen.not_modelled == ("unknown_local_recipient_reject_code (the relay's)",
                                 "maximal_queue_lifetime (the upstream's)")


def test_unknown_names_are_warnings_in_postfixs_words():
    scen = scenario("mua_sender_restrictions = permit_sasl_authenticated, reject\n"
                    "smtp_tlsrpt_enable = yes\nsmtpd_banner = $myhostname ESMTP")
    assert scen.warnings == ("upstream.main_cf: unused parameter: "
                             "mua_sender_restrictions=permit_sasl_authenticated, reject",)
    assert scen.not_modelled == ("mua_sender_restrictions (unused parameter)",
                                 "smtp_tlsrpt_enable", "smtpd_banner")


def test_master_cf_pasted_is_one_clear_line():
    with pytest.raises(ScenarioError) as err:
        scenario("smtp      inet  n       -       y       -       -       smtpd\n"
                 "  -o smtpd_sasl_auth_enable=yes")
    assert err.value.key == "upstream.main_cf line 1" and "master.cf" in err.value.hint


def test_main_cf_file_is_found_next_to_the_scenario_file(tmp_path, monkeypatch):
    from sim.scenario import Scenario

    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "upstream.cf").write_text("maximal_queue_lifetime = 3\n")
    (tmp_path / "s.toml").write_text('[upstream]\nmain_cf_file = "conf/upstream.cf"\n'
                                     "main_cf = '''\nqueue_run_delay = 1000\n'''\n")
    monkeypatch.chdir("/")
    scen = Scenario.from_toml(tmp_path / "s.toml")
    assert scen.upstream.maximal_queue_lifetime == 3 * 86400
    assert scen.upstream.queue_run_delay == 1000


def test_overrides_keep_what_the_paste_said():
    scen = scenario("my_thing = 1\nsmtpd_banner = x\nmaximal_queue_lifetime = 2")
    new = scen.with_overrides({"upstream.queue_run_delay": "10m"})
    assert (new.main_cf, new.warnings, new.not_modelled) == (
        scen.main_cf, scen.warnings, scen.not_modelled)
    assert new.upstream.maximal_queue_lifetime == 2 * 86400


def test_pasted_error_limits_and_connection_cache_are_modelled():
    """The relay's smtpd error limits and the upstream's connection cache, pasted."""
    from sim.scenario import Scenario
    scen = Scenario.from_dict({
        "relay": {"main_cf": "smtpd_soft_error_limit = 10\nsmtpd_error_sleep_time = 2\n"},
        "upstream": {"main_cf": "smtp_connection_cache_on_demand = no\n"
                                "smtp_connection_reuse_time_limit = 10m\n"}})
    assert (scen.relay.smtpd_soft_error_limit, scen.relay.smtpd_error_sleep_time) == (10, 2.0)
    assert scen.upstream.smtp_connection_cache_on_demand is False
    assert scen.upstream.smtp_connection_reuse_time_limit == 600.0
    with pytest.raises(ScenarioError, match="smtpd_soft_error_limit"):
        Scenario.from_dict({"relay": {"main_cf": "smtpd_soft_error_limit = 0\n"}})
