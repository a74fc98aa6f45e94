"""A simulated podcast world whose ground truth is known: the embedded default data source.

- :mod:`podtarget.simulator.config`: :class:`WorldConfig` (sizes, behaviour, ground-truth coefficients, presets);
- :mod:`podtarget.simulator.world`: :class:`World` (entities, hidden traits, the true outcome model, save/load);
- :mod:`podtarget.simulator.behaviour`: :class:`ShardSimulator` (one shard of users, day by day);
- :mod:`podtarget.simulator.dirt`: realistic defects, counted;
- :mod:`podtarget.simulator.tabular`: a generated two-task tabular table without channels, the example of training
  on a table that is not the podcast one.

Nothing here imports Beam's pipeline machinery; :mod:`podtarget.transforms.beam.simulate` wraps it in Beam.
"""

from podtarget.simulator.config import GroundTruth, WorldConfig
from podtarget.simulator.world import OutcomeProbabilities, World

__all__ = ["GroundTruth", "OutcomeProbabilities", "World", "WorldConfig"]
