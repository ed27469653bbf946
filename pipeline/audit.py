"""Conservation: every bronze record is in exactly one silver table or in quarantine.

The same check as this SQL (documented in docs/streaming.md), written with DataFrames:

    WITH landed AS (
        SELECT kafka_topic, kafka_partition, kafka_offset FROM lake.silver.page_views
        UNION ALL ... each silver event table ...
        UNION ALL SELECT kafka_topic, kafka_partition, kafka_offset FROM lake.quarantine.events
    ), counted AS (
        SELECT kafka_topic, kafka_partition, kafka_offset, count(*) AS copies FROM landed GROUP BY 1, 2, 3
    )
    SELECT count(*)                                   AS bronze_records,
           count_if(c.copies IS NULL)                 AS missing,
           count_if(c.copies > 1)                     AS doubled,
           (SELECT count(*) FROM counted) - count_if(c.copies IS NOT NULL) AS orphans
    FROM lake.bronze.events b LEFT JOIN counted c USING (kafka_topic, kafka_partition, kafka_offset)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.tables import BRONZE_EVENTS, KAFKA_COORDINATES, QUARANTINE_EVENTS, SILVER


@dataclass(frozen=True)
class Conservation:
    bronze_records: int
    missing: int  # in bronze, in neither silver nor quarantine
    doubled: int  # in bronze, in more than one place (or twice in one)
    orphans: int  # in silver or quarantine, not in bronze
    bronze_duplicates: int  # the same Kafka record twice in bronze

    @property
    def ok(self) -> bool:
        return self.missing == self.doubled == self.orphans == self.bronze_duplicates == 0


def landed_records(spark: SparkSession, catalog: str, where: Column | None = None) -> DataFrame:
    """Kafka coordinates of every silver and quarantine row (optionally filtered)."""
    frames = [
        spark.table(spec.qualified(catalog)).select(*KAFKA_COORDINATES, "kafka_timestamp")
        for spec in (*SILVER.values(), QUARANTINE_EVENTS)
    ]
    landed = functools.reduce(DataFrame.unionByName, frames)
    return landed if where is None else landed.filter(where)


def conservation(spark: SparkSession, catalog: str, where: Column | None = None) -> Conservation:
    """Check conservation over all records, or over those matching ``where`` (a condition on the Kafka columns)."""
    bronze = spark.table(BRONZE_EVENTS.qualified(catalog)).select(*KAFKA_COORDINATES, "kafka_timestamp")
    if where is not None:
        bronze = bronze.filter(where)
    bronze_counts = bronze.groupBy(*KAFKA_COORDINATES).agg(F.count("*").alias("in_bronze"))
    landed_counts = landed_records(spark, catalog, where).groupBy(*KAFKA_COORDINATES).agg(F.count("*").alias("copies"))
    row = (
        bronze_counts.join(landed_counts, on=list(KAFKA_COORDINATES), how="full_outer")
        .agg(
            F.sum(F.coalesce("in_bronze", F.lit(0))).alias("bronze_records"),
            F.count_if(F.col("in_bronze").isNotNull() & F.col("copies").isNull()).alias("missing"),
            F.count_if(F.col("in_bronze").isNotNull() & (F.col("copies") > 1)).alias("doubled"),
            F.count_if(F.col("in_bronze").isNull()).alias("orphans"),
            F.count_if(F.col("in_bronze") > 1).alias("bronze_duplicates"),
        )
        .first()
    )
    assert row is not None
    return Conservation(
        *(int(row[k] or 0) for k in ("bronze_records", "missing", "doubled", "orphans", "bronze_duplicates"))
    )
