"""``gold.data_quality``, every column, on a real lake: the counts the oracle knows equal the oracle's, and the
rest (late rows, reasons, undated records, bronze records, conservation) equal a recount of the lake's own rows.

A dirty day's records go through the micro-batch sink in a few batches, all reaching Kafka on the scenario's
day, so that records without an event day (broken JSON, unreadable timestamps) and the bronze accounting fall
on the day the gold row describes. The recount reads bronze, silver and quarantine with PyIceberg and counts in
Python, as ``docs/metrics.md`` defines each column; only the latency percentiles (wall-clock) are not recounted.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest
from pyspark.sql import SparkSession

from pipeline.batch.gold import data_quality
from pipeline.batch.inputs import GoldRun
from pipeline.catalog import pyiceberg_catalog
from pipeline.config import Settings
from pipeline.contracts.events import EventType, topic_name
from pipeline.iceberg_io import ensure_tables
from pipeline.streaming.bronze import to_bronze
from pipeline.streaming.commit import BatchCommitter
from pipeline.streaming.silver import EventValidator
from pipeline.streaming.sink import MicroBatchSink
from pipeline.streaming.state import recover
from pipeline.tables import BRONZE_EVENTS, QUARANTINE_EVENTS, SILVER, STREAMING_TABLES
from simulation import oracle
from simulation.scenario import load_scenario
from simulation.sinks import log_items
from tests.integration.helpers import truth_of, write_day

KAFKA_SCHEMA = (
    "key binary, value binary, topic string, partition int, offset long, timestamp timestamp, timestampType int"
)


def _stream_day(spark: SparkSession, settings: Settings, log: Path, day: dt.date, checkpoint: Path) -> None:
    """Every record of ``log`` through the sink in four batches, each reaching Kafka on ``day``."""
    prefix = settings.kafka.topic_prefix
    start = dt.datetime.combine(day, dt.time(6), tzinfo=dt.UTC)
    rows = [
        (key.encode(), value, topic_name(prefix, EventType(topic)), 0, offset, start + dt.timedelta(seconds=offset), 0)
        for offset, (topic, key, value) in enumerate(log_items(log))
    ]
    validator = EventValidator(prefix, settings.stream.max_payload_bytes)
    catalog = settings.catalog.name
    ensure_tables(spark, catalog, STREAMING_TABLES)
    checkpoint.mkdir()
    (checkpoint / "metadata").write_text(json.dumps({"id": str(uuid.uuid4())}))
    state = recover(spark, catalog, str(checkpoint), dt.timedelta(minutes=10), settings.stream.dedup_max_ids)
    sink = MicroBatchSink.build(
        spark, settings, state, committer=BatchCommitter(catalog, state.stream_id, state.committed_batches)
    )
    size = len(rows) // 4 + 1
    for batch_id, first in enumerate(range(0, len(rows), size)):
        batch = spark.createDataFrame(rows[first : first + size], KAFKA_SCHEMA)
        sink(validator.validate(to_bronze(batch)), batch_id)
    sink.flush()


def _recount(settings: Settings, day: dt.date) -> dict[str, dict[str, Any]]:
    """Per silver table, the day's data-quality columns counted from the lake's rows (docs/metrics.md)."""
    catalog = pyiceberg_catalog(settings)
    table_of_topic = {topic_name(settings.kafka.topic_prefix, e): SILVER[e].name for e in EventType}
    out: dict[str, dict[str, Any]] = {}
    for event_type in EventType:
        silver = catalog.load_table(SILVER[event_type].identifier).scan().to_arrow()
        on_day = silver.filter(pc.equal(silver["event_date"], day))
        out[SILVER[event_type].name] = {
            "rows": on_day.num_rows,
            "late_rows": pc.sum(on_day["is_late"]).as_py() or 0,
            "duplicates": 0,
            "quarantined": 0,
            "quarantine_reasons": Counter(),
            "undated_quarantined": 0,
            "bronze_records": 0,
            "landed": Counter(),
        }
    for record in catalog.load_table(QUARANTINE_EVENTS.identifier).scan().to_arrow().to_pylist():
        counts = out[table_of_topic[record["kafka_topic"]]]
        dated, arrived = record["event_date"], record["kafka_timestamp"].astimezone(dt.UTC).date()
        if (dated or arrived) != day:
            continue
        is_duplicate = "duplicate" in record["failed_rules"]
        key = "undated_quarantined" if dated is None else "duplicates" if is_duplicate else "quarantined"
        counts[key] += 1
        if not is_duplicate:
            counts["quarantine_reasons"].update(record["failed_rules"])
    landed: Counter[tuple[str, int, int]] = Counter()
    for spec in (*SILVER.values(), QUARANTINE_EVENTS):
        columns = ["kafka_topic", "kafka_partition", "kafka_offset"]
        rows = catalog.load_table(spec.identifier).scan(selected_fields=tuple(columns)).to_arrow()
        landed.update(zip(*(rows[c].to_pylist() for c in columns), strict=True))
    bronze = catalog.load_table(BRONZE_EVENTS.identifier).scan().to_arrow().to_pylist()
    for record in bronze:
        if record["kafka_timestamp"].astimezone(dt.UTC).date() == day:
            counts = out[table_of_topic[record["kafka_topic"]]]
            counts["bronze_records"] += 1
            coordinates = (record["kafka_topic"], record["kafka_partition"], record["kafka_offset"])
            counts["landed"][landed[coordinates]] += 1
    for counts in out.values():
        copies = counts.pop("landed")
        counts["conservation_ok"] = set(copies) <= {1}
        counts["quarantine_reasons"] = dict(counts["quarantine_reasons"])
    return out


@pytest.mark.integration
def test_every_data_quality_column_equals_the_oracle_or_a_recount_of_the_lake(
    spark: SparkSession, lake: Settings, tmp_path: Path
) -> None:
    scenario = load_scenario("dirty_stream")
    day = scenario.dates[0]
    log = write_day(tmp_path / "dirty.jsonl", "dirty_stream", seed=5, events=3000)
    _stream_day(spark, lake, log, day, tmp_path / "checkpoint")

    run = GoldRun(spark, lake.catalog.name, lake.kafka.topic_prefix, day, day)
    inputs = run.data_quality()
    gold = {
        row["table_name"]: row.asDict()
        for row in data_quality(
            inputs.silver_df, inputs.quarantine_df, inputs.bronze_df, inputs.landed_df, inputs.table_of_topic, day
        ).collect()
    }
    run.release()
    recount = _recount(lake, day)
    assert set(gold) == set(recount)
    for table, counted in recount.items():
        assert {column: gold[table][column] for column in counted} == counted, table
        assert 0 <= gold[table]["p50_latency_s"] <= gold[table]["p95_latency_s"], table

    # What the oracle knows, independently of the lake: the day's accepted rows, duplicates, rejections.
    known = oracle.data_quality(truth_of([log]))
    expected = {table: want for (d, table), want in known.items() if d == day}
    assert {table: {c: gold[table][c] for c in want} for table, want in expected.items()} == expected
    undated = sum(want["quarantined"] for (d, _), want in known.items() if d is None)
    assert sum(row["undated_quarantined"] for row in gold.values()) == undated > 0, "undated, on their Kafka day"
    assert sum(row["late_rows"] for row in gold.values()) > 0, "the dirty day's late events are flagged"
    assert all(row["quarantine_reasons"] for row in gold.values() if row["quarantined"])
    assert sum(row["bronze_records"] for row in gold.values()) == sum(1 for _ in log_items(log))
