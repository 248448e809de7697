"""relaysim: a discrete-event simulator of an upstream mail-queue host and the SMTP relay
behind it, under real MTA retry schedules.

Public names: Scenario, simulate, Results, ScenarioError, __version__.

The public names are imported on first use (PEP 562), so that `python -m sim` reaches its own
Ctrl-C handling (sim/__main__.py) before numpy, numba and the model load.
"""

__version__ = "0.1.0"

__all__ = ["Scenario", "simulate", "Results", "ScenarioError", "__version__"]

_WHERE = {"Scenario": "sim.scenario", "simulate": "sim.model.simulate",
          "Results": "sim.results", "ScenarioError": "sim.errors"}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
