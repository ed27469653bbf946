"""The fold's read of silver as the table ages: a scan of the whole table against a scan of the window's appends.

Every fold reads the silver rows ingested since the last one. The stream commits one append (one snapshot, one
manifest) per micro-batch and per table, and leaves merging the manifests to its hygiene, every
``stream.hygiene_minutes``; at two batches a second that is up to 600 manifests between two merges. A scan of
the whole table filtered on ``ingest_time`` opens all of them; a scan of the appends between the window's two
snapshots (:func:`pipeline.streaming.fold.appends_in_ingest_window`) opens those of the window only.

Here a silver table gets small appends stamped half a second apart, as the stream's would be, and at a few ages
both scans read the rows of the last 60 appends (30 s: the default fold interval), each the median of three. Both
must count the same rows.

``--full``: ages 120, 600, 1,200 and 2,400 appends; the quick variant: 20 and 70. Result:
``benchmarks/results/fold_tail.json`` and ``fold_tail.png``.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable
from functools import partial

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from benchmarks.harness import Results
from benchmarks.plots import bars
from pipeline.contracts.events import EventType
from pipeline.iceberg_io import ensure_tables, read_table
from pipeline.streaming.commit import INGEST_TIME_PROPERTY
from pipeline.streaming.fold import appends_in_ingest_window
from pipeline.streaming.rollups import filter_tail
from pipeline.tables import SILVER

ROWS_PER_APPEND = 50
WINDOW_APPENDS = 60
_START = dt.datetime(2026, 12, 5, 9, 0, tzinfo=dt.UTC)


def _ingested(batch: int) -> dt.datetime:
    return _START + dt.timedelta(seconds=batch / 2)


def _batch(spark: SparkSession, batch: int) -> DataFrame:
    """``ROWS_PER_APPEND`` page views ingested at ``batch``'s time; columns the fold does not read are null."""
    values = {
        "event_id": F.concat(F.lit(f"b{batch}-"), F.col("id").cast("string")),
        "event_type": F.lit(EventType.PAGE_VIEW.value),
        "event_time": F.lit(_ingested(batch)),
        "event_date": F.lit(_ingested(batch).date()),
        "ingest_time": F.lit(_ingested(batch)),
        "batch_id": F.lit(batch),
    }
    fields = SILVER[EventType.PAGE_VIEW].schema.fields
    return spark.range(ROWS_PER_APPEND).select(
        *[(values[f.name] if f.name in values else F.lit(None)).cast(f.dataType).alias(f.name) for f in fields]
    )


def _read_tail(scan: Callable[[], DataFrame], after: dt.datetime, through: dt.datetime) -> tuple[float, int]:
    """Seconds (median of three) to plan ``scan`` and count its rows ingested in ``(after, through]``; the rows."""
    timings, rows = [], 0
    for _ in range(3):
        started = time.monotonic()
        rows = filter_tail(scan(), F.lit(after), F.lit(through)).count()
        timings.append(time.monotonic() - started)
    return statistics.median(timings), rows


def test_the_fold_reads_its_window_at_a_cost_that_does_not_grow_with_the_table(
    full: bool, results: Results, spark: SparkSession, lake
) -> None:
    catalog = lake.catalog.name
    spec = SILVER[EventType.PAGE_VIEW]
    ensure_tables(spark, catalog, [spec])
    ages = [120, 600, 1200, 2400] if full else [20, 70]
    appended = 0
    rows: list[dict[str, float]] = []
    for age in ages:
        while appended < age:
            appended += 1
            _batch(spark, appended).writeTo(spec.qualified(catalog)).option(
                f"snapshot-property.{INGEST_TIME_PROPERTY}", _ingested(appended).isoformat()
            ).append()
        after, through = _ingested(max(age - WINDOW_APPENDS, 0)), _ingested(age)
        whole_s, whole_rows = _read_tail(partial(read_table, spark, catalog, spec), after, through)
        appends_s, appends_rows = _read_tail(
            partial(appends_in_ingest_window, spark, catalog, spec, after, through), after, through
        )
        expected = min(age, WINDOW_APPENDS) * ROWS_PER_APPEND
        assert whole_rows == appends_rows == expected, "both scans hold every row of the window"
        rows.append({"appends": age, "whole_table_s": round(whole_s, 2), "window_appends_s": round(appends_s, 2)})

    path = results.add(
        "fold_tail",
        {
            "window_appends": WINDOW_APPENDS,
            "rows_per_append": ROWS_PER_APPEND,
            "ages": rows,
            "oldest_whole_over_window": round(rows[-1]["whole_table_s"] / rows[-1]["window_appends_s"], 1),
        },
    )
    bars(
        [f"{r['appends']:,} appends" for r in rows],
        {
            "whole table, filtered (s)": [r["whole_table_s"] for r in rows],
            "the window's appends (s)": [r["window_appends_s"] for r in rows],
        },
        path.with_name("fold_tail.png"),
        f"reading the last {WINDOW_APPENDS} appends of a silver table",
        "seconds (median of 3)",
    )
