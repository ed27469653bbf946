"""Writing gold days: overwrite their partitions and, for the days built before, record what changed.

This is the one writer of gold tables (the Dagster IO manager calls it). A run writes one day or a range of days
in one commit per table. A rebuild of a day keeps the old version readable by Iceberg time travel, and
``gold.restatements`` records each (row, metric) whose value changed, with the old and new snapshot ids. What a
write reports (rows, and for a one-day write of the sales summary the day's orders, revenue and row) is read back
from the snapshot it committed: the materialization's metadata shows what a reader sees.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.batch.gold import restatements
from pipeline.iceberg_io import (
    append_rows,
    current_snapshot_id,
    days_with_rows,
    ensure_table,
    overwrite_day_range,
    read_days,
)
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
    headline: dict[str, int | Decimal] = field(default_factory=dict)  # e.g. orders, revenue of a one-day write
    preview: list[tuple[str, Any]] = field(default_factory=list)  # (column, value) of its first row


def day_headline(spec: TableSpec, day_df: DataFrame) -> dict[str, int | Decimal]:
    """The headline figures of the written gold days (:data:`HEADLINE_COLUMNS`), summed over their rows; no rows
    sum to 0. Tables without headline figures get an empty dict."""
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
    """The first written row (by the table's key) as (column, value) pairs, for tables in :data:`PREVIEWED`."""
    if spec.identifier not in PREVIEWED:
        return []
    first = day_df.orderBy(*spec.key_columns).first() if spec.key_columns else day_df.first()
    return [] if first is None else list(first.asDict().items())


def _days_as_of(
    spark: SparkSession, catalog: str, spec: TableSpec, first: dt.date, last: dt.date, snapshot_id: int | None
) -> DataFrame:
    """The days' rows as of a snapshot; no snapshot means the table held nothing yet."""
    if snapshot_id is None:
        return spark.createDataFrame([], spec.schema)
    return read_days(spark, catalog, spec, first, last, snapshot_id=snapshot_id)


def write_gold_days(
    df: DataFrame,
    catalog: str,
    spec: TableSpec,
    first: dt.date,
    last: dt.date,
    *,
    built_before: Collection[dt.date],
    restate: bool = True,
) -> GoldDayWrite:
    """Replace the days ``first`` .. ``last`` of the gold table ``spec`` with ``df`` (one commit) and record the
    restatements of the days rebuilt.

    Args:
        built_before: the days of the range built before (the orchestrator's record). A day whose earlier version
            was empty leaves no rows in the table, so only this tells its rebuild from a first build; a day with
            rows in the table counts as built whatever it says.
        restate: whether to record restatements (not for internal state tables, whose changes show in the
            published tables computed from them).
    """
    spark = df.sparkSession
    ensure_table(spark, catalog, spec)
    before = current_snapshot_id(spark, catalog, spec)
    old_df = _days_as_of(spark, catalog, spec, first, last, before)
    rebuilt: set[dt.date] = set()
    if restate:
        rebuilt = {day for day in built_before if first <= day <= last}
        if before is not None:
            rebuilt |= days_with_rows(spark, catalog, spec, first, last, before)
    write = overwrite_day_range(df, catalog, spec, first, last, head=before)
    after, rows = write.snapshot_id, write.rows
    restated = 0
    if rebuilt:
        changes = (
            restatements(
                old_df, _days_as_of(spark, catalog, spec, first, last, after), spec.key_columns, spec.identifier
            )
            .filter(F.col("event_date").isin(sorted(rebuilt)))
            .withColumns(
                {
                    "old_snapshot_id": F.lit(before).cast("long"),
                    "new_snapshot_id": F.lit(after).cast("long"),
                    "restated_at": F.current_timestamp(),
                }
            )
        )
        ensure_table(spark, catalog, RESTATEMENTS)
        restated = append_rows(changes, catalog, RESTATEMENTS)
    if first != last:
        # A range run's metadata is recorded on each of its days: a day's own figures cannot be told from it.
        return GoldDayWrite(rows=rows, snapshot_id=after, restated_metrics=restated)
    written = _days_as_of(spark, catalog, spec, first, last, after)
    return GoldDayWrite(
        rows=rows,
        snapshot_id=after,
        restated_metrics=restated,
        headline=day_headline(spec, written),
        preview=day_preview(spec, written),
    )


def write_gold_day(df: DataFrame, catalog: str, spec: TableSpec, day: dt.date, *, built_before: bool) -> GoldDayWrite:
    """Overwrite ``day`` of the gold table ``spec`` with ``df`` and record the restatements of a rebuild (see
    ``write_gold_days``)."""
    return write_gold_days(df, catalog, spec, day, day, built_before={day} if built_before else set())
