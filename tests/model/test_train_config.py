"""TrainConfig refuses a bad setting when it is made, naming the setting, what it accepts and what it was given
(the message of common/checks), instead of failing minutes into a run or training on nonsense."""

import re

import pytest

from podtarget.model.train import TrainConfig, parse_args

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
