"""The model: senders, the relay, retry schedules, the deferred store, delivery agents, the
observation of a run, and the upstream's queue manager (sim.model.qmgr). It imports nothing
from the formats, studies, reports or CLI above it."""
