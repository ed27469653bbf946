"""The stream's commit protocol: what a micro-batch's snapshots say, and a committer that only commits.

Every append the stream makes carries markers in its Iceberg snapshot summary, atomically with its rows:

* ``shoplake.stream-id`` and ``shoplake.batch-id``: the query (its checkpoint's id) and the micro-batch. A table
  holding batch ``b`` of a stream holds every earlier batch of it too (batches commit in order), so *the highest
  batch id a table holds is all the committer needs*: a replayed batch at or below it is skipped for that table.
  Recovered once when the stream starts (:func:`stream_commits`), kept up to date by the committer since.
* ``shoplake.ingest-time``, ``shoplake.watermark``, ``shoplake.max-event-time``, ``shoplake.kafka-ts-min`` and
  ``shoplake.kafka-ts-max`` (:class:`BatchMarkers`): when the batch was ingested, the watermark it used, the
  newest event time seen through it and the Kafka timestamps it covered. A restarted stream resumes its
  watermark and ingest clock from them, and observability reads freshness from them.

Table maintenance never expires the snapshot carrying a table's newest marker (``pipeline.maintenance``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession

from pipeline.iceberg_io import snapshot_summaries
from pipeline.tables import TableSpec

log = logging.getLogger(__name__)

STREAM_ID_PROPERTY = "shoplake.stream-id"
BATCH_ID_PROPERTY = "shoplake.batch-id"
INGEST_TIME_PROPERTY = "shoplake.ingest-time"
WATERMARK_PROPERTY = "shoplake.watermark"
MAX_EVENT_TIME_PROPERTY = "shoplake.max-event-time"
KAFKA_TS_MIN_PROPERTY = "shoplake.kafka-ts-min"
KAFKA_TS_MAX_PROPERTY = "shoplake.kafka-ts-max"
NOTHING_COMMITTED = -1  # the highest batch id of a table that holds none of this stream's


def iso(value: dt.datetime | None) -> str:
    """A datetime (aware, or naive local as PySpark returns them) as an unambiguous UTC ISO string; "" for None."""
    return value.astimezone(dt.UTC).isoformat() if value else ""


def from_iso(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value).astimezone(dt.UTC) if value else None


@dataclass(frozen=True)
class BatchMarkers:
    """What every snapshot of one micro-batch says about it, besides the stream and batch ids."""

    ingest_time: dt.datetime
    watermark: dt.datetime | None = None
    max_event_time: dt.datetime | None = None
    kafka_ts_min: dt.datetime | None = None
    kafka_ts_max: dt.datetime | None = None

    def properties(self) -> dict[str, str]:
        return {
            INGEST_TIME_PROPERTY: iso(self.ingest_time),
            WATERMARK_PROPERTY: iso(self.watermark),
            MAX_EVENT_TIME_PROPERTY: iso(self.max_event_time),
            KAFKA_TS_MIN_PROPERTY: iso(self.kafka_ts_min),
            KAFKA_TS_MAX_PROPERTY: iso(self.kafka_ts_max),
        }


@dataclass(frozen=True)
class TableWrite:
    """One table's share of a batch: its rows, built only when the table does not hold the batch yet (their plan
    costs py4j round trips, which overlap when the writes run side by side)."""

    table: TableSpec
    rows: Callable[[], DataFrame]


# Appends ``rows`` to the table as one snapshot whose summary carries ``properties``.
Append = Callable[[DataFrame, str, TableSpec, dict[str, str]], None]


def iceberg_append(rows: DataFrame, catalog: str, spec: TableSpec, properties: dict[str, str]) -> None:
    """One Iceberg append of ``rows`` to the table, ``properties`` in its snapshot summary, in one data file."""
    writer = rows.select(*spec.schema.fieldNames()).coalesce(1).writeTo(spec.qualified(catalog))
    for key, value in properties.items():
        writer = writer.option(f"snapshot-property.{key}", value)
    writer.append()


@dataclass
class BatchCommitter:
    """Commits each table's share of a micro-batch once: a replayed batch's writes that a table already holds are
    skipped, the rest committed, side by side (each table is its own Iceberg commit; none waits for another).

    ``committed`` is the highest batch id each table holds for this stream, recovered once from the tables'
    snapshot summaries when the stream starts (:func:`pipeline.streaming.state.recover`); ``append`` is the
    write itself, the seam where tests inject a failure.
    """

    catalog: str
    stream_id: str
    committed: dict[str, int] = field(default_factory=dict)
    append: Append = iceberg_append

    def holds(self, spec: TableSpec, batch_id: int) -> bool:
        """Whether the table already holds the batch (then writing it again is skipped)."""
        return batch_id <= self.committed.get(spec.identifier, NOTHING_COMMITTED)

    def commit(self, batch_id: int, writes: list[TableWrite], markers: BatchMarkers | None = None) -> list[str]:
        """Commit every write of batch ``batch_id`` the tables do not hold yet; returns the tables written.

        Raises the first failure once every write has ended: a batch that fails is replayed, and then writes only
        what did not commit.
        """
        properties = {
            STREAM_ID_PROPERTY: self.stream_id,
            BATCH_ID_PROPERTY: str(batch_id),
            **(markers.properties() if markers is not None else {}),
        }
        due = []
        for write in writes:
            if self.holds(write.table, batch_id):
                log.info("batch %d already in %s: skipped", batch_id, write.table.identifier)
            else:
                due.append(write)
        if len(due) == 1:
            self._commit_one(batch_id, due[0], properties)
        elif due:
            with ThreadPoolExecutor(max_workers=len(due), thread_name_prefix="commit") as pool:
                futures = [pool.submit(self._commit_one, batch_id, write, properties) for write in due]
            for future in futures:
                future.result()
        return [write.table.identifier for write in due]

    def _commit_one(self, batch_id: int, write: TableWrite, properties: dict[str, str]) -> None:
        self.append(write.rows(), self.catalog, write.table, properties)
        self.committed[write.table.identifier] = batch_id


@dataclass(frozen=True)
class StreamCommit:
    """One snapshot a stream wrote: which table, which stream and batch, and the summary's ingest and event times."""

    table: str
    stream_id: str | None
    batch_id: int | None
    ingest_time: dt.datetime | None
    max_event_time: dt.datetime | None


def _batch_number(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def stream_commits(spark: SparkSession, catalog: str, specs: tuple[TableSpec, ...]) -> list[StreamCommit]:
    """Every snapshot of ``specs`` that carries stream markers, read from the tables' metadata (no Spark job)."""
    return [
        StreamCommit(
            table=spec.identifier,
            stream_id=summary.get(STREAM_ID_PROPERTY),
            batch_id=_batch_number(summary.get(BATCH_ID_PROPERTY)),
            ingest_time=from_iso(summary.get(INGEST_TIME_PROPERTY)),
            max_event_time=from_iso(summary.get(MAX_EVENT_TIME_PROPERTY)),
        )
        for spec in specs
        for summary in snapshot_summaries(spark, catalog, spec)
        if INGEST_TIME_PROPERTY in summary or STREAM_ID_PROPERTY in summary
    ]
