"""The fast engine against the naive reference model (tests/naive.py: one SimPy process per
message): the same scenarios, several seeds each, statistics that must agree within noise."""

import numpy as np
import pytest

from sim import Scenario, simulate
from tests.naive import naive_simulate

SEEDS = range(1, 9)

SCENARIOS = {
    # light load: 450 backlog with a 1-day lifetime, retries and expiry
    "450-light": {
        "simulation": {"duration": "2d", "sample_interval": "1h"},
        "senders": [{"rate": "2000/d", "unknown_recipient_fraction": 0.3,
                     "forged_sender_fraction": 0.5}],
        "upstream": {"maximal_queue_lifetime": "1d"},
        "relay": {"unknown_local_recipient_reject_code": 450},
    },
    # the fix from 450 to 550, an outage, two recipients per message
    "fix-and-outage": {
        "simulation": {"duration": "1d", "sample_interval": "1h"},
        "senders": [{"rate": "3000/d", "unknown_recipient_fraction": 0.4,
                     "recipients_per_message": 2, "forged_sender_fraction": 0.8}],
        "relay": {"unknown_local_recipient_reject_code": 450,
                  "outages": [{"start": "6h", "duration": "2h"}]},
        "changes": [{"at": "12h", "relay": {"unknown_local_recipient_reject_code": 550}}],
    },
    # short outages under a busy scan grid: batches of refusals make the destination dead
    # (1/window per failure), lone ones do not, sessions under way are cut
    "short-outages-cohorts": {
        "simulation": {"duration": "12h", "sample_interval": "10m"},
        "senders": [{"rate": "0.05/s", "unknown_recipient_fraction": 0.2}],
        "upstream": {"smtp_transaction_time": "1s", "queue_run_delay": "60s",
                     "minimal_backoff_time": "120s", "maximal_backoff_time": "600s",
                     "default_destination_concurrency_limit": 4},
        "relay": {"unknown_local_recipient_reject_code": 450,
                  "outages": [{"start": f"{3600 * k + 900}s", "duration": "400s"}
                              for k in range(12)]},
    },
    # the upstream's soft_bounce defers the relay's 550s until they expire; null senders with a
    # shorter bounce_queue_lifetime; a scheduled change of the backoff clamps
    "soft-bounce-null-senders": {
        "simulation": {"duration": "2d", "sample_interval": "1h"},
        "senders": [{"rate": "2000/d", "unknown_recipient_fraction": 0.3,
                     "null_sender_fraction": 0.3, "forged_sender_fraction": 0.5}],
        "upstream": {"soft_bounce": True, "maximal_queue_lifetime": "1d",
                     "bounce_queue_lifetime": "6h"},
        "relay": {"unknown_local_recipient_reject_code": 550},
        "changes": [{"at": "1d", "upstream": {"minimal_backoff_time": "600s",
                                              "maximal_backoff_time": "2h"}}],
    },
    # the concurrency limit binds: one agent at 80 % load (M/M/1 for valid mail) plus retries
    "concurrency-binding": {
        "simulation": {"duration": "6h", "sample_interval": "10m"},
        "senders": [{"rate": "0.35/s", "unknown_recipient_fraction": 0.1}],
        "upstream": {"default_destination_concurrency_limit": 1,
                     "smtp_transaction_time": "2s"},
        "relay": {"unknown_local_recipient_reject_code": 450},
    },
    # Exim with (recipient, sender) pairs that repeat (20 senders x 3 unknown recipients, and
    # the null sender's): the pairs' shared retry records (sim.model.qmgr.retry_records)
    "exim-shared-pairs": {
        "simulation": {"duration": "2d", "sample_interval": "1h"},
        "senders": [{"rate": "2000/d", "unknown_recipient_fraction": 0.5,
                     "null_sender_fraction": 0.2, "sender_addresses": 20,
                     "unknown_recipients_per_sender": 3}],
        "upstream": {"mta": "exim", "exim_retry_rule": "F,1h,10m; G,8h,30m,1.5; F,1d,2h",
                     "queue_runner_interval": "5m"},
        "relay": {"unknown_local_recipient_reject_code": 450},
    },
    # the same with lognormal durations (sigma 0.8): the agents' queue follows their shape
    "concurrency-binding-lognormal": {
        "simulation": {"duration": "6h", "sample_interval": "10m"},
        "senders": [{"rate": "0.35/s", "unknown_recipient_fraction": 0.1}],
        "upstream": {"default_destination_concurrency_limit": 1,
                     "smtp_transaction_time": "2s",
                     "smtp_transaction_time_distribution": "lognormal",
                     "smtp_transaction_time_sigma": 0.8},
        "relay": {"unknown_local_recipient_reject_code": 450},
    },
    # the relay's smtpd error limits in Postfix's cached sessions: retries to unknown users
    # slow every reply past smtpd_soft_error_limit, and valid mail waits behind them
    "error-limits-cached-sessions": {
        "simulation": {"duration": "6h", "sample_interval": "10m"},
        "senders": [{"rate": "0.2/s", "unknown_recipient_fraction": 0.5}],
        "upstream": {"default_destination_concurrency_limit": 2,
                     "smtp_transaction_time": "1s", "queue_run_delay": "60s",
                     "minimal_backoff_time": "60s", "maximal_backoff_time": "300s"},
        "relay": {"unknown_local_recipient_reject_code": 450, "smtpd_soft_error_limit": 4,
                  "smtpd_hard_error_limit": 10},
    },
}


def stats(summary, ts):
    return {
        "delivered": summary["recipients"]["delivered"],
        "expired": summary["recipients"]["expired"],
        "bounced": summary["recipients"]["bounced"],
        "attempts": summary["attempts"],
        "dsn": summary["dsn"]["nondelivery"],
        "mean_deferred": float(np.mean(ts["deferred"])),
        "p50": summary["delivery_delay_s"]["p50"],
        "p95": summary["delivery_delay_s"]["p95"],
    }


@pytest.fixture(scope="module", params=list(SCENARIOS), ids=list(SCENARIOS))
def both(request):
    s = Scenario.from_dict(SCENARIOS[request.param])
    fast = [stats(r.summary, r.timeseries) for r in (simulate(s, seed=k) for k in SEEDS)]
    naive = [stats(r["summary"], r["timeseries"]) for r in (naive_simulate(s, seed=k)
                                                            for k in SEEDS)]
    return request.param, fast, naive


@pytest.mark.slow
@pytest.mark.parametrize("stat", ["delivered", "expired", "bounced", "attempts", "dsn",
                                  "mean_deferred", "p50", "p95"])
def test_engines_agree_within_noise(both, stat):
    name, fast, naive = both
    a = np.array([f[stat] for f in fast], dtype=float)
    b = np.array([n[stat] for n in naive], dtype=float)
    if np.all(np.isnan(a)) and np.all(np.isnan(b)):
        return
    se = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    # 4 standard errors, plus 1 % of the level for quantities whose seed-to-seed spread is ~0
    # (then the engines must agree to within rounding and quantile-bin width)
    tol = 4 * se + 0.01 * max(abs(a.mean()), abs(b.mean())) + 1e-9
    assert abs(a.mean() - b.mean()) <= tol, (name, stat, a.mean(), b.mean(), se)
