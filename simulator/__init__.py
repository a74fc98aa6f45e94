"""A simulated podcast world whose ground truth is known: the embedded default data source.

- :mod:`simulator.config`: :class:`WorldConfig` (sizes, behaviour, ground-truth coefficients, presets);
- :mod:`simulator.world`: :class:`World` (entities, hidden traits, the true outcome model, save/load);
- :mod:`simulator.behaviour`: :class:`ShardSimulator` (one shard of users, day by day);
- :mod:`simulator.dirt`: realistic defects, counted.

Nothing here imports Beam's pipeline machinery; :mod:`transforms.simulate` wraps it in Beam.
"""

from simulator.config import GroundTruth, WorldConfig
from simulator.world import OutcomeProbabilities, World

__all__ = ["GroundTruth", "OutcomeProbabilities", "World", "WorldConfig"]
