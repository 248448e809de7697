"""The delivery agents' FIFO pool: the compiled and bulk paths against the c-server recursion."""

import heapq

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.model.agents import Agents, ServiceTimes
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


def test_timed_veto_takes_no_agent_time():
    pool = Agents(1)
    start, end, vetoed = pool.timed(np.array([0.0, 1.0, 2.0]), lambda shape: np.full(shape, 5.0),
                                    site=lambda t: t < 1.5)
    assert vetoed.tolist() == [True, True, False]
    assert end.tolist() == [0.0, 1.0, 7.0]


def test_batch_is_the_recursion_with_every_job_entering_at_once():
    """A scan batch: each job in queue order takes its own service time (drawn in that order)
    on the agent free first."""
    rng = np.random.default_rng(1)
    for _ in range(50):
        free = rng.random(4) * 3
        service = rng.exponential(1.0, 60)
        pool = Agents(4)
        pool.free = free.copy()
        s, e = pool.batch(1.0, 60, lambda shape, v=service: v.reshape(shape))
        ref_start, ref_free = fifo(free, np.full(60, 1.0), service)
        assert np.array_equal(s, ref_start) and np.array_equal(e, ref_start + service)
        assert np.array_equal(np.sort(pool.free), ref_free)


def test_batch_with_zero_service_starts_everything_at_once():
    pool = Agents(3)
    s, e = pool.batch(5.0, 10, lambda shape: np.zeros(shape))
    assert (s == 5.0).all() and (e == 5.0).all()


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
