"""The published contract: JSON Schema documents generated from the contract, current, and agreeing with it.

Every record the simulator emits as valid passes its document, in every scenario; every record a fault knob
breaks in a way a schema can state fails it, with the quarantine's rule for that fault.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from pipeline.contracts.events import EventType
from pipeline.contracts.json_schema import documents, render, violations
from simulation import oracle
from simulation.generator import generate
from simulation.scenario import load_scenario
from simulation.sinks import simulated_stamp

PUBLISHED = Path(__file__).resolve().parents[2] / "contract" / "json-schema"
SCENARIOS = sorted(p.stem for p in (Path(oracle.__file__).parent / "scenarios").glob("*.toml"))


def _unstated(kind: str, topic: EventType) -> bool:
    """Faults no schema states: bytes that are not JSON, a size, arithmetic across fields."""
    amounts = (EventType.ADD_TO_CART, EventType.PURCHASE)
    not_json = kind in ("malformed:invalid_json", "malformed:invalid_utf8", "malformed:oversized")
    return not_json or (kind == "malformed:inconsistent_amount" and topic in amounts)


def test_the_published_documents_are_the_contracts_and_nothing_else() -> None:
    expected = {relative: render(document) for relative, document in documents()}
    published = {p.relative_to(PUBLISHED): p.read_text(encoding="utf-8") for p in PUBLISHED.rglob("*.json")}
    assert published.keys() == expected.keys(), "run `shoplake contract export contract/json-schema`"
    stale = [str(path) for path, text in published.items() if text != expected[path]]
    assert not stale, f"stale documents {stale}: run `shoplake contract export contract/json-schema`"
    for text in published.values():
        Draft202012Validator.check_schema(json.loads(text))


@pytest.mark.parametrize("scenario_name", SCENARIOS)
def test_every_event_the_simulator_emits_passes_its_document_and_every_stated_fault_fails_with_its_rule(
    scenario_name: str,
) -> None:
    scenario = load_scenario(scenario_name)
    records, _ = generate(scenario, seed=3, events=4000)
    stamp = simulated_stamp(scenario)
    faults: dict[str, set[str]] = {}
    for record in records:
        value = record.value(stamp)
        if oracle.rejection_reason(record.topic.value, value) is None:
            event = json.loads(value)
            assert violations(record.topic, event) == set(), (record.kind, event)
        elif record.kind.startswith("malformed:") and not _unstated(record.kind, record.topic):
            event = json.loads(value)
            rules = violations(record.topic, event)
            assert rules, f"{record.kind} passed the schema: {event}"
            faults.setdefault(record.kind, set()).update(rules)
    if any(r.kind.startswith("malformed:") and not _unstated(r.kind, r.topic) for r in records):
        assert faults
    # The rule each stated fault breaks, as the quarantine names it.
    expected = {
        "malformed:unknown_event_type": {"unknown_event_type"},
        "malformed:unsupported_version": {"unsupported_schema_version"},
        "malformed:missing_field": {"missing:user_id", "missing:product_id"},
        "malformed:wrong_type": {"invalid_type:quantity", "invalid_type:items", "invalid_timestamp:timestamp"},
        "malformed:negative_amount": {"negative:price", "negative:total_amount", "unknown_event_type"},
        "malformed:inconsistent_amount": {"unknown_event_type"},  # off carts and purchases: a blank event type
    }
    for kind, rules in faults.items():
        assert rules <= expected[kind], (kind, rules)


def test_each_keyword_a_record_breaks_is_named_with_the_quarantine_rule() -> None:
    valid = {
        "event_id": "e1",
        "event_type": "purchase",
        "schema_version": 1,
        "timestamp": "2026-11-01T09:30:00.125Z",
        "user_id": "u1",
        "session_id": "s1",
        "order_id": "o1",
        "items": [{"product_id": "p1", "quantity": 2, "unit_price": "5.00", "total_price": "10.00", "category": "c"}],
        "subtotal": "10.00",
        "discount_percent": "0.00",
        "discount_amount": "0.00",
        "total_amount": "10.00",
        "payment_method": "paypal",
        "shipping_method": "standard",
    }
    assert violations(EventType.PURCHASE, valid) == set()
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"user_id": "  "}, {"missing:user_id"}),
        ({"user_id": None}, {"missing:user_id"}),
        ({"event_type": "page_view"}, {"event_type_mismatch"}),
        ({"schema_version": 7}, {"unsupported_schema_version"}),
        ({"timestamp": "2026-11-01 09:30:00"}, {"invalid_timestamp:timestamp"}),
        ({"subtotal": 10.0}, {"invalid_decimal:subtotal"}),
        ({"subtotal": "10.0"}, {"invalid_decimal:subtotal"}),
        ({"total_amount": "-10.00"}, {"negative:total_amount"}),
        ({"payment_method": "cash"}, {"invalid_value:payment_method"}),
        ({"items": []}, {"empty:items"}),
        (
            {
                "items": [
                    {"product_id": "p1", "quantity": 0, "unit_price": "5.00", "total_price": "0.00", "category": "c"}
                ]
            },
            {"out_of_range:items.quantity"},
        ),
        (
            {"items": [{"quantity": 1, "unit_price": "5.00", "total_price": "5.00", "category": "c"}]},
            {"missing:items.product_id"},
        ),
        (
            {"shipping_address": {"street": "1 Main St", "city": "Lyon", "zip_code": "69001"}},
            {"missing:shipping_address.country"},
        ),
        ({"metadata": {"source": 3}}, {"invalid_type:metadata"}),
        ({"shipping_address": None, "metadata": None, "unknown_key": [1]}, set()),  # optional null, extra keys
    ]
    for change, rules in cases:
        assert violations(EventType.PURCHASE, valid | change) == rules, change
    update = {"event_id": "e2", "event_type": "product_update", "schema_version": 2, "product_id": "p1",
              "timestamp": "2026-11-01T09:30:00.125Z", "experiment_id": "x"}  # fmt: skip
    assert violations(EventType.PRODUCT_UPDATE, update | {"update_type": "price_change"}) == {"missing:new_price"}
    assert violations(EventType.PRODUCT_UPDATE, update | {"update_type": "inventory_update", "stock_level": -1}) == {
        "out_of_range:stock_level"
    }
    assert violations(EventType.PRODUCT_UPDATE, update | {"update_type": "rating_update", "rating": "4.50"}) == set()
