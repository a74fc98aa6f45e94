"""Toy tables and a trained toy run, built once per session for the model tests."""

from __future__ import annotations

import pytest

from podtarget.model.train import TrainConfig, train
from tests.model.toy import MOVIE_SPEC, PODCAST_SPEC, write_movie_toy, write_podcast_toy, write_spec


@pytest.fixture(scope="session")
def podcast_toy(tmp_path_factory):
    """(examples root, spec path): 7 days shaped like our table, the last with immature labels."""
    root = tmp_path_factory.mktemp("podcast_toy")
    write_podcast_toy(root / "examples", days=7, unobserved_days=1)
    return str(root / "examples"), write_spec(root / "spec.toml", PODCAST_SPEC)


@pytest.fixture(scope="session")
def movie_toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("movie_toy")
    write_movie_toy(root / "examples")
    return str(root / "examples"), write_spec(root / "spec.toml", MOVIE_SPEC)


def quick_config(examples: str, out, **changes) -> TrainConfig:
    """A TrainConfig with the settings every model test shares: small batches, no progress line, one torch
    thread (the test models are tiny, and two spinning OpenMP threads crawl when the machine is busy)."""
    return TrainConfig(
        **{"examples": examples, "out": str(out), "batch_size": 512, "progress": False, "threads": 1, **changes}
    )


def toy_config(podcast_toy, out, **changes) -> TrainConfig:
    examples, spec = podcast_toy
    return quick_config(examples, out, **{"spec": spec, "run": "toy", "epochs": 2, "lr": 0.01, **changes})


@pytest.fixture(scope="session")
def trained_toy(podcast_toy, tmp_path_factory):
    """A RunResult of two epochs on the podcast toy table."""
    return train(toy_config(podcast_toy, tmp_path_factory.mktemp("models")))


TABULAR_SPEC = """
[groups.visitor.numeric]
age = {}
income = { log1p = true, missing = true }
sessions_7d = { log1p = true }
[groups.visitor.categorical]
device = 8
country = 64
[groups.visit.numeric]
price = { log1p = true }
[groups.visit.categorical]
category = 512
brand = { buckets = 4096, min_count = 2 }

[[tasks]]
name = "Click"
label = "click"
[[tasks]]
name = "Purchase"
label = "purchase"

[model]
embedding_dim = 4
bottom = [32, 16]
tower = [8]
"""


@pytest.fixture(scope="session")
def tabular_toy(tmp_path_factory):
    """(examples root, spec path, split days): the generated tabular table (no source column, two tasks), small."""
    from podtarget.simulator.tabular import TabularConfig, write_tabular

    root = tmp_path_factory.mktemp("tabular_toy")
    days = write_tabular(TabularConfig(train_rows=6000, valid_rows=2000, test_rows=2000), root / "examples")
    return str(root / "examples"), write_spec(root / "spec.toml", TABULAR_SPEC), days
