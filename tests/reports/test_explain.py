"""sim.reports.explain: effective parameters, retry timelines against mta-semantics.md 2.4
and 5, and the Little's-law backlog against its closed form and a simulated steady state."""

import dataclasses

import numpy as np
import pytest

from sim import Scenario, simulate
from sim.reports.explain import (
    format_value,
    lifetime,
    littles_law,
    littles_law_backlog,
    main_cf,
    main_cf_lines,
    parameters,
    residence_time,
    retry_timeline,
    steady_interval,
)
from sim.scenario import Sender, Upstream

DAY = 86400


def attempt_times(up):
    tl = retry_timeline(up)
    assert [n for n, _ in tl.attempts] == list(range(1, len(tl.attempts) + 1))
    return [t for _, t in tl.attempts], tl.expiry_s


def test_postfix_defaults_match_the_derived_table():
    """mta-semantics.md 2.4, 'arrival just after a scan': 0, 299, 599, 1199, 2399, 4799 s,
    then every 4200 s; returned at the first attempt at or past 5 d, after 107 to 108."""
    times, expiry = attempt_times(Upstream())
    assert times[:6] == [0, 299, 599, 1199, 2399, 4799]
    assert set(np.diff(times[5:])) == {4200}
    assert expiry == times[-1] and times[-2] < 5 * DAY <= times[-1]
    assert len(times) in (107, 108)


def test_postfix_pre_2_4_defaults_settle_at_4000_s():
    up = Upstream(queue_run_delay=1000, minimal_backoff_time=1000)
    times, _ = attempt_times(up)
    assert times[:5] == [0, 999, 1999, 3999, 7999]
    assert set(np.diff(times[4:])) == {4000}


@pytest.mark.parametrize("mta, first, gap, returned", [
    ("exchange", [0, 900, 1800], 900, 2 * DAY),           # 15 min until 2 d, exactly
    ("exchange-online", [0, 3600, 7200], 3600, DAY),
    ("sendmail", [0, 1799, 3599], 1800, 5 * DAY + 1799),  # every -q30m run
    ("qmail", [0, 400, 1600, 3600], None, None),          # (20 k)^2
], ids=["exchange", "exchange-online", "sendmail", "qmail"])
def test_other_schedules(mta, first, gap, returned):
    times, expiry = attempt_times(dataclasses.replace(Upstream(), mta=mta))
    assert times[:len(first)] == first
    if gap:
        assert set(np.diff(times[1:])) == {gap}
    if returned:
        assert expiry == returned
    if mta == "qmail":
        assert all(t == (20 * k) ** 2 for k, t in enumerate(times))
        assert times[-2] <= 7 * DAY < times[-1]


def test_lifetime_zero_means_one_attempt():
    times, expiry = attempt_times(Upstream(maximal_queue_lifetime=0))
    assert times == [0] and expiry == 0


@pytest.mark.parametrize("mta, expected", [("postfix", 5 * DAY), ("exchange", 2 * DAY),
                                           ("qmail", 7 * DAY + 1), ("exim", 4 * DAY + 1)],
                         ids=["postfix", "exchange", "qmail-strictly-older", "exim-cutoff"])
def test_lifetime_is_the_first_age_that_gives_up(mta, expected):
    assert lifetime(dataclasses.replace(Upstream(), mta=mta)) == expected


def test_steady_interval():
    assert steady_interval(retry_timeline(Upstream())) == 4200
    assert steady_interval(retry_timeline(Upstream(maximal_queue_lifetime=0))) == 0


def scenario(code=450, **sender):
    return Scenario.from_dict({
        "senders": [{"rate": "2000/d", "unknown_recipient_fraction": 0.3,
                     "recipients_per_message": 2, **sender}],
        "relay": {"unknown_local_recipient_reject_code": code}})


def test_littles_law_closed_form():
    # lambda = 2000/d x (1 - 0.7^2) = 1020/d; W = the exact residence time of the schedule
    b = littles_law(scenario())
    assert b.rate_per_s * DAY == pytest.approx(1020)
    assert littles_law_backlog(scenario()) == pytest.approx(b.rate_per_s * b.residence_s)
    assert b.senders == (0,) and b.reason == ""


def test_residence_time_of_the_default_postfix_schedule():
    up = Scenario.from_dict({}).upstream
    # expiry at the first attempt at or after 5 d; arrivals spread over one 300 s scan interval
    # put every lag in a 300 s window (not 0..4200 s: backoff counts from each arrival)
    lag = residence_time(up) - 5 * DAY
    assert 900 <= lag <= 1201
    assert littles_law(scenario()).lag_s == pytest.approx(lag)


@pytest.mark.parametrize("make, why", [
    (lambda: scenario(code=550), "bounce"),
    (lambda: scenario(stop="3d"), "constant inflow"),
    (lambda: scenario(arrivals=["0s", "10s"]), "constant inflow"),
], ids=["550-bounces", "sender-stops", "explicit-arrivals"])
def test_littles_law_none_when_no_steady_backlog(make, why):
    b = littles_law(make())
    assert b.messages is None and why in b.reason


def test_littles_law_soft_bounce_and_no_users():
    soft = Scenario.from_dict({"relay": {"soft_bounce": True, "local_users": 0}})
    # 550 with soft_bounce defers; no users: every recipient is unknown
    assert littles_law(soft).rate_per_s == pytest.approx(10000 / DAY)


def test_littles_law_with_the_upstreams_soft_bounce():
    """The relay's 550 bounces: no backlog; the upstream's soft_bounce defers it: the same
    backlog as a 450 relay."""
    hard = littles_law(Scenario.from_dict({}))
    assert hard.messages is None and "soft_bounce = no on both hosts" in hard.reason
    soft = littles_law(Scenario.from_dict({"upstream": {"soft_bounce": True}}))
    tempfail = littles_law(Scenario.from_dict(
        {"relay": {"unknown_local_recipient_reject_code": 450}}))
    assert soft.messages == pytest.approx(tempfail.messages) and soft.messages > 0


def test_upstream_soft_bounce_from_main_cf_is_listed_as_modelled():
    scen = Scenario.from_dict({"upstream": {"main_cf": "soft_bounce = yes\n"}})
    (p,) = main_cf(scen)
    assert (p.host, p.source, p.status, p.effect) == (
        "upstream", "upstream.main_cf line 1", "modelled", "upstream.soft_bounce = yes")
    shown = {x.name: x for x in parameters(scen)}
    assert (shown["upstream.soft_bounce"].value, shown["upstream.soft_bounce"].origin) == (
        "yes", "main_cf")


def test_littles_law_against_a_simulated_steady_state():
    """A one-day lifetime reaches steady state after a day; the queued messages over the third
    day should average lambda x W within sampling noise (1.2 % off with this seed). Samples
    fall on queue-run instants, when the run's batch is in the active queue: count both."""
    scen = Scenario.from_dict({
        "simulation": {"duration": "3d", "sample_interval": "10m"},
        "senders": [{"rate": "3000/d", "unknown_recipient_fraction": 0.3}],
        "upstream": {"maximal_queue_lifetime": "1d"},
        "relay": {"unknown_local_recipient_reject_code": 450}})
    res = simulate(scen)
    ts = res.timeseries
    observed = (ts["deferred"] + ts["active"])[ts["t_s"] >= 2 * DAY].mean()
    assert observed == pytest.approx(littles_law_backlog(scen), rel=0.05)


def test_parameters_show_set_or_changed_values_with_origin():
    base = Scenario.from_dict({"upstream": {"maximal_queue_lifetime": "10d"},
                               "senders": [{"rate": "5000/d"}]}, origin="file")
    scen = base.with_overrides({"relay.unknown_local_recipient_reject_code": "450",
                                "senders.0.profile": "daily"})
    shown = {p.name: (p.value, p.origin) for p in parameters(scen)}
    assert shown == {"upstream.maximal_queue_lifetime": ("10d", "file"),
                     "senders.0.rate": ("5000/d", "file"),
                     "senders.0.profile": ("daily", "--set"),
                     "relay.unknown_local_recipient_reject_code": ("450", "--set")}
    everything = {p.name: p for p in parameters(scen, all_=True)}
    assert everything["upstream.queue_run_delay"].value == "5m"
    assert everything["upstream.queue_run_delay"].origin == "default"
    assert everything["relay.soft_bounce"].value == "no"
    assert len(everything) > len(shown)


@pytest.mark.parametrize("section, name, value, text", [
    (Upstream, "maximal_queue_lifetime", 28 * DAY, "28d"),
    (Upstream, "queue_run_delay", 1000.0, "1000s"),
    (Upstream, "maximal_backoff_time", 4200.0, "70m"),
    (Sender, "stop", float("inf"), "never"),
    (Sender, "rate", 2500 / DAY, "2500/d"),
    (Sender, "message_size", 1.5e6, "1.5M"),
], ids=["days-not-weeks", "seconds", "minutes", "never", "rate-per-day", "size"])
def test_format_value(section, name, value, text):
    f = next(f for f in dataclasses.fields(section) if f.name == name)
    assert format_value(f, value) == text


def test_parameters_show_bounce_queue_lifetime_lowered_to_the_lifetime():
    """qmgr.c: 'bounce_queue_lifetime is larger than maximal_queue_lifetime - adjusting'."""
    scen = Scenario.from_dict({"upstream": {"maximal_queue_lifetime": "1d",
                                            "bounce_queue_lifetime": "3d"}}, origin="file")
    shown = {p.name: p for p in parameters(scen)}
    assert shown["upstream.bounce_queue_lifetime"].value == "1d"
    assert shown["upstream.bounce_queue_lifetime"].origin == (
        "file; set 3d, lowered to maximal_queue_lifetime as Postfix's qmgr does")
    kept = Scenario.from_dict({"upstream": {"bounce_queue_lifetime": "1d"}})
    assert {p.name: p.value for p in parameters(kept)}["upstream.bounce_queue_lifetime"] == "1d"


UPSTREAM_CF = """\
# pasted from postconf -n on the queue host
relay_domains = example.org
relay_recipient_maps = hash:/etc/postfix/relay_recipients
relay_destination_concurrency_limit = 5
default_destination_concurrency_limit = 50
maximal_queue_lifetime = 1d
bounce_queue_lifetime = 3d
unknown_local_recipient_reject_code = 450
smtpd_banner = $myhostname ESMTP
mua_sender_restrictions = permit_sasl_authenticated, reject
"""


def test_main_cf_lists_every_pasted_parameter_with_what_it_does():
    scen = Scenario.from_dict({"upstream": {"main_cf": UPSTREAM_CF},
                               "relay": {"main_cf": "soft_bounce = yes\n"}})
    rows = {(p.host, p.name): p for p in main_cf(scen)}
    assert list(rows) == [("upstream", n) for n in (
        "relay_domains", "relay_recipient_maps", "relay_destination_concurrency_limit",
        "default_destination_concurrency_limit", "maximal_queue_lifetime",
        "bounce_queue_lifetime", "unknown_local_recipient_reject_code", "smtpd_banner",
        "mua_sender_restrictions")] + [("relay", "soft_bounce")]
    summary = {name: (p.source, p.status, p.effect) for (_, name), p in rows.items()}
    assert summary == {
        "relay_domains": ("upstream.main_cf line 2", "modelled", ""),
        "relay_recipient_maps": ("upstream.main_cf line 3", "modelled",
                                 "upstream.recipient_validation = relay_recipient_maps"),
        "relay_destination_concurrency_limit": (
            "upstream.main_cf line 4", "modelled",
            "upstream.default_destination_concurrency_limit = 5"),
        "default_destination_concurrency_limit": (
            "upstream.main_cf line 5", "overridden",
            "upstream.default_destination_concurrency_limit = 5"),
        "maximal_queue_lifetime": ("upstream.main_cf line 6", "modelled",
                                   "upstream.maximal_queue_lifetime = 1d"),
        "bounce_queue_lifetime": ("upstream.main_cf line 7", "modelled",
                                  "upstream.bounce_queue_lifetime = 1d"),
        "unknown_local_recipient_reject_code": ("upstream.main_cf line 8", "other host", ""),
        "smtpd_banner": ("upstream.main_cf line 9", "not modelled", ""),
        "mua_sender_restrictions": ("upstream.main_cf line 10", "unused parameter", ""),
        "soft_bounce": ("relay.main_cf line 1", "modelled", "relay.soft_bounce = yes"),
    }
    assert rows["upstream", "bounce_queue_lifetime"].note == (
        "set 3d, lowered to maximal_queue_lifetime as Postfix's qmgr does")
    assert "relay transport" in rows["upstream", "relay_destination_concurrency_limit"].note
    assert "[relay]" in rows["upstream", "unknown_local_recipient_reject_code"].note
    assert rows["upstream", "smtpd_banner"].value == "vm.localdomain ESMTP"


def test_main_cf_is_empty_without_a_paste():
    assert main_cf(Scenario.from_dict({})) == [] == main_cf_lines(Scenario.from_dict({}))


def test_main_cf_lines_print_one_line_per_parameter():
    scen = Scenario.from_dict({"upstream": {"main_cf": UPSTREAM_CF}})
    lines = main_cf_lines(scen)
    assert len(lines) == 9
    assert lines[5] == ("upstream.main_cf line 7: bounce_queue_lifetime = 3d  # modelled: "
                        "upstream.bounce_queue_lifetime = 1d; set 3d, lowered to "
                        "maximal_queue_lifetime as Postfix's qmgr does")
    assert lines[8] == ("upstream.main_cf line 10: mua_sender_restrictions = "
                        "permit_sasl_authenticated, reject  # unused parameter: Postfix warns "
                        "too (unless master.cf uses it)")
