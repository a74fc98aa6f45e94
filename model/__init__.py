"""The joint multi-task model: spec, data, network, losses, metrics, artifacts and training (see README, Training).

OpenMP threads wait passively unless the environment says otherwise. This must happen before torch is imported,
hence here: with the default (spinning) policy, torch's two threads on this 2-core machine slowed a tiny model's
training sevenfold whenever another process held a core (measured: 39 s instead of 5.5 s for the movie toy
table), and the bench-day training collapsed to 16k examples/s in one such run.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
