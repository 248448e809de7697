"""sim.model.qmgr.rules: each per-message rule against hand-worked cases."""

import numpy as np
import pytest

from sim.model.qmgr import rules
from sim.model.relay import BOUNCED, DEFERRED, SENT
from sim.model.sender import FORGED, NULL


@pytest.mark.parametrize("wake, pending, R, slack, grid, key", [
    (1201, 1200, 300, 1, True, 1200),   # due by the pending tick (Postfix: mtime <= T + 1)
    (1502, 1200, 300, 1, True, 1800),   # the first scan with wake <= T + 1
    (1501, 1200, 300, 1, True, 1500),
    (1800, 1200, 1800, 0, True, 1800),  # Exim: no slack
    (1801, 1200, 1800, 0, True, 3600),
    (1000, 900, 60, 0, False, 960),     # no grid: the tick before the wake-up time
    (961, 900, 60, 0, False, 960),
    (960, 900, 60, 0, False, 900),
    (850, 900, 60, 0, False, 900),      # never before the pending tick
], ids=["pending", "next-scan", "scan-with-slack", "exim-on-grid", "exim-next", "no-grid",
        "no-grid-just-after", "no-grid-on-tick", "no-grid-late"])
def test_tick_key(wake, pending, R, slack, grid, key):
    assert rules.tick_key(wake, pending, R, slack, grid) == key


def test_snapshot_is_the_configuration_in_force():
    times = np.array([0.0, 100.0, 250.0])
    assert [rules.snapshot(times, t) for t in (-5.0, 0.0, 99.9, 100.0, 300.0)] == [0, 0, 0, 1, 2]
    assert rules.snapshot(np.array([0.0]), 1e9) == 0


@pytest.mark.parametrize("first, ok, start, whitelisted, tried, want", [
    (-1.0, False, 100.0, np.inf, True, (100.0, False, False, True)),   # new triplet: held
    (100.0, False, 399.0, np.inf, True, (100.0, False, False, True)),  # 299 s: still held
    (100.0, False, 400.0, np.inf, True, (100.0, True, True, False)),   # 300 s: passes
    (100.0, False, 100.0 + 2 * 86400 + 1, np.inf, True,                # retry window over
     (100.0 + 2 * 86400 + 1, False, False, True)),
    (100.0, True, 5e6, np.inf, True, (100.0, True, False, False)),     # passed before
    (-1.0, False, 900.0, 800.0, True, (900.0, True, False, False)),    # whitelisted client
    (-1.0, False, 100.0, np.inf, False, (100.0, False, False, False)),  # no session
], ids=["new", "just-short", "delay-passed", "retry-window", "passed-before", "whitelisted",
        "not-tried"])
def test_greylist(first, ok, start, whitelisted, tried, want):
    """postgrey defaults: delay 300 s, retry window 2 d."""
    assert rules.greylist(first, ok, start, 300.0, 2 * 86400.0, whitelisted, tried) == want


def test_hard_error_limit():
    assert not rules.hard_error_hit(19, 20) and rules.hard_error_hit(20, 20)
    assert not rules.hard_error_hit(100, 0)  # no limit


@pytest.mark.parametrize("out, on, want", [
    (BOUNCED, True, DEFERRED),    # the relay's 5xx is kept queued (status=SOFTBOUNCE)
    (BOUNCED, False, BOUNCED),
    (DEFERRED, True, DEFERRED),   # a 4xx stays a deferral
    (SENT, True, SENT),
    (-1, True, -1),               # no recipient pending
], ids=["5xx-deferred", "off-bounces", "4xx-unchanged", "sent-unchanged", "none-pending"])
def test_soft_bounce(out, on, want):
    assert rules.soft_bounce(out, on) == want


@pytest.mark.parametrize("kind, bounced, expired, n", [
    (0, 1, False, 1), (0, 0, True, 1), (0, 2, True, 2), (FORGED, 1, False, 1),
    (NULL, 1, True, 0), (0, 0, False, 0)],
    ids=["bounce", "expiry", "both", "forged", "null-sender", "none"])
def test_dsn_count(kind, bounced, expired, n):
    assert rules.dsn_count(kind, bounced, expired) == n


@pytest.mark.parametrize("now, warned, kind, dwt, want", [
    (3 * 3600 - 1, 0, 0, 3 * 3600, True),   # at create + delay_warning_time - 1 (qmgr_active.c)
    (3 * 3600 - 2, 0, 0, 3 * 3600, False),
    (9 * 3600, 1, 0, 3 * 3600, False),      # once
    (9 * 3600, 0, NULL, 3 * 3600, False),   # never for <>
    (9 * 3600, 0, 0, 0, False),             # off
], ids=["due", "a-second-early", "once", "null-sender", "off"])
def test_delay_warning(now, warned, kind, dwt, want):
    assert rules.delay_warning(now, 0, kind, warned, dwt) == want


@pytest.mark.parametrize("out, user, vetoed, suspended, held, hit, lost, code", [
    (SENT, 3, False, False, False, False, False, 250),
    (DEFERRED, -1, False, False, False, False, False, 450),
    (BOUNCED, -1, False, False, False, False, False, 550),
    (DEFERRED, 3, True, False, False, False, False, 0),
    (DEFERRED, 3, True, True, False, False, False, rules.SUSPENDED),
    (DEFERRED, 3, False, False, True, False, False, 450),
    (DEFERRED, 3, False, False, False, True, False, 421),
    (DEFERRED, 3, False, False, False, False, True, rules.LOST)],
    ids=["sent", "unknown-450", "unknown-550", "refused", "dead-suspended", "greylisted",
         "hard-error-limit", "session-lost"])
def test_reply_code(out, user, vetoed, suspended, held, hit, lost, code):
    reject = 550 if out == BOUNCED else 450
    assert rules.reply_code(out, user, 10, reject, vetoed, suspended, held, hit, lost) == code


@pytest.mark.parametrize("T, last, first, start", [
    (20.0, 19.868, np.inf, 20.868),   # the validation's scan at 20 s: message 10's end
    (20.0, 19.868, 20.3, 20.3),       # new mail at 20.3 s wakes the loop first
    (20.0, 19.868, 21.5, 20.868),     # an event after the phase changes nothing
    (20.0, 10.0, np.inf, 20.0),       # a wake-up on the second
    (20.0, -np.inf, np.inf, 20.0),    # nothing has woken the loop yet
], ids=["phase", "woken-earlier", "later-event", "on-second", "no-event"])
def test_scan_start(T, last, first, start):
    assert rules.scan_start(T, last, first) == pytest.approx(start, abs=1e-9)


def test_reply_code_of_a_soft_bounced_recipient_is_the_relays_550():
    """The upstream's soft_bounce defers the recipient; the relay still said 550 (logged as
    `said: 550 5.1.1`, status=SOFTBOUNCE)."""
    out = rules.soft_bounce(BOUNCED, True)
    assert rules.reply_code(out, -1, 10, 550, False, False, False, False, False) == 550


def test_file_place_is_a_fixed_hash_of_the_queue_id():
    p = [rules.file_place(q, 7) for q in range(2000)]
    assert all(0.0 <= x < 1.0 for x in p)
    assert p == [rules.file_place(q, 7) for q in range(2000)]  # fixed per file
    assert p != [rules.file_place(q, 8) for q in range(2000)]  # another filesystem's key
    assert len(set(p)) == 2000
    # unrelated to arrival: about half of the neighbouring pairs are out of queue-id order
    assert 900 < sum(a > b for a, b in zip(p, p[1:], strict=False)) < 1100


@pytest.mark.parametrize("place", [
    [], [0.5], [0.3, 0.1, 0.2], [0.5, 0.5, 0.1, 0.5],  # ties keep the given order
    [0.0, 0.999999, 0.5, 0.0], [0.01] * 7 + [0.0],      # a crowded bucket
])
def test_scan_order_ascending_ties_in_given_order(place):
    place = np.array(place, dtype=float)
    assert rules.scan_order(place).tolist() == np.argsort(place, kind="stable").tolist()


def test_scan_order_of_hashed_places():
    place = np.array([rules.file_place(q, 3) for q in range(5000)])
    assert (rules.scan_order(place) == np.argsort(place, kind="stable")).all()
