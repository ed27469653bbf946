"""What quarantine holds, to act on: records per rule, topic and arrival day, with a few raw values per rule.

A quarantined record carries every rule it failed (``failed_rules``, ids documented in
:mod:`pipeline.streaming.silver`); the summary counts a record once under each distinct rule it failed, so the
counts of one (topic, day) can add up to more than its records. The day is the UTC date of the record's Kafka
timestamp, the day it arrived and the table's partition.

:func:`read_quarantine` is the only function here that reads (PyIceberg, pruned to the requested days); the
rest are pure functions of Arrow tables.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import AlwaysTrue, And, BooleanExpression

from pipeline.catalog import at_least, less_than, load_table
from pipeline.tables import KAFKA_COORDINATES, QUARANTINE_EVENTS

NO_RULE = "(none)"  # a quarantined record without a rule id: not written by the stream, but shown if present
SAMPLES_PER_RULE = 3
SAMPLE_CHARS = 80
COLUMNS = (*KAFKA_COORDINATES, "kafka_timestamp", "value", "failed_rules")


def arrival_filter(since: dt.date | None, until: dt.date | None) -> BooleanExpression:
    """Records whose Kafka timestamp falls on ``since`` .. ``until`` (UTC days, inclusive; None: open).

    A range on the partition source column: PyIceberg prunes to the ``days(kafka_timestamp)`` partitions.
    """

    def midnight(day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(), dt.UTC)

    bounds: list[BooleanExpression] = []
    if since is not None:
        bounds.append(at_least("kafka_timestamp", midnight(since)))
    if until is not None:
        bounds.append(less_than("kafka_timestamp", midnight(until + dt.timedelta(days=1))))
    if not bounds:
        return AlwaysTrue()
    return bounds[0] if len(bounds) == 1 else And(bounds[0], bounds[1])


def rule_rows(records: pa.Table) -> pa.Table:
    """One row per record and distinct rule it failed: ``record`` (row index in ``records``), ``rule``,
    ``kafka_topic``, ``day`` (UTC date of the Kafka timestamp). A record with no rule (null or empty list) gets
    one row with rule :data:`NO_RULE`, so every record is counted somewhere."""
    rules = records["failed_rules"]
    no_rule = pc.fill_null(pc.equal(pc.list_value_length(rules), 0), True)
    with_rule = pa.table(
        {"record": pc.list_parent_indices(rules), "rule": pc.list_flatten(rules)}
    )  # list_flatten skips null lists
    without = pa.table(
        {
            "record": pc.indices_nonzero(no_rule),
            "rule": pa.repeat(pa.scalar(NO_RULE), pc.sum(no_rule.cast(pa.int64())).as_py() or 0),
        }
    )
    pairs = (
        pa.concat_tables([with_rule.cast(without.schema), without])
        .group_by(["record", "rule"], use_threads=False)
        .aggregate([])
    )  # a rule listed twice for one record counts once
    rule = pc.fill_null(pairs["rule"], NO_RULE)
    day = pc.cast(records["kafka_timestamp"], pa.date32())
    return pa.table(
        {
            "record": pairs["record"],
            "rule": rule,
            "kafka_topic": pc.take(records["kafka_topic"], pairs["record"]),
            "day": pc.take(day, pairs["record"]),
        }
    )


def reason_counts(records: pa.Table) -> pa.Table:
    """Records per (``day``, ``kafka_topic``, ``rule``), as ``records``; ordered by day, topic, rule."""
    counts = (
        rule_rows(records)
        .group_by(["day", "kafka_topic", "rule"], use_threads=False)
        .aggregate([("record", "count")])
        .rename_columns(["day", "kafka_topic", "rule", "records"])
    )
    order = [("day", "ascending"), ("kafka_topic", "ascending"), ("rule", "ascending")]
    return counts.select(["day", "kafka_topic", "rule", "records"]).sort_by(order)


def safe_text(value: bytes | None, limit: int = SAMPLE_CHARS) -> str:
    """A raw value fit to print: UTF-8 with replacement characters, control characters escaped, at most ``limit``
    characters (an ellipsis marks a cut)."""
    if value is None:
        return "(no value)"
    text = value[: limit * 4].decode("utf-8", errors="replace")  # enough bytes for ``limit`` characters
    shown = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    if len(shown) > limit or len(value) > limit * 4:
        return shown[: limit - 1] + "…"
    return shown


@dataclass(frozen=True)
class RuleSamples:
    rule: str
    kafka_topic: str | None
    records: int
    samples: list[str]


def rule_samples(records: pa.Table, per_rule: int = SAMPLES_PER_RULE, limit: int = SAMPLE_CHARS) -> list[RuleSamples]:
    """Per (rule, topic): its records and the raw values of the first ``per_rule`` to arrive (Kafka timestamp,
    then partition and offset), made safe to print; ordered by rule and topic."""
    order = pc.sort_indices(
        records,
        sort_keys=[("kafka_timestamp", "ascending"), ("kafka_partition", "ascending"), ("kafka_offset", "ascending")],
    )  # nulls last
    arrival = pc.sort_indices(order).cast(pa.int64())  # each record's place in arrival order
    rows = rule_rows(records)
    rows = rows.append_column("arrival", pc.take(arrival, rows["record"])).sort_by("arrival")
    grouped = rows.group_by(["rule", "kafka_topic"], use_threads=False).aggregate([("record", "list")])
    values = records["value"]
    out = [
        RuleSamples(
            rule=row["rule"],
            kafka_topic=row["kafka_topic"],
            records=len(row["record_list"]),
            samples=[safe_text(values[i].as_py(), limit) for i in row["record_list"][:per_rule]],
        )
        for row in grouped.to_pylist()
    ]
    return sorted(out, key=lambda s: (s.rule, s.kafka_topic or ""))


@dataclass(frozen=True)
class QuarantineSummary:
    records: int
    counts: pa.Table  # day, kafka_topic, rule, records
    samples: list[RuleSamples]


def summarize(records: pa.Table) -> QuarantineSummary:
    return QuarantineSummary(records.num_rows, reason_counts(records), rule_samples(records))


def read_quarantine(catalog: Catalog, since: dt.date | None, until: dt.date | None) -> pa.Table:
    """Quarantined records that arrived on ``since`` .. ``until`` (UTC days, inclusive), the columns the summary
    needs."""
    table = load_table(catalog, QUARANTINE_EVENTS.identifier)
    return table.scan(row_filter=arrival_filter(since, until), selected_fields=COLUMNS).to_arrow()
