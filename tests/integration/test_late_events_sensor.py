"""The late-events sensor on a real lake: a tick asks for the built days that late events touched and every built
day after them (their lifetime figures change), in one run.

The stream writes ``ops.stream_batches`` (the days each micro-batch brought late events to); the sensor reads it
with PyIceberg past its cursor. What it should ask for is derived independently, from the silver rows themselves
(``is_late``, ``batch_id``, ``event_date``). Ticks run through Dagster's test utilities on an instance that holds
real gold runs.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import dagster as dg
from pyspark.sql import SparkSession

from pipeline.catalog import pyiceberg_catalog
from pipeline.config import Settings
from pipeline.orchestration.definitions import GOLD_JOB, build_definitions
from pipeline.orchestration.resources import partition_range_tags
from pipeline.orchestration.runs import backfill_gold, materialize_gold
from pipeline.tables import GOLD_CUSTOMER_DAILY, GOLD_PRODUCT_DAILY, RESTATEMENTS, SILVER
from simulation.logfile import to_log_line
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


def _late_silver_rows(settings: Settings) -> list[dict]:
    """``event_date`` and ``batch_id`` of every late event in silver."""
    catalog = pyiceberg_catalog(settings)
    rows = []
    for spec in SILVER.values():
        scan = catalog.load_table(spec.identifier).scan(selected_fields=("event_date", "is_late", "batch_id"))
        rows += [r for r in scan.to_arrow().to_pylist() if r["is_late"]]
    return rows


def _max_batch_id(settings: Settings) -> int:
    catalog = pyiceberg_catalog(settings)
    ids = [
        r["batch_id"]
        for spec in SILVER.values()
        for r in catalog.load_table(spec.identifier).scan(selected_fields=("batch_id",)).to_arrow().to_pylist()
    ]
    return max(ids)


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None) -> tuple[list[str], str | None]:
    """Evaluate one tick of ``late_events_sensor`` with the definitions' own ``lake`` resource.

    Returns the days its run requests cover (one partition, or a range run at once), sorted, and the new cursor.
    """
    sensor = defs.resolve_sensor_def("late_events_sensor")
    lake = defs.resources["lake"]  # the test's catalog: build_definitions(settings) made it
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources={"lake": lake})
    data = sensor.evaluate_tick(context)
    requests = data.run_requests or []
    assert len(requests) <= 1, "late events ask for one run"
    days: list[str] = []
    for request in requests:
        if request.partition_key is not None:
            days.append(request.partition_key)
        else:
            first = dt.date.fromisoformat(request.tags["dagster/asset_partition_range_start"])
            last = dt.date.fromisoformat(request.tags["dagster/asset_partition_range_end"])
            days += [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    return sorted(days), data.cursor


def _to_rebuild(late: list[str], built: set[str]) -> list[str]:
    """The built days on or after the earliest late day: their lifetime figures changed too."""
    return sorted(day for day in built if late and day >= min(late))


def test_a_tick_requests_the_built_days_late_events_touched_and_the_next_tick_nothing(
    spark: SparkSession, live: Settings, tmp_path: Path
) -> None:
    scenario = load_scenario("late_data_storm")
    log = write_day(tmp_path / "storm.jsonl", "late_data_storm", seed=5, events=4000)
    first, rest = split_log(log)

    send_log(live, first)
    catch_up(spark, live, timeout_s=600)
    instance = dg.DagsterInstance.ephemeral()
    materialize_gold(live, scenario.dates, instance)  # both days built: every late day is one to rebuild
    built = {day.isoformat() for day in scenario.dates}
    defs = build_definitions(live)

    def late_days(after_batch: int = -1) -> list[str]:
        days = {r["event_date"] for r in _late_silver_rows(live) if r["batch_id"] > after_batch}
        return sorted(day.isoformat() for day in days if isinstance(day, dt.date))

    # The first tick (no cursor) covers every batch so far.
    requested, cursor = _tick(defs, instance, None)
    assert requested == _to_rebuild(late_days(), built)
    assert cursor is not None

    # Late events arrive for days already built; the next tick asks for those days and the built days after them.
    last_batch = _max_batch_id(live)
    send_log(live, rest)
    catch_up(spark, live, timeout_s=600)
    expected = late_days(after_batch=last_batch)
    assert expected, "the second part of the storm brought no late events: the scenario no longer tests this"
    requested, next_cursor = _tick(defs, instance, cursor)
    assert requested == _to_rebuild(expected, built)
    assert next_cursor is not None
    assert int(next_cursor) > int(cursor)

    # Nothing new since: the next tick asks for nothing and keeps its cursor.
    again, same_cursor = _tick(defs, instance, next_cursor)
    assert again == []
    assert same_cursor == next_cursor

    # Days never built are not rebuilt: the same tick on an instance without gold runs asks for nothing.
    unbuilt, _ = _tick(defs, dg.DagsterInstance.ephemeral(), cursor)
    assert unbuilt == []


def _purchase_line(day: int, amount: str) -> str:
    """A log line: user u90 buys one item for ``amount`` on 2026-11-``day`` at 10:00 UTC."""
    body = {
        "event_id": f"u90-order-{day}",
        "event_type": "purchase",
        "schema_version": 1,
        "timestamp": f"2026-11-{day}T10:00:00.000Z",
        "user_id": "u90",
        "session_id": f"u90-session-{day}",
        "order_id": f"u90-order-{day}",
        "items": [
            {"product_id": "p90", "quantity": 1, "unit_price": amount, "total_price": amount, "category": "books"}
        ],
        "subtotal": amount,
        "discount_percent": "0.00",
        "discount_amount": "0.00",
        "total_amount": amount,
        "payment_method": "paypal",
        "shipping_method": "standard",
        "shipping_address": {"street": "1 Main St", "city": "Tucson", "zip_code": "85712", "country": "US"},
    }
    return to_log_line("purchase", "u90", json.dumps(body).encode())


def _u90(settings: Settings, day: dt.date) -> dict:
    (row,) = [
        r
        for r in gold_rows(settings, GOLD_CUSTOMER_DAILY.identifier)
        if r["event_date"] == day and r["user_id"] == "u90"
    ]
    return row


def test_a_late_purchase_restates_its_day_and_every_later_built_day_through_the_sensor(
    spark: SparkSession, live: Settings, tmp_path: Path
) -> None:
    days = [dt.date(2026, 11, 24), dt.date(2026, 11, 25), dt.date(2026, 11, 26)]
    on_time, late = tmp_path / "on_time.jsonl", tmp_path / "late.jsonl"
    on_time.write_text(_purchase_line(24, "1.00") + "\n" + _purchase_line(26, "7.00") + "\n")
    late.write_text(_purchase_line(25, "5.00") + "\n")

    send_log(live, on_time)
    catch_up(spark, live, timeout_s=600)
    instance = dg.DagsterInstance.ephemeral()
    backfill_gold(live, days[0], days[-1], instance)  # one run for the three days
    assert (_u90(live, days[2])["ltv"], _u90(live, days[2])["orders_to_date"]) == (Decimal("8.00"), 2)
    defs = build_definitions(live)
    sensor = defs.resolve_sensor_def("late_events_sensor")

    def tick(cursor: str | None) -> dg.SensorResult:
        context = dg.build_sensor_context(
            instance=instance, cursor=cursor, definitions=defs, resources={"lake": defs.resources["lake"]}
        )
        result = sensor.evaluate_tick(context)
        return dg.SensorResult(run_requests=result.run_requests or [], cursor=result.cursor)

    before = tick(None)
    assert before.run_requests == [], "nothing was late yet"

    send_log(live, late)  # the stream's watermark is past 2026-11-25 now: the purchase is late
    catch_up(spark, live, timeout_s=600)
    (request,) = tick(before.cursor).run_requests
    assert request.partition_key is None
    assert partition_range_tags(days[1], days[2]).items() <= request.tags.items(), "day 26 must follow day 25"
    result = defs.resolve_job_def(GOLD_JOB).execute_in_process(instance=instance, tags=request.tags)
    assert result.success

    day_25, day_26 = _u90(live, days[1]), _u90(live, days[2])
    assert (day_25["orders"], day_25["revenue"], day_25["orders_to_date"], day_25["ltv"]) == (
        1,
        Decimal("5.00"),
        2,
        Decimal("6.00"),
    )
    assert (day_26["orders"], day_26["orders_to_date"], day_26["ltv"]) == (1, 3, Decimal("13.00"))
    assert_gold_matches(live, truth_of([on_time, late]), days)
    restated = {
        (r["event_date"], r["metric"]): (r["old_value"], r["new_value"])
        for r in gold_rows(live, RESTATEMENTS.identifier)
        if r["table_name"] == GOLD_CUSTOMER_DAILY.identifier and r["row_key"] == "user_id=u90"
    }
    assert {day for day, _ in restated} == {days[1], days[2]}
    assert restated[(days[1], "ltv")] == (None, "6.00")  # u90 was not active on the 25th before
    assert restated[(days[2], "ltv")] == ("8.00", "13.00")
    assert restated[(days[2], "orders_to_date")] == ("2", "3")
    assert not [r for r in gold_rows(live, RESTATEMENTS.identifier) if r["event_date"] == days[0]]


def _price_line(day: int, hour: int, price: str) -> str:
    """A log line: product p90's list price becomes ``price`` on 2026-11-``day`` at ``hour``:00 UTC."""
    body = {
        "event_id": f"p90-price-{day}-{hour}",
        "event_type": "product_update",
        "schema_version": 1,
        "timestamp": f"2026-11-{day}T{hour:02d}:00:00.000Z",
        "product_id": "p90",
        "update_type": "price_change",
        "new_price": price,
    }
    return to_log_line("product_update", "p90", json.dumps(body).encode())


def _p90(settings: Settings) -> dict[dt.date, dict]:
    return {r["event_date"]: r for r in gold_rows(settings, GOLD_PRODUCT_DAILY.identifier) if r["product_id"] == "p90"}


def test_a_late_price_change_restates_the_list_price_and_discounts_of_the_days_it_reaches_through_the_sensor(
    spark: SparkSession, live: Settings, tmp_path: Path
) -> None:
    days = [dt.date(2026, 11, 24), dt.date(2026, 11, 25), dt.date(2026, 11, 26)]
    on_time, late = tmp_path / "on_time.jsonl", tmp_path / "late.jsonl"
    # p90 lists at 10.00 from the 24th; u90 buys it at 10.00 on the 24th and the 26th.
    on_time.write_text(
        "\n".join([_price_line(24, 8, "10.00"), _purchase_line(24, "10.00"), _purchase_line(26, "10.00")])
    )
    late.write_text(_price_line(25, 9, "8.00") + "\n")  # reaches Kafka after the 26th's events: late

    send_log(live, on_time)
    catch_up(spark, live, timeout_s=600)
    instance = dg.DagsterInstance.ephemeral()
    backfill_gold(live, days[0], days[-1], instance)
    before = _p90(live)
    assert set(before) == {days[0], days[2]}, "no row for p90 on the 25th: nothing happened to it"
    assert (before[days[2]]["list_price"], before[days[2]]["discount_vs_list"]) == (Decimal("10.00"), Decimal("0"))
    defs = build_definitions(live)
    _, cursor = _tick(defs, instance, None)

    send_log(live, late)
    catch_up(spark, live, timeout_s=600)
    requested, _ = _tick(defs, instance, cursor)
    assert requested == [days[1].isoformat(), days[2].isoformat()], "the 25th and every built day after it"
    request_tags = partition_range_tags(days[1], days[2])
    assert defs.resolve_job_def(GOLD_JOB).execute_in_process(instance=instance, tags=request_tags).success

    after = _p90(live)
    assert (after[days[1]]["list_price"], after[days[1]]["price_changes"]) == (Decimal("8.00"), 1)
    # Sold at 10.00 against a list price of 8.00 in force since the 25th: 1 - 10.00 / 8.00.
    assert (after[days[2]]["list_price"], after[days[2]]["discount_vs_list"]) == (Decimal("8.00"), Decimal("-0.25"))
    assert after[days[0]] == before[days[0]], "the 24th is before the change"
    assert_gold_matches(live, truth_of([on_time, late]), days)
    assert_products_match(live, truth_of([on_time, late]))
    restated = {
        (r["event_date"], r["metric"]): (r["old_value"], r["new_value"])
        for r in gold_rows(live, RESTATEMENTS.identifier)
        if r["table_name"] == GOLD_PRODUCT_DAILY.identifier and r["row_key"] == "product_id=p90"
    }
    assert restated[(days[2], "list_price")] == ("10.00", "8.00")
