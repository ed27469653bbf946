"""DuckDB's seven gold tables (``benchmarks/duckdb_gold.py``) equal Spark's ``pipeline.batch.gold``, row for row.

Both engines read the very same Parquet files: one simulated day of silver, as the stream makes it, written by
Spark. The day is built from scratch (no earlier lifetime state, empty bronze and quarantine), as the gold
benchmark builds it; the silver rows carry the lineage of several micro-batches, one of which was never recorded
in ``ops.stream_batches``, so that ``late_rows`` and the latency percentiles of ``data_quality`` are compared too.
"""

from __future__ import annotations

import datetime as dt
import functools
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from benchmarks.duckdb_gold import Commit, duckdb_gold
from pipeline.batch import gold
from pipeline.contracts.events import EventType, topic_name
from pipeline.observability import with_latency
from pipeline.products import product_versions
from pipeline.tables import (
    GOLD_CUSTOMER_DAILY,
    GOLD_CUSTOMER_LIFETIME,
    GOLD_DAILY_CATEGORY_SALES,
    GOLD_DAILY_SALES_SUMMARY,
    GOLD_DATA_QUALITY,
    GOLD_PRODUCT_DAILY,
    GOLD_PRODUCT_PAIRS,
    SILVER,
    TableSpec,
)
from simulation.generator import generate
from simulation.scenario import load_scenario
from simulation.sinks import simulated_items
from tests.unit.test_gold import silver_frames

EVENTS = 3000
BATCHES = 5  # micro-batches the day's rows are spread over
INGESTED = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)  # ingest time of the first micro-batch
GOLD_SPECS = (
    GOLD_DAILY_SALES_SUMMARY,
    GOLD_DAILY_CATEGORY_SALES,
    GOLD_CUSTOMER_LIFETIME,
    GOLD_CUSTOMER_DAILY,
    GOLD_PRODUCT_DAILY,
    GOLD_PRODUCT_PAIRS,
    GOLD_DATA_QUALITY,
)


def with_lineage(frame: DataFrame) -> DataFrame:
    """Silver rows with the lineage of a stream of :data:`BATCHES` micro-batches, a minute apart: Kafka time is
    event time, the batch is the Kafka offset modulo :data:`BATCHES`, every seventh row is late."""
    batch = F.col("kafka_offset") % BATCHES
    return frame.withColumns(
        {
            "kafka_timestamp": F.col("event_time"),
            "batch_id": batch.cast("long"),
            "ingest_time": F.timestamp_seconds(F.lit(int(INGESTED.timestamp())) + batch * 60),
            "is_late": F.col("kafka_offset") % 7 == 0,
        }
    )


def batch_commits() -> list[Commit]:
    """The micro-batches' commits: every batch but the last (the stream stopped before recording it), each a
    different number of milliseconds after its ingest time."""
    commits = []
    for batch in range(BATCHES - 1):
        ingest_time = INGESTED + dt.timedelta(minutes=batch)
        delay = dt.timedelta(seconds=1 + batch, milliseconds=250 * batch + 7)
        commits.append(Commit(batch, ingest_time, ingest_time + delay))
    return commits


def stream_batches_frame(spark: SparkSession, commits: list[Commit]) -> DataFrame:
    """The ``ops.stream_batches`` columns Spark reads the same commits from."""
    return spark.createDataFrame(
        [(c.batch_id, c.ingest_time, c.committed_at) for c in commits],
        "batch_id long, started_at timestamp, committed_at timestamp",
    )


def spark_gold(
    spark: SparkSession, silver: dict[str, DataFrame], commits: list[Commit], day: dt.date
) -> dict[str, DataFrame]:
    """Spark's gold of ``day`` by table name, from silver frames by table name, as a run builds it from scratch."""
    p, v, c, s, u = (silver[t] for t in ("purchases", "page_views", "cart_events", "user_sessions", "product_updates"))
    activity = functools.reduce(DataFrame.unionByName, [f.select("user_id", "event_date") for f in (v, c, p, s)])
    lifetime = gold.customer_lifetime(spark.createDataFrame([], GOLD_CUSTOMER_LIFETIME.schema), p, activity, day)
    latencies = functools.reduce(
        DataFrame.unionByName,
        [
            with_latency(
                frame.select("event_date", "batch_id", "ingest_time", "kafka_timestamp", "is_late"),
                stream_batches_frame(spark, commits),
            ).select(F.lit(table).alias("table_name"), "event_date", "is_late", "latency_s")
            for table, frame in silver.items()
        ],
    )
    coordinates = "kafka_topic string, kafka_partition int, kafka_offset long"
    no_quarantine = spark.createDataFrame(
        [], "kafka_topic string, kafka_timestamp timestamp, event_date date, failed_rules array<string>"
    )
    no_bronze = spark.createDataFrame([], f"{coordinates}, kafka_timestamp timestamp, ingest_time timestamp")
    table_of_topic = {topic_name("shop", e): SILVER[e].name for e in EventType}
    return {
        GOLD_DAILY_SALES_SUMMARY.name: gold.daily_sales_summary(p, v, c, s, day),
        GOLD_DAILY_CATEGORY_SALES.name: gold.daily_category_sales(p, day),
        GOLD_CUSTOMER_LIFETIME.name: lifetime,
        GOLD_CUSTOMER_DAILY.name: gold.customer_daily(lifetime, p, day),
        GOLD_PRODUCT_DAILY.name: gold.product_daily(v, c, p, u, product_versions(u), day),
        GOLD_PRODUCT_PAIRS.name: gold.product_pairs(p, day),
        GOLD_DATA_QUALITY.name: gold.data_quality(
            latencies, no_quarantine, no_bronze, spark.createDataFrame([], coordinates), table_of_topic, day
        ),
    }


def exact(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row with its decimals as text, so that the scale counts too (``Decimal("1.0") == Decimal("1.00")``)."""
    return tuple(str(value) if isinstance(value, Decimal) else value for value in row)


def by_key(spec: TableSpec, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """``rows`` (in the order of the spec's columns) sorted by the table's key columns."""
    names = spec.schema.fieldNames()
    keys = [names.index(k) for k in spec.key_columns]
    return sorted((exact(r) for r in rows), key=lambda r: [str(r[i]) for i in keys])


@pytest.mark.parametrize(("scenario_name", "seed"), [("normal_day", 7), ("flash_sale", 11)])
def test_duckdb_gold_equals_spark_gold_row_for_row(
    spark: SparkSession, tmp_path: Path, scenario_name: str, seed: int
) -> None:
    scenario = load_scenario(scenario_name)
    records, _ = generate(scenario, seed, EVENTS)
    day = scenario.dates[0]
    frames = silver_frames(spark, list(simulated_items(records, scenario, live=False)))
    files: dict[str, list[str]] = {}
    for event_type, frame in frames.items():
        table = SILVER[event_type].name
        with_lineage(frame.filter(F.col("event_date") == F.lit(day))).write.parquet(str(tmp_path / table))
        files[table] = sorted(str(f) for f in (tmp_path / table).glob("*.parquet"))
    commits = batch_commits()
    silver = {table: spark.read.parquet(*paths) for table, paths in files.items()}

    expected = {name: df.collect() for name, df in spark_gold(spark, silver, commits, day).items()}
    with duckdb.connect() as con:
        got = duckdb_gold(con, files, day, commits)

    assert all(expected.values()), "every Spark gold table has rows"
    data_quality = [r.asDict() for r in expected[GOLD_DATA_QUALITY.name]]
    assert all(r["p50_latency_s"] is not None for r in data_quality), "latencies are known"
    assert any(r["late_rows"] for r in data_quality), "some rows are late"
    assert set(got) == {spec.name for spec in GOLD_SPECS}
    for spec in GOLD_SPECS:
        table = got[spec.name]
        assert table.columns == tuple(spec.schema.fieldNames()), spec.name
        assert by_key(spec, table.rows) == by_key(spec, [tuple(r) for r in expected[spec.name]]), spec.name
