"""Kafka -> silver latency from silver rows and the micro-batches' rows in ``ops.stream_batches``."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from pipeline.observability import (
    LatencySummary,
    filter_visible_since,
    freshness_verdict,
    summarize,
    with_latency,
)

T0 = dt.datetime(2026, 11, 2, 12, 0, 0)


def test_latency_is_kafka_time_to_the_commit_of_the_rows_batch_and_null_when_unrecorded(spark) -> None:
    earlier = T0 - dt.timedelta(hours=1)
    silver = spark.createDataFrame(
        [
            (1, T0, T0, "a"),  # its batch committed 1.5 s after the Kafka timestamp
            (2, T0, T0, "b"),  # its batch was never recorded (the stream stopped first)
            (1, earlier, earlier, "c"),  # batch 1 of an earlier stream (another checkpoint): its own commit
            (None, None, T0, "d"),  # a null row
        ],
        "batch_id long, ingest_time timestamp, kafka_timestamp timestamp, event_id string",
    )
    batches = spark.createDataFrame(
        [
            ("s2", 1, T0, T0 + dt.timedelta(seconds=1.5)),
            ("s1", 1, earlier, earlier + dt.timedelta(seconds=4)),
        ],
        "stream_id string, batch_id long, started_at timestamp, committed_at timestamp",
    )
    got = with_latency(silver, batches).select("event_id", "latency_s")
    expected = spark.createDataFrame(
        [("a", 1.5), ("b", None), ("c", 4.0), ("d", None)], "event_id string, latency_s double"
    )
    assertDataFrameEqual(got, expected)

    stats = summarize(with_latency(silver, batches).filter(F.col("event_id") != "c"))
    assert stats is not None
    assert (stats.events, stats.p50_s, stats.max_s) == (1, 1.5, 1.5)
    assert summarize(with_latency(silver, batches).filter(F.col("event_id") == "b")) is None


def test_the_window_keeps_events_made_visible_since_its_start_and_drops_unknown_latencies(spark) -> None:
    latencies = spark.createDataFrame(
        [
            ("old", T0 - dt.timedelta(minutes=20), 9.0),
            ("edge", T0, 2.0),  # visible exactly at the window's start: in
            ("new", T0 + dt.timedelta(minutes=1), 1.0),
            ("unrecorded", None, None),  # its batch was never recorded: latency unknown
        ],
        "event_id string, visible_at timestamp, latency_s double",
    )
    since = T0.replace(tzinfo=dt.UTC)  # the session's time zone is UTC
    got = filter_visible_since(latencies, since).select("event_id")
    assertDataFrameEqual(got, spark.createDataFrame([("edge",), ("new",)], "event_id string"))
    stats = summarize(filter_visible_since(latencies, since))
    assert stats is not None
    assert (stats.events, stats.max_s) == (2, 2.0)


def _latencies(p99_s: float) -> LatencySummary:
    return LatencySummary(events=120, p50_s=1.0, p95_s=min(p99_s, 2.0), p99_s=p99_s, max_s=p99_s + 1)


def test_freshness_passes_at_the_objective_and_fails_just_above_it() -> None:
    at_objective = freshness_verdict(_latencies(p99_s=5.0), p99_objective_s=5.0)
    assert at_objective.is_ok
    assert (at_objective.events, at_objective.p50_s, at_objective.p99_s, at_objective.objective_s) == (
        120, 1.0, 5.0, 5.0,
    )  # fmt: skip
    above = freshness_verdict(_latencies(p99_s=5.001), p99_objective_s=5.0)
    assert not above.is_ok
    assert above.p99_s == 5.001


def test_a_window_without_a_visible_event_has_nothing_to_judge_and_reports_no_events() -> None:
    verdict = freshness_verdict(None, p99_objective_s=5.0)
    assert verdict.is_ok
    assert (verdict.events, verdict.p50_s, verdict.p99_s) == (0, None, None)
