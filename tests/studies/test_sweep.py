"""sim.studies.sweep: replications independent of the worker count; mean_ci; the Little's-law
line."""

import importlib.util
import math

import numpy as np
import pytest

from sim import Scenario, ScenarioError
from sim.studies.sweep import fmt_ci, mean_ci, run_many, seed_list, t975


def _small(**relay):
    return Scenario.from_dict({
        "simulation": {"duration": "6h", "seed": 7},
        "senders": [{"rate": "500/d", "unknown_recipient_fraction": 0.4}],
        "upstream": {"maximal_queue_lifetime": "2h"},
        "relay": {"unknown_local_recipient_reject_code": 450, **relay}})


def _key(r):
    return (r.seed, r.summary, {k: v.tolist() for k, v in r.timeseries.items()},
            r.qshape.tolist())


def test_results_do_not_depend_on_workers():
    scen = [_small(), _small(unknown_local_recipient_reject_code=550)]
    one = run_many(scen, 2, workers=1)
    two = run_many(scen, 2, workers=2)
    assert [[_key(r) for r in runs] for runs in one] == [[_key(r) for r in runs] for runs in two]
    assert one[0][0].scenario is scen[0] and two[1][1].scenario is scen[1]


def test_seed_count_spawns_from_the_scenario_root():
    grid = run_many([_small()], 3, workers=1)
    assert [r.seed for r in grid[0]] == seed_list(7, 3)
    assert len(set(seed_list(7, 3))) == 3


def test_explicit_seed_list_and_errors():
    assert [r.seed for r in run_many([_small()], [5], workers=1)[0]] == [5]
    with pytest.raises(ValueError):
        run_many([], 1)
    with pytest.raises(ValueError):
        run_many([_small()], 0)
    with pytest.raises(ValueError, match="backend"):
        run_many([_small()], 1, backend="spark")


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


@pytest.mark.skipif(importlib.util.find_spec("distributed") is not None,
                    reason="dask.distributed is installed")
def test_dask_backend_without_distributed_says_what_to_install():
    with pytest.raises(ScenarioError, match="sweep"):
        run_many([_small()], 1, backend="dask")


@pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                    reason="dask.distributed (the sweep extra) is not installed")
def test_dask_backend_on_a_local_cluster_gives_the_same_results():
    scen = [_small(), _small(unknown_local_recipient_reject_code=550)]
    one = run_many(scen, 2, workers=1)
    dask = run_many(scen, 2, workers=2, backend="dask")
    assert [[_key(r) for r in runs] for runs in one] == [[_key(r) for r in runs] for runs in dask]
    assert dask[1][0].scenario is scen[1]


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
