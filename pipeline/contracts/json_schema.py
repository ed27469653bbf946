"""The event contract as JSON Schema documents (draft 2020-12), one per event type and schema version.

Producers written in any language validate their events against these before sending them; the documents are
generated from :mod:`pipeline.contracts.events`, the contract's one definition, and published in
``contract/json-schema/`` (``shoplake contract export DIR`` writes them anywhere; a unit test keeps the tracked
copies current).

A document says everything the stream's validator checks on one record alone, except what JSON Schema cannot
state: arithmetic across fields (``inconsistent:*``), upper bounds of decimals carried as strings
(``out_of_range:discount_percent``, ``out_of_range:rating``), whether a timestamp of the right shape names a real
instant (February 30th), the payload's size and encoding, and duplicates. :func:`quarantine_rules` names a
failed validation with the quarantine's rule ids (``docs/contract.md``), so a producer's check and the stream's
verdict read the same.

Each field's schema carries ``x-contract-type`` (the contract's field type), which :func:`quarantine_rules` reads
to name the rule a failed keyword stands for.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pipeline.contracts.events import (
    CONTRACTS,
    SCHEMA_VERSION,
    SUPPORTED_SCHEMA_VERSIONS,
    TIMESTAMP_REGEX,
    EventType,
    FieldSpec,
    FieldType,
)

DIALECT = "https://json-schema.org/draft/2020-12/schema"
MAX_INT_DIGITS = 9  # an INT column holds any whole number of up to nine digits (the validator's bound)
CONTRACT_TYPE = "x-contract-type"
# ``price_change`` needs ``new_price``, and so on: the one cross-field rule JSON Schema states (``if``/``then``).
_REQUIRED_BY_UPDATE_TYPE = {"price_change": "new_price", "inventory_update": "stock_level", "rating_update": "rating"}
# Rules of the quarantine the documents never find (see the module docstring); ``inconsistent:*`` besides.
UNSTATED_RULES = frozenset(
    {
        "empty_payload",
        "invalid_utf8",
        "oversized_payload",
        "invalid_json",
        "unknown_topic",
        "out_of_range:discount_percent",
        "out_of_range:rating",
        "duplicate",
    }
)


def stated(rule: str) -> bool:
    """Whether the documents can find a record breaking quarantine rule ``rule``."""
    return rule not in UNSTATED_RULES and not rule.startswith("inconsistent:")


def schema_path(version: int, event_type: EventType) -> Path:
    """Where a document lives, relative to the folder it is exported to."""
    return Path(f"v{version}") / f"{event_type.value}.schema.json"


def _decimal_pattern(spec: FieldSpec) -> str:
    return f"^-?[0-9]{{1,{spec.precision - spec.scale}}}\\.[0-9]{{{spec.scale}}}$"


def _field_schema(spec: FieldSpec, version: int) -> dict[str, Any]:
    schema: dict[str, Any] = {CONTRACT_TYPE: spec.type.value}
    if spec.description:
        schema["description"] = spec.description
    if spec.type is FieldType.STRING:
        schema["type"] = "string"
        if spec.required:
            schema["pattern"] = r"\S"  # blank counts as missing
        if spec.allowed:
            schema["enum"] = list(spec.allowed)
    elif spec.type is FieldType.INT:
        bound = 10**MAX_INT_DIGITS
        schema |= {"type": "integer", "exclusiveMinimum": -bound, "exclusiveMaximum": bound}
        if spec.positive:
            schema["minimum"] = 1
        elif spec.non_negative:
            schema["minimum"] = 0
    elif spec.type is FieldType.DECIMAL:
        schema |= {"type": "string", "pattern": _decimal_pattern(spec)}
        if spec.non_negative:
            schema["not"] = {"type": "string", "pattern": "^-"}
    elif spec.type is FieldType.TIMESTAMP:
        # ``\d`` is any Unicode digit to some validators; the contract means 0-9.
        schema |= {"type": "string", "pattern": TIMESTAMP_REGEX.replace("\\d", "[0-9]")}
    elif spec.type is FieldType.STRING_MAP:
        schema |= {"type": "object", "additionalProperties": {"type": ["string", "null"]}}
    elif spec.type is FieldType.STRUCT:
        schema |= _object_schema(spec.fields, version)
    elif spec.type is FieldType.ARRAY:
        schema |= {"type": "array", "minItems": 1, "items": _object_schema(spec.fields, version)}
    if not spec.required:  # an optional field may also be null
        schema["type"] = [schema["type"], "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    return schema


def _object_schema(fields: Iterable[FieldSpec], version: int) -> dict[str, Any]:
    present = [f for f in fields if f.since_version <= version]
    return {
        "type": "object",
        "properties": {f.name: _field_schema(f, version) for f in present},
        "required": [f.name for f in present if f.required],
    }


def json_schema(event_type: EventType, version: int) -> dict[str, Any]:
    """The JSON Schema document of ``event_type`` events of schema ``version``."""
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        raise ValueError(f"the contract defines schema versions {SUPPORTED_SCHEMA_VERSIONS}, not {version}")
    document: dict[str, Any] = {
        "$schema": DIALECT,
        "$id": f"urn:shoplake:contract:v{version}:{event_type.value}",
        "title": f"{event_type.value} event, schema version {version}",
        "description": "Generated from pipeline/contracts/events.py; docs/contract.md describes the contract. "
        "Keys the contract does not name are allowed and ignored by the stream.",
        **_object_schema(CONTRACTS[event_type].fields, version),
    }
    document["properties"]["event_type"]["const"] = event_type.value
    document["properties"]["schema_version"]["const"] = version
    if event_type is EventType.PRODUCT_UPDATE:
        document["allOf"] = [
            {"if": {"properties": {"update_type": {"const": kind}}, "required": ["update_type"]},
             "then": {"required": [field]}}
            for kind, field in _REQUIRED_BY_UPDATE_TYPE.items()
        ]  # fmt: skip
    return document


def documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every document with its path: each event type in each supported schema version."""
    for version in SUPPORTED_SCHEMA_VERSIONS:
        for event_type in EventType:
            yield schema_path(version, event_type), json_schema(event_type, version)


def render(document: dict[str, Any]) -> str:
    """A document as it is written to a file: indented, keys in the contract's order, a final newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def export(folder: Path) -> list[Path]:
    """Write every document under ``folder``; returns the files written."""
    written = []
    for relative, document in documents():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(document), encoding="utf-8")
        written.append(path)
    return written


@functools.cache
def _validator(event_type: EventType, version: int) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(json_schema(event_type, version))


def violations(event_type: EventType, event: dict[str, Any]) -> set[str]:
    """The quarantine rules ``event`` breaks that its document states: checked against the document of its own
    schema version, or of the version producers write by default when its version is not one the contract
    defines (which is itself ``unsupported_schema_version``)."""
    version = event.get("schema_version")
    supported = isinstance(version, int) and not isinstance(version, bool) and version in SUPPORTED_SCHEMA_VERSIONS
    return quarantine_rules(_validator(event_type, version if supported else SCHEMA_VERSION).iter_errors(event))


def _field_name(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path if isinstance(p, str))


def quarantine_rules(errors: Iterable[Any]) -> set[str]:
    """The quarantine's rule ids for the errors of a validation (``jsonschema``'s ``ValidationError`` objects)."""
    rules: set[str] = set()
    for error in errors:
        keyword, field = error.validator, _field_name(error.absolute_path)
        contract_type = error.schema.get(CONTRACT_TYPE) if isinstance(error.schema, dict) else None
        if keyword == "required":
            missing = [name for name in error.validator_value if name not in error.instance]
            rules |= {f"missing:{_field_name([*error.absolute_path, name])}" for name in missing}
        elif field == "event_type" and keyword in ("const", "enum", "type", "pattern"):
            known = isinstance(error.instance, str) and error.instance in {e.value for e in EventType}
            rules.add("event_type_mismatch" if known else "unknown_event_type")
        elif field == "schema_version":
            rules.add("unsupported_schema_version")
        elif error.instance is None and keyword == "type" and contract_type is not None:
            rules.add(f"missing:{field}")  # a null required field (an optional one may be null)
        elif contract_type == FieldType.DECIMAL.value and keyword in ("type", "pattern"):
            rules.add(f"invalid_decimal:{field}")
        elif contract_type == FieldType.TIMESTAMP.value and keyword in ("type", "pattern"):
            rules.add(f"invalid_timestamp:{field}")
        elif keyword == "pattern":
            rules.add(f"missing:{field}")  # a required string that is blank
        elif keyword == "enum":
            rules.add(f"invalid_value:{field}")
        elif keyword == "not":
            rules.add(f"negative:{field}")
        elif keyword == "minimum":
            rules.add(f"out_of_range:{field}")
        elif keyword == "minItems":
            rules.add(f"empty:{field}")
        elif contract_type is None and keyword == "type":  # a value of ``metadata`` that is not a string
            rules.add(f"invalid_type:{_field_name(list(error.absolute_path)[:-1])}")
        else:  # type, exclusive bounds (more than nine digits)
            rules.add(f"invalid_type:{field or 'event'}")
    # A number too large to be a whole number of the field is its type's fault, not its range's.
    return {r for r in rules if not (r.startswith("out_of_range:") and f"invalid_type:{r[13:]}" in rules)}
