"""Spark schemas derived from the event contract: the loose schema used to parse JSON and the typed silver one.

Parsing uses a *loose* schema in which every scalar is a string: Spark's JSON reader then keeps the raw text of
any value, so validation rules (not the parser) decide what is wrong and can name the field.
"""

from __future__ import annotations

from pyspark.sql import types as T

from pipeline.contracts.events import CONTRACTS, EventType, FieldSpec, FieldType


def loose_payload_schema(unparsed: str) -> T.StructType:
    """The parse-time struct of a whole payload: every top-level field any contract names, as a string (nested
    objects and arrays keep their JSON text), then ``unparsed``, the payload's text when it is not one JSON
    object (the parser's corrupt-record column)."""
    names = dict.fromkeys(spec.name for contract in CONTRACTS.values() for spec in contract.fields)
    return T.StructType([T.StructField(name, T.StringType()) for name in (*names, unparsed)])


def loose_type(spec: FieldSpec) -> T.DataType:
    """The parse-time type of a field: strings all the way down, keeping the shape of structs and arrays."""
    if spec.type is FieldType.STRING_MAP:
        return T.MapType(T.StringType(), T.StringType())
    if spec.type is FieldType.STRUCT:
        return T.StructType([T.StructField(f.name, loose_type(f)) for f in spec.fields])
    if spec.type is FieldType.ARRAY:
        return T.ArrayType(T.StructType([T.StructField(f.name, loose_type(f)) for f in spec.fields]))
    return T.StringType()


def typed_type(spec: FieldSpec) -> T.DataType:
    """The silver type of a field."""
    match spec.type:
        case FieldType.STRING:
            return T.StringType()
        case FieldType.INT:
            return T.IntegerType()
        case FieldType.TIMESTAMP:
            return T.TimestampType()
        case FieldType.DECIMAL:
            return T.DecimalType(spec.precision, spec.scale)
        case FieldType.STRING_MAP:
            return T.MapType(T.StringType(), T.StringType())
        case FieldType.STRUCT:
            return T.StructType([T.StructField(f.name, typed_type(f)) for f in spec.fields])
        case FieldType.ARRAY:
            return T.ArrayType(T.StructType([T.StructField(f.name, typed_type(f)) for f in spec.fields]))
    raise AssertionError(spec.type)


# Columns every silver row carries besides the contract's fields, in this order.
LINEAGE_FIELDS: tuple[T.StructField, ...] = (
    T.StructField("event_time", T.TimestampType()),
    T.StructField("event_date", T.DateType()),
    T.StructField("is_late", T.BooleanType()),
    T.StructField("kafka_topic", T.StringType()),
    T.StructField("kafka_partition", T.IntegerType()),
    T.StructField("kafka_offset", T.LongType()),
    T.StructField("kafka_timestamp", T.TimestampType()),
    T.StructField("ingest_time", T.TimestampType()),
    T.StructField("batch_id", T.LongType()),
)


def silver_schema(event_type: EventType) -> T.StructType:
    """Contract fields (the JSON ``timestamp`` becomes ``event_time``) followed by the lineage columns.

    Columns are nullable in the table: validation, not the writer, guarantees required fields, so a write
    never fails on a nullability flag Spark could not infer.
    """
    fields = [
        T.StructField(spec.name, typed_type(spec)) for spec in CONTRACTS[event_type].fields if spec.name != "timestamp"
    ]
    return T.StructType(fields + list(LINEAGE_FIELDS))
