"""Writing a gold day: overwrite its partition and, when the day was built before, record what changed.

This is the one writer of gold tables (the Dagster IO manager calls it). A rebuild of a day keeps the old version
readable by Iceberg time travel, and ``gold.restatements`` records each (row, metric) whose value changed, with
the old and new snapshot ids. What a write reports (rows, and for the sales summary the day's orders, revenue
and the written row) is read back from the snapshot it committed: the materialization's metadata shows what a
reader sees.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.batch.gold import restatements
from pipeline.iceberg_io import append_rows, current_snapshot_id, ensure_table, overwrite_days, read_day
from pipeline.tables import GOLD_DAILY_SALES_SUMMARY, RESTATEMENTS, TableSpec

# Per gold table, the figures of the written day its materialization shows (sums over the day's rows).
HEADLINE_COLUMNS: dict[str, tuple[str, ...]] = {GOLD_DAILY_SALES_SUMMARY.identifier: ("orders", "revenue")}
# Tables whose written day is shown as a preview (column, value) in the materialization.
PREVIEWED: frozenset[str] = frozenset({GOLD_DAILY_SALES_SUMMARY.identifier})


@dataclass(frozen=True)
class GoldDayWrite:
    """What one write of a gold day did."""

    rows: int
    snapshot_id: int | None
    restated_metrics: int
    headline: dict[str, int | Decimal] = field(default_factory=dict)  # e.g. orders, revenue of the day
    preview: list[tuple[str, Any]] = field(default_factory=list)  # (column, value) of the day's first row


def day_headline(spec: TableSpec, day_df: DataFrame) -> dict[str, int | Decimal]:
    """The headline figures of a written gold day (:data:`HEADLINE_COLUMNS`), summed over its rows; a day without
    rows sums to 0. Tables without headline figures get an empty dict."""
    columns = HEADLINE_COLUMNS.get(spec.identifier, ())
    if not columns:
        return {}
    zero = {name: F.lit(0).cast(spec.schema[name].dataType) for name in columns}
    row = day_df.agg(
        *[F.coalesce(F.sum(name), zero[name]).cast(spec.schema[name].dataType).alias(name) for name in columns]
    ).first()
    assert row is not None, "an aggregate is one row"
    return {name: row[name] for name in columns}


def day_preview(spec: TableSpec, day_df: DataFrame) -> list[tuple[str, Any]]:
    """The day's first row (by the table's key) as (column, value) pairs, for tables in :data:`PREVIEWED`."""
    if spec.identifier not in PREVIEWED:
        return []
    first = day_df.orderBy(*spec.key_columns).first() if spec.key_columns else day_df.first()
    return [] if first is None else list(first.asDict().items())


def _day_as_of(spark: SparkSession, catalog: str, spec: TableSpec, day: dt.date, snapshot_id: int | None) -> DataFrame:
    """The day's rows as of a snapshot; no snapshot means the table held nothing yet."""
    if snapshot_id is None:
        return spark.createDataFrame([], spec.schema)
    return read_day(spark, catalog, spec, day, snapshot_id=snapshot_id)


def write_gold_day(df: DataFrame, catalog: str, spec: TableSpec, day: dt.date, *, built_before: bool) -> GoldDayWrite:
    """Overwrite ``day`` of the gold table ``spec`` with ``df`` and record the restatements of a rebuild.

    Args:
        built_before: whether the day was built before (the orchestrator's record). A day whose earlier version
            was empty leaves no rows in the table, so only this flag tells its rebuild from a first build; a day
            with rows in the table counts as built whatever the flag says.
    """
    spark = df.sparkSession
    ensure_table(spark, catalog, spec)
    before = current_snapshot_id(spark, catalog, spec)
    old_df = _day_as_of(spark, catalog, spec, day, before)
    is_rebuild = built_before or not old_df.isEmpty()
    rows = overwrite_days(df, catalog, spec)
    after = current_snapshot_id(spark, catalog, spec)
    restated = 0
    if is_rebuild:
        changes = restatements(
            old_df, _day_as_of(spark, catalog, spec, day, after), spec.key_columns, spec.identifier
        ).withColumns(
            {
                "old_snapshot_id": F.lit(before).cast("long"),
                "new_snapshot_id": F.lit(after).cast("long"),
                "restated_at": F.current_timestamp(),
            }
        )
        ensure_table(spark, catalog, RESTATEMENTS)
        restated = append_rows(changes, catalog, RESTATEMENTS)
    written = _day_as_of(spark, catalog, spec, day, after)
    return GoldDayWrite(
        rows=rows,
        snapshot_id=after,
        restated_metrics=restated,
        headline=day_headline(spec, written),
        preview=day_preview(spec, written),
    )
