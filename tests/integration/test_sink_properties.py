"""Properties of the micro-batch sink on a real Iceberg catalog, with hypothesis choosing the records.

Whatever the mix of valid events, redeliveries and broken payloads, and however it is cut into micro-batches:
every record lands exactly once in silver or quarantine, each event id once in silver; and replaying the last
batch with a fresh sink (as after a crash) changes nothing.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession

from pipeline.audit import conservation
from pipeline.config import Settings
from pipeline.iceberg_io import ensure_tables
from pipeline.spark_session import build_spark_session
from pipeline.streaming.bronze import to_bronze
from pipeline.streaming.silver import EventValidator
from pipeline.streaming.sink import MicroBatchSink
from pipeline.tables import QUARANTINE_EVENTS, SILVER, STREAMING_TABLES
from simulation.generator import generate
from simulation.scenario import load_scenario
from simulation.sinks import simulated_items

KAFKA_SCHEMA = (
    "key binary, value binary, topic string, partition int, offset long, timestamp timestamp, timestampType int"
)
POOL = list(simulated_items(generate(load_scenario("normal_day"), 5, 300)[0], load_scenario("normal_day"), live=False))
BROKEN = st.one_of(
    st.binary(max_size=60),
    st.sampled_from([b"", b"{", b"[]", b"null", b'{"event_type": "page_view"}', b"\xff\xfe\xfd"]),
    st.builds(lambda i: POOL[i][2][: len(POOL[i][2]) // 2], st.integers(0, len(POOL) - 1)),
)
RECORD = st.one_of(
    st.tuples(st.just("event"), st.integers(0, len(POOL) - 1)),
    st.tuples(st.just("broken"), BROKEN),
)


def _sink(settings: Settings, checkpoint: Path) -> MicroBatchSink:
    return MicroBatchSink(
        catalog=settings.catalog.name, checkpoint_location=str(checkpoint), late_after=dt.timedelta(minutes=10)
    )


@pytest.mark.integration
@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(records=st.lists(RECORD, min_size=1, max_size=60), cuts=st.lists(st.integers(0, 60), max_size=2))
def test_any_mix_of_records_lands_exactly_once_even_when_a_batch_is_replayed(
    spark: SparkSession, lake: Settings, tmp_path: Path, records: list, cuts: list[int]
) -> None:
    prefix = lake.kafka.topic_prefix
    catalog = f"{lake.catalog.name}_{uuid.uuid4().hex[:6]}"  # a fresh catalog per example, same warehouse
    settings = lake.model_copy(update={"catalog": lake.catalog.model_copy(update={"name": catalog})})
    build_spark_session(settings)
    ensure_tables(spark, catalog, STREAMING_TABLES)
    checkpoint = tmp_path / uuid.uuid4().hex
    checkpoint.mkdir()
    (checkpoint / "metadata").write_text(json.dumps({"id": str(uuid.uuid4())}))

    now = dt.datetime.now().replace(microsecond=0)
    rows = []
    for offset, (kind, value) in enumerate(records):
        topic, key, payload = POOL[value] if kind == "event" else ("page_view", "k", value)
        rows.append((key.encode(), payload, f"{prefix}.{topic}", 0, offset, now + dt.timedelta(milliseconds=offset), 0))
    bounds = sorted({0, len(rows), *(min(c, len(rows)) for c in cuts)})
    validator = EventValidator(prefix, settings.stream.max_payload_bytes)
    batches = [
        validator.validate(to_bronze(spark.createDataFrame(rows[a:b], KAFKA_SCHEMA)))
        for a, b in itertools.pairwise(bounds)
        if b > a
    ]

    sink = _sink(settings, checkpoint)
    for batch_id, batch in enumerate(batches):
        sink(batch, batch_id)
    _sink(settings, checkpoint)(batches[-1], len(batches) - 1)  # a crash after the commits, before Spark's

    report = conservation(spark, catalog)
    assert report.ok, report
    assert report.bronze_records == len(rows)
    silver_ids = [
        r[0] for spec in SILVER.values() for r in spark.table(spec.qualified(catalog)).select("event_id").collect()
    ]
    assert len(silver_ids) == len(set(silver_ids))
    valid_ids = {json.loads(POOL[i][2])["event_id"] for kind, i in records if kind == "event"}
    assert set(silver_ids) == valid_ids
    assert spark.table(QUARANTINE_EVENTS.qualified(catalog)).count() == len(rows) - len(valid_ids)
