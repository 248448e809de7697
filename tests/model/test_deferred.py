"""The deferred queue's store against a plain dict of lists: filing order, ticks after the
run, and compaction."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.model.deferred import DeferredQueue

UNIT, DURATION = 300, 30 * 300


def _rows(f):
    return [tuple(r) for r in f.tolist()]


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(st.one_of(
    st.tuples(st.just("put"), st.lists(st.integers(1, 40), min_size=0, max_size=60)),
    st.tuples(st.just("take"), st.integers(0, 40))), max_size=60))
def test_files_come_back_in_filing_order_per_tick(ops):
    """Any sequence of filings and scans, with compactions in between (the store starts small
    and is reused), hands out exactly what a dict of lists would, in the same order."""
    q = DeferredQueue(3, 2, UNIT, DURATION)
    ref: dict[int, list] = {}
    serial = 0
    last = DURATION // UNIT + 1  # the slot of every tick after the run
    for op, arg in ops:
        if op == "put":
            ticks = np.array(arg, dtype=np.int64) * UNIT
            f = np.arange(serial, serial + 3 * len(arg), dtype=float).reshape(-1, 3)
            rcpt = np.stack([f[:, 0], f[:, 0] + 1], axis=1).astype(np.int32)
            serial += 3 * len(arg)
            q.put(f, rcpt, ticks)
            for t, row in zip(arg, _rows(f), strict=True):
                ref.setdefault(min(t, last), []).append(row)
        else:
            got = q.take(arg * UNIT)
            want = ref.pop(min(arg, last), [])
            assert (got is None) == (not want)
            if want:
                assert _rows(got[0]) == want
                assert got[1].tolist() == [[int(r[0]), int(r[0]) + 1] for r in want]
        assert len(q) == sum(len(v) for v in ref.values())
    assert sorted(t // UNIT for t in q.ticks()) == sorted(k for k, v in ref.items() if v)


def test_compaction_keeps_the_files_and_reuses_its_arrays():
    """Filing and scanning a steady queue compacts it now and then into the arrays it used
    before; the files survive every compaction in order."""
    q = DeferredQueue(1, 1, UNIT, 10**6)
    rng = np.random.default_rng(1)
    arrays = set()
    for k in range(1, 400):
        ticks = (k + rng.integers(1, 15, 200)) * UNIT
        f = (k * 1000 + np.arange(200, dtype=float))[:, None]
        q.put(f, f.astype(np.int32), ticks)
        got = q.take(k * UNIT)
        if got is not None:
            assert np.array_equal(got[0][:, 0].astype(np.int32), got[1][:, 0])
            assert (np.diff(got[0][:, 0]) > 0).all()  # filing order: earlier batches first
        arrays.add(id(q.f))
    assert len(q) == sum(len(q.files(t)[0]) for t in q.ticks())
    assert 2 <= len(arrays) <= 6  # compacted, growing at first, then back and forth
