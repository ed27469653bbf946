"""Bronze rows -> typed silver rows or quarantined rows, by the event contract's named rules.

Validation is one Spark function, ``shoplake.spark.ContractValidator`` (Java, ``jvm/shoplake-spark``, built by
``shoplake jars``), configured here from the contract in :mod:`pipeline.contracts.events`: it parses each
payload once and checks every rule of its topic's event type in one pass. The contract's rules as Spark
expressions (hundreds of them) cost the stream about a second per micro-batch to plan and generate code for;
one function is planned in milliseconds (``docs/benchmarks/log/2026-12-04-contract-as-one-function.md``). Every
other function here is a pure transform: it neither reads nor writes, and works on batch frames (the tests, the
micro-batches of the stream) alike. The streaming sink decides where the rows go.

Rule ids (the ``failed_rules`` column of quarantine):

=================================  ============================================================================
``empty_payload``                  the record has no value (a Kafka tombstone; nothing else is checked)
``invalid_utf8``                   the value is not valid UTF-8 (nothing else is checked)
``oversized_payload``              the value is larger than ``stream.max_payload_bytes`` (nothing else checked)
``invalid_json``                   the value is not one JSON object (nothing else is checked)
``unknown_topic``                  the record came on a topic that carries no event type
``missing:event_type``             ``event_type`` is absent or null
``unknown_event_type``             ``event_type`` is not one of the five contract types
``event_type_mismatch``            ``event_type`` is valid but the record came on another type's topic
``missing:schema_version``         ``schema_version`` is absent or null
``unsupported_schema_version``     ``schema_version`` is not a whole number among the validator's supported
                                   versions (``stream.supported_schema_versions``)
``missing:<field>``                a required field is absent, null or blank
``invalid_type:<field>``           a field holds another JSON type than its own (a string, a whole number of
                                   at most nine digits, an object, an array of objects, an object of strings)
``invalid_decimal:<field>``        an exact decimal is not a string with the declared decimals
``invalid_timestamp:<field>``      not a string ``YYYY-MM-DDTHH:MM:SS.mmmZ`` naming a real instant
``invalid_value:<field>``          a value outside the field's closed set (page_type, payment_method, ...)
``negative:<field>``               a negative amount
``out_of_range:<field>``           quantity <= 0, discount over 100 %, rating over 5, negative stock
``empty:items``                    a purchase without items
``inconsistent:<field>``           arithmetic that does not add up (e.g. total_amount != subtotal - discount)
``duplicate``                      an earlier delivery of the same event_id is already in silver or earlier
                                   in the batch (decided by :mod:`pipeline.streaming.dedup`)
=================================  ============================================================================

Nested fields are named with dots, e.g. ``missing:shipping_address.city``, ``inconsistent:items.total_price``.
A record lists every rule it breaks: the envelope's first, then each field's in the contract's order, then the
cross-field ones. A key repeated within one object counts with its last value; keys no contract names are
ignored (they stay in bronze).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from py4j.java_gateway import JavaClass
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.contracts.events import (
    CONTRACTS,
    SUPPORTED_SCHEMA_VERSIONS,
    TIMESTAMP_REGEX,
    EventType,
    FieldSpec,
    topic_name,
)
from pipeline.contracts.spark_schemas import typed_type
from pipeline.errors import ShoplakeError
from pipeline.tables import KAFKA_COORDINATES, QUARANTINE_EVENTS, SILVER

FAILED_RULES = "failed_rules"
DUPLICATE_RULE = "duplicate"
VALIDATOR_CLASS = "shoplake.spark.ContractValidator"
_VERDICT = "_verdict"
_RAW_PREFIX = "_raw_"  # the envelope's raw text kept for quarantine
_RAW_KEPT = ("event_type", "schema_version")


class ValidatorMissingError(ShoplakeError):
    """The validation function's jar is not on Spark's classpath."""


def _flag(condition: Column) -> Column:
    """A condition that is never null: null means 'could not tell', which is not a violation."""
    return F.coalesce(condition, F.lit(False))


def _typed_column(event_type: EventType) -> str:
    return f"_typed_{event_type.value}"


def _field_description(spec: FieldSpec) -> dict[str, Any]:
    """A contract field as the validator reads it."""
    return {
        "name": spec.name,
        "type": spec.type.value,
        "required": spec.required,
        "allowed": list(spec.allowed),
        "precision": spec.precision,
        "scale": spec.scale,
        "non_negative": spec.non_negative,
        "positive": spec.positive,
        "fields": [_field_description(f) for f in spec.fields],
    }


def validator_config(topic_prefix: str, max_payload_bytes: int, supported_versions: Sequence[int]) -> str:
    """The validator's configuration: the contract of every event type and what the stream accepts, as JSON."""
    return json.dumps(
        {
            "topics": {topic_name(topic_prefix, e): e.value for e in EventType},
            "event_types": [e.value for e in EventType],
            "timestamp_regex": TIMESTAMP_REGEX,
            "supported_versions": sorted(supported_versions),
            "max_payload_bytes": max_payload_bytes,
            "contracts": {e.value: [_field_description(f) for f in CONTRACTS[e].fields] for e in EventType},
        },
        sort_keys=True,
    )


def verdict_type() -> T.StructType:
    """What the validator returns per record, in its order: the failed rules, the envelope as sent, and one
    struct of typed fields per event type (only the record's own is filled; the event time has its column)."""
    return T.StructType(
        [
            T.StructField(FAILED_RULES, T.ArrayType(T.StringType())),
            T.StructField("event_id", T.StringType()),
            T.StructField("event_time", T.TimestampType()),
            T.StructField("event_date", T.DateType()),
            T.StructField("_event_type", T.StringType()),
            *(T.StructField(_RAW_PREFIX + name, T.StringType()) for name in _RAW_KEPT),
            *(
                T.StructField(
                    _typed_column(event_type),
                    T.StructType(
                        [T.StructField(f.name, typed_type(f)) for f in contract.fields if f.name != "timestamp"]
                    ),
                )
                for event_type, contract in CONTRACTS.items()
            ),
        ]
    )


class EventValidator:
    """The contract's rules as one Spark function over (topic, value), configured once per validator."""

    def __init__(
        self,
        topic_prefix: str,
        max_payload_bytes: int,
        supported_versions: Sequence[int] = SUPPORTED_SCHEMA_VERSIONS,
    ) -> None:
        self.topics = {event_type: topic_name(topic_prefix, event_type) for event_type in EventType}
        self.config = validator_config(topic_prefix, max_payload_bytes, supported_versions)
        # One registered function per configuration: validators of other settings can share a session.
        self.function_name = "shoplake_validate_" + hashlib.sha256(self.config.encode()).hexdigest()[:12]

    def _register(self, spark: SparkSession) -> None:
        if spark.catalog.functionExists(self.function_name):
            return
        jvm = spark.sparkContext._jvm
        assert jvm is not None
        validator = jvm
        for part in VALIDATOR_CLASS.split("."):
            validator = getattr(validator, part)
        if not isinstance(validator, JavaClass):
            raise ValidatorMissingError(
                f"{VALIDATOR_CLASS} is not on Spark's classpath: build it with `shoplake jars` "
                "(it compiles jvm/shoplake-spark into the Spark jars folder)"
            )
        returns = spark._jsparkSession.parseDataType(verdict_type().json())
        spark._jsparkSession.udf().register(self.function_name, validator(self.config), returns)

    def validate(self, bronze_df: DataFrame) -> DataFrame:
        """Bronze rows plus ``failed_rules`` (empty when valid), ``event_id``, ``event_time``, ``event_date``,
        ``_event_type`` (the topic's), the raw envelope kept for quarantine and one typed struct per event type."""
        self._register(bronze_df.sparkSession)
        verdict = F.call_function(self.function_name, F.col("kafka_topic"), F.col("value"))
        return bronze_df.select("*", verdict.alias(_VERDICT)).select(*bronze_df.columns, f"{_VERDICT}.*")


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
    coordinates = list(KAFKA_COORDINATES)
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
        *KAFKA_COORDINATES,
        "kafka_timestamp",
        "value",
        "event_id",
        *[F.col(_RAW_PREFIX + name).alias(name) for name in _RAW_KEPT],
        "event_date",
        FAILED_RULES,
        "ingest_time",
        "batch_id",
    ).select(*QUARANTINE_EVENTS.schema.fieldNames())
