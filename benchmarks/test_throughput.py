"""Catch-up throughput: N events preloaded into Kafka, then `--available-now` to bronze + silver.

Result: ``benchmarks/results/throughput.json`` with ``events`` and ``events_per_s`` (plus batch sizes used).
"""

from __future__ import annotations

from pyspark.sql import SparkSession

from benchmarks.harness import Results
from benchmarks.pipeline_runs import catch_up
from devstack.pytest_plugin import make_settings
from devstack.services import Services
from pipeline.kafka_topics import ensure_topics
from pipeline.spark_session import build_spark_session


def test_catch_up_throughput(
    full: bool, results: Results, spark: SparkSession, local_services: Services, tmp_path, jars_home
) -> None:
    events = 1_000_000 if full else 5_000
    per_batch = 250_000 if full else 2_500
    settings = local_services.apply(make_settings(tmp_path, jars_home, spark={"shuffle_partitions": 4}))
    ensure_topics(settings)
    build_spark_session(settings)
    results.add("throughput", catch_up(spark, settings, events, per_batch))
