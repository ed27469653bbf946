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
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from pipeline.iceberg_io import merge_into
from pipeline.streaming.rollups import FOLDED_THROUGH, ROLLUPS, Rollup, SilverFrames, filter_tail
from pipeline.tables import SILVER, TableSpec

log = logging.getLogger(__name__)


def silver_tail(spark: SparkSession, catalog: str, after: dt.datetime | None, through: dt.datetime) -> SilverFrames:
    """Silver rows ingested after ``after`` up to ``through``, per event type.

    Silver is partitioned by event date, not ingest time; every data file a micro-batch writes holds one ingest
    time, so Iceberg's per-file column bounds skip all files outside the window.
    """
    return {
        event_type: filter_tail(spark.table(spec.qualified(catalog)), F.lit(after), F.lit(through))
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
        """Fold every roll-up through ingest time ``through``; returns the partial rows merged."""
        merged = 0
        for rollup in ROLLUPS:
            try:
                merged += self._fold_one(spark, rollup, through)
            except BaseException:
                # Where the table is folded to is read from it again: a merge is all or nothing.
                self._positions.pop(rollup.table.identifier, None)
                raise
        return merged

    def _fold_one(self, spark: SparkSession, rollup: Rollup, through: dt.datetime) -> int:
        name = rollup.table.identifier
        if name not in self._positions:
            self._positions[name] = folded_through(spark, self.catalog, rollup)
        after = self._positions[name]
        if after is not None and after >= through:
            return 0
        partial = rollup.partials(silver_tail(spark, self.catalog, after, through), F.lit(through)).localCheckpoint()
        stats = partial.agg(F.count("*").alias("rows"), F.min(rollup.time_column).alias("oldest")).first()
        assert stats is not None
        if stats["rows"]:
            view = f"shoplake_fold_{rollup.table.name}_{uuid.uuid4().hex[:8]}"
            partial.createOrReplaceTempView(view)
            try:
                self.merge(
                    spark,
                    rollup.merge_sql(self.catalog, view),
                    {"since": stats["oldest"] - self.lookback},
                    rollup.table,
                )
            finally:
                spark.catalog.dropTempView(view)
        # An empty tail leaves the table as it is: the next fold starts from the same place, and finds nothing
        # there either (ingest times only grow).
        self._positions[name] = through if stats["rows"] else after
        return int(stats["rows"])
