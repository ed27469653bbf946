"""Bronze rows -> typed silver rows or quarantined rows, by the event contract's named rules.

Every function here is a pure transform: it neither reads nor writes, and works on batch frames (the tests, the
micro-batches of the stream) alike. The streaming sink decides where the rows go.

Rule ids (the ``failed_rules`` column of quarantine):

=================================  ============================================================================
``empty_payload``                  the record has no value (a Kafka tombstone; nothing else is checked)
``invalid_utf8``                   the value is not valid UTF-8 (nothing else is checked)
``oversized_payload``              the value is larger than ``stream.max_payload_bytes`` (nothing else checked)
``invalid_json``                   the value is not one JSON object (nothing else is checked)
``unknown_event_type``             ``event_type`` is not one of the five contract types
``event_type_mismatch``            ``event_type`` is valid but the record came on another type's topic
``unsupported_schema_version``     ``schema_version`` is not one of the validator's supported versions
                                   (``stream.supported_schema_versions``)
``unknown_topic``                  the record came on a topic that carries no event type
``missing:<field>``                a required field is absent, null or blank
``invalid_type:<field>``           a whole number, object or array field holds something else
``invalid_decimal:<field>``        an exact decimal is not a string with the declared decimals
``invalid_timestamp:<field>``      not ``YYYY-MM-DDTHH:MM:SS.mmmZ``
``invalid_value:<field>``          a value outside the field's closed set (page_type, payment_method, ...)
``negative:<field>``               a negative amount
``out_of_range:<field>``           quantity <= 0, discount over 100 %, rating over 5, negative stock
``empty:items``                    a purchase without items
``inconsistent:<field>``           arithmetic that does not add up (e.g. total_amount != subtotal - discount)
``duplicate``                      an earlier delivery of the same event_id is already in silver or earlier
                                   in the batch (decided by :mod:`pipeline.streaming.dedup`)
=================================  ============================================================================

Nested fields are named with dots, e.g. ``missing:shipping_address.city``, ``inconsistent:items.total_price``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.contracts.events import (
    CONTRACTS,
    ENVELOPE,
    SPARK_TIMESTAMP_PATTERN,
    SUPPORTED_SCHEMA_VERSIONS,
    TIMESTAMP_REGEX,
    EventType,
    FieldSpec,
    FieldType,
    topic_name,
)
from pipeline.contracts.spark_schemas import loose_payload_schema, loose_type, typed_type
from pipeline.tables import QUARANTINE_EVENTS, SILVER

FAILED_RULES = "failed_rules"
DUPLICATE_RULE = "duplicate"
_RAW = "_raw"  # struct: each top-level contract field's raw text; null when the payload is not one JSON object
# The parser's corrupt-record field: the payload's text when it is not one JSON object. No contract field starts
# with "_"; a payload carrying a key of this name is taken as unparseable (quarantined as invalid_json).
_UNPARSED = "_unparsed"
_PAYLOAD_STATE = "_payload_state"  # struct: is_utf8, is_oversized (each computed once per record)
_PARSED = "_parsed_"  # prefix of the loosely parsed struct/array/map fields
_RAW_PREFIX = "_raw_"  # prefix of the envelope's raw text kept for quarantine
_RAW_KEPT = ("event_type", "schema_version")
_KAFKA_COORDINATES = ("kafka_topic", "kafka_partition", "kafka_offset")

Rule = tuple[str, Callable[[Column, Column], Column]]  # (rule id, (raw text, typed value) -> "violated")


_INT_PATTERN = r"^-?\d{1,9}$"


def _decimal_pattern(spec: FieldSpec) -> str:
    return rf"^-?\d{{1,{spec.precision - spec.scale}}}\.\d{{{spec.scale}}}$"


def _flag(condition: Column) -> Column:
    """A violation condition that is never null: null means 'could not tell', which is not a violation."""
    return F.coalesce(condition, F.lit(False))


def _scalar_rules(spec: FieldSpec, path: str) -> Iterator[Rule]:
    """Rules of one scalar field. The typed value is null exactly when the raw text breaks the format, so the
    format rules test that instead of matching the text a second time."""
    if spec.required:
        if spec.type is FieldType.STRING:
            yield f"missing:{path}", lambda raw, typed: raw.isNull() | (F.trim(raw) == "")
        else:
            yield f"missing:{path}", lambda raw, typed: raw.isNull()
    if spec.type is FieldType.STRING and spec.allowed:
        allowed = list(spec.allowed)
        yield f"invalid_value:{path}", lambda raw, typed: raw.isNotNull() & ~raw.isin(*allowed)
    elif spec.type is FieldType.INT:
        yield f"invalid_type:{path}", lambda raw, typed: raw.isNotNull() & typed.isNull()
        if spec.positive:
            yield f"out_of_range:{path}", lambda raw, typed: typed <= 0
        elif spec.non_negative:
            yield f"out_of_range:{path}", lambda raw, typed: typed < 0
    elif spec.type is FieldType.DECIMAL:
        yield f"invalid_decimal:{path}", lambda raw, typed: raw.isNotNull() & typed.isNull()
        if spec.non_negative:
            yield f"negative:{path}", lambda raw, typed: typed < 0
    elif spec.type is FieldType.TIMESTAMP:
        yield f"invalid_timestamp:{path}", lambda raw, typed: raw.isNotNull() & typed.isNull()


def _typed(spec: FieldSpec, raw: Column) -> Column:
    """The silver value of a field from its raw text (or loosely parsed struct/array); null when malformed."""
    match spec.type:
        case FieldType.STRING:
            return raw
        case FieldType.INT:
            return F.when(raw.rlike(_INT_PATTERN), raw.try_cast(typed_type(spec)))
        case FieldType.DECIMAL:
            return F.when(raw.rlike(_decimal_pattern(spec)), raw.try_cast(typed_type(spec)))
        case FieldType.TIMESTAMP:
            return F.when(raw.rlike(TIMESTAMP_REGEX), F.try_to_timestamp(raw, F.lit(SPARK_TIMESTAMP_PATTERN)))
        case FieldType.STRING_MAP:
            return raw
        case FieldType.STRUCT:
            return F.when(raw.isNotNull(), F.struct(*[_typed(f, raw[f.name]).alias(f.name) for f in spec.fields]))
        case FieldType.ARRAY:
            return F.transform(raw, lambda x: F.struct(*[_typed(f, x[f.name]).alias(f.name) for f in spec.fields]))
    raise AssertionError(spec.type)


def _element_rule(violated: Callable[[Column, Column], Column], spec: FieldSpec) -> Callable[[Column], Column]:
    # Spark builds one lambda variable per parameter, so the function must take exactly the element.
    return lambda element: _flag(violated(element[spec.name], _typed(spec, element[spec.name])))


def _field_violations(spec: FieldSpec, typed: Column) -> Iterator[tuple[str, Column]]:
    """(rule id, violated?) for a top-level field: its raw text in ``_raw``, its typed value ``typed``."""
    raw = F.col(_RAW)[spec.name]
    if spec.type in (FieldType.STRUCT, FieldType.ARRAY, FieldType.STRING_MAP):
        parsed = F.col(_PARSED + spec.name)
        if spec.required:
            yield f"missing:{spec.name}", raw.isNull()
        yield f"invalid_type:{spec.name}", raw.isNotNull() & parsed.isNull()
        if spec.type is FieldType.STRUCT:
            for sub in spec.fields:
                for rule_id, violated in _scalar_rules(sub, f"{spec.name}.{sub.name}"):
                    yield rule_id, parsed.isNotNull() & violated(parsed[sub.name], typed[sub.name])
        elif spec.type is FieldType.ARRAY:
            yield f"empty:{spec.name}", F.size(parsed) == 0
            for sub in spec.fields:
                for rule_id, violated in _scalar_rules(sub, f"{spec.name}.{sub.name}"):
                    yield rule_id, F.exists(parsed, _element_rule(violated, sub))
        return
    if spec.name in ("event_type", "schema_version"):
        return  # envelope rules below give these their own ids
    for rule_id, violated in _scalar_rules(spec, spec.name):
        yield rule_id, violated(raw, typed)


def _envelope_violations(event_type: EventType, supported_versions: Sequence[int]) -> Iterator[tuple[str, Column]]:
    raw_type = F.col(_RAW)["event_type"]
    raw_version = F.col(_RAW)["schema_version"]
    yield "missing:event_type", raw_type.isNull()
    yield "unknown_event_type", raw_type.isNotNull() & ~raw_type.isin(*[e.value for e in EventType])
    yield "event_type_mismatch", raw_type.isin(*[e.value for e in EventType if e is not event_type])
    yield "missing:schema_version", raw_version.isNull()
    yield (
        "unsupported_schema_version",
        raw_version.isNotNull() & ~raw_version.isin(*[str(v) for v in supported_versions]),
    )


def _decimal_sum(array: Column, field: str) -> Column:
    zero = F.lit(0).cast(T.DecimalType(18, 2))
    return F.aggregate(array, zero, lambda acc, x: (acc + x[field]).cast(T.DecimalType(18, 2)))


def _consistency_violations(event_type: EventType, c: Callable[[str], Column]) -> Iterator[tuple[str, Column]]:
    """Cross-field rules over typed values ``c(name)`` (a null operand means another rule already failed)."""
    if event_type is EventType.ADD_TO_CART:
        yield "inconsistent:total_value", c("total_value") != c("quantity") * c("price")
    elif event_type is EventType.PURCHASE:
        yield (
            "inconsistent:items.total_price",
            F.exists(c("items"), lambda x: _flag(x["total_price"] != x["quantity"] * x["unit_price"])),
        )
        yield "inconsistent:subtotal", c("subtotal") != _decimal_sum(c("items"), "total_price")
        yield "out_of_range:discount_percent", c("discount_percent") > 100
        expected_discount = F.round(c("subtotal") * c("discount_percent") / F.lit(100), 2)
        yield "inconsistent:discount_amount", c("discount_amount") != expected_discount
        yield "inconsistent:total_amount", c("total_amount") != c("subtotal") - c("discount_amount")
    elif event_type is EventType.PRODUCT_UPDATE:
        yield "missing:new_price", (c("update_type") == "price_change") & c("new_price").isNull()
        yield "missing:stock_level", (c("update_type") == "inventory_update") & c("stock_level").isNull()
        yield "missing:rating", (c("update_type") == "rating_update") & c("rating").isNull()
        yield "out_of_range:rating", c("rating") > 5


def _typed_column(event_type: EventType) -> str:
    return f"_typed_{event_type.value}"


class EventValidator:
    """The contract's rules as Spark column expressions, built once and applied to every micro-batch.

    One pass handles all event types: each record is checked against the contract of its topic's event type,
    and its typed values land in that type's struct column. Building the expressions (hundreds of them) costs
    more than applying them to a few thousand rows, hence the reuse.
    """

    def __init__(
        self,
        topic_prefix: str,
        max_payload_bytes: int,
        supported_versions: Sequence[int] = SUPPORTED_SCHEMA_VERSIONS,
    ) -> None:
        self.topics = {event_type: topic_name(topic_prefix, event_type) for event_type in EventType}
        topic = F.col("kafka_topic")
        value = F.col("value")
        state = F.col(_PAYLOAD_STATE)
        is_utf8, is_oversized = state["is_utf8"], state["is_oversized"]
        self._check_payload = [
            F.col("*"),
            F.struct(
                F.is_valid_utf8(value).alias("is_utf8"),
                (F.octet_length(value) > max_payload_bytes).alias("is_oversized"),
            ).alias(_PAYLOAD_STATE),
        ]
        payload = F.when(is_utf8 & ~is_oversized, value.cast("string"))
        # Every top-level field the contracts name, as raw text, in a struct: a field is then read by its position
        # instead of a scan of a map's keys (those scans were a fifth of validation's CPU). A repeated key keeps
        # its last value, as Python's and JavaScript's JSON parsers do; keys no contract names are not kept.
        self._parse = [
            F.col("*"),
            F.from_json(
                payload,
                loose_payload_schema(_UNPARSED).simpleString(),
                {"columnNameOfCorruptRecord": _UNPARSED, "mode": "PERMISSIVE"},
            ).alias(_RAW),
        ]
        # Nothing of a payload that is not one JSON object counts, not even the fields read before the parser
        # failed (a cut-off object): like an unparseable one, it has no event id, time or day.
        self._keep_parsed = F.when(F.col(_RAW)[_UNPARSED].isNull(), F.col(_RAW))

        complex_fields: dict[str, tuple[FieldSpec, Column]] = {}
        for event_type, contract in CONTRACTS.items():
            for spec in contract.fields:
                if spec.type in (FieldType.STRUCT, FieldType.ARRAY, FieldType.STRING_MAP):
                    condition = complex_fields.get(spec.name, (spec, F.lit(False)))[1]
                    complex_fields[spec.name] = (spec, condition | (topic == self.topics[event_type]))
        self._parse_complex = [F.col("*")] + [
            F.when(on_topic, F.from_json(F.col(_RAW)[name], loose_type(spec).simpleString())).alias(_PARSED + name)
            for name, (spec, on_topic) in complex_fields.items()
        ]

        raw = F.col(_RAW)
        # The event time is common to every type: typed once, outside the per-type structs.
        timestamp_spec = next(f for f in ENVELOPE if f.name == "timestamp")
        typed = [F.col("*"), _typed(timestamp_spec, raw["timestamp"]).alias("event_time")]
        for event_type, contract in CONTRACTS.items():
            fields = [
                _typed(f, F.col(_PARSED + f.name) if f.name in complex_fields else raw[f.name]).alias(f.name)
                for f in contract.fields
                if f.name != "timestamp"
            ]
            typed.append(F.when(topic == self.topics[event_type], F.struct(*fields)).alias(_typed_column(event_type)))
        self._typed = typed

        failed = (
            F.when(value.isNull(), F.array(F.lit("empty_payload")))
            .when(~is_utf8, F.array(F.lit("invalid_utf8")))
            .when(is_oversized, F.array(F.lit("oversized_payload")))
            .when(raw.isNull(), F.array(F.lit("invalid_json")))
        )
        no_failures = F.array().cast("array<string>")
        for event_type, contract in CONTRACTS.items():
            struct = F.col(_typed_column(event_type))
            violations = [
                *_envelope_violations(event_type, supported_versions),
                *(
                    v
                    for f in contract.fields
                    for v in _field_violations(f, F.col("event_time") if f.name == "timestamp" else struct[f.name])
                ),
                *_consistency_violations(event_type, struct.getField),
            ]
            flags = [_flag(cond) for _, cond in violations]
            # Most records are valid: test the rules with short-circuiting ORs, name them only on failure.
            any_failed = functools.reduce(lambda a, b: a | b, flags)
            names = F.filter(
                F.array(*[F.when(flag, F.lit(rule_id)) for (rule_id, _), flag in zip(violations, flags, strict=True)]),
                lambda x: x.isNotNull(),
            )
            failed = failed.when(topic == self.topics[event_type], F.when(any_failed, names).otherwise(no_failures))
        self._validate = [
            F.col("*"),
            failed.otherwise(F.array(F.lit("unknown_topic"))).alias(FAILED_RULES),
            raw["event_id"].alias("event_id"),
            F.coalesce(*[F.when(topic == t, F.lit(e.value)) for e, t in self.topics.items()]).alias("_event_type"),
            F.to_date(F.col("event_time")).alias("event_date"),
            # What quarantine keeps of the envelope as sent; the rest of the raw and loosely parsed text is dropped
            # here, so a materialized batch holds each record once, typed.
            *[raw[name].alias(_RAW_PREFIX + name) for name in _RAW_KEPT],
        ]
        self._dropped = [_PAYLOAD_STATE, _RAW, *(_PARSED + name for name in complex_fields)]

    def validate(self, bronze_df: DataFrame) -> DataFrame:
        """Bronze rows plus ``failed_rules`` (empty when valid), ``event_id``, ``event_time``, ``event_date``
        and one typed struct per event type."""
        return (
            bronze_df.select(*self._check_payload)
            .select(*self._parse)
            .withColumn(_RAW, self._keep_parsed)
            .select(*self._parse_complex)
            .select(*self._typed)
            .select(*self._validate)
            .drop(*self._dropped)
        )


def with_late_flag(validated_df: DataFrame, watermark: Column) -> DataFrame:
    """``is_late``: the event happened before ``watermark`` (never null)."""
    return validated_df.withColumn("is_late", _flag(F.col("event_time") < watermark))


def filter_valid(validated_df: DataFrame) -> DataFrame:
    return validated_df.filter(F.size(F.col(FAILED_RULES)) == 0)


def with_duplicates(validated_df: DataFrame, duplicates_df: DataFrame | None) -> DataFrame:
    """Add ``is_duplicate``: the row's Kafka coordinates are among ``duplicates_df``'s (None: no duplicates).

    Which deliveries are duplicates is decided by :mod:`pipeline.streaming.dedup`; the (few) coordinates meet
    the wide rows in a broadcast join, so those never move.
    """
    if duplicates_df is None:
        return validated_df.withColumn("is_duplicate", F.lit(False))
    coordinates = list(_KAFKA_COORDINATES)
    marked = duplicates_df.select(*coordinates).distinct().withColumn("_duplicate", F.lit(True))
    return (
        validated_df.join(F.broadcast(marked), on=coordinates, how="left")
        .withColumn("is_duplicate", F.coalesce(F.col("_duplicate"), F.lit(False)))
        .drop("_duplicate")
    )


def filter_event_type(validated_df: DataFrame, event_type: EventType) -> DataFrame:
    return validated_df.filter(F.col("_event_type") == F.lit(event_type.value))


def to_silver(valid_df: DataFrame, event_type: EventType) -> DataFrame:
    """Rows of one event type projected onto its silver table's columns, in order."""
    typed = F.col(_typed_column(event_type))
    columns = {f.name: typed[f.name] for f in CONTRACTS[event_type].fields}
    return filter_event_type(valid_df, event_type).select(
        *[
            columns[name].alias(name) if name in columns else F.col(name)
            for name in SILVER[event_type].schema.fieldNames()
        ]
    )


def to_quarantine(rejected_df: DataFrame) -> DataFrame:
    """Project rejected rows (validated or duplicate) onto the quarantine table's columns."""
    return rejected_df.select(
        *_KAFKA_COORDINATES,
        "kafka_timestamp",
        "value",
        "event_id",
        *[F.col(_RAW_PREFIX + name).alias(name) for name in _RAW_KEPT],
        "event_date",
        FAILED_RULES,
        "ingest_time",
        "batch_id",
    ).select(*QUARANTINE_EVENTS.schema.fieldNames())
