"""Evaluation of the unified model on a simulated world whose ground truth is known.

- :mod:`podtarget.evaluation.ablations`: the paper's offline ablations (Table 1) and ours, over seeds, with the
  world's ground truth as a yardstick (``make evaluate``).
- :mod:`podtarget.evaluation.abtest`: the online A/B test on held-out days, every arm (the models and reference arms)
  on the same ad slots, in two market designs (:mod:`~podtarget.evaluation.auction`), outcomes drawn from the
  simulator's ground truth (``make abtest``).
- :mod:`podtarget.evaluation.coldstart`: Ads AP against the days of ad history the models train on, in two worlds
  (``make coldstart``).
- :mod:`podtarget.evaluation.report`: the markdown report, its PNG plots and the JSON behind them (``make report``).

Run as ``python -m``, a Ctrl-C while a command still imports is one line (``common/cli.py``).
"""

from ..common.cli import quiet_interrupts_while_starting

quiet_interrupts_while_starting()

# The folders are the package podtarget (pyproject's package-dir): imported as `evaluation` from the repository root,
# this folder would be a second copy of it, with its own module state, beside the installed one.
if __name__ != "podtarget.evaluation":
    raise ImportError(
        f"{__name__!r} is the folder evaluation/ of podtarget: import podtarget.evaluation (make setup installs it)"
    )
