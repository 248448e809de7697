"""relaysim against queueing theory (experiments/validate_theory.py), small enough for make test.

Closed forms are checked exactly; simulated values against them with tolerances that follow
from the runs' own spread:
- M/M/c: the mean over 5 seeds must hold Erlang C inside its 99 % Student-t interval
  (t(0.995, 4) = 4.604 standard errors). A correct model misses one such check in a hundred;
  the seeds are fixed, so the outcome is the same on every run.
- Little's law: the run starts and ends with an empty deferred queue, so the law holds for the
  sample path; only the 60 s sampling of the level is left (about 30 s / W, 0.03 %). Target 1 %.
- Expiry lag: each message's lag depends only on its arrival phase within a 300 s queue-run
  interval (spread at most 300 s, so sd <= 87 s); the mean over N messages must be within
  4 standard errors (4 x 87 / sqrt(N) s) of the exact mean. The backlog itself is an
  M/G/infinity time average with relative sd about 1 / sqrt(rate x window); 4 sd allowed.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from sim import Scenario
from sim.reports.explain import residence_time
from sim.studies.sweep import mean_ci, t975

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
import validate_theory as vt  # noqa: E402

DAY = 86400.0
T995_DF4 = 4.604  # Student-t 0.995 quantile, 4 degrees of freedom


@pytest.mark.parametrize(("c", "a", "expected"), [
    (1, 0.3, 0.3), (2, 1.0, 1 / 3), (3, 2.0, 4 / 9), (5, 0.0, 0.0)],
    ids=["mm1-is-rho", "c2-a1", "c3-a2", "no-load"])
def test_erlang_c_closed_form(c, a, expected):
    assert vt.erlang_c(c, a) == pytest.approx(expected)


def test_mmc_mean_wait_closed_form():
    assert vt.mmc_mean_wait(1, 0.5, 1.0) == pytest.approx(1.0)  # rho / (mu - lambda)
    assert vt.mmc_mean_wait(2, 1.0, 1.0) == pytest.approx(1 / 3)


def test_erlang_c_refuses_an_unstable_queue():
    with pytest.raises(ValueError, match="offered load"):
        vt.erlang_c(2, 2.0)


@pytest.mark.parametrize(("version", "interval"), [("3.7", 4200), ("2.3", 4000)],
                         ids=["postfix-2.4+", "postfix-2.3"])
def test_steady_retry_interval(version, interval):
    up = Scenario.from_dict({"upstream": {"postfix_version": version}}).upstream
    assert vt.steady_retry_interval(up) == interval


@pytest.mark.parametrize(("days", "lag"), [(1, 2251), (2, 4023), (5, 1051)],
                         ids=["1d", "2d", "5d-default"])
def test_expiry_lag_exact_and_engine_reference_agree(days, lag):
    up = dataclasses.replace(Scenario.from_dict({}).upstream, maximal_queue_lifetime=days * DAY)
    assert vt.expiry_lag(up) == pytest.approx(lag, abs=1)
    assert residence_time(up) - days * DAY == pytest.approx(vt.expiry_lag(up), abs=1)


@pytest.mark.parametrize(("c", "rho"), [(1, 0.5), (5, 0.8), (20, 0.9)],
                         ids=["c1-rho0.5", "c5-rho0.8", "c20-rho0.9"])
def test_delivery_pool_is_mmc(c, rho):
    runs = np.array([vt.mmc_run(c, rho, 50000, seed) for seed in range(1, 6)])
    for col, theory in ((0, vt.mmc_mean_wait(c, rho * c, 1.0)), (1, vt.erlang_c(c, rho * c))):
        m, lo, hi = mean_ci(runs[:, col])
        half99 = (hi - m) * T995_DF4 / t975(4)
        assert abs(m - theory) <= half99, (c, rho, col, m, theory, half99)


@pytest.mark.parametrize(("shape", "second_moment"), [
    ({"smtp_transaction_time_distribution": "constant"}, 1.0),
    ({"smtp_transaction_time_distribution": "lognormal", "smtp_transaction_time_sigma": 0.5},
     math.exp(0.25)),
    ({"smtp_transaction_time_distribution": "empirical",
      "smtp_transaction_times": ["0.002s", "0.004s", "0.012s"]},
     ((2 / 6) ** 2 + (4 / 6) ** 2 + (12 / 6) ** 2) / 3),
], ids=["constant", "lognormal", "empirical"])
def test_one_agent_with_shaped_durations_is_mg1(shape, second_moment):
    """One agent, all mail valid, rho = 0.7, mean 1 s: the mean wait is Pollaczek-Khinchine's
    lambda E[S^2] / (2 (1 - rho)) for the shape's E[S^2] (constant 1, lognormal e^(sigma^2),
    empirical: the mean of (v / mean v)^2), inside the 99 % interval over 5 seeds."""
    runs = np.array([vt.mmc_run(1, 0.7, 50000, seed, shape) for seed in range(1, 6)])
    m, lo, hi = mean_ci(runs[:, 0])
    half99 = (hi - m) * T995_DF4 / t975(4)
    theory = vt.mg1_mean_wait(0.7, 1.0, second_moment)
    assert abs(m - theory) <= half99, (m, theory, half99)
    exp_wait = vt.mmc_mean_wait(1, 0.7, 1.0)  # the exponential's is clearly different
    assert abs(exp_wait - theory) > 3 * half99


def test_littles_law_on_the_deferred_queue():
    r = vt.littles_run(1, quick=True)
    assert abs(r["relative_difference"]) < 0.01, r
    # 2000/d x 30 % unknown for 4 d: Poisson with mean 2400, 4 sd allowed
    assert abs(r["messages"] - 2400) <= 4 * math.sqrt(2400)


def test_backlog_is_rate_times_lifetime_plus_exact_lag():
    life, rate, window = 2 * DAY, 1000.0, DAY
    backlog, lag = vt.backlog_run(life, 1, window, rate)
    up = dataclasses.replace(Scenario.from_dict({}).upstream, maximal_queue_lifetime=life)
    exact = vt.expiry_lag(up)
    n = rate * window / DAY
    assert abs(lag - exact) <= 4 * 87 / math.sqrt(n), (lag, exact)
    assert abs(lag - vt.steady_retry_interval(up) / 2) > 1000  # not the brief's 2100 s
    expected = rate / DAY * (life + exact)
    assert abs(backlog / expected - 1) <= 4 / math.sqrt(n), (backlog, expected)
