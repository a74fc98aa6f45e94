"""TrainConfig refuses a bad setting when it is made, naming the setting, what it accepts and what it was given
(the message of common/checks), instead of failing minutes into a run or training on nonsense."""

import re

import pytest

from podtarget.model.data import SamplingPlan
from podtarget.model.learner import LrSchedule
from podtarget.model.spec import Spec
from podtarget.model.train import few_steps_warning
from podtarget.model.train_config import TrainConfig, parse_args, with_spec_training

DAYS = "days as YYYY-MM-DD, a..b ranges or a comma list (e.g. 2026-03-02..2026-03-07) or None"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"epochs": 0}, "an int in the range [1, inf)"),
        ({"batch_size": 0}, "an int in the range [1, inf)"),
        ({"batch_size": 512.0}, "an int in the range [1, inf)"),
        ({"chunk_rows": -1}, "an int in the range [1, inf)"),
        ({"pool_rows": 0}, "an int in the range [1, inf)"),
        ({"seed": -7}, "an int in the range [0, inf)"),
        ({"patience": -1}, "an int in the range [0, inf)"),
        ({"threads": 0}, "an int in the range [1, inf) or None"),
        ({"max_batches_per_epoch": 0}, "an int in the range [1, inf) or None"),
        ({"lr": 0.0}, "a float in the range (0, inf)"),
        ({"lr": float("nan")}, "a float in the range (0, inf)"),
        ({"embedding_lr": -0.1}, "a float in the range (0, inf) or None"),
        ({"source_ratio": 1.0}, "a float in the range (0, 1) or None"),
        ({"source_ratio": 0}, "a float in the range (0, 1) or None"),
        ({"max_source_repeats": 0.5}, "a float in the range [1, inf) or None"),
        ({"architecture": "moe"}, "a str among ['shared_bottom', 'mmoe', 'ple'] or None"),
        ({"loss_weighting": "gradnorm"}, "a str among ['fixed', 'uncertainty', 'pcgrad']"),
        ({"split": (0.7, 0.3)}, "three fractions >= 0 summing to 1 (train, valid, test)"),
        ({"split": (0.7, 0.2, 0.2)}, "three fractions >= 0 summing to 1 (train, valid, test)"),
        ({"split": (1.2, -0.1, -0.1)}, "three fractions >= 0 summing to 1 (train, valid, test)"),
        ({"train_days": "2026-03-02..2026-13-01"}, DAYS),
        ({"test_days": "last week", "train_days": "2026-03-02"}, DAYS),
        ({"valid_days": 20260302, "train_days": "2026-03-02"}, DAYS),
    ],
)
def test_a_bad_setting_names_itself_what_it_accepts_and_what_it_got(changes, expected):
    name, value = next(iter(changes.items()))  # the setting under test comes first
    with pytest.raises(ValueError) as raised:
        TrainConfig(examples="./data/examples", **changes)
    assert str(raised.value) == f"The '{name}' parameter of TrainConfig must be {expected}. Got {value!r} instead."


def test_task_weights_must_be_numbers_at_least_zero():
    with pytest.raises(ValueError, match=re.escape("""The 'task_weights["Click"]' parameter of TrainConfig""")):
        TrainConfig(examples="x", task_weights={"Click": -0.5})
    assert TrainConfig(examples="x", task_weights={"Click": 0, "Like": 2.5}).task_weights == {"Click": 0, "Like": 2.5}


def test_explicit_validation_or_test_days_need_training_days():
    with pytest.raises(ValueError) as raised:
        TrainConfig(examples="x", valid_days="2026-03-09")
    assert str(raised.value) == (
        "The 'train_days' parameter of TrainConfig must be days when valid_days or test_days are given. "
        "Got None instead."
    )


def test_the_defaults_and_the_optional_settings_are_valid():
    config = TrainConfig(examples="x", source_ratio=None, architecture="mmoe", embedding_lr=0.01, threads=2)
    assert config.epochs == 5 and config.source_ratio is None
    explicit = TrainConfig(examples="x", train_days="2026-03-02..2026-03-05", valid_days="2026-03-06", test_days="")
    assert explicit.split == (0.7, 0.15, 0.15)


def test_the_command_line_flags_reach_the_same_checks():
    with pytest.raises(ValueError) as raised:
        parse_args(["--examples=x", "--split=0.5,0.5"])
    assert str(raised.value) == (
        "The 'split' parameter of TrainConfig must be three fractions >= 0 summing to 1 (train, valid, test). "
        "Got (0.5, 0.5) instead."
    )
    with pytest.raises(ValueError, match=r"^The 'source_ratio' parameter of TrainConfig .* Got 1\.5 instead\.$"):
        parse_args(["--examples=x", "--source_ratio=1.5"])
    assert parse_args(["--examples=x", "--no_source_balance", "--source_ratio=1.5"]).source_ratio is None


def test_a_bad_flag_is_a_one_line_error_from_the_command(tmp_path, capsys):
    from podtarget.model.train import main

    assert main([f"--examples={tmp_path}", f"--out={tmp_path}", "--epochs=0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "The 'epochs' parameter of TrainConfig must be" in err


def test_the_cold_start_flags_parse():
    config = parse_args(["--examples=x", "--source_history_days=ad=3", "--max_source_repeats=2"])
    assert config.source_history_days == {"ad": 3} and config.max_source_repeats == 2.0
    assert parse_args(["--examples=x"]).source_history_days == {}
    assert parse_args(["--examples=x"]).max_source_repeats == 2.0  # the default cap
    assert parse_args(["--examples=x", "--no_repeat_cap"]).max_source_repeats is None
    with pytest.raises(ValueError, match="expected SOURCE=DAYS"):
        parse_args(["--examples=x", "--source_history_days=ad=three"])
    with pytest.raises(ValueError) as raised:
        TrainConfig(examples="x", source_history_days={"ad": 0})
    assert str(raised.value) == (
        "The 'source_history_days[\"ad\"]' parameter of TrainConfig must be an int in the range [1, inf). "
        "Got 0 instead."
    )


def test_the_spec_training_settings_fill_in_what_the_caller_left():
    spec = Spec.from_dict(
        {
            "groups": {"row": {"numeric": {"age": {}}}},
            "tasks": [{"name": "Click", "label": "click"}],
            "training": {"epochs": 25, "lr": 0.0003, "batch_size": 512, "lr_schedule": "cosine"},
        }
    )
    config = with_spec_training(TrainConfig(examples="x"), spec)
    assert (config.epochs, config.lr, config.batch_size, config.lr_schedule) == (25, 0.0003, 512, "cosine")
    # A value other than the default, or a flag given on the command line even at the default, wins.
    config = with_spec_training(TrainConfig(examples="x", epochs=8), spec)
    assert (config.epochs, config.lr) == (8, 0.0003)
    given = parse_args(["--examples=x", "--epochs=5", "--lr_schedule=constant"])
    assert given.given == ("epochs", "lr_schedule")
    assert (with_spec_training(given, spec).epochs, with_spec_training(given, spec).lr_schedule) == (5, "constant")
    assert parse_args(["--examples=x", "--lr=0.01"]).given == ("lr",)  # --lr, not --lr_schedule


def test_a_learning_rate_schedule_warms_up_then_decays_to_zero():
    cosine = LrSchedule("cosine", warmup_steps=4, total_steps=104)
    assert [cosine.factor(k) for k in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert cosine.factor(4) == 1.0 and cosine.factor(54) == pytest.approx(0.5, abs=0.01)
    assert cosine.factor(103) == pytest.approx(0.0) and cosine.factor(500) == pytest.approx(0.0)
    linear = LrSchedule("linear", warmup_steps=0, total_steps=11)
    assert [round(linear.factor(k), 6) for k in (0, 5, 10)] == [1.0, 0.5, 0.0]
    assert LrSchedule("constant", warmup_steps=2, total_steps=10).factor(7) == 1.0
    with pytest.raises(ValueError, match="The 'lr_schedule' parameter of TrainConfig must be a str among"):
        TrainConfig(examples="x", lr_schedule="exponential")


def test_an_epoch_of_a_few_steps_is_warned_with_a_scale_for_the_table():
    plan = SamplingPlan(8192, None, None, ("all",), expected_batches=7, expected_rows=60_000)
    text = few_steps_warning(TrainConfig(examples="x"), plan)
    assert text is not None and text.startswith("an epoch is only 7 step(s) of --batch_size=8192 over 60,000")
    assert "--batch_size=512 --epochs=25 --patience=3" in text
    many = SamplingPlan(8192, None, None, ("all",), expected_batches=400, expected_rows=3_276_800)
    assert few_steps_warning(TrainConfig(examples="x"), many) is None
