"""sim.studies.sweep: an experiment's runs through the run store are the runs' own Results,
for any worker count and resumed; mean_ci; the experiment scaffolding."""

import argparse
import math

import numpy as np
import pytest

from sim import Scenario, simulate
from sim.studies.factorial import Setting
from sim.studies.sweep import (
    SweepStopped,
    experiment_runs,
    fmt_ci,
    mean_ci,
    run_sweep,
    seed_list,
    t975,
)


def _small(**relay):
    return Scenario.from_dict({
        "simulation": {"duration": "6h", "seed": 7},
        "senders": [{"rate": "500/d", "unknown_recipient_fraction": 0.4}],
        "upstream": {"maximal_queue_lifetime": "2h"},
        "relay": {"unknown_local_recipient_reject_code": 450, **relay}})


def _key(r):
    return (r.seed, r.summary, {k: (v.dtype, v.tolist()) for k, v in r.timeseries.items()},
            r.qshape.tolist(), [a.tolist() for a in r.delay_cdf])


def _args(out, seeds, workers):
    return argparse.Namespace(out=out, seeds=seeds, workers=workers)


def test_experiment_runs_are_the_runs_own_results_for_any_workers_and_from_the_store(
        tmp_path, capsys):
    scen = [_small(), _small(unknown_local_recipient_reject_code=550)]
    one = experiment_runs(_args(tmp_path / "one", 2, 1), ["450", "550"], scen)
    two = experiment_runs(_args(tmp_path / "two", 2, 2), ["450", "550"], scen)
    direct = [[simulate(s, seed=x) for x in seed_list(7, 2)] for s in scen]
    assert [[_key(r) for r in runs] for runs in one] == [[_key(r) for r in runs]
                                                          for runs in direct]
    assert [[_key(r) for r in runs] for runs in two] == [[_key(r) for r in runs]
                                                          for runs in direct]
    assert one[0][0].scenario is scen[0] and two[1][1].scenario is scen[1]
    assert [r.seed for r in one[0]] == seed_list(7, 2)  # spawned from the scenario's root
    assert one[0][0].provenance == direct[0][0].provenance | {
        "wall_time_s": one[0][0].provenance["wall_time_s"]}
    capsys.readouterr()
    again = experiment_runs(_args(tmp_path / "one", 2, 2), ["450", "550"], scen)
    assert capsys.readouterr().err.endswith(
        f"2 settings x 2 seeds: 0 run, 4 from the run store {tmp_path / 'one' / 'runs'}\n")
    assert [[_key(r) for r in runs] for runs in again] == [[_key(r) for r in runs]
                                                            for runs in direct]


def test_a_summary_only_record_is_run_again_for_an_experiment(tmp_path, capsys):
    """A `relaysim sweep` record has no series: an experiment on the same store reruns it."""
    scen = [_small()]
    settings = [Setting(0, (("setting", "a"),), scen[0])]
    run_sweep(settings, 1, tmp_path, progress=False)
    grid = experiment_runs(_args(tmp_path, 1, 1), ["a"], scen)
    assert "1 run, 0 from the run store" in capsys.readouterr().err
    assert _key(grid[0][0]) == _key(simulate(scen[0], seed=seed_list(7, 1)[0]))


def test_a_failed_experiment_run_stops_the_experiment(tmp_path, monkeypatch):
    from sim.studies import sweep

    def boom(table, seed):
        raise RuntimeError("boom")

    monkeypatch.setattr(sweep, "_run_series", boom)
    with pytest.raises(SweepStopped, match=r"setting 0 \(setting=bad\), seed .*RuntimeError: boom"):
        experiment_runs(_args(tmp_path, 1, 1), ["bad"], [_small()])


@pytest.mark.parametrize("df, q", [(1, 12.706), (4, 2.776), (30, 2.042), (40, 2.021),
                                   (120, 1.980), (10**6, 1.960)],
                         ids=["df1", "df4", "df30", "df40", "df120", "normal"])
def test_t_quantiles(df, q):
    assert t975(df) == pytest.approx(q, abs=1.5e-3)


def test_mean_ci_sanity():
    m, lo, hi = mean_ci([1.0, 2.0, 3.0])
    assert m == 2 and lo == pytest.approx(2 - 4.303 / math.sqrt(3)) and hi == pytest.approx(
        2 + 4.303 / math.sqrt(3))
    m, lo, hi = mean_ci([5.0, 5.0])
    assert (m, lo, hi) == (5, 5, 5)
    m, lo, hi = mean_ci([4.0])
    assert m == 4 and math.isnan(lo) and math.isnan(hi)
    m, lo, hi = mean_ci(np.array([[1.0, 10.0], [3.0, 10.0]]))  # seeds x points
    assert list(m) == [2, 10] and lo[1] == hi[1] == 10 and lo[0] < 2 < hi[0]
    assert fmt_ci([4.0]) == "4 (one seed)"
    assert fmt_ci([1.0, 3.0], ".1f", "h").startswith("2.0 h (95 % CI")


def test_mean_ci_covers_the_mean_about_95_percent():
    rng = np.random.default_rng(3)
    x = rng.normal(10.0, 2.0, size=(5, 4000))
    _, lo, hi = mean_ci(x)
    assert 0.93 < np.mean((lo <= 10) & (10 <= hi)) < 0.97


def test_a_quick_run_never_writes_the_committed_results(tmp_path):
    """experiment_args: --quick goes to results-quick/<name>/ unless --out says where."""
    from sim.studies.sweep import experiment_args, results_folder

    quick = experiment_args("Doc.", "seed_story", ["--quick"])
    assert quick.out == results_folder("seed_story", quick=True)
    assert quick.out.parent.name == "results-quick" and quick.seeds == 1
    full = experiment_args("Doc.", "seed_story", [])
    assert full.out == results_folder("seed_story") and full.out.parent.name == "results"
    assert quick.out.parent.parent == full.out.parent.parent  # both in the repository
    assert experiment_args("Doc.", "x", ["--quick", "--out", str(tmp_path)]).out == tmp_path
