"""No drift: freshness at the end of a long live run against its start, with table maintenance beside it.

A live producer sends 5,000 events/s for 30 minutes (full run) through the real broker into the stream at the
default trigger, while the maintenance job runs beside it every 10 minutes in its own process, as the scheduled
job does (``shoplake maintain`` on every table the stream writes: compaction, manifest rewrite, snapshot expiry;
the second round also removes orphan files, as the daily run does). Per-event Kafka -> silver latency is compared
between the first and the last five minutes of the run; the files, manifests and snapshots each table holds at
the end are reported, with its metadata file's size once a minute (what every commit rewrites), the pauses
between batches over a second, and each maintenance round's start and duration. A maintenance round that fails,
or none completing, fails the benchmark. The quick run's one round removes orphan files.

Result: ``benchmarks/results/drift.json`` and ``drift_p99.png`` (p99 per minute of the run).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from benchmarks.harness import Results
from benchmarks.pipeline_runs import ROOT, WARMUP_EVENTS, batch_phases, stream_live
from benchmarks.plots import series
from devstack.pytest_plugin import make_settings
from devstack.services import Services
from pipeline.iceberg_io import metadata_file_bytes, read_table
from pipeline.kafka_topics import ensure_topics
from pipeline.maintenance import table_shape
from pipeline.observability import silver_latencies
from pipeline.spark_session import build_spark_session
from pipeline.tables import MAINTENANCE_RUNS, STREAMING_TABLES

WINDOW_S = 300.0  # the first and the last five minutes


def _p99(latencies_df: DataFrame) -> float | None:
    row = latencies_df.agg(F.percentile("latency_s", F.lit(0.99)).alias("p99")).first()
    return round(row["p99"], 3) if row is not None and row["p99"] is not None else None


def maintenance_skipped(spark: SparkSession, catalog: str) -> list[dict[str, str]]:
    """The steps each maintenance round skipped, per table, from ``ops.maintenance_runs`` (empty rounds left out)."""
    if not spark.catalog.tableExists(MAINTENANCE_RUNS.qualified(catalog)):
        return []
    rows = read_table(spark, catalog, MAINTENANCE_RUNS).filter(F.col("skipped") != "").collect()
    return [{row["table_name"]: row["skipped"]} for row in rows]


@pytest.mark.timeout(3 * 3600)
def test_freshness_does_not_drift_beside_maintenance(
    full: bool, results: Results, spark: SparkSession, local_services: Services, tmp_path, jars_home
) -> None:
    rate, duration, every = (5000.0, 1800.0, 600.0) if full else (500.0, 30.0, 10.0)
    window = WINDOW_S if full else duration / 4
    settings = local_services.apply(make_settings(tmp_path, jars_home, stream={"trigger_seconds": 1.0}))
    ensure_topics(settings)
    build_spark_session(settings)
    catalog = settings.catalog.name

    stop, measuring = threading.Event(), threading.Event()
    rounds: list[dict[str, object]] = []  # completed rounds: when, how long, whether orphan files were removed
    failures: list[str] = []
    orphan_round = 2 if full else 1
    maintenance_env = {**os.environ, **settings.to_env()}

    metadata_bytes: dict[str, list[int]] = {spec.identifier: [] for spec in STREAMING_TABLES}

    def metadata_sizes() -> None:
        """Each table's metadata file size once a minute: what each commit rewrites, as the stream ages."""
        while not stop.wait(60.0 if full else duration / 3):
            for spec in STREAMING_TABLES:
                metadata_bytes[spec.identifier].append(metadata_file_bytes(spark, catalog, spec))

    def maintenance_beside() -> None:
        while not measuring.wait(1.0):  # from the first measured batch on
            if stop.is_set():
                return
        started = time.monotonic()
        while not failures and not stop.wait(every):
            orphans = len(rounds) + 1 == orphan_round
            command = [sys.executable, "-m", "shoplake.cli", "maintain", "--orphans" if orphans else "--no-orphans"]
            began = time.monotonic()
            done = subprocess.run(command, env=maintenance_env, cwd=ROOT, capture_output=True, text=True)
            if done.returncode != 0:  # reported by the test, with the process's own last words
                failures.append(f"exit {done.returncode}: {(done.stderr or done.stdout)[-2000:]}")
                return
            rounds.append(
                {
                    "started_at_s": round(began - started, 1),
                    "duration_s": round(time.monotonic() - began, 1),
                    "orphans": orphans,
                }
            )

    beside = threading.Thread(target=maintenance_beside, name="maintenance", daemon=True)
    beside.start()
    sampler = threading.Thread(target=metadata_sizes, name="metadata sizes", daemon=True)
    sampler.start()
    try:
        reports = stream_live(
            spark,
            settings,
            rate,
            duration,
            warmup_events=WARMUP_EVENTS if full else 500,
            drain_timeout_s=3600,
            measuring=measuring,
        )
    finally:
        stop.set()
        beside.join()
        sampler.join()

    measured = silver_latencies(spark, catalog).filter(F.col("batch_id") >= F.lit(reports[0].batch_id))
    bounds = measured.agg(F.min("kafka_timestamp").alias("start"), F.max("kafka_timestamp").alias("end")).first()
    assert bounds is not None
    start = F.unix_micros(F.lit(bounds["start"])) / 1e6
    end = F.unix_micros(F.lit(bounds["end"])) / 1e6
    sent_at = F.unix_micros("kafka_timestamp") / 1e6
    first = _p99(measured.filter(sent_at < start + F.lit(window)))
    last = _p99(measured.filter(sent_at > end - F.lit(window)))
    unknown = measured.filter(F.col("latency_s").isNull()).count()
    assert first is not None
    assert last is not None
    per_minute = (
        measured.withColumn("minute", F.floor((sent_at - start) / 60).cast("int"))
        .groupBy("minute")
        .agg(F.percentile("latency_s", F.lit(0.99)).alias("p99"))
        .orderBy("minute")
        .collect()
    )
    phases = batch_phases(reports)
    tables = {}
    for spec in STREAMING_TABLES:
        shape = table_shape(spark, spec.qualified(catalog))
        tables[spec.identifier] = {
            "data_files": shape.data_files,
            "manifests": shape.manifests,
            "snapshots": shape.snapshots,
            "metadata_bytes_per_minute": metadata_bytes[spec.identifier],
        }
    path = results.add(
        "drift",
        {
            "rate_eps": rate,
            "duration_s": duration,
            "maintenance_every_s": every,
            "maintenance_runs": len(rounds),
            "maintenance_rounds": rounds,
            "maintenance_failures": failures,
            "maintenance_steps_skipped": maintenance_skipped(spark, catalog),
            "window_s": window,
            "events": sum(r.records for r in reports),
            # The rate the producer reached: measured events over the span of their Kafka timestamps.
            "achieved_eps": round(measured.count() / (bounds["end"] - bounds["start"]).total_seconds()),
            "events_without_known_latency": unknown,
            "p99_first_window_s": first,
            "p99_last_window_s": last,
            "ratio_last_to_first": round(last / first, 2),
            "p99_per_minute_s": [round(row["p99"], 2) for row in per_minute],
            "tables_at_end": tables,
            "pauses_over_1s": sum(1 for b in phases if b.get("between", 0.0) > 1.0),
            "longest_pause_s": max((b.get("between", 0.0) for b in phases), default=0.0),
            "batches": phases,
        },
    )
    series(
        {"p99 per minute": [round(row["p99"], 2) for row in per_minute]},
        path.with_name("drift_p99.png"),
        f"Kafka -> silver p99 per minute of the run, {rate:g} events/s, maintenance every {every / 60:g} min",
        "minute",
        "seconds",
    )
    # After the figures are recorded (with the failure, for its profile), so that a failed round fails the run.
    assert not failures, f"a maintenance round beside the stream failed: {failures[0]}"
    assert rounds, "no maintenance round completed beside the stream"
