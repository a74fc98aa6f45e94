"""The default spec and model on a small simulated world (our real example table, built by the pipelines).

The tiny world is small: three training days hold about 8,000 impressions (about 120 clicks), and its two test
days about 160 promotion streams, 40 ad streams, 90 clicks, 22 likes and 14 follows. That is enough for a clear
margin on the stream tasks, and for ranking likes and follows well above chance, but not for Click, and no model
change can give it one (measured, issue 4): clicks have no show-appeal or language term, and what drives them is
hidden from the table (the user-show affinity is mostly a per-user and per-show latent vector, plus a hidden ad
and promotion responsiveness). On these two test days the ground truth reaches click ROC-AUC 0.71 (ad) and 0.65
(promotions) from the true affinity alone, while a score built from everything the table could teach at best (the
user's recently streamed shows scored with the *true* latent show vectors, the true creative quality, format and
slot effects) reaches 0.49 and 0.58; the model scored 0.49-0.53 over six seeds. Every task beats a constant with
a clear margin on the podcast toy table (``test_train.py``); on the demo world Click ranks above chance (AUC
0.57-0.58) and, with ``--prior_init``, beats the constant's log loss (README, "Training").
"""

import shutil

import pytest

from model.spec import load_spec
from model.train import train
from pipelines import backfill
from tests.model.conftest import quick_config

# Short attribution windows so that five of the six days have mature labels.
WINDOWS = [
    "--stream_window_hours=12",
    "--follow_window_days=0.5",
    "--like_window_days=0.5",
    "--click_window_hours=12",
    "--allowed_lateness_days=0",
]


@pytest.fixture(scope="module")
def tiny_examples(clean_tiny_world, tmp_path_factory) -> str:
    source, _ = clean_tiny_world
    root = tmp_path_factory.mktemp("tiny_examples") / "data"
    shutil.copytree(f"{source}/raw", root / "raw")
    backfill.run(
        [
            f"--data_root={root}",
            "--start=2026-03-02",
            "--end=2026-03-07",
            "--allow_unobserved",
            "--runner=FnApiRunner",
            "--n_buckets=4",
            *WINDOWS,
        ]
    )
    return str(root / "examples")


@pytest.mark.slow
def test_default_model_beats_a_constant_on_the_tiny_world(tiny_examples, tmp_path):
    result = train(
        quick_config(
            tiny_examples,
            tmp_path,
            run="tiny",
            train_days="2026-03-02..2026-03-04",
            valid_days="",
            test_days="2026-03-05..2026-03-06",
            epochs=6,
            lr=0.001,
        )
    )
    assert result.spec == load_spec().with_changes()  # the shipped default spec, unchanged
    test = {task: report["overall"] for task, report in result.metrics["test"].items()}
    assert all(m["rows"] > 1000 and m["positives"] >= 10 for m in test.values()), test
    for task in ("PromotionStream", "AdStream"):
        assert test[task]["ap_lift"] > 1.5 and test[task]["roc_auc"] > 0.57, (task, test[task])
        assert test[task]["log_loss"] < test[task]["baseline_log_loss"], (task, test[task])
    for task in ("Like", "Follow"):
        assert test[task]["ap_lift"] > 1.5 and test[task]["roc_auc"] > 0.6, (task, test[task])
    # By popularity tier too (the slices exist and carry rows).
    assert len(result.metrics["test"]["PromotionStream"]["by_slice"]) >= 4
