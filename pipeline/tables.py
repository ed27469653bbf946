"""Every table of the lakehouse, with its schema and partitioning: the one place that lists them.

Partitioning follows how each table is read, so that every read of the pipeline filters on a partition column:

- ``bronze.events`` and ``quarantine.events`` by ``days(kafka_timestamp)``: audits and ``gold.data_quality``
  select records by the day they reached Kafka (a range on ``kafka_timestamp``, which Iceberg prunes); undated
  garbage still has an arrival day. ``quarantine.events`` is also partitioned by ``event_date``, because
  ``gold.data_quality`` counts a day's rejected records by event day, and a late record arrives days later.
- silver event tables by ``event_date``, the day gold builds, and by ``days(kafka_timestamp)``, the day
  ``gold.data_quality``'s conservation audit selects. Nearly every record reaches Kafka on its event day, so the
  second field adds files only for late records and those around midnight.
- the roll-ups by the day of their time column: a fold's merge prunes to the days it can touch.
- gold tables by ``event_date``, the day they summarize: a build replaces exactly its days, and
  ``gold.customer_lifetime`` (the lifetime state of every user as of a day) is read one day at a time.
- ``ops`` tables are unpartitioned: one small row per batch or maintenance run, read whole.

Names are ``<namespace>.<table>`` inside the configured Iceberg catalog (``lake`` by default), so
``silver.purchases`` is ``lake.silver.purchases`` in Spark SQL and ``("silver", "purchases")`` in PyIceberg.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from pyspark.sql import types as T

from pipeline.contracts.events import EventType
from pipeline.contracts.spark_schemas import silver_schema

# A Kafka record's coordinates: the columns that name one record in bronze, silver and quarantine alike.
KAFKA_COORDINATES = ("kafka_topic", "kafka_partition", "kafka_offset")


class Layer(StrEnum):
    BRONZE = "bronze"
    SILVER = "silver"
    GOLD = "gold"
    QUARANTINE = "quarantine"
    OPS = "ops"


@dataclass(frozen=True)
class PartitionField:
    """An Iceberg partition transform: ``identity`` or ``days`` of a column."""

    transform: str
    column: str

    def __post_init__(self) -> None:
        if self.transform not in ("identity", "days"):
            raise ValueError(f"unsupported partition transform {self.transform!r}")


@dataclass(frozen=True)
class TableSpec:
    layer: Layer
    name: str
    schema: T.StructType
    partition_by: tuple[PartitionField, ...]
    description: str
    # Streaming tables are appended every few seconds: skip the pre-write shuffle, write fan-out.
    properties: dict[str, str] = field(default_factory=dict)
    date_column: str | None = None  # the DATE column a daily partition key selects, if any
    key_columns: tuple[str, ...] = ()  # what identifies a row (gold tables)

    @property
    def identifier(self) -> str:
        return f"{self.layer.value}.{self.name}"

    def qualified(self, catalog: str) -> str:
        return f"{catalog}.{self.identifier}"


_COMMON_PROPERTIES = {
    "format-version": "2",
    "write.parquet.compression-codec": "zstd",
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "100",
}
_STREAMING_PROPERTIES = {
    **_COMMON_PROPERTIES,
    "write.distribution-mode": "none",
    "write.spark.fanout.enabled": "true",
    "commit.retry.num-retries": "10",
    # A commit every second must not rewrite manifests: the maintenance job merges them (rewrite_manifests).
    "commit.manifest-merge.enabled": "false",
}

BRONZE_EVENTS = TableSpec(
    Layer.BRONZE,
    "events",
    T.StructType(
        [
            T.StructField("kafka_topic", T.StringType()),
            T.StructField("kafka_partition", T.IntegerType()),
            T.StructField("kafka_offset", T.LongType()),
            T.StructField("kafka_timestamp", T.TimestampType()),
            T.StructField("kafka_key", T.BinaryType()),
            T.StructField("value", T.BinaryType()),
            T.StructField("ingest_time", T.TimestampType()),
            T.StructField("batch_id", T.LongType()),
        ]
    ),
    (PartitionField("days", "kafka_timestamp"),),
    "Every Kafka record, value untouched, with its coordinates. One row per (topic, partition, offset).",
    _STREAMING_PROPERTIES,
)

SILVER_TABLE_NAMES: dict[EventType, str] = {
    EventType.PAGE_VIEW: "page_views",
    EventType.ADD_TO_CART: "cart_events",
    EventType.PURCHASE: "purchases",
    EventType.USER_SESSION: "user_sessions",
    EventType.PRODUCT_UPDATE: "product_updates",
}

SILVER: dict[EventType, TableSpec] = {
    event_type: TableSpec(
        Layer.SILVER,
        table_name,
        silver_schema(event_type),
        (PartitionField("identity", "event_date"), PartitionField("days", "kafka_timestamp")),
        f"Valid, deduplicated {event_type.value} events, typed by the contract.",
        _STREAMING_PROPERTIES,
        date_column="event_date",
    )
    for event_type, table_name in SILVER_TABLE_NAMES.items()
}

_PRODUCT_UPDATE_FIELDS = {f.name: f.dataType for f in SILVER[EventType.PRODUCT_UPDATE].schema.fields}

PRODUCTS = TableSpec(
    Layer.SILVER,
    "products",
    T.StructType(
        [
            T.StructField("product_id", T.StringType()),
            T.StructField("version", T.IntegerType()),
            T.StructField("valid_from", T.TimestampType()),
            T.StructField("valid_to", T.TimestampType()),
            T.StructField("is_current", T.BooleanType()),
            T.StructField("price", _PRODUCT_UPDATE_FIELDS["new_price"]),
            T.StructField("stock_level", _PRODUCT_UPDATE_FIELDS["stock_level"]),
            T.StructField("rating", _PRODUCT_UPDATE_FIELDS["rating"]),
            T.StructField("event_id", T.StringType()),
        ]
    ),
    (),
    "The product dimension with its history (type 2): one row per product and version, from its product updates "
    "in event time. A version is in force from valid_from (inclusive) to valid_to (exclusive; null: current).",
    _COMMON_PROPERTIES,
)

SESSIONS = TableSpec(
    Layer.SILVER,
    "sessions",
    T.StructType(
        [
            T.StructField("session_id", T.StringType()),
            T.StructField("user_id", T.StringType()),
            T.StructField("device_type", T.StringType()),
            T.StructField("started_at", T.TimestampType()),
            T.StructField("ended_at", T.TimestampType()),
            T.StructField("duration_s", T.LongType()),
            T.StructField("page_views", T.LongType()),
            T.StructField("carts", T.LongType()),
            T.StructField("purchases", T.LongType()),
            T.StructField("revenue", T.DecimalType(18, 2)),
            T.StructField("converted", T.BooleanType()),
            T.StructField("has_logout", T.BooleanType()),
            T.StructField("folded_through", T.TimestampType()),
        ]
    ),
    (PartitionField("days", "started_at"),),
    "One row per session, folded from silver every few seconds (late events included).",
    {**_STREAMING_PROPERTIES, "write.merge.mode": "merge-on-read", "write.update.mode": "merge-on-read"},
)

EVENT_MINUTES = TableSpec(
    Layer.SILVER,
    "event_minutes",
    T.StructType(
        [
            T.StructField("minute", T.TimestampType()),
            T.StructField("event_type", T.StringType()),
            T.StructField("events", T.LongType()),
            T.StructField("purchases", T.LongType()),
            T.StructField("revenue", T.DecimalType(18, 2)),
            T.StructField("folded_through", T.TimestampType()),
        ]
    ),
    (PartitionField("days", "minute"),),
    "Real-time view: accepted events per event-time minute and type, purchases and revenue; folded from silver.",
    {**_STREAMING_PROPERTIES, "write.merge.mode": "merge-on-read", "write.update.mode": "merge-on-read"},
)

QUARANTINE_EVENTS = TableSpec(
    Layer.QUARANTINE,
    "events",
    T.StructType(
        [
            T.StructField("kafka_topic", T.StringType()),
            T.StructField("kafka_partition", T.IntegerType()),
            T.StructField("kafka_offset", T.LongType()),
            T.StructField("kafka_timestamp", T.TimestampType()),
            T.StructField("value", T.BinaryType()),
            T.StructField("event_id", T.StringType()),
            T.StructField("event_type", T.StringType()),
            T.StructField("schema_version", T.StringType()),
            T.StructField("event_date", T.DateType()),
            T.StructField("failed_rules", T.ArrayType(T.StringType())),
            T.StructField("ingest_time", T.TimestampType()),
            T.StructField("batch_id", T.LongType()),
        ]
    ),
    (PartitionField("days", "kafka_timestamp"), PartitionField("identity", "event_date")),
    "Records that failed parsing or a rule (ids in failed_rules), or repeated an event_id ('duplicate').",
    _STREAMING_PROPERTIES,
)

STREAM_BATCHES = TableSpec(
    Layer.OPS,
    "stream_batches",
    T.StructType(
        [
            T.StructField("stream_id", T.StringType()),
            T.StructField("batch_id", T.LongType()),
            T.StructField("started_at", T.TimestampType()),
            T.StructField("committed_at", T.TimestampType()),
            T.StructField("records", T.LongType()),
            T.StructField("kafka_ts_min", T.TimestampType()),
            T.StructField("kafka_ts_max", T.TimestampType()),
            T.StructField("watermark", T.TimestampType()),
            T.StructField("max_event_time", T.TimestampType()),
            T.StructField("silver_rows", T.LongType()),
            T.StructField("quarantined", T.LongType()),
            T.StructField("duplicates", T.LongType()),
            T.StructField("late", T.LongType()),
            T.StructField("late_dates", T.ArrayType(T.DateType())),
        ]
    ),
    (),
    "One row per committed micro-batch: what it read, what it wrote, when it became visible. ``started_at`` is the "
    "batch's ingest time (the ``ingest_time`` of every row it wrote), ``committed_at`` the end of its last table's "
    "commit: an event's Kafka -> silver latency is read from here, after the snapshots have expired.",
    _STREAMING_PROPERTIES,
)


# Every table the stream writes (the roll-ups by folding silver), created when the stream starts.
STREAMING_TABLES: tuple[TableSpec, ...] = (
    BRONZE_EVENTS,
    *SILVER.values(),
    SESSIONS,
    EVENT_MINUTES,
    QUARANTINE_EVENTS,
    STREAM_BATCHES,
)


def _gold(name: str, fields: list[tuple[str, T.DataType]], keys: tuple[str, ...], description: str) -> TableSpec:
    """A gold table: partitioned by event day, one partition rewritten per build; ``event_date`` first."""
    schema = T.StructType([T.StructField("event_date", T.DateType()), *(T.StructField(n, t) for n, t in fields)])
    return TableSpec(
        Layer.GOLD,
        name,
        schema,
        (PartitionField("identity", "event_date"),),
        description,
        _COMMON_PROPERTIES,
        date_column="event_date",
        key_columns=("event_date", *keys),
    )


MONEY = T.DecimalType(18, 2)
RATE = T.DecimalType(12, 6)
_L = T.LongType()

GOLD_DAILY_SALES_SUMMARY = _gold(
    "daily_sales_summary",
    [
        ("orders", _L), ("revenue", MONEY), ("gross_revenue", MONEY), ("discount_total", MONEY),
        ("average_order_value", MONEY), ("units", _L), ("unique_customers", _L), ("page_views", _L),
        ("visitors", _L), ("sessions", _L), ("converted_sessions", _L), ("conversion_rate", RATE),
        ("revenue_per_visitor", MONEY), ("top_payment_method", T.StringType()),
    ],
    (),
    "One row per day: orders, revenue after discounts, units, customers, traffic, sessions, conversion.",
)  # fmt: skip

GOLD_DAILY_CATEGORY_SALES = _gold(
    "daily_category_sales",
    [("category", T.StringType()), ("orders", _L), ("units", _L), ("gross_revenue", MONEY)],
    ("category",),
    "Per day and item category: orders containing it, units, item revenue before order discounts.",
)

GOLD_CUSTOMER_DAILY = _gold(
    "customer_daily",
    [
        ("user_id", T.StringType()), ("orders", _L), ("revenue", MONEY), ("orders_to_date", _L), ("ltv", MONEY),
        ("first_seen", T.DateType()), ("last_purchase", T.DateType()), ("recency_days", T.IntegerType()),
        ("recency_score", T.IntegerType()), ("frequency_score", T.IntegerType()),
        ("monetary_score", T.IntegerType()), ("segment", T.StringType()),
    ],
    ("user_id",),
    "Per day and active user: the day's orders and revenue, lifetime to date (LTV), RFM scores, segment.",
)  # fmt: skip

GOLD_PRODUCT_DAILY = _gold(
    "product_daily",
    [
        ("product_id", T.StringType()), ("views", _L), ("carts", _L), ("cart_units", _L), ("purchases", _L),
        ("units", _L), ("gross_revenue", MONEY), ("view_to_cart_rate", RATE), ("cart_to_purchase_rate", RATE),
        ("list_price", MONEY), ("price_changes", _L), ("views_out_of_stock", _L), ("discount_vs_list", RATE),
    ],
    ("product_id",),
    "Per day and product: views, carts, purchases, units, revenue, view->cart and cart->purchase rates, list price "
    "at the close, price changes, views while out of stock, discount against the list price in force.",
)  # fmt: skip

GOLD_PRODUCT_PAIRS = _gold(
    "product_pairs",
    [
        ("antecedent", T.StringType()), ("consequent", T.StringType()), ("pair_orders", _L),
        ("support", RATE), ("confidence", RATE), ("lift", RATE),
    ],
    ("antecedent", "consequent"),
    "Co-purchase recommendations per day: support, confidence and lift of A -> B.",
)  # fmt: skip

GOLD_DATA_QUALITY = _gold(
    "data_quality",
    [
        ("table_name", T.StringType()), ("rows", _L), ("late_rows", _L), ("duplicates", _L), ("quarantined", _L),
        ("quarantine_reasons", T.MapType(T.StringType(), _L)), ("undated_quarantined", _L),
        ("p50_latency_s", T.DoubleType()), ("p95_latency_s", T.DoubleType()), ("bronze_records", _L),
        ("conservation_ok", T.BooleanType()),
    ],
    ("table_name",),
    "Per day and silver table: rows, late, duplicates, quarantined by reason, freshness, conservation.",
)  # fmt: skip

# The published gold tables: Dagster assets whose rebuilds are recorded in gold.restatements. The lifetime state
# (GOLD_CUSTOMER_LIFETIME, below) is an asset too, but internal: what it changes shows in customer_daily.
GOLD_TABLES: tuple[TableSpec, ...] = (
    GOLD_DAILY_SALES_SUMMARY,
    GOLD_DAILY_CATEGORY_SALES,
    GOLD_CUSTOMER_DAILY,
    GOLD_PRODUCT_DAILY,
    GOLD_PRODUCT_PAIRS,
    GOLD_DATA_QUALITY,
)

GOLD_CUSTOMER_LIFETIME = _gold(
    "customer_lifetime",
    [
        ("user_id", T.StringType()), ("first_seen", T.DateType()), ("last_seen", T.DateType()),
        ("orders_to_date", _L), ("ltv", MONEY), ("first_order", T.DateType()), ("last_purchase", T.DateType()),
    ],
    ("user_id",),
    "Lifetime state as of each day, one row per user seen so far: day D is D-1's state plus D's events.",
)  # fmt: skip

RESTATEMENTS = TableSpec(
    Layer.GOLD,
    "restatements",
    T.StructType(
        [
            T.StructField("event_date", T.DateType()),
            T.StructField("table_name", T.StringType()),
            T.StructField("row_key", T.StringType()),
            T.StructField("metric", T.StringType()),
            T.StructField("old_value", T.StringType()),
            T.StructField("new_value", T.StringType()),
            T.StructField("old_snapshot_id", _L),
            T.StructField("new_snapshot_id", _L),
            T.StructField("restated_at", T.TimestampType()),
        ]
    ),
    (PartitionField("identity", "event_date"),),
    "What each rebuild of an already built gold day changed: metric, old value, new value, snapshot ids.",
    _COMMON_PROPERTIES,
    date_column="event_date",
)

MAINTENANCE_RUNS = TableSpec(
    Layer.OPS,
    "maintenance_runs",
    T.StructType(
        [
            T.StructField("run_at", T.TimestampType()),
            T.StructField("table_name", T.StringType()),
            *(
                T.StructField(f"{when}_{what}", T.LongType())
                for when in ("before", "after")
                for what in ("data_files", "delete_files", "bytes", "snapshots", "manifests")
            ),
            T.StructField("rewritten_files", T.LongType()),
            T.StructField("expired_snapshots", T.LongType()),
            T.StructField("orphans_removed", T.LongType()),
            T.StructField("skipped", T.StringType()),
        ]
    ),
    (),
    "One row per table per maintenance run: files, bytes, snapshots and manifests before and after.",
    _COMMON_PROPERTIES,
)

QUARANTINE_REPLAYS = TableSpec(
    Layer.OPS,
    "quarantine_replays",
    T.StructType(
        [
            T.StructField("replayed_at", T.TimestampType()),
            T.StructField("replayed_by", T.StringType()),  # OS user@host
            T.StructField("rule", T.StringType()),
            T.StructField("since", T.DateType()),  # first arrival day selected, UTC (null: open)
            T.StructField("until", T.DateType()),  # last arrival day selected, inclusive (null: open)
            T.StructField("records", T.LongType()),  # sent, or that a dry run would have sent
            T.StructField("is_dry_run", T.BooleanType()),
        ]
    ),
    (),
    "One row per `shoplake quarantine replay`: who, when, which rule and arrival days, how many records.",
    _COMMON_PROPERTIES,
)

ALL_TABLES: tuple[TableSpec, ...] = (
    BRONZE_EVENTS,
    *SILVER.values(),
    SESSIONS,
    EVENT_MINUTES,
    PRODUCTS,
    QUARANTINE_EVENTS,
    STREAM_BATCHES,
    MAINTENANCE_RUNS,
    QUARANTINE_REPLAYS,
    *GOLD_TABLES,
    GOLD_CUSTOMER_LIFETIME,
    RESTATEMENTS,
)


def table_by_identifier(identifier: str) -> TableSpec:
    """Look a table up by ``namespace.table``; raises ``KeyError`` naming the known tables."""
    for spec in ALL_TABLES:
        if spec.identifier == identifier:
            return spec
    known = ", ".join(spec.identifier for spec in ALL_TABLES)
    raise KeyError(f"unknown table {identifier!r}; known tables: {known}")
