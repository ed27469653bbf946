"""Time travel: which snapshot a snapshot id or a moment names, read with PyIceberg on a local SQL catalog."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog import load_catalog
from pyiceberg.table import Table

from pipeline.catalog import SnapshotNotFoundError, snapshot_as_of


@pytest.fixture
def table(tmp_path: Path) -> Table:
    catalog = load_catalog("t", type="sql", uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=tmp_path.as_uri())
    catalog.create_namespace("gold")
    rows = pa.table({"orders": pa.array([1, None], pa.int64())})
    created = catalog.create_table("gold.daily", schema=rows.schema)
    created.append(rows)
    created.append(rows)
    return catalog.load_table("gold.daily")


def test_no_as_of_reads_the_current_state(table: Table) -> None:
    assert snapshot_as_of(table, None) is None


def test_a_snapshot_id_is_checked_and_kept(table: Table) -> None:
    first = table.snapshots()[0].snapshot_id
    assert snapshot_as_of(table, first) == first
    with pytest.raises(SnapshotNotFoundError, match=r"gold\.daily has no snapshot 42"):
        snapshot_as_of(table, 42)


def test_a_moment_names_the_snapshot_current_then_and_naive_times_are_utc(table: Table) -> None:
    first, second = table.snapshots()
    at_first = dt.datetime.fromtimestamp(first.timestamp_ms / 1000, dt.UTC)
    assert snapshot_as_of(table, at_first) == first.snapshot_id
    later = dt.datetime.fromtimestamp(second.timestamp_ms / 1000 + 60, dt.UTC)
    assert snapshot_as_of(table, later.replace(tzinfo=None)) == second.snapshot_id
    with pytest.raises(SnapshotNotFoundError, match="did not exist yet"):
        snapshot_as_of(table, at_first - dt.timedelta(days=1))
