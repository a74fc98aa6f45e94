"""A hand-made raw world for exact pipeline scenarios: write snapshots and logs for chosen days.

>>> world = HandmadeWorld(tmp_path / "data", start=datetime.date(2026, 3, 2), n_days=12)     # doctest: +SKIP
>>> world.stream(user=1, podcast=1, at=world.ts(0, 12), ms=90_000)                          # doctest: +SKIP
>>> world.write()                                                                            # doctest: +SKIP

Every event takes ``logged=`` (the day offset of the partition it is logged in; default: the day it happened) and
``**fields`` that override any column, e.g. ``campaign_id=None`` for a row its day must reject. ``absent`` removes
ids from one day's dimension snapshot: ``world.absent[("podcast", 2)] = {2}``.
"""

from __future__ import annotations

import datetime
import itertools
import pathlib
from collections import defaultdict

from podtarget.schemas import LOG_TABLES, layout, load_schema
from podtarget.transforms.runtime.storage import write_avro_part

UTC = datetime.UTC
_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}{next(_ids):06d}"


class HandmadeWorld:
    """Users 1-3 (free, SE), shows 1-3 (English... Swedish), one ad campaign (1, show 1, creative 1) and one
    promotion campaign (2, show 1); every day gets snapshots and (possibly empty) log partitions."""

    def __init__(self, root: pathlib.Path, start: datetime.date, n_days: int) -> None:
        self.root = str(root)
        self.start = start
        self.days = [start + datetime.timedelta(days=i) for i in range(n_days)]
        self.rows: dict[tuple[str, datetime.date], list[dict]] = defaultdict(list)
        self.absent: dict[tuple[str, int], set[int]] = {}  # (entity, day offset) -> ids missing from that snapshot

    def ts(self, day_offset: int, hour: float) -> int:
        day = self.start + datetime.timedelta(days=day_offset)
        return int(datetime.datetime.combine(day, datetime.time(), UTC).timestamp() * 1000 + hour * 3_600_000)

    def _log(self, table: str, row: dict, logged_day_offset: int | None, fields: dict | None = None) -> dict:
        row.update(fields or {})
        offset = logged_day_offset
        if offset is None:
            offset = (datetime.datetime.fromtimestamp(row["event_ts"] / 1000, UTC).date() - self.start).days
        self.rows[(table, self.start + datetime.timedelta(days=offset))].append(row)
        return row

    def ad(
        self, user: int, podcast: int, at: int, logged: int | None = None, impression_id: str | None = None, **fields
    ) -> str:
        row = {
            "impression_id": impression_id or _id("ad"),
            "event_ts": at,
            "user_id": user,
            "podcast_id": podcast,
            "campaign_id": 1,
            "creative_id": 1,
            "ad_format": "audio",
            "slot": "midroll",
            "surface": "now_playing",
            "device": "ios",
            "country": "SE",
            "cost_micros": 10_000,
        }
        return self._log("ad_impression", row, logged, fields)["impression_id"]

    def promo(self, user: int, podcast: int, at: int, logged: int | None = None, **fields) -> str:
        row = {
            "impression_id": _id("pr"),
            "event_ts": at,
            "user_id": user,
            "podcast_id": podcast,
            "campaign_id": 2,
            "slot": "home_shelf",
            "layout": "card",
            "position": 0,
            "surface": "home",
            "device": "ios",
            "country": "SE",
        }
        return self._log("promo_impression", row, logged, fields)["impression_id"]

    def stream(
        self,
        user: int,
        podcast: int,
        at: int,
        ms: int = 600_000,
        logged: int | None = None,
        event_id: str | None = None,
        **fields,
    ) -> None:
        row = {
            "event_id": event_id or _id("st"),
            "event_ts": at,
            "user_id": user,
            "podcast_id": podcast,
            "episode_id": podcast * 10_000 + 1,
            "ms_played": ms,
            "surface": "home",
        }
        self._log("stream", row, logged, fields)

    def click(self, impression_id: str, user: int, at: int, logged: int | None = None, **fields) -> None:
        row = {"event_id": _id("cl"), "event_ts": at, "impression_id": impression_id, "user_id": user}
        self._log("click", row, logged, fields)

    def follow(self, user: int, podcast: int, at: int, logged: int | None = None, **fields) -> None:
        row = {"event_id": _id("fo"), "event_ts": at, "user_id": user, "podcast_id": podcast}
        self._log("follow", row, logged, fields)

    def like(self, user: int, podcast: int, at: int, logged: int | None = None, **fields) -> None:
        row = {"event_id": _id("li"), "event_ts": at, "user_id": user, "podcast_id": podcast}
        self._log("like", row, logged, fields)

    def write(self) -> None:
        for day in self.days:
            snapshots = {
                "user": [
                    {
                        "user_id": u,
                        "country": "SE",
                        "age_bucket": "25-34",
                        "account_type": "free",
                        "signup_date": datetime.date(2025, 1, 1),
                        "primary_device": "ios",
                        "language": "sv",
                    }
                    for u in (1, 2, 3)
                ],
                "podcast": [
                    {
                        "podcast_id": p,
                        "publisher": "pub",
                        "genres": ["comedy"],
                        "topics": ["topic-001"],
                        "language": "sv",
                        "is_original": False,
                        "created_date": datetime.date(2025, 1, 1),
                        "explicit": False,
                        "episode_count": 10,
                    }
                    for p in (1, 2, 3)
                ],
                "campaign": [
                    {
                        "campaign_id": 1,
                        "channel": "ad",
                        "podcast_id": 1,
                        "objective": "stream",
                        "start_date": self.start,
                        "end_date": self.days[-1],
                        "budget_micros": 10**9,
                        "cpm_micros": 10**7,
                        "target_countries": [],
                        "target_age_buckets": [],
                        "target_account_types": ["free"],
                        "advertiser": "adv",
                    },
                    {
                        "campaign_id": 2,
                        "channel": "promo",
                        "podcast_id": 1,
                        "objective": "stream",
                        "start_date": self.start,
                        "end_date": self.days[-1],
                        "budget_micros": None,
                        "cpm_micros": None,
                        "target_countries": [],
                        "target_age_buckets": [],
                        "target_account_types": [],
                        "advertiser": None,
                    },
                ],
                "creative": [
                    {
                        "creative_id": 1,
                        "campaign_id": 1,
                        "format": "audio",
                        "duration_s": 30,
                        "language": "sv",
                        "has_call_to_action": True,
                    }
                ],
            }
            offset = (day - self.start).days
            for table, rows in snapshots.items():
                missing = self.absent.get((table, offset), set())
                rows = [r for r in rows if r[f"{table}_id"] not in missing]
                write_avro_part(
                    layout.part_file(layout.raw_partition(self.root, table, day), 0), load_schema(table), rows
                )
            for table in LOG_TABLES:
                rows = self.rows.get((table, day), [])
                write_avro_part(
                    layout.part_file(layout.raw_partition(self.root, table, day), 0), load_schema(table), rows
                )
