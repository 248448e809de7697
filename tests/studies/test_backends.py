"""sim.studies.backends, store, progress and run_sweep's failure handling: a run that raises is
reported and the rest goes on; a worker process that dies has its runs retried; the store keeps
whole records only; progress lines."""

import io
import os
import signal

import numpy as np
import pytest

from sim import Scenario, simulate
from sim.studies import backends, sweep
from sim.studies.factorial import factorial, parse_vary
from sim.studies.progress import Progress
from sim.studies.store import RunStore, run_key
from sim.studies.sweep import SUMMARY_FIGURES, SweepStopped, _flatten, run_sweep, sweep_tables


def _square(x):
    return x * x


def _fail_on_three(x):
    if x == 3:
        raise ValueError("three is\nnot allowed")
    return x


def _die_once(marker, x):
    if x == 2 and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)  # the worker process dies mid-run
    return x


def _always_die(x):
    if x == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def _collect(be, fn, args_list):
    todo = [((i,), a) for i, a in enumerate(args_list)][::-1]

    def feed(room):
        return [todo.pop() for _ in range(min(room, len(todo)))]

    with be:
        return {job[0]: (ok, v) for job, ok, v in backends.stream(be, fn, feed)}


@pytest.mark.parametrize("make", [backends.InProcess, lambda: backends.ProcessPool(2)],
                         ids=["in-process", "pool"])
def test_a_failed_job_is_reported_in_one_line_and_the_rest_goes_on(make):
    got = _collect(make(), _fail_on_three, [(x,) for x in range(6)])
    assert got == {0: (True, 0), 1: (True, 1), 2: (True, 2),
                   3: (False, "ValueError: three is not allowed"), 4: (True, 4), 5: (True, 5)}


def test_a_dead_worker_process_has_its_runs_retried(tmp_path):
    marker = tmp_path / "died"
    got = _collect(backends.ProcessPool(2), _die_once, [(str(marker), x) for x in range(8)])
    assert marker.exists()  # a worker really died
    assert got == {x: (True, x) for x in range(8)}


def test_a_run_that_kills_every_worker_fails_after_the_retries():
    got = _collect(backends.ProcessPool(2), _always_die, [(x,) for x in range(3)])
    assert got[1] == (False, f"its worker process died ({backends.RETRIES} times)")
    assert got[0] == (True, 0) and got[2] == (True, 2)


def test_summary_figures_are_a_real_runs_summary():
    r = simulate(Scenario.from_dict({"simulation": {"duration": "1h"}}))
    assert tuple(_flatten(r.summary)) == SUMMARY_FIGURES


def test_run_key_depends_on_scenario_seed_only(tmp_path):
    a = Scenario.from_dict({"simulation": {"duration": "1h"}})
    b = a.with_overrides({"upstream.maximal_queue_lifetime": "2d"})
    assert run_key(a.to_dict(), 1) == run_key(Scenario.from_dict(a.to_dict()).to_dict(), 1)
    assert len({run_key(a.to_dict(), 1), run_key(a.to_dict(), 2), run_key(b.to_dict(), 1)}) == 3
    store = RunStore(tmp_path / "runs")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "broken.json").write_text('{"half": ')
    (tmp_path / "runs" / ".x.json.tmp").write_text("{}")
    assert store.get("broken") is None and store.keys() == {"broken"}
    store.put("k", {"seed": 1})
    assert store.get("k") == {"seed": 1} and store.keys() == {"broken", "k"}


def test_a_record_with_series_keeps_its_arrays_and_order(tmp_path):
    store = RunStore(tmp_path / "runs")
    arrays = {"ts.t_s": np.arange(3.0), "ts.deferred": np.array([1, 2, 3], dtype=np.int32),
              "qshape": np.zeros((3, 10), dtype=np.int64)}
    store.put("k", {"seed": 1, "summary": {"b": 1.5, "a": float("nan")}, "series": arrays})
    assert list(store.get("k")["summary"]) == ["b", "a"] and "series" not in store.get("k")
    back = store.get("k", series=True)["series"]
    assert {k: (v.dtype, v.tolist()) for k, v in back.items()} == {
        k: (v.dtype, v.tolist()) for k, v in arrays.items()}
    store.put("plain", {"seed": 2})
    assert store.get("plain") == {"seed": 2} and store.get("plain", series=True) is None
    (tmp_path / "runs" / "k.npz").write_bytes(b"PK\x03\x04 cut")
    assert store.get("k", series=True) is None and store.keys() == {"k", "plain"}


def _settings():
    base = Scenario.from_dict({"simulation": {"duration": "1d", "seed": 3},
                               "senders": [{"rate": "1000/d"}],
                               "relay": {"unknown_local_recipient_reject_code": 450}})
    return factorial(base, [parse_vary("upstream.maximal_queue_lifetime=6h,1d", str)])


def test_a_failing_run_is_reported_with_setting_and_seed_and_retried_next_time(
        tmp_path, monkeypatch):
    real = sweep._run_summary
    settings = _settings()
    bad_seed = sweep.seed_list(3, 3)[1]

    def flaky(table, seed):
        if seed == bad_seed and table["upstream"]["maximal_queue_lifetime"] == "1d":
            raise RuntimeError("boom")
        return real(table, seed)

    monkeypatch.setattr(sweep, "_run_summary", flaky)
    err = io.StringIO()
    res = run_sweep(settings, 3, tmp_path, progress=False, stream=err)
    assert [(s.index, seed, msg) for s, seed, msg in res.failed] == [(1, bad_seed,
                                                                      "RuntimeError: boom")]
    assert err.getvalue() == (f"relaysim sweep: run failed: setting 1 "
                              f"(upstream.maximal_queue_lifetime=1d), seed {bad_seed}: "
                              "RuntimeError: boom\n")
    assert [len(r) for r in res.records] == [3, 2] and res.ran == 5
    assert sweep_tables(res)["runs.csv"].count("\n") == 1 + 5
    with pytest.raises(SweepStopped, match="boom"):
        run_sweep(settings, 3, tmp_path / "ff", progress=False, fail_fast=True, stream=err)
    monkeypatch.setattr(sweep, "_run_summary", real)
    again = run_sweep(settings, 3, tmp_path, progress=False)
    assert (again.reused, again.ran, again.failed) == (5, 1, [])
    fresh = run_sweep(settings, 3, tmp_path / "fresh", progress=False)
    assert sweep_tables(again) == sweep_tables(fresh)


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal_and_lines_without():
    tty = _Tty()
    p = Progress(20, done=4, stream=tty)
    p.update(10, 2, 1, 20)
    p.close()
    assert "10/20" in tty.getvalue() and "2 running, 1 failed" in tty.getvalue()
    plain = io.StringIO()
    p = Progress(20, done=0, stream=plain)
    for d in range(1, 21):
        p.update(d, 2, 0, 20)
    lines = plain.getvalue().splitlines()
    assert len(lines) == 10 and lines[0].startswith("relaysim sweep: 10 %, 2 of 20 runs done, "
                                                     "2 running, 0 failed, about ")
    assert lines[-1] == "relaysim sweep: 100 %, 20 of 20 runs done, 2 running, 0 failed"
    quiet = io.StringIO()
    Progress(5, stream=quiet, enabled=False).update(5, 0, 0, 5)
    assert quiet.getvalue() == ""


def test_a_worker_with_other_model_sources_is_a_failed_run(tmp_path, monkeypatch):
    real = sweep._run_summary

    def other(table, seed):
        return {**real(table, seed), "model": "0123456789abcdef"}

    monkeypatch.setattr(sweep, "_run_summary", other)
    err = io.StringIO()
    res = run_sweep(_settings()[:1], 1, tmp_path, progress=False, stream=err)
    assert res.ran == 0 and len(res.failed) == 1
    assert "the worker runs other relaysim model sources (digest 0123456789abcdef" in (
        res.failed[0][2])
    assert not list((tmp_path / "runs").glob("*.json"))


def test_a_ctrl_c_inside_compiled_code_is_an_interrupt_not_a_failed_run():
    """A SIGINT that lands while numba code runs surfaces as SystemError('... returned a
    result with an exception set') caused by the KeyboardInterrupt (seen once in CI: the
    in-process sweep reported a failed run and exited 1 instead of 130)."""
    import pytest

    from sim.studies.backends import InProcess

    def compiled_call():
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            raise SystemError("CPUDispatcher(<function _assemble>) returned a result with an "
                              "exception set") from e

    b = InProcess()
    b.submit("job", compiled_call)
    with pytest.raises(KeyboardInterrupt):
        b.finished()
    b.submit("job", lambda: 1 / 0)
    assert b.finished()[0][1] is False  # any other exception is still a failed run
