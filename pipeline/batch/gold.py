"""Silver -> gold: daily aggregates, as pure transforms over silver rows.

Every metric is defined in ``docs/metrics.md``; the simulator's oracle implements the same definitions in plain
Python, and the integration suite asserts both give the same numbers. Every transform builds one day or a range
of days in one pass (``days``), grouping by ``event_date``; its inputs are silver frames of those days, and the
lifetime figures come from a per-user state carried from day to day (``customer_lifetime``).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from decimal import Decimal

from pyspark.sql import Column, DataFrame, SparkSession, Window, WindowSpec
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.tables import (
    GOLD_CUSTOMER_DAILY,
    GOLD_CUSTOMER_LIFETIME,
    GOLD_DAILY_CATEGORY_SALES,
    GOLD_DAILY_SALES_SUMMARY,
    GOLD_DATA_QUALITY,
    GOLD_PRODUCT_DAILY,
    GOLD_PRODUCT_PAIRS,
    KAFKA_COORDINATES,
    MONEY,
    RATE,
)

RATE_SCALE = 6


# -- exact ratios ------------------------------------------------------------------------------------------------


def ratio(numerator: Column, denominator: Column, scale: int = RATE_SCALE) -> Column:
    """``numerator / denominator`` for whole numbers (the denominator never negative), rounded half away from zero
    to ``scale`` decimals, exactly (integer arithmetic in ``decimal(38,0)``, no floating point); null when the
    denominator is zero."""
    steps = 10**scale
    whole = T.DecimalType(38, 0)
    n, d = numerator.cast(whole), denominator.cast(whole)
    x = F.lit(2) * F.abs(n) * F.lit(steps) + d
    y = F.lit(2) * d
    magnitude = ((x - F.pmod(x, y)) / y).cast("decimal(19,0)")
    quotient = F.when(n < 0, -magnitude).otherwise(magnitude)
    unit = F.lit(Decimal(1).scaleb(-scale)).cast(T.DecimalType(scale + 1, scale))
    return F.when(d != 0, (quotient * unit).cast(T.DecimalType(19 + scale, scale)))


def money_ratio(amount: Column, denominator: Column) -> Column:
    """An amount divided by a count, to the cent, half up."""
    cents = (amount * 100).cast("long")
    return (ratio(cents, denominator, scale=0) * F.lit(Decimal("0.01"))).cast(MONEY)


def _money_sum(column: Column) -> Column:
    return F.coalesce(F.sum(column), F.lit(0)).cast(MONEY)


# -- days --------------------------------------------------------------------------------------------------------

Days = dt.date | Sequence[dt.date]  # one day, or the days of a range built in one pass


def day_list(days: Days) -> list[dt.date]:
    """The days as a sorted list (one day is a list of one)."""
    return [days] if isinstance(days, dt.date) else sorted(days)


def _days_df(spark: SparkSession, days: Days) -> DataFrame:
    return spark.createDataFrame([(d,) for d in day_list(days)], "event_date date")


def filter_days(df: DataFrame, days: Days) -> DataFrame:
    """Rows whose ``event_date`` is one of ``days``."""
    return df.filter(F.col("event_date").isin(day_list(days)))


# -- daily sales summary -----------------------------------------------------------------------------------------


def sessions_of(*frames: DataFrame) -> DataFrame:
    """Distinct (``event_date``, ``session_id``) among frames that carry a ``session_id`` column."""
    return functools.reduce(DataFrame.unionByName, [f.select("event_date", "session_id") for f in frames]).distinct()


def daily_sales_summary(
    purchases_df: DataFrame,
    page_views_df: DataFrame,
    cart_events_df: DataFrame,
    user_sessions_df: DataFrame,
    days: Days,
) -> DataFrame:
    """One row per day of ``days``, with zeros on a day without events (so rebuilding a day always replaces its
    row)."""
    units = F.aggregate("items", F.lit(0).cast("long"), lambda acc, i: acc + i["quantity"])
    sales = purchases_df.groupBy("event_date").agg(
        F.count("*").alias("orders"),
        _money_sum(F.col("total_amount")).alias("revenue"),
        _money_sum(F.col("subtotal")).alias("gross_revenue"),
        _money_sum(F.col("discount_amount")).alias("discount_total"),
        F.sum(units).cast("long").alias("units"),
        F.count_distinct("user_id").alias("unique_customers"),
        F.count_distinct("session_id").alias("converted_sessions"),
    )
    by_count = Window.partitionBy("event_date").orderBy(F.col("count").desc(), F.col("payment_method"))
    top_method = (
        purchases_df.groupBy("event_date", "payment_method")
        .count()
        .withColumn("rank", F.row_number().over(by_count))
        .filter(F.col("rank") == 1)
        .select("event_date", F.col("payment_method").alias("top_payment_method"))
    )
    traffic = page_views_df.groupBy("event_date").agg(
        F.count("*").alias("page_views"), F.count_distinct("user_id").alias("visitors")
    )
    sessions = (
        sessions_of(purchases_df, page_views_df, cart_events_df, user_sessions_df)
        .groupBy("event_date")
        .agg(F.count("*").alias("sessions"))
    )
    zero = F.lit(0).cast(MONEY)
    return (
        _days_df(purchases_df.sparkSession, days)
        .join(sales, "event_date", "left")
        .join(traffic, "event_date", "left")
        .join(sessions, "event_date", "left")
        .join(top_method, "event_date", "left")
        .fillna(
            0,
            subset=["orders", "units", "unique_customers", "converted_sessions", "page_views", "visitors", "sessions"],
        )
        .withColumns({m: F.coalesce(F.col(m), zero) for m in ("revenue", "gross_revenue", "discount_total")})
        .withColumns(
            {
                "average_order_value": money_ratio(F.col("revenue"), F.col("orders")),
                "conversion_rate": ratio(F.col("converted_sessions"), F.col("sessions")).cast(RATE),
                "revenue_per_visitor": money_ratio(F.col("revenue"), F.col("visitors")),
            }
        )
        .select(*GOLD_DAILY_SALES_SUMMARY.schema.fieldNames())
    )


def daily_category_sales(purchases_df: DataFrame, days: Days) -> DataFrame:
    """Per day of ``days`` and item category: orders containing it, units, item revenue."""
    items = purchases_df.select("event_date", "event_id", F.explode("items").alias("item"))
    return filter_days(
        items.groupBy("event_date", F.col("item.category").alias("category")).agg(
            F.count_distinct("event_id").alias("orders"),
            F.sum("item.quantity").cast("long").alias("units"),
            _money_sum(F.col("item.total_price")).alias("gross_revenue"),
        ),
        days,
    ).select(*GOLD_DAILY_CATEGORY_SALES.schema.fieldNames())


# -- customers ---------------------------------------------------------------------------------------------------


def _score(value: Column, limits: list[tuple[float, int]], otherwise: int, inclusive: bool) -> Column:
    """First score whose limit holds (``value <= limit`` or ``< limit``), else ``otherwise``."""
    expression = None
    for limit, score in limits:
        holds = value <= limit if inclusive else value < limit
        expression = F.when(holds, score) if expression is None else expression.when(holds, score)
    assert expression is not None
    return expression.otherwise(otherwise)


def _lifetime_figures(window: WindowSpec | None = None) -> list[Column]:
    """How a user's rows add up to the lifetime figures: over all the rows of a group, or over a window."""

    def over(column: Column) -> Column:
        return column if window is None else column.over(window)

    return [
        over(F.min("first_seen")).alias("first_seen"),
        over(F.max("last_seen")).alias("last_seen"),
        over(F.sum("orders")).cast("long").alias("orders_to_date"),
        over(F.sum("revenue")).cast(MONEY).alias("ltv"),
        over(F.min("first_order")).alias("first_order"),
        over(F.max("last_purchase")).alias("last_purchase"),
    ]


def customer_lifetime(previous_df: DataFrame, purchases_df: DataFrame, activity_df: DataFrame, days: Days) -> DataFrame:
    """The lifetime state as of each day of ``days``: one row per user seen up to that day (``first_seen``,
    ``last_seen``, ``orders_to_date``, ``ltv``, ``first_order``, ``last_purchase``).

    The state of day D is the state of an earlier day plus the events after it, so building a day reads that
    state and the days since, never the whole history.

    Args:
        previous_df: the state as of a day before every event of the other frames (``gold.customer_lifetime``
            rows of that one day; empty when nothing was built before, the events then being the whole history).
        purchases_df: silver purchases after that day, up to the last of ``days``.
        activity_df: (``user_id``, ``event_date``) of every accepted event with a user, same days.
    """
    # One row per user and day with an event: activity and purchases stacked and aggregated once.
    keys = ("user_id", "event_date")
    seen = activity_df.select(*keys, F.lit(0).alias("order"), F.lit(None).cast(MONEY).alias("amount"))
    bought = purchases_df.select(*keys, F.lit(1).alias("order"), F.col("total_amount").alias("amount"))
    deltas = (
        seen.unionByName(bought)
        .groupBy(*keys)
        .agg(F.sum("order").cast("long").alias("orders"), _money_sum(F.col("amount")).alias("revenue"))
        .select(
            "user_id",
            "event_date",
            F.col("event_date").alias("first_seen"),
            F.col("event_date").alias("last_seen"),
            "orders",
            "revenue",
            F.when(F.col("orders") > 0, F.col("event_date")).alias("first_order"),
            F.when(F.col("orders") > 0, F.col("event_date")).alias("last_purchase"),
        )
    )
    base = previous_df.select(
        "user_id",
        "event_date",
        "first_seen",
        "last_seen",
        F.col("orders_to_date").alias("orders"),
        F.col("ltv").alias("revenue"),
        "first_order",
        "last_purchase",
    )
    if len(day_list(days)) == 1:
        # One day: its state sums every row of the user up to it, one aggregation (no probes, no window).
        (day,) = day_list(days)
        return (
            base.unionByName(deltas)
            .filter(F.col("event_date") <= F.lit(day))
            .groupBy("user_id")
            .agg(*_lifetime_figures())
            .withColumn("event_date", F.lit(day))
            .filter(F.col("first_seen").isNotNull())
            .select(*GOLD_CUSTOMER_LIFETIME.schema.fieldNames())
        )
    users = base.select("user_id").unionByName(deltas.select("user_id")).distinct()
    none = F.lit(None).cast("date")
    probes = users.crossJoin(_days_df(activity_df.sparkSession, days)).select(
        "user_id",
        "event_date",
        none.alias("first_seen"),
        none.alias("last_seen"),
        F.lit(0).cast("long").alias("orders"),
        F.lit(0).cast(MONEY).alias("revenue"),
        none.alias("first_order"),
        none.alias("last_purchase"),
        F.lit(True).alias("is_probe"),
    )
    # Each probe (user, day) sums every earlier row of its user and those of its own day (a range frame).
    to_date = Window.partitionBy("user_id").orderBy("event_date").rangeBetween(Window.unboundedPreceding, 0)
    rows = base.unionByName(deltas).withColumn("is_probe", F.lit(False)).unionByName(probes)
    return (
        rows.select(
            "user_id",
            "event_date",
            "is_probe",
            *_lifetime_figures(to_date),
        )
        .filter(F.col("is_probe") & F.col("first_seen").isNotNull())
        .select(*GOLD_CUSTOMER_LIFETIME.schema.fieldNames())
    )


def customer_daily(lifetime_df: DataFrame, purchases_df: DataFrame, days: Days) -> DataFrame:
    """Users active on each day of ``days`` with their lifetime-to-date figures, RFM scores and segment.

    ``lifetime_df``: the lifetime state of those days (``customer_lifetime``); ``purchases_df``: silver purchases
    of those days.
    """
    day = F.col("event_date")
    active = filter_days(lifetime_df, days).filter(F.col("last_seen") == day)
    today = purchases_df.groupBy("event_date", "user_id").agg(
        F.count("*").alias("orders"), _money_sum(F.col("total_amount")).alias("revenue")
    )
    joined = active.join(today, ["event_date", "user_id"], "left").fillna(0, subset=["orders", "orders_to_date"])
    recency = F.datediff(day, F.col("last_purchase"))
    r = F.when(F.col("last_purchase").isNull(), 1).otherwise(
        _score(recency, [(0, 5), (7, 4), (30, 3), (90, 2)], 1, True)
    )
    f = _score(F.col("orders_to_date"), [(1, 1), (2, 2), (4, 3), (9, 4)], 5, True)
    ltv = F.coalesce(F.col("ltv"), F.lit(0).cast(MONEY))
    m = _score(ltv, [(50, 1), (200, 2), (500, 3), (1000, 4)], 5, False)
    segment = (
        F.when(F.col("orders_to_date") == 0, "prospect")
        .when((F.col("recency_score") >= 4) & (F.col("frequency_score") >= 4), "champion")
        .when(F.col("first_order") == day, "new_customer")
        .when(F.col("frequency_score") >= 3, "loyal")
        .when(F.col("recency_score") <= 2, "at_risk")
        .otherwise("regular")
    )
    return (
        joined.withColumns(
            {
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

_PRODUCT_DAY = ["event_date", "product_id"]


_PRODUCT_SESSION_COUNTS = (
    "views", "carts", "cart_units", "purchases", "units", "gross_revenue", "views_out_of_stock", "price_changes",
    "list_value", "paid_value",
)  # fmt: skip
_WHOLE = T.DecimalType(38, 0)  # list and paid values of purchase lines, in cents x basis points


def _product_session_rows(df: DataFrame, **counts: Column) -> DataFrame:
    """``df``'s (day, product, session) with the given counts and the others of :data:`_PRODUCT_SESSION_COUNTS`
    null, so that views, carts, purchases and product updates stack into one frame."""
    types = {"gross_revenue": MONEY, "list_value": _WHOLE, "paid_value": _WHOLE}
    return df.select(
        *_PRODUCT_DAY,
        F.col("session_id") if "session_id" in df.columns else F.lit(None).cast("string").alias("session_id"),
        *[counts.get(c, F.lit(None)).cast(types.get(c, "long")).alias(c) for c in _PRODUCT_SESSION_COUNTS],
    )


def in_force(events_df: DataFrame, versions_df: DataFrame) -> DataFrame:
    """``events_df`` (``product_id``, ``event_time``) with ``list_price`` and ``stock_level`` of the product's
    ``silver.products`` version in force at each event's instant; both null before its first version."""
    versions = versions_df.select(
        F.col("product_id").alias("version_product_id"),
        "valid_from",
        "valid_to",
        F.col("price").alias("list_price"),
        "stock_level",
    )
    t = F.col("event_time")
    in_force_at_t = (
        (F.col("product_id") == F.col("version_product_id"))
        & (F.col("valid_from") <= t)
        & (F.col("valid_to").isNull() | (t < F.col("valid_to")))
    )
    return events_df.join(F.broadcast(versions), in_force_at_t, "left").drop(
        "version_product_id", "valid_from", "valid_to"
    )


def product_daily(
    page_views_df: DataFrame,
    cart_events_df: DataFrame,
    purchases_df: DataFrame,
    product_updates_df: DataFrame,
    versions_df: DataFrame,
    days: Days,
) -> DataFrame:
    """Per day of ``days`` and product with any view, cart, purchase or product update; rates over sessions, never
    above 1; prices, stock-outs and discounts against ``versions_df`` (``silver.products``: every version of the
    products, not only the days').

    Views, carts, purchases and updates are stacked and counted per (day, product, session), then per (day,
    product): two aggregations, where a join of per-table counts and per-table distinct sessions took ten shuffles.
    """
    one = F.lit(1)
    seen = in_force(page_views_df.filter(F.col("product_id").isNotNull()), versions_df)
    views = _product_session_rows(seen, views=one, views_out_of_stock=(F.col("stock_level") == 0).cast("int"))
    carts = _product_session_rows(cart_events_df, carts=one, cart_units=F.col("quantity"))
    changes = _product_session_rows(
        product_updates_df, price_changes=(F.col("update_type") == "price_change").cast("int")
    )
    # One row per order and product: an order with the product on two lines is one purchase.
    lines = in_force(
        purchases_df.select(
            "event_date", "event_id", "session_id", "event_time", "discount_percent", F.explode("items").alias("item")
        ).withColumn("product_id", F.col("item.product_id")),
        versions_df,
    )
    listed = F.col("list_price") > 0
    quantity = F.col("item.quantity").cast(_WHOLE)
    list_value = F.when(listed, quantity * (F.col("list_price") * 100).cast(_WHOLE) * F.lit(10000))
    kept_bp = F.lit(10000) - (F.col("discount_percent") * 100).cast(_WHOLE)
    paid_value = F.when(listed, quantity * (F.col("item.unit_price") * 100).cast(_WHOLE) * kept_bp)
    orders = lines.groupBy(*_PRODUCT_DAY, "session_id", "event_id").agg(
        F.sum("item.quantity").alias("units"),
        F.sum("item.total_price").alias("gross_revenue"),
        F.sum(list_value.cast(_WHOLE)).alias("list_value"),
        F.sum(paid_value.cast(_WHOLE)).alias("paid_value"),
    )
    bought = _product_session_rows(
        orders,
        purchases=one,
        **{c: F.col(c) for c in ("units", "gross_revenue", "list_value", "paid_value")},
    )
    per_session = (
        views.unionByName(carts)
        .unionByName(bought)
        .unionByName(changes)
        .groupBy(*_PRODUCT_DAY, "session_id")
        .agg(*[F.sum(c).alias(c) for c in _PRODUCT_SESSION_COUNTS])
    )
    viewed, carted, purchased = (F.coalesce(F.col(c), F.lit(0)) > 0 for c in ("views", "carts", "purchases"))
    # Rows without a session (the contract requires one) never count as the same session's view and cart.
    in_one_session = F.col("session_id").isNotNull()
    counts = ["views", "carts", "cart_units", "purchases", "units", "views_out_of_stock", "price_changes"]
    per_product = per_session.groupBy(*_PRODUCT_DAY).agg(
        *[F.sum(c).cast("long").alias(c) for c in counts],
        _money_sum(F.col("gross_revenue")).alias("gross_revenue"),
        F.sum("list_value").cast(_WHOLE).alias("list_value"),
        F.sum("paid_value").cast(_WHOLE).alias("paid_value"),
        F.count_if(viewed).alias("viewed"),
        F.count_if(viewed & carted & in_one_session).alias("viewed_carted"),
        F.count_if(carted).alias("carted"),
        F.count_if(carted & purchased & in_one_session).alias("carted_bought"),
    )
    # The list price at the day's close: the version in force at its last millisecond (event times are whole
    # milliseconds).
    last_instant = F.to_timestamp(F.date_add("event_date", 1)) - F.expr("INTERVAL 1 MILLISECOND")
    closes = filter_days(per_product, days).withColumn("event_time", last_instant)
    at_close = in_force(closes, versions_df).drop("stock_level")
    return (
        at_close.withColumn("list_price", F.col("list_price").cast(MONEY))
        .fillna(0, subset=counts)
        .withColumns(
            {
                "view_to_cart_rate": ratio(F.col("viewed_carted"), F.col("viewed")).cast(RATE),
                "cart_to_purchase_rate": ratio(F.col("carted_bought"), F.col("carted")).cast(RATE),
                "discount_vs_list": ratio(F.col("list_value") - F.col("paid_value"), F.col("list_value")).cast(RATE),
            }
        )
        .select(*GOLD_PRODUCT_DAILY.schema.fieldNames())
    )


def product_pairs(purchases_df: DataFrame, days: Days) -> DataFrame:
    """Co-purchase pairs A -> B of each day of ``days`` with support, confidence and lift (both directions)."""
    baskets = purchases_df.select(
        "event_date", "event_id", F.explode(F.array_distinct("items.product_id")).alias("product_id")
    )
    orders = purchases_df.groupBy("event_date").agg(F.count("*").alias("orders"))
    containing = baskets.groupBy("event_date", "product_id").agg(F.count("*").alias("n"))
    pairs = (
        baskets.alias("a")
        .join(
            baskets.alias("b"),
            on=(F.col("a.event_id") == F.col("b.event_id")) & (F.col("a.product_id") != F.col("b.product_id")),
        )
        .groupBy(
            F.col("a.event_date").alias("event_date"),
            F.col("a.product_id").alias("antecedent"),
            F.col("b.product_id").alias("consequent"),
        )
        .agg(F.count("*").alias("pair_orders"))
    )
    a_count = containing.select("event_date", F.col("product_id").alias("antecedent"), F.col("n").alias("n_a"))
    b_count = containing.select("event_date", F.col("product_id").alias("consequent"), F.col("n").alias("n_b"))
    return (
        filter_days(pairs, days)
        .join(a_count, ["event_date", "antecedent"])
        .join(b_count, ["event_date", "consequent"])
        .join(orders, "event_date")
        .withColumns(
            {
                "support": ratio(F.col("pair_orders"), F.col("orders")).cast(RATE),
                "confidence": ratio(F.col("pair_orders"), F.col("n_a")).cast(RATE),
                "lift": ratio(F.col("pair_orders") * F.col("orders"), F.col("n_a") * F.col("n_b")).cast(RATE),
            }
        )
        .select(*GOLD_PRODUCT_PAIRS.schema.fieldNames())
    )


# -- data quality ----------------------------------------------------------------------------------------------

IN_FLIGHT = dt.timedelta(minutes=5)
"""How long a record ingested into bronze may still be in flight to silver in a running micro-batch."""


def data_quality(
    silver_df: DataFrame,
    quarantine_df: DataFrame,
    bronze_df: DataFrame,
    landed_df: DataFrame,
    table_of_topic: dict[str, str],
    days: Days,
    as_of: dt.datetime | None = None,
) -> DataFrame:
    """One row per day of ``days`` and silver table (zeros included).

    Conservation counts a bronze record as missing only if it was ingested :data:`IN_FLIGHT` or longer before
    ``as_of`` (the time of the build; None: every record counts): the stream commits a micro-batch's tables side
    by side, so a build running beside it may see a record in bronze a moment before it appears in silver.

    Args:
        silver_df: silver rows of the days: ``table_name``, ``event_date``, ``is_late``, ``latency_s``.
        quarantine_df: quarantined rows dated one of the days by event time, or undated and reaching Kafka on one
            of them: ``kafka_topic``, ``kafka_timestamp``, ``event_date``, ``failed_rules``.
        bronze_df: Kafka coordinates, Kafka timestamp and ingest time of the bronze records that reached Kafka on
            the days.
        landed_df: Kafka coordinates of silver and quarantine rows that reached Kafka on the days.
        table_of_topic: Kafka topic -> silver table name.
    """
    spark = silver_df.sparkSession
    topics = spark.createDataFrame(list(table_of_topic.items()), "kafka_topic string, table_name string")
    keys = ["table_name", "event_date"]
    grid = topics.select("table_name").crossJoin(_days_df(spark, days))
    silver = silver_df.groupBy(*keys).agg(
        F.count("*").alias("rows"),
        F.count_if("is_late").alias("late_rows"),
        F.percentile("latency_s", F.lit(0.5)).alias("p50_latency_s"),
        F.percentile("latency_s", F.lit(0.95)).alias("p95_latency_s"),
    )
    # A record without an event day counts on the day it reached Kafka.
    quarantined = (
        quarantine_df.join(topics, "kafka_topic")
        .withColumn("is_dated", F.col("event_date").isNotNull())
        .withColumn("event_date", F.coalesce(F.col("event_date"), F.to_date("kafka_timestamp")))
    )
    is_duplicate = F.array_contains("failed_rules", "duplicate")
    dated = F.col("is_dated")
    counts = quarantined.groupBy(*keys).agg(
        F.count_if(dated & is_duplicate).alias("duplicates"),
        F.count_if(dated & ~is_duplicate).alias("quarantined"),
        F.count_if(~dated).alias("undated_quarantined"),
    )
    reasons = (
        quarantined.filter(~is_duplicate)
        .select(*keys, F.explode("failed_rules").alias("reason"))
        .groupBy(*keys, "reason")
        .count()
        .groupBy(*keys)
        .agg(F.map_from_entries(F.collect_list(F.struct("reason", "count"))).alias("quarantine_reasons"))
    )
    coordinates = list(KAFKA_COORDINATES)
    landed = landed_df.groupBy(*coordinates).agg(F.count("*").alias("copies"))
    copies = F.coalesce(F.col("copies"), F.lit(0))
    settled = F.lit(True)
    if as_of is not None:  # an unknown ingest time is no excuse: such a record counts as settled
        settled = F.coalesce(F.col("ingest_time") < F.lit(as_of - IN_FLIGHT), F.lit(True))
    accounting = (
        bronze_df.withColumn("event_date", F.to_date("kafka_timestamp"))
        .join(landed, coordinates, "left")
        .join(topics, "kafka_topic")
        .groupBy(*keys)
        .agg(
            F.count("*").alias("bronze_records"),
            F.count_if((copies > 1) | ((copies == 0) & settled)).alias("bad"),
        )
    )
    zero = ["rows", "late_rows", "duplicates", "quarantined", "undated_quarantined", "bronze_records", "bad"]
    return (
        grid.join(silver, keys, "left")
        .join(counts, keys, "left")
        .join(reasons, keys, "left")
        .join(accounting, keys, "left")
        .fillna(0, subset=zero)
        .withColumns(
            {
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
