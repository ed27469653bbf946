"""Writing a gold day: overwrite its partition and, when the day was built before, record what changed.

This is the one writer of gold tables (the Dagster IO manager calls it). A rebuild of a day keeps the old version
readable by Iceberg time travel, and ``gold.restatements`` records each (row, metric) whose value changed, with
the old and new snapshot ids.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.batch.gold import restatements
from pipeline.iceberg_io import append_rows, current_snapshot_id, ensure_table, overwrite_days, read_day
from pipeline.tables import RESTATEMENTS, TableSpec


@dataclass(frozen=True)
class GoldDayWrite:
    """What one write of a gold day did."""

    rows: int
    snapshot_id: int | None
    restated_metrics: int


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
    return GoldDayWrite(rows=rows, snapshot_id=after, restated_metrics=restated)
