"""Which deliveries of a micro-batch are duplicates: first delivery of an event id wins, exactly as before a crash.

A delivery is a *duplicate* when an earlier delivery of the same ``event_id`` is already in silver at other Kafka
coordinates, or comes earlier in the same batch (by Kafka timestamp, then topic, partition, offset). A silver row
at the *same* coordinates is this very record, written by an attempt of this batch that died before Spark
recorded it: replaying the batch then decides exactly what the first attempt decided.

Committed event ids are looked up in two tiers:

* the **hot tier**, :class:`EventIdCache`: every event id in silver whose event time is within
  ``horizon`` of the newest event time seen, with its Kafka coordinates, in the driver's memory. It is filled
  from silver when the stream starts and from each batch once its writes have committed. As event time
  advances, ids older than the horizon are evicted, oldest minute first, only while the tier holds more than
  ``max_ids``: a catch-up, whose batches span hours of event time, keeps every id it committed. About 150
  bytes per id: 30 minutes at 5,000 events/s is 9M ids, ~1.4 GB.
* the **cold tier**: silver itself. A delivery whose event time is older than what the hot tier covers (a late
  event, a replay of an old log) is looked up in the silver tables, pruned to its event dates. Nothing is ever
  decided without one of the two: the horizon bounds memory and speed, never correctness. While the hot tier
  still holds every id this run committed (:attr:`EventIdCache.holds_every_added_id`), the lookup only needs
  silver as it was when the run started.

Everything here but :meth:`EventIdCache.load` is plain Python over Arrow columns: no Spark job.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

Coordinates = tuple[str, int, int]  # Kafka topic, partition, offset

NARROW_COLUMNS = ("event_id", "event_time", "kafka_timestamp", "kafka_topic", "kafka_partition", "kafka_offset")
_BUCKET = dt.timedelta(minutes=1)


def _bucket(event_time: dt.datetime) -> dt.datetime:
    return event_time.replace(second=0, microsecond=0)


@dataclass
class EventIdCache:
    """Committed event ids (with their coordinates) whose event time is at or after :attr:`covers_since`, and
    every id :meth:`add` recorded since, as long as :attr:`holds_every_added_id`."""

    horizon: dt.timedelta
    max_ids: int = 2_000_000  # ids older than the horizon stay while the tier holds no more than this
    covers_since: dt.datetime | None = None  # None: not loaded yet; nothing is known

    def __post_init__(self) -> None:
        self._ids: dict[str, Coordinates] = {}
        self._buckets: dict[dt.datetime, list[str]] = defaultdict(list)  # event-time minute -> ids, for eviction
        self._added_buckets: set[dt.datetime] = set()  # the minutes holding ids add() recorded
        self.holds_every_added_id = True  # False once an eviction dropped an id add() recorded

    def __len__(self) -> int:
        return len(self._ids)

    def covers(self, event_time: dt.datetime) -> bool:
        return self.covers_since is not None and event_time >= self.covers_since

    def load(self, committed: pa.Table, since: dt.datetime) -> None:
        """Start covering ``since`` onwards with ``committed`` (every silver event id from ``since`` on:
        ``event_id``, ``event_time`` and the Kafka coordinates)."""
        self._ids.clear()
        self._buckets.clear()
        self.covers_since = since
        times = committed.column("event_time")
        self._insert(committed.filter(pc.greater_equal(times, pa.scalar(since, type=times.type))))

    def add(self, committed: pa.Table) -> None:
        """Record the event ids a batch committed (columns as for :meth:`load`), whatever their event time: they
        stay until an eviction takes their minute (then :attr:`holds_every_added_id` turns False)."""
        if self.covers_since is not None:
            self._added_buckets.update(self._insert(committed))

    def _insert(self, kept: pa.Table) -> set[dt.datetime]:
        """Hold these ids; returns the minutes they went to."""
        if kept.num_rows == 0:
            return set()
        self._ids.update(zip(kept.column("event_id").to_pylist(), coordinates_of(kept), strict=True))
        # The ids per event-time minute in one grouping pass (a filter per minute was quadratic: a catch-up batch
        # spans hundreds of minutes).
        by_minute = (
            pa.table({"minute": pc.floor_temporal(kept.column("event_time"), unit="minute"), "id": kept["event_id"]})
            .group_by("minute")
            .aggregate([("id", "list")])
        )
        minutes = set()
        for minute, ids in zip(by_minute["minute"].to_pylist(), by_minute["id_list"].to_pylist(), strict=True):
            minutes.add(_bucket(minute))
            self._buckets[_bucket(minute)].extend(ids)
        return minutes

    def advance(self, newest_event_time: dt.datetime) -> None:
        """Evict the minutes older than ``newest_event_time - horizon``, oldest first, while the tier holds more
        than :attr:`max_ids`; the covered range then starts after the last minute evicted."""
        if self.covers_since is None or len(self._ids) <= self.max_ids:
            return
        since = _bucket(newest_event_time - self.horizon)
        for bucket in sorted(b for b in self._buckets if b < since):
            if len(self._ids) <= self.max_ids:
                break
            for event_id in self._buckets.pop(bucket):
                self._ids.pop(event_id, None)
            if bucket in self._added_buckets:
                self._added_buckets.discard(bucket)
                self.holds_every_added_id = False
            self.covers_since = max(self.covers_since, bucket + _BUCKET)

    def get(self, event_id: str) -> Coordinates | None:
        return self._ids.get(event_id)


@dataclass(frozen=True)
class Verdicts:
    """Per valid delivery of a batch (in the order of the narrow table): is it a duplicate?"""

    is_duplicate: list[bool]

    def duplicate_coordinates(self, narrow: pa.Table) -> list[Coordinates]:
        if not any(self.is_duplicate):
            return []  # the usual batch: no need to read every record's coordinates
        return [c for dup, c in zip(self.is_duplicate, coordinates_of(narrow), strict=True) if dup]


def needs_cold_lookup(narrow: pa.Table, cache: EventIdCache) -> pa.Table:
    """The distinct (``event_id``, ``event_date``) of the valid deliveries older than what the hot tier covers: the
    ones a cold lookup may have to answer for (computed in Arrow: a catch-up batch names hundreds of thousands)."""
    times = narrow.column("event_time")
    if cache.covers_since is not None:
        narrow = narrow.filter(pc.less(times, pa.scalar(cache.covers_since, type=times.type)))
    older = pa.table(
        {"event_id": narrow.column("event_id"), "event_date": pc.cast(narrow.column("event_time"), pa.date32())}
    )
    return older.group_by(["event_id", "event_date"]).aggregate([])


def decide(narrow: pa.Table, cache: EventIdCache, cold: dict[str, Coordinates]) -> Verdicts:
    """Duplicate verdicts for a batch's valid deliveries (``narrow``: :data:`NARROW_COLUMNS`, one row each).

    ``cold`` holds the committed coordinates of the ids :func:`needs_cold_lookup` named, as found in silver.
    A delivery of a committed id is a duplicate unless it is the committed record itself; of the deliveries of
    any other id, all but the first in delivery order are.
    """
    if narrow.num_rows == 0:
        return Verdicts([])
    keys = ["event_id", "kafka_timestamp", "kafka_topic", "kafka_partition", "kafka_offset"]
    order = pc.sort_indices(narrow, sort_keys=[(key, "ascending") for key in keys])
    ids_in_order = narrow.column("event_id").take(order).combine_chunks()
    # In that order, a delivery whose id is the one before it is a later delivery of an id seen in this batch.
    later = pa.concat_arrays([pa.array([False]), pc.equal(ids_in_order[1:], ids_in_order[:-1]).fill_null(False)])
    is_duplicate = later.take(pc.sort_indices(order)).to_pylist()  # back to the batch's order
    ids = narrow.column("event_id").to_pylist()
    lookup = cache.get if not cold else (lambda event_id: cold.get(event_id) or cache.get(event_id))
    known = [(i, committed) for i, committed in enumerate(map(lookup, ids)) if committed is not None]
    if known:
        coordinates = coordinates_of(narrow)
        for i, committed in known:
            is_duplicate[i] = committed != coordinates[i]
    return Verdicts(is_duplicate)


def committed_rows(narrow: pa.Table, verdicts: Verdicts) -> pa.Table:
    """The rows a batch adds to silver (``event_id``, ``event_time``, coordinates): its valid, non-duplicate
    deliveries."""
    return narrow.filter(pc.invert(pa.array(verdicts.is_duplicate, pa.bool_())))


def coordinates_of(table: pa.Table) -> list[Coordinates]:
    """Each row's (topic, partition, offset)."""
    return list(
        zip(
            table.column("kafka_topic").to_pylist(),
            table.column("kafka_partition").to_pylist(),
            table.column("kafka_offset").to_pylist(),
            strict=True,
        )
    )
