"""Evaluation of the unified model on a simulated world whose ground truth is known.

- :mod:`podtarget.evaluation.ablations`: the paper's offline ablations (Table 1) and ours, over seeds (``make
evaluate``).
- :mod:`podtarget.evaluation.abtest`: a budget-split online A/B test on held-out days, outcomes drawn from the
simulator's
  ground truth (``make abtest``).
- :mod:`podtarget.evaluation.report`: the markdown report, its PNG plots and the JSON behind them (``make report``).

Run as ``python -m``, a Ctrl-C while a command still imports is one line (``common/cli.py``).
"""

from podtarget.common.cli import quiet_interrupts_while_starting

quiet_interrupts_while_starting()
