"""How ``shoplake live`` and ``shoplake quarantine summary`` look: rich renderables that fit 80 columns.

The figures come from :mod:`pipeline.live` and :mod:`pipeline.quarantine`; nothing here reads or computes them.
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
from pipeline.quarantine import QuarantineSummary

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


def _topic(topic: str | None, prefix: str) -> str:
    """The event type part of ``<prefix>.<event_type>``; any other topic as it is."""
    if topic is None:
        return "-"
    return topic.removeprefix(prefix + ".")


def quarantine_renderable(
    summary: QuarantineSummary, topic_prefix: str, since: dt.date | None, until: dt.date | None
) -> RenderableType:
    """Records per arrival day, topic and rule, then the first raw values of each rule and topic."""
    if since and until:
        period = f"{since} .. {until}"
    else:
        period = f"from {since}" if since else (f"up to {until}" if until else "all")
    if not summary.records:
        return Text(f"quarantine.events: no record, arrival days (UTC): {period}")
    title = Text(f"quarantine.events: {_count(summary.records, 'record', 'records')}, arrival days (UTC): {period}")
    note = Text(f"topics are {topic_prefix}.<topic>; a record counts once under each rule it failed", "dim")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("day (UTC)", no_wrap=True)
    table.add_column("topic", overflow="fold", max_width=20)
    table.add_column("rule", overflow="fold", max_width=36)
    table.add_column("records", justify="right")
    for row in summary.counts.to_pylist():
        day = row["day"].isoformat() if row["day"] is not None else "-"
        table.add_row(day, _topic(row["kafka_topic"], topic_prefix), row["rule"], f"{row['records']:,}")
    parts: list[RenderableType] = [title, note, table, Text("first raw values to arrive, per rule and topic:", "bold")]
    for group in summary.samples:
        records = _count(group.records, "record", "records")
        heading = f"{group.rule} on {_topic(group.kafka_topic, topic_prefix)} ({records})"
        parts.append(Text(heading, "cyan", overflow="fold"))
        # Payloads are data, never markup: Text objects, control characters already escaped.
        parts.extend(Text(sample, "dim", overflow="fold") for sample in group.samples)
    return Group(*parts)
