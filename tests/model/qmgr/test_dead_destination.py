"""Postfix's dead-destination rule through the whole engine (sim.model.qmgr.site,
sim.model.qmgr.active): the hand-worked outage cases of the naive model's tests, attempt by
attempt, and the same rule in both models on a random one."""

import pytest

from sim import Scenario, simulate
from tests.model.test_naive import OUTAGES, scenario
from tests.naive import naive_simulate


@pytest.mark.parametrize("outages, arrivals, duration, upstream, expected", OUTAGES.values(),
                         ids=OUTAGES.keys())
def test_the_hand_worked_outages(outages, arrivals, duration, upstream, expected):
    res = simulate(scenario(arrivals, duration=duration, upstream=upstream,
                            relay={"outages": list(outages)}), record_attempts=True)
    a = res.attempts
    got = sorted(zip(a["message_id"].tolist(), a["t_s"].tolist(), a["outcome"].tolist(),
                     strict=True))
    assert got == expected


def test_both_models_throttle_the_same_attempts():
    """Zero-time sessions, a scan grid of 60 s, arrivals every 7 s and the relay down for 230 s
    every 10 minutes: lone new mail is refused without killing the destination, the scans
    during an outage take batches of refusals (dead at the fourth, for 60 s, past the
    outage's end). Every attempt agrees."""
    outages = [{"start": f"{600 * k + 100}s", "duration": "230s"} for k in range(6)]
    scen = Scenario.from_dict({
        "simulation": {"duration": "4000s", "sample_interval": "100s"},
        "senders": [{"arrivals": [f"{7 * k + 1}s" for k in range(500)],
                     "unknown_recipient_fraction": 0.0}],
        "upstream": {"smtp_transaction_time": "0s", "queue_run_delay": "60s",
                     "minimal_backoff_time": "60s", "maximal_backoff_time": "240s"},
        "relay": {"outages": outages}})
    res = simulate(scen, record_attempts=True)
    a = res.attempts
    fast = sorted(zip(a["message_id"].tolist(), a["t_s"].tolist(), a["outcome"].tolist(),
                      strict=True))
    naive = sorted((m, s, o) for m, _, s, o in naive_simulate(scen, record_attempts=True)[
        "attempts"])
    assert fast == naive
    deferred_while_up = [m for m, t, o in fast if o == "deferred" and not any(
        600 * k + 100 <= t < 600 * k + 330 for k in range(6))]
    assert deferred_while_up  # the destination was dead after some outages' ends
