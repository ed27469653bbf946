"""Streaming roll-ups folded from silver: sessions and per-minute event volume.

The roll-ups are off the micro-batch's critical path. Silver is the log they are folded from: every silver row
carries the ``ingest_time`` of the micro-batch that wrote it, and the stream makes ingest times strictly
increasing from batch to batch (across restarts too). Every few seconds a *fold* aggregates the silver rows
ingested since the last fold (the *tail*) into partial rows (pure transforms below) and merges them into the
roll-up table, adding counts and widening time ranges. A late event therefore updates its session or minute
whenever it arrives.

Exactly once: each roll-up row records ``folded_through``, the newest ingest time of the fold that last touched
it, and a fold covers exactly the silver rows with ``previous fold < ingest_time <= folded_through``. One MERGE is
one atomic commit, so after a crash the table's ``max(folded_through)`` says precisely where to resume, and the
merge also skips rows a fold with the same or a later ``folded_through`` already touched.

Freshness: a roll-up lags silver by up to the fold interval (``stream.rollup_fold_seconds``); a reader that
needs it to the second combines the folded rows with the tail's partial rows (``pipeline/live.py``).

Reach: a session merge only looks at target rows from ``stream.rollup_lookback_days`` before the tail's oldest
event (the tables are partitioned by day). An event arriving later than that after its session started opens a
second row for the session instead of updating the first. A minute merge looks only at the minutes from the
tail's oldest on: its key is the minute itself, so no older row can match (:meth:`Rollup.oldest_match`).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.contracts.events import EventType
from pipeline.tables import EVENT_MINUTES, SESSIONS, TableSpec

MONEY = T.DecimalType(18, 2)
FOLDED_THROUGH = "folded_through"

SilverFrames = Mapping[EventType, DataFrame]  # silver rows (or a tail of them) per event type


def _session_events(silver: SilverFrames) -> DataFrame:
    """One narrow row per session event: the columns the session roll-up needs, null where a type lacks them."""

    def project(event_type: EventType, df: DataFrame) -> DataFrame:
        columns = set(df.columns)

        def column(name: str, data_type: str) -> Column:
            return F.col(name) if name in columns else F.lit(None).cast(data_type)

        return df.select(
            "session_id",
            "user_id",
            column("device_type", "string").alias("device_type"),
            "event_time",
            F.lit(event_type.value).alias("event_type"),
            column("total_amount", "decimal(18,2)").cast(MONEY).alias("total_amount"),
            column("session_type", "string").alias("session_type"),
        )

    frames = [project(t, df) for t, df in silver.items() if t is not EventType.PRODUCT_UPDATE]
    return functools.reduce(DataFrame.unionByName, frames)


def session_partials(silver: SilverFrames, folded_through: Column) -> DataFrame:
    """Partial session aggregates of accepted, deduplicated silver rows (all of them, or a tail)."""
    is_type = {e: F.col("event_type") == F.lit(e.value) for e in EventType}
    return (
        _session_events(silver)
        .groupBy("session_id")
        .agg(
            F.min("user_id").alias("user_id"),
            F.min("device_type").alias("device_type"),
            F.min("event_time").alias("started_at"),
            F.max("event_time").alias("ended_at"),
            F.count_if(is_type[EventType.PAGE_VIEW]).alias("page_views"),
            F.count_if(is_type[EventType.ADD_TO_CART]).alias("carts"),
            F.count_if(is_type[EventType.PURCHASE]).alias("purchases"),
            F.coalesce(F.sum("total_amount"), F.lit(0)).cast(MONEY).alias("revenue"),
            F.coalesce(
                F.bool_or(is_type[EventType.USER_SESSION] & (F.col("session_type") == "logout")), F.lit(False)
            ).alias("has_logout"),
        )
        .withColumns(
            {
                "duration_s": F.unix_seconds("ended_at") - F.unix_seconds("started_at"),
                "converted": F.col("purchases") > 0,
                FOLDED_THROUGH: folded_through.cast("timestamp"),
            }
        )
        .select(*SESSIONS.schema.fieldNames())
    )


def minute_partials(silver: SilverFrames, folded_through: Column) -> DataFrame:
    """Partial per-minute, per-type counts of accepted, deduplicated silver rows."""

    def project(event_type: EventType, df: DataFrame) -> DataFrame:
        amount = F.col("total_amount") if event_type is EventType.PURCHASE else F.lit(None)
        return df.select("event_time", F.lit(event_type.value).alias("event_type"), amount.cast(MONEY).alias("amount"))

    events = functools.reduce(DataFrame.unionByName, [project(t, df) for t, df in silver.items()])
    return (
        events.withColumn("minute", F.date_trunc("minute", F.col("event_time")))
        .groupBy("minute", "event_type")
        .agg(
            F.count("*").alias("events"),
            F.count_if(F.col("event_type") == F.lit(EventType.PURCHASE.value)).alias("purchases"),
            F.coalesce(F.sum("amount"), F.lit(0)).cast(MONEY).alias("revenue"),
        )
        .withColumn(FOLDED_THROUGH, folded_through.cast("timestamp"))
        .select(*EVENT_MINUTES.schema.fieldNames())
    )


def filter_tail(silver_df: DataFrame, after: Column, through: Column) -> DataFrame:
    """Silver rows ingested after ``after`` (exclusive; null: from the start) up to ``through`` (inclusive)."""
    ingest = F.col("ingest_time")
    return silver_df.filter(F.coalesce(ingest > after, F.lit(True)) & (ingest <= through))


@dataclass(frozen=True)
class Rollup:
    """How a roll-up's partial rows merge into it: keys, the time column, and how matched rows combine."""

    table: TableSpec
    keys: tuple[str, ...]
    time_column: str  # the target is partitioned by its day; the merge prunes to the days it can touch
    combine: dict[str, str]  # column -> SQL expression over t (target) and s (source)

    def oldest_match(self, oldest: dt.datetime, lookback: dt.timedelta) -> dt.datetime:
        """The oldest ``time_column`` a target row matching partial rows whose oldest is ``oldest`` can hold.

        When the time column is one of the keys (a minute), a matching row holds a partial row's own time: the
        merge reads only the target rows from the tail's oldest minute on, however large the table has grown.
        Otherwise (a session started before the tail) it can be up to ``lookback`` older (the reach above).
        """
        return oldest if self.time_column in self.keys else oldest - lookback

    def partials(self, silver: SilverFrames, folded_through: Column) -> DataFrame:
        if self.table is SESSIONS:
            return session_partials(silver, folded_through)
        return minute_partials(silver, folded_through)

    def merge_sql(self, catalog: str, source_view: str) -> str:
        """The MERGE statement, with one parameter ``:since``: target rows older than it are not looked at.

        Every name in it comes from the table registry and this module; values are bound, never interpolated.
        """
        on = " AND ".join(f"t.{k} = s.{k}" for k in self.keys)
        prune = f"t.{self.time_column} >= :since"
        sets = ", ".join(f"t.{column} = {expression}" for column, expression in self.combine.items())
        columns = ", ".join(self.table.schema.fieldNames())
        values = ", ".join(f"s.{c}" for c in self.table.schema.fieldNames())
        # Identifiers only: table and column names from the registry, a catalog name the settings validated.
        return (
            f"MERGE INTO {self.table.qualified(catalog)} t USING {source_view} s ON {on} AND {prune} "  # noqa: S608
            f"WHEN MATCHED AND t.{FOLDED_THROUGH} < s.{FOLDED_THROUGH} THEN UPDATE SET {sets} "
            f"WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({values})"
        )


SESSION_ROLLUP = Rollup(
    SESSIONS,
    keys=("session_id",),
    time_column="started_at",
    combine={
        "user_id": "coalesce(t.user_id, s.user_id)",
        "device_type": "coalesce(t.device_type, s.device_type)",
        "started_at": "least(t.started_at, s.started_at)",
        "ended_at": "greatest(t.ended_at, s.ended_at)",
        "duration_s": (
            "unix_seconds(greatest(t.ended_at, s.ended_at)) - unix_seconds(least(t.started_at, s.started_at))"
        ),
        "page_views": "t.page_views + s.page_views",
        "carts": "t.carts + s.carts",
        "purchases": "t.purchases + s.purchases",
        "revenue": "t.revenue + s.revenue",
        "converted": "t.purchases + s.purchases > 0",
        "has_logout": "t.has_logout OR s.has_logout",
        FOLDED_THROUGH: f"s.{FOLDED_THROUGH}",
    },
)

MINUTE_ROLLUP = Rollup(
    EVENT_MINUTES,
    keys=("minute", "event_type"),
    time_column="minute",
    combine={
        "events": "t.events + s.events",
        "purchases": "t.purchases + s.purchases",
        "revenue": "t.revenue + s.revenue",
        FOLDED_THROUGH: f"s.{FOLDED_THROUGH}",
    },
)

ROLLUPS = (SESSION_ROLLUP, MINUTE_ROLLUP)
