"""Gold batch: one day's gold from silver for 1M and 10M events with Spark, and DuckDB over the same files.

Silver is made inside Spark (a simulated day, multiplied with fresh ids), written as the stream would, so both
engines read the very same Parquet data files. DuckDB computes the daily sales summary with SQL over the files
PyIceberg lists for the day; Spark computes it with ``pipeline.batch.gold`` (each the better of two runs, so
neither pays for its first-query warm-up). Then the whole day's gold (every gold table, written to Iceberg,
with its asset checks) is built through Dagster, as ``shoplake gold`` does, and DuckDB computes the same seven
tables over the same files (``benchmarks/duckdb_gold.py``, best of two; its results stay in memory, where Spark's
are written to Iceberg and checked): each table must hold as many rows in both.

Result: ``benchmarks/results/gold.json``: events, spark_s, duckdb_s, ratio, dagster_day_s, duckdb_gold_s,
gold_ratio (the whole day through Dagster over DuckDB's seven tables), and the day's profile: seconds per Dagster
step (``dagster_steps_s``) and what the run spent outside them.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from typing import Any

import duckdb
from dagster import DagsterInstance
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from benchmarks.datasets import silver_seed
from benchmarks.duckdb_gold import duckdb_gold
from benchmarks.harness import Results, best_of_two, step_seconds
from benchmarks.plots import bars
from devstack.pytest_plugin import make_settings
from pipeline.batch import gold
from pipeline.catalog import equals, pyiceberg_catalog
from pipeline.contracts.events import EventType
from pipeline.iceberg_io import ensure_table, ensure_tables, read_day
from pipeline.orchestration.runs import materialize_gold
from pipeline.spark_session import build_spark_session
from pipeline.tables import GOLD_CUSTOMER_LIFETIME, GOLD_TABLES, SILVER, STREAMING_TABLES

GOLD_SEVEN = (*GOLD_TABLES, GOLD_CUSTOMER_LIFETIME)  # what a gold run builds, and DuckDB computes

DUCKDB_SUMMARY = """
WITH p AS (SELECT * FROM read_parquet($purchases)), v AS (SELECT * FROM read_parquet($page_views))
SELECT (SELECT count(*) FROM p) AS orders,
       (SELECT coalesce(sum(total_amount), 0) FROM p) AS revenue,
       (SELECT count(DISTINCT user_id) FROM p) AS unique_customers,
       (SELECT count(*) FROM v) AS page_views,
       (SELECT count(DISTINCT user_id) FROM v) AS visitors,
       (SELECT count(*) FROM (SELECT session_id FROM p UNION SELECT session_id FROM v
                              UNION SELECT session_id FROM read_parquet($carts)
                              UNION SELECT session_id FROM read_parquet($sessions))) AS sessions
"""


def _write_silver(spark: SparkSession, catalog: str, seeds: dict[EventType, DataFrame], copies: int) -> None:
    """Each seed row `copies` times, with distinct ids (sessions and users stay grouped within a copy)."""
    for event_type, seed in seeds.items():
        spec = SILVER[event_type]
        ensure_table(spark, catalog, spec)
        copy = F.explode(F.sequence(F.lit(0), F.lit(copies - 1))).alias("_copy")
        suffix = F.concat(F.lit("-"), F.col("_copy").cast("string"))
        changes = {"event_id": F.concat("event_id", suffix)}
        for column in ("session_id", "user_id", "order_id", "cart_id"):
            if column in seed.columns:
                changes[column] = F.concat(column, suffix)
        seed.select("*", copy).withColumns(changes).drop("_copy").repartition(4).writeTo(
            spec.qualified(catalog)
        ).append()


def _files(settings, event_type: EventType, day: dt.date) -> list[str]:
    table = pyiceberg_catalog(settings).load_table(SILVER[event_type].identifier)
    return [
        task.file.file_path.removeprefix("file:")
        for task in table.scan(row_filter=equals("event_date", day)).plan_files()
    ]


def _duckdb_summary(con: duckdb.DuckDBPyConnection, parameters: dict[str, list[str]]) -> tuple | None:
    return con.execute(DUCKDB_SUMMARY, parameters).fetchone()


def test_gold_day_spark_vs_duckdb(full: bool, results: Results, spark: SparkSession, tmp_path, jars_home) -> None:
    sizes = [1_000_000, 10_000_000] if full else [20_000]
    base = 50_000 if full else 5_000
    seeds, day = silver_seed(spark, "normal_day", 77, base)
    runs: list[dict[str, Any]] = []
    for events in sizes:
        settings = make_settings(tmp_path / str(events), jars_home)
        build_spark_session(settings)
        catalog = settings.catalog.name
        _write_silver(spark, catalog, seeds, max(1, events // base))
        frames = {e: read_day(spark, catalog, SILVER[e], day) for e in EventType}

        summary_df = gold.daily_sales_summary(
            frames[EventType.PURCHASE],
            frames[EventType.PAGE_VIEW],
            frames[EventType.ADD_TO_CART],
            frames[EventType.USER_SESSION],
            day,
        )
        spark_s, summary = best_of_two(summary_df.first)
        assert summary is not None, "the Spark summary is empty"

        files = {e: _files(settings, e, day) for e in EventType}
        con = duckdb.connect()
        parameters = {
            "purchases": files[EventType.PURCHASE],
            "page_views": files[EventType.PAGE_VIEW],
            "carts": files[EventType.ADD_TO_CART],
            "sessions": files[EventType.USER_SESSION],
        }
        duckdb_s, row = best_of_two(functools.partial(_duckdb_summary, con, parameters))
        con.close()
        assert row is not None
        assert (row[0], row[1], row[2], row[3], row[4], row[5]) == (
            summary.orders,
            summary.revenue,
            summary.unique_customers,
            summary.page_views,
            summary.visitors,
            summary.sessions,
        ), "the two engines disagree"
        total = sum(frame.count() for frame in frames.values())

        ensure_tables(spark, catalog, STREAMING_TABLES)  # data quality also reads bronze and quarantine
        instance = DagsterInstance.ephemeral()
        started = time.monotonic()
        (result,) = materialize_gold(settings, [day], instance)
        dagster_day_s = time.monotonic() - started
        steps = step_seconds(instance, result.run_id)

        con = duckdb.connect()
        by_table = {SILVER[e].name: files[e] for e in EventType}
        duckdb_gold_s, tables = best_of_two(functools.partial(duckdb_gold, con, by_table, day))
        con.close()
        spark_rows = {spec.name: read_day(spark, catalog, spec, day).count() for spec in GOLD_SEVEN}
        assert {name: len(table.rows) for name, table in tables.items()} == spark_rows, "the engines disagree"
        runs.append(
            {
                "events": total,
                "spark_s": round(spark_s, 3),
                "duckdb_s": round(duckdb_s, 3),
                "ratio": round(spark_s / duckdb_s, 2),
                "dagster_day_s": round(dagster_day_s, 1),
                "dagster_steps_s": steps,
                "dagster_overhead_s": round(dagster_day_s - sum(steps.values()), 2),
                "duckdb_gold_s": round(duckdb_gold_s, 3),
                "gold_ratio": round(dagster_day_s / duckdb_gold_s, 1),
                "gold_rows": spark_rows,
            }
        )
        path = results.add("gold", runs[-1])
    labels = [f"{r['events']:,}" for r in runs]
    plots = {
        "gold.png": ("one day's sales summary", {"Spark": "spark_s", "DuckDB": "duckdb_s"}),
        "gold_day.png": (
            "one day's seven gold tables (Spark: written to Iceberg, with its checks)",
            {"Spark through Dagster": "dagster_day_s", "DuckDB": "duckdb_gold_s"},
        ),
    }
    for name, (title, columns) in plots.items():
        series = {engine: [r[column] for r in runs] for engine, column in columns.items()}
        bars(labels, series, path.with_name(name), title, "seconds")
