"""The joint multi-task model: spec, data, network, losses, metrics, artifacts and training (see README, Training).

Importing it changes nothing in the environment. The commands that train (``podtarget.model.train``,
``podtarget.evaluation.ablations`` and ``.abtest``) want ``OMP_WAIT_POLICY=PASSIVE`` before torch loads: ``make``
exports it, and each warns when it is missing (``podtarget.common.cli.warn_if_threads_spin`` says why). Run as
``python -m``, a Ctrl-C while a command still imports torch is one line (``common/cli.py``).
"""

from podtarget.common.cli import quiet_interrupts_while_starting

quiet_interrupts_while_starting()
