"""The evaluation's runs: the mature split, and cache keys that outlive settings added to training later. The cache
itself (a rerun trains nothing; a changed setting retrains) is checked in test_ablations.py."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from podtarget.evaluation.runs import LATER_SETTINGS, _key, mature_split
from podtarget.model.train import TrainConfig


def test_the_mature_split_takes_the_last_mature_days(tmp_path):
    root = tmp_path / "examples"
    flags = {"2026-03-02": True, "2026-03-03": True, "2026-03-04": True, "2026-03-05": True, "2026-03-06": False}
    for day, mature in flags.items():
        (root / f"dt={day}").mkdir(parents=True)
        (root / f"dt={day}" / "_SUCCESS.json").write_text(json.dumps({"labels_mature": mature}))
    split = mature_split(str(root), valid_count=1, test_count=2)
    assert split == {
        "train_days": "2026-03-02",
        "valid_days": "2026-03-03",
        "test_days": "2026-03-04..2026-03-05",
    }
    with pytest.raises(ValueError, match=r"needs 5 days with mature labels .* found 4 \(immature: 2026-03-06\)"):
        mature_split(str(root), valid_count=2, test_count=2)


def test_training_settings_added_later_leave_the_cache_keys_of_earlier_runs_alone():
    config = TrainConfig(examples="x", run="baseline-s1", seed=1, epochs=4)
    fields = dataclasses.asdict(config)
    for name in ("out", "run", "overwrite", "resume", "progress", "threads", "examples", *LATER_SETTINGS):
        fields.pop(name)
    earlier = hashlib.sha256(json.dumps({"config": fields, "table": "t"}, sort_keys=True).encode()).hexdigest()[:16]
    assert _key(config, "t") == earlier  # the key such a run was cached under before these settings existed
    assert _key(dataclasses.replace(config, lr_schedule="cosine"), "t") != earlier
