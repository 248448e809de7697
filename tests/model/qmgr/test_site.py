"""sim.model.qmgr.site: the destination's throttle under each MTA's site policy."""

import numpy as np

from sim.model import schedules
from sim.model.qmgr import site

DOWN = (np.array([100.0, 5000.0]), np.array([400.0, 5060.0]))


def _state(mta):
    sched = schedules.SCHEDULES[mta]
    return site.new_state(), sched.site, schedules.pack(sched.params())


def test_postfix_dead_for_minimal_backoff_after_a_refusal():
    st, rule, P = _state("postfix")
    assert not site.vetoes(st, rule, P, *DOWN, 50.0)       # up: a session
    assert site.vetoes(st, rule, P, *DOWN, 120.5)          # refused: dead until 420
    assert site.vetoes(st, rule, P, *DOWN, 419.0)          # dead, though the relay is back
    assert not site.vetoes(st, rule, P, *DOWN, 420.0)      # minimal_backoff_time later
    assert np.isnan(st[1])                                 # it accepted: refusals forgotten


def test_clear_promises_no_veto():
    st, rule, P = _state("postfix")
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
        assert site.vetoes(st, rule, P, *down, t)
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
