"""Studies: many runs of one scenario (sweeps, seeds, statistics, experiment scaffolding)."""
