"""Spark schemas derived from the event contract: the typed silver row of each event type."""

from __future__ import annotations

from pyspark.sql import types as T

from pipeline.contracts.events import CONTRACTS, EventType, FieldSpec, FieldType


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
