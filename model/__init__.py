"""The joint multi-task model: spec, data, network, losses, metrics, artifacts and training (docs/design.md).

Importing it changes nothing in the environment, except as a ``python -m`` command, where a Ctrl-C while the command
still imports torch is one line (``common/cli.py``). The commands that train (``podtarget.model.train``,
``podtarget.evaluation.ablations`` and ``.abtest``) want ``OMP_WAIT_POLICY=PASSIVE`` before torch loads: ``make``
exports it, and each warns when it is missing (``podtarget.common.cli.warn_if_threads_spin`` says why).
"""

from ..common.cli import quiet_interrupts_while_starting

quiet_interrupts_while_starting()

# The folders are the package podtarget (pyproject's package-dir): imported as `model` from the repository root,
# this folder would be a second copy of it, with its own module state, beside the installed one.
if __name__ != "podtarget.model":
    raise ImportError(
        f"{__name__!r} is the folder model/ of podtarget: import podtarget.model (make setup installs it)"
    )
