"""The stream's commit protocol: markers in snapshot summaries, read back from the metadata; a committer that
commits each table's share of a batch once and skips what a replay finds already written."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.iceberg_io import ensure_tables, snapshot_summaries
from pipeline.streaming.commit import (
    BATCH_ID_PROPERTY,
    INGEST_TIME_PROPERTY,
    MAX_EVENT_TIME_PROPERTY,
    BatchCommitter,
    BatchMarkers,
    TableWrite,
    iceberg_append,
    stream_commits,
)
from pipeline.tables import STREAM_BATCHES, TableSpec

T0 = dt.datetime(2026, 12, 3, 10, 0, tzinfo=dt.UTC)


def _table(spark: SparkSession, lake, name: str) -> tuple[str, TableSpec]:
    catalog, spec = lake.catalog.name, dataclasses.replace(STREAM_BATCHES, name=name)
    ensure_tables(spark, catalog, [spec])
    return catalog, spec


def _rows(spark: SparkSession, spec: TableSpec, stream_id: str, batch_id: int) -> DataFrame:
    """One row of ``spec`` (an ``ops.stream_batches`` copy) naming the stream and batch; other columns null."""
    return spark.range(1).select(
        *[
            (F.lit(stream_id) if f.name == "stream_id" else F.lit(batch_id) if f.name == "batch_id" else F.lit(None))
            .cast(f.dataType)
            .alias(f.name)
            for f in spec.schema.fields
        ]
    )


def test_the_markers_of_every_snapshot_are_read_back_from_the_table_metadata(spark, lake) -> None:
    catalog, spec = _table(spark, lake, "stream_batches_markers")
    assert stream_commits(spark, catalog, (spec,)) == []
    ours = BatchCommitter(catalog, "stream-a")
    markers = BatchMarkers(ingest_time=T0, max_event_time=T0 - dt.timedelta(minutes=1))
    ours.commit(0, [TableWrite(spec, lambda: _rows(spark, spec, "stream-a", 0))], markers)
    ours.commit(1, [TableWrite(spec, lambda: _rows(spark, spec, "stream-a", 1))])
    spark.sql(f"DELETE FROM {spec.qualified(catalog)} WHERE batch_id = 0")  # a snapshot without markers
    BatchCommitter(catalog, "stream-b").commit(7, [TableWrite(spec, lambda: _rows(spark, spec, "stream-b", 7))])

    summaries = snapshot_summaries(spark, catalog, spec)
    assert [s.get(BATCH_ID_PROPERTY) for s in summaries] == ["0", "1", None, "7"]
    assert summaries[0][INGEST_TIME_PROPERTY] == "2026-12-03T10:00:00+00:00"
    assert summaries[0][MAX_EVENT_TIME_PROPERTY] == "2026-12-03T09:59:00+00:00"
    commits = stream_commits(spark, catalog, (spec,))
    assert [(c.table, c.stream_id, c.batch_id, c.ingest_time) for c in commits] == [
        (spec.identifier, "stream-a", 0, T0),
        (spec.identifier, "stream-a", 1, None),
        (spec.identifier, "stream-b", 7, None),
    ]


def test_a_replayed_batch_writes_only_the_tables_that_do_not_hold_it_and_a_failed_write_is_raised(spark, lake) -> None:
    catalog, first = _table(spark, lake, "stream_batches_replay_a")
    _, second = _table(spark, lake, "stream_batches_replay_b")
    built: list[str] = []

    def write(spec: TableSpec, batch_id: int) -> TableWrite:
        def rows() -> DataFrame:
            built.append(spec.name)
            return _rows(spark, spec, "s", batch_id)

        return TableWrite(spec, rows)

    def failing_on_second(rows: DataFrame, catalog: str, spec: TableSpec, properties: dict[str, str]) -> None:
        if spec == second:
            raise RuntimeError("the driver dies here")
        iceberg_append(rows, catalog, spec, properties)

    dying = BatchCommitter(catalog, "s", append=failing_on_second)
    with pytest.raises(RuntimeError, match="dies here"):
        dying.commit(0, [write(first, 0), write(second, 0)])

    # The restarted driver recovers the highest batch each table holds, and replays batch 0.
    held = {c.table: c.batch_id for c in stream_commits(spark, catalog, (first, second))}
    assert held == {first.identifier: 0}
    restarted = BatchCommitter(catalog, "s", committed={first.identifier: 0, second.identifier: -1})
    built.clear()
    assert restarted.commit(0, [write(first, 0), write(second, 0)]) == [second.identifier]
    assert built == [second.name], "the rows of a table that holds the batch are never built"
    assert [spark.table(s.qualified(catalog)).count() for s in (first, second)] == [1, 1]
    assert restarted.commit(0, [write(first, 0), write(second, 0)]) == []
