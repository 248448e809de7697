"""relaysim: a discrete-event simulator of an upstream mail-queue host and the SMTP relay
behind it, under real MTA retry schedules.

Public names: Scenario, simulate, Results, ScenarioError, __version__.
"""

__version__ = "0.1.0"

from sim.errors import ScenarioError  # noqa: E402
from sim.model.simulate import simulate  # noqa: E402
from sim.results import Results  # noqa: E402
from sim.scenario import Scenario  # noqa: E402

__all__ = ["Scenario", "simulate", "Results", "ScenarioError", "__version__"]
