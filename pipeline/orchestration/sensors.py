"""Re-materialize gold days that late events changed, and every later built day their cumulative figures reach.

The stream records, for each micro-batch, the event days that received late events (``ops.stream_batches``,
column ``late_dates``). This sensor reads new batch rows since its cursor (with PyIceberg: no Spark in the
daemon). A late event for day d changes d and the lifetime figures (``ltv``, ``orders_to_date``, segments) of
every later day, so the sensor asks for one run over the built days from the earliest late one to the latest
built day: the run rebuilds them in order of the lifetime state, and each rebuild records its restatements. Days
with late events that were never built are not built for them.
"""

import datetime as dt

import dagster as dg
from pyiceberg.expressions import GreaterThan

from pipeline.catalog import pyiceberg_catalog
from pipeline.orchestration.resources import LakehouseResource, partition_day, partition_range_tags
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


def restated_span(late_days: set[dt.date], built: set[dt.date]) -> tuple[dt.date, dt.date] | None:
    """The days to rebuild for late events on ``late_days``: from the earliest built day on or after the earliest
    late day to the latest built day (None when no built day is on or after a late day)."""
    if not late_days:
        return None
    reached = [day for day in built if day >= min(late_days)]
    return (min(reached), max(built)) if reached else None


def build_late_events_sensor(job_name: str, watched: dg.AssetKey) -> dg.SensorDefinition:
    @dg.sensor(job_name=job_name, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED)
    def late_events_sensor(context: dg.SensorEvaluationContext, lake: LakehouseResource) -> dg.SensorResult:
        """Rebuild gold days that received late events after they were built, and the built days after them."""
        cursor = int(context.cursor or 0)
        days, new_cursor = late_days_since(lake, cursor)
        span = restated_span(
            days, {partition_day(key) for key in context.instance.get_materialized_partitions(watched)}
        )
        requests = []
        if span is not None:
            first, last = span
            run_key = f"late-{first.isoformat()}-{last.isoformat()}-{new_cursor}"
            if first == last:
                requests.append(dg.RunRequest(run_key=run_key, partition_key=first.isoformat()))
            else:
                requests.append(dg.RunRequest(run_key=run_key, tags=partition_range_tags(first, last)))
        return dg.SensorResult(run_requests=requests, cursor=str(new_cursor))

    return late_events_sensor
