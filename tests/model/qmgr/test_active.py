"""sim.model.qmgr.active: how a tick's jobs are served when the destination refuses some, and
when the relay goes down during a session."""

import numpy as np

from sim.model import schedules
from sim.model.qmgr import active, engine, site


def _serve(entry, n_scan, T, free, down, mean=5.0, dead_until=-np.inf, init=5, st=None):
    sched = schedules.SCHEDULES["postfix"]
    P = schedules.pack(sched.params())[None, :]
    relay = engine.Relay(np.zeros(1), np.array([10]), np.array([1]), np.array([450]),
                         np.array(down[0], float), np.array(down[1], float), np.zeros(4), 0)
    up = engine.Upstream(sched.rule, sched.site, P, np.zeros(1), 0, True, 300, 1, 20000, 0.0,
                         mean, False, np.zeros(1, dtype=np.bool_))
    if st is None:  # the window's limit is the agents' number, as in the host
        st = engine.State(np.array(free, float), site.new_state(init, 1, len(free)),
                          np.full(4, np.inf), np.array([np.inf]), np.array([-np.inf, np.inf]))
        st.site[0] = dead_until
    service = np.ones(len(entry))
    start, end, vetoed, suspended, cut, used = active.serve(np.array(entry, float), n_scan, T,
                                                             service, relay, up, st)
    _serve.cut = cut
    _serve.suspended = suspended
    return start, end, vetoed, used, st


def test_a_refused_job_takes_no_agent_time():
    """New mail, one agent, 5 s a job, the relay down over [4, 6): the first session (0 to 5)
    is cut at 4, when the relay goes down; with one agent the window is 1, so that one
    site-level failure makes the destination dead (until 304); the job waiting for the agent
    starts at 4 and is refused, so is the next (no agent time: it starts at 4 too); the job at
    400 finds the agent free."""
    start, end, vetoed, used, st = _serve([0.0, 1.0, 2.0, 400.0], 0, 0.0, [0.0],
                                          ([4.0], [6.0]))
    assert vetoed.tolist() == [False, True, True, False]
    assert _serve.cut.tolist() == [True, False, False, False]
    assert start.tolist() == [0.0, 4.0, 4.0, 400.0]  # the 2nd waits for the agent, then refused
    assert end.tolist() == [4.0, 4.0, 4.0, 405.0]
    assert used == 4  # one service time drawn per job, in queue order
    assert st.site[0] == 304.0  # one site-level failure, at 4


def test_a_session_under_way_when_the_relay_goes_down_is_cut_there():
    """New mail on two agents, 5 s a job, the relay down from 7 s: the sessions 3 to 8 and 4 to
    9 are cut at 7 (their agents free then), the one that ended at 5 is not; with the window
    at 2 (the limit) the two cuts count 1/2 + 1/1 >= 1: the destination is dead from 7 +
    minimal_backoff_time (300 s)."""
    start, end, vetoed, used, st = _serve([0.0, 3.0, 4.0], 0, 0.0, [0.0, 0.0],
                                          ([7.0], [60.0]))
    assert not vetoed.any()
    assert _serve.cut.tolist() == [False, True, True]
    assert end.tolist() == [5.0, 7.0, 7.0]
    assert sorted(st.free.tolist()) == [7.0, 7.0] and st.site[0] == 307.0


def test_an_outage_during_a_scan_cuts_the_sessions_and_refuses_the_rest_at_once():
    """A scan's batch of 6 at T = 300 on 2 agents, 5 s each; the relay goes down at 307: the
    sessions 305 to 310 are cut at 307, and the two jobs not started are refused then (their
    agents are free at 307), not at 310."""
    start, end, vetoed, used, st = _serve([300.0] * 6, 6, 300.0, [0.0, 0.0], ([307.0], [900.0]))
    assert _serve.cut.tolist() == [False, False, True, True, False, False]
    assert vetoed.tolist() == [False] * 4 + [True] * 2
    assert start.tolist() == [300.0, 300.0, 305.0, 305.0, 307.0, 307.0]
    assert end.tolist() == [305.0, 305.0, 307.0, 307.0, 307.0, 307.0]
    assert st.free.tolist() == [307.0, 307.0] and st.site[0] == 607.0


def test_an_outage_during_a_scan_refuses_the_rest_and_frees_the_agents():
    """A scan's batch of 6 at T = 300 on 2 agents, 5 s each; the relay goes down at 310: the
    jobs starting from then are refused at 310 and the agents are free at 310."""
    start, end, vetoed, used, st = _serve([300.0] * 6, 6, 300.0, [0.0, 0.0], ([310.0], [900.0]))
    assert start.tolist() == [300.0, 300.0, 305.0, 305.0, 310.0, 310.0]
    assert vetoed.tolist() == [False] * 4 + [True] * 2
    assert end[:4].tolist() == [305.0, 305.0, 310.0, 310.0] and end[4:].tolist() == [310.0] * 2
    assert st.free.tolist() == [310.0, 310.0] and st.site[0] == 610.0  # dead until 310 + 300


def test_a_scan_while_dead_is_refused_whole_and_draws_no_service_times():
    start, end, vetoed, used, st = _serve([300.0] * 3, 3, 300.0, [0.0], ([], []),
                                          dead_until=1000.0)
    assert vetoed.all() and used == 0 and (start == 300.0).all() and (end == 300.0).all()


def test_isolated_refusals_to_a_quiet_destination_never_make_it_dead():
    """Postfix's in-core queue is discarded with its failure count when nothing is pending:
    new mail at 0, 100, 200 and 300 s while the relay is down, 20 agents (window 5): each is
    refused (a connection tried), none makes the destination dead."""
    start, end, vetoed, used, st = _serve([0.0, 100.0, 200.0, 300.0], 0, 0.0, [0.0] * 20,
                                          ([0.0], [1000.0]))
    assert vetoed.all() and st.site[0] == -np.inf
    assert st.site[site.SITE_STATE.index("window")] == 4.0  # the last queue's, after 1 failure


def test_a_scan_batch_of_refusals_kills_the_destination_at_the_cohort_limit():
    """A scan's batch refused back to back at 300 with the window at 5: 1/5 + 1/4 + 1/3 +
    1/2 = 1.28 >= 1 at the fourth refusal (mta-semantics.md 3.1), so a batch of 4 makes the
    destination dead until 600 and a batch of 3 (0.78) does not."""
    *_, st = _serve([300.0] * 6, 6, 300.0, [0.0] * 20, ([0.0], [1000.0]))
    assert st.site[0] == 600.0
    # four connections refused, the other two find the destination dead (not tried)
    assert _serve.suspended.tolist() == [False] * 4 + [True] * 2
    *_, st = _serve([300.0] * 3, 3, 300.0, [0.0] * 20, ([0.0], [1000.0]))
    assert st.site[0] == -np.inf
    fail = site.SITE_STATE.index("fail_cohorts")
    assert abs(st.site[fail] - (1 / 5 + 1 / 4 + 1 / 3)) < 1e-12
    # the next job finds the queue discarded: a fresh window, its count starting from 0
    _serve([400.0], 0, 400.0, [0.0] * 20, ([0.0], [1000.0]), st=st)
    assert st.site[0] == -np.inf and st.site[fail] == 0.2


def test_deliveries_widen_the_window_so_more_failures_are_needed():
    """Ten back-to-back deliveries raise the window from 5 to 15 (one each, limit 20); the
    relay goes down at 14, as the last session ends and a scan's batch enters: the refusals
    count 1/15 + 1/14 + ... and the destination is dead at the tenth (1.03 >= 1)."""
    free = [0.0] * 20
    entry = [float(i) for i in range(10)]  # 5 s each on 20 agents: always overlapping
    *_, st = _serve(entry, 0, 0.0, free, ([14.0], [1000.0]))
    w = site.SITE_STATE.index("window")
    assert st.site[w] == 15.0
    need = next(k for k in range(1, 16) if sum(1 / (15 - j) for j in range(k)) >= 1)
    assert need == 10
    *_, st = _serve([14.0] * (need - 1), need - 1, 14.0, free, ([14.0], [1000.0]), st=st)
    assert st.site[0] == -np.inf  # one refusal short
    *_, st = _serve([14.0], 1, 14.0, free, ([14.0], [1000.0]), st=st)
    assert st.site[0] == 314.0


def test_a_failed_cohort_limit_of_0_never_kills():
    *_, st = _serve([300.0] * 50, 50, 300.0, [0.0], ([0.0], [1000.0]))
    assert st.site[0] == 600.0  # window 1: dead at once
    st.site[:] = site.new_state(5, 0, 1)
    *_, st = _serve([300.0] * 50, 50, 300.0, [0.0], ([0.0], [1000.0]), st=st)
    assert st.site[0] == -np.inf


def test_a_death_after_the_tick_starts_does_not_suspend_earlier_jobs():
    """An earlier tick's sessions were cut at 61.21 and made the destination dead then (its
    agents free at 61.21); a scan's batch entering at 60.05 waits for the agents and is
    suspended at 61.21, when they are free, not at 60.05 (seen live: the load lab)."""
    down = ([61.21], [120.0])
    st = engine.State(np.array([61.21, 61.21]), site.new_state(5, 1, 2), np.full(4, np.inf),
                      np.array([np.inf]), np.array([-np.inf, np.inf]))
    sched = schedules.SCHEDULES["postfix"]
    site.failed(st.site, sched.site, schedules.pack(sched.params()), 61.21, 2)
    assert st.site[0] == 361.0
    start, end, vetoed, used, st = _serve([60.05] * 3, 3, 60.05, [61.21, 61.21], down, st=st)
    assert vetoed.all() and _serve.suspended.all()
    assert start.tolist() == [61.21] * 3
