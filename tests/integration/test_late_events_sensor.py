"""The late-events sensor on a real lake: a tick asks for exactly the built days that late events touched.

The stream writes ``ops.stream_batches`` (the days each micro-batch brought late events to); the sensor reads it
with PyIceberg past its cursor. What it should ask for is derived independently, from the silver rows themselves
(``is_late``, ``batch_id``, ``event_date``). Ticks run through Dagster's test utilities on an instance that holds
real gold runs.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
from pyspark.sql import SparkSession

from pipeline.catalog import pyiceberg_catalog
from pipeline.config import Settings
from pipeline.orchestration.definitions import build_definitions
from pipeline.orchestration.runs import materialize_gold
from pipeline.tables import SILVER
from simulation.scenario import load_scenario
from tests.integration.helpers import catch_up, send_log, split_log, write_day


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

    Returns the requested partition keys (sorted) and the new cursor.
    """
    sensor = defs.resolve_sensor_def("late_events_sensor")
    lake = defs.resources["lake"]  # the test's catalog: build_definitions(settings) made it
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources={"lake": lake})
    data = sensor.evaluate_tick(context)
    keys = [request.partition_key for request in data.run_requests or []]
    assert len({r.run_key for r in data.run_requests or []}) == len(keys), "two requests share a run key"
    return sorted(k for k in keys if k is not None), data.cursor


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
    assert requested == sorted(set(late_days()) & built)
    assert cursor is not None

    # Late events arrive for days already built; the next tick asks for exactly those days, once each.
    last_batch = _max_batch_id(live)
    send_log(live, rest)
    catch_up(spark, live, timeout_s=600)
    expected = late_days(after_batch=last_batch)
    assert expected, "the second part of the storm brought no late events: the scenario no longer tests this"
    requested, next_cursor = _tick(defs, instance, cursor)
    assert requested == sorted(set(expected) & built)
    assert next_cursor is not None
    assert int(next_cursor) > int(cursor)

    # Nothing new since: the next tick asks for nothing and keeps its cursor.
    again, same_cursor = _tick(defs, instance, next_cursor)
    assert again == []
    assert same_cursor == next_cursor

    # Days never built are not rebuilt: the same tick on an instance without gold runs asks for nothing.
    unbuilt, _ = _tick(defs, dg.DagsterInstance.ephemeral(), cursor)
    assert unbuilt == []
