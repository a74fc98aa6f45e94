"""A slow, independent reference of the attribution rules (docs/design.md), for checking the examples pipeline.

Written from the rules as docs/design.md states them, row by row in plain Python (dicts and loops), sharing no code
with ``transforms/`` beyond the schemas' list of required fields:

- A raw row is valid when its required ids are set, its ``event_ts`` lies in ``[day - lateness, day + 1)`` of the
  day that logged it, and its user, show, campaign and creative are in that day's snapshots. A row its own day
  rejects acts nowhere.
- Events are deduplicated by id (``impression_id``, ``event_id``): the first valid occurrence in logging order
  (day, file, row) is kept. An impression logged on D whose id was validly logged on one of the ``lateness`` days
  before D is not an example of D.
- Last touch across both channels: a qualifying stream (>= 60 s), follow or like of show p by user u at t credits
  the latest impression of p shown to u strictly before t whose window for that outcome covers t; of impressions
  with the same timestamp the greater ``impression_id`` is the later one.
- A click labels the impression it names when ``0 <= click_ts - imp_ts <= click window``.
- A label is 1 when credited; else 0 when ``imp_ts + window < horizon`` (logs are complete before the horizon,
  the end of the last logged day minus the lateness); else null.
- An owned click (valid, first of its id) whose impression id no valid impression carries is dead-lettered:
  ``click_of_rejected_impression`` when a rejected impression carries it, else ``click_without_impression``.
"""

from __future__ import annotations

import datetime
import glob
import os
from collections import defaultdict

import fastavro

from podtarget.schemas import load_schema

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
WINDOWS = {"stream": 72 * HOUR_MS, "follow": 7 * DAY_MS, "like": 7 * DAY_MS}
CLICK_WINDOW = 24 * HOUR_MS
MIN_STREAM_MS = 60_000
IMPRESSIONS = ("ad_impression", "promo_impression")
REFERENCED = (("user_id", "user"), ("podcast_id", "podcast"), ("campaign_id", "campaign"), ("creative_id", "creative"))


def _day_ms(day: datetime.date) -> int:
    return (day - datetime.date(1970, 1, 1)).days * DAY_MS


def _read_records(path: str) -> list[dict]:
    """The records of every complete block (a corrupt tail is lost, as the pipelines salvage it)."""
    records = []
    with open(path, "rb") as handle:
        try:
            for block in fastavro.block_reader(handle):
                records.extend(list(block))
        except Exception:  # a truncated block: what came before it is all there is
            pass
    # fastavro decodes timestamp-millis as datetimes; the rules are stated in epoch milliseconds.
    return [{k: _millis(v) if isinstance(v, datetime.datetime) else v for k, v in r.items()} for r in records]


def _millis(value: datetime.datetime) -> int:
    return (value - datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)) // datetime.timedelta(milliseconds=1)


def _days_of(root: str, table: str) -> list[datetime.date]:
    folders = glob.glob(os.path.join(root, "raw", table, "dt=*"))
    return sorted(datetime.date.fromisoformat(os.path.basename(f)[3:]) for f in folders)


class ReferenceWorld:
    """Every raw row of a data root, validated and deduplicated by the rules above."""

    def __init__(self, root: str, lateness: int = 2) -> None:
        self.lateness = lateness
        self.snapshots: dict[tuple[str, datetime.date], set] = {}
        for entity in ("user", "podcast", "campaign", "creative"):
            for day in _days_of(root, entity):
                ids = set()
                for path in sorted(glob.glob(os.path.join(root, "raw", entity, f"dt={day}", "part-*.avro"))):
                    ids |= {r[f"{entity}_id"] for r in _read_records(path)}
                self.snapshots[(entity, day)] = ids
        # rows[table] = valid rows in logging order, each with "_day"; rejected[table] likewise with "_reason"
        self.valid: dict[str, list[dict]] = {}
        self.rejected: dict[str, list[dict]] = {}
        tables = (*IMPRESSIONS, "stream", "follow", "like", "click")
        for table in tables:
            required = load_schema(table).required_fields
            valid, rejected = [], []
            for day in _days_of(root, table):
                for path in sorted(glob.glob(os.path.join(root, "raw", table, f"dt={day}", "part-*.avro"))):
                    for record in _read_records(path):
                        record = {**record, "_day": day}
                        reason = self._reason(record, table, required, day)
                        (rejected if reason else valid).append({**record, "_reason": reason})
            self.valid[table] = valid
            self.rejected[table] = rejected
        self.last_logged = min(_days_of(root, t)[-1] for t in tables)
        self.horizon = _day_ms(self.last_logged) + DAY_MS - lateness * DAY_MS
        # First valid occurrence of each id, in logging order.
        self.first: dict[str, dict[str, dict]] = {}
        for table in tables:
            key = "impression_id" if table in IMPRESSIONS else "event_id"
            first: dict[str, dict] = {}
            for row in self.valid[table]:
                first.setdefault(row[key], row)
            self.first[table] = first

    def _reason(self, row: dict, table: str, required: tuple[str, ...], day: datetime.date) -> str | None:
        for field in required:
            if row.get(field) is None:
                return f"null_{field}"
        start = _day_ms(day)
        if not (start - self.lateness * DAY_MS <= row["event_ts"] < start + DAY_MS):
            return "bad_timestamp"
        for column, entity in REFERENCED:
            if column in row and row[column] is not None and row[column] not in self.snapshots[(entity, day)]:
                return f"unknown_{entity}"
        return None

    def examples_of(self, day: datetime.date) -> list[dict]:
        """The impressions that are examples of ``day``, with the source they came from."""
        earlier = {
            row["impression_id"]
            for table in IMPRESSIONS
            for row in self.first[table].values()
            if day - datetime.timedelta(days=self.lateness) <= row["_day"] < day
        }
        out = []
        for table in IMPRESSIONS:
            seen = set()
            for row in self.valid[table]:
                if row["_day"] != day or row["impression_id"] in seen:
                    continue
                seen.add(row["impression_id"])
                if row["impression_id"] not in earlier:
                    out.append({**row, "source": "ad" if table == "ad_impression" else "promo"})
        return out

    def labels(self, day: datetime.date) -> dict[str, dict[str, int | None]]:
        """``impression_id -> {label_stream, label_click, label_follow, label_like}`` for the examples of ``day``."""
        candidates: dict[tuple[int, int], list[tuple[int, str, str]]] = defaultdict(list)
        for table in IMPRESSIONS:
            source = "ad" if table == "ad_impression" else "promo"
            for row in self.first[table].values():
                candidates[(row["user_id"], row["podcast_id"])].append((row["event_ts"], row["impression_id"], source))
        credited: dict[str, set[str]] = {outcome: set() for outcome in WINDOWS}
        for outcome, window in WINDOWS.items():
            for event in self.first[outcome].values():
                if outcome == "stream" and event["ms_played"] < MIN_STREAM_MS:
                    continue
                t = event["event_ts"]
                covering = [
                    (ts, impression_id)
                    for ts, impression_id, _ in candidates[(event["user_id"], event["podcast_id"])]
                    if ts < t and t - ts <= window
                ]
                if covering:
                    credited[outcome].add(max(covering)[1])
        clicks = defaultdict(list)
        for click in self.first["click"].values():
            clicks[click["impression_id"]].append(click["event_ts"])
        out = {}
        for row in self.examples_of(day):
            ts, impression_id = row["event_ts"], row["impression_id"]
            labels: dict[str, int | None] = {}
            for outcome, window in WINDOWS.items():
                labels[f"label_{outcome}"] = self._label(impression_id in credited[outcome], ts + window)
            clicked = any(0 <= c - ts <= CLICK_WINDOW for c in clicks[impression_id])
            labels["label_click"] = self._label(clicked, ts + CLICK_WINDOW)
            out[impression_id] = labels
        return out

    def _label(self, credited: bool, window_end: int) -> int | None:
        if credited:
            return 1
        return 0 if window_end < self.horizon else None

    def orphan_clicks(self, day: datetime.date) -> dict[str, str]:
        """``event_id -> reason`` of the owned clicks of ``day`` that are dead-lettered as orphans."""
        served = {i for table in IMPRESSIONS for i in self.first[table]}
        rejected = {r["impression_id"] for table in IMPRESSIONS for r in self.rejected[table]}
        out = {}
        for event_id, click in self.first["click"].items():
            if click["_day"] != day or click["impression_id"] in served:
                continue
            rejected_impression = click["impression_id"] in rejected
            out[event_id] = "click_of_rejected_impression" if rejected_impression else "click_without_impression"
        return out

    def dirt_around(self, day: datetime.date) -> dict[str, int]:
        """How many rows logged before and after ``day`` (within its context) are rejected or were logged late:
        evidence that a comparison on ``day`` exercised dirt on both sides."""
        counts: dict[str, int] = defaultdict(int)
        for table in self.valid:
            for side, rows in (("rejected", self.rejected[table]), ("valid", self.valid[table])):
                for row in rows:
                    offset = (row["_day"] - day).days
                    if offset == 0 or abs(offset) > 9:
                        continue
                    where = "before" if offset < 0 else "after"
                    if side == "rejected":
                        counts[f"{where}:{row['_reason']}"] += 1
                    elif row["event_ts"] < _day_ms(row["_day"]):
                        counts[f"{where}:late"] += 1
        return dict(counts)
