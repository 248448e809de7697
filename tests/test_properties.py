"""Invariants over random scenarios (hypothesis), and random mutations of valid files.

Valid scenarios are drawn from the whole scenario reference: every MTA schedule, one to three
senders (rates or explicit arrivals, profiles, several recipients, forged and null senders),
scheduled and random outages, greylisting, recipient validation at the upstream, and
scheduled changes. Each run keeps conservation at every sample (received = delivered +
bounced + expired + queued recipients; queued = active + deferred recipients), cumulative
series never fall, the same seed gives the same bytes, and answering 550 instead of 450
never leaves more deferred messages (without outages, where the answer code's order of
service-time draws could matter).
Mutations of a valid file (wrong types, huge, negative and non-finite numbers, unknown keys,
broken units, control characters) through `relaysim run` end in exit status 2 with one line,
or pass every check, and write nothing either way (simulate is replaced by a stop: the test is
about the checks). derandomize=True: the same examples on every run, so a failure is
reproducible and the suite is not flaky; durations are a day or less to keep it quick.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from sim import cli  # noqa: E402
from sim.model.simulate import simulate  # noqa: E402
from sim.scenario import Scenario  # noqa: E402

CUMULATIVE = ("received", "delivered", "bounced", "expired", "attempts", "dsn", "backscatter")
MTAS = ("postfix", "exim", "sendmail", "qmail", "exchange", "exchange-online", "list")
PROPERTY = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def scenarios(draw, outages=True):
    hours = draw(st.sampled_from([2, 6, 12, 24]))
    sim = {"duration": f"{hours}h", "seed": draw(st.integers(0, 10**6)),
           "sample_interval": draw(st.sampled_from(["5m", "10m", "30m", "1h"]))}
    senders = []
    for i in range(draw(st.integers(1, 3))):
        s = {"name": f"s{i}",
             "unknown_recipient_fraction": draw(st.sampled_from([0.0, 0.3, 0.7, 1.0])),
             "recipients_per_message": draw(st.integers(1, 3)),
             "forged_sender_fraction": draw(st.sampled_from([0.0, 0.5])),
             "null_sender_fraction": draw(st.sampled_from([0.0, 0.2]))}
        if draw(st.booleans()):
            s["rate"] = f"{draw(st.integers(50, 4000))}/d"
            s["profile"] = draw(st.sampled_from(["flat", "daily", "weekly"]))
        else:
            s["arrivals"] = [f"{t}s" for t in draw(st.lists(st.integers(0, hours * 3600),
                                                              min_size=1, max_size=30))]
        senders.append(s)
    mta = draw(st.sampled_from(MTAS))
    up = {"mta": mta, "maximal_queue_lifetime": draw(st.sampled_from(["2h", "6h", "1d"])),
          "bounce_queue_lifetime": "2h",
          "default_destination_concurrency_limit": draw(st.integers(1, 20)),
          "smtp_transaction_time": draw(st.sampled_from(["0s", "0.2s", "2s"])),
          "recipient_validation": draw(st.sampled_from(["none", "none",
                                                        "relay_recipient_maps", "verify"]))}
    if mta == "postfix":
        up["queue_run_delay"] = draw(st.sampled_from(["60s", "300s", "900s"]))
        up["minimal_backoff_time"] = up["queue_run_delay"]
        up["maximal_backoff_time"] = "4000s"
        up["soft_bounce"] = draw(st.booleans())
    elif mta == "list":
        up["retry_list"] = draw(st.lists(st.sampled_from(["2m", "5m", "30m"]), min_size=1,
                                         max_size=4))
        up["lifetime"] = up["maximal_queue_lifetime"]
    relay = {"local_users": draw(st.integers(1, 100)),
             "unknown_local_recipient_reject_code": draw(st.sampled_from([450, 550])),
             "soft_bounce": draw(st.booleans())}
    if outages and draw(st.booleans()):
        relay["outages"] = [{"start": f"{draw(st.integers(0, hours * 60))}m",
                             "duration": f"{draw(st.integers(1, 120))}m"}
                            for _ in range(draw(st.integers(1, 2)))]
    if outages and draw(st.booleans()):
        relay["outage_mtbf"], relay["outage_mttr"] = "6h", "20m"
    if draw(st.booleans()):
        relay["greylisting"] = draw(st.sampled_from([True, {"delay": "10m",
                                                            "auto_whitelist_clients": 0}]))
    changes = [{"at": f"{draw(st.integers(1, hours * 60))}m",
                "relay": {"unknown_local_recipient_reject_code": draw(st.sampled_from([450,
                                                                                      550]))}}
               for _ in range(draw(st.integers(0, 2)))]
    return {"simulation": sim, "senders": senders, "upstream": up, "relay": relay,
            "changes": changes}


@PROPERTY
@given(scenarios())
def test_random_scenarios_keep_every_invariant(d):
    scen = Scenario.from_dict(d)
    a = simulate(scen)
    ts = a.timeseries
    assert np.array_equal(ts["received"], ts["delivered"] + ts["bounced"] + ts["expired"]
                          + ts["queued_recipients"])
    assert np.array_equal(ts["queued_recipients"],
                          ts["active_recipients"] + ts["deferred_recipients"])
    for k in CUMULATIVE:
        assert (np.diff(ts[k]) >= 0).all(), k
    r = a.summary["recipients"]
    assert r["received"] == r["delivered"] + r["bounced"] + r["expired"] + r["queued_at_end"]
    b = simulate(scen)
    assert a.timeseries_csv() == b.timeseries_csv()
    assert json.dumps(a.summary, sort_keys=True) == json.dumps(b.summary, sort_keys=True)


# Found by the property test above (qshape buckets summed against the deferred queue), in
# sim/model/ which is being rewritten: reported, not fixed here. qmail's schedule, the relay down
# for the first 30 minutes: at t = 2100 s one message is deferred and no qshape bucket holds it.
QSHAPE_MISS = {"simulation": {"duration": "2h", "seed": 0, "sample_interval": "5m"},
               "senders": [{"rate": "50/d", "unknown_recipient_fraction": 0.0}],
               "upstream": {"mta": "qmail", "maximal_queue_lifetime": "2h",
                            "default_destination_concurrency_limit": 1,
                            "smtp_transaction_time": "0s"},
               "relay": {"local_users": 1, "unknown_local_recipient_reject_code": 450,
                         "outages": [{"start": "0m", "duration": "30m"}]}}


def test_qshape_buckets_add_up_after_an_outage_under_qmail():
    """Found by the property test: without a runner grid a message counted in qshape until
    the tick before its wake-up time but in the deferred queue until the wake-up time."""
    a = simulate(Scenario.from_dict(QSHAPE_MISS))
    assert np.array_equal(a.qshape.sum(axis=1), a.timeseries["deferred"])


@PROPERTY
@given(scenarios(outages=False))
def test_550_never_leaves_more_backlog_than_450(d):
    d = {**d, "changes": []}
    runs = {}
    for code in (450, 550):
        d["relay"] = {**d["relay"], "unknown_local_recipient_reject_code": code}
        runs[code] = simulate(Scenario.from_dict(d)).timeseries["deferred"]
    assert (runs[550] <= runs[450]).all()


VALID = """\
[simulation]
duration = "6h"
sample_interval = "30m"
seed = 3

[[senders]]
rate = "2000/d"
unknown_recipient_fraction = 0.3

[upstream]
maximal_queue_lifetime = "5d"
queue_run_delay = "300s"

[relay]
unknown_local_recipient_reject_code = 450
outages = [{ start = "1h", duration = "30m" }]
greylisting = { delay = "5m" }

[[changes]]
at = "2h"
relay.unknown_local_recipient_reject_code = 550
"""
VALUES = [line.split(" = ", 1)[1] for line in VALID.splitlines() if " = " in line]
BAD_VALUES = ["-1", "1e400", "nan", "inf", "true", "[]", "{}", '"x"', '"5y"', '"-5m"',
              "1" + "0" * 40, '"' + "9" * 400 + '"', '"\\u001b[2J"', '"a\\u0000b"', '""',
              '"1/y"', "0", "0.5", '"../../x"', "[[1]]", '{ a = 1 }', '"1e12"', "1e12"]


class _Stop(Exception):
    pass


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutations_end_in_one_line_or_pass_and_never_write(tmp_path, monkeypatch, capsys,
                                                          data):
    lines = VALID.splitlines()
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.sampled_from([j for j, x in enumerate(lines) if " = " in x]))
        key, value = lines[i].split(" = ", 1)
        how = data.draw(st.sampled_from(["value", "key", "unit", "drop", "swap"]))
        if how == "value":
            value = data.draw(st.sampled_from(BAD_VALUES))
        elif how == "key":
            key = key + data.draw(st.sampled_from(["x", "_", ".y", "s"]))
        elif how == "unit":
            value = value.replace('"', "").rstrip("smhdw") + data.draw(st.sampled_from(
                ["y", "ms", "/y", "hh", ""]))
        elif how == "swap":
            value = data.draw(st.sampled_from(VALUES))
        lines[i] = "" if how == "drop" else f"{key} = {value}"
    text = "\n".join(lines) + "\n"
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    (folder / "m.toml").write_text(text)

    def stop(*a, **k):
        raise _Stop

    monkeypatch.setattr("sim.model.simulate.simulate", stop)
    monkeypatch.chdir(folder)
    try:
        status = cli.main(["run", "m.toml", "--quiet"])
    except _Stop:
        status = None  # every check passed: it would simulate now
    err = capsys.readouterr().err
    if status is not None:
        assert status == 2, text
        assert len(err.splitlines()) == 1 and err.startswith("relaysim: error: "), err
    assert sorted(p.name for p in folder.iterdir()) == ["m.toml"], text


def test_qshape_buckets_add_up_when_the_active_queue_is_full():
    """Scan batches larger than qmgr_message_active_limit: the rest stay in the deferred
    queue, in qshape's buckets too, until the active queue has room."""
    a = simulate(Scenario.from_dict({
        "simulation": {"duration": "1d", "sample_interval": "1m"},
        "senders": [{"rate": "20000/d", "unknown_recipient_fraction": 0.5}],
        "upstream": {"qmgr_message_active_limit": 30,
                     "default_destination_concurrency_limit": 2,
                     "smtp_transaction_time": "1s"},
        "relay": {"unknown_local_recipient_reject_code": 450}}))
    assert a.timeseries["deferred"].max() > 100
    assert np.array_equal(a.qshape.sum(axis=1), a.timeseries["deferred"])
