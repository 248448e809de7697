"""The delivery agents' FIFO pool against the textbook c-server recursion; service times."""

import heapq
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.model.agents import ServiceTimes, Shape
from sim.model.agents import fifo as compiled_fifo


def fifo(free, entries, service):
    """Textbook c-server FIFO: each job takes the earliest free agent."""
    heap = list(free)
    heapq.heapify(heap)
    start = []
    for a, s in zip(entries, service, strict=True):
        b = max(a, heap[0])
        heapq.heapreplace(heap, b + s)
        start.append(b)
    return np.array(start), np.sort(heap)


@settings(max_examples=200, deadline=None)
@given(c=st.integers(1, 6), n=st.integers(1, 300), scale=st.sampled_from([1.0, 10.0, 1000.0]),
       mean=st.sampled_from([0.0, 0.1, 1.0, 5.0]), seed=st.integers(0, 2**32 - 1))
def test_compiled_recursion_equals_the_textbook_one(c, n, scale, mean, seed):
    rng = np.random.default_rng(seed)
    entries = np.sort(rng.random(n) * scale)
    service = rng.exponential(mean, n) if mean else np.zeros(n)
    free = rng.random(c) * scale / 10
    start, end, heap = compiled_fifo(entries, service, free.copy())
    ref_start, ref_free = fifo(free, entries, service)
    assert np.array_equal(start, ref_start)
    assert np.array_equal(end, ref_start + service)
    assert np.array_equal(np.sort(heap), ref_free)


def test_service_times_are_the_generators_stream_across_blocks_and_the_thread(monkeypatch):
    """Handed out in pieces of any size (taken, or seen through a window and partly
    taken), across block ends, within a block's room and beyond it, after the helper thread
    has started, the variates are exactly the generator's own sequence."""
    monkeypatch.setattr(ServiceTimes, "BLOCK", 1000)
    monkeypatch.setattr(ServiceTimes, "ROOM", 300)
    monkeypatch.setattr(ServiceTimes, "FIRST", 100)
    stream = ServiceTimes(np.random.default_rng(7))
    sizes = [1, 999, 0, 250, 3, 2500, 7000, 1, 4000, 301, 299, 1200]
    got = []
    for i, k in enumerate(sizes):
        if i % 2:
            got.append(stream.take(k).copy())
        else:
            a, j = stream.window(k)
            assert a.size - j >= k
            got.append(a[j:j + k // 2].copy())
            stream.skip(k // 2)
    total = sum(g.size for g in got)
    got.append(stream.take(3000))
    got = np.concatenate(got)
    assert stream.ready is not None  # the helper thread did start
    stream.close()
    assert np.array_equal(got, np.random.default_rng(7).standard_exponential(total + 3000))


@pytest.mark.parametrize("shape", [
    Shape("constant"), Shape("lognormal", 0.7), Shape("empirical", values=(0.002, 0.004, 0.012)),
    Shape("exponential")], ids=["constant", "lognormal", "empirical", "exponential"])
def test_shapes_have_mean_one(shape):
    """Every shape's variates average 1 (the engine multiplies by smtp_transaction_time):
    constant exactly, the others within 4 standard errors of 200,000 draws; lognormal's log
    has its sigma, empirical draws only the measured values over their mean."""
    out = np.empty(200_000)
    shape.draw(np.random.default_rng(5), out)
    if shape.kind == "constant":
        assert (out == 1.0).all()
        return
    assert abs(out.mean() - 1) < 4 * out.std() / math.sqrt(out.size)
    if shape.kind == "lognormal":
        assert np.log(out).std() == pytest.approx(0.7, rel=0.01)
    if shape.kind == "empirical":
        assert set(np.unique(out).round(12)) == {round(v / 0.006, 12) for v in shape.values}


def test_exponential_shape_is_the_generators_stream():
    out = np.empty(1000)
    Shape().draw(np.random.default_rng(9), out)
    assert np.array_equal(out, np.random.default_rng(9).standard_exponential(1000))


def test_fifo_with_sessions_carries_the_relays_error_count():
    """Hand-worked: one agent, three jobs entering at 0 with 1 s each, every RCPT rejected;
    smtpd_soft_error_limit 2, no hard limit, 1 s sleeps. Job 0 opens the session (errors 0
    to 2; the RSET that ends it sleeps): 0 to 2; job 1 reuses it at 2 (RSET, MAIL, RCPT,
    DATA, RSET all past the limit: 5 s): 2 to 8; job 2 likewise: 8 to 14. Without the
    connection cache every job has a new session, ended with an unanswered QUIT: 0-1, 1-2,
    2-3; a job after more than the cache's 2 s idle has a new one too."""
    from sim.model.agents import Sessions, new_sessions

    def run(cache, entries):
        s = Sessions(new_sessions(1), np.ones(3, dtype=np.int64), np.zeros(3, dtype=np.int64),
                     np.array([2.0, 0.0, 1.0, cache, 2.0, 300.0]))
        start, end, _ = compiled_fifo(np.array(entries), np.ones(3), np.zeros(1), s)
        return start.tolist(), end.tolist()

    assert run(1.0, [0.0, 0.0, 0.0]) == ([0.0, 2.0, 8.0], [2.0, 8.0, 14.0])
    assert run(0.0, [0.0, 0.0, 0.0]) == ([0.0, 1.0, 2.0], [1.0, 2.0, 3.0])
    assert run(1.0, [0.0, 0.0, 11.0]) == ([0.0, 2.0, 11.0], [2.0, 8.0, 13.0])
