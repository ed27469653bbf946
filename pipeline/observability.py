"""Freshness: how long each event took from Kafka to being visible in silver.

Every silver row carries its Kafka timestamp, its micro-batch id and ingest time; the batch's row in
``ops.stream_batches`` records the same batch id and ingest time (``started_at``), and when its commit ended
(``committed_at``). An event's latency is that commit time minus the event's Kafka timestamp: the moment a reader
could see it in every table of its batch. The batch rows outlive the tables' snapshots, which the stream expires
after minutes (``stream.snapshot_retention_minutes``), so a day's latency stays known for as long as the day.

The same computation serves the benchmarks, the demo, the ``data_quality`` gold table and the ``freshness``
asset check on silver, which judges the events made visible in a recent window against an objective
(:func:`freshness_verdict`).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.iceberg_io import read_table
from pipeline.tables import SILVER, STREAM_BATCHES, TableSpec


def with_latency(silver_df: DataFrame, batches_df: DataFrame) -> DataFrame:
    """Add ``visible_at`` and ``latency_s`` (Kafka timestamp -> the commit of the batch that added the row).

    ``batches_df`` holds ``ops.stream_batches`` rows. Every silver row is kept: where its batch's row is missing (a
    stream stopped between committing a batch and recording it), its latency is not known and both columns are
    null.
    """
    commits = batches_df.select(
        "batch_id", F.col("started_at").alias("ingest_time"), F.col("committed_at").alias("visible_at")
    )
    return silver_df.join(commits, on=["batch_id", "ingest_time"], how="left").withColumn(
        "latency_s",
        (F.unix_micros(F.col("visible_at")) - F.unix_micros(F.col("kafka_timestamp"))) / F.lit(1_000_000.0),
    )


def filter_visible_since(latencies_df: DataFrame, since: dt.datetime) -> DataFrame:
    """Rows made visible in silver at or after ``since`` (an aware time); rows of unknown latency are left out."""
    return latencies_df.filter(F.col("visible_at") >= F.lit(since))


def silver_latencies(spark: SparkSession, catalog: str, tables: tuple[TableSpec, ...] | None = None) -> DataFrame:
    """One row per silver event: ``kafka_timestamp``, ``visible_at``, ``latency_s``, ``batch_id``."""
    batches = read_table(spark, catalog, STREAM_BATCHES)
    frames = [
        with_latency(read_table(spark, catalog, spec).select("batch_id", "ingest_time", "kafka_timestamp"), batches)
        for spec in (tables or tuple(SILVER.values()))
    ]
    return functools.reduce(DataFrame.unionByName, frames)


@dataclass(frozen=True)
class LatencySummary:
    events: int
    p50_s: float
    p95_s: float
    p99_s: float
    max_s: float


def summarize(latencies_df: DataFrame) -> LatencySummary | None:
    row = latencies_df.agg(
        F.count("latency_s").alias("n"),  # events whose latency is known
        F.percentile("latency_s", F.lit(0.50)).alias("p50"),
        F.percentile("latency_s", F.lit(0.95)).alias("p95"),
        F.percentile("latency_s", F.lit(0.99)).alias("p99"),
        F.max("latency_s").alias("max"),
    ).first()
    if row is None or not row["n"]:
        return None
    return LatencySummary(row["n"], row["p50"], row["p95"], row["p99"], row["max"])


@dataclass(frozen=True)
class Freshness:
    """A stream's freshness since it started: its cold start apart from the events sent once it was warm."""

    cold_start_s: float  # stream start -> the first silver commit
    warm: LatencySummary | None  # events sent after that first commit (None: there were none)
    all: LatencySummary  # every event since the start, including those that waited for it


def freshness_since(spark: SparkSession, catalog: str, started_at: float) -> Freshness | None:
    """:class:`Freshness` of the events that reached silver after ``started_at`` (epoch seconds); None if none
    did."""
    started = F.timestamp_seconds(F.lit(started_at))
    latencies_df = silver_latencies(spark, catalog).filter(F.col("visible_at") >= started)
    everything = summarize(latencies_df)
    first = latencies_df.agg(F.min("visible_at")).first()
    if everything is None or first is None or first[0] is None:
        return None
    first_visible = first[0]
    warm = summarize(latencies_df.filter(F.col("kafka_timestamp") > F.lit(first_visible)))
    return Freshness(first_visible.timestamp() - started_at, warm, everything)


def latency_summary(spark: SparkSession, catalog: str) -> LatencySummary | None:
    """Percentiles of Kafka -> silver latency over every event in silver."""
    return summarize(silver_latencies(spark, catalog))


def recent_latency_summary(
    spark: SparkSession, catalog: str, spec: TableSpec, since: dt.datetime
) -> LatencySummary | None:
    """Percentiles of Kafka -> silver latency of one silver table's events made visible since ``since``.

    Only the files of the micro-batches committed since then are read: the filter on ``batch_id`` from the
    oldest of them skips every other data file by its column bounds (a micro-batch writes files of one batch
    id). Rows of an earlier stream with higher batch ids pass that filter and are then left out by their commit
    time, like every row committed before ``since``.
    """
    batches = read_table(spark, catalog, STREAM_BATCHES).filter(F.col("committed_at") >= F.lit(since))
    oldest = batches.agg(F.min("batch_id").alias("batch_id")).first()
    if oldest is None or oldest["batch_id"] is None:
        return None  # no micro-batch committed since then
    rows = read_table(spark, catalog, spec).filter(F.col("batch_id") >= F.lit(oldest["batch_id"]))
    latencies = with_latency(rows.select("batch_id", "ingest_time", "kafka_timestamp"), batches)
    return summarize(filter_visible_since(latencies, since))


@dataclass(frozen=True)
class FreshnessVerdict:
    """Whether the events of a window met the p99 objective, with the figures behind the answer."""

    is_ok: bool
    events: int  # events made visible in the window whose latency is known
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    max_s: float | None
    objective_s: float


def freshness_verdict(summary: LatencySummary | None, p99_objective_s: float) -> FreshnessVerdict:
    """The window's p99 against the objective: ok when it is at most the objective.

    A window without a visible event (``summary`` None: the shop was idle or the stream is stopped) has no
    latency to judge and is ok; its ``events`` is 0, which the check reports.
    """
    if summary is None:
        return FreshnessVerdict(True, 0, None, None, None, None, p99_objective_s)
    return FreshnessVerdict(
        is_ok=summary.p99_s <= p99_objective_s,
        events=summary.events,
        p50_s=summary.p50_s,
        p95_s=summary.p95_s,
        p99_s=summary.p99_s,
        max_s=summary.max_s,
        objective_s=p99_objective_s,
    )
