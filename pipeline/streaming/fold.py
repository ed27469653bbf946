"""Folding silver's tail into the roll-ups (``silver.sessions``, ``silver.event_minutes``): the side effects.

The transforms and the exactly-once argument are in :mod:`pipeline.streaming.rollups`. This module reads the
tail of silver, merges its partial rows into each roll-up table, and remembers where each table is folded to.
Folds run off the micro-batch's critical path, on the stream's background worker, every
``stream.rollup_fold_seconds`` (``stream.rollup_fold_backlog_seconds`` while the stream is behind), and once
more whenever the stream is flushed or stopped.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.iceberg_io import merge_into, read_table, table_metadata
from pipeline.streaming.commit import INGEST_TIME_PROPERTY
from pipeline.streaming.rollups import FOLDED_THROUGH, ROLLUPS, Rollup, SilverFrames, filter_tail
from pipeline.tables import SILVER, TableSpec

log = logging.getLogger(__name__)


def ingest_window_snapshots(
    metadata: dict[str, Any], after: dt.datetime, through: dt.datetime
) -> tuple[int, int] | None:
    """The snapshots bounding the stream's appends with an ingest time in ``(after, through]``.

    Returns ``(start, end)``: every stream append whose ``shoplake.ingest-time`` is in the window lies after
    ``start`` (exclusive) and at or before ``end`` (inclusive) on the current snapshot's ancestry, so an
    incremental append scan between them reads every data file such a row can be in and no other append's.
    ``start == end`` means the table has no append in the window. None when the ancestry the table still holds
    does not reach back to ``after`` (snapshots expired, a table never written before ``after``): only a full
    scan is then sure to see every row.

    Ingest times grow strictly along a table's ancestry (one stream writes it, batch after batch, and every batch
    is stamped after the newest ingest time any table holds), which is what makes the newest snapshot at or before
    a time its boundary. Snapshots without an ingest time that add no rows (compactions, manifest rewrites) are no
    boundary; an append without one (rows not written by the stream) makes the answer None.
    """
    snapshots = {s["snapshot-id"]: s for s in metadata.get("snapshots", [])}
    end: int | None = None
    snapshot_id = metadata.get("current-snapshot-id")
    while snapshot_id is not None and snapshot_id != -1 and snapshot_id in snapshots:
        snapshot = snapshots[snapshot_id]
        summary = snapshot.get("summary", {})
        stamp = summary.get(INGEST_TIME_PROPERTY)
        if not stamp and summary.get("operation") == "append":
            return None  # rows from elsewhere, ingested when the summary does not say: no boundary is sure
        if stamp:
            ingested = dt.datetime.fromisoformat(stamp)
            if ingested <= after:
                return snapshot_id, end if end is not None else snapshot_id
            if end is None and ingested <= through:
                end = snapshot_id
        snapshot_id = snapshot.get("parent-snapshot-id")
    return None


def appends_in_ingest_window(
    spark: SparkSession, catalog: str, spec: TableSpec, after: dt.datetime | None, through: dt.datetime
) -> DataFrame:
    """A scan that holds every row of the table with ``after < ingest_time <= through`` (``after`` None: from the
    start), and possibly others: the caller filters the rows.

    Planning a scan of the whole table opens every manifest it holds (one per micro-batch until the stream's
    hygiene merges them), and a row filter on ``ingest_time`` only prunes inside them. When the table's snapshots
    bound the window (:func:`ingest_window_snapshots`), only the manifests of the appends in between are read.
    """
    bounds = ingest_window_snapshots(table_metadata(spark, catalog, spec), after, through) if after else None
    if bounds is None:
        return read_table(spark, catalog, spec)
    start, end = bounds
    if start == end:
        return read_table(spark, catalog, spec).filter(F.lit(False))
    return (
        spark.read.format("iceberg")
        .option("start-snapshot-id", str(start))
        .option("end-snapshot-id", str(end))
        .load(spec.qualified(catalog))
    )


def silver_tail(spark: SparkSession, catalog: str, after: dt.datetime | None, through: dt.datetime) -> SilverFrames:
    """Silver rows ingested after ``after`` up to ``through``, per event type.

    Silver is partitioned by event date, not ingest time: the scan reads the manifests of the appends in the
    window only (:func:`appends_in_ingest_window`), and every data file a micro-batch writes holds
    one ingest time, so Iceberg's per-file column bounds skip the rest.
    """
    return {
        event_type: filter_tail(
            appends_in_ingest_window(spark, catalog, spec, after, through), F.lit(after), F.lit(through)
        )
        for event_type, spec in SILVER.items()
    }


def folded_through(spark: SparkSession, catalog: str, rollup: Rollup) -> dt.datetime | None:
    """How far a roll-up table is folded: the newest ``folded_through`` it holds (None: never folded)."""
    row = spark.table(rollup.table.qualified(catalog)).agg(F.max(FOLDED_THROUGH)).first()
    return row[0].astimezone(dt.UTC) if row is not None and row[0] is not None else None  # naive local -> UTC


@dataclass
class RollupFolder:
    """Folds silver into every roll-up up to the newest completed micro-batch. Not thread-safe: the stream folds
    from its one background worker (:mod:`pipeline.streaming.background`)."""

    catalog: str
    lookback: dt.timedelta
    merge: Callable[[SparkSession, str, dict[str, object], TableSpec], None] = merge_into  # the seam of a fold's commit
    _positions: dict[str, dt.datetime | None] = field(default_factory=dict)

    def fold(self, spark: SparkSession, through: dt.datetime) -> int:
        """Fold every roll-up through ingest time ``through``; returns the partial rows merged.

        Roll-ups folded to the same place read silver's tail once: each type's tail is a lazy local checkpoint,
        written by the first roll-up's job and read back by the next. Not ``persist()``: that registers the scan
        in Spark's cache manager, and every append to silver (the stream's own, each micro-batch) re-caches the
        plans that read the table, removing the blocks a fold's running job is reading ("Block ... does not
        exist"). A local checkpoint is the fold's alone; its blocks go when the fold drops the frames.
        """
        merged = 0
        started = time.monotonic()
        tails: dict[dt.datetime | None, SilverFrames] = {}
        for rollup in ROLLUPS:
            try:
                merged += self._fold_one(spark, rollup, through, tails)
            except BaseException:
                # Where the table is folded to is read from it again: a merge is all or nothing.
                self._positions.pop(rollup.table.identifier, None)
                raise
        elapsed = time.monotonic() - started
        log.info("folded %d partial rows through %s in %.2f s", merged, through.isoformat(), elapsed)
        return merged

    def _fold_one(
        self,
        spark: SparkSession,
        rollup: Rollup,
        through: dt.datetime,
        tails: dict[dt.datetime | None, SilverFrames],
    ) -> int:
        name = rollup.table.identifier
        if name not in self._positions:
            self._positions[name] = folded_through(spark, self.catalog, rollup)
        after = self._positions[name]
        if after is not None and after >= through:
            return 0
        if after not in tails:
            tails[after] = {
                event_type: frame.localCheckpoint(eager=False)
                for event_type, frame in silver_tail(spark, self.catalog, after, through).items()
            }
        partial = rollup.partials(tails[after], F.lit(through)).localCheckpoint()
        stats = partial.agg(F.count("*").alias("rows"), F.min(rollup.time_column).alias("oldest")).first()
        assert stats is not None
        if stats["rows"]:
            view = f"shoplake_fold_{rollup.table.name}_{uuid.uuid4().hex[:8]}"
            partial.createOrReplaceTempView(view)
            try:
                self.merge(
                    spark,
                    rollup.merge_sql(self.catalog, view),
                    {"since": rollup.oldest_match(stats["oldest"], self.lookback)},
                    rollup.table,
                )
            finally:
                spark.catalog.dropTempView(view)
        # An empty tail leaves the table as it is: the next fold starts from the same place, and finds nothing
        # there either (ingest times only grow).
        self._positions[name] = through if stats["rows"] else after
        return int(stats["rows"])
