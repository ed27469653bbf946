"""The micro-batch sink: the only place of the stream with side effects, as a straight line.

Each micro-batch arrives validated (the contract's rules are part of the streaming query, planned once when it
starts). :meth:`MicroBatchSink.__call__` then:

1. **materializes** the batch once (stamped with batch id, ingest time and the late flag) and brings its narrow
   columns (ids and their fingerprints, times, coordinates, verdicts) to the driver as Arrow: one Spark job
   (:func:`materialize`);
2. **decides** duplicates in the driver against every committed event id (:func:`pipeline.streaming.dedup.decide`);
3. **plans** the writes: bronze, the silver table of each event type present, quarantine (a pure function,
   :func:`pipeline.streaming.plan.plan_batch`);
4. **commits** them, each an Iceberg append once per batch id (:class:`pipeline.streaming.commit.BatchCommitter`);
5. moves the **state** on (:class:`pipeline.streaming.state.StreamState`), and hands the batch's ``ops.stream_batches``
   row and, when due, a fold of the roll-ups and the tables' hygiene to the background worker
   (:class:`StreamBackground`): none of them is on the path from Kafka to silver.

The state was recovered once, before the query started (:func:`pipeline.streaming.state.recover`). Exactly once,
step by step: ``docs/streaming.md``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.config import Settings
from pipeline.maintenance import StreamHygiene
from pipeline.streaming.background import BackgroundWorker
from pipeline.streaming.bronze import with_ingest
from pipeline.streaming.commit import BatchCommitter, TableWrite
from pipeline.streaming.dedup import decide, fingerprints
from pipeline.streaming.fold import RollupFolder
from pipeline.streaming.plan import NARROW_COLUMNS, BatchReport, MaterializedBatch, plan_batch
from pipeline.streaming.silver import FAILED_RULES, with_late_flag
from pipeline.streaming.state import StreamState
from pipeline.tables import STREAM_BATCHES, STREAMING_TABLES

log = logging.getLogger(__name__)
_T = TypeVar("_T")

__all__ = ["BatchReport", "FoldCadence", "MicroBatchSink", "StreamBackground", "materialize"]


def materialize(
    validated_df: DataFrame, batch_id: int, ingest_time: dt.datetime, watermark: dt.datetime
) -> MaterializedBatch:
    """Compute the batch once: the Kafka read and validation run in one job, which also brings the narrow columns
    to the driver (the local checkpoint is lazy: that job fills it); every write reads the checkpoint."""
    rows = with_late_flag(
        with_ingest(validated_df, F.lit(batch_id), F.lit(ingest_time)), F.lit(watermark)
    ).localCheckpoint(eager=False)
    narrow = rows.select(*NARROW_COLUMNS, *fingerprints(), (F.size(F.col(FAILED_RULES)) == 0).alias("is_valid"))
    return MaterializedBatch(batch_id, rows, narrow.toArrow(), ingest_time, watermark)


class _Stopwatch:
    """The seconds each phase of a batch took, for its report."""

    def __init__(self) -> None:
        self.started_at = time.time()
        self.phases: dict[str, float] = {}
        self._mark = self.started_at

    def timed(self, phase: str, work: Callable[..., _T], *args: Any) -> _T:
        result = work(*args)
        now = time.time()
        self.phases[phase], self._mark = now - self._mark, now
        return result

    def stamp(self, report: BatchReport) -> None:
        report.started_at, report.committed_at, report.phases = self.started_at, self._mark, self.phases


def _log(report: BatchReport) -> None:
    log.info(
        "batch %d: %d records, %d silver, %d quarantined (%d duplicates, %d late), %.2fs, lag %.2fs",
        report.batch_id,
        report.records,
        sum(report.silver_rows.values()),
        report.quarantined,
        report.duplicates,
        report.late,
        report.duration_s,
        report.lag_s or 0.0,
    )


@dataclass
class FoldCadence:
    """When the roll-ups are folded: every ``interval_s``; while the stream is behind, every ``backlog_s``.

    Behind: the batch's oldest record waited in Kafka longer than a fold interval before the batch started. A
    fold then competes with the next batches for the same cores, and every fold's merges read the roll-up tables
    again; once the stream has caught up, one fold covers the whole backlog.
    """

    interval_s: float
    backlog_s: float
    last: float = field(default_factory=time.monotonic)

    def due(self, report: BatchReport, now: float | None = None) -> bool:
        assert report.kafka_ts_min is not None  # the batch has records
        behind = report.started_at - report.kafka_ts_min.timestamp() > self.interval_s
        elapsed = (time.monotonic() if now is None else now) - self.last
        return elapsed >= (self.backlog_s if behind else self.interval_s)


@dataclass
class StreamBackground:
    """The stream's work off the critical path, on one worker: each batch's ``ops.stream_batches`` row, the roll-up
    folds on their cadence, and the tables' hygiene after a fold when it is due."""

    spark: SparkSession
    folder: RollupFolder
    cadence: FoldCadence
    hygiene: StreamHygiene
    worker: BackgroundWorker

    def after_batch(self, committer: BatchCommitter, report: BatchReport, ingest_time: dt.datetime) -> None:
        self.worker.submit("writing ops.stream_batches", lambda: self._record(committer, report))
        if not self.worker.is_pending("folding the roll-ups") and self.cadence.due(report):
            self.cadence.last = time.monotonic()
            self.worker.submit("folding the roll-ups", lambda: self._fold(ingest_time))

    def flush(self, through: dt.datetime | None) -> None:
        """Wait for the pending work, then fold through ``through`` (None: nothing ingested yet)."""
        self.worker.drain()
        if through is not None:
            self.cadence.last = time.monotonic()
            self.worker.submit("folding the roll-ups", lambda: self.folder.fold(self.spark, through))
            self.worker.drain()

    def _fold(self, through: dt.datetime) -> None:
        self.folder.fold(self.spark, through)
        if self.hygiene.due():
            self.hygiene.run(self.spark)

    def _record(self, committer: BatchCommitter, report: BatchReport) -> None:
        values = (
            committer.stream_id,
            report.batch_id,
            report.ingest_time,
            dt.datetime.fromtimestamp(report.committed_at, dt.UTC),
            report.records,
            report.kafka_ts_min,
            report.kafka_ts_max,
            report.watermark,
            report.max_event_time,
            sum(report.silver_rows.values()),
            report.quarantined,
            report.duplicates,
            report.late,
            report.late_dates,
        )
        # One Arrow row (a frame from a Python list would start Python workers for its write job).
        row = pa.Table.from_pylist([dict(zip(STREAM_BATCHES.schema.fieldNames(), values, strict=True))])
        frame = self.spark.createDataFrame(row, STREAM_BATCHES.schema)
        committer.commit(report.batch_id, [TableWrite(STREAM_BATCHES, lambda: frame)])


@dataclass
class MicroBatchSink:
    """``foreachBatch`` target: validated Kafka records -> bronze, silver, quarantine; roll-ups folded later."""

    state: StreamState
    committer: BatchCommitter
    background: StreamBackground
    on_batch: list[Callable[[BatchReport], None]] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        spark: SparkSession,
        settings: Settings,
        state: StreamState,
        on_batch: list[Callable[[BatchReport], None]] | None = None,
        *,
        committer: BatchCommitter | None = None,
        folder: RollupFolder | None = None,
    ) -> MicroBatchSink:
        """The sink of ``state``'s stream, every choice from ``settings.stream``. ``committer`` and ``folder``
        replace the ones built from them (tests inject failures at their commit seams)."""
        stream, catalog = settings.stream, settings.catalog.name
        background = StreamBackground(
            spark,
            folder or RollupFolder(catalog, dt.timedelta(days=stream.rollup_lookback_days)),
            FoldCadence(stream.rollup_fold_seconds, stream.rollup_fold_backlog_seconds),
            StreamHygiene(
                catalog,
                STREAMING_TABLES,
                every=dt.timedelta(minutes=stream.hygiene_minutes),
                retention=stream.snapshot_retention,
            ),
            BackgroundWorker(spark),
        )
        committer = committer or BatchCommitter(catalog, state.stream_id, state.committed_batches)
        return cls(state, committer, background, list(on_batch or []))

    def __call__(self, validated_df: DataFrame, batch_id: int) -> None:
        self.background.worker.raise_failure()
        clock = _Stopwatch()
        ingest_time = self.state.next_ingest_time(dt.datetime.fromtimestamp(clock.started_at, dt.UTC))
        watermark = self.state.watermark(batch_id)
        batch = clock.timed("materialize", materialize, validated_df, batch_id, ingest_time, watermark)
        if batch.narrow.num_rows == 0:
            return
        ids = self.state.committed_ids()
        verdicts = clock.timed("deduplicate", decide, batch.valid, ids)
        newest_before = self.state.newest_event_time_before(batch_id)
        plan = clock.timed("plan", plan_batch, batch, verdicts, newest_before)
        ids.check_room(plan.committed.num_rows)  # never a duplicate admitted unchecked: stop before writing
        clock.timed("commit", self.committer.commit, batch_id, plan.writes, plan.markers)
        self.state.advance(ingest_time, plan.report.max_event_time, plan.committed)
        batch.rows.unpersist()
        clock.stamp(plan.report)
        _log(plan.report)
        self.background.after_batch(self.committer, plan.report, ingest_time)
        for callback in self.on_batch:
            callback(plan.report)

    def flush(self) -> None:
        """Wait for the background work and fold silver into the roll-ups up to the newest completed batch (what
        earlier runs committed too, when this one ran none); raises if any of it failed."""
        self.background.flush(self.state.completed_ingest)

    def wait_background(self) -> None:
        """Wait for the background work submitted so far; raises if any of it failed."""
        self.background.worker.drain()
