"""Senders: Poisson arrivals per hour, the recipients of each message, and how chunks are handed
over to the upstream."""

import math

import numpy as np
import pytest
import simpy

from sim import Scenario
from sim.model.sender import (
    NULL,
    REAL,
    arrival_times,
    chunk_length,
    new_messages,
    rate_multiplier,
    sender_process,
)


def sender(**kw):
    return Scenario.from_dict({"senders": [kw]}).senders[0]


@pytest.mark.parametrize("rate, hours", [("6600/d", 24), ("121000/d", 6), ("1000000/d", 1),
                                         ("0/d", 24)])
def test_chunks_are_whole_hours_holding_about_chunk_messages(rate, hours):
    assert chunk_length(sender(rate=rate)) == hours * 3600


def test_hourly_counts_follow_the_profile_whatever_the_chunk():
    """Each hour's count is Poisson with mean rate x multiplier x 3600 s, whether the hours come
    in one chunk or in pieces (a chunk edge inside an hour splits it)."""
    s = sender(rate="24000/d", profile="daily")
    rng = np.random.default_rng(3)
    days = 60
    whole = np.concatenate([arrival_times(s, d * 86400.0, (d + 1) * 86400.0, rng)
                            for d in range(days)])
    edges = np.arange(0, days * 86400 + 1, 5400.0)  # pieces of an hour and a half
    pieces = np.concatenate([arrival_times(s, a, b, rng)
                             for a, b in zip(edges[:-1], edges[1:], strict=True)])
    want = 24000 / 86400 * rate_multiplier("daily", np.arange(24) * 3600.0) * 3600
    for times in (whole, pieces):
        assert np.all(np.diff(times) >= 0) and times.min() >= 0 and times.max() < days * 86400
        counts = np.bincount((times // 3600).astype(int) % 24, minlength=24) / days
        z = (counts - want) / np.sqrt(want / days)
        assert np.abs(z).max() < 4.5, z


def test_recipients_come_from_the_users_that_existed_at_each_arrival():
    s = sender(rate="1000/d", unknown_recipient_fraction=0.2, recipients_per_message=2,
               null_sender_fraction=0.5)
    rng = np.random.default_rng(5)
    times = np.sort(rng.random(4000) * 3600)
    users = np.where(times < 1800, 3, 50)  # a change adds users in the middle of the chunk
    m = new_messages(s, 0, times, users, 3, rng)
    rcpt = m["rcpt"]
    assert (rcpt[:, 2] == -2).all() and (rcpt[:, :2] >= -1).all()
    known = rcpt[:, :2] >= 0
    assert (rcpt[:, :2] < users[:, None])[known].all()
    assert rcpt[times >= 1800, :2].max() >= 40  # the new users do get mail
    assert abs((~known).mean() - 0.2) < 0.03
    assert set(np.unique(m["kind"])) == {REAL, NULL}
    assert (m["size"] >= 1).all() and (m["size"] == np.rint(m["size"])).all()
    assert (m["create"] == np.floor(times)).all()
    none = new_messages(s, 0, times[:10], np.zeros(10, dtype=int), 2, rng)
    assert (none["rcpt"][:, :2] == -1).all()  # no local users yet: every recipient is unknown


class Upstream:
    def __init__(self, env):
        self.env, self.got, self.heard = env, [], []

    def receive(self, msgs):
        self.got.append((self.env.now, msgs["arrival"]))

    def heard_until(self, source, t):
        self.heard.append((self.env.now, t))


@pytest.mark.parametrize("lead", [0.0, 7200.0])
def test_chunks_are_handed_over_a_chunk_ahead_and_the_end_is_said(lead):
    s = sender(rate="2000/d")
    env = simpy.Environment()
    up = Upstream(env)
    duration = 3.5 * 86400
    env.process(sender_process(env, s, 0, up, lambda t: np.full(np.size(t), 10), 1,
                               np.random.default_rng(1), np.random.default_rng(2), duration,
                               lead))
    env.run()
    step = chunk_length(s)
    assert [t for _, t in up.heard] == [86400, 172800, 259200, math.inf]
    for k, ((now, until), (_, times)) in enumerate(zip(up.heard, up.got, strict=True)):
        # chunk k starts at k * step: handed a chunk and the lead before that, and no earlier
        assert now == max(0.0, (k - 1) * step - lead)
        assert k * step <= times.min() and times.max() < until
    assert sum(t.size for _, t in up.got) == pytest.approx(2000 * 3.5, rel=0.1)
