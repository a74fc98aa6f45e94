"""Small synthetic example tables (day-partitioned Parquet) with known structure, and specs for them.

``write_podcast_toy`` mimics our table's shape (ad and promo rows, the five tasks) with a handful of columns;
``write_movie_toy`` is an unrelated table (other columns, sources and tasks) for the any-table requirement.
Labels follow a logistic model of the features, so a model that learns anything beats a constant predictor.
"""

from __future__ import annotations

import datetime
import json
import pathlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

START = datetime.date(2026, 3, 2)

PODCAST_SPEC = """
[source]
column = "source"
values = ["ad", "promo"]

[groups.user.categorical]
user_id = { buckets = 4096, min_count = 1 }
[groups.user.multi_categorical]
user_genres = 64
[groups.user.numeric]
streams_28d = { log1p = true }
uid = {}

[groups.content.categorical]
podcast_id = 1024
tier = 16
[groups.content.numeric]
is_original = {}

[groups.context.categorical]
surface = 16

[groups.promotion.numeric]
promo_position = { missing = true }

[groups.ad.categorical]
ad_format = 8

[[tasks]]
name = "PromotionStream"
label = "label_stream"
source = "promo"
[[tasks]]
name = "AdStream"
label = "label_stream"
source = "ad"
[[tasks]]
name = "Click"
label = "label_click"
source = "ad"
eval_sources = ["ad", "promo"]
[[tasks]]
name = "Like"
label = "label_like"
source = "promo"
[[tasks]]
name = "Follow"
label = "label_follow"
source = "promo"

[model]
embedding_dim = 8
bottom = [32, 16]
tower = [8]

[evaluation]
slice_column = "tier"
early_stopping_tasks = ["PromotionStream", "AdStream"]
"""

MOVIE_SPEC = """
[source]
column = "channel"
values = ["email", "banner"]

[groups.viewer.categorical]
viewer = 512
[groups.viewer.numeric]
age = {}
[groups.title.categorical]
movie = 256
[groups.title.multi_categorical]
tags = 32
[groups.title.numeric]
runtime_min = { log1p = true }

[[tasks]]
name = "Open"
label = "opened"
source = "email"
[[tasks]]
name = "Watch"
label = "watched"
source = "banner"
eval_sources = ["email", "banner"]

[mask]
protected = []

[model]
embedding_dim = 4
bottom = [16]
tower = [8]
"""

GENRES = [f"g{i}" for i in range(12)]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _write_day(root: pathlib.Path, day: datetime.date, table: pa.Table, parts: int, marker: bool = True) -> None:
    folder = root / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, table.num_rows, parts + 1).astype(int)
    for i in range(parts):
        pq.write_table(table.slice(bounds[i], bounds[i + 1] - bounds[i]), folder / f"part-{i:05d}.parquet")
    if marker:
        (folder / "_SUCCESS.json").write_text(json.dumps({"rows": table.num_rows}))


def write_podcast_toy(
    root: pathlib.Path,
    days: int = 6,
    rows_per_day: int = 3000,
    promo_share: float = 0.65,
    seed: int = 0,
    unobserved_days: int = 0,
) -> pathlib.Path:
    """A toy table shaped like ours; the last ``unobserved_days`` have null labels except the positives."""
    rng = np.random.default_rng(seed)
    n_users, n_shows = 400, 80
    taste = rng.normal(size=(n_users, 4))
    content = rng.normal(size=(n_shows, 4))
    show_genres = [list(rng.choice(GENRES, size=2, replace=False)) for _ in range(n_shows)]
    uid = 0
    for d in range(days):
        n = rows_per_day
        user = rng.integers(0, n_users, n)
        show = rng.integers(0, n_shows, n)
        promo = rng.random(n) < promo_share
        surface = rng.choice(["home", "search", "library"], n)
        affinity = (taste[user] * content[show]).sum(1)
        base = -3.2 + 0.9 * affinity + 0.6 * (surface == "home")
        stream = rng.random(n) < _sigmoid(base + 0.8 * promo)
        click = rng.random(n) < _sigmoid(-3.6 + 0.7 * affinity)
        like = rng.random(n) < _sigmoid(-3.0 + 1.1 * affinity + 1.5 * stream)
        follow = rng.random(n) < _sigmoid(-3.3 + 1.0 * affinity + 1.5 * stream)
        labels = {}
        for name, values in (("stream", stream), ("click", click), ("like", like), ("follow", follow)):
            arr = values.astype(np.int8)
            mask = None
            if d >= days - unobserved_days:
                mask = ~values  # immature day: only credited positives are known
            labels[f"label_{name}"] = pa.array(arr, pa.int8(), mask=mask)
        streams = rng.poisson(5 * np.exp(taste[user, 0]))
        table = pa.table(
            {
                "source": pa.array(np.where(promo, "promo", "ad")),
                "user_id": pa.array(user.astype(np.int64)),
                "podcast_id": pa.array(show.astype(np.int64)),
                "uid": pa.array(np.arange(uid, uid + n, dtype=np.int64)),
                "user_genres": pa.array([show_genres[s] if a > 0 else [] for s, a in zip(show, affinity, strict=True)]),
                "streams_28d": pa.array(streams.astype(np.int32)),
                "tier": pa.array((show % 8).astype(np.int8)),
                "is_original": pa.array(show % 5 == 0),
                "surface": pa.array(surface),
                "promo_position": pa.array(rng.integers(0, 5, n).astype(np.int16), mask=~promo),
                "ad_format": pa.array(rng.choice(["audio", "video"], n), mask=promo),
                **labels,
            }
        )
        uid += n
        _write_day(root, START + datetime.timedelta(days=d), table, parts=3)
    return root


def write_movie_toy(root: pathlib.Path, days: int = 5, rows_per_day: int = 2500, seed: int = 1) -> pathlib.Path:
    """An unrelated table: viewers, movies, email and banner channels, opened / watched labels."""
    rng = np.random.default_rng(seed)
    n_viewers, n_movies = 300, 60
    taste = rng.normal(size=(n_viewers, 3))
    style = rng.normal(size=(n_movies, 3))
    appeal = rng.normal(size=n_movies)
    tags = [list(rng.choice([f"t{i}" for i in range(10)], size=3, replace=False)) for _ in range(n_movies)]
    for d in range(days):
        n = rows_per_day
        viewer = rng.integers(0, n_viewers, n)
        movie = rng.integers(0, n_movies, n)
        email = rng.random(n) < 0.4
        age = rng.integers(18, 70, n)
        score = (taste[viewer] * style[movie]).sum(1) + 1.2 * appeal[movie] - 0.03 * (age - 40)
        opened = rng.random(n) < _sigmoid(-1.5 + 0.8 * score)
        watched = rng.random(n) < _sigmoid(-2.5 + 1.2 * score + 0.5 * opened)
        table = pa.table(
            {
                "channel": pa.array(np.where(email, "email", "banner")),
                "viewer": pa.array([f"v{v}" for v in viewer]),
                "movie": pa.array(movie.astype(np.int32)),
                "tags": pa.array([tags[m] for m in movie]),
                "age": pa.array(age.astype(np.float64)),
                "runtime_min": pa.array((80 + movie).astype(np.int16)),
                "opened": pa.array(opened, mask=~email),  # only emails can be opened
                "watched": pa.array(watched.astype(np.int64)),
            }
        )
        _write_day(root, START + datetime.timedelta(days=d), table, parts=2, marker=False)
    return root


def write_spec(path: pathlib.Path, text: str) -> str:
    path.write_text(text)
    return str(path)
