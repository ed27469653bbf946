"""The public clickstream sample replayed as fast as possible: import rate and Kafka -> silver freshness."""

from __future__ import annotations

import itertools
import time

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from benchmarks.harness import Results
from benchmarks.pipeline_runs import preload
from devstack.pytest_plugin import REES46_MISSING, make_settings
from devstack.pytest_plugin import REES46_SAMPLE as SAMPLE
from devstack.services import Services
from pipeline.kafka_topics import ensure_topics
from pipeline.observability import silver_latencies, summarize
from pipeline.spark_session import build_spark_session
from pipeline.streaming.job import start_stream
from shoplake.runtime import BatchCounter
from simulation.rees46 import ImportReport, read_records
from simulation.sinks import make_producer, send

QUICK_ROWS = 3000


@pytest.mark.skipif(not SAMPLE.exists(), reason=REES46_MISSING)
def test_rees46_replay(
    full: bool, results: Results, spark: SparkSession, local_services: Services, tmp_path, jars_home
) -> None:
    settings = local_services.apply(make_settings(tmp_path, jars_home, stream={"trigger_seconds": 1.0}))
    ensure_topics(settings)
    build_spark_session(settings)
    counter = BatchCounter()
    reports: list = []
    stream = start_stream(spark, settings, on_batch=[counter, reports.append])
    try:
        warm = preload(settings, 2000, seed=5)
        counter.wait_for(warm, timeout_s=300, failed=stream.exception)
        first_batch = len(reports)
        report = ImportReport()
        producer = make_producer(settings.kafka)
        started = time.monotonic()
        records = read_records(SAMPLE, report)
        if not full:  # the quick variant proves the harness on the file's first rows
            records = itertools.islice(records, QUICK_ROWS)
        sent = send(producer, ((r.topic.value, r.key, r.value) for r in records), settings.kafka.topic_prefix)
        send_s = time.monotonic() - started
        producer.close()
        counter.wait_for(warm + sent, timeout_s=600, failed=stream.exception)
        total_s = time.monotonic() - started
    finally:
        stream.stop()
    first_id = reports[first_batch].batch_id
    stats = summarize(silver_latencies(spark, settings.catalog.name).filter(F.col("batch_id") >= F.lit(first_id)))
    assert stats is not None
    results.add(
        "rees46",
        {
            "rows": sent,
            "import_events_per_s": round(sent / send_s, 1),
            "end_to_end_events_per_s": round(sent / total_s, 1),
            "p50_s": round(stats.p50_s, 3),
            "p95_s": round(stats.p95_s, 3),
            "p99_s": round(stats.p99_s, 3),
            "max_s": round(stats.max_s, 3),
        },
    )
