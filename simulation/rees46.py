"""Import a public REES46 Open CDP clickstream (CSV) as contract events, streamed row by row.

Mapping (see docs/rees46.md for the reasoning):

* ``view`` -> ``page_view`` (``page_type`` = ``product``), ``cart`` -> ``add_to_cart`` (quantity 1,
  ``cart_id`` = the session), ``purchase`` -> ``purchase`` of one item (quantity 1, no discount, payment,
  shipping and device ``unknown``: the source does not say); ``category_code`` is the item category, or
  ``category_id:<id>`` when empty; an empty brand is no brand.
* ``remove_from_cart`` has no event in our contract: it is sent on the cart topic as event type
  ``remove_from_cart`` and lands in quarantine (``unknown_event_type``), counted, never dropped.
* A row that cannot be mapped (wrong field count, unreadable time or price) is reported with its line number
  and sent as its raw text, so it reaches quarantine too (``invalid_json``).
* ``event_id`` (and ``order_id``) are derived from the row's content: an exact duplicate row gets the same id,
  i.e. it is a redelivery the pipeline counts once. Event times are kept as they are (UTC).
* Money is exact: prices are read as decimals, never floats. A zero price is a valid free item.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pipeline.contracts.events import SCHEMA_VERSION, EventType, format_decimal
from pipeline.errors import ShoplakeError

COLUMNS = (
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
)
TOPIC_OF = {
    "view": EventType.PAGE_VIEW,
    "cart": EventType.ADD_TO_CART,
    "remove_from_cart": EventType.ADD_TO_CART,
    "purchase": EventType.PURCHASE,
}


class Rees46FormatError(ShoplakeError, ValueError):
    """The file is not a REES46 Open CDP CSV."""


@dataclass
class ImportReport:
    rows: int = 0
    events: Counter[str] = field(default_factory=Counter)
    unmappable: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)


@dataclass(frozen=True)
class ImportedRecord:
    topic: EventType
    key: str
    value: bytes
    event_time: dt.datetime | None


def row_id(line: str) -> str:
    """A UUID-shaped id from the row's content (same row, same id)."""
    h = hashlib.blake2b(line.encode(), digest_size=16).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=dt.UTC)


def _timestamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _price(text: str) -> Decimal:
    value = Decimal(text)
    if value < 0 or value != value.quantize(Decimal("0.01")):
        raise InvalidOperation(text)
    return value.quantize(Decimal("0.01"))


def map_row(fields: dict[str, str], line: str) -> tuple[EventType, str, dict[str, Any], dt.datetime]:
    """One CSV row -> (topic, key, event). Raises ValueError when the row cannot be mapped."""
    moment = _time(fields["event_time"])
    kind = fields["event_type"]
    if kind not in TOPIC_OF:
        raise ValueError(f"unknown event_type {kind!r}")
    price = _price(fields["price"])
    event_id = row_id(line)
    user, session, product = fields["user_id"], fields["user_session"], fields["product_id"]
    if not (user and session and product):
        raise ValueError("user_id, user_session and product_id are required")
    metadata = {"source": "rees46", "category_id": fields["category_id"]}
    base = {
        "event_id": event_id,
        "schema_version": SCHEMA_VERSION,
        "timestamp": _timestamp(moment),
        "metadata": metadata,
    }
    body: dict[str, Any]
    if kind == "view":
        body = {"event_type": "page_view", "user_id": user, "session_id": session, "product_id": product,
                "page_type": "product", "device_type": "unknown"}  # fmt: skip
    elif kind in ("cart", "remove_from_cart"):
        body = {"event_type": "add_to_cart" if kind == "cart" else kind, "user_id": user, "session_id": session,
                "product_id": product, "quantity": 1, "price": format_decimal(price),
                "total_value": format_decimal(price), "cart_id": session}  # fmt: skip
    else:
        item: dict[str, Any] = {
            "product_id": product,
            "quantity": 1,
            "unit_price": format_decimal(price),
            "total_price": format_decimal(price),
            "category": fields["category_code"] or f"category_id:{fields['category_id']}",
        }
        if fields["brand"]:
            item["brand"] = fields["brand"]
        body = {"event_type": "purchase", "user_id": user, "session_id": session, "order_id": event_id,
                "items": [item], "subtotal": format_decimal(price), "discount_percent": "0.00",
                "discount_amount": "0.00", "total_amount": format_decimal(price), "payment_method": "unknown",
                "shipping_method": "unknown"}  # fmt: skip
    return TOPIC_OF[kind], user, {**base, **body}, moment


def read_records(path: Path, report: ImportReport) -> Iterator[ImportedRecord]:
    """Stream the file (never loaded whole); every data line yields exactly one record."""
    with path.open(encoding="utf-8", newline="") as handle:
        header = handle.readline().rstrip("\r\n").split(",")
        if tuple(header) != COLUMNS:
            raise Rees46FormatError(f"{path}: not a REES46 Open CDP file (header {header[:4]}...)")
        for number, raw in enumerate(handle, start=2):
            line = raw.rstrip("\r\n")
            if not line:
                continue
            report.rows += 1
            values = next(csv.reader(io.StringIO(line)))
            kind = values[1] if len(values) > 1 else ""
            try:
                if len(values) != len(COLUMNS):
                    raise ValueError(f"{len(values)} fields instead of {len(COLUMNS)}")
                topic, key, event, moment = map_row(dict(zip(COLUMNS, values, strict=True)), line)
            except (ValueError, InvalidOperation) as exc:
                report.unmappable.append((number, str(exc) or type(exc).__name__))
                yield ImportedRecord(TOPIC_OF.get(kind, EventType.PAGE_VIEW), f"line-{number}", line.encode(), None)
                continue
            report.events[event["event_type"]] += 1
            yield ImportedRecord(topic, key, json.dumps(event, separators=(",", ":")).encode(), moment)


def paced(records: Iterator[ImportedRecord], speedup: float | None) -> Iterator[ImportedRecord]:
    """Replay at ``speedup`` times the original pace (event-time gaps divided by it); None: no waiting."""
    if not speedup:
        yield from records
        return
    start_wall, start_event = time.monotonic(), None
    for record in records:
        if record.event_time is not None:
            start_event = start_event or record.event_time
            due = (record.event_time - start_event).total_seconds() / speedup
            ahead = due - (time.monotonic() - start_wall)
            if ahead > 0.002:
                time.sleep(ahead)
        yield record
