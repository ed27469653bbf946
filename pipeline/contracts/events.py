"""The event contract: the one definition of every event the shop emits.

The simulator produces events from this contract, the streaming job parses and validates against it, the docs
describe it. It is plain Python (no Spark) so that anything can import it.

JSON representation
-------------------
* Every event is one JSON object, UTF-8, carrying ``schema_version`` (1 or 2; the stream accepts the versions
  in the ``stream.supported_schema_versions`` setting, by default these).
* ``timestamp`` is ISO 8601 in UTC with milliseconds and a ``Z`` suffix: ``2026-11-01T09:30:00.125Z``.
* Money and other exact decimals are JSON **strings** with exactly the declared number of decimals
  (``"19.99"``, ``"0.00"``): JSON numbers are binary floats in most parsers, strings are exact everywhere.
  Negative amounts are invalid. Whole numbers (``quantity``, ``stock_level``) are JSON integers.
* ``metadata`` is an optional flat object of string values, carried through untouched.
* Version 2 adds one optional field, ``experiment_id``, to every event type. Unknown versions are rejected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

SCHEMA_VERSION = 1
"""Version the simulator writes by default."""

SUPPORTED_SCHEMA_VERSIONS: tuple[int, ...] = (1, 2)
"""Versions the contract defines: the default of the ``stream.supported_schema_versions`` setting."""

TIMESTAMP_REGEX = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"


class EventType(StrEnum):
    PAGE_VIEW = "page_view"
    ADD_TO_CART = "add_to_cart"
    PURCHASE = "purchase"
    USER_SESSION = "user_session"
    PRODUCT_UPDATE = "product_update"


class FieldType(StrEnum):
    STRING = "string"
    INT = "int"
    TIMESTAMP = "timestamp"
    DECIMAL = "decimal"  # exact decimal carried as a JSON string, see the module docstring
    STRING_MAP = "string_map"
    STRUCT = "struct"
    ARRAY = "array"  # an array of STRUCT, described by ``fields``


@dataclass(frozen=True)
class FieldSpec:
    """One field of an event: its JSON name, type and the rules that make it valid."""

    name: str
    type: FieldType
    required: bool = True
    description: str = ""
    precision: int = 12  # DECIMAL only
    scale: int = 2  # DECIMAL only
    allowed: tuple[str, ...] = ()  # STRING only: the closed set of valid values
    non_negative: bool = True  # DECIMAL/INT
    positive: bool = False  # INT: strictly positive
    fields: tuple[FieldSpec, ...] = ()  # STRUCT and ARRAY (of struct)
    since_version: int = 1


def _s(name: str, required: bool = True, description: str = "", allowed: tuple[str, ...] = ()) -> FieldSpec:
    return FieldSpec(name, FieldType.STRING, required, description, allowed=allowed)


def _money(name: str, description: str = "", required: bool = True) -> FieldSpec:
    return FieldSpec(name, FieldType.DECIMAL, required, description, precision=12, scale=2)


PAGE_TYPES = ("home", "category", "product", "search", "cart", "checkout")
# "unknown": the source of the event did not say (imported clickstreams); the simulator never uses it.
DEVICE_TYPES = ("desktop", "mobile", "tablet", "unknown")
PAYMENT_METHODS = ("credit_card", "debit_card", "paypal", "apple_pay", "gift_card", "unknown")
SHIPPING_METHODS = ("standard", "express", "next_day", "pickup", "unknown")
SESSION_TYPES = ("login", "logout")
UPDATE_TYPES = ("price_change", "inventory_update", "rating_update")

ENVELOPE: tuple[FieldSpec, ...] = (
    _s("event_id", description="Unique per event; a redelivery carries the same id."),
    _s("event_type", allowed=tuple(e.value for e in EventType)),
    FieldSpec("schema_version", FieldType.INT, positive=True),
    FieldSpec("timestamp", FieldType.TIMESTAMP, description="When the event happened (event time), UTC."),
    FieldSpec("metadata", FieldType.STRING_MAP, required=False),
    FieldSpec("experiment_id", FieldType.STRING, required=False, description="Added in v2.", since_version=2),
)

_USER_SESSION_FIELDS = (_s("user_id"), _s("session_id"))

ITEM_FIELDS: tuple[FieldSpec, ...] = (
    _s("product_id"),
    FieldSpec("quantity", FieldType.INT, positive=True),
    _money("unit_price"),
    _money("total_price", "quantity x unit_price"),
    _s("category"),
    _s("brand", required=False),
)

ADDRESS_FIELDS: tuple[FieldSpec, ...] = (
    _s("street"),
    _s("city"),
    _s("state", required=False),
    _s("zip_code"),
    _s("country", description="ISO 3166-1 alpha-2"),
)

BODY: dict[EventType, tuple[FieldSpec, ...]] = {
    EventType.PAGE_VIEW: (
        *_USER_SESSION_FIELDS,
        _s("product_id", required=False, description="Set on product pages."),
        _s("page_type", allowed=PAGE_TYPES),
        _s("referrer", required=False),
        _s("user_agent", required=False),
        _s("ip_address", required=False),
        _s("device_type", allowed=DEVICE_TYPES),
    ),
    EventType.ADD_TO_CART: (
        *_USER_SESSION_FIELDS,
        _s("product_id"),
        FieldSpec("quantity", FieldType.INT, positive=True),
        _money("price", "Unit price at the time of the event."),
        _money("total_value", "quantity x price"),
        _s("cart_id"),
    ),
    EventType.PURCHASE: (
        *_USER_SESSION_FIELDS,
        _s("order_id"),
        FieldSpec("items", FieldType.ARRAY, fields=ITEM_FIELDS, description="At least one item."),
        _money("subtotal", "Sum of the items' total_price."),
        FieldSpec("discount_percent", FieldType.DECIMAL, precision=5, scale=2, description="0.00 to 100.00"),
        _money("discount_amount", "round_half_up(subtotal x discount_percent / 100, 2)"),
        _money("total_amount", "subtotal - discount_amount"),
        _s("payment_method", allowed=PAYMENT_METHODS),
        _s("shipping_method", allowed=SHIPPING_METHODS),
        FieldSpec(
            "shipping_address",
            FieldType.STRUCT,
            required=False,
            fields=ADDRESS_FIELDS,
            description="Absent when unknown (imported data) or not shipped.",
        ),
    ),
    EventType.USER_SESSION: (
        *_USER_SESSION_FIELDS,
        _s("session_type", allowed=SESSION_TYPES),
        _s("device_type", allowed=DEVICE_TYPES),
        _s("ip_address", required=False),
        _s("user_agent", required=False),
    ),
    EventType.PRODUCT_UPDATE: (
        _s("product_id"),
        _s("update_type", allowed=UPDATE_TYPES),
        _money("new_price", "price_change: the price from now on.", required=False),
        FieldSpec("stock_level", FieldType.INT, required=False, description="inventory_update"),
        FieldSpec(
            "rating",
            FieldType.DECIMAL,
            required=False,
            precision=3,
            scale=2,
            description="rating_update, 0-5",
        ),
    ),
}


@dataclass(frozen=True)
class EventContract:
    event_type: EventType
    fields: tuple[FieldSpec, ...] = field(default_factory=tuple)


CONTRACTS: dict[EventType, EventContract] = {
    event_type: EventContract(event_type, ENVELOPE + body) for event_type, body in BODY.items()
}


def topic_name(prefix: str, event_type: EventType) -> str:
    """The Kafka topic that carries one event type: ``<prefix>.<event_type>``."""
    return f"{prefix}.{event_type.value}"


def all_topics(prefix: str) -> list[str]:
    return [topic_name(prefix, event_type) for event_type in EventType]


# Exact arithmetic shared by producers of events (simulator, importers). The stream's validator re-checks it.
CENT = Decimal("0.01")


def money(value: Decimal | int | str) -> Decimal:
    """Round to cents, half up (the contract's rounding)."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def discount_for(subtotal: Decimal, discount_percent: Decimal) -> Decimal:
    return money(subtotal * discount_percent / Decimal(100))


def format_decimal(value: Decimal, scale: int = 2) -> str:
    return f"{value:.{scale}f}"
