"""The fold's read of silver's tail: the snapshots that bound an ingest-time window, and a scan of only the
appends between them, across compaction and expiry."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from pyspark.sql import functions as F

from pipeline.contracts.events import EventType
from pipeline.iceberg_io import ensure_tables, merge_into
from pipeline.streaming.commit import INGEST_TIME_PROPERTY, BatchCommitter, BatchMarkers, TableWrite
from pipeline.streaming.fold import RollupFolder, appends_in_ingest_window, ingest_window_snapshots
from pipeline.tables import SESSIONS, SILVER, STREAMING_TABLES
from tests.unit.test_iceberg_io import _rows_of


def _at(minute: int) -> dt.datetime:
    return dt.datetime(2026, 12, 5, 9, minute, tzinfo=dt.UTC)


def _snapshot(snapshot_id: int, parent: int | None, ingest_minute: int | None, operation: str = "append") -> dict:
    summary = {"operation": operation}
    if ingest_minute is not None:
        summary[INGEST_TIME_PROPERTY] = _at(ingest_minute).isoformat()
    return {"snapshot-id": snapshot_id, "parent-snapshot-id": parent, "summary": summary}


@pytest.mark.parametrize(
    ("after", "through", "bounds"),
    [
        (1, 2, (11, 12)),  # exactly the append stamped 2
        (1, 3, (11, 14)),  # across a compaction, which bounds nothing
        (2, 3, (12, 14)),
        (1, 9, (11, 14)),  # through past the newest append
        (3, 4, (14, 14)),  # nothing appended after 3: an empty window
        (0, 3, None),  # nothing retained at or before 0: only a full scan is sure
    ],
)
def test_the_snapshots_around_an_ingest_window_are_the_newest_appends_at_or_before_its_ends(
    after: int, through: int, bounds: tuple[int, int] | None
) -> None:
    # ingest minute 1 -> 2 -> a compaction -> 3; snapshot 10 (minute 0) has expired.
    snapshots = [_snapshot(11, 10, 1), _snapshot(12, 11, 2), _snapshot(13, 12, None, "replace"), _snapshot(14, 13, 3)]
    metadata = {"current-snapshot-id": 14, "snapshots": snapshots}
    assert ingest_window_snapshots(metadata, _at(after), _at(through)) == bounds


def test_an_append_the_stream_did_not_stamp_leaves_only_a_full_scan_sure() -> None:
    snapshots = [_snapshot(11, None, 1), _snapshot(12, 11, None), _snapshot(13, 12, 3)]
    metadata = {"current-snapshot-id": 13, "snapshots": snapshots}
    assert ingest_window_snapshots(metadata, _at(1), _at(3)) is None
    assert ingest_window_snapshots(metadata, _at(3), _at(4)) == (13, 13), "it lies before the window"


def test_an_ingest_window_reads_only_its_appends_and_every_row_in_it_across_compaction_and_expiry(spark, lake) -> None:
    catalog = lake.catalog.name
    spec = dataclasses.replace(SILVER[EventType.PAGE_VIEW], name="page_views_window")
    ensure_tables(spark, catalog, [spec])
    committer = BatchCommitter(catalog, "stream-w")
    for batch in range(1, 6):
        rows = _rows_of(spark, spec, event_id=[f"e{batch}a", f"e{batch}b"], ingest_time=[_at(batch)] * 2)
        committer.commit(batch, [TableWrite(spec, lambda rows=rows: rows)], BatchMarkers(ingest_time=_at(batch)))

    def scanned(after: int | None, through: int) -> tuple[set[str], set[str]]:
        """The ids the window's rows hold, and the ids of every row its scan read."""
        low = _at(after) if after is not None else None
        scan = appends_in_ingest_window(spark, catalog, spec, low, _at(through))
        ingest = F.col("ingest_time")
        rows = scan.filter(F.coalesce(ingest > F.lit(low), F.lit(True)) & (ingest <= F.lit(_at(through))))
        return {r.event_id for r in rows.collect()}, {r.event_id for r in scan.select("event_id").collect()}

    window = {"e3a", "e3b", "e4a", "e4b"}
    everything = {f"e{batch}{half}" for batch in range(1, 6) for half in "ab"}
    assert scanned(2, 4) == (window, window), "the two appends in the window, nothing else"
    assert scanned(None, 1) == ({"e1a", "e1b"}, everything), "no lower end: the whole table"
    assert scanned(5, 6) == (set(), set()), "nothing appended after the last batch"

    table = spec.qualified(catalog)
    compact = "options => map('min-input-files', '2')"
    spark.sql(f"CALL {catalog}.system.rewrite_data_files(table => '{spec.identifier}', {compact})")
    assert spark.table(f"{table}.files").count() == 1, "compacted"
    assert scanned(2, 4) == (window, window), "the appends' own files are still read after a compaction"

    spark.sql(
        f"CALL {catalog}.system.expire_snapshots(table => '{spec.identifier}', older_than => now(), retain_last => 1)"
    )
    assert scanned(2, 4) == (window, everything), "its snapshots expired: the whole table, filtered"


def test_a_fold_keeps_silvers_tail_out_of_sparks_cache_which_every_append_to_silver_recaches(spark, lake) -> None:
    """A plan cached with ``persist()`` is re-cached by every append to a table it reads, and the stream appends
    to silver every micro-batch: a fold's job reading such a cache beside a batch loses its blocks. The fold's
    tail is checkpointed instead; the cache manager holds nothing of it while the fold merges."""
    catalog = lake.catalog.name
    ensure_tables(spark, catalog, STREAMING_TABLES)
    spec = SILVER[EventType.PAGE_VIEW]
    rows = _rows_of(
        spark,
        spec,
        event_id=["v1", "v2"],
        event_type=["page_view"] * 2,
        session_id=["s1"] * 2,
        user_id=["u1"] * 2,
        event_time=[_at(1), _at(2)],
        event_date=[_at(1).date()] * 2,
        ingest_time=[_at(3)] * 2,
    )
    BatchCommitter(catalog, "stream-f").commit(0, [TableWrite(spec, lambda: rows)], BatchMarkers(ingest_time=_at(3)))
    spark.catalog.clearCache()
    cache_empty_at_each_merge = []

    def merge(spark, sql: str, args: dict, table) -> None:  # type: ignore[no-untyped-def]
        cache_empty_at_each_merge.append(spark._jsparkSession.sharedState().cacheManager().isEmpty())
        merge_into(spark, sql, args, table)

    assert RollupFolder(catalog, dt.timedelta(days=7), merge).fold(spark, _at(4)) == 3  # a session, two minutes
    assert cache_empty_at_each_merge == [True, True]
    assert [r.page_views for r in spark.table(SESSIONS.qualified(catalog)).collect()] == [2]
