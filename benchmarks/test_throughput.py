"""Catch-up throughput: N events preloaded into Kafka, then `--available-now` to bronze + silver.

Result: ``benchmarks/results/throughput.json`` with ``events`` and ``events_per_s`` (plus batch sizes used).
"""

from __future__ import annotations

import time

from pyspark.sql import SparkSession

from benchmarks.harness import Results
from benchmarks.pipeline_runs import batch_phases, preload
from devstack.pytest_plugin import make_settings
from devstack.services import Services
from pipeline.kafka_topics import ensure_topics
from pipeline.spark_session import build_spark_session
from pipeline.streaming.job import start_stream
from shoplake.runtime import BatchCounter


def test_catch_up_throughput(
    full: bool, results: Results, spark: SparkSession, local_services: Services, tmp_path, jars_home
) -> None:
    events = 1_000_000 if full else 5_000
    per_batch = 250_000 if full else 2_500
    settings = local_services.apply(
        make_settings(
            tmp_path, jars_home, stream={"max_offsets_per_trigger": per_batch}, spark={"shuffle_partitions": 4}
        )
    )
    ensure_topics(settings)
    build_spark_session(settings)
    sent = preload(settings, events, seed=31)
    counter = BatchCounter()
    reports: list = []
    started = time.monotonic()
    stream = start_stream(spark, settings, available_now=True, on_batch=[counter, reports.append])
    stream.await_termination(timeout_s=3600)
    seconds = time.monotonic() - started
    assert stream.exception() is None
    assert counter.records == sent
    results.add(
        "throughput",
        {
            "events": sent,
            "seconds": round(seconds, 2),
            "events_per_s": round(sent / seconds, 1),
            "max_offsets_per_trigger": per_batch,
            "batches": batch_phases(reports),
        },
    )
