"""The late-events sensor asks for one gold run over the built days from the earliest late one to the latest built
day (their lifetime figures changed), and for nothing when no built day is reached."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from pipeline.catalog import pyiceberg_catalog
from pipeline.config import Settings
from pipeline.orchestration.definitions import GOLD_JOB
from pipeline.orchestration.resources import LakehouseResource
from pipeline.orchestration.sensors import build_late_events_sensor, restated_span
from pipeline.tables import STREAM_BATCHES

WATCHED = dg.AssetKey(["gold", "daily_sales_summary"])


def _evaluate(settings: Settings, instance: dg.DagsterInstance, cursor: str | None = None) -> dg.SensorResult:
    sensor = build_late_events_sensor(GOLD_JOB, WATCHED)
    lake = LakehouseResource.from_settings(settings)
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"lake": lake})
    result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def test_without_stream_batches_nothing_is_requested(tmp_path: Path) -> None:
    result = _evaluate(Settings(home=tmp_path), dg.DagsterInstance.ephemeral())
    assert (result.run_requests, result.cursor) == ([], "0")


def test_late_days_already_built_are_rebuilt_once(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    catalog = pyiceberg_catalog(settings)
    catalog.create_namespace(STREAM_BATCHES.layer.value)
    batches = pa.table(
        {
            "committed_at": pa.array(
                [dt.datetime(2026, 11, 3, 1, tzinfo=dt.UTC), dt.datetime(2026, 11, 3, 2, tzinfo=dt.UTC)],
                pa.timestamp("us", tz="UTC"),
            ),
            "late_dates": pa.array([[dt.date(2026, 11, 1), dt.date(2026, 11, 2)], None], pa.list_(pa.date32())),
        }
    )
    catalog.create_table(STREAM_BATCHES.identifier, schema=batches.schema).append(batches)
    instance = dg.DagsterInstance.ephemeral()
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=WATCHED, partition="2026-11-02"))

    first = _evaluate(settings, instance)
    assert [request.partition_key for request in first.run_requests] == ["2026-11-02"]  # 11-01 was never built
    again = _evaluate(settings, instance, cursor=first.cursor)
    assert again.run_requests == []


NOV = [dt.date(2026, 11, day) for day in range(23, 28)]


@pytest.mark.parametrize(
    ("late", "built", "span"),
    [
        ({NOV[2]}, {NOV[1], NOV[2], NOV[3]}, (NOV[2], NOV[3])),  # the late day and every later built day
        ({NOV[2], NOV[1]}, {NOV[1], NOV[2], NOV[3]}, (NOV[1], NOV[3])),  # from the earliest late day
        ({NOV[2]}, {NOV[1], NOV[3]}, (NOV[3], NOV[3])),  # the late day was never built: the later day still moves
        ({NOV[2]}, {NOV[1], NOV[3], NOV[4]}, (NOV[3], NOV[4])),
        ({NOV[3]}, {NOV[1], NOV[2]}, None),  # nothing built on or after it
        (set(), {NOV[1]}, None),
        ({NOV[1]}, set(), None),
    ],
)
def test_the_restated_span_runs_from_the_earliest_late_built_day_to_the_latest_built_day(late, built, span) -> None:
    assert restated_span(late, built) == span


def test_a_late_day_before_later_built_days_asks_for_one_run_over_all_of_them(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    catalog = pyiceberg_catalog(settings)
    catalog.create_namespace(STREAM_BATCHES.layer.value)
    batches = pa.table(
        {
            "committed_at": pa.array([dt.datetime(2026, 11, 27, 1, tzinfo=dt.UTC)], pa.timestamp("us", tz="UTC")),
            "late_dates": pa.array([[NOV[2]]], pa.list_(pa.date32())),
        }
    )
    catalog.create_table(STREAM_BATCHES.identifier, schema=batches.schema).append(batches)
    instance = dg.DagsterInstance.ephemeral()
    for day in NOV[1:4]:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=WATCHED, partition=day.isoformat()))

    (request,) = _evaluate(settings, instance).run_requests
    assert request.partition_key is None
    assert request.tags == {
        "dagster/asset_partition_range_start": "2026-11-25",
        "dagster/asset_partition_range_end": "2026-11-26",
    }
