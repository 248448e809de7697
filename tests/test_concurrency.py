"""The delivery agents' FIFO pool: the compiled and bulk paths against the c-server recursion."""

import heapq

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.concurrency import Agents, ServiceTimes, merge
from sim.concurrency import fifo as compiled_fifo


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


@settings(max_examples=200, deadline=None)
@given(c=st.integers(1, 40), n=st.integers(1, 400), idle=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_merge_hands_the_ith_job_the_ith_earliest_agent(c, n, idle, seed):
    """The grouped scan in merge gives what a plain scan of every agent gives: the earliest
    next point, the lower agent on ties (idle agents all tie at T)."""
    rng = np.random.default_rng(seed)
    T = 100.0
    free = np.full(c, 50.0) if idle else T + rng.random(c) * 3
    m = n // c + 12
    service = rng.exponential(0.5, (c, m))
    start, end, after = merge(free, T, service, n)
    nxt, used = list(np.maximum(np.sort(free), T)), [0] * c
    ref = []
    for _ in range(n):
        k = min(range(c), key=lambda a: (nxt[a], a))
        if used[k] == m:
            assert start.size == 0  # merge asks for more service times
            return
        ref.append((nxt[k], nxt[k] + service[k, used[k]]))
        nxt[k] += service[k, used[k]]
        used[k] += 1
    assert start.tolist() == [s for s, _ in ref] and end.tolist() == [e for _, e in ref]
    assert after.tolist() == nxt


def test_timed_veto_takes_no_agent_time():
    pool = Agents(1)
    start, end, vetoed = pool.timed(np.array([0.0, 1.0, 2.0]), lambda shape: np.full(shape, 5.0),
                                    site=lambda t: t < 1.5)
    assert vetoed.tolist() == [True, True, False]
    assert end.tolist() == [0.0, 1.0, 7.0]


def test_batch_is_fifo_over_agent_streams_in_distribution():
    """A scan batch entering at once: mean start time equals the recursion's within noise."""
    rng = np.random.default_rng(1)
    fast, ref = [], []
    for _ in range(400):
        free = rng.random(4) * 3
        pool = Agents(4)
        pool.free = free.copy()
        s, e = pool.batch(1.0, 60, lambda shape: rng.exponential(1.0, shape))
        assert np.all(np.diff(s) >= 0) and np.all(e >= s)
        fast.append(s.mean())
        ref.append(fifo(free, np.full(60, 1.0), rng.exponential(1.0, 60))[0].mean())
    se = np.sqrt(np.var(fast) / 400 + np.var(ref) / 400)
    assert abs(np.mean(fast) - np.mean(ref)) < 4 * se


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
