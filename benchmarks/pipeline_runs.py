"""Whole-pipeline runs for the benchmarks: a live producer process feeding the real broker and the stream.

The producer is a separate process (``benchmarks/paced_producer.py``: the simulator writes its records as a plan,
then a Java producer sends them at the rate, stamping events with real time), so that it neither shares the
driver's Python interpreter nor takes much of the two cores the stream and the broker run on. Latency is measured
per event, from its Kafka timestamp to the commit of the Iceberg snapshot that made it visible in silver.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from devstack.pytest_plugin import JARS_HOME
from pipeline.config import Settings
from pipeline.observability import silver_latencies, summarize
from pipeline.streaming.job import start_stream
from pipeline.streaming.plan import BatchReport
from shoplake.runtime import BatchCounter
from simulation.generator import generate
from simulation.scenario import load_scenario
from simulation.sinks import make_producer, send, simulated_items

ROOT = Path(__file__).resolve().parent.parent
# Events streamed before a steady-state run is measured. A fresh JVM runs the validation stage's generated code
# slowly until the JIT has compiled it, which takes a few hundred thousand records' worth of work on two cores;
# this warm-up is a one-off cost of starting, which benchmarks/test_cold_start.py measures on its own.
WARMUP_EVENTS = 30_000


def producer_process(
    settings: Settings, rate: float, events: int, seed: int, scenario: str = "normal_day"
) -> subprocess.Popen[bytes]:
    """A process sending ``events`` simulated events at ``rate`` per second (it simulates them first)."""
    env = {**os.environ, **settings.to_env()}
    plan = Path(settings.home) / "producer-plans" / f"{scenario}-{seed}-{events}.tsv"
    plan.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "benchmarks.paced_producer", "--scenario", scenario, "--seed", str(seed)]
    cmd += ["--events", str(events), "--rate", str(rate), "--jars-home", str(JARS_HOME), "--plan", str(plan)]
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def preload(settings: Settings, events: int, seed: int, scenario: str = "normal_day") -> int:
    """Send ``events`` simulated events as fast as possible from this process; returns records sent."""
    sc = load_scenario(scenario)
    records, _ = generate(sc, seed, events)
    producer = make_producer(settings.kafka)
    try:
        return send(producer, simulated_items(records, sc, live=False), settings.kafka.topic_prefix)
    finally:
        producer.close()


def catch_up(spark: SparkSession, settings: Settings, events: int, per_batch: int) -> dict[str, Any]:
    """``events`` preloaded into Kafka, then one ``--available-now`` run to bronze + silver, ``per_batch`` offsets
    at most per micro-batch; the throughput and each batch's phases."""
    sent = preload(settings, events, seed=31)
    counter = BatchCounter()
    reports: list[BatchReport] = []
    capped = settings.model_copy(
        update={"stream": settings.stream.model_copy(update={"max_offsets_per_trigger": per_batch})}
    )
    started, started_at = time.monotonic(), time.time()
    stream = start_stream(spark, capped, available_now=True, on_batch=[counter, reports.append])
    stream.await_termination(timeout_s=3600)
    seconds, ended_at = time.monotonic() - started, time.time()
    if stream.exception() is not None:
        raise RuntimeError(f"the catch-up stream failed: {stream.exception()}")
    if counter.records != sent:
        raise RuntimeError(f"the catch-up stream committed {counter.records} of {sent} records")
    return {
        "events": sent,
        "seconds": round(seconds, 2),
        "events_per_s": round(sent / seconds, 1),
        "max_offsets_per_trigger": per_batch,
        # Where the time outside the batches went: starting the query up to its first batch, and after the last
        # batch's commit the stream's stop (it folds the roll-ups from everything the run wrote).
        "to_first_batch_s": round(reports[0].started_at - started_at, 2) if reports else None,
        "after_last_commit_s": round(ended_at - reports[-1].committed_at, 2) if reports else None,
        "batches": batch_phases(reports),
    }


@dataclass
class FreshnessRun:
    rate_eps: float  # the rate the producers were asked for
    # The rate they reached: measured events over the span of their Kafka timestamps. Below ``rate_eps`` when the
    # producer (on the same cores as the stream and the broker) could not keep up: the latencies are then
    # those of the achieved rate, not of the asked one.
    achieved_eps: float
    trigger_s: float
    duration_s: float
    events: int
    p50_s: float
    p95_s: float
    p99_s: float
    max_s: float
    batches: int
    mean_batch_s: float
    latencies: list[float]
    phases: list[dict[str, float]]

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("latencies", "phases")}


def stream_live(
    spark: SparkSession,
    settings: Settings,
    rate: float,
    duration_s: float,
    warmup_events: int = WARMUP_EVENTS,
    drain_timeout_s: float = 900,
    measuring: threading.Event | None = None,
) -> list[BatchReport]:
    """Stream while a producer process sends ``rate`` events/s for ``duration_s``; the reports of the measured
    batches (after a warm-up batch: JIT compilation and first table loads are a one-off cost of starting the
    stream, reported by the demo, not a steady-state figure). ``measuring`` is set when the first measured batch
    commits (the producer plans its events before it sends them)."""
    counter = BatchCounter()
    reports: list[BatchReport] = []
    producing = threading.Event()

    def first_measured(_: BatchReport) -> None:
        if measuring is not None and producing.is_set():
            measuring.set()

    stream = start_stream(spark, settings, on_batch=[counter, reports.append, first_measured])
    producer: subprocess.Popen[bytes] | None = None
    try:
        warm = preload(settings, warmup_events, seed=10_001)
        counter.wait_for(warm, timeout_s=300, failed=stream.exception)
        first_measured_batch = len(reports)
        events = int(rate * duration_s)
        producing.set()
        producer = producer_process(settings, rate, events, seed=20_002)
        _, stderr = producer.communicate(timeout=duration_s * 4 + 300)
        if producer.returncode != 0:
            raise RuntimeError(f"producer failed: {stderr.decode()[-2000:]}")
        counter.wait_for(warm + events, timeout_s=drain_timeout_s, failed=stream.exception)
    finally:
        if producer is not None and producer.poll() is None:  # a failed run leaves no producer behind
            producer.kill()
            producer.wait()
        stream.stop()
    return reports[first_measured_batch:]


def batch_phases(reports: list[BatchReport]) -> list[dict[str, float]]:
    """Each batch's records and phase seconds, and ``between``: Spark's own time from the previous batch's last
    commit to this batch reaching the sink (checkpoint logs, offsets, planning, the trigger's wait)."""
    phases = []
    for previous, report in zip([None, *reports], reports, strict=False):
        between = {"between": round(report.started_at - previous.committed_at, 2)} if previous else {}
        phases.append({"records": report.records, **{k: round(v, 2) for k, v in report.phases.items()}, **between})
    return phases


def measure_freshness(
    spark: SparkSession, settings: Settings, rate: float, duration_s: float, warmup_events: int = WARMUP_EVENTS
) -> FreshnessRun:
    """Per-event Kafka -> silver latency of the events sent during a :func:`stream_live` run."""
    measured = stream_live(spark, settings, rate, duration_s, warmup_events)
    first_batch_id = measured[0].batch_id
    latencies_df = silver_latencies(spark, settings.catalog.name).filter(F.col("batch_id") >= F.lit(first_batch_id))
    stats = summarize(latencies_df)
    assert stats is not None
    rows = latencies_df.select("latency_s", "kafka_timestamp").collect()
    latencies = [row.latency_s for row in rows]
    sent_at = [row.kafka_timestamp for row in rows]
    produced_s = (max(sent_at) - min(sent_at)).total_seconds() if sent_at else 0.0
    durations = [r.duration_s for r in measured]
    return FreshnessRun(
        rate_eps=rate,
        achieved_eps=round(stats.events / produced_s) if produced_s > 0 else float(stats.events),
        trigger_s=settings.stream.trigger_seconds,
        duration_s=duration_s,
        events=stats.events,
        p50_s=round(stats.p50_s, 3),
        p95_s=round(stats.p95_s, 3),
        p99_s=round(stats.p99_s, 3),
        max_s=round(stats.max_s, 3),
        batches=len(measured),
        mean_batch_s=round(sum(durations) / len(durations), 3),
        latencies=latencies,
        phases=batch_phases(measured),
    )
