"""A micro-batch's plan of writes: which rows go to which table, with which markers, and what the batch did.

:func:`plan_batch` is a pure function of the materialized batch, its duplicate verdicts and the newest event time
seen before it: it reads nothing and writes nothing (the frames it returns are plans over the materialized
batch). The same batch replayed after a crash therefore gets the same plan, and the committer
(:mod:`pipeline.streaming.commit`) only has to skip the tables that already hold it.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.contracts.events import EventType
from pipeline.streaming.commit import BatchMarkers, TableWrite
from pipeline.streaming.dedup import FINGERPRINT_COLUMNS, Verdicts
from pipeline.streaming.silver import (
    DUPLICATE_RULE,
    FAILED_RULES,
    to_quarantine,
    to_silver,
    with_duplicates,
)
from pipeline.tables import BRONZE_EVENTS, KAFKA_COORDINATES, QUARANTINE_EVENTS, SILVER

# The columns of a batch brought to the driver, one row per record, besides its fingerprints
# (:data:`pipeline.streaming.dedup.FINGERPRINT_COLUMNS`) and ``is_valid``: what deduplication and the report need.
NARROW_COLUMNS = (
    "event_id",
    "event_time",
    "event_date",
    "kafka_timestamp",
    *KAFKA_COORDINATES,
    "_event_type",
    "is_late",
)
_COORDINATES_SCHEMA = T.StructType([BRONZE_EVENTS.schema[name] for name in KAFKA_COORDINATES])


@dataclass(frozen=True)
class MaterializedBatch:
    """A micro-batch computed once: its rows (stamped with batch id, ingest time and the late flag, held by Spark)
    and, in the driver, its :data:`NARROW_COLUMNS`, fingerprints and ``is_valid``."""

    batch_id: int
    rows: DataFrame
    narrow: pa.Table
    ingest_time: dt.datetime
    watermark: dt.datetime

    @property
    def valid(self) -> pa.Table:
        """The narrow rows of the records that pass the contract."""
        return self.narrow.filter(self.narrow.column("is_valid"))


@dataclass
class BatchReport:
    """What one micro-batch did; logged, passed to callbacks and written to ``ops.stream_batches``."""

    batch_id: int
    ingest_time: dt.datetime | None = None  # every row the batch wrote carries it
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
    # seconds spent materializing (Kafka read, validation, the narrow columns to the driver), deduplicating,
    # planning the writes and committing them
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


@dataclass(frozen=True)
class BatchPlan:
    """Everything a micro-batch commits: a write per table, the markers every snapshot carries, the fingerprints
    of the ids it adds to silver (those not committed yet), and its report."""

    writes: list[TableWrite]
    markers: BatchMarkers
    committed: pa.Table
    report: BatchReport


def _per_record(batch: MaterializedBatch, of_valid: pa.BooleanArray) -> pa.BooleanArray:
    """A verdict on the valid records spread over every record of the batch (False for the invalid ones)."""
    is_valid = batch.narrow.column("is_valid").to_numpy(zero_copy_only=False)
    per_record = np.zeros(batch.narrow.num_rows, dtype=bool)
    per_record[is_valid] = of_valid.to_numpy(zero_copy_only=False)
    return pa.array(per_record, pa.bool_())


def plan_batch(batch: MaterializedBatch, verdicts: Verdicts, newest_before: dt.datetime | None) -> BatchPlan:
    """The writes of ``batch`` given the duplicate verdicts of its valid records (in the order of
    :attr:`MaterializedBatch.valid`) and the newest event time of the batches before it.

    Bronze gets every record; each event type's silver table its valid first deliveries (when it has any);
    quarantine the rest, a duplicate with the rule ``duplicate`` (when there is any).
    """
    narrow = batch.narrow
    is_duplicate = _per_record(batch, verdicts.is_duplicate)
    is_unique = pc.and_(narrow.column("is_valid"), pc.invert(is_duplicate))
    is_late = pc.and_(is_unique, narrow.column("is_late"))
    unique = narrow.filter(is_unique)
    newest = pc.max(unique.column("event_time")).as_py() if unique.num_rows else None
    types = pc.value_counts(unique.column("_event_type")).to_pylist()
    per_type = {entry["values"]: entry["counts"] for entry in types}
    report = BatchReport(
        batch_id=batch.batch_id,
        ingest_time=batch.ingest_time,
        records=narrow.num_rows,
        silver_rows={SILVER[t].identifier: per_type.get(t.value, 0) for t in EventType},
        quarantined=narrow.num_rows - unique.num_rows,
        duplicates=pc.sum(is_duplicate).as_py() or 0,
        late=pc.sum(is_late).as_py() or 0,
        late_dates=sorted(set(pc.filter(narrow.column("event_date"), is_late).to_pylist())),
        kafka_ts_min=pc.min(narrow.column("kafka_timestamp")).as_py(),
        kafka_ts_max=pc.max(narrow.column("kafka_timestamp")).as_py(),
        watermark=batch.watermark,
        max_event_time=max((t for t in (newest, newest_before) if t is not None), default=None),
    )
    duplicates_df = (
        batch.rows.sparkSession.createDataFrame(
            narrow.filter(is_duplicate).select(list(KAFKA_COORDINATES)), _COORDINATES_SCHEMA
        )
        if report.duplicates
        else None
    )
    flagged = with_duplicates(batch.rows, duplicates_df)
    unique_valid = (F.size(F.col(FAILED_RULES)) == 0) & ~F.col("is_duplicate")
    writes = [TableWrite(BRONZE_EVENTS, lambda: batch.rows)]
    writes += [
        TableWrite(SILVER[t], functools.partial(to_silver, flagged.filter(unique_valid), t))
        for t in EventType
        if per_type.get(t.value)
    ]
    if report.quarantined:
        reasons = F.when(F.col("is_duplicate"), F.array(F.lit(DUPLICATE_RULE))).otherwise(F.col(FAILED_RULES))
        rejected = flagged.filter(~unique_valid).withColumn(FAILED_RULES, reasons)
        writes.append(TableWrite(QUARANTINE_EVENTS, functools.partial(to_quarantine, rejected)))
    markers = BatchMarkers(
        ingest_time=batch.ingest_time,
        watermark=report.watermark,
        max_event_time=report.max_event_time,
        kafka_ts_min=report.kafka_ts_min,
        kafka_ts_max=report.kafka_ts_max,
    )
    # The ids the batch adds: its first deliveries, but for those a dead attempt of it already committed.
    adds = narrow.filter(pc.and_(is_unique, pc.invert(_per_record(batch, verdicts.is_held))))
    return BatchPlan(writes, markers, adds.select(list(FINGERPRINT_COLUMNS)), report)
