"""A known simulated day through the real broker, the streaming job, Dagster, and back out with PyIceberg."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import DagsterInstance

from devstack.services import Services
from pipeline.catalog import pyiceberg_catalog
from pipeline.kafka_topics import ensure_topics
from pipeline.orchestration.runs import materialize_gold
from pipeline.streaming.job import start_stream
from pipeline.tables import (
    BRONZE_EVENTS,
    GOLD_DAILY_CATEGORY_SALES,
    GOLD_DAILY_SALES_SUMMARY,
    QUARANTINE_EVENTS,
    SILVER,
)
from simulation import oracle
from simulation.generator import generate
from simulation.scenario import load_scenario
from simulation.sinks import log_items, make_producer, send, write_log
from tests.integration.helpers import catch_up

EVENTS = 3000


def _send_day(settings, log_path: Path, scenario_name: str, seed: int) -> int:
    scenario = load_scenario(scenario_name)
    records, manifest = generate(scenario, seed, EVENTS)
    write_log(records, scenario, log_path, manifest)
    producer = make_producer(settings.kafka)
    send(producer, log_items(log_path), settings.kafka.topic_prefix)
    producer.close()
    return manifest.records


def test_simulated_day_reaches_gold_equal_to_what_the_simulator_emitted(
    lake, services: Services, tmp_path: Path, spark
) -> None:
    settings = services.apply(lake)
    ensure_topics(settings)
    log_path = tmp_path / "day.jsonl"
    records = _send_day(settings, log_path, "normal_day", seed=11)

    catch_up(spark, settings, timeout_s=600)

    materialize_gold(settings, load_scenario("normal_day").dates, DagsterInstance.ephemeral())

    catalog = pyiceberg_catalog(settings)
    gold = {
        row["event_date"]: row
        for row in catalog.load_table(GOLD_DAILY_SALES_SUMMARY.identifier).scan().to_arrow().to_pylist()
    }
    expected = oracle.daily_sales_summary(oracle.read_log(log_path))
    assert set(gold) == set(expected)
    for day, truth in expected.items():
        row = gold[day]
        assert {k: row[k] for k in truth} == truth, f"gold differs from the simulator's truth on {day}"

    bronze_rows = catalog.load_table(BRONZE_EVENTS.identifier).scan().to_arrow().num_rows
    silver_rows = sum(catalog.load_table(spec.identifier).scan().to_arrow().num_rows for spec in SILVER.values())
    quarantined = catalog.load_table(QUARANTINE_EVENTS.identifier).scan().to_arrow().num_rows
    assert bronze_rows == records
    assert silver_rows + quarantined == records


@pytest.mark.parametrize("scenario_name", ["dirty_stream"])
def test_dirty_stream_lands_every_record_once_in_silver_or_quarantine(
    live, tmp_path: Path, spark, scenario_name: str
) -> None:
    log_path = tmp_path / "dirty.jsonl"
    records = _send_day(live, log_path, scenario_name, seed=5)

    stream = start_stream(spark, live, available_now=True)
    stream.await_termination(timeout_s=600)

    truth = oracle.read_log(log_path)
    catalog = pyiceberg_catalog(live)
    silver_ids = []
    for spec in SILVER.values():
        silver_ids += (
            catalog.load_table(spec.identifier).scan(selected_fields=("event_id",)).to_arrow().column(0).to_pylist()
        )
    quarantine = catalog.load_table(QUARANTINE_EVENTS.identifier).scan().to_arrow().to_pylist()
    assert len(silver_ids) == len(set(silver_ids)), "an event id landed twice in silver"
    assert sorted(silver_ids) == sorted(e["event_id"] for e in truth.events)
    assert len(quarantine) == sum(truth.rejected.values()) + truth.duplicates
    assert len(silver_ids) + len(quarantine) == records
    assert all(row["failed_rules"] for row in quarantine), "a quarantined record has no reason"


def test_lake_on_the_object_store_is_shared_by_spark_and_pyiceberg(lake, services: Services, spark) -> None:
    import datetime as dt
    from decimal import Decimal

    from pipeline.iceberg_io import ensure_table, overwrite_days
    from pipeline.maintenance import maintain
    from pipeline.spark_session import build_spark_session

    settings = services.apply(lake, s3_warehouse=True)
    build_spark_session(settings)
    ensure_table(spark, settings.catalog.name, GOLD_DAILY_CATEGORY_SALES)
    row = (dt.date(2026, 11, 2), "books", 3, 4, Decimal("12.34"))
    overwrite_days(
        spark.createDataFrame([row], GOLD_DAILY_CATEGORY_SALES.schema), settings.catalog.name, GOLD_DAILY_CATEGORY_SALES
    )

    table = pyiceberg_catalog(settings).load_table(GOLD_DAILY_CATEGORY_SALES.identifier)
    assert table.location().startswith("s3://")
    assert [tuple(r.values()) for r in table.scan().to_arrow().to_pylist()] == [row]

    # Maintenance works on the object store too (orphan files are listed through the table's FileIO).
    result = maintain(spark, settings.catalog.name, GOLD_DAILY_CATEGORY_SALES)
    assert result.skipped == ""
    assert result.after.data_files == 1
    assert [tuple(r.values()) for r in table.refresh().scan().to_arrow().to_pylist()] == [row]
