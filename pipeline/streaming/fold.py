"""Folding silver's tail into the roll-ups (``silver.sessions``, ``silver.event_minutes``): the side effects.

The transforms and the exactly-once argument are in :mod:`pipeline.streaming.rollups`. This module reads the
tail of silver, merges its partial rows into each roll-up table, and remembers where each table is folded to.
Folds run off the micro-batch's critical path, in a background thread of the stream, every
``stream.rollup_fold_seconds`` (``stream.rollup_fold_backlog_seconds`` while the stream is behind), and once
more whenever the stream is flushed or stopped.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from pipeline.iceberg_io import merge_into
from pipeline.spark_session import in_background_pool
from pipeline.streaming.rollups import FOLDED_THROUGH, ROLLUPS, Rollup, SilverFrames, filter_tail
from pipeline.tables import SILVER

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
    """Folds silver into every roll-up up to the newest completed micro-batch; one fold at a time."""

    catalog: str
    lookback: dt.timedelta
    _positions: dict[str, dt.datetime | None] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _error: BaseException | None = None

    def fold(self, spark: SparkSession, through: dt.datetime) -> int:
        """Fold every roll-up through ingest time ``through``; returns the partial rows merged."""
        merged = 0
        with self._lock:
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
                merge_into(
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

    # -- in the background -------------------------------------------------------------------------------------

    def fold_later(
        self, spark: SparkSession, through: dt.datetime, then: Callable[[SparkSession], None] | None = None
    ) -> bool:
        """Start a fold in the background unless one is running; returns whether one was started. ``then`` runs
        in the same thread after the fold (other background work of the stream: one thread, one at a time)."""
        self.raise_error()
        if self._thread is not None and self._thread.is_alive():
            return False

        def run() -> None:
            try:
                in_background_pool(spark)
                self.fold(spark, through)
                if then is not None:
                    then(spark)
            except BaseException as exc:  # surfaced by the next call
                self._error = exc

        self._thread = threading.Thread(target=run, name="rollup-fold", daemon=True)
        self._thread.start()
        return True

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.raise_error()

    def raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError("folding silver into the roll-ups failed") from error
