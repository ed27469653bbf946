"""The live view's pure transforms on tiny Arrow tables: the tail aggregated as the fold does, combined with the
folded rows, active sessions and freshness. No Spark."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
from rich.console import Console

from pipeline.contracts.events import EventType
from pipeline.live import (
    MINUTES_SCHEMA,
    SESSIONS_SCHEMA,
    build_live_view,
    combine_minutes,
    combine_sessions,
    count_active_sessions,
    filter_ingested_after,
    freshness,
    minute_partials,
    recent_minutes,
    session_partials,
    silver_tail,
)
from shoplake.views import live_renderable

UTC = pa.timestamp("us", tz="UTC")


def at(minute: int, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC) + dt.timedelta(minutes=minute, seconds=second)


def times(*values: dt.datetime | None) -> pa.Array:
    return pa.array(values, UTC)


def tail() -> pa.Table:
    """Silver rows as PyIceberg returns them: each table with its own columns, purchases' amounts decimal(12,2)."""
    page_views = pa.table(
        {
            "event_time": times(at(0, 5), at(0, 50), None),  # a null row: no minute, no session
            "ingest_time": times(at(1), at(2), at(2)),
            "session_id": ["a", "b", None],
        }
    )
    purchases = pa.table(
        {
            "event_time": times(at(1, 1), at(1, 2)),
            "ingest_time": times(at(3), at(3)),
            "session_id": ["a", "a"],
            "total_amount": pa.array([Decimal("12.50"), None], pa.decimal128(12, 2)),
        }
    )
    user_sessions = pa.table(
        {
            "event_time": times(at(1, 30), at(0, 1)),
            "ingest_time": times(at(3), at(3)),
            "session_id": ["b", "c"],
            "session_type": ["logout", None],
        }
    )
    product_updates = pa.table({"event_time": times(at(1, 40)), "ingest_time": times(at(3))})
    return silver_tail(
        {
            EventType.PAGE_VIEW: page_views,
            EventType.PURCHASE: purchases,
            EventType.USER_SESSION: user_sessions,
            EventType.PRODUCT_UPDATE: product_updates,
        }
    )


def minutes(*rows: tuple) -> pa.Table:
    return pa.Table.from_pylist(
        [dict(zip(MINUTES_SCHEMA.names, row, strict=True)) for row in rows], schema=MINUTES_SCHEMA
    )


def test_the_tail_is_counted_per_event_time_minute_and_type_with_revenue_from_purchases_only() -> None:
    got = combine_minutes(minute_partials(tail())).to_pylist()
    assert (
        got
        == minutes(
            (at(0), "page_view", 2, 0, Decimal("0.00")),
            (at(0), "user_session", 1, 0, Decimal("0.00")),
            (at(1), "product_update", 1, 0, Decimal("0.00")),
            (at(1), "purchase", 2, 2, Decimal("12.50")),  # an amount that is null adds nothing
            (at(1), "user_session", 1, 0, Decimal("0.00")),
            (None, "page_view", 1, 0, Decimal("0.00")),
        ).to_pylist()
    )


def test_folded_rows_and_the_unfolded_tail_add_up_per_minute_and_type() -> None:
    folded = minutes((at(1), "purchase", 3, 3, Decimal("30.00")), (at(0), "add_to_cart", 4, 0, Decimal("0.00")))
    got = combine_minutes(folded, minute_partials(filter_ingested_after(tail(), at(2))))
    by_key = {(r["minute"], r["event_type"]): (r["events"], r["revenue"]) for r in got.to_pylist()}
    assert by_key[(at(1), "purchase")] == (5, Decimal("42.50"))
    assert by_key[(at(0), "add_to_cart")] == (4, Decimal("0.00"))
    assert (at(0), "page_view") not in by_key, "rows ingested up to folded_through are in the folded rows already"


def test_only_rows_ingested_after_the_fold_make_the_tail() -> None:
    assert filter_ingested_after(tail(), None).num_rows == 8
    assert filter_ingested_after(tail(), at(2)).num_rows == 5
    assert filter_ingested_after(tail(), at(3)).num_rows == 0


def test_recent_minutes_end_at_the_newest_minute() -> None:
    every = minutes(
        (at(0), "page_view", 1, 0, Decimal("0.00")),
        (at(3), "page_view", 2, 0, Decimal("0.00")),
        (at(4), "purchase", 1, 1, Decimal("9.99")),
        (None, "page_view", 7, 0, Decimal("0.00")),
    )
    assert [r["minute"] for r in recent_minutes(every, 2).to_pylist()] == [at(3), at(4)]
    assert recent_minutes(minutes(), 5).num_rows == 0


def test_sessions_keep_their_newest_event_and_any_logout() -> None:
    partial = session_partials(tail())
    got = {r["session_id"]: (r["ended_at"], r["has_logout"]) for r in partial.to_pylist()}
    assert got == {"a": (at(1, 2), False), "b": (at(1, 30), True), "c": (at(0, 1), False), None: (None, False)}

    folded = pa.Table.from_pylist(
        [
            {"session_id": "a", "ended_at": at(0), "has_logout": True},  # a logout folded earlier stays
            {"session_id": "d", "ended_at": at(-40), "has_logout": None},
        ],
        schema=SESSIONS_SCHEMA,
    )
    rows = combine_sessions(folded, partial).to_pylist()
    combined = {r["session_id"]: (r["ended_at"], r["has_logout"]) for r in rows}
    assert combined["a"] == (at(1, 2), True)
    assert combined["d"] == (at(-40), False)


def test_active_sessions_had_an_event_in_the_last_30_minutes_of_event_time_and_no_logout() -> None:
    sessions = pa.Table.from_pylist(
        [
            {"session_id": "recent", "ended_at": at(-29), "has_logout": False},  # in the 30th minute back
            {"session_id": "idle", "ended_at": at(-30, 59), "has_logout": False},  # in the 31st
            {"session_id": "gone", "ended_at": at(0), "has_logout": True},
            {"session_id": "unknown", "ended_at": None, "has_logout": None},
            {"session_id": "now", "ended_at": at(0, 59), "has_logout": None},
        ],
        schema=SESSIONS_SCHEMA,
    )
    assert count_active_sessions(sessions, at(0)) == 2
    assert count_active_sessions(sessions, None) == 0


def test_freshness_is_the_oldest_records_age_at_commit_now_and_at_worst_over_the_last_minute() -> None:
    batches = pa.table(
        {
            "committed_at": times(at(0), at(1), at(1, 30), at(2), None),
            "kafka_ts_min": times(at(0, -9), at(0, 55), at(1, 20), at(1, 58), at(2)),
            "records": pa.array([1, 2, 3, 4, 5], pa.int64()),
        }
    )
    fresh = freshness(batches)
    assert fresh is not None
    assert (fresh.newest_batch_s, fresh.max_last_minute_s, fresh.batches_last_minute) == (2.0, 10.0, 3)
    assert fresh.committed_at == at(2)
    assert freshness(batches.slice(4)) is None, "a batch without commit time says nothing"


def test_the_view_combines_each_rollup_with_the_tail_after_its_own_fold_and_fits_80_columns() -> None:
    folded_minutes = minutes((at(0), "page_view", 1, 0, Decimal("0.00"))).append_column("folded_through", times(at(1)))
    folded_sessions = pa.Table.from_pylist([], schema=SESSIONS_SCHEMA).append_column("folded_through", times())
    batches = pa.table({"committed_at": times(at(3)), "kafka_ts_min": times(at(2, 58))})
    view = build_live_view(folded_minutes, folded_sessions, tail(), batches, minutes=5)
    assert view.newest_minute == at(1)
    assert view.folded_through == at(1)
    assert view.tail_rows == 7
    by_key = {(r["minute"], r["event_type"]): r["events"] for r in view.minutes.to_pylist()}
    assert by_key[(at(0), "page_view")] == 2  # one folded, one from the tail (the first was folded)
    assert view.active_sessions == 2  # a and c; b logged out; sessions were never folded: all silver counts

    console = Console(width=80, record=True)
    console.print(live_renderable(view, 5, "read at 12:03:00"))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "active sessions: 2" in text
    assert "12.50" in text


def test_the_view_reads_the_rollups_then_only_the_unfolded_tail_and_the_newest_batches(tmp_path) -> None:
    from pyiceberg.catalog import load_catalog

    from pipeline.live import read_live_view
    from pipeline.tables import EVENT_MINUTES, SESSIONS, SILVER, STREAM_BATCHES

    catalog = load_catalog("t", type="sql", uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=tmp_path.as_uri())
    for namespace in ("silver", "ops"):
        catalog.create_namespace(namespace)

    def create(identifier: str, *appends: pa.Table) -> None:
        table = catalog.create_table(identifier, schema=appends[0].schema)
        for rows in appends:
            table.append(rows)

    create(
        EVENT_MINUTES.identifier,
        minutes((at(0), "page_view", 1, 0, Decimal("0.00"))).append_column("folded_through", times(at(1))),
    )
    folded_session = {"session_id": "a", "ended_at": at(0), "has_logout": False, "folded_through": at(1)}
    sessions_schema = SESSIONS_SCHEMA.append(pa.field("folded_through", UTC))
    create(SESSIONS.identifier, pa.Table.from_pylist([folded_session], schema=sessions_schema))
    silver = {"event_time": times(at(0, 10), at(0, 30)), "ingest_time": times(at(1), at(2)), "session_id": ["a", "a"]}
    for event_type, spec in SILVER.items():
        rows = pa.table(silver)
        if event_type is not EventType.PAGE_VIEW:
            rows = rows.slice(0, 0)  # empty
        if event_type is EventType.PURCHASE:
            rows = rows.append_column("total_amount", pa.array([], pa.decimal128(12, 2)))
        if event_type is EventType.USER_SESSION:
            rows = rows.append_column("session_type", pa.array([], pa.string()))
        create(spec.identifier, rows)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def batch(committed_ago: dt.timedelta, oldest_ago: dt.timedelta) -> pa.Table:
        return pa.table({"committed_at": times(now - committed_ago), "kafka_ts_min": times(now - oldest_ago)})

    older = batch(dt.timedelta(minutes=10), dt.timedelta(hours=1))  # not read: long before the newest append
    create(STREAM_BATCHES.identifier, older, batch(dt.timedelta(seconds=1), dt.timedelta(seconds=3)))

    view = read_live_view(catalog, minutes=5)
    assert view.tail_rows == 1, "the row ingested at the fold's folded_through is in the roll-up already"
    assert [(r["minute"], r["event_type"], r["events"]) for r in view.minutes.to_pylist()] == [(at(0), "page_view", 2)]
    assert view.active_sessions == 1
    assert view.freshness is not None
    assert (view.freshness.newest_batch_s, view.freshness.batches_last_minute) == (2.0, 1)
