"""Validation of Kafka records against the event contract: what lands in silver, what is quarantined and why."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from pipeline.contracts.events import EventType
from pipeline.streaming.bronze import to_bronze
from pipeline.streaming.silver import (
    FAILED_RULES,
    EventValidator,
    filter_valid,
    to_quarantine,
    to_silver,
    with_duplicates,
    with_late_flag,
)

KAFKA_SCHEMA = (
    "key binary, value binary, topic string, partition int, offset long, timestamp timestamp, timestampType int"
)
KAFKA_TS = dt.datetime(2026, 11, 2, 12, 0, 0)


def page_view(**changes: Any) -> dict[str, Any]:
    event = {
        "event_id": "e-1",
        "event_type": "page_view",
        "schema_version": 1,
        "timestamp": "2026-11-02T10:00:00.000Z",
        "user_id": "u1",
        "session_id": "s1",
        "product_id": "p1",
        "page_type": "product",
        "device_type": "mobile",
    }
    event.update(changes)
    return {k: v for k, v in event.items() if v is not ...}


def purchase(**changes: Any) -> dict[str, Any]:
    event = {
        "event_id": "o-1",
        "event_type": "purchase",
        "schema_version": 1,
        "timestamp": "2026-11-02T10:05:00.000Z",
        "user_id": "u1",
        "session_id": "s1",
        "order_id": "order-1",
        "items": [
            {
                "product_id": "p1",
                "quantity": 2,
                "unit_price": "10.00",
                "total_price": "20.00",
                "category": "books",
            },
            {
                "product_id": "p2",
                "quantity": 1,
                "unit_price": "5.55",
                "total_price": "5.55",
                "category": "toys",
            },
        ],
        "subtotal": "25.55",
        "discount_percent": "10.00",
        "discount_amount": "2.56",
        "total_amount": "22.99",
        "payment_method": "paypal",
        "shipping_method": "standard",
        "shipping_address": {"street": "1 Elm St", "city": "Boise", "zip_code": "83701", "country": "US"},
    }
    event.update(changes)
    return event


def record(value: dict[str, Any] | bytes | None, topic: str = "page_view", offset: int = 0) -> tuple:
    payload = json.dumps(value).encode() if isinstance(value, dict) else value
    return (b"k", payload, f"shop.{topic}", 0, offset, KAFKA_TS, 0)


@pytest.fixture(scope="module")
def validator() -> EventValidator:
    return EventValidator("shop", max_payload_bytes=2048)


def validate(spark, validator: EventValidator, *records: tuple):
    kafka_df = spark.createDataFrame(list(records), KAFKA_SCHEMA)
    validated = validator.validate(to_bronze(kafka_df))
    return with_late_flag(
        validated.withColumns({"batch_id": F.lit(7), "ingest_time": F.lit(KAFKA_TS)}),
        F.lit(dt.datetime(2026, 11, 2, 9)),
    )


def rules(spark, validator: EventValidator, *records: tuple) -> list[list[str]]:
    df = validate(spark, validator, *records).orderBy("kafka_offset")
    return [row[FAILED_RULES] for row in df.collect()]


def test_valid_page_view_becomes_a_typed_silver_row(spark, validator) -> None:
    silver = to_silver(filter_valid(validate(spark, validator, record(page_view()))), EventType.PAGE_VIEW)
    row = silver.collect()[0]
    assert (row.event_id, row.user_id, row.page_type, row.event_date) == (
        "e-1",
        "u1",
        "product",
        dt.date(2026, 11, 2),
    )
    assert row.event_time == dt.datetime(2026, 11, 2, 10, 0)
    assert row.is_late is False
    assert (row.kafka_topic, row.kafka_offset, row.batch_id) == ("shop.page_view", 0, 7)


def test_valid_purchase_keeps_exact_money_items_and_address(spark, validator) -> None:
    silver = to_silver(filter_valid(validate(spark, validator, record(purchase(), "purchase"))), EventType.PURCHASE)
    row = silver.collect()[0]
    from decimal import Decimal

    assert (row.subtotal, row.discount_amount, row.total_amount) == (
        Decimal("25.55"),
        Decimal("2.56"),
        Decimal("22.99"),
    )
    assert [(i.product_id, i.quantity, i.total_price) for i in row["items"]] == [
        ("p1", 2, Decimal("20.00")),
        ("p2", 1, Decimal("5.55")),
    ]
    assert row.items[1].brand is None
    assert row.shipping_address.city == "Boise"
    assert row.shipping_address.state is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ["empty_payload"]),
        (b"\xff\xfe{}", ["invalid_utf8"]),
        (b"{not json", ["invalid_json"]),
        (b"[1, 2]", ["invalid_json"]),
        (b'[{"event_id": "e-1"}]', ["invalid_json"]),
        (b'"page_view"', ["invalid_json"]),
        (b"42", ["invalid_json"]),
        (b"null", ["invalid_json"]),
        (b"", ["invalid_json"]),
        (json.dumps(page_view()).encode()[:-1], ["invalid_json"]),
        (b'{"blob": "' + b"x" * 3000 + b'"}', ["oversized_payload"]),
        (page_view(user_id=...), ["missing:user_id"]),
        (page_view(user_id="  "), ["missing:user_id"]),
        (page_view(event_type="refund"), ["unknown_event_type"]),
        (page_view(event_type="purchase"), ["event_type_mismatch"]),
        (page_view(schema_version=3), ["unsupported_schema_version"]),
        (page_view(timestamp="2026-11-02 10:00:00"), ["invalid_timestamp:timestamp"]),
        (page_view(timestamp=1700000000), ["invalid_timestamp:timestamp"]),
        (page_view(page_type="landing"), ["invalid_value:page_type"]),
        (page_view(metadata="not an object"), ["invalid_type:metadata"]),
        (page_view(metadata={"campaign": 7}), ["invalid_type:metadata"]),
        # The contract's JSON types are checked, not only the text a value would print as.
        (page_view(user_id=42), ["invalid_type:user_id"]),
        (page_view(page_type=["product"]), ["invalid_type:page_type"]),
        (page_view(schema_version="1"), ["unsupported_schema_version"]),
        (page_view(schema_version=1.0), ["unsupported_schema_version"]),
        (page_view(event_type=None), ["missing:event_type"]),
        (page_view(timestamp="2026-02-30T10:00:00.000Z"), ["invalid_timestamp:timestamp"]),
        (json.dumps(page_view()).encode() + b" {}", ["invalid_json"]),
        (b'{"a":' * 100 + b"1" + b"}" * 100, ["invalid_json"]),
    ],
)
def test_bad_page_view_records_are_rejected_with_named_rules(spark, validator, value, expected) -> None:
    assert rules(spark, validator, record(value)) == [expected]


def test_a_key_repeated_in_one_payload_counts_with_its_last_value(spark, validator) -> None:
    """As Python's and JavaScript's JSON parsers read it (the simulator's oracle is Python)."""
    valid = json.dumps(page_view()).encode()
    later_bad = valid[:-1] + b', "page_type": "landing"}'
    later_good = json.dumps(page_view(page_type="landing")).encode()[:-1] + b', "page_type": "product"}'
    assert rules(spark, validator, record(later_bad), record(later_good, offset=1)) == [
        ["invalid_value:page_type"],
        [],
    ]


def test_keys_no_contract_names_neither_fail_a_payload_nor_change_its_silver_row(spark, validator) -> None:
    def silver(value: dict[str, Any]):
        return to_silver(filter_valid(validate(spark, validator, record(value))), EventType.PAGE_VIEW)

    with_extras = silver(page_view(campaign_code="ads", nested={"a": [1, {"b": None}]}))
    assert with_extras.count() == 1
    assertDataFrameEqual(with_extras, silver(page_view()))


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"items": []}, ["empty:items", "inconsistent:subtotal"]),
        ({"items": "all of them"}, ["invalid_type:items"]),
        ({"total_amount": "-22.99"}, ["negative:total_amount", "inconsistent:total_amount"]),
        ({"total_amount": "23.99"}, ["inconsistent:total_amount"]),
        ({"discount_amount": "2.55", "total_amount": "23.00"}, ["inconsistent:discount_amount"]),
        ({"subtotal": "25.5"}, ["invalid_decimal:subtotal"]),
        (
            {"shipping_address": {"street": "1 Elm St", "zip_code": "1", "country": "US"}},
            ["missing:shipping_address.city"],
        ),
        ({"payment_method": "cash"}, ["invalid_value:payment_method"]),
        # Money is a JSON string with its decimals: a number is not, whatever it prints as.
        ({"subtotal": 25.55}, ["invalid_decimal:subtotal"]),
        (
            {
                "items": [
                    {
                        "product_id": "p1",
                        "quantity": "2",
                        "unit_price": "10.00",
                        "total_price": "20.00",
                        "category": "books",
                    }
                ],
                "subtotal": "20.00",
                "discount_amount": "2.00",
                "total_amount": "18.00",
            },
            ["invalid_type:items.quantity"],
        ),
        ({"items": [1, 2]}, ["invalid_type:items"]),
    ],
)
def test_purchase_amounts_and_shapes_are_checked(spark, validator, changes, expected) -> None:
    assert rules(spark, validator, record(purchase(**changes), "purchase")) == [expected]


def test_item_arithmetic_is_checked_per_item(spark, validator) -> None:
    items = purchase()["items"]
    items[0] = {**items[0], "total_price": "21.00"}
    assert rules(spark, validator, record(purchase(items=items, subtotal="26.55"), "purchase")) == [
        ["inconsistent:items.total_price", "inconsistent:discount_amount", "inconsistent:total_amount"]
    ]


def test_a_rule_broken_by_several_items_is_named_once_in_the_contracts_order(spark, validator) -> None:
    """Whichever item breaks a rule first, a record's rules come in one order: field by field, then by rule."""
    items = purchase()["items"]
    first_breaks_later_rule = [{**items[0], "unit_price": "-10.00"}, {**items[1], "unit_price": "5.5"}]
    second_breaks_later_rule = [{**items[0], "unit_price": "10.0"}, {**items[1], "unit_price": "-5.55"}]
    expected = ["invalid_decimal:items.unit_price", "negative:items.unit_price", "inconsistent:items.total_price"]
    assert rules(
        spark,
        validator,
        record(purchase(items=first_breaks_later_rule), "purchase"),
        record(purchase(items=second_breaks_later_rule), "purchase", offset=1),
    ) == [expected, expected]


def test_schema_version_2_with_its_added_field_is_accepted(spark, validator) -> None:
    df = validate(spark, validator, record(page_view(schema_version=2, experiment_id="exp-1", unknown_extra={"a": 1})))
    row = to_silver(filter_valid(df), EventType.PAGE_VIEW).collect()[0]
    assert (row.schema_version, row.experiment_id) == (2, "exp-1")


def test_the_supported_versions_are_the_validators_to_choose_and_others_stay_quarantined(spark) -> None:
    enabled = EventValidator("shop", max_payload_bytes=2048, supported_versions=(1, 2, 3))
    versions = [record(page_view(schema_version=v, event_id=f"e-{v}"), offset=v) for v in (1, 3, 4)]
    assert rules(spark, enabled, *versions) == [[], [], ["unsupported_schema_version"]]
    assert rules(spark, EventValidator("shop", max_payload_bytes=2048), *versions) == [
        [],
        ["unsupported_schema_version"],
        ["unsupported_schema_version"],
    ]


def test_events_older_than_the_watermark_are_flagged_late_not_dropped(spark, validator) -> None:
    df = validate(
        spark,
        validator,
        record(page_view(timestamp="2026-11-02T08:00:00.000Z")),
        record(page_view(event_id="e-2"), offset=1),
    )
    assert [(r.event_id, r.is_late) for r in filter_valid(df).orderBy("event_id").collect()] == [
        ("e-1", True),
        ("e-2", False),
    ]


def test_quarantine_rows_keep_the_raw_payload_and_coordinates(spark, validator) -> None:
    raw = b"{not json"
    quarantined = to_quarantine(validate(spark, validator, record(raw, offset=42))).collect()[0]
    assert (bytes(quarantined.value), quarantined.kafka_offset, quarantined.failed_rules) == (
        raw,
        42,
        ["invalid_json"],
    )
    assert quarantined.event_id is None


def test_a_cut_off_object_keeps_nothing_it_read_before_the_cut(spark, validator) -> None:
    """Its event id, type and time come before the cut, yet like any payload that is not one JSON object it has
    none: its quarantine row carries no event day for the data-quality counts to put it on."""
    cut = json.dumps(purchase()).encode()[:-40]
    quarantined = to_quarantine(validate(spark, validator, record(cut, topic="purchase"))).collect()[0]
    assert quarantined.failed_rules == ["invalid_json"]
    assert (quarantined.event_id, quarantined.event_type, quarantined.event_date) == (None, None, None)


COORDS = "kafka_topic string, kafka_partition int, kafka_offset long"


def test_rows_at_the_decided_duplicate_coordinates_are_flagged_and_no_other(spark) -> None:
    batch = spark.createDataFrame(
        [("a", "t", 0, 5), ("a", "t", 0, 9), ("a", "t", 1, 5), (None, "t", 1, 4)], f"event_id string, {COORDS}"
    )
    flagged = with_duplicates(batch, spark.createDataFrame([("t", 0, 9), ("t", 0, 9)], COORDS))
    expected = spark.createDataFrame(
        [("a", 0, 5, False), ("a", 0, 9, True), ("a", 1, 5, False), (None, 1, 4, False)],
        "event_id string, kafka_partition int, kafka_offset long, is_duplicate boolean",
    )
    assertDataFrameEqual(flagged.select("event_id", "kafka_partition", "kafka_offset", "is_duplicate"), expected)


def test_a_batch_without_duplicates_flags_nothing(spark) -> None:
    batch = spark.createDataFrame([("a", "t", 0, 5)], f"event_id string, {COORDS}")
    assert [r.is_duplicate for r in with_duplicates(batch, None).collect()] == [False]


def cart(**changes: Any) -> dict[str, Any]:
    event = {
        "event_id": "c-1",
        "event_type": "add_to_cart",
        "schema_version": 1,
        "timestamp": "2026-11-02T10:01:00.000Z",
        "user_id": "u1",
        "session_id": "s1",
        "product_id": "p1",
        "quantity": 1,
        "price": "10.00",
        "total_value": "10.00",
        "cart_id": "cart-1",
    }
    return event | changes


def product_update(**changes: Any) -> dict[str, Any]:
    event = {
        "event_id": "pu-1",
        "event_type": "product_update",
        "schema_version": 1,
        "timestamp": "2026-11-02T10:02:00.000Z",
        "product_id": "p1",
        "update_type": "rating_update",
        "rating": "5.00",
    }
    return event | changes


def one_item_purchase(subtotal: str, percent: str, discount: str, total: str) -> dict[str, Any]:
    item = {"product_id": "p1", "quantity": 1, "unit_price": subtotal, "total_price": subtotal, "category": "books"}
    return purchase(
        items=[item], subtotal=subtotal, discount_percent=percent, discount_amount=discount, total_amount=total
    )


@pytest.mark.parametrize(
    ("topic", "value", "expected"),
    [
        ("add_to_cart", cart(quantity=1), []),
        ("add_to_cart", cart(quantity=0, total_value="0.00"), ["out_of_range:quantity"]),
        ("add_to_cart", cart(price="0.00", total_value="0.00"), []),  # a free item: zero is not negative
        ("product_update", product_update(rating="5.00"), []),
        ("product_update", product_update(rating="0.00"), []),
        ("product_update", product_update(rating="5.01"), ["out_of_range:rating"]),
        ("product_update", product_update(update_type="inventory_update", rating=None, stock_level=0), []),
        (
            "product_update",
            product_update(update_type="inventory_update", rating=None, stock_level=-1),
            ["out_of_range:stock_level"],
        ),
        ("purchase", one_item_purchase("25.55", "100.00", "25.55", "0.00"), []),
        ("purchase", one_item_purchase("25.55", "100.01", "25.55", "0.00"), ["out_of_range:discount_percent"]),
        # 10.05 x 50 % = 5.025: half up gives 5.03; half even (or truncation) would give 5.02
        ("purchase", one_item_purchase("10.05", "50.00", "5.03", "5.02"), []),
        ("purchase", one_item_purchase("10.05", "50.00", "5.02", "5.03"), ["inconsistent:discount_amount"]),
    ],
)
def test_contract_limits_accept_the_boundary_and_reject_just_past_it(spark, validator, topic, value, expected) -> None:
    value = {k: v for k, v in value.items() if v is not None}
    assert rules(spark, validator, record(value, topic)) == [expected]


def test_the_last_millisecond_of_a_day_and_the_first_of_the_next_fall_on_their_own_days(spark, validator) -> None:
    df = validate(
        spark,
        validator,
        record(page_view(event_id="late-night", timestamp="2026-11-02T23:59:59.999Z")),
        record(page_view(event_id="midnight", timestamp="2026-11-03T00:00:00.000Z"), offset=1),
    )
    got = to_silver(filter_valid(df), EventType.PAGE_VIEW).select("event_id", "event_time", "event_date")
    expected = spark.createDataFrame(
        [
            ("late-night", dt.datetime(2026, 11, 2, 23, 59, 59, 999000), dt.date(2026, 11, 2)),
            ("midnight", dt.datetime(2026, 11, 3), dt.date(2026, 11, 3)),
        ],
        "event_id string, event_time timestamp, event_date date",
    )
    assertDataFrameEqual(got, expected)
