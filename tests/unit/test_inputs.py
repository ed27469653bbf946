"""What a gold run computes from: each silver table read once for the run, and the lifetime state it starts from
(the latest day built before the range, as the table holds it)."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipeline.batch.inputs import GoldRun, latest_state_day
from pipeline.contracts.events import EventType
from pipeline.iceberg_io import append_rows, ensure_tables, overwrite_day_range
from pipeline.spark_session import batch_shuffle_conf
from pipeline.tables import BRONZE_EVENTS, GOLD_CUSTOMER_LIFETIME, QUARANTINE_EVENTS, SILVER

D1, D2, D3, D4 = (dt.date(2026, 11, 1) + dt.timedelta(days=i) for i in range(4))


def _state(spark, *days: dt.date):
    return spark.createDataFrame(
        [(day, f"u{i}", day, day, 0, None, None, None) for i, day in enumerate(days)], GOLD_CUSTOMER_LIFETIME.schema
    )


def test_the_latest_state_day_is_the_last_day_built_before_the_range_and_skips_days_never_built(spark, lake) -> None:
    catalog = lake.catalog.name
    assert latest_state_day(spark, catalog, D3) is None, "no table yet"
    ensure_tables(spark, catalog, [GOLD_CUSTOMER_LIFETIME])
    assert latest_state_day(spark, catalog, D3) is None, "a table without a snapshot"

    overwrite_day_range(_state(spark, D1, D3), catalog, GOLD_CUSTOMER_LIFETIME, D1, D3, head=None)
    assert latest_state_day(spark, catalog, D1) is None
    assert latest_state_day(spark, catalog, D2) == D1
    assert latest_state_day(spark, catalog, D3) == D1, "day 2 was never built"
    assert latest_state_day(spark, catalog, D4) == D3

    # Day 3 rebuilt without users: it holds no state any more, so a build of day 4 starts from day 1.
    overwrite_day_range(_state(spark), catalog, GOLD_CUSTOMER_LIFETIME, D3, D3, head=None)
    assert latest_state_day(spark, catalog, D4) == D1


PURCHASES = SILVER[EventType.PURCHASE]
SIZED = tuple(batch_shuffle_conf(0, 1))  # the shuffle settings a run sizes from its input


def _purchases(spark, rows: list[tuple[str, dt.date, dt.date, int]]) -> DataFrame:
    """Silver purchases (event id, event day, day it reached Kafka, Kafka offset); other columns null."""
    given = spark.createDataFrame(
        [(event_id, day, dt.datetime.combine(arrived, dt.time(12)), offset) for event_id, day, arrived, offset in rows],
        "event_id string, event_date date, kafka_timestamp timestamp, kafka_offset long",
    )
    columns = [
        (F.col(f.name) if f.name in given.columns else F.lit(None)).cast(f.dataType).alias(f.name)
        for f in PURCHASES.schema.fields
    ]
    return given.select(*columns)


def _ids(frame: DataFrame) -> set[str]:
    return {row["event_id"] for row in frame.select("event_id").collect()}


def test_every_step_of_a_gold_run_sees_one_snapshot_of_silver_and_its_sized_shuffles(spark, lake) -> None:
    catalog = lake.catalog.name
    ensure_tables(spark, catalog, [*SILVER.values(), BRONZE_EVENTS, QUARANTINE_EVENTS])
    append_rows(
        _purchases(spark, [("on_time", D2, D2, 0), ("late", D1, D2, 1), ("next_day", D3, D3, 2)]), catalog, PURCHASES
    )

    session_conf = {key: spark.conf.get(key, None) for key in SIZED}
    run = GoldRun(spark, catalog, "shop", D2, D2)
    cores = spark.sparkContext.defaultParallelism
    assert {key: spark.conf.get(key) for key in SIZED} == batch_shuffle_conf(run.input_bytes, cores), "sized"
    assert _ids(run.silver(EventType.PURCHASE)) == {"on_time"}
    append_rows(_purchases(spark, [("committed_meanwhile", D2, D2, 3)]), catalog, PURCHASES)  # the stream goes on
    assert _ids(run.silver(EventType.PURCHASE)) == {"on_time"}, "a later step sees the run's one read"
    # The late purchase is dated the day before but reached Kafka on the run's day: data quality accounts for it.
    landed = run.data_quality().landed_df.filter(F.col("kafka_offset").isNotNull())
    assert {row["kafka_offset"] for row in landed.collect()} == {0, 1}

    run.release()
    assert {key: spark.conf.get(key, None) for key in SIZED} == session_conf, "and the session's settings are back"
    assert _ids(GoldRun(spark, catalog, "shop", D2, D2).silver(EventType.PURCHASE)) == {
        "on_time",
        "committed_meanwhile",
    }
