"""What the simulator delivers: a record (topic, key, payload, delivery and event time) and the run's manifest.

A record's bytes are made when it is sent, by :meth:`SimRecord.value`, because its ``timestamp`` depends on the
clock the sink runs on (simulated or live); everything else about a run is fixed by scenario, seed and count.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.contracts.events import EventType


def format_timestamp(instant: dt.datetime) -> str:
    """The contract's timestamp text: UTC, millisecond precision, ``Z`` suffix."""
    return instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{instant.microsecond // 1000:03d}Z"


def simulated_timestamp(start: dt.datetime, offset_ms: int) -> str:
    """The timestamp of the simulated instant ``offset_ms`` after the scenario's ``start``."""
    return format_timestamp(start + dt.timedelta(milliseconds=offset_ms))


def encode_json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class SimEvent:
    """A payload: an event body (``timestamp`` filled in when encoded), optionally broken after encoding
    (``corrupt``), or raw bytes. Encoded once, then reused."""

    body: dict[str, Any] | None
    raw: bytes | None = None
    encoded: bytes | None = None
    corrupt: Callable[[bytes], bytes] | None = None


@dataclass(order=True)
class SimRecord:
    """One Kafka record to deliver. Ordered by delivery time, then by creation."""

    emit_ms: int
    seq: int
    topic: EventType = field(compare=False)
    key: str = field(compare=False)
    event_id: str | None = field(compare=False)
    # "event", "duplicate", "conflicting_duplicate", "restamped_duplicate" or "malformed:<kind>"
    kind: str = field(compare=False)
    event_ms: int = field(compare=False)
    payload: SimEvent = field(compare=False, repr=False)

    def value(self, stamp: Callable[[int], str]) -> bytes:
        """The record's bytes; ``stamp`` turns this record's event time into the ``timestamp`` string.

        A duplicate shares its original's payload, so it repeats the original's bytes exactly.
        """
        event = self.payload
        if event.encoded is None:
            if event.raw is not None:
                event.encoded = event.raw
            else:
                assert event.body is not None
                body = dict(event.body)
                if "timestamp" in body and body["timestamp"] is None:
                    body["timestamp"] = stamp(self.event_ms)
                encoded = encode_json(body)
                event.encoded = event.corrupt(encoded) if event.corrupt is not None else encoded
        return event.encoded


@dataclass
class Manifest:
    """What the generator produced and injected; written beside the output."""

    scenario: str
    seed: int
    events: int = 0
    records: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    duplicates: list[str] = field(default_factory=list)  # event ids delivered twice
    late: list[dict[str, Any]] = field(default_factory=list)  # {"event_id", "delay_ms"}
    malformed: list[dict[str, Any]] = field(default_factory=list)  # {"record", "kind", "topic"}
    schema_v2: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "seed": self.seed,
            "events": self.events,
            "records": self.records,
            "events_by_type": dict(sorted(self.by_type.items())),
            "faults": dict(sorted(self.faults.items())),
            "duplicates": self.duplicates,
            "late": self.late,
            "malformed": self.malformed,
            "schema_v2": self.schema_v2,
        }
