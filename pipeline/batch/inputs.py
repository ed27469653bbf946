"""Reading the inputs of gold for a range of days, every read filtered on a partition column.

Building days ``first`` .. ``last`` reads only those days of silver, the lifetime state of the day before
(``gold.customer_lifetime``) and, for ``gold.data_quality``, the records that reached Kafka on those days (a
``kafka_timestamp`` range, which the ``days(kafka_timestamp)`` partitions prune). Dates are bound as literals in
DataFrame filters, never formatted into SQL text.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.contracts.events import EventType, topic_name
from pipeline.iceberg_io import days_with_rows, read_day, read_days
from pipeline.observability import with_latency
from pipeline.tables import BRONZE_EVENTS, GOLD_CUSTOMER_LIFETIME, KAFKA_COORDINATES, QUARANTINE_EVENTS, SILVER

# Event types that carry a user: a user is active on a day with one of these events.
USER_EVENT_TYPES = tuple(e for e in EventType if e is not EventType.PRODUCT_UPDATE)


def silver_days(spark: SparkSession, catalog: str, event_type: EventType, first: dt.date, last: dt.date) -> DataFrame:
    """Silver rows of ``event_type`` dated ``first`` .. ``last``."""
    return read_days(spark, catalog, SILVER[event_type], first, last)


def silver_day(spark: SparkSession, catalog: str, event_type: EventType, day: dt.date) -> DataFrame:
    """Silver rows of ``event_type`` dated ``day``."""
    return read_day(spark, catalog, SILVER[event_type], day)


def _silver_after(
    spark: SparkSession, catalog: str, event_type: EventType, after: dt.date | None, last: dt.date
) -> DataFrame:
    rows = spark.table(SILVER[event_type].qualified(catalog)).filter(F.col("event_date") <= F.lit(last))
    return rows if after is None else rows.filter(F.col("event_date") > F.lit(after))


def latest_state_day(spark: SparkSession, catalog: str, before: dt.date) -> dt.date | None:
    """The latest day before ``before`` whose lifetime state is built, from the data files the table's metadata
    plans for the days before it (no data file read, no Spark job); None when there is none."""
    if not spark.catalog.tableExists(GOLD_CUSTOMER_LIFETIME.qualified(catalog)):
        return None
    built = days_with_rows(spark, catalog, GOLD_CUSTOMER_LIFETIME, dt.date.min, before - dt.timedelta(days=1))
    return max(built, default=None)


@dataclass(frozen=True)
class LifetimeInputs:
    """What the lifetime state of ``first`` .. ``last`` is computed from (``pipeline.batch.gold.customer_lifetime``).

    ``previous_df`` is the state as of ``state_day`` (empty when no earlier state is built); the event frames
    hold every day after ``state_day`` up to ``last``: the range itself, plus the days of a gap before it.
    """

    state_day: dt.date | None
    previous_df: DataFrame
    purchases_df: DataFrame
    activity_df: DataFrame


def lifetime_inputs(spark: SparkSession, catalog: str, first: dt.date, last: dt.date) -> LifetimeInputs:
    """The state of the nearest built day before ``first`` (the day before, unless that was never built) and the
    events after it; without any earlier state, every day up to ``last``."""
    state_day = latest_state_day(spark, catalog, first)
    if state_day is None:
        previous = spark.createDataFrame([], GOLD_CUSTOMER_LIFETIME.schema)
    else:
        previous = read_day(spark, catalog, GOLD_CUSTOMER_LIFETIME, state_day)
    purchases = _silver_after(spark, catalog, EventType.PURCHASE, state_day, last)
    activity = functools.reduce(
        DataFrame.unionByName,
        [_silver_after(spark, catalog, e, state_day, last).select("user_id", "event_date") for e in USER_EVENT_TYPES],
    )
    return LifetimeInputs(state_day, previous, purchases, activity)


def kafka_days(first: dt.date, last: dt.date, column: str = "kafka_timestamp") -> Column:
    """``column`` falls on the UTC days ``first`` .. ``last``: a half-open timestamp range, which Iceberg prunes
    on a ``days(column)`` partition (``to_date(column)`` would not prune)."""
    start = F.lit(first).cast("timestamp")  # midnight in the session time zone, UTC (pipeline.spark_session)
    end = F.lit(last + dt.timedelta(days=1)).cast("timestamp")
    return (F.col(column) >= start) & (F.col(column) < end)


@dataclass(frozen=True)
class DataQualityInputs:
    """The frames ``gold.data_quality`` is computed from (see ``pipeline.batch.gold.data_quality``)."""

    silver_df: DataFrame
    quarantine_df: DataFrame
    bronze_df: DataFrame
    landed_df: DataFrame
    table_of_topic: dict[str, str]


def data_quality_inputs(
    spark: SparkSession, catalog: str, topic_prefix: str, first: dt.date, last: dt.date
) -> DataQualityInputs:
    """Silver rows dated in the range; quarantined records dated in it, or undated and reaching Kafka in it; the
    bronze records that reached Kafka in it and where they landed (silver or quarantine)."""
    silver = functools.reduce(
        DataFrame.unionByName,
        [
            with_latency(
                read_days(spark, catalog, spec, first, last).select(
                    "event_date", "batch_id", "ingest_time", "kafka_timestamp", "is_late"
                ),
                spark.table(f"{spec.qualified(catalog)}.snapshots"),
            ).select(F.lit(spec.name).alias("table_name"), "event_date", "is_late", "latency_s")
            for spec in SILVER.values()
        ],
    )
    arrived = kafka_days(first, last)
    quarantine = (
        spark.table(QUARANTINE_EVENTS.qualified(catalog))
        .filter(F.col("event_date").between(F.lit(first), F.lit(last)) | (F.col("event_date").isNull() & arrived))
        .select("kafka_topic", "kafka_timestamp", "event_date", "failed_rules")
    )
    bronze = (
        spark.table(BRONZE_EVENTS.qualified(catalog))
        .filter(arrived)
        .select(*KAFKA_COORDINATES, "kafka_timestamp", "ingest_time")
    )
    landed = functools.reduce(
        DataFrame.unionByName,
        [spark.table(spec.qualified(catalog)).filter(arrived).select(*KAFKA_COORDINATES) for spec in SILVER.values()]
        + [spark.table(QUARANTINE_EVENTS.qualified(catalog)).filter(arrived).select(*KAFKA_COORDINATES)],
    )
    table_of_topic = {topic_name(topic_prefix, e): SILVER[e].name for e in EventType}
    return DataQualityInputs(silver, quarantine, bronze, landed, table_of_topic)
