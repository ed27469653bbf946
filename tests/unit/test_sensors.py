"""The late-events sensor asks for gold runs of built days that received late events, and only of those."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pyarrow as pa

from pipeline.catalog import pyiceberg_catalog
from pipeline.config import Settings
from pipeline.orchestration.definitions import GOLD_JOB
from pipeline.orchestration.resources import LakehouseResource
from pipeline.orchestration.sensors import build_late_events_sensor
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
