"""sim.model.qmgr.site: the destination's throttle under each MTA's site policy."""

import numpy as np

from sim.model import schedules
from sim.model.qmgr import site

DOWN = (np.array([100.0, 5000.0]), np.array([400.0, 5060.0]))


def _state(mta, limit=20):
    sched = schedules.SCHEDULES[mta]
    return site.new_state(5, 1, limit), sched.site, schedules.pack(sched.params())


def test_postfix_dead_for_minimal_backoff_after_a_refusal():
    """With a concurrency limit of 1 the window is 1: one refusal reaches the cohort limit."""
    st, rule, P = _state("postfix", limit=1)
    assert site.vetoes(st, rule, P, *DOWN, 50.0) == -1     # up: a session
    assert site.vetoes(st, rule, P, *DOWN, 120.5) == 1     # refused: dead until 420
    assert site.vetoes(st, rule, P, *DOWN, 419.0) == 0     # dead, though the relay is back
    assert site.vetoes(st, rule, P, *DOWN, 420.0) == -1    # minimal_backoff_time later
    assert np.isnan(st[1])                                 # it accepted: refusals forgotten


def test_clear_promises_no_veto():
    st, rule, P = _state("postfix", limit=1)
    assert site.clear(st, *DOWN, 0.0, 99.0) and not site.clear(st, *DOWN, 0.0, 100.0)
    site.refused(st, rule, P, 10.0)
    assert not site.clear(st, *DOWN, 200.0, 210.0)  # dead until 310
    assert site.clear(st, *DOWN, 5060.0, 6000.0)


def test_exim_host_record_counts_from_the_first_refusal():
    """Exim's host retry record, F,2h,15m first: 15 min after each refusal while the relay
    stays down; the first refusal since the relay last accepted is remembered."""
    st, rule, P = _state("exim")
    down = (np.array([0.0]), np.array([1e6]))
    got = []
    t = 10.0
    for _ in range(3):
        assert site.vetoes(st, rule, P, *down, t) == 1
        got.append(st[0])
        t = st[0]
    assert got == [910.0, 1810.0, 2710.0] and st[1] == 10.0 and st[2] == 3


def test_sendmail_host_status_and_no_memory():
    st, rule, P = _state("sendmail")
    site.refused(st, rule, P, 100.0)
    assert st[0] == 1900.0  # Timeout.hoststatus 30 min
    st, rule, P = _state("qmail")
    site.refused(st, rule, P, 100.0)
    assert st[0] == 100.0  # no memory of the refusal


def test_postfix_failed_cohorts_and_the_window():
    """qmgr_queue_throttle with the defaults (window 5, cohort limit 1): the failures count
    1/5, 1/4, 1/3, 1/2 as the window drops, dead at the fourth; a delivery in between clears
    the count and widens the window."""
    st, rule, P = _state("postfix")
    w, fail = site.SITE_STATE.index("window"), site.SITE_STATE.index("fail_cohorts")
    for k in range(3):
        site.failed(st, rule, P, 10.0, 1)
        assert st[0] == -np.inf and st[w] == 4 - k
    site.failed(st, rule, P, 10.5, 1)
    assert st[0] == 310.0 and st[w] == 5 and st[fail] == 0  # unthrottled later: window 5
    site.failed(st, rule, P, 20.0, 5)  # dead: nothing counts
    assert st[0] == 310.0 and st[fail] == 0
    st, rule, P = _state("postfix")
    site.failed(st, rule, P, 10.0, 3)
    site.delivered(st, 1)
    assert st[fail] == 0 and st[w] == 3
    site.failed(st, rule, P, 11.0, 2)  # 1/3 + 1/2
    assert st[0] == -np.inf and st[w] == 1
    site.failed(st, rule, P, 11.0, 1)
    assert st[0] == 311.0


def test_the_in_core_queue_is_discarded_when_nothing_is_pending():
    st, rule, P = _state("postfix")
    site.entered(st, 0.0)
    site.failed(st, rule, P, 0.0, 3)
    site.ended(st, 0.0)
    site.entered(st, 0.0)  # at the same instant: still pending, the count stays
    assert st[site.SITE_STATE.index("window")] == 2
    site.entered(st, 0.5)  # after everything ended: a new in-core queue
    assert st[site.SITE_STATE.index("window")] == 5
    assert st[site.SITE_STATE.index("fail_cohorts")] == 0
