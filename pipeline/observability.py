"""Freshness: how long each event took from Kafka to being visible in silver.

Every silver row carries its Kafka timestamp, its micro-batch id and ingest time; the Iceberg snapshot that
added it records the same batch id and ingest time in its summary, and its commit time. An event's latency is
that snapshot's commit time minus the event's Kafka timestamp: the moment a reader could first see it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.iceberg_io import BATCH_ID_PROPERTY, INGEST_TIME_PROPERTY
from pipeline.tables import SILVER, TableSpec


def with_latency(silver_df: DataFrame, snapshots_df: DataFrame) -> DataFrame:
    """Add ``visible_at`` and ``latency_s`` (Kafka timestamp -> commit of the snapshot that added the row).

    Every row is kept: where table maintenance has expired the snapshot that added a row, its latency is no
    longer known and both columns are null.
    """
    summary = F.col("summary")
    commits = snapshots_df.select(
        summary[BATCH_ID_PROPERTY].cast("long").alias("batch_id"),
        F.to_timestamp(summary[INGEST_TIME_PROPERTY]).alias("ingest_time"),
        F.col("committed_at").alias("visible_at"),
    )
    return silver_df.join(commits, on=["batch_id", "ingest_time"], how="left").withColumn(
        "latency_s",
        (F.unix_micros(F.col("visible_at")) - F.unix_micros(F.col("kafka_timestamp"))) / F.lit(1_000_000.0),
    )


def silver_latencies(spark: SparkSession, catalog: str, tables: tuple[TableSpec, ...] | None = None) -> DataFrame:
    """One row per silver event: ``kafka_timestamp``, ``visible_at``, ``latency_s``, ``batch_id``."""
    frames = [
        with_latency(
            spark.table(spec.qualified(catalog)).select("batch_id", "ingest_time", "kafka_timestamp"),
            spark.table(f"{spec.qualified(catalog)}.snapshots"),
        )
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
