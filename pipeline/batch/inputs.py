"""Reading silver for gold: one day, or every day up to one (lifetime figures), and data-quality inputs.

Dates are bound as literals in DataFrame filters, never formatted into SQL text.
"""

from __future__ import annotations

import datetime as dt
import functools

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.audit import landed_records
from pipeline.contracts.events import EventType, topic_name
from pipeline.iceberg_io import read_day
from pipeline.observability import with_latency
from pipeline.tables import BRONZE_EVENTS, QUARANTINE_EVENTS, SILVER


def silver_day(spark: SparkSession, catalog: str, event_type: EventType, day: dt.date) -> DataFrame:
    """Silver rows of ``event_type`` dated ``day``."""
    return read_day(spark, catalog, SILVER[event_type], day)


def silver_until(spark: SparkSession, catalog: str, event_type: EventType, day: dt.date) -> DataFrame:
    """Silver rows of ``event_type`` from every day up to and including ``day``."""
    return spark.table(SILVER[event_type].qualified(catalog)).filter(F.col("event_date") <= F.lit(day))


def user_activity_until(spark: SparkSession, catalog: str, day: dt.date) -> DataFrame:
    """(user_id, event_date) of every accepted event with a user, up to ``day``."""
    frames = [
        silver_until(spark, catalog, event_type, day).select("user_id", "event_date")
        for event_type in EventType
        if event_type is not EventType.PRODUCT_UPDATE
    ]
    return functools.reduce(DataFrame.unionByName, frames)


def _kafka_day(day: dt.date):
    return F.to_date(F.col("kafka_timestamp")) == F.lit(day)


def data_quality_inputs(
    spark: SparkSession, catalog: str, topic_prefix: str, day: dt.date
) -> tuple[DataFrame, DataFrame, DataFrame, DataFrame, dict[str, str]]:
    """The frames ``gold.data_quality`` is computed from (see ``pipeline.batch.gold.data_quality``)."""
    silver = functools.reduce(
        DataFrame.unionByName,
        [
            with_latency(
                read_day(spark, catalog, spec, day).select("batch_id", "ingest_time", "kafka_timestamp", "is_late"),
                spark.table(f"{spec.qualified(catalog)}.snapshots"),
            ).select(F.lit(spec.name).alias("table_name"), "is_late", "latency_s")
            for spec in SILVER.values()
        ],
    )
    quarantine = (
        spark.table(QUARANTINE_EVENTS.qualified(catalog))
        .filter((F.col("event_date") == F.lit(day)) | (F.col("event_date").isNull() & _kafka_day(day)))
        .select("kafka_topic", "event_date", "failed_rules")
    )
    bronze = (
        spark.table(BRONZE_EVENTS.qualified(catalog))
        .filter(_kafka_day(day))
        .select("kafka_topic", "kafka_partition", "kafka_offset", "ingest_time")
    )
    landed = landed_records(spark, catalog, _kafka_day(day)).drop("kafka_timestamp")
    table_of_topic = {topic_name(topic_prefix, e): SILVER[e].name for e in EventType}
    return silver, quarantine, bronze, landed, table_of_topic
