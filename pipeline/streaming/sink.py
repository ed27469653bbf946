"""The micro-batch sink: the only place of the stream with side effects.

For each micro-batch of Kafka records it writes bronze, the silver table of each event type, quarantine, the
event-id index, and (off the critical path) one row of ``ops.stream_batches``.

Exactly once: each table write is once-only per batch id (:class:`BatchCommitter`), and what a batch writes is
a deterministic function of its records and of the tables as they were before it, so a batch replayed after a
crash writes exactly what the first attempt wrote, wherever that attempt stopped.

Every commit's snapshot summary carries the stream id, batch id, ingest time, the watermark used, the newest
event time seen so far and the Kafka timestamps covered: the Iceberg snapshot that made an event visible says
when it did, and the stream's state is recovered from the tables themselves after a restart.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.contracts.events import EventType
from pipeline.iceberg_io import BatchCommitter, merge_rollup, summary_value
from pipeline.streaming.bronze import to_bronze, with_ingest
from pipeline.streaming.rollups import MINUTE_ROLLUP, SESSION_ROLLUP, minute_rollup, session_rollup
from pipeline.streaming.silver import (
    DUPLICATE_RULE,
    FAILED_RULES,
    EventValidator,
    filter_valid,
    to_event_index,
    to_quarantine,
    to_silver,
    with_duplicate_flag,
    with_late_flag,
)
from pipeline.tables import BRONZE_EVENTS, EVENT_INDEX, QUARANTINE_EVENTS, SILVER, STREAM_BATCHES, TableSpec

log = logging.getLogger(__name__)

EPOCH = dt.datetime.fromtimestamp(0)
MAX_EVENT_TIME = "shoplake.max-event-time"  # snapshot summary keys besides the committer's own
WATERMARK = "shoplake.watermark"
INGEST_TIME = "shoplake.ingest-time"
KAFKA_TS_MIN = "shoplake.kafka-ts-min"
KAFKA_TS_MAX = "shoplake.kafka-ts-max"


def _iso(value: dt.datetime | None) -> str:
    """A naive local datetime (as PySpark returns them) as an unambiguous UTC ISO string."""
    return value.astimezone(dt.UTC).isoformat() if value else ""


def _from_iso(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value).astimezone().replace(tzinfo=None)


@dataclass
class BatchReport:
    """What one micro-batch did; logged, passed to callbacks and written to ``ops.stream_batches``."""

    batch_id: int
    records: int = 0
    silver_rows: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0
    duplicates: int = 0
    late: int = 0
    late_dates: list[dt.date] = field(default_factory=list)  # event days that received late events
    kafka_ts_min: dt.datetime | None = None
    kafka_ts_max: dt.datetime | None = None
    watermark: dt.datetime | None = None
    max_event_time: dt.datetime | None = None
    started_at: float = 0.0
    committed_at: float = 0.0
    # seconds spent validating, deduplicating, summarizing (counts per type), planning the writes, committing
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.committed_at - self.started_at

    @property
    def lag_s(self) -> float | None:
        """Seconds from the oldest record's Kafka timestamp to the batch's last commit."""
        if self.kafka_ts_min is None:
            return None
        return self.committed_at - self.kafka_ts_min.timestamp()


@dataclass
class MicroBatchSink:
    """``foreachBatch`` target: Kafka records -> bronze, silver, quarantine, event index, ops."""

    catalog: str
    topic_prefix: str
    checkpoint_location: str
    max_payload_bytes: int
    late_after: dt.timedelta
    batch_partitions: int = 2
    rollup_lookback: dt.timedelta = dt.timedelta(days=7)
    on_batch: list = field(default_factory=list)  # callbacks receiving each BatchReport

    def __post_init__(self) -> None:
        self._validator = EventValidator(self.topic_prefix, self.max_payload_bytes)
        self._committer: BatchCommitter | None = None
        self._max_event_time: dt.datetime | None = None
        self._ops_writer: threading.Thread | None = None
        self._ops_error: BaseException | None = None

    # -- state recovered on the first batch after a (re)start -------------------------------------------------

    def _start(self, spark: SparkSession, batch_id: int) -> BatchCommitter:
        if self._committer is None:
            metadata = spark.read.text(f"{self.checkpoint_location}/metadata").first()
            if metadata is None:
                raise RuntimeError(f"checkpoint {self.checkpoint_location} has no query metadata")
            stream_id = json.loads(metadata[0])["id"]
            self._committer = BatchCommitter(spark, self.catalog, stream_id)
            newest = summary_value(spark, self.catalog, EVENT_INDEX, stream_id, batch_id, MAX_EVENT_TIME)
            self._max_event_time = _from_iso(newest) if newest else None
            log.info("stream %s resumes at batch %d (newest event time %s)", stream_id, batch_id, newest)
        return self._committer

    def watermark(self) -> dt.datetime:
        """Events older than this are late: the newest event time seen before this batch, minus the allowance."""
        if self._max_event_time is None:
            return EPOCH
        return self._max_event_time - self.late_after

    # -- the batch ---------------------------------------------------------------------------------------------

    def __call__(self, batch_df: DataFrame, batch_id: int) -> None:
        started = time.time()
        spark = batch_df.sparkSession
        committer = self._start(spark, batch_id)
        report = BatchReport(batch_id=batch_id, started_at=started, watermark=self.watermark())
        # PySpark maps naive datetimes to and from the process's local time zone; stay naive-local throughout.
        ingest_time = dt.datetime.fromtimestamp(started)
        # Validate, then stamp (see `with_ingest`). The checkpoint cuts the plan's lineage: the later jobs of
        # this batch then plan in milliseconds instead of re-analysing hundreds of rule expressions.
        # Kafka gives one partition per topic partition; a micro-batch is small, so fewer tasks (and files) win.
        validated = self._validator.validate(to_bronze(batch_df).coalesce(self.batch_partitions)).localCheckpoint()
        validated = with_late_flag(with_ingest(validated, F.lit(batch_id), F.lit(ingest_time)), F.lit(report.watermark))
        mark = self._phase(report, "validate", started)
        known = self._known_deliveries(spark, validated)
        flagged = with_duplicate_flag(validated, known).coalesce(self.batch_partitions).localCheckpoint()
        mark = self._phase(report, "deduplicate", mark)
        is_valid = F.size(F.col(FAILED_RULES)) == 0
        unique_valid = is_valid & ~F.col("is_duplicate")
        per_type = {
            row["_event_type"]: row
            for row in flagged.groupBy("_event_type")
            .agg(
                F.count("*").alias("records"),
                F.count_if(~is_valid).alias("invalid"),
                F.count_if(unique_valid).alias("rows"),
                F.count_if(F.col("is_duplicate")).alias("duplicates"),
                F.count_if(unique_valid & F.col("is_late")).alias("late"),
                F.max(F.when(unique_valid, F.col("event_time"))).alias("max_time"),
                F.min(F.when(unique_valid, F.col("event_time"))).alias("min_time"),
                F.collect_set(F.when(unique_valid & F.col("is_late"), F.col("event_date"))).alias("late_dates"),
                F.min("kafka_timestamp").alias("ts_min"),
                F.max("kafka_timestamp").alias("ts_max"),
            )
            .collect()
        }
        report.records = sum(row["records"] for row in per_type.values())
        if report.records == 0:
            return
        mark = self._phase(report, "summarize", mark)
        report.kafka_ts_min = min(row["ts_min"] for row in per_type.values())
        report.kafka_ts_max = max(row["ts_max"] for row in per_type.values())
        unique = flagged.filter(unique_valid)
        writes: list[tuple[DataFrame, TableSpec]] = [(flagged, BRONZE_EVENTS), (to_event_index(unique), EVENT_INDEX)]
        for event_type in EventType:
            counts = per_type.get(event_type.value)
            report.silver_rows[SILVER[event_type].identifier] = counts["rows"] if counts else 0
            if counts and counts["rows"]:
                writes.append((to_silver(unique, event_type), SILVER[event_type]))
        report.duplicates = sum(row["duplicates"] for row in per_type.values())
        report.late = sum(row["late"] for row in per_type.values())
        report.late_dates = sorted({d for row in per_type.values() for d in row["late_dates"]})
        report.quarantined = sum(row["invalid"] for row in per_type.values()) + report.duplicates
        if report.quarantined:
            reasons = F.when(F.col("is_duplicate"), F.array(F.lit(DUPLICATE_RULE))).otherwise(F.col(FAILED_RULES))
            writes.append(
                (to_quarantine(flagged.filter(~unique_valid).withColumn(FAILED_RULES, reasons)), QUARANTINE_EVENTS)
            )
        oldest = [row["min_time"] for row in per_type.values() if row["min_time"] is not None]
        newest = [row["max_time"] for row in per_type.values() if row["max_time"] is not None]
        report.max_event_time = max([*newest, *([self._max_event_time] if self._max_event_time else [])], default=None)
        properties = {
            INGEST_TIME: _iso(ingest_time),
            WATERMARK: _iso(report.watermark),
            MAX_EVENT_TIME: _iso(report.max_event_time),
            KAFKA_TS_MIN: _iso(report.kafka_ts_min),
            KAFKA_TS_MAX: _iso(report.kafka_ts_max),
        }
        tasks: list[Callable[[], object]] = [
            functools.partial(committer.append, df, spec, batch_id, properties) for df, spec in writes
        ]
        if oldest:
            since = min(oldest) - self.rollup_lookback
            stream, batch = F.lit(committer.stream_id), F.lit(batch_id)
            for rollup, partial in ((SESSION_ROLLUP, session_rollup), (MINUTE_ROLLUP, minute_rollup)):
                tasks.append(
                    functools.partial(merge_rollup, partial(unique, stream, batch), rollup, self.catalog, since)
                )
        commit_started = self._phase(report, "plan", mark)
        self._run_all(tasks)
        report.committed_at = time.time()
        report.phases["commit"] = report.committed_at - commit_started
        self._max_event_time = report.max_event_time
        self._record_later(spark, committer, report)
        for callback in self.on_batch:
            callback(report)

    @staticmethod
    def _phase(report: BatchReport, name: str, since: float) -> float:
        """Record the seconds since ``since`` as phase ``name``; returns now."""
        now = time.time()
        report.phases[name] = now - since
        return now

    @staticmethod
    def _run_all(tasks: list[Callable[[], object]]) -> None:
        """Run every commit at once: each table is its own Iceberg commit, none needs to wait for another."""
        with ThreadPoolExecutor(max_workers=len(tasks), thread_name_prefix="commit") as pool:
            for future in [pool.submit(task) for task in tasks]:
                future.result()

    def _known_deliveries(self, spark: SparkSession, validated_df: DataFrame) -> DataFrame:
        """Deliveries already in silver of this batch's valid events.

        Joined on the event date as well as the id (a redelivery carries its event's date): the index is
        partitioned by date, so Spark prunes it to the batch's days at run time.
        """
        batch_keys = filter_valid(validated_df).select("event_id", "event_date").distinct()
        return (
            spark.table(EVENT_INDEX.qualified(self.catalog))
            .select("event_id", "event_date", "kafka_topic", "kafka_partition", "kafka_offset")
            .join(F.broadcast(batch_keys), on=["event_id", "event_date"], how="left_semi")
            .drop("event_date")
        )

    # -- ops.stream_batches: written while the next batch runs -------------------------------------------------

    def _record_later(self, spark: SparkSession, committer: BatchCommitter, report: BatchReport) -> None:
        self.flush()
        row = (
            committer.stream_id,
            report.batch_id,
            dt.datetime.fromtimestamp(report.started_at),
            dt.datetime.fromtimestamp(report.committed_at),
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

        def write() -> None:
            try:
                committer.append(spark.createDataFrame([row], STREAM_BATCHES.schema), STREAM_BATCHES, report.batch_id)
            except BaseException as exc:  # surfaced by the next flush()
                self._ops_error = exc

        self._ops_writer = threading.Thread(target=write, name=f"ops-batch-{report.batch_id}", daemon=True)
        self._ops_writer.start()
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

    def flush(self) -> None:
        """Wait for the pending ``ops.stream_batches`` row; raise if writing it failed."""
        if self._ops_writer is not None:
            self._ops_writer.join()
            self._ops_writer = None
        if self._ops_error is not None:
            error, self._ops_error = self._ops_error, None
            raise RuntimeError("writing ops.stream_batches failed") from error
