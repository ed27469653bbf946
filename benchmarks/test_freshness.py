"""Freshness: per-event Kafka -> silver visibility latency with a live producer, swept over rates and triggers.

Results: ``benchmarks/results/freshness.json`` (a list of runs: rate_eps, achieved_eps, trigger_s, events, p50_s,
p95_s, p99_s, max_s, ...) and ``freshness_cdf.png``. ``achieved_eps`` is the rate the producers reached; on two
cores shared with the stream and the broker it can fall short of the asked ``rate_eps``, and a run's latencies
are then those of the reached rate.
"""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from benchmarks.harness import Results
from benchmarks.pipeline_runs import WARMUP_EVENTS, measure_freshness
from benchmarks.plots import latency_cdf
from devstack.pytest_plugin import make_settings
from devstack.services import Services
from pipeline.kafka_topics import ensure_topics
from pipeline.spark_session import build_spark_session

FULL_RUNS = [(1000, 1.0), (5000, 1.0), (5000, 0.5), (5000, 5.0), (20000, 1.0)]
QUICK_RUNS = [(500, 1.0)]
_cdf: list[tuple[str, list[float]]] = []


@pytest.fixture(params=range(len(FULL_RUNS)), ids=lambda i: f"run{i}")
def run(request: pytest.FixtureRequest, full: bool) -> tuple[float, float]:
    runs = FULL_RUNS if full else QUICK_RUNS
    if request.param >= len(runs):
        pytest.skip("quick variant: one small run proves the harness")
    return runs[request.param]


def test_freshness(
    run: tuple[float, float],
    full: bool,
    results: Results,
    spark: SparkSession,
    local_services: Services,
    tmp_path,
    jars_home,
) -> None:
    rate, trigger = run
    duration = 60.0 if full else 8.0
    settings = local_services.apply(make_settings(tmp_path, jars_home, stream={"trigger_seconds": trigger}))
    ensure_topics(settings)
    build_spark_session(settings)
    measured = measure_freshness(spark, settings, rate, duration, warmup_events=WARMUP_EVENTS if full else 500)
    path = results.add("freshness", {**measured.summary(), "phases": measured.phases})
    label = f"{rate:g}/s asked, {measured.achieved_eps:,.0f}/s reached, trigger {trigger:g}s"
    _cdf.append((label, measured.latencies))
    latency_cdf(_cdf, path.with_name("freshness_cdf.png"), "Kafka -> silver latency (CDF)")
