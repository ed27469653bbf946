"""Quarantine replay: re-send the kept raw records of one rule to Kafka once the contract or the producer is fixed.

A replayed record is the record as it first arrived: its original topic, its key (kept in bronze, found by the
record's Kafka coordinates) and its value byte for byte, so its event id is unchanged. The stream then treats it
like any delivery: it lands in silver if it now passes the contract, in quarantine again if it still fails, and
in quarantine as a ``duplicate`` if its event id is already in silver (a record replayed twice). Silver keeps one
row per event id, so a replay can never make an event count twice. What this means for the conservation audit:
docs/operations.md.

The original record stays where it is (its offset in quarantine, under the rule it failed). Every replay, dry
runs included, is recorded in ``ops.quarantine_replays``.

:func:`read_replay` is the only function here that reads, :func:`send_records` the only one that sends and
:func:`record_replay` the only one that writes; the selection in between is pure functions of Arrow tables.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import socket
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import And

from pipeline.catalog import append_rows, at_least, at_most, load_table
from pipeline.errors import ShoplakeError
from pipeline.quarantine import read_quarantine, rule_rows
from pipeline.streaming.silver import DUPLICATE_RULE
from pipeline.tables import BRONZE_EVENTS, KAFKA_COORDINATES, QUARANTINE_REPLAYS

ARRIVAL = [("kafka_timestamp", "ascending"), ("kafka_partition", "ascending"), ("kafka_offset", "ascending")]
RECORD_SCHEMA = pa.schema([("kafka_topic", pa.string()), ("kafka_key", pa.binary()), ("value", pa.binary())])


class ReplayError(ShoplakeError, ValueError):
    """A replay that cannot be done as asked (a rule whose records must not be re-sent, a failed send)."""


def check_rule(rule: str) -> str:
    """The rule id to replay; ``duplicate`` is refused: such a record's event is in silver already."""
    if not rule.strip():
        raise ReplayError("the rule is empty: give a rule id as `shoplake quarantine summary` lists them")
    if rule == DUPLICATE_RULE:
        raise ReplayError(
            "records quarantined as duplicates are already in silver under their event id: replaying them only "
            "adds duplicates"
        )
    return rule


def filter_rule(records: pa.Table, rule: str) -> pa.Table:
    """The quarantined records that failed ``rule`` (possibly among other rules), in arrival order."""
    rows = rule_rows(records)
    indices = pc.unique(rows.filter(pc.equal(rows["rule"], rule))["record"])
    return records.take(indices).sort_by(ARRIVAL)


def with_keys(records: pa.Table, bronze_keys: pa.Table) -> pa.Table:
    """Coordinates, Kafka timestamp and value of ``records`` with ``kafka_key`` from the bronze row of the same
    coordinates (null where none), in arrival order."""
    keys = bronze_keys.select([*KAFKA_COORDINATES, "kafka_key"])
    wanted = records.select([*KAFKA_COORDINATES, "kafka_timestamp", "value"])  # joins carry no list columns
    return wanted.join(keys, keys=list(KAFKA_COORDINATES), join_type="left outer", use_threads=False).sort_by(ARRIVAL)


def distinct_records(keyed: pa.Table) -> pa.Table:
    """One row (``kafka_topic``, ``kafka_key``, ``value``) per distinct raw record, in order of first arrival.

    The same bytes quarantined twice (a record sent twice, or replayed before and quarantined again) are sent
    once: a second copy could only land as a duplicate.
    """
    numbered = keyed.sort_by(ARRIVAL).append_column("arrival", pa.array(range(keyed.num_rows), pa.int64()))
    first = numbered.group_by(list(RECORD_SCHEMA.names), use_threads=False).aggregate([("arrival", "min")])
    return first.sort_by("arrival_min").select(RECORD_SCHEMA.names).cast(RECORD_SCHEMA)


def read_replay(catalog: Catalog, rule: str, since: dt.date | None, until: dt.date | None) -> pa.Table:
    """The distinct raw records of ``rule`` that arrived on ``since`` .. ``until`` (UTC days, inclusive), with
    their keys, as :data:`RECORD_SCHEMA` rows in order of first arrival."""
    rule = check_rule(rule)
    selected = filter_rule(read_quarantine(catalog, since, until), rule)
    if not selected.num_rows:
        return RECORD_SCHEMA.empty_table()
    # The bronze copy of a record has its Kafka timestamp: the range of the selected ones prunes bronze's days.
    first, last = pc.min(selected["kafka_timestamp"]).as_py(), pc.max(selected["kafka_timestamp"]).as_py()
    window = And(at_least("kafka_timestamp", first), at_most("kafka_timestamp", last))
    bronze = load_table(catalog, BRONZE_EVENTS.identifier).scan(
        row_filter=window, selected_fields=(*KAFKA_COORDINATES, "kafka_key")
    )
    return distinct_records(with_keys(selected, bronze.to_arrow()))


def per_topic(records: pa.Table) -> dict[str, int]:
    """How many records go to each topic, by topic name."""
    return dict(sorted(Counter(records["kafka_topic"].to_pylist()).items()))


class Producer(Protocol):
    def send(self, topic: str, value: bytes | None = ..., key: bytes | None = ...) -> object: ...

    def flush(self) -> None: ...


def send_records(producer: Producer, records: pa.Table) -> int:
    """Send each record to its original topic with its key and value; returns how many. Fails if any failed."""
    errors: list[BaseException] = []
    for row in records.to_pylist():
        future = producer.send(row["kafka_topic"], value=row["value"], key=row["kafka_key"])
        future.add_errback(errors.append)  # type: ignore[attr-defined]
    producer.flush()
    if errors:
        raise ReplayError(f"{len(errors)} of {records.num_rows} record(s) were not delivered: {errors[0]!r}")
    return records.num_rows


def operator() -> str:
    """Who replays: the OS user and host, ``user@host``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class Replay:
    """One replay as recorded in ``ops.quarantine_replays``."""

    rule: str
    since: dt.date | None
    until: dt.date | None
    records: int
    is_dry_run: bool
    replayed_by: str
    replayed_at: dt.datetime


def record_replay(catalog: Catalog, replay: Replay) -> None:
    """Append the replay to ``ops.quarantine_replays`` (created on first use)."""
    row = {
        "replayed_at": replay.replayed_at,
        "replayed_by": replay.replayed_by,
        "rule": replay.rule,
        "since": replay.since,
        "until": replay.until,
        "records": replay.records,
        "is_dry_run": replay.is_dry_run,
    }
    append_rows(catalog, QUARANTINE_REPLAYS, [row])
