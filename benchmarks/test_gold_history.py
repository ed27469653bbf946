"""Gold as the lake ages: 60 days of the multi-day scenario at a fixed daily volume, built through Dagster.

One simulated day of the ``multi_day`` scenario is made in Spark and repeated for 60 consecutive days (fresh
event, session and order ids each day; the same users, so lifetime figures accumulate), written to silver as the
stream would. Then:

- a 60-day backfill in one run (``shoplake gold --date A --to B``): every gold table computed over the range in
  one pass, with its asset checks;
- day 1, day 30 and day 60 built alone (each the better of two runs; one run in the quick variant). Day D reads
  day D of silver and the lifetime state of day D-1, so day 60 should cost what day 1 does.

``--full``: 50,000 events a day; the quick variant: 500. Result: ``benchmarks/results/gold_history.json`` with
``day1_s``, ``day30_s``, ``day60_s``, ``backfill_60_days_s``, and ``gold_history.png``.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from dagster import DagsterInstance
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from benchmarks.datasets import silver_seed
from benchmarks.harness import Results, best_of, step_seconds
from benchmarks.plots import bars
from devstack.pytest_plugin import make_settings
from pipeline.catalog import pyiceberg_catalog
from pipeline.contracts.events import EventType
from pipeline.iceberg_io import ensure_table, ensure_tables
from pipeline.orchestration.runs import backfill_gold, materialize_gold
from pipeline.spark_session import build_spark_session
from pipeline.tables import GOLD_CUSTOMER_DAILY, SILVER, STREAMING_TABLES

DAYS = 60
_TIMESTAMPS = ("event_time", "kafka_timestamp", "ingest_time")


def _write_days(
    spark: SparkSession, catalog: str, seeds: dict[EventType, DataFrame], seed_day: dt.date, first: dt.date
) -> None:
    """Each seed row (of ``seed_day``) once a day for ``DAYS`` days from ``first``, with that day's ids and times
    (users stay the same)."""
    lag = (first - seed_day).days
    for event_type, seed in seeds.items():
        spec = SILVER[event_type]
        ensure_table(spark, catalog, spec)
        shift = F.explode(F.sequence(F.lit(0), F.lit(DAYS - 1))).alias("_day")
        suffix = F.concat(F.lit("-d"), F.col("_day").cast("string"))
        changes = {"event_id": F.concat("event_id", suffix), "event_date": F.date_add(F.lit(first), F.col("_day"))}
        for column in ("session_id", "order_id", "cart_id"):
            if column in seed.columns:
                changes[column] = F.concat(column, suffix)
        for column in _TIMESTAMPS:
            changes[column] = F.col(column) + F.make_interval(days=F.col("_day") + F.lit(lag))
        seed.select("*", shift).withColumns(changes).drop("_day").repartition(4, "event_date").writeTo(
            spec.qualified(catalog)
        ).append()


def _one_day(spark: SparkSession, seeds: dict[EventType, DataFrame], day: dt.date) -> dict[EventType, DataFrame]:
    """The seed's rows of ``day`` only (the other days of the scenario hold only its late events), checkpointed."""
    return {e: df.filter(F.col("event_date") == F.lit(day)).localCheckpoint() for e, df in seeds.items()}


def test_gold_cost_stays_flat_as_history_grows(
    full: bool, results: Results, spark: SparkSession, tmp_path, jars_home
) -> None:
    events_per_day, runs = (50_000, 2) if full else (500, 1)
    # multi_day spreads its events over 7 days: ask for 7 days' worth and keep the first.
    seeds, seed_day = silver_seed(spark, "multi_day", 61, events_per_day * 7)
    seeds = _one_day(spark, seeds, seed_day)
    first = seed_day - dt.timedelta(days=DAYS)  # the 60 days end before the scenario's own (daily partitions end today)
    settings = make_settings(tmp_path, jars_home, partitions_start=first.isoformat())
    build_spark_session(settings)
    catalog = settings.catalog.name
    ensure_tables(spark, catalog, STREAMING_TABLES)  # data quality also reads bronze and quarantine
    _write_days(spark, catalog, seeds, seed_day, first)
    events = sum(frame.count() for frame in seeds.values())
    last = first + dt.timedelta(days=DAYS - 1)
    instance = DagsterInstance.ephemeral()

    started = time.monotonic()
    backfill_gold(settings, first, last, instance)
    backfill_s = time.monotonic() - started
    customers = pyiceberg_catalog(settings).load_table(GOLD_CUSTOMER_DAILY.identifier).scan().to_arrow()
    assert {d.as_py() for d in customers.column("event_date")} == {first + dt.timedelta(days=i) for i in range(DAYS)}, (
        "the backfill missed days"
    )

    profiles: dict[str, dict[str, float]] = {}

    def build(n: int) -> float:
        day = first + dt.timedelta(days=n - 1)
        seconds, (result,) = best_of(lambda: materialize_gold(settings, [day], instance), runs)
        profiles[f"day{n}"] = step_seconds(instance, result.run_id)  # of the last run
        return round(seconds, 2)

    day1_s, day30_s, day60_s = (build(n) for n in (1, 30, DAYS))
    run: dict[str, Any] = {
        "days": DAYS,
        "events_per_day": events,
        "day1_s": day1_s,
        "day30_s": day30_s,
        "day60_s": day60_s,
        "day60_over_day1": round(day60_s / day1_s, 2),
        "backfill_60_days_s": round(backfill_s, 1),
        "backfill_per_day_s": round(backfill_s / DAYS, 2),
        "steps_s": profiles,
    }
    path = results.add("gold_history", run)
    bars(
        ["day 1", "day 30", "day 60", f"{DAYS}-day backfill"],
        {"one Dagster run (s)": [day1_s, day30_s, day60_s, run["backfill_60_days_s"]]},
        path.with_name("gold_history.png"),
        f"gold through Dagster, {events:,} events a day",
        "seconds",
    )
