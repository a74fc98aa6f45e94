"""A generated two-task tabular table: the example of training on a table that is not the podcast one.

The podcast world (``simulator/world.py``) is one kind of table; users bring others. This writes a plain table of
the shape public click-and-conversion benchmarks have: one row per visit, numeric columns (heavy-tailed counts,
amounts, a score with outliers, some nulls) and categorical ones (strings of a few to thousands of values, an id
stored as floats with NaN for null, as pandas writes them), no source column, and two binary labels, ``click`` and
the rarer ``purchase``. Each label is a logistic model of the columns whose numeric effects are not linear (a
U-shape, thresholds, saturation) and whose categorical effects are drawn per value, so a model that only
z-scores the numerics leaves AUC on the table, and a per-task gradient-boosted tree model is the yardstick
(``benchmarks/tabular.py``). The days are split in time order: ``train_days`` days of training rows, then one
day of validation and one of test rows::

    python -m podtarget.simulator.tabular --out=./data-tabular     # 60k training, 20k validation, 20k test rows
    python -m podtarget.model.train --examples=./data-tabular --spec=model/specs/tabular.toml --run=tabular ...

From Python::

    >>> config = TabularConfig(train_rows=6000, valid_rows=2000, test_rows=2000)
    >>> write_tabular(config, "/tmp/tabular")
    {'train': ['2026-01-01'], 'valid': ['2026-01-02'], 'test': ['2026-01-03']}

The same config and seed write the same bytes on every machine.
"""

from __future__ import annotations

import dataclasses
import datetime
import pathlib
import sys
from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..common.checks import check_int
from ..common.cli import CommandParser, run_cli

START = datetime.date(2026, 1, 1)
NUMERIC = ("age", "income", "sessions_7d", "days_since_visit", "price", "tenure_days", "score")
# name -> distinct values; the last two are ids with a long tail (Zipf-drawn)
CATEGORICAL = {"device": 4, "country": 40, "channel": 8, "hour": 24, "category": 200, "brand": 2000}
FLOAT_CODED = "region"  # an id column stored as float64 with NaN for null
REGIONS = 120


@dataclasses.dataclass(frozen=True)
class TabularConfig:
    """Rows of each split and the seed. ``train_days``: how many days the training rows are spread over (the
    validation and test rows take one day each, after them).

        >>> TabularConfig(train_rows=60_000).train_rows
        60000
    """

    train_rows: int = 60_000
    valid_rows: int = 20_000
    test_rows: int = 20_000
    train_days: int = 1
    seed: int = 11

    def __post_init__(self) -> None:
        for name in ("train_rows", "valid_rows", "test_rows"):
            check_int("TabularConfig", name, getattr(self, name), low=100)
        check_int("TabularConfig", "train_days", self.train_days, low=1)
        check_int("TabularConfig", "seed", self.seed, low=0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclasses.dataclass(frozen=True)
class _Truth:
    """The hidden per-value effects of each categorical column on each task (drawn once per seed)."""

    click: dict[str, np.ndarray]
    purchase: dict[str, np.ndarray]
    brand_p: np.ndarray
    category_p: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator) -> _Truth:
        sizes = {**CATEGORICAL, FLOAT_CODED: REGIONS, "device_x_category": 4 * 200}
        scale = {"device": 0.3, "country": 0.4, "channel": 0.5, "hour": 0.2, "category": 0.6, "brand": 0.7}
        scale |= {FLOAT_CODED: 0.4, "device_x_category": 0.35}
        click = {k: rng.normal(0, scale[k], n) for k, n in sizes.items()}
        # The purchase effects share part of the click ones: the tasks are related, not the same.
        purchase = {k: 0.6 * click[k] + rng.normal(0, 0.8 * scale[k], n) for k, n in sizes.items()}
        zipf = 1.0 / np.arange(1, CATEGORICAL["brand"] + 1) ** 1.1
        zipf_c = 1.0 / np.arange(1, CATEGORICAL["category"] + 1) ** 0.8
        return cls(click, purchase, zipf / zipf.sum(), zipf_c / zipf_c.sum())


def _rows(truth: _Truth, n: int, rng: np.random.Generator) -> tuple[pa.Table, dict[str, np.ndarray]]:
    """``n`` rows: the columns, then the two labels drawn from the true logistic models; and each label's true
    probability per row (purchase's over both outcomes of the click)."""
    age = np.clip(rng.normal(40, 13, n), 16, 90).round()
    income = np.exp(rng.normal(10.3, 0.9, n))
    sessions = rng.poisson(np.exp(rng.normal(1.0, 1.1, n)))
    since = rng.exponential(12.0, n).round(1)
    price = np.exp(rng.normal(3.2, 0.8, n)).round(2)
    tenure = rng.integers(0, 2500, n).astype(np.float64)
    score = rng.normal(0, 1, n)
    outliers = rng.random(n) < 0.01
    score[outliers] *= 60  # a sensor-like column whose rare extreme values a z-score lets dominate
    cats = {
        "device": rng.integers(0, CATEGORICAL["device"], n),
        "country": np.minimum(rng.geometric(0.12, n) - 1, CATEGORICAL["country"] - 1),
        "channel": rng.integers(0, CATEGORICAL["channel"], n),
        "hour": rng.integers(0, 24, n),
        "category": rng.choice(CATEGORICAL["category"], n, p=truth.category_p),
        "brand": rng.choice(CATEGORICAL["brand"], n, p=truth.brand_p),
        FLOAT_CODED: rng.integers(0, REGIONS, n),
    }
    combo = cats["device"] * 200 + cats["category"]

    def shape(effects: dict[str, np.ndarray], w: float) -> np.ndarray:
        logit = sum(effects[k][v] for k, v in cats.items()) + effects["device_x_category"][combo]
        logit = logit - w * ((age - 33) / 12) ** 2  # U-shaped in age
        logit = logit + 0.7 * (income > 42_000) - 0.5 * (income > 120_000)  # thresholds
        logit = logit + 0.45 * np.log1p(np.minimum(sessions, 30))  # saturating
        logit = logit + 0.9 * (since < 2) - 0.3 * (since > 30)
        logit = logit - 0.35 * np.log(price) * w + 0.4 * np.sin(price / 8)
        logit = logit + 0.3 * (tenure > 365) + 0.3 * (tenure > 1500)
        return logit + 0.6 * np.tanh(score)  # bounded: the outliers say no more than a score of 3

    p_click = _sigmoid(-2.0 + shape(truth.click, 0.4))
    click = rng.random(n) < p_click
    purchase_logit = -4.4 + shape(truth.purchase, 0.8)
    purchase = rng.random(n) < _sigmoid(purchase_logit + 1.6 * click)
    p_purchase = p_click * _sigmoid(purchase_logit + 1.6) + (1 - p_click) * _sigmoid(purchase_logit)
    income_null = rng.random(n) < 0.06
    region_null = rng.random(n) < 0.04
    columns: dict[str, pa.Array] = {
        "age": pa.array(age.astype(np.int16)),
        "income": pa.array(income.round(0), mask=income_null),
        "sessions_7d": pa.array(sessions.astype(np.int32)),
        "days_since_visit": pa.array(since),
        "price": pa.array(price),
        "tenure_days": pa.array(tenure),
        "score": pa.array(score),
        "device": pa.array(np.array(["mobile", "desktop", "tablet", "tv"])[cats["device"]]),
        "country": pa.array([f"c{v:02d}" for v in cats["country"]]),
        "channel": pa.array(cats["channel"].astype(np.int8)),
        "hour": pa.array(cats["hour"].astype(np.int8)),
        "category": pa.array([f"cat{v}" for v in cats["category"]]),
        "brand": pa.array(cats["brand"].astype(np.int64)),
        # ids as float64 with NaN for null: what pandas writes for an integer column with missing values
        FLOAT_CODED: pa.array(np.where(region_null, np.nan, cats[FLOAT_CODED].astype(np.float64))),
        "click": pa.array(click.astype(np.int8)),
        "purchase": pa.array(purchase.astype(np.int8)),
    }
    return pa.table(columns), {"click": p_click, "purchase": p_purchase}


def generate_days(config: TabularConfig) -> Iterator[tuple[datetime.date, pa.Table, dict[str, np.ndarray]]]:
    """Each day of the table in order, with its rows' true probability of each label: the one place the draws are
    made, so the table written and the truth computed are the same rows."""
    rng = np.random.default_rng(config.seed)
    truth = _Truth.draw(rng)
    per_day = np.diff(np.linspace(0, config.train_rows, config.train_days + 1).astype(int)).tolist()
    sizes = [*per_day, config.valid_rows, config.test_rows]
    for i, rows in enumerate(sizes):
        table, probabilities = _rows(truth, rows, rng)
        yield START + datetime.timedelta(days=i), table, probabilities


def write_tabular(config: TabularConfig, out: str | pathlib.Path) -> dict[str, list[str]]:
    """Write the table under ``out`` as ``dt=YYYY-MM-DD/part-00000.parquet`` (plain Parquet, no markers: a table as
    users bring one) and return its days per split, as ``--train_days`` / ``--valid_days`` / ``--test_days`` take
    them."""
    root = pathlib.Path(out)
    days = []
    for day, table, _ in generate_days(config):
        folder = root / f"dt={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, folder / "part-00000.parquet")
        days.append(day)
    iso = [d.isoformat() for d in days]
    return {"train": iso[: config.train_days], "valid": [iso[-2]], "test": [iso[-1]]}


def main(argv: Sequence[str] | None = None) -> int:
    def run() -> int:
        p = CommandParser("podtarget.simulator.tabular", __doc__)
        d = TabularConfig()
        p.add_argument("--out", default="./data-tabular", help="Folder to write the day partitions into.")
        p.add_argument("--train_rows", type=int, default=d.train_rows)
        p.add_argument("--valid_rows", type=int, default=d.valid_rows)
        p.add_argument("--test_rows", type=int, default=d.test_rows)
        p.add_argument("--train_days", type=int, default=d.train_days, help="Days the training rows spread over.")
        p.add_argument("--seed", type=int, default=d.seed)
        a = p.parse_args(sys.argv[1:] if argv is None else argv)
        config = TabularConfig(a.train_rows, a.valid_rows, a.test_rows, a.train_days, a.seed)
        split = write_tabular(config, a.out)
        days = {k: (v[0] if len(v) == 1 else f"{v[0]}..{v[-1]}") for k, v in split.items()}
        print(f"wrote {config.train_rows + config.valid_rows + config.test_rows:,} rows to {a.out}")
        print(f"split: --train_days={days['train']} --valid_days={days['valid']} --test_days={days['test']}")
        return 0

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
