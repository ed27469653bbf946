"""How ``shoplake live`` looks: rich renderables that fit 80 columns.

The figures come from :mod:`pipeline.live`; nothing here reads or computes them.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from pipeline.contracts.events import EventType
from pipeline.live import LiveView

# Per-minute columns: the four other event types, then purchases and revenue (purchases are purchase events).
_TYPE_COLUMNS = (EventType.PAGE_VIEW, EventType.ADD_TO_CART, EventType.USER_SESSION, EventType.PRODUCT_UPDATE)


def _clock(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.UTC).strftime("%H:%M:%S") if moment is not None else "-"


def _money(amount: Decimal) -> str:
    return f"{amount:,.2f}"


def _count(number: int, singular: str, plural: str) -> str:
    return f"{number:,} {singular if number == 1 else plural}"


def live_renderable(view: LiveView, minutes: int, footer: str | None = None) -> RenderableType:
    """The minute table, active sessions, freshness and how much came from silver's unfolded tail."""
    if view.newest_minute is None:
        empty = Text("no events in silver yet (is `shoplake stream` running?)")
        return Group(empty, Text(footer, "dim")) if footer else empty
    newest = view.newest_minute.astimezone(dt.UTC)
    events: dict[dt.datetime, dict[str, int]] = defaultdict(dict)
    purchases: dict[dt.datetime, int] = defaultdict(int)
    revenue: dict[dt.datetime, Decimal] = defaultdict(Decimal)
    for row in view.minutes.to_pylist():
        minute = row["minute"]
        events[minute][row["event_type"]] = row["events"]
        purchases[minute] += row["purchases"]
        revenue[minute] += row["revenue"]
    one_day = all(minute.date() == newest.date() for minute in events)
    table = Table(
        title=f"last {minutes} min of event time, to {newest:%Y-%m-%d %H:%M} UTC",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("minute", no_wrap=True)
    for event_type in _TYPE_COLUMNS:
        table.add_column("\n".join(event_type.value.rsplit("_", 1)), justify="right")
    table.add_column("purchases", justify="right")
    table.add_column("revenue", justify="right")
    for minute, counts in sorted(events.items()):
        label = f"{minute:%H:%M}" if one_day else f"{minute:%m-%d %H:%M}"
        cells = [f"{counts.get(t.value, 0):,}" for t in _TYPE_COLUMNS]
        table.add_row(label, *cells, f"{purchases[minute]:,}", _money(revenue[minute]))
    lines: list[RenderableType] = [
        table,
        Text(f"active sessions: {view.active_sessions:,} (an event in the last 30 min, no logout)"),
    ]
    fresh = view.freshness
    if fresh is None:
        lines.append(Text("freshness: no micro-batch recorded yet"))
    else:
        lines.append(
            Text(
                f"freshness: {fresh.newest_batch_s:.1f} s, the oldest record's age at commit "
                f"(batch of {_clock(fresh.committed_at)} UTC)\n"
                f"           max {fresh.max_last_minute_s:.1f} s over the last minute's "
                f"{_count(fresh.batches_last_minute, 'batch', 'batches')}"
            )
        )
    lines.append(
        Text(f"roll-ups folded to {_clock(view.folded_through)} UTC, + {view.tail_rows:,} newer silver rows", "dim")
    )
    if footer:
        lines.append(Text(footer, "dim"))
    return Group(*lines)
