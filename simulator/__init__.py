"""A simulated podcast world whose ground truth is known: the embedded default data source.

- :mod:`podtarget.simulator.config`: :class:`WorldConfig` (sizes, behaviour, ground-truth coefficients, presets);
- :mod:`podtarget.simulator.world`: :class:`World` (entities, hidden traits, the true outcome model, save/load);
- :mod:`podtarget.simulator.behaviour`: :class:`ShardSimulator` (one shard of users, day by day);
- :mod:`podtarget.simulator.dirt`: realistic defects, counted;
- :mod:`podtarget.simulator.tabular`: a generated two-task tabular table without channels, the example of training
  on a table that is not the podcast one.

Nothing here imports Beam's pipeline machinery; :mod:`podtarget.transforms.beam.simulate` wraps it in Beam.
"""

from .config import GroundTruth, WorldConfig
from .world import OutcomeProbabilities, World

__all__ = ["GroundTruth", "OutcomeProbabilities", "World", "WorldConfig"]

# The folders are the package podtarget (pyproject's package-dir): imported as `simulator` from the repository root,
# this folder would be a second copy of it, with its own module state, beside the installed one.
if __name__ != "podtarget.simulator":
    raise ImportError(
        f"{__name__!r} is the folder simulator/ of podtarget: import podtarget.simulator (make setup installs it)"
    )
