"""The contract is defined once and everything derives from it."""

from __future__ import annotations

from pathlib import Path

from pipeline.contracts.events import CONTRACTS, EventType, all_topics, topic_name
from pipeline.contracts.spark_schemas import silver_schema
from pipeline.tables import ALL_TABLES, SILVER

DOCS = Path(__file__).resolve().parents[2] / "docs" / "contract.md"


def test_every_contract_field_is_documented() -> None:
    text = DOCS.read_text()
    missing = {
        f"{event_type.value}.{field.name}"
        for event_type, contract in CONTRACTS.items()
        for spec in contract.fields
        for field in (spec, *spec.fields)
        if f"`{field.name}`" not in text
    }
    assert not missing


def test_each_event_type_has_its_own_topic() -> None:
    assert all_topics("shop") == [topic_name("shop", event_type) for event_type in EventType]
    assert len(set(all_topics("shop"))) == len(EventType)


def test_silver_tables_follow_the_contract() -> None:
    for event_type, spec in SILVER.items():
        assert spec.schema == silver_schema(event_type)
        contract_fields = {f.name for f in CONTRACTS[event_type].fields} - {"timestamp"}
        assert contract_fields <= set(spec.schema.fieldNames())


def test_table_names_are_unique() -> None:
    names = [spec.identifier for spec in ALL_TABLES]
    assert len(names) == len(set(names))
