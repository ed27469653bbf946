"""Streaming roll-ups kept current by every micro-batch: sessions and per-minute event volume.

Each micro-batch aggregates its own accepted events (pure transforms below) and merges the partial aggregates
into the roll-up table, adding counts and widening time ranges. A late event therefore updates its session or
minute whenever it arrives.

Exactly once: every merged row records the stream id and batch id that last touched it, and the merge skips
rows already touched by this batch. A batch replayed after a crash leaves the rows it had merged untouched and
merges the rest (one MERGE is one atomic commit, so it is all or nothing per batch).

Freshness: a roll-up is as fresh as silver: it commits in the same micro-batch as the events it summarises.

Reach: a merge only looks at target rows from ``stream.rollup_lookback_days`` before the batch's oldest event
(the tables are partitioned by day). An event arriving later than that after its session started opens a
second row for the session instead of updating the first.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.contracts.events import EventType
from pipeline.tables import EVENT_MINUTES, SESSIONS, TableSpec

MONEY = T.DecimalType(18, 2)


def _typed_field(event_type: EventType, name: str) -> Column:
    return F.col(f"_typed_{event_type.value}")[name]


def session_rollup(unique_df: DataFrame, stream_id: Column, batch_id: Column) -> DataFrame:
    """Partial session aggregates of one batch's accepted, deduplicated events (rows of the validator)."""
    is_type = {e: F.col("_event_type") == F.lit(e.value) for e in EventType}
    session_id = F.coalesce(*[_typed_field(e, "session_id") for e in EventType if e is not EventType.PRODUCT_UPDATE])
    user_id = F.coalesce(*[_typed_field(e, "user_id") for e in EventType if e is not EventType.PRODUCT_UPDATE])
    device = F.coalesce(
        _typed_field(EventType.USER_SESSION, "device_type"), _typed_field(EventType.PAGE_VIEW, "device_type")
    )
    return (
        unique_df.filter(~is_type[EventType.PRODUCT_UPDATE])
        .withColumns({"_session_id": session_id, "_user_id": user_id, "_device": device})
        .groupBy("_session_id")
        .agg(
            F.min("_user_id").alias("user_id"),
            F.min("_device").alias("device_type"),
            F.min("event_time").alias("started_at"),
            F.max("event_time").alias("ended_at"),
            F.count_if(is_type[EventType.PAGE_VIEW]).alias("page_views"),
            F.count_if(is_type[EventType.ADD_TO_CART]).alias("carts"),
            F.count_if(is_type[EventType.PURCHASE]).alias("purchases"),
            F.coalesce(F.sum(_typed_field(EventType.PURCHASE, "total_amount")), F.lit(0)).cast(MONEY).alias("revenue"),
            F.bool_or(
                is_type[EventType.USER_SESSION] & (_typed_field(EventType.USER_SESSION, "session_type") == "logout")
            ).alias("has_logout"),
        )
        .withColumnRenamed("_session_id", "session_id")
        .withColumns(
            {
                "duration_s": F.unix_seconds("ended_at") - F.unix_seconds("started_at"),
                "converted": F.col("purchases") > 0,
                "stream_id": stream_id,
                "batch_id": batch_id.cast("long"),
            }
        )
        .select(*SESSIONS.schema.fieldNames())
    )


def minute_rollup(unique_df: DataFrame, stream_id: Column, batch_id: Column) -> DataFrame:
    """Partial per-minute, per-type counts of one batch's accepted, deduplicated events."""
    is_purchase = F.col("_event_type") == F.lit(EventType.PURCHASE.value)
    return (
        unique_df.withColumn("minute", F.date_trunc("minute", F.col("event_time")))
        .groupBy("minute", F.col("_event_type").alias("event_type"))
        .agg(
            F.count("*").alias("events"),
            F.count_if(is_purchase).alias("purchases"),
            F.coalesce(F.sum(_typed_field(EventType.PURCHASE, "total_amount")), F.lit(0)).cast(MONEY).alias("revenue"),
        )
        .withColumns({"stream_id": stream_id, "batch_id": batch_id.cast("long")})
        .select(*EVENT_MINUTES.schema.fieldNames())
    )


@dataclass(frozen=True)
class Rollup:
    """How a table's partial aggregates merge into it: keys, the time column, and how matched rows combine."""

    table: TableSpec
    keys: tuple[str, ...]
    time_column: str  # the target is partitioned by its day; the merge prunes to the days it can touch
    combine: dict[str, str]  # column -> SQL expression over t (target) and s (source)

    def merge_sql(self, catalog: str, source_view: str) -> str:
        """The MERGE statement, with one parameter ``:since``: target rows older than it are not looked at.

        Every name in it comes from the table registry and this module; values are bound, never interpolated.
        """
        on = " AND ".join(f"t.{k} = s.{k}" for k in self.keys)
        prune = f"t.{self.time_column} >= :since"
        sets = ", ".join(f"t.{column} = {expression}" for column, expression in self.combine.items())
        columns = ", ".join(self.table.schema.fieldNames())
        values = ", ".join(f"s.{c}" for c in self.table.schema.fieldNames())
        touched = "t.stream_id = s.stream_id AND t.batch_id >= s.batch_id"
        # Identifiers only: table and column names from the registry, a catalog name the settings validated.
        return (
            f"MERGE INTO {self.table.qualified(catalog)} t USING {source_view} s ON {on} AND {prune} "  # noqa: S608
            f"WHEN MATCHED AND NOT ({touched}) THEN UPDATE SET {sets} "
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
        "stream_id": "s.stream_id",
        "batch_id": "s.batch_id",
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
        "stream_id": "s.stream_id",
        "batch_id": "s.batch_id",
    },
)
