"""Fault injection: turns the model's events into deliveries with redeliveries (byte for byte, under the same
event id with another payload, or re-stamped with another time), late arrivals, broken records and schema v2
events, as the scenario's fault knobs ask, and notes each in the :class:`Manifest`.
"""

from __future__ import annotations

import copy
import heapq
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from pipeline.contracts.events import EventType, format_decimal
from simulation.edges import conflicting_copy
from simulation.rand import Rand, stable_id
from simulation.records import Manifest, SimEvent, SimRecord
from simulation.scenario import Scenario

MALFORMED_KINDS = (
    "invalid_json",
    "invalid_utf8",
    "wrong_type",
    "missing_field",
    "negative_amount",
    "inconsistent_amount",
    "unknown_event_type",
    "unsupported_version",
    "oversized",
)
OVERSIZED_BYTES = 100_000  # larger than the pipeline's default 64 KiB limit


class FaultInjector:
    """Turns the model's events into deliveries: redeliveries, late arrivals, broken records, schema v2."""

    def __init__(self, scenario: Scenario, seed: int, manifest: Manifest) -> None:
        self.faults = scenario.faults
        self.rand = Rand(seed, scenario.name).child("faults")
        self.seed = seed
        self.scenario = scenario
        self.manifest = manifest
        self.pending: list[SimRecord] = []
        self.seq = 0
        self.malformed_count = 0

    def _push(self, record: SimRecord) -> None:
        heapq.heappush(self.pending, record)

    def _record(
        self,
        emit_ms: int,
        topic: EventType,
        key: str,
        event_id: str | None,
        kind: str,
        event_ms: int,
        payload: SimEvent,
    ) -> SimRecord:
        self.seq += 1
        return SimRecord(emit_ms, self.seq, topic, key, event_id, kind, event_ms, payload)

    def due(self, now_ms: int | None) -> Iterator[SimRecord]:
        """Deliveries due by ``now_ms`` (all of them when None)."""
        while self.pending and (now_ms is None or self.pending[0].emit_ms <= now_ms):
            yield heapq.heappop(self.pending)

    def add(self, t: int, event_type: EventType, key: str, body: dict[str, Any], conflicting: bool = False) -> None:
        """Deliver an event (``conflicting``: always redeliver it with another payload, as scripted edges ask)."""
        f, rand, m = self.faults, self.rand, self.manifest
        event_id = body["event_id"]
        if f.schema_v2_rate and rand.chance(f.schema_v2_rate):
            body["schema_version"] = 2
            body["experiment_id"] = f"exp-{rand.integer(1, 4)}"
            m.schema_v2.append(event_id)
            m.faults["schema_v2"] += 1
        emit = t
        if f.late_rate and rand.chance(f.late_rate):
            delay = int(rand.between(f.late_min_s, f.late_max_s) * 1000)
            emit = t + delay
            m.late.append({"event_id": event_id, "delay_ms": delay})
            m.faults["late"] += 1
        payload = SimEvent(body)
        self._push(self._record(emit, event_type, key, event_id, "event", t, payload))
        if f.duplicate_rate and rand.chance(f.duplicate_rate):
            self._push(self._record(emit + rand.integer(0, 5000), event_type, key, event_id, "duplicate", t, payload))
            m.duplicates.append(event_id)
            m.faults["duplicate"] += 1
        if conflicting or (f.conflicting_duplicate_rate and rand.chance(f.conflicting_duplicate_rate)):
            # Same event id and key, later: the first delivery must win, whatever the second one says.
            other = SimEvent(conflicting_copy(event_type, body))
            delay = rand.integer(0, 5000)
            self._push(self._record(emit + delay, event_type, key, event_id, "conflicting_duplicate", t, other))
            m.duplicates.append(event_id)
            m.faults["conflicting_duplicate"] += 1
        if f.restamped_duplicate_rate and rand.chance(f.restamped_duplicate_rate):
            # The producer retried later and stamped the event anew: the same event, another timestamp. It is still
            # a duplicate: the first delivery wins, whatever either one's time.
            delay = int(rand.between(f.restamp_min_s, f.restamp_max_s) * 1000)
            again = SimEvent(dict(body))
            self._push(self._record(emit + delay, event_type, key, event_id, "restamped_duplicate", t + delay, again))
            m.duplicates.append(event_id)
            m.faults["restamped_duplicate"] += 1
        if f.malformed_rate and rand.chance(f.malformed_rate):
            kind = rand.pick(MALFORMED_KINDS)
            self.malformed_count += 1
            broken = self._malform(kind, event_type, body)
            self._push(self._record(t, event_type, key, None, f"malformed:{kind}", t, broken))
            m.faults[f"malformed:{kind}"] += 1

    def _malform(self, kind: str, event_type: EventType, body: dict[str, Any]) -> SimEvent:
        """A broken copy of ``body`` under a fresh event id (so it is not a redelivery of the original)."""
        bad = copy.deepcopy(body)  # its ``timestamp`` stays unset: the sink stamps it with its own clock
        bad["event_id"] = stable_id(self.seed, self.scenario.name, "malformed", self.malformed_count)
        if kind == "invalid_json":
            return SimEvent(bad, corrupt=lambda text: text[: max(len(text) // 2, 1)])
        if kind == "invalid_utf8":
            return SimEvent(bad, corrupt=lambda text: text.replace(b'"event_id":"', b'"event_id":"\xff\xfe', 1))
        if kind == "unknown_event_type":
            bad["event_type"] = "refund_requested"
        elif kind == "unsupported_version":
            bad["schema_version"] = 3
        elif kind == "oversized":
            bad["metadata"] = {"blob": "x" * OVERSIZED_BYTES}
        elif kind == "wrong_type":
            if event_type is EventType.ADD_TO_CART:
                bad["quantity"] = "three"
            elif event_type is EventType.PURCHASE:
                bad["items"] = "all of them"
            else:
                bad["timestamp"] = 1_700_000_000
        elif kind == "missing_field":
            del bad["product_id" if event_type is EventType.PRODUCT_UPDATE else "user_id"]
        elif kind == "negative_amount" and event_type is EventType.ADD_TO_CART:
            bad["price"] = "-" + bad["price"]
        elif kind == "negative_amount" and event_type is EventType.PURCHASE:
            bad["total_amount"] = "-" + bad["total_amount"]
        elif kind == "inconsistent_amount" and event_type is EventType.ADD_TO_CART:
            bad["total_value"] = format_decimal(Decimal(bad["total_value"]) + 1)
        elif kind == "inconsistent_amount" and event_type is EventType.PURCHASE:
            bad["total_amount"] = format_decimal(Decimal(bad["total_amount"]) + 1)
        else:  # amounts only exist on carts and purchases: break the event type instead
            bad["event_type"] = ""
        return SimEvent(bad)
