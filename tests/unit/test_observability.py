"""Kafka -> silver latency from silver rows and the snapshots that added them."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from pipeline.iceberg_io import BATCH_ID_PROPERTY, INGEST_TIME_PROPERTY
from pipeline.observability import summarize, with_latency

T0 = dt.datetime(2026, 11, 2, 12, 0, 0)


def test_latency_is_kafka_time_to_the_commit_that_made_a_row_visible_and_null_once_expired(spark) -> None:
    silver = spark.createDataFrame(
        [
            (1, T0, T0, "a"),  # its snapshot committed 1.5 s after the Kafka timestamp
            (2, T0, T0, "b"),  # its snapshot has been expired by maintenance
            (None, None, T0, "c"),  # a null row
        ],
        "batch_id long, ingest_time timestamp, kafka_timestamp timestamp, event_id string",
    )
    snapshots = spark.createDataFrame(
        [({BATCH_ID_PROPERTY: "1", INGEST_TIME_PROPERTY: "2026-11-02T12:00:00+00:00"}, T0 + dt.timedelta(seconds=1.5))],
        "summary map<string,string>, committed_at timestamp",
    )
    got = with_latency(silver, snapshots).select("event_id", "latency_s")
    expected = spark.createDataFrame([("a", 1.5), ("b", None), ("c", None)], "event_id string, latency_s double")
    assertDataFrameEqual(got, expected)

    stats = summarize(with_latency(silver, snapshots))
    assert stats is not None
    assert (stats.events, stats.p50_s, stats.max_s) == (1, 1.5, 1.5)
    assert summarize(with_latency(silver, snapshots).filter(F.col("event_id") == "b")) is None
