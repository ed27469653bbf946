"""Benchmark inputs built inside Spark: a simulated day as Kafka records, multiplied without Python lists.

A few thousand simulated records go through Python once; copies with fresh ids are made by Spark itself (the
machine notes warn against feeding Spark millions of rows from a Python list).
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from pipeline.contracts.events import EventType
from pipeline.streaming.bronze import to_bronze
from pipeline.streaming.silver import EventValidator, filter_valid, to_silver
from simulation.generator import generate
from simulation.scenario import load_scenario
from simulation.sinks import simulated_items

KAFKA_SCHEMA = (
    "key binary, value binary, topic string, partition int, offset long, timestamp timestamp, timestampType int"
)
INGESTED = dt.datetime(2026, 11, 25)


def kafka_records(spark: SparkSession, scenario_name: str, seed: int, events: int, prefix: str = "shop") -> DataFrame:
    """The simulated records as the Kafka source would deliver them (one partition, offsets in send order)."""
    scenario = load_scenario(scenario_name)
    records, _ = generate(scenario, seed, events)
    rows = [
        (k.encode(), v, f"{prefix}.{t}", 0, i, INGESTED, 0)
        for i, (t, k, v) in enumerate(simulated_items(records, scenario, live=False))
    ]
    return spark.createDataFrame(rows, KAFKA_SCHEMA)


def multiplied(kafka_df: DataFrame, copies: int) -> DataFrame:
    """``copies`` copies of each record at distinct offsets (payloads unchanged: the same event ids)."""
    copy = F.explode(F.sequence(F.lit(0), F.lit(copies - 1))).alias("_copy")
    return (
        kafka_df.select("*", copy).withColumn("offset", F.col("offset") * F.lit(copies) + F.col("_copy")).drop("_copy")
    )


def as_ingested(valid_df: DataFrame) -> DataFrame:
    """Valid events with what the stream adds before silver: on time, batch 0, ingested at ``INGESTED``."""
    return valid_df.withColumns({"is_late": F.lit(False), "batch_id": F.lit(0), "ingest_time": F.lit(INGESTED)})


def silver_seed(
    spark: SparkSession, scenario_name: str, seed: int, events: int
) -> tuple[dict[EventType, DataFrame], dt.date]:
    """Silver rows of one simulated day per event type (checkpointed), and the day.

    Like the stream, silver keeps the first delivery of each event id (a scenario's redeliveries are dropped).
    """
    valid = filter_valid(
        EventValidator("shop", 65536).validate(to_bronze(kafka_records(spark, scenario_name, seed, events)))
    )
    first_delivery = Window.partitionBy("event_id").orderBy(
        "kafka_timestamp", "kafka_topic", "kafka_partition", "kafka_offset"
    )
    valid = as_ingested(valid.withColumn("_n", F.row_number().over(first_delivery)).filter("_n = 1").drop("_n"))
    return {e: to_silver(valid, e).localCheckpoint() for e in EventType}, load_scenario(scenario_name).dates[0]


def read_everything(df: DataFrame) -> None:
    """Compute every column of every row and discard them (Spark's ``noop`` sink): a full scan or a full
    evaluation that no optimizer can answer from metadata or prune."""
    df.write.format("noop").mode("overwrite").save()
