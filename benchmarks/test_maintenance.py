"""Small-file debt: what a long run of short micro-batches leaves in silver, and what maintenance gives back.

A live producer sends 3,000 events/s for 30 minutes (full run) through the real broker into the stream at the
default trigger. (5,000 events/s is more than this machine sustains for half an hour with the producer on the
same two cores: the stream fell behind after about ten minutes; the freshness benchmark shows the short runs.)
The batch durations over the run are reported too: the cost of a micro-batch grows as the debt builds up.
Then, per silver table: data files, snapshots and the time of a full scan, before and after one run of the
maintenance job (``pipeline.maintenance.maintain`` on every table the stream writes: compaction,
manifest rewrite, snapshot expiry, orphan removal with its safe age). Expiry runs with no minimum age here, as
the hourly job does on snapshots an hour old; it keeps the last 10 and every stream marker from the newest on.

Result: ``benchmarks/results/maintenance.json``, ``maintenance_files.png`` and ``maintenance_scan.png``.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from pyspark.sql import SparkSession

from benchmarks.datasets import read_everything
from benchmarks.harness import Results, best_of_two
from benchmarks.pipeline_runs import WARMUP_EVENTS, stream_live
from benchmarks.plots import bars
from devstack.pytest_plugin import make_settings
from devstack.services import Services
from pipeline.kafka_topics import ensure_topics
from pipeline.maintenance import maintain, table_shape
from pipeline.spark_session import build_spark_session
from pipeline.tables import SILVER, STREAMING_TABLES, TableSpec


def _shape(spark: SparkSession, spec: TableSpec, catalog: str) -> dict[str, float]:
    name = spec.qualified(catalog)
    shape = table_shape(spark, name)
    return {
        "data_files": shape.data_files,
        "snapshots": shape.snapshots,
        "manifests": shape.manifests,
        "mib": round(shape.bytes / 2**20, 2),
        "scan_s": round(best_of_two(lambda: read_everything(spark.table(name)))[0], 3),  # full scan
    }


def _by_tenth(values: list[float]) -> list[float]:
    """Means of ten consecutive slices of the run (the trend, from the first tenth to the last)."""
    size = max(1, len(values) // 10)
    slices = [values[i : i + size] for i in range(0, len(values), size)][:10]
    return [round(sum(part) / len(part), 2) for part in slices if part]


@pytest.mark.timeout(3 * 3600)
def test_small_file_debt_before_and_after_maintenance(
    full: bool, results: Results, spark: SparkSession, local_services: Services, tmp_path, jars_home
) -> None:
    rate, duration = (3000.0, 1800.0) if full else (500.0, 15.0)
    settings = local_services.apply(make_settings(tmp_path, jars_home, stream={"trigger_seconds": 1.0}))
    ensure_topics(settings)
    build_spark_session(settings)
    catalog = settings.catalog.name
    reports = stream_live(
        spark, settings, rate, duration, warmup_events=WARMUP_EVENTS if full else 500, drain_timeout_s=3600
    )

    before = {spec.identifier: _shape(spark, spec, catalog) for spec in SILVER.values()}
    started = time.monotonic()
    maintained = [maintain(spark, catalog, spec, snapshot_retention=dt.timedelta(0)) for spec in STREAMING_TABLES]
    maintenance_s = time.monotonic() - started
    after = {spec.identifier: _shape(spark, spec, catalog) for spec in SILVER.values()}

    skipped = {m.table: m.skipped for m in maintained if m.skipped}
    assert not skipped, f"maintenance skipped steps with no stream running: {skipped}"
    for table, shape in after.items():
        assert shape["data_files"] <= before[table]["data_files"], table

    path = results.add(
        "maintenance",
        {
            "rate_eps": rate,
            "duration_s": duration,
            "trigger_s": settings.stream.trigger_seconds,
            "events": sum(r.records for r in reports),
            "batches": len(reports),
            "batch_s_by_tenth": _by_tenth([r.duration_s for r in reports]),
            "records_per_batch_by_tenth": _by_tenth([float(r.records) for r in reports]),
            "maintenance_s": round(maintenance_s, 1),
            "tables": {table: {"before": before[table], "after": after[table]} for table in before},
        },
    )
    labels = [table.removeprefix("silver.") for table in before]
    bars(
        labels,
        {
            "data files before": [before[t]["data_files"] for t in before],
            "data files after": [after[t]["data_files"] for t in before],
            "snapshots before": [before[t]["snapshots"] for t in before],
            "snapshots after": [after[t]["snapshots"] for t in before],
        },
        path.with_name("maintenance_files.png"),
        f"Silver after {duration / 60:g} min at {rate:g} events/s, trigger {settings.stream.trigger_seconds:g}s",
        "count",
    )
    bars(
        labels,
        {"before": [before[t]["scan_s"] for t in before], "after": [after[t]["scan_s"] for t in before]},
        path.with_name("maintenance_scan.png"),
        "Full scan of each silver table, before and after maintenance",
        "seconds",
    )
