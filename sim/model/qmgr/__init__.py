"""The upstream queue host's queue manager, in Postfix's words (src/qmgr/).

Public names: QueueHost, Batch, Policy, schedule_params, FIELDS, TICK (see sim.model.qmgr.host).
"""

from sim.model.qmgr.host import FIELDS, TICK, Batch, Policy, QueueHost, schedule_params

__all__ = ["QueueHost", "Batch", "Policy", "schedule_params", "FIELDS", "TICK"]
