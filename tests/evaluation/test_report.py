"""The report: markdown with the paper's figures beside ours and their intervals, Table 1's verdicts, the world's
parameters, PNG plots and the JSON behind them."""

from __future__ import annotations

import json
import os
import pathlib

import pytest

from podtarget.evaluation.report import write_report


def test_the_report_writes_markdown_plots_and_json(ablations, abtest, eval_world):
    out = ablations[0].out
    path = write_report(out, world_dir=f"{eval_world}/world")
    text = pathlib.Path(path).read_text()
    for name in ("ablations.json", "abtest.json", "world_config.json"):
        assert json.loads(pathlib.Path(os.path.join(out, name)).read_text())
    for png in ("ap_by_tier.png", "abtest_by_tier.png", "calibration.png"):
        with open(os.path.join(out, png), "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n", png
        assert f"]({png})" in text
    assert "+50.2%" in text and "+4.5%" in text  # Table 1 beside ours
    assert "+18%" in text and "-22%" in text  # Table 2 beside ours
    assert "less-streamed = tiers 3-5" in text
    assert '"frequency_cap_per_day": 3' in text  # the simulator's configuration, recorded
    assert str(eval_world) not in text and "Everything, as in `world_config.json`" in text  # no machine path
    written = json.loads(pathlib.Path(os.path.join(out, "ablations.json")).read_text())
    change = written["figures"]["ads"]["segments"]["all"]["change_pct"]["joint|baseline"]
    assert f"{change['point']:+.1f}% [{change['ci'][0]:+.1f}, {change['ci'][1]:+.1f}]" in text
    for d in written["directions"]:  # every direction of Table 1 with its verdict
        assert f"| **{d['verdict']}** |" in text
    assert "World parameters (fixed before the evaluation ran)" in text and "| `n_users` | 700 |" in text
    assert "### Like and Follow heads" in text and "Inventory:" in text
    # The ceiling and the offline metrics that match the A/B designs.
    assert "### How much of the achievable gain (ceiling)" in text and "within-user AUC" in text
    # The A/B test in both designs, with the reference arms and where each arm sits between random and oracle.
    assert "### 2a. Auction design" in text and "### 2b. Audience design" in text
    assert "**What each design can see.**" in text
    abtest = json.loads(pathlib.Path(os.path.join(out, "abtest.json")).read_text())
    pos = abtest["designs"]["auction"]["segments"]["all"]["position"]["treatment"]
    assert "| `treatment` |" in text and f"{pos['point']:.2f} [{pos['ci'][0]:.2f}, {pos['ci'][1]:.2f}]" in text
    for arm in ("oracle", "random", "truth_shared"):
        assert f"| `{arm}` |" in text


def test_nothing_to_report_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing to report"):
        write_report(str(tmp_path))
