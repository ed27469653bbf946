"""Kafka records -> bronze rows: the value untouched, the record's coordinates, when it was ingested."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def to_bronze(kafka_df: DataFrame) -> DataFrame:
    """Rename the Kafka source's columns to bronze's; works on streaming and batch frames."""
    return kafka_df.select(
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.col("key").alias("kafka_key"),
        F.col("value"),
    )


def with_ingest(df: DataFrame, batch_id: Column, ingest_time: Column) -> DataFrame:
    """Stamp rows with the micro-batch that ingested them.

    Kept apart from the heavy validation expressions on purpose: literals that change every batch would make
    Spark compile those expressions anew each time instead of reusing the generated code.
    """
    return df.withColumns({"batch_id": batch_id.cast("long"), "ingest_time": ingest_time.cast("timestamp")})
