"""Re-materialize gold days that late events changed.

The stream records, for each micro-batch, the event days that received late events (``ops.stream_batches``,
column ``late_dates``). This sensor reads new batch rows since its cursor (with PyIceberg: no Spark in the
daemon) and asks for a gold run for each such day that was already materialized.
"""

import datetime as dt

import dagster as dg
from pyiceberg.expressions import GreaterThan

from pipeline.catalog import pyiceberg_catalog
from pipeline.orchestration.resources import LakehouseResource
from pipeline.tables import STREAM_BATCHES


def late_days_since(lake: LakehouseResource, cursor_us: int) -> tuple[set[dt.date], int]:
    """Days with late events in batches committed after ``cursor_us`` (epoch microseconds), and the new cursor."""
    catalog = pyiceberg_catalog(lake.settings())
    if not catalog.table_exists(STREAM_BATCHES.identifier):
        return set(), cursor_us
    since = dt.datetime.fromtimestamp(cursor_us / 1_000_000, dt.UTC).isoformat()
    newer = GreaterThan("committed_at", since)  # type: ignore[call-arg, arg-type]  # the stubs lag the runtime API
    rows = (
        catalog.load_table(STREAM_BATCHES.identifier)
        .scan(row_filter=newer, selected_fields=("committed_at", "late_dates"))
        .to_arrow()
        .to_pylist()
    )
    days = {day for row in rows for day in (row["late_dates"] or [])}
    newest = max((int(row["committed_at"].timestamp() * 1_000_000) for row in rows), default=cursor_us)
    return days, newest


def build_late_events_sensor(job_name: str, watched: dg.AssetKey) -> dg.SensorDefinition:
    @dg.sensor(job_name=job_name, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED)
    def late_events_sensor(context: dg.SensorEvaluationContext, lake: LakehouseResource) -> dg.SensorResult:
        """Rebuild gold days that received late events after they were built."""
        cursor = int(context.cursor or 0)
        days, new_cursor = late_days_since(lake, cursor)
        built = set(context.instance.get_materialized_partitions(watched))
        requests = [
            dg.RunRequest(run_key=f"late-{day.isoformat()}-{new_cursor}", partition_key=day.isoformat())
            for day in sorted(days)
            if day.isoformat() in built
        ]
        return dg.SensorResult(run_requests=requests, cursor=str(new_cursor))

    return late_events_sensor
