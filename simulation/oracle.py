"""Ground truth: the gold metrics a correct pipeline must produce, computed from the emitted records alone.

Independent of ``pipeline/`` on purpose (it imports nothing from it, a unit test checks): plain Python over the
recorded log, its own reading of the contract, exact ``Decimal`` arithmetic. When the pipeline and the oracle
disagree, one of them has a bug, and the test that compares them says which metric of which day.

Metric definitions live in ``docs/metrics.md``; each function below cites the one it implements.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from simulation.logfile import from_log_line

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
    # (topic, event date or None when unreadable, "duplicate" or the rejection reason), one per quarantined record
    quarantined: list[tuple[str, dt.date | None, str]] = field(default_factory=list)

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
    except (ValueError, RecursionError):  # RecursionError: nested deeper than any real event
        return "invalid_json"
    if not isinstance(event, dict):
        return "invalid_json"
    event_type = event.get("event_type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        return "unknown_event_type"
    if event_type != topic:
        return "event_type_mismatch"
    version = event.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version not in VERSIONS:
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
            truth.quarantined.append((topic, _readable_date(value, max_payload_bytes), reason))
            continue
        event = json.loads(value)
        if event["event_id"] in seen:
            truth.duplicates += 1
            truth.quarantined.append((topic, event_date(event), "duplicate"))
            continue
        seen.add(event["event_id"])
        truth.events.append(event)
    return truth


def _readable_date(value: bytes, max_payload_bytes: int) -> dt.date | None:
    """The event date of a rejected record, when its JSON and timestamp can be read at all."""
    if len(value) > max_payload_bytes:
        return None
    try:
        event = json.loads(value.decode("utf-8"))
    except (ValueError, RecursionError):  # includes UnicodeDecodeError
        return None
    timestamp = event.get("timestamp") if isinstance(event, dict) else None
    if isinstance(timestamp, str) and TIMESTAMP.match(timestamp):
        try:
            return dt.date.fromisoformat(timestamp[:10])
        except ValueError:
            return None
    return None


def read_log(path: Path, max_payload_bytes: int = 65536) -> Truth:
    with path.open(encoding="utf-8") as f:
        return read_truth((from_log_line(line) for line in f), max_payload_bytes)


def event_date(event: dict[str, Any]) -> dt.date:
    return dt.date.fromisoformat(event["timestamp"][:10])


CENTS = Decimal("0.01")
RATE = Decimal("0.000001")


def ratio(numerator: Decimal | int, denominator: Decimal | int, unit: Decimal) -> Decimal | None:
    """``numerator / denominator`` rounded half away from zero to ``unit``, exactly (integer arithmetic); None for
    x/0. The denominator is never negative."""
    if not denominator:
        return None
    # Scale everything to integers: n / d in units of `unit` is (n / unit) / d.
    scale = 10 ** max(-Decimal(numerator).as_tuple().exponent, -Decimal(denominator).as_tuple().exponent, 0)  # type: ignore[operator]
    n, d = int(Decimal(numerator) * scale), int(Decimal(denominator) * scale)
    steps = int(1 / unit)
    quotient = (2 * abs(n) * steps + d) // (2 * d)  # half up, for |n| >= 0 and d > 0
    return (Decimal(quotient if n >= 0 else -quotient) / steps).quantize(unit)


def _by_day(truth: Truth) -> dict[dt.date, list[dict[str, Any]]]:
    days: dict[dt.date, list[dict[str, Any]]] = defaultdict(list)
    for event in truth.events:
        days[event_date(event)].append(event)
    return dict(sorted(days.items()))


def daily_sales_summary(truth: Truth) -> dict[dt.date, dict[str, Any]]:
    """docs/metrics.md, ``gold.daily_sales_summary``: one row per day that has any accepted event."""
    out = {}
    for day, events in _by_day(truth).items():
        purchases = [e for e in events if e["event_type"] == "purchase"]
        views = [e for e in events if e["event_type"] == "page_view"]
        revenue = sum((Decimal(p["total_amount"]) for p in purchases), Decimal("0.00"))
        sessions = {e["session_id"] for e in events if e.get("session_id")}
        converted = {p["session_id"] for p in purchases}
        visitors = {v["user_id"] for v in views}
        methods = Counter(p["payment_method"] for p in purchases)
        out[day] = {
            "orders": len(purchases),
            "revenue": revenue,
            "gross_revenue": sum((Decimal(p["subtotal"]) for p in purchases), Decimal("0.00")),
            "discount_total": sum((Decimal(p["discount_amount"]) for p in purchases), Decimal("0.00")),
            "average_order_value": ratio(revenue, len(purchases), CENTS),
            "units": sum(i["quantity"] for p in purchases for i in p["items"]),
            "unique_customers": len({p["user_id"] for p in purchases}),
            "page_views": len(views),
            "visitors": len(visitors),
            "sessions": len(sessions),
            "converted_sessions": len(converted),
            "conversion_rate": ratio(len(converted), len(sessions), RATE),
            "revenue_per_visitor": ratio(revenue, len(visitors), CENTS),
            "top_payment_method": min(methods, key=lambda m: (-methods[m], m)) if methods else None,
        }
    return out


def daily_category_sales(truth: Truth) -> dict[tuple[dt.date, str], dict[str, Any]]:
    """docs/metrics.md, ``gold.daily_category_sales``."""
    out: dict[tuple[dt.date, str], dict[str, Any]] = {}
    for day, events in _by_day(truth).items():
        for purchase in (e for e in events if e["event_type"] == "purchase"):
            for category in {i["category"] for i in purchase["items"]}:
                row = out.setdefault((day, category), {"orders": 0, "units": 0, "gross_revenue": Decimal("0.00")})
                row["orders"] += 1
            for item in purchase["items"]:
                row = out[(day, item["category"])]
                row["units"] += item["quantity"]
                row["gross_revenue"] += Decimal(item["total_price"])
    return out


def _recency_score(days: int | None) -> int:
    if days is None:
        return 1
    for limit, score in ((0, 5), (7, 4), (30, 3), (90, 2)):
        if days <= limit:
            return score
    return 1


def _frequency_score(orders: int) -> int:
    for limit, score in ((1, 1), (2, 2), (4, 3), (9, 4)):
        if orders <= limit:
            return score
    return 5


def _monetary_score(ltv: Decimal) -> int:
    for limit, score in ((50, 1), (200, 2), (500, 3), (1000, 4)):
        if ltv < limit:
            return score
    return 5


def _segment(orders_to_date: int, first_order: dt.date | None, day: dt.date, r: int, f: int) -> str:
    if orders_to_date == 0:
        return "prospect"
    if r >= 4 and f >= 4:
        return "champion"
    if first_order == day:
        return "new_customer"
    if f >= 3:
        return "loyal"
    if r <= 2:
        return "at_risk"
    return "regular"


def customer_daily(truth: Truth) -> dict[tuple[dt.date, str], dict[str, Any]]:
    """docs/metrics.md, ``gold.customer_daily``: per day and active user, with lifetime-to-date figures."""
    out: dict[tuple[dt.date, str], dict[str, Any]] = {}
    first_seen: dict[str, dt.date] = {}
    first_order: dict[str, dt.date] = {}
    last_purchase: dict[str, dt.date] = {}
    orders_to_date: Counter[str] = Counter()
    ltv: dict[str, Decimal] = defaultdict(lambda: Decimal("0.00"))
    for day, events in _by_day(truth).items():
        todays: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for event in events:
            if event.get("user_id"):
                todays[event["user_id"]].append(event)
        for user, user_events in todays.items():
            purchases = [e for e in user_events if e["event_type"] == "purchase"]
            revenue = sum((Decimal(p["total_amount"]) for p in purchases), Decimal("0.00"))
            first_seen.setdefault(user, day)
            orders_to_date[user] += len(purchases)
            ltv[user] += revenue
            if purchases:
                last_purchase[user] = day
                first_order.setdefault(user, day)
            recency = (day - last_purchase[user]).days if user in last_purchase else None
            r, f = _recency_score(recency), _frequency_score(orders_to_date[user])
            out[(day, user)] = {
                "orders": len(purchases),
                "revenue": revenue,
                "orders_to_date": orders_to_date[user],
                "ltv": ltv[user],
                "first_seen": first_seen[user],
                "last_purchase": last_purchase.get(user),
                "recency_days": recency,
                "recency_score": r,
                "frequency_score": f,
                "monetary_score": _monetary_score(ltv[user]),
                "segment": _segment(orders_to_date[user], first_order.get(user), day, r, f),
            }
    return out


def _in_force(history: list[dict[str, Any]], stamp: str) -> dict[str, Any] | None:
    """The version of a product in force at ``stamp`` (an event timestamp), None before its first version."""
    starts = [v["valid_from"] for v in history]
    i = bisect_right(starts, stamp)
    return history[i - 1] if i else None


def product_daily(truth: Truth) -> dict[tuple[dt.date, str], dict[str, Any]]:
    """docs/metrics.md, ``gold.product_daily``."""
    histories = products(truth)
    out: dict[tuple[dt.date, str], dict[str, Any]] = {}
    for day, events in _by_day(truth).items():
        rows: dict[str, dict[str, Any]] = defaultdict(
            lambda: {
                "views": 0,
                "carts": 0,
                "cart_units": 0,
                "purchases": 0,
                "units": 0,
                "gross_revenue": Decimal("0.00"),
                "price_changes": 0,
                "views_out_of_stock": 0,
                "viewed": set(),
                "carted": set(),
                "bought": set(),
                "list_value": 0,  # Σ quantity x list price in force, of lines with a known list price (cent-bp)
                "paid_value": 0,  # Σ quantity x unit price x (1 - order discount), of the same lines (cent-bp)
            }
        )
        for event in events:
            kind = event["event_type"]
            if kind == "page_view" and event.get("product_id"):
                row = rows[event["product_id"]]
                row["views"] += 1
                row["viewed"].add(event["session_id"])
                version = _in_force(histories.get(event["product_id"], []), event["timestamp"])
                row["views_out_of_stock"] += version is not None and version["stock_level"] == 0
            elif kind == "add_to_cart":
                row = rows[event["product_id"]]
                row["carts"] += 1
                row["cart_units"] += event["quantity"]
                row["carted"].add(event["session_id"])
            elif kind == "purchase":
                for product_id in {i["product_id"] for i in event["items"]}:
                    rows[product_id]["purchases"] += 1
                    rows[product_id]["bought"].add(event["session_id"])
                kept_bp = 10000 - int(Decimal(event["discount_percent"]) * 100)  # basis points paid
                for item in event["items"]:
                    row = rows[item["product_id"]]
                    row["units"] += item["quantity"]
                    row["gross_revenue"] += Decimal(item["total_price"])
                    version = _in_force(histories.get(item["product_id"], []), event["timestamp"])
                    if version is not None and version["price"]:
                        row["list_value"] += item["quantity"] * int(version["price"] * 100) * 10000
                        row["paid_value"] += item["quantity"] * int(Decimal(item["unit_price"]) * 100) * kept_bp
            elif kind == "product_update":
                rows[event["product_id"]]["price_changes"] += event["update_type"] == "price_change"
        day_end = f"{day.isoformat()}T23:59:59.999Z"
        for product_id, row in rows.items():
            viewed, carted, bought = row.pop("viewed"), row.pop("carted"), row.pop("bought")
            list_value, paid_value = row.pop("list_value"), row.pop("paid_value")
            row["view_to_cart_rate"] = ratio(len(viewed & carted), len(viewed), RATE)
            row["cart_to_purchase_rate"] = ratio(len(carted & bought), len(carted), RATE)
            at_close = _in_force(histories.get(product_id, []), day_end)
            row["list_price"] = at_close["price"] if at_close is not None else None
            row["discount_vs_list"] = ratio(list_value - paid_value, list_value, RATE)
            out[(day, product_id)] = row
    return out


def product_pairs(truth: Truth) -> dict[tuple[dt.date, str, str], dict[str, Any]]:
    """docs/metrics.md, ``gold.product_pairs``: (day, antecedent, consequent) -> support, confidence, lift."""
    out: dict[tuple[dt.date, str, str], dict[str, Any]] = {}
    for day, events in _by_day(truth).items():
        baskets = [{i["product_id"] for i in e["items"]} for e in events if e["event_type"] == "purchase"]
        containing: Counter[str] = Counter(p for basket in baskets for p in basket)
        together: Counter[tuple[str, str]] = Counter(
            (a, b) for basket in baskets for a in basket for b in basket if a != b
        )
        orders = len(baskets)
        for (a, b), both in together.items():
            out[(day, a, b)] = {
                "pair_orders": both,
                "support": ratio(both, orders, RATE),
                "confidence": ratio(both, containing[a], RATE),
                "lift": ratio(both * orders, containing[a] * containing[b], RATE),  # = confidence / P(B)
            }
    return out


SILVER_TABLE_OF_TOPIC = {
    "page_view": "page_views",
    "add_to_cart": "cart_events",
    "purchase": "purchases",
    "user_session": "user_sessions",
    "product_update": "product_updates",
}


def data_quality(truth: Truth) -> dict[tuple[dt.date | None, str], dict[str, int]]:
    """docs/metrics.md, ``gold.data_quality``: the columns the oracle can know (rows, duplicates, quarantined)."""
    out: dict[tuple[dt.date | None, str], dict[str, int]] = defaultdict(
        lambda: {"rows": 0, "duplicates": 0, "quarantined": 0}
    )
    for event in truth.events:
        out[(event_date(event), SILVER_TABLE_OF_TOPIC[event["event_type"]])]["rows"] += 1
    for topic, day, reason in truth.quarantined:
        out[(day, SILVER_TABLE_OF_TOPIC[topic])]["duplicates" if reason == "duplicate" else "quarantined"] += 1
    return dict(out)


def sessions(truth: Truth) -> dict[str, dict[str, Any]]:
    """``silver.sessions``: per session id, over every accepted event carrying it (any day)."""
    out: dict[str, dict[str, Any]] = {}
    for event in sorted(truth.events, key=lambda e: e["timestamp"]):
        session_id = event.get("session_id")
        if not session_id:
            continue
        row = out.setdefault(
            session_id,
            {"user_id": event["user_id"], "started_at": event["timestamp"], "page_views": 0, "carts": 0,
             "purchases": 0, "revenue": Decimal("0.00"), "has_logout": False},
        )  # fmt: skip
        row["ended_at"] = event["timestamp"]
        kind = event["event_type"]
        row["page_views"] += kind == "page_view"
        row["carts"] += kind == "add_to_cart"
        if kind == "purchase":
            row["purchases"] += 1
            row["revenue"] += Decimal(event["total_amount"])
        row["has_logout"] |= kind == "user_session" and event["session_type"] == "logout"
    return out


def event_minutes(truth: Truth) -> dict[tuple[str, str], dict[str, Any]]:
    """``silver.event_minutes``: per (event-time minute ``YYYY-MM-DDTHH:MM``, event type)."""
    out: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"events": 0, "purchases": 0, "revenue": Decimal("0.00")}
    )
    for event in truth.events:
        row = out[(event["timestamp"][:16], event["event_type"])]
        row["events"] += 1
        if event["event_type"] == "purchase":
            row["purchases"] += 1
            row["revenue"] += Decimal(event["total_amount"])
    return dict(out)


# The fields a product update sets in the product dimension, by the update's field name.
_PRODUCT_FIELDS = {"new_price": "price", "stock_level": "stock_level", "rating": "rating"}


def products(truth: Truth) -> dict[str, list[dict[str, Any]]]:
    """docs/metrics.md, ``silver.products``: per product, its versions in order (timestamps as in the events)."""
    updates: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in truth.of_type("product_update"):
        updates[event["product_id"]].append(event)
    out: dict[str, list[dict[str, Any]]] = {}
    for product_id, events in updates.items():
        state: dict[str, Any] = {"price": None, "stock_level": None, "rating": None}
        versions: list[dict[str, Any]] = []
        # Timestamps share one fixed-width format: as text they sort as instants.
        for event in sorted(events, key=lambda e: (e["timestamp"], e["event_id"])):
            for field_name, column in _PRODUCT_FIELDS.items():
                value = event.get(field_name)
                if value is not None:
                    state[column] = value if column == "stock_level" else Decimal(value)
            version = {"valid_from": event["timestamp"], **state, "event_id": event["event_id"]}
            if versions and versions[-1]["valid_from"] == event["timestamp"]:
                versions[-1] = version  # a second update of the same instant: one version, the later state
            else:
                versions.append(version)
        for number, (version, following) in enumerate(zip(versions, [*versions[1:], None], strict=True), start=1):
            version["version"] = number
            version["valid_to"] = following["valid_from"] if following else None
            version["is_current"] = following is None
        out[product_id] = versions
    return out
