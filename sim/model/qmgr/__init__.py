"""The upstream queue host's queue manager, laid out like Postfix's src/qmgr/.

Modules: host (QueueHost, the SimPy process; Policy, schedule_params), incoming (the upstream's
smtpd validation and incoming queue), queue_file (FIELDS), engine (the compiled tick engine),
rules (per-message rules), site (the destination's throttle), observe (counting).

Public names: QueueHost, InitialQueue, Policy, schedule_params, FIELDS, TICK, ATTEMPT.
"""

from sim.model.qmgr.host import (
    ATTEMPT,
    TICK,
    InitialQueue,
    Policy,
    QueueHost,
    schedule_params,
)
from sim.model.qmgr.queue_file import FIELDS

__all__ = ["QueueHost", "InitialQueue", "Policy", "schedule_params", "FIELDS", "TICK",
           "ATTEMPT"]
