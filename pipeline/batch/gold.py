"""Silver -> gold: daily aggregates, as pure transforms over silver rows.

Every metric is defined in ``docs/metrics.md``; the simulator's oracle implements the same definitions in plain
Python, and the integration suite asserts both give the same numbers. Inputs are silver frames already
restricted to the day being built (or, for lifetime figures, to the days up to it).
"""

from __future__ import annotations

import datetime as dt
import functools
from decimal import Decimal

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.tables import (
    GOLD_CUSTOMER_DAILY,
    GOLD_DAILY_CATEGORY_SALES,
    GOLD_DAILY_SALES_SUMMARY,
    GOLD_DATA_QUALITY,
    GOLD_PRODUCT_DAILY,
    GOLD_PRODUCT_PAIRS,
    MONEY,
    RATE,
)

RATE_SCALE = 6


# -- exact ratios ------------------------------------------------------------------------------------------------


def ratio(numerator: Column, denominator: Column, scale: int = RATE_SCALE) -> Column:
    """``numerator / denominator`` for non-negative whole numbers, rounded half up to ``scale`` decimals, exactly
    (integer arithmetic, no floating point); null when the denominator is zero."""
    steps = 10**scale
    n, d = numerator.cast("long"), denominator.cast("long")
    x = F.lit(2) * n * F.lit(steps) + d
    y = F.lit(2) * d
    quotient = ((x - F.pmod(x, y)).cast("decimal(38,0)") / y.cast("decimal(38,0)")).cast("decimal(19,0)")
    unit = F.lit(Decimal(1).scaleb(-scale)).cast(T.DecimalType(scale + 1, scale))
    return F.when(d != 0, (quotient * unit).cast(T.DecimalType(19 + scale, scale)))


def money_ratio(amount: Column, denominator: Column) -> Column:
    """An amount divided by a count, to the cent, half up."""
    cents = (amount * 100).cast("long")
    return (ratio(cents, denominator, scale=0) * F.lit(Decimal("0.01"))).cast(MONEY)


def _money_sum(column: Column) -> Column:
    return F.coalesce(F.sum(column), F.lit(0)).cast(MONEY)


# -- daily sales summary -----------------------------------------------------------------------------------------


def sessions_of(*frames: DataFrame) -> DataFrame:
    """Distinct session ids among frames that carry a ``session_id`` column."""
    return functools.reduce(DataFrame.unionByName, [f.select("session_id") for f in frames]).distinct()


def daily_sales_summary(
    purchases_df: DataFrame,
    page_views_df: DataFrame,
    cart_events_df: DataFrame,
    user_sessions_df: DataFrame,
    day: dt.date,
) -> DataFrame:
    """One row for ``day``, with zeros on a day without events (so rebuilding a day always replaces its row)."""
    sales = purchases_df.agg(
        F.count("*").alias("orders"),
        _money_sum(F.col("total_amount")).alias("revenue"),
        _money_sum(F.col("subtotal")).alias("gross_revenue"),
        _money_sum(F.col("discount_amount")).alias("discount_total"),
        F.coalesce(F.sum(F.aggregate("items", F.lit(0).cast("long"), lambda acc, i: acc + i["quantity"])), F.lit(0))
        .cast("long")
        .alias("units"),
        F.count_distinct("user_id").alias("unique_customers"),
        F.count_distinct("session_id").alias("converted_sessions"),
    )
    top_method = (
        purchases_df.groupBy("payment_method")
        .count()
        .orderBy(F.col("count").desc(), F.col("payment_method"))
        .limit(1)
        .select(F.col("payment_method").alias("top_payment_method"))
    )
    traffic = page_views_df.agg(F.count("*").alias("page_views"), F.count_distinct("user_id").alias("visitors"))
    sessions = sessions_of(purchases_df, page_views_df, cart_events_df, user_sessions_df).agg(
        F.count("*").alias("sessions")
    )
    return (
        sales.crossJoin(traffic)
        .crossJoin(sessions)
        .join(top_method, how="left")
        .select(
            F.lit(day).alias("event_date"),
            "*",
            money_ratio(F.col("revenue"), F.col("orders")).alias("average_order_value"),
            ratio(F.col("converted_sessions"), F.col("sessions")).cast(RATE).alias("conversion_rate"),
            money_ratio(F.col("revenue"), F.col("visitors")).alias("revenue_per_visitor"),
        )
        .select(*GOLD_DAILY_SALES_SUMMARY.schema.fieldNames())
    )


def daily_category_sales(purchases_df: DataFrame, day: dt.date) -> DataFrame:
    items = purchases_df.select("event_id", F.explode("items").alias("item"))
    return (
        items.groupBy(F.col("item.category").alias("category"))
        .agg(
            F.count_distinct("event_id").alias("orders"),
            F.sum("item.quantity").cast("long").alias("units"),
            _money_sum(F.col("item.total_price")).alias("gross_revenue"),
        )
        .withColumn("event_date", F.lit(day))
        .select(*GOLD_DAILY_CATEGORY_SALES.schema.fieldNames())
    )


# -- customers ---------------------------------------------------------------------------------------------------


def _score(value: Column, limits: list[tuple[float, int]], otherwise: int, inclusive: bool) -> Column:
    """First score whose limit holds (``value <= limit`` or ``< limit``), else ``otherwise``."""
    expression = None
    for limit, score in limits:
        holds = value <= limit if inclusive else value < limit
        expression = F.when(holds, score) if expression is None else expression.when(holds, score)
    assert expression is not None
    return expression.otherwise(otherwise)


def customer_daily(purchases_to_date_df: DataFrame, activity_to_date_df: DataFrame, day: dt.date) -> DataFrame:
    """Users active on ``day`` with their lifetime-to-date figures, RFM scores and segment.

    ``purchases_to_date_df``: silver purchases of every day up to ``day``; ``activity_to_date_df``: one row per
    accepted event with a user (``user_id``, ``event_date``) of every day up to ``day``.
    """
    day_lit = F.lit(day)
    today = F.col("event_date") == day_lit
    orders = purchases_to_date_df.groupBy("user_id").agg(
        F.count_if(today).alias("orders"),
        _money_sum(F.when(today, F.col("total_amount"))).alias("revenue"),
        F.count("*").alias("orders_to_date"),
        _money_sum(F.col("total_amount")).alias("ltv"),
        F.min("event_date").alias("first_order"),
        F.max("event_date").alias("last_purchase"),
    )
    active = (
        activity_to_date_df.groupBy("user_id")
        .agg(F.min("event_date").alias("first_seen"), F.max("event_date").alias("last_seen"))
        .filter(F.col("last_seen") == day_lit)
    )
    joined = active.join(orders, on="user_id", how="left").fillna(0, subset=["orders", "orders_to_date"])
    recency = F.datediff(day_lit, F.col("last_purchase"))
    r = F.when(F.col("last_purchase").isNull(), 1).otherwise(
        _score(recency, [(0, 5), (7, 4), (30, 3), (90, 2)], 1, True)
    )
    f = _score(F.col("orders_to_date"), [(1, 1), (2, 2), (4, 3), (9, 4)], 5, True)
    ltv = F.coalesce(F.col("ltv"), F.lit(0).cast(MONEY))
    m = _score(ltv, [(50, 1), (200, 2), (500, 3), (1000, 4)], 5, False)
    segment = (
        F.when(F.col("orders_to_date") == 0, "prospect")
        .when((F.col("recency_score") >= 4) & (F.col("frequency_score") >= 4), "champion")
        .when(F.col("first_order") == day_lit, "new_customer")
        .when(F.col("frequency_score") >= 3, "loyal")
        .when(F.col("recency_score") <= 2, "at_risk")
        .otherwise("regular")
    )
    return (
        joined.withColumns(
            {
                "event_date": day_lit,
                "revenue": F.coalesce(F.col("revenue"), F.lit(0).cast(MONEY)),
                "ltv": ltv,
                "recency_days": recency.cast("int"),
                "recency_score": r.cast("int"),
                "frequency_score": f.cast("int"),
                "monetary_score": m.cast("int"),
            }
        )
        .withColumn("segment", segment)
        .select(*GOLD_CUSTOMER_DAILY.schema.fieldNames())
    )


# -- products ----------------------------------------------------------------------------------------------------


def product_daily(
    page_views_df: DataFrame, cart_events_df: DataFrame, purchases_df: DataFrame, day: dt.date
) -> DataFrame:
    """Per product with any view, cart or purchase on ``day``; rates over sessions, never above 1."""
    views = page_views_df.filter(F.col("product_id").isNotNull()).select("product_id", "session_id")
    carts = cart_events_df.select("product_id", "session_id", "quantity")
    bought = purchases_df.select("event_id", "session_id", F.explode("items").alias("item")).select(
        "event_id", "session_id", F.col("item.product_id").alias("product_id"), "item.quantity", "item.total_price"
    )
    view_counts = views.groupBy("product_id").agg(F.count("*").alias("views"))
    cart_counts = carts.groupBy("product_id").agg(
        F.count("*").alias("carts"), F.sum("quantity").cast("long").alias("cart_units")
    )
    sales = bought.groupBy("product_id").agg(
        F.count_distinct("event_id").alias("purchases"),
        F.sum("quantity").cast("long").alias("units"),
        _money_sum(F.col("total_price")).alias("gross_revenue"),
    )
    viewed, carted, purchased = (df.select("product_id", "session_id").distinct() for df in (views, carts, bought))
    funnel = (
        viewed.withColumn("v", F.lit(True))
        .join(carted.withColumn("c", F.lit(True)), ["product_id", "session_id"], "full_outer")
        .join(purchased.withColumn("p", F.lit(True)), ["product_id", "session_id"], "full_outer")
        .groupBy("product_id")
        .agg(
            F.count_if(F.col("v")).alias("viewed"),
            F.count_if(F.col("v") & F.col("c")).alias("viewed_carted"),
            F.count_if(F.col("c")).alias("carted"),
            F.count_if(F.col("c") & F.col("p")).alias("carted_bought"),
        )
    )
    counts = ["views", "carts", "cart_units", "purchases", "units"]
    return (
        view_counts.join(cart_counts, "product_id", "full_outer")
        .join(sales, "product_id", "full_outer")
        .join(funnel, "product_id", "left")
        .fillna(0, subset=counts)
        .withColumns(
            {
                "event_date": F.lit(day),
                "gross_revenue": F.coalesce(F.col("gross_revenue"), F.lit(0).cast(MONEY)),
                "view_to_cart_rate": ratio(F.col("viewed_carted"), F.col("viewed")).cast(RATE),
                "cart_to_purchase_rate": ratio(F.col("carted_bought"), F.col("carted")).cast(RATE),
            }
        )
        .select(*GOLD_PRODUCT_DAILY.schema.fieldNames())
    )


def product_pairs(purchases_df: DataFrame, day: dt.date) -> DataFrame:
    """Co-purchase pairs A -> B of ``day`` with support, confidence and lift (both directions)."""
    baskets = purchases_df.select("event_id", F.explode(F.array_distinct("items.product_id")).alias("product_id"))
    orders = purchases_df.agg(F.count("*").alias("orders"))
    containing = baskets.groupBy("product_id").agg(F.count("*").alias("n"))
    pairs = (
        baskets.alias("a")
        .join(
            baskets.alias("b"),
            on=(F.col("a.event_id") == F.col("b.event_id")) & (F.col("a.product_id") != F.col("b.product_id")),
        )
        .groupBy(F.col("a.product_id").alias("antecedent"), F.col("b.product_id").alias("consequent"))
        .agg(F.count("*").alias("pair_orders"))
    )
    a_count = containing.select(F.col("product_id").alias("antecedent"), F.col("n").alias("n_a"))
    b_count = containing.select(F.col("product_id").alias("consequent"), F.col("n").alias("n_b"))
    return (
        pairs.join(a_count, "antecedent")
        .join(b_count, "consequent")
        .crossJoin(orders)
        .withColumns(
            {
                "event_date": F.lit(day),
                "support": ratio(F.col("pair_orders"), F.col("orders")).cast(RATE),
                "confidence": ratio(F.col("pair_orders"), F.col("n_a")).cast(RATE),
                "lift": ratio(F.col("pair_orders") * F.col("orders"), F.col("n_a") * F.col("n_b")).cast(RATE),
            }
        )
        .select(*GOLD_PRODUCT_PAIRS.schema.fieldNames())
    )


# -- data quality ----------------------------------------------------------------------------------------------


def data_quality(
    silver_df: DataFrame,
    quarantine_df: DataFrame,
    bronze_df: DataFrame,
    landed_df: DataFrame,
    table_of_topic: dict[str, str],
    day: dt.date,
    in_flight_since: dt.datetime | None = None,
) -> DataFrame:
    """One row per silver table for ``day`` (zeros included).

    Conservation counts a bronze record as missing only if it was ingested before ``in_flight_since``: the
    stream commits a micro-batch's tables side by side, so a check running beside it may see a record in bronze
    a moment before it appears in silver.

    Args:
        silver_df: silver rows of the day: ``table_name``, ``is_late``, ``latency_s``.
        quarantine_df: quarantined rows dated ``day`` by event time, or undated and reaching Kafka on ``day``:
            ``kafka_topic``, ``event_date``, ``failed_rules``.
        bronze_df: Kafka coordinates and ingest time of the bronze records that reached Kafka on ``day``.
        landed_df: Kafka coordinates of silver and quarantine rows that reached Kafka on ``day``.
        table_of_topic: Kafka topic -> silver table name.
    """
    spark = silver_df.sparkSession
    topics = spark.createDataFrame(list(table_of_topic.items()), "kafka_topic string, table_name string")
    tables = topics.select("table_name")
    silver = silver_df.groupBy("table_name").agg(
        F.count("*").alias("rows"),
        F.count_if("is_late").alias("late_rows"),
        F.percentile("latency_s", F.lit(0.5)).alias("p50_latency_s"),
        F.percentile("latency_s", F.lit(0.95)).alias("p95_latency_s"),
    )
    quarantined = quarantine_df.join(topics, "kafka_topic")
    is_duplicate = F.array_contains("failed_rules", "duplicate")
    dated = F.col("event_date").isNotNull()
    counts = quarantined.groupBy("table_name").agg(
        F.count_if(dated & is_duplicate).alias("duplicates"),
        F.count_if(dated & ~is_duplicate).alias("quarantined"),
        F.count_if(~dated).alias("undated_quarantined"),
    )
    reasons = (
        quarantined.filter(~is_duplicate)
        .select("table_name", F.explode("failed_rules").alias("reason"))
        .groupBy("table_name", "reason")
        .count()
        .groupBy("table_name")
        .agg(F.map_from_entries(F.collect_list(F.struct("reason", "count"))).alias("quarantine_reasons"))
    )
    coordinates = ["kafka_topic", "kafka_partition", "kafka_offset"]
    landed = landed_df.groupBy(*coordinates).agg(F.count("*").alias("copies"))
    copies = F.coalesce(F.col("copies"), F.lit(0))
    settled = F.lit(True)
    if in_flight_since is not None:  # an unknown ingest time is no excuse: such a record counts as settled
        settled = F.coalesce(F.col("ingest_time") < F.lit(in_flight_since), F.lit(True))
    accounting = (
        bronze_df.join(landed, coordinates, "left")
        .join(topics, "kafka_topic")
        .groupBy("table_name")
        .agg(
            F.count("*").alias("bronze_records"),
            F.count_if((copies > 1) | ((copies == 0) & settled)).alias("bad"),
        )
    )
    zero = ["rows", "late_rows", "duplicates", "quarantined", "undated_quarantined", "bronze_records", "bad"]
    return (
        tables.join(silver, "table_name", "left")
        .join(counts, "table_name", "left")
        .join(reasons, "table_name", "left")
        .join(accounting, "table_name", "left")
        .fillna(0, subset=zero)
        .withColumns(
            {
                "event_date": F.lit(day),
                "quarantine_reasons": F.coalesce(
                    F.col("quarantine_reasons"), F.create_map().cast("map<string,bigint>")
                ),
                "conservation_ok": F.col("bad") == 0,
            }
        )
        .select(*GOLD_DATA_QUALITY.schema.fieldNames())
    )


# -- restatements ------------------------------------------------------------------------------------------------


def restatements(old_df: DataFrame, new_df: DataFrame, keys: tuple[str, ...], table_name: str) -> DataFrame:
    """What changed between two versions of a gold day: one row per (row key, metric) whose value differs.

    A row only in the new version is reported with ``old_value`` null, one only in the old with ``new_value``
    null. Values are compared and reported as strings (exact for decimals).
    """
    metrics = [c for c in new_df.columns if c not in keys]
    row_key = F.concat_ws(
        ",",
        *[F.concat(F.lit(f"{k}="), F.coalesce(F.col(k).cast("string"), F.lit(""))) for k in keys if k != "event_date"],
    )

    def long_form(df: DataFrame, side: str) -> DataFrame:
        pairs = F.array(*[F.struct(F.lit(m).alias("metric"), F.col(m).cast("string").alias("value")) for m in metrics])
        return df.select("event_date", row_key.alias("row_key"), F.explode(pairs).alias("kv")).select(
            "event_date", "row_key", "kv.metric", F.col("kv.value").alias(side)
        )

    joined = long_form(old_df, "old_value").join(
        long_form(new_df, "new_value"), on=["event_date", "row_key", "metric"], how="full_outer"
    )
    return joined.filter(~F.col("old_value").eqNullSafe(F.col("new_value"))).select(
        "event_date", F.lit(table_name).alias("table_name"), "row_key", "metric", "old_value", "new_value"
    )
