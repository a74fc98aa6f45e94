"""The default spec and model on small simulated worlds (our real example table, built by the pipelines).

The tiny world is small: three training days hold about 8,000 impressions (about 120 clicks), and its two test
days about 160 promotion streams, 40 ad streams, 90 clicks, 22 likes and 14 follows. That is enough for a clear
margin on the stream tasks, and for ranking likes and follows well above chance, but not for Click (measured; see
docs/results.md, Training): clicks have no show-appeal or language term, and what drives them is hidden from the
table (the user-show affinity is mostly a per-user and per-show latent vector, plus a hidden ad and promotion
responsiveness). On these two test days the ground truth reaches click ROC-AUC 0.71 (ad) and 0.65 (promotions) from
the true affinity alone, while a score built from everything the table could teach at best (the user's recently
streamed shows scored with the *true* latent show vectors, the true creative quality, format and slot effects) reaches
0.49 and 0.58; the model scored 0.49-0.53 over six seeds.

So every task, Click included, is asserted on the *small* world as well: the demo preset's 20,000 users over 6 days
(about 57,000 test rows and 874 test clicks). There Click's margin is small but clear: over training seeds 1-8 the
model's test ROC-AUC was 0.538-0.561 (seed 7, the test's: 0.541) and its AP 1.15-1.30 times the click rate, where a
random ranking of the same rows gives AUC 0.500 +- 0.010 and AP 1.01 +- 0.04 times the rate (200 random rankings: at
most 0.528 and 1.20). AUC > 0.53 is three of those standard deviations above chance; AP is skewed and weaker
evidence at this rate, so it is asserted at > 1.1 only. Click's log loss is not asserted, as for Like and Follow: at
this signal it stays 1-5% above the constant's (a constant that knows the test days' click rate), and even the best
shrinking of the model's click logits towards their mean, fitted on the test days themselves, gains only 0.4% over
that constant (docs/results.md, "Training").
"""

import shutil

import pytest

from podtarget.model.spec import load_spec
from podtarget.model.train import train
from podtarget.pipelines import backfill
from tests.model.conftest import quick_config

# Short attribution windows so that five of the six days have mature labels.
WINDOWS = [
    "--stream_window_hours=12",
    "--follow_window_days=0.5",
    "--like_window_days=0.5",
    "--click_window_hours=12",
    "--allowed_lateness_days=0",
]


def build_examples(world_root: str, folder) -> str:
    """Examples of days 03-02..03-07 of a simulated world (its raw logs copied into ``folder``)."""
    root = folder / "data"
    shutil.copytree(f"{world_root}/raw", root / "raw")
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


@pytest.fixture(scope="module")
def tiny_examples(clean_tiny_world, tmp_path_factory) -> str:
    return build_examples(clean_tiny_world[0], tmp_path_factory.mktemp("tiny_examples"))


@pytest.fixture(scope="module")
def small_examples(clean_small_world, tmp_path_factory) -> str:
    return build_examples(clean_small_world[0], tmp_path_factory.mktemp("small_examples"))


def _test_metrics(examples: str, out, run: str, **changes) -> dict:
    """Per-task test metrics (overall, and the full report) of the shipped default spec trained on 03-02..03-04
    and tested on 03-05..03-06."""
    result = train(
        quick_config(
            examples,
            out,
            run=run,
            train_days="2026-03-02..2026-03-04",
            valid_days="",
            test_days="2026-03-05..2026-03-06",
            **changes,
        )
    )
    assert result.spec == load_spec().with_changes()  # the shipped default spec, unchanged
    return result.metrics["test"]


def _assert_streams_likes_and_follows_beat_a_constant(test: dict) -> None:
    for task in ("PromotionStream", "AdStream"):
        assert test[task]["ap_lift"] > 1.5 and test[task]["roc_auc"] > 0.57, (task, test[task])
        assert test[task]["log_loss"] < test[task]["baseline_log_loss"], (task, test[task])
    for task in ("Like", "Follow"):
        assert test[task]["ap_lift"] > 1.5 and test[task]["roc_auc"] > 0.6, (task, test[task])


@pytest.mark.slow
def test_default_model_beats_a_constant_on_the_tiny_world(tiny_examples, tmp_path):
    report = _test_metrics(tiny_examples, tmp_path, "tiny", epochs=6, lr=0.001)
    test = {task: task_report["overall"] for task, task_report in report.items()}
    assert all(m["rows"] > 1000 and m["positives"] >= 10 for m in test.values()), test
    _assert_streams_likes_and_follows_beat_a_constant(test)
    # By popularity tier too (the slices exist and carry rows).
    assert len(report["PromotionStream"]["by_slice"]) >= 4


@pytest.mark.slow
def test_default_model_beats_a_constant_on_every_task_of_the_small_world(small_examples, tmp_path):
    report = _test_metrics(small_examples, tmp_path, "small", epochs=2, batch_size=2048, lr=0.002)
    test = {task: task_report["overall"] for task, task_report in report.items()}
    assert all(m["rows"] > 15_000 and m["positives"] >= 100 for m in test.values()), test
    _assert_streams_likes_and_follows_beat_a_constant(test)
    # Click: 874 test clicks; a random ranking gives AUC 0.500 +- 0.010 and AP/rate 1.01 +- 0.04 (module docstring).
    click = test["Click"]
    assert click["positives"] >= 700, click
    assert click["roc_auc"] > 0.53 and click["ap_lift"] > 1.1, click
