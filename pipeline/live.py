"""The real-time view behind ``shoplake live``, read through PyIceberg: no Spark session, a start in a second.

What it shows, to the second:

- per event-time minute and event type: events, purchases (purchase events) and revenue (their
  ``total_amount``), for the last few minutes of event time (ending at the newest minute seen);
- active sessions: sessions whose newest event falls in the last 30 minutes of event time and that saw no
  logout;
- freshness: the oldest record's age when its micro-batch committed (``ops.stream_batches``: ``committed_at -
  kafka_ts_min``), for the newest batch and at most over the last minute of batches.

The roll-ups ``silver.event_minutes`` and ``silver.sessions`` lag silver by up to the fold interval. Each
records ``folded_through``, the ingest time up to which silver is folded into it, so the silver rows ingested
later (the *tail*) are exactly those it does not hold yet; the view aggregates the tail the way the fold would
(:mod:`pipeline.streaming.rollups`) and combines it with the folded rows.

:func:`read_live_view` is the only function here that reads; everything it calls is a pure function of Arrow
tables (timestamps timezone-aware UTC, as PyIceberg returns them), tested on tiny tables.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import AlwaysTrue, BooleanExpression
from pyiceberg.table.snapshots import Operation

from pipeline.catalog import at_least, greater_than, load_table
from pipeline.contracts.events import EventType
from pipeline.tables import EVENT_MINUTES, SESSIONS, SILVER, STREAM_BATCHES

UTC_TIME = pa.timestamp("us", tz="UTC")
MONEY = pa.decimal128(18, 2)
FOLDED_THROUGH = "folded_through"
LOGOUT = "logout"

# Silver rows of every type in one narrow table: the columns the roll-ups need, null where a type lacks them.
TAIL_SCHEMA = pa.schema(
    [
        ("event_type", pa.string()),
        ("event_time", UTC_TIME),
        ("ingest_time", UTC_TIME),
        ("session_id", pa.string()),
        ("session_type", pa.string()),
        ("total_amount", MONEY),
    ]
)
MINUTES_SCHEMA = pa.schema(
    [("minute", UTC_TIME), ("event_type", pa.string()), ("events", pa.int64()), ("purchases", pa.int64()),
     ("revenue", MONEY)]
)  # fmt: skip
SESSIONS_SCHEMA = pa.schema([("session_id", pa.string()), ("ended_at", UTC_TIME), ("has_logout", pa.bool_())])
BATCHES_SCHEMA = pa.schema([("committed_at", UTC_TIME), ("kafka_ts_min", UTC_TIME)])

SESSION_IDLE_MINUTES = 30
FRESHNESS_WINDOW = dt.timedelta(minutes=1)
# ops.stream_batches gets a batch's row while the next batch runs: its snapshot is at most this much younger than
# the row's committed_at. Only rows this close to the newest append are read.
OPS_WRITE_LAG = dt.timedelta(seconds=60)


# -- pure transforms -------------------------------------------------------------------------------------------


def _conform(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    """``rows`` with exactly ``schema``'s columns and types (extra columns dropped)."""
    return rows.select(schema.names).cast(schema)


def newest_folded(folded: pa.Table) -> dt.datetime | None:
    """Where a roll-up is folded to: its newest ``folded_through`` (None: never folded)."""
    return pc.max(folded[FOLDED_THROUGH]).as_py() if folded.num_rows else None


def silver_tail(frames: Mapping[EventType, pa.Table]) -> pa.Table:
    """Silver rows of several event types as one table of :data:`TAIL_SCHEMA`.

    Args:
        frames: per event type, silver rows with at least ``event_time`` and ``ingest_time``.
    """

    def column(event_type: EventType, frame: pa.Table, field: pa.Field) -> pa.Array | pa.ChunkedArray:
        if field.name == "event_type":  # from the table read, as the fold does
            return pa.repeat(pa.scalar(event_type.value), frame.num_rows)
        if field.name in frame.column_names:
            return frame[field.name].cast(field.type)
        return pa.nulls(frame.num_rows, field.type)

    parts = [
        pa.Table.from_arrays([column(event_type, frame, field) for field in TAIL_SCHEMA], schema=TAIL_SCHEMA)
        for event_type, frame in frames.items()
    ]
    return pa.concat_tables(parts) if parts else TAIL_SCHEMA.empty_table()


def filter_ingested_after(tail: pa.Table, after: dt.datetime | None) -> pa.Table:
    """Tail rows ingested after ``after`` (exclusive; None: every row), those a roll-up folded ``after`` lacks."""
    if after is None:
        return tail
    return tail.filter(pc.greater(tail["ingest_time"], pa.scalar(after, UTC_TIME)))


def minute_partials(tail: pa.Table) -> pa.Table:
    """Per event-time minute and type: events, purchases and revenue of ``tail`` (as ``minute_partials`` in
    :mod:`pipeline.streaming.rollups`: only purchases carry revenue; no amount adds 0)."""
    is_purchase = pc.equal(tail["event_type"], EventType.PURCHASE.value)
    rows = pa.table(
        {
            "minute": pc.floor_temporal(tail["event_time"], unit="minute"),
            "event_type": tail["event_type"],
            "purchases": pc.cast(is_purchase, pa.int64()),
            "revenue": pc.if_else(is_purchase, tail["total_amount"], pa.scalar(None, MONEY)),
        }
    )
    grouped = rows.group_by(["minute", "event_type"], use_threads=False).aggregate(
        [([], "count_all"), ("purchases", "sum"), ("revenue", "sum")]
    )
    return _conform(
        pa.table(
            {
                "minute": grouped["minute"],
                "event_type": grouped["event_type"],
                "events": grouped["count_all"],
                "purchases": grouped["purchases_sum"],
                "revenue": pc.fill_null(grouped["revenue_sum"].cast(MONEY), pa.scalar(0, MONEY)),
            }
        ),
        MINUTES_SCHEMA,
    )


def combine_minutes(*parts: pa.Table) -> pa.Table:
    """Per-minute rows (folded rows and partial rows alike) summed into one row per (minute, event type)."""
    rows = pa.concat_tables([_conform(part, MINUTES_SCHEMA) for part in parts])
    grouped = rows.group_by(["minute", "event_type"], use_threads=False).aggregate(
        [("events", "sum"), ("purchases", "sum"), ("revenue", "sum")]
    )
    combined = pa.table(
        {
            "minute": grouped["minute"],
            "event_type": grouped["event_type"],
            "events": pc.fill_null(grouped["events_sum"], 0),
            "purchases": pc.fill_null(grouped["purchases_sum"], 0),
            "revenue": pc.fill_null(grouped["revenue_sum"].cast(MONEY), pa.scalar(0, MONEY)),
        }
    )
    return _conform(combined, MINUTES_SCHEMA).sort_by([("minute", "ascending"), ("event_type", "ascending")])


def recent_minutes(minutes: pa.Table, count: int) -> pa.Table:
    """The rows of the last ``count`` minutes of event time, ending at the newest minute, oldest first."""
    newest = pc.max(minutes["minute"]).as_py() if minutes.num_rows else None
    if newest is None:
        return minutes.slice(0, 0)
    since = pa.scalar(newest - dt.timedelta(minutes=count), UTC_TIME)
    return minutes.filter(pc.greater(minutes["minute"], since))


def session_partials(tail: pa.Table) -> pa.Table:
    """Per session id: newest event time (``ended_at``) and whether a ``user_session`` logout was seen (as
    ``session_partials`` in :mod:`pipeline.streaming.rollups`; product updates belong to no session)."""
    rows = tail.filter(pc.not_equal(tail["event_type"], EventType.PRODUCT_UPDATE.value))
    is_logout = pc.and_(
        pc.equal(rows["event_type"], EventType.USER_SESSION.value),
        pc.fill_null(pc.equal(rows["session_type"], LOGOUT), False),
    )
    return _per_session(
        pa.table({"session_id": rows["session_id"], "ended_at": rows["event_time"], "has_logout": is_logout})
    )


def combine_sessions(*parts: pa.Table) -> pa.Table:
    """Session rows (folded and partial) combined per session id: newest ``ended_at``, any logout."""
    return _per_session(pa.concat_tables([_conform(part, SESSIONS_SCHEMA) for part in parts]))


def _per_session(rows: pa.Table) -> pa.Table:
    """``session_id``, ``ended_at``, ``has_logout`` rows reduced to one per session: newest end, any logout."""
    grouped = rows.group_by("session_id", use_threads=False).aggregate([("ended_at", "max"), ("has_logout", "any")])
    return _conform(
        pa.table(
            {
                "session_id": grouped["session_id"],
                "ended_at": grouped["ended_at_max"],
                "has_logout": pc.fill_null(grouped["has_logout_any"], False),
            }
        ),
        SESSIONS_SCHEMA,
    )


def count_active_sessions(
    sessions: pa.Table, newest_minute: dt.datetime | None, idle_minutes: int = SESSION_IDLE_MINUTES
) -> int:
    """Sessions without a logout whose newest event falls in the last ``idle_minutes`` minutes of event time
    (the minute buckets ending at ``newest_minute``, as the per-minute view counts them)."""
    if newest_minute is None:
        return 0
    since = pa.scalar(newest_minute - dt.timedelta(minutes=idle_minutes - 1), UTC_TIME)
    recent = pc.greater_equal(sessions["ended_at"], since)
    active = pc.and_(recent, pc.invert(pc.fill_null(sessions["has_logout"], False)))
    return int(pc.sum(pc.fill_null(active, False).cast(pa.int64())).as_py() or 0)


@dataclass(frozen=True)
class Freshness:
    """The oldest record's age when its micro-batch committed, in seconds."""

    newest_batch_s: float  # the newest batch's
    max_last_minute_s: float  # the worst over the batches committed in the minute up to the newest
    batches_last_minute: int
    committed_at: dt.datetime  # the newest batch's commit


def freshness(batches: pa.Table, window: dt.timedelta = FRESHNESS_WINDOW) -> Freshness | None:
    """Freshness from ``ops.stream_batches`` rows (``committed_at``, ``kafka_ts_min``); None without a batch.

    Rows missing either time (a batch that read nothing) are left out.
    """
    rows = _conform(batches, BATCHES_SCHEMA)
    rows = rows.filter(pc.and_(pc.is_valid(rows["committed_at"]), pc.is_valid(rows["kafka_ts_min"])))
    if not rows.num_rows:
        return None
    age_s = pc.divide(pc.subtract(rows["committed_at"], rows["kafka_ts_min"]).cast(pa.int64()), 1_000_000.0)
    newest = pc.max(rows["committed_at"])
    is_newest = pc.equal(rows["committed_at"], newest)
    in_window = pc.greater_equal(rows["committed_at"], pa.scalar(newest.as_py() - window, UTC_TIME))
    return Freshness(
        newest_batch_s=pc.max(pc.filter(age_s, is_newest)).as_py(),
        max_last_minute_s=pc.max(pc.filter(age_s, in_window)).as_py(),
        batches_last_minute=int(pc.sum(in_window.cast(pa.int64())).as_py()),
        committed_at=newest.as_py(),
    )


@dataclass(frozen=True)
class LiveView:
    """What ``shoplake live`` shows."""

    minutes: pa.Table  # MINUTES_SCHEMA, the last minutes of event time, oldest first
    newest_minute: dt.datetime | None
    active_sessions: int
    freshness: Freshness | None
    folded_through: dt.datetime | None  # how far the per-minute roll-up is folded; the rest came from the tail
    tail_rows: int  # silver rows not folded yet, combined in


def build_live_view(
    folded_minutes: pa.Table,
    folded_sessions: pa.Table,
    tail: pa.Table,
    batches: pa.Table,
    minutes: int,
    idle_minutes: int = SESSION_IDLE_MINUTES,
) -> LiveView:
    """The view from the folded roll-ups, silver's tail (rows ingested after the older of the two
    ``folded_through``) and recent ``ops.stream_batches`` rows."""
    minutes_through, sessions_through = newest_folded(folded_minutes), newest_folded(folded_sessions)
    minute_tail = filter_ingested_after(tail, minutes_through)
    every_minute = combine_minutes(folded_minutes, minute_partials(minute_tail))
    newest_minute = pc.max(every_minute["minute"]).as_py() if every_minute.num_rows else None
    sessions = combine_sessions(folded_sessions, session_partials(filter_ingested_after(tail, sessions_through)))
    return LiveView(
        minutes=recent_minutes(every_minute, minutes),
        newest_minute=newest_minute,
        active_sessions=count_active_sessions(sessions, newest_minute, idle_minutes),
        freshness=freshness(batches),
        folded_through=minutes_through,
        tail_rows=minute_tail.num_rows,
    )


# -- reads (the edge) ----------------------------------------------------------------------------------------------


def _read(catalog: Catalog, identifier: str, columns: tuple[str, ...], row_filter: BooleanExpression) -> pa.Table:
    return load_table(catalog, identifier).scan(row_filter=row_filter, selected_fields=columns).to_arrow()


def _older(first: dt.datetime | None, second: dt.datetime | None) -> dt.datetime | None:
    return None if first is None or second is None else min(first, second)


def _recent_batches(catalog: Catalog) -> pa.Table:
    """``ops.stream_batches`` rows committed within a minute (plus the write lag) of the newest batch's row."""
    table = load_table(catalog, STREAM_BATCHES.identifier)
    # The newest append carries the newest batch row; later snapshots (maintenance) add no rows.
    newest_append = next(
        (s for s in reversed(table.snapshots()) if s.summary is not None and s.summary.operation is Operation.APPEND),
        None,
    )
    if newest_append is None:
        return BATCHES_SCHEMA.empty_table()
    appended_at = dt.datetime.fromtimestamp(newest_append.timestamp_ms / 1000, dt.UTC)
    since = at_least("committed_at", appended_at - FRESHNESS_WINDOW - OPS_WRITE_LAG)
    return table.scan(row_filter=since, selected_fields=tuple(BATCHES_SCHEMA.names)).to_arrow()


def read_live_view(catalog: Catalog, minutes: int, idle_minutes: int = SESSION_IDLE_MINUTES) -> LiveView:
    """Read the roll-ups, then silver's tail after them, then the newest batches, and build the view.

    The roll-ups are read first: whatever a fold commits meanwhile is then read again from the tail, never missed
    and never counted twice (the tail starts where the roll-up rows read end).
    """
    folded_minutes = _read(catalog, EVENT_MINUTES.identifier, (*MINUTES_SCHEMA.names, FOLDED_THROUGH), AlwaysTrue())
    folded_sessions = _read(catalog, SESSIONS.identifier, (*SESSIONS_SCHEMA.names, FOLDED_THROUGH), AlwaysTrue())
    after = _older(newest_folded(folded_minutes), newest_folded(folded_sessions))
    # Silver is partitioned by event date, not ingest time, but every data file holds one micro-batch's ingest
    # time: the files' column bounds skip everything folded already.
    unfolded = AlwaysTrue() if after is None else greater_than("ingest_time", after)
    frames = {
        event_type: _read(
            catalog,
            spec.identifier,
            tuple(n for n in TAIL_SCHEMA.names if n != "event_type" and n in spec.schema.fieldNames()),
            unfolded,
        )
        for event_type, spec in SILVER.items()
    }
    return build_live_view(
        folded_minutes, folded_sessions, silver_tail(frames), _recent_batches(catalog), minutes, idle_minutes
    )
