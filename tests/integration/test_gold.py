"""Gold through Dagster equals the oracle exactly; reruns, backfills and restatements behave; a silver day that
breaks its contract blocks gold."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from dagster import DagsterInstance
from pyspark.sql import functions as F

from benchmarks.datasets import silver_seed
from pipeline.batch.outputs import write_gold_day
from pipeline.config import Settings
from pipeline.contracts.events import EventType
from pipeline.iceberg_io import ensure_tables
from pipeline.orchestration.definitions import GOLD_JOB, build_definitions
from pipeline.orchestration.runs import backfill_gold, materialize_gold
from pipeline.tables import (
    GOLD_CUSTOMER_LIFETIME,
    GOLD_DAILY_CATEGORY_SALES,
    GOLD_DAILY_SALES_SUMMARY,
    GOLD_DATA_QUALITY,
    GOLD_TABLES,
    PRODUCTS,
    RESTATEMENTS,
    SILVER,
    STREAMING_TABLES,
)
from shoplake.cli import main
from simulation import oracle
from simulation.scenario import load_scenario
from tests.integration.helpers import (
    assert_gold_matches,
    assert_products_match,
    catch_up,
    gold_rows,
    send_log,
    split_log,
    truth_of,
    write_day,
)


def _content_hash(settings: Settings, day) -> str:
    digest = hashlib.sha256()
    for spec in (*GOLD_TABLES, GOLD_CUSTOMER_LIFETIME):
        rows = sorted(repr(sorted(r.items())) for r in gold_rows(settings, spec.identifier) if r["event_date"] == day)
        digest.update("\n".join(rows).encode())
    return digest.hexdigest()


def test_multi_day_gold_equals_the_oracle_and_a_backfill_reproduces_it(
    spark, live, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scenario = load_scenario("multi_day")
    log = write_day(tmp_path / "week.jsonl", "multi_day", seed=17, events=12000)
    send_log(live, log)
    catch_up(spark, live, timeout_s=900)
    instance = DagsterInstance.ephemeral()
    backfill_gold(live, scenario.dates[0], scenario.dates[-1], instance)  # the week in one run
    truth = truth_of([log])
    assert_gold_matches(live, truth, scenario.dates)
    assert_products_match(live, truth)

    # The last days again one at a time, each from the lifetime state of the day before (the first of them from
    # the state the range run wrote): the same gold, nothing restated.
    in_one_run = {d: _content_hash(live, d) for d in scenario.dates}
    again = scenario.dates[-3:]
    with caplog.at_level(logging.INFO, logger="pipeline.batch.inputs"):
        results = materialize_gold(live, again, instance)
    assert {d: _content_hash(live, d) for d in scenario.dates} == in_one_run
    reads = Counter(r.getMessage() for r in caplog.records if r.name == "pipeline.batch.inputs")
    for d in again:  # every asset and check of a run computed from one read of each silver table
        once = {spec.identifier: reads[f"{spec.identifier} read for the run of {d} .. {d}"] for spec in SILVER.values()}
        assert set(once.values()) == {1}, (d, once)
    _assert_materializations_show_the_days(live, results, again, oracle.daily_sales_summary(truth))
    assert not gold_rows(live, RESTATEMENTS.identifier)

    day = scenario.dates[3]
    before = _content_hash(live, day)
    other = _content_hash(live, scenario.dates[4])
    materialize_gold(live, [day], instance)  # a backfill of one day
    assert _content_hash(live, day) == before
    assert _content_hash(live, scenario.dates[4]) == other, "rebuilding one day touched another"
    assert not [r for r in gold_rows(live, RESTATEMENTS.identifier) if r["event_date"] == day]


def _assert_materializations_show_the_days(settings: Settings, results: list, days: list, summary: dict) -> None:
    """Each gold materialization of a one-day run carries the rows it wrote; the sales summary's also the oracle's
    orders and revenue of its day and a preview of the written row. The run also rebuilds the product dimension
    (unpartitioned: every version of every product)."""
    tables = (*GOLD_TABLES, GOLD_CUSTOMER_LIFETIME)
    for day, result in zip(days, results, strict=True):
        written = {
            spec.identifier: sum(1 for r in gold_rows(settings, spec.identifier) if r["event_date"] == day)
            for spec in tables
        }
        for event in result.get_asset_materialization_events():
            materialization = event.materialization
            identifier = ".".join(materialization.asset_key.path)
            if identifier == PRODUCTS.identifier:
                assert materialization.partition is None
                assert materialization.metadata["versions"].value == len(gold_rows(settings, identifier))
                continue
            assert materialization.partition == day.isoformat()
            assert materialization.metadata["rows"].value == written[identifier], (day, identifier)
            if identifier == GOLD_DAILY_SALES_SUMMARY.identifier:
                assert materialization.metadata["orders"].value == summary[day]["orders"]
                assert materialization.metadata["revenue"].value == float(summary[day]["revenue"])
                preview = materialization.metadata["preview"].value
                assert f"| orders | {summary[day]['orders']} |" in preview
                assert f"| revenue | {summary[day]['revenue']} |" in preview
            else:
                assert "revenue" not in materialization.metadata
        assert len(result.get_asset_materialization_events()) == len(tables) + 1


def test_late_events_restate_built_days_and_the_old_version_stays_readable(
    spark, live, tmp_path: Path, monkeypatch
) -> None:
    scenario = load_scenario("late_data_storm")
    log = write_day(tmp_path / "storm.jsonl", "late_data_storm", seed=5, events=6000)
    first, rest = split_log(log)

    send_log(live, first)
    catch_up(spark, live, timeout_s=900)
    instance = DagsterInstance.ephemeral()
    materialize_gold(live, scenario.dates, instance)
    early = {r["event_date"]: r for r in gold_rows(live, GOLD_DAILY_SALES_SUMMARY.identifier)}
    assert_gold_matches(live, truth_of([first]), scenario.dates)

    send_log(live, rest)  # brings late events for the first day
    catch_up(spark, live, timeout_s=900)
    materialize_gold(live, scenario.dates, instance)
    assert_gold_matches(live, truth_of([log]), scenario.dates)
    assert_products_match(live, truth_of([log]))

    day = scenario.dates[0]
    restated = [r for r in gold_rows(live, RESTATEMENTS.identifier) if r["event_date"] == day]
    orders = [r for r in restated if r["table_name"] == GOLD_DAILY_SALES_SUMMARY.identifier and r["metric"] == "orders"]
    assert orders, "the late purchases of day 1 were not recorded as a restatement"
    assert orders[0]["old_value"] == str(early[day]["orders"])
    assert orders[0]["new_value"] == str(oracle.daily_sales_summary(truth_of([log]))[day]["orders"])
    old = (
        spark.read.option("versionAsOf", orders[0]["old_snapshot_id"])
        .table(GOLD_DAILY_SALES_SUMMARY.qualified(live.catalog.name))
        .filter(f"event_date = '{day.isoformat()}'")
        .first()
    )
    assert old["orders"] == early[day]["orders"]

    monkeypatch.setenv("SHOPLAKE_HOME", str(live.home))
    monkeypatch.setenv("SHOPLAKE_CATALOG__NAME", live.catalog.name)
    runner = CliRunner()
    history = runner.invoke(main, ["history", "gold.daily_sales_summary"])
    assert history.exit_code == 0, history.output
    assert str(orders[0]["old_snapshot_id"]) in history.output
    shown = runner.invoke(
        main,
        ["show", "gold.daily_sales_summary", "--as-of", str(orders[0]["old_snapshot_id"]), "--date", day.isoformat()],
    )
    assert shown.exit_code == 0, shown.output
    assert str(early[day]["revenue"]) in shown.output
    assert runner.invoke(main, ["show", "gold.nope"]).exit_code == 2
    assert runner.invoke(main, ["show", "gold.daily_sales_summary", "--as-of", "yesterday"]).exit_code == 2


def test_rebuilding_a_day_that_was_built_empty_records_its_new_rows(spark, lake: Settings) -> None:
    catalog, spec = lake.catalog.name, GOLD_DAILY_CATEGORY_SALES
    day, other_day = dt.date(2026, 1, 5), dt.date(2026, 1, 6)
    first = write_gold_day(spark.createDataFrame([], spec.schema), catalog, spec, day, built_before=False)
    assert first.restated_metrics == 0
    books = spark.createDataFrame([(other_day, "books", 1, 2, Decimal("3.00"))], spec.schema)
    assert write_gold_day(books, catalog, spec, other_day, built_before=False).restated_metrics == 0, "a first build"

    rebuilt = write_gold_day(books.withColumn("event_date", F.lit(day)), catalog, spec, day, built_before=True)

    restated = spark.table(RESTATEMENTS.qualified(catalog)).filter(F.col("event_date") == F.lit(day)).collect()
    assert rebuilt.restated_metrics == 3
    assert {(r.row_key, r.metric, r.old_value, r.new_value) for r in restated} == {
        ("category=books", "orders", None, "1"),
        ("category=books", "units", None, "2"),
        ("category=books", "gross_revenue", None, "3.00"),
    }
    assert {r.new_snapshot_id for r in restated} == {rebuilt.snapshot_id}


def test_an_event_id_twice_in_silver_fails_the_blocking_contract_check_and_gold_is_not_built(
    spark, lake: Settings
) -> None:
    catalog = lake.catalog.name
    seeds, day = silver_seed(spark, "normal_day", 5, 400)
    ensure_tables(spark, catalog, STREAMING_TABLES)
    for event_type, seed in seeds.items():
        seed.writeTo(SILVER[event_type].qualified(catalog)).append()
    purchases = SILVER[EventType.PURCHASE].qualified(catalog)
    spark.table(purchases).limit(1).writeTo(purchases).append()  # one purchase's id a second time
    instance = DagsterInstance.ephemeral()

    result = (
        build_definitions(lake)
        .resolve_job_def(GOLD_JOB)
        .execute_in_process(partition_key=day.isoformat(), instance=instance, raise_on_error=False)
    )

    (contract,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "silver_contract"]
    assert not contract.passed
    assert contract.metadata["purchases_rows"].value == seeds[EventType.PURCHASE].count() + 1
    # The hashed count found fewer ids than rows; the exact recount confirmed the duplicate.
    assert contract.metadata["ids_recounted_exactly"].value == "purchases"
    built = {".".join(e.materialization.asset_key.path) for e in result.get_asset_materialization_events()}
    assert built == {GOLD_DATA_QUALITY.identifier}, "a gold table was built from a silver day that broke its contract"
