"""Ground truth: the gold metrics a correct pipeline must produce, computed from the emitted records alone.

Independent of ``pipeline/`` on purpose (it imports nothing from it): plain Python over the recorded log, its own
reading of the contract, exact ``Decimal`` arithmetic. When the pipeline and the oracle disagree, one of them
has a bug, and the test that compares them says which metric of which day.

Metric definitions live in ``docs/metrics.md``; each function below cites the one it implements.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from simulation.generator import from_log_line

EVENT_TYPES = {"page_view", "add_to_cart", "purchase", "user_session", "product_update"}
VERSIONS = {1, 2}
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
MONEY = re.compile(r"^\d{1,10}\.\d{2}$")
REQUIRED = {
    "page_view": ("user_id", "session_id", "page_type", "device_type"),
    "add_to_cart": ("user_id", "session_id", "product_id", "quantity", "price", "total_value", "cart_id"),
    "purchase": (
        "user_id",
        "session_id",
        "order_id",
        "items",
        "subtotal",
        "discount_percent",
        "discount_amount",
        "total_amount",
        "payment_method",
        "shipping_method",
        "shipping_address",
    ),
    "user_session": ("user_id", "session_id", "session_type", "device_type"),
    "product_update": ("product_id", "update_type"),
}
CENT = Decimal("0.01")


@dataclass
class Truth:
    """Accepted events (first delivery of each event id) and what was rejected, with why."""

    events: list[dict[str, Any]] = field(default_factory=list)
    records: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # reason -> records

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event_type"] == event_type]


def _money(value: Any) -> Decimal | None:
    return Decimal(value) if isinstance(value, str) and MONEY.match(value) else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def rejection_reason(topic: str, value: bytes, max_payload_bytes: int = 65536) -> str | None:
    """Why a record must not reach silver, or None if it is a valid event."""
    if len(value) > max_payload_bytes:
        return "oversized"
    try:
        event = json.loads(value.decode("utf-8"))
    except UnicodeDecodeError:
        return "invalid_utf8"
    except ValueError:
        return "invalid_json"
    if not isinstance(event, dict):
        return "invalid_json"
    event_type = event.get("event_type")
    if event_type not in EVENT_TYPES:
        return "unknown_event_type"
    if event_type != topic:
        return "event_type_mismatch"
    if event.get("schema_version") not in VERSIONS or isinstance(event.get("schema_version"), bool):
        return "unsupported_schema_version"
    if _is_blank(event.get("event_id")) or not isinstance(event.get("timestamp"), str):
        return "missing_or_invalid_envelope"
    if not TIMESTAMP.match(event["timestamp"]):
        return "invalid_timestamp"
    if any(_is_blank(event.get(name)) for name in REQUIRED[event_type]):
        return "missing_field"
    if event_type == "add_to_cart":
        quantity, price, total = (
            _count(event["quantity"]),
            _money(event["price"]),
            _money(event["total_value"]),
        )
        if quantity is None or price is None or total is None or total != price * quantity:
            return "bad_amount"
    if event_type == "purchase":
        return _purchase_problem(event)
    return None


def _purchase_problem(event: dict[str, Any]) -> str | None:
    items = event["items"]
    if not isinstance(items, list) or not items:
        return "bad_items"
    item_sum = Decimal(0)
    for item in items:
        if not isinstance(item, dict):
            return "bad_items"
        quantity, unit, total = (
            _count(item.get("quantity")),
            _money(item.get("unit_price")),
            _money(item.get("total_price")),
        )
        if quantity is None or unit is None or total is None or total != unit * quantity:
            return "bad_items"
        item_sum += total
    subtotal, total = _money(event["subtotal"]), _money(event["total_amount"])
    discount = _money(event["discount_amount"])
    percent = _money(event["discount_percent"])
    if subtotal is None or total is None or discount is None or percent is None:
        return "bad_amount"
    expected_discount = (subtotal * percent / 100).quantize(CENT, rounding=ROUND_HALF_UP)
    if subtotal != item_sum or discount != expected_discount or total != subtotal - discount or percent > 100:
        return "bad_amount"
    return None


def read_truth(lines: Iterable[tuple[str, str, bytes]], max_payload_bytes: int = 65536) -> Truth:
    """Classify (topic, key, value) records in delivery order: accepted, duplicate or rejected."""
    truth = Truth()
    seen: set[str] = set()
    for topic, _key, value in lines:
        truth.records += 1
        reason = rejection_reason(topic, value, max_payload_bytes)
        if reason is not None:
            truth.rejected[reason] += 1
            continue
        event = json.loads(value)
        if event["event_id"] in seen:
            truth.duplicates += 1
            continue
        seen.add(event["event_id"])
        truth.events.append(event)
    return truth


def read_log(path: Path, max_payload_bytes: int = 65536) -> Truth:
    with path.open(encoding="utf-8") as f:
        return read_truth((from_log_line(line) for line in f), max_payload_bytes)


def event_date(event: dict[str, Any]) -> dt.date:
    return dt.date.fromisoformat(event["timestamp"][:10])


def daily_sales_summary(truth: Truth) -> dict[dt.date, dict[str, Any]]:
    """docs/metrics.md, "Daily sales summary": one row per day that has any accepted event."""
    days: dict[dt.date, dict[str, Any]] = defaultdict(
        lambda: {
            "orders": 0,
            "revenue": Decimal("0.00"),
            "customers": set(),
            "page_views": 0,
            "visitors": set(),
        }
    )
    for event in truth.events:
        day = days[event_date(event)]
        if event["event_type"] == "purchase":
            day["orders"] += 1
            day["revenue"] += Decimal(event["total_amount"])
            day["customers"].add(event["user_id"])
        elif event["event_type"] == "page_view":
            day["page_views"] += 1
            day["visitors"].add(event["user_id"])
    return {
        date: {
            "orders": d["orders"],
            "revenue": d["revenue"],
            "unique_customers": len(d["customers"]),
            "page_views": d["page_views"],
            "visitors": len(d["visitors"]),
        }
        for date, d in sorted(days.items())
    }
