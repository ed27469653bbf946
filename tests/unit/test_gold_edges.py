"""Gold metrics at the edges of their definitions (docs/metrics.md), on tiny silver frames with explicit schemas.

Every expected value here is worked out by hand from docs/metrics.md: score thresholds exactly at and just past
each boundary, ties, an order with the same product on two lines, half-up rounding, zero denominators, nulls.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from pipeline.batch import gold
from pipeline.products import product_versions
from pipeline.tables import (
    GOLD_CUSTOMER_DAILY,
    GOLD_CUSTOMER_LIFETIME,
    GOLD_DAILY_CATEGORY_SALES,
    GOLD_PRODUCT_DAILY,
    GOLD_PRODUCT_PAIRS,
)

DAY = dt.date(2026, 11, 30)
ITEM = "struct<product_id:string, quantity:int, unit_price:decimal(12,2), total_price:decimal(12,2), category:string>"
PURCHASES = (
    "event_id string, event_date date, user_id string, session_id string, payment_method string, "
    f"subtotal decimal(12,2), discount_amount decimal(12,2), total_amount decimal(12,2), items array<{ITEM}>"
)
PAGE_VIEWS = "event_id string, event_date date, user_id string, session_id string, product_id string"
CARTS = "event_id string, event_date date, user_id string, session_id string, product_id string, quantity int"
SESSIONS = "event_id string, event_date date, user_id string, session_id string"
ACTIVITY = "user_id string, event_date date"


def days_ago(n: int) -> dt.date:
    return DAY - dt.timedelta(days=n)


def item(product_id: str, quantity: int, unit_price: str, category: str = "books") -> tuple:
    unit = Decimal(unit_price)
    return (product_id, quantity, unit, unit * quantity, category)


def purchase(
    event_id: str,
    user_id: str = "u1",
    *,
    day: dt.date = DAY,
    session_id: str | None = None,
    payment_method: str = "paypal",
    total: str = "1.00",
    items: list[tuple] | None = None,
) -> tuple:
    """A purchase row of ``total_amount`` ``total`` without discount (one line of p1 unless ``items`` given)."""
    lines = items if items is not None else [item("p1", 1, total)]
    subtotal = sum((line[3] for line in lines), Decimal("0.00"))
    discount = subtotal - Decimal(total)
    return (
        event_id,
        day,
        user_id,
        session_id or f"s-{event_id}",
        payment_method,
        subtotal,
        discount,
        Decimal(total),
        lines,
    )


def frame(spark: SparkSession, rows: list[tuple], schema: str) -> DataFrame:
    return spark.createDataFrame(rows, schema)


def empty(spark: SparkSession, schema: str) -> DataFrame:
    return spark.createDataFrame([], schema)


def summary(spark: SparkSession, purchases: list[tuple], views: list[tuple] = (), carts=(), sessions=()) -> dict:
    row = gold.daily_sales_summary(
        frame(spark, purchases, PURCHASES),
        frame(spark, list(views), PAGE_VIEWS),
        frame(spark, list(carts), CARTS),
        frame(spark, list(sessions), SESSIONS),
        DAY,
    ).collect()
    assert len(row) == 1
    return row[0].asDict()


# -- daily_sales_summary -----------------------------------------------------------------------------------------


def test_top_payment_method_tie_goes_to_the_alphabetically_first(spark) -> None:
    # paypal 2, credit_card 2, apple_pay 1: a tie at 2 between credit_card and paypal -> credit_card.
    rows = [
        purchase("o1", payment_method="paypal"),
        purchase("o2", payment_method="paypal"),
        purchase("o3", payment_method="credit_card"),
        purchase("o4", payment_method="credit_card"),
        purchase("o5", payment_method="apple_pay"),
    ]
    assert summary(spark, rows)["top_payment_method"] == "credit_card"


def test_top_payment_method_is_the_most_used_even_when_another_sorts_first(spark) -> None:
    rows = [
        purchase("o1", payment_method="gift_card"),
        purchase("o2", payment_method="gift_card"),
        purchase("o3", payment_method="apple_pay"),
    ]
    assert summary(spark, rows)["top_payment_method"] == "gift_card"


def test_top_payment_method_is_null_without_orders(spark) -> None:
    views = [("v1", DAY, "u1", "s1", None)]
    assert summary(spark, [], views)["top_payment_method"] is None


def test_average_order_value_rounds_a_half_cent_up(spark) -> None:
    # 0.01 + 0.04 = 0.05 over 2 orders = 0.025 -> 0.03 (half up, not half even)
    rows = [purchase("o1", total="0.01"), purchase("o2", total="0.04")]
    got = summary(spark, rows)
    assert (got["revenue"], got["orders"], got["average_order_value"]) == (Decimal("0.05"), 2, Decimal("0.03"))


def test_revenue_per_visitor_rounds_half_up_and_is_null_without_visitors(spark) -> None:
    # 10.01 / 2 visitors = 5.005 -> 5.01
    rows = [purchase("o1", total="10.01")]
    views = [("v1", DAY, "u1", "s1", None), ("v2", DAY, "u2", "s2", None), ("v3", DAY, "u2", "s2", None)]
    assert summary(spark, rows, views)["revenue_per_visitor"] == Decimal("5.01")
    assert summary(spark, rows)["revenue_per_visitor"] is None


def test_units_count_every_item_line_and_orders_count_each_purchase_once(spark) -> None:
    # o1 has p1 on two lines (1 + 2 units) and p2 (4 units); o2 has one line of 1 unit.
    o1 = purchase("o1", total="73.00", items=[item("p1", 1, "10.00"), item("p1", 2, "10.00"), item("p2", 4, "10.75")])
    got = summary(spark, [o1, purchase("o2", "u2")])
    assert (got["orders"], got["units"], got["gross_revenue"], got["unique_customers"]) == (2, 8, Decimal("74.00"), 2)
    assert (got["revenue"], got["discount_total"]) == (Decimal("74.00"), Decimal("0.00"))


def test_conversion_rate_is_converted_sessions_over_all_sessions_to_six_decimals(spark) -> None:
    # sessions: s1 (view + purchase), s2 (cart), s3 (login only) -> 1 / 3 = 0.333333
    rows = [purchase("o1", session_id="s1")]
    views = [("v1", DAY, "u1", "s1", "p1")]
    carts = [("c1", DAY, "u2", "s2", "p1", 1)]
    logins = [("l1", DAY, "u3", "s3")]
    got = summary(spark, rows, views, carts, logins)
    assert (got["sessions"], got["converted_sessions"], got["conversion_rate"]) == (3, 1, Decimal("0.333333"))


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (1, 128, Decimal("0.007813")),  # 0.0078125: exactly half a step -> up
        (1, 2_000_000, Decimal("0.000001")),  # 0.0000005 -> up
        (1, 2_000_001, Decimal("0.000000")),  # just under half a step -> down
        (3, 3, Decimal("1.000000")),
        (0, 5, Decimal("0.000000")),
        (4, 0, None),
        (None, 3, None),
    ],
)
def test_rates_round_half_up_at_the_seventh_decimal(spark, numerator, denominator, expected) -> None:
    df = spark.createDataFrame([(numerator, denominator)], "n long, d long")
    assert df.select(gold.ratio(F.col("n"), F.col("d")).alias("r")).first().r == expected


# -- customer_daily ----------------------------------------------------------------------------------------------


def customers(spark: SparkSession, purchases: list[tuple], extra_activity: list[tuple] = ()) -> DataFrame:
    """``customer_daily`` for DAY from the whole history (no earlier lifetime state); every purchase is also
    activity, and so is every row of ``extra_activity``."""
    purchases_df = frame(spark, purchases, PURCHASES)
    activity = [(p[2], p[1]) for p in purchases] + list(extra_activity)
    nothing_before = spark.createDataFrame([], GOLD_CUSTOMER_LIFETIME.schema)
    lifetime = gold.customer_lifetime(nothing_before, purchases_df, frame(spark, activity, ACTIVITY), DAY)
    return gold.customer_daily(lifetime, purchases_df.filter(F.col("event_date") == F.lit(DAY)), DAY)


def customer_row(
    user_id: str,
    *,
    orders: int = 0,
    revenue: str = "0.00",
    orders_to_date: int,
    ltv: str,
    first_seen: dt.date,
    last_purchase: dt.date | None,
    r: int,
    f: int,
    m: int,
    segment: str,
) -> tuple:
    recency = None if last_purchase is None else (DAY - last_purchase).days
    return (
        DAY, user_id, orders, Decimal(revenue), orders_to_date, Decimal(ltv), first_seen, last_purchase, recency,
        r, f, m, segment,
    )  # fmt: skip


def test_recency_score_at_and_beside_each_boundary(spark) -> None:
    # One 1.00 order k days before DAY, active on DAY: R = 5 (k=0), 4 (1..7), 3 (8..30), 2 (31..90), 1 (91+ / never).
    ks = {0: 5, 1: 4, 7: 4, 8: 3, 30: 3, 31: 2, 90: 2, 91: 1}
    rows = [purchase(f"o{k}", f"u{k:02d}", day=days_ago(k)) for k in ks]
    active = [(f"u{k:02d}", DAY) for k in ks] + [("never", DAY)]
    segment = {5: "new_customer", 4: "regular", 3: "regular", 2: "at_risk", 1: "at_risk"}
    expected = [
        customer_row(
            f"u{k:02d}",
            orders=int(k == 0),
            revenue="1.00" if k == 0 else "0.00",
            orders_to_date=1,
            ltv="1.00",
            first_seen=days_ago(k),
            last_purchase=days_ago(k),
            r=r,
            f=1,
            m=1,
            segment=segment[r],
        )
        for k, r in ks.items()
    ] + [
        customer_row(
            "never", orders_to_date=0, ltv="0.00", first_seen=DAY, last_purchase=None, r=1, f=1, m=1, segment="prospect"
        )
    ]
    assertDataFrameEqual(customers(spark, rows, active), spark.createDataFrame(expected, GOLD_CUSTOMER_DAILY.schema))


def test_frequency_score_at_and_beside_each_boundary(spark) -> None:
    # n orders of 1.00, all 10 days ago (R = 3): F = 1 (0-1), 2 (2), 3 (3-4), 4 (5-9), 5 (10+).
    ns = {1: 1, 2: 2, 3: 3, 4: 3, 5: 4, 9: 4, 10: 5}
    rows = [purchase(f"o{n}-{i}", f"u{n:02d}", day=days_ago(10)) for n in ns for i in range(n)]
    active = [(f"u{n:02d}", DAY) for n in ns]
    expected = [
        customer_row(
            f"u{n:02d}",
            orders_to_date=n,
            ltv=f"{n}.00",
            first_seen=days_ago(10),
            last_purchase=days_ago(10),
            r=3,
            f=f,
            m=1,
            segment="loyal" if f >= 3 else "regular",
        )
        for n, f in ns.items()
    ]
    assertDataFrameEqual(customers(spark, rows, active), spark.createDataFrame(expected, GOLD_CUSTOMER_DAILY.schema))


def test_monetary_score_at_and_beside_each_boundary(spark) -> None:
    # One order 10 days ago with this LTV: M = 1 (< 50), 2 (< 200), 3 (< 500), 4 (< 1000), 5 (1000 and more).
    ltvs = {"0.00": 1, "49.99": 1, "50.00": 2, "199.99": 2, "200.00": 3, "499.99": 3, "500.00": 4, "999.99": 4,
            "1000.00": 5}  # fmt: skip
    rows = [purchase(f"o-{v}", f"u-{v}", day=days_ago(10), total=v) for v in ltvs]
    active = [(f"u-{v}", DAY) for v in ltvs]
    expected = [
        customer_row(
            f"u-{v}",
            orders_to_date=1,
            ltv=v,
            first_seen=days_ago(10),
            last_purchase=days_ago(10),
            r=3,
            f=1,
            m=m,
            segment="regular",
        )
        for v, m in ltvs.items()
    ]
    assertDataFrameEqual(customers(spark, rows, active), spark.createDataFrame(expected, GOLD_CUSTOMER_DAILY.schema))


def test_segment_rules_apply_in_their_documented_order(spark) -> None:
    cases = {
        # user: (order days ago, ...) -> expected (R, F, segment)
        "champ_at_7_days": ((20, 20, 20, 20, 7), (4, 4, "champion")),
        "loyal_at_8_days": ((20, 20, 20, 20, 8), (3, 4, "loyal")),
        "champ_before_new": ((0, 0, 0, 0, 0), (5, 4, "champion")),
        "new_before_loyal": ((0, 0, 0), (5, 3, "new_customer")),
        "not_new_bought_before": ((3, 0), (5, 2, "regular")),
        "loyal_before_risk": ((91, 91, 91), (1, 3, "loyal")),
        "at_risk_at_31": ((40, 31), (2, 2, "at_risk")),
        "regular_at_30": ((40, 30), (3, 2, "regular")),
    }
    rows = [purchase(f"{user}-{i}", user, day=days_ago(k)) for user, (ks, _) in cases.items() for i, k in enumerate(ks)]
    active = [(user, DAY) for user in cases]
    expected = [
        customer_row(
            user,
            orders=ks.count(0),
            revenue=f"{ks.count(0)}.00",
            orders_to_date=len(ks),
            ltv=f"{len(ks)}.00",
            first_seen=days_ago(max(ks)),
            last_purchase=days_ago(min(ks)),
            r=r,
            f=f,
            m=1,
            segment=segment,
        )
        for user, (ks, (r, f, segment)) in cases.items()
    ]
    assertDataFrameEqual(customers(spark, rows, active), spark.createDataFrame(expected, GOLD_CUSTOMER_DAILY.schema))


def test_a_user_without_activity_on_the_day_gets_no_row_and_first_seen_counts_any_event(spark) -> None:
    # u1 bought 5 days ago and is not active on DAY; u2 only browsed 12 days ago, bought 3 days ago, browses today.
    rows = [purchase("o1", "u1", day=days_ago(5)), purchase("o2", "u2", day=days_ago(3), total="7.50")]
    activity = [("u2", days_ago(12)), ("u2", DAY)]
    expected = [
        customer_row(
            "u2",
            orders_to_date=1,
            ltv="7.50",
            first_seen=days_ago(12),
            last_purchase=days_ago(3),
            r=4,
            f=1,
            m=1,
            segment="regular",
        )
    ]
    assertDataFrameEqual(customers(spark, rows, activity), spark.createDataFrame(expected, GOLD_CUSTOMER_DAILY.schema))


# -- product_daily, category sales, pairs ------------------------------------------------------------------------


UPDATES = (
    "event_id string, event_date date, product_id string, event_time timestamp, update_type string, "
    "new_price decimal(12,2), stock_level int, rating decimal(3,2)"
)
NOON = dt.datetime.combine(DAY, dt.time(12))


def at_noon(df: DataFrame) -> DataFrame:
    """Views or purchases at noon of their day, purchases without an order discount (what product_daily reads
    besides the columns the rows give)."""
    stamped = df.withColumn("event_time", F.lit(NOON))
    return stamped.withColumn("discount_percent", F.lit(Decimal("0.00"))) if "items" in df.columns else stamped


def product_daily(spark, views: DataFrame, carts: list[tuple], purchases: DataFrame, updates: list[tuple]) -> DataFrame:
    changes = frame(spark, updates, UPDATES)
    return gold.product_daily(
        views, frame(spark, carts, CARTS), purchases, changes.filter(F.col("event_date") == DAY),
        product_versions(changes), DAY,
    )  # fmt: skip


def test_product_purchases_count_distinct_orders_when_a_product_has_two_lines(spark) -> None:
    # o1: p1 on two lines (1 x 10.00, 2 x 10.00) and p2; o2: p1 once. p1: 2 orders, 4 units, 40.00.
    o1 = purchase("o1", session_id="s1", total="35.00", items=[item("p1", 1, "10.00"), item("p1", 2, "10.00"),
                                                              item("p2", 1, "5.00")])  # fmt: skip
    o2 = purchase("o2", "u2", session_id="s2", total="10.00", items=[item("p1", 1, "10.00")])
    # s1 viewed and carted p1; s3 viewed p1 only; a home page view (no product) counts for no product.
    views = [("v1", DAY, "u1", "s1", "p1"), ("v2", DAY, "u3", "s3", "p1"), ("v3", DAY, "u3", "s3", None)]
    carts = [("c1", DAY, "u1", "s1", "p1", 3), ("c2", DAY, "u1", "s1", "p1", 1)]
    got = product_daily(
        spark, at_noon(frame(spark, views, PAGE_VIEWS)), carts, at_noon(frame(spark, [o1, o2], PURCHASES)), []
    )
    expected = spark.createDataFrame(
        [
            # views, carts, cart_units, purchases, units, gross_revenue, view->cart (1 of 2), cart->purchase (1 of 1);
            # no product update: no list price, no price change, no view out of stock, no discount against a list
            (DAY, "p1", 2, 2, 4, 2, 4, Decimal("40.00"), Decimal("0.500000"), Decimal("1.000000"), None, 0, 0, None),
            (DAY, "p2", 0, 0, 0, 1, 1, Decimal("5.00"), None, None, None, 0, 0, None),
        ],
        GOLD_PRODUCT_DAILY.schema,
    )
    assertDataFrameEqual(got, expected)


def test_prices_stock_outs_and_discounts_follow_the_version_in_force_at_each_instant(spark) -> None:
    def t(hour: int, minute: int = 0, day: dt.date = DAY) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(hour, minute))

    next_day = DAY + dt.timedelta(days=1)
    updates = [
        ("u6", days_ago(1), "p1", t(9, day=days_ago(1)), "price_change", Decimal("18.00"), None, None),
        ("u1", DAY, "p1", t(8), "price_change", Decimal("20.00"), None, None),
        ("u2", DAY, "p1", t(10), "inventory_update", None, 0, None),  # sold out from 10:00 ...
        ("u3", DAY, "p1", t(12), "inventory_update", None, 7, None),  # ... to 12:00
        ("u4", DAY, "p1", t(18), "price_change", Decimal("25.00"), None, None),
        ("u5", next_day, "p1", t(0, day=next_day), "price_change", Decimal("30.00"), None, None),  # not D's close
        ("u7", DAY, "p2", t(13), "inventory_update", None, 5, None),  # p2: an update, no activity, no price
    ]
    views = frame(
        spark,
        [
            ("v1", DAY, "u1", "s1", "p1", t(7)),  # stock not known yet: not out of stock
            ("v2", DAY, "u1", "s1", "p1", t(10)),  # the sold-out version starts at 10:00: out of stock
            ("v3", DAY, "u1", "s1", "p1", dt.datetime.combine(DAY, dt.time(11, 59, 59, 999000))),  # out of stock
            ("v4", DAY, "u1", "s1", "p1", t(12)),  # back in stock
        ],
        f"{PAGE_VIEWS}, event_time timestamp",
    )

    def sold(order: tuple, percent: str, when: dt.datetime) -> tuple:
        return (*order, Decimal(percent), when)

    purchases = frame(
        spark,
        [
            # list 20.00 at 09:00 (u1), paid 20.00 less 10 %: list 20.00, paid 18.00
            sold(purchase("o1", total="18.00", items=[item("p1", 1, "20.00")]), "10.00", t(9)),
            # list 18.00 at 07:30 (u6, the day before), 2 x 18.00 paid in full: list 36.00, paid 36.00
            sold(purchase("o2", total="36.00", items=[item("p1", 2, "18.00")]), "0.00", t(7, 30)),
            # list 25.00 at 19:00 (u4), sold above it at 30.00: list 25.00, paid 30.00
            sold(purchase("o3", total="30.00", items=[item("p1", 1, "30.00")]), "0.00", t(19)),
            # p3 has no version: no list price, no discount
            sold(purchase("o4", total="5.00", items=[item("p3", 1, "5.00")]), "0.00", t(10)),
        ],
        f"{PURCHASES}, discount_percent decimal(5,2), event_time timestamp",
    )
    got = product_daily(spark, views, [], purchases, updates)
    expected = spark.createDataFrame(
        [
            # discount against list: 1 - 84.00 / 81.00 = -0.0370370... -> -0.037037 (half away from zero)
            (DAY, "p1", 4, 0, 0, 3, 4, Decimal("86.00"), Decimal("0.000000"), None, Decimal("25.00"), 2, 2,
             Decimal("-0.037037")),
            (DAY, "p2", 0, 0, 0, 0, 0, Decimal("0.00"), None, None, None, 0, 0, None),
            (DAY, "p3", 0, 0, 0, 1, 1, Decimal("5.00"), None, None, None, 0, 0, None),
        ],
        GOLD_PRODUCT_DAILY.schema,
    )  # fmt: skip
    assertDataFrameEqual(got, expected)


def test_category_orders_count_an_order_once_when_two_of_its_lines_share_the_category(spark) -> None:
    o1 = purchase(
        "o1", total="21.00", items=[item("p1", 1, "10.00"), item("p3", 1, "9.00"), item("p2", 1, "2.00", "toys")]
    )
    o2 = purchase("o2", total="10.00", items=[item("p1", 1, "10.00")])
    expected = spark.createDataFrame(
        [(DAY, "books", 2, 3, Decimal("29.00")), (DAY, "toys", 1, 1, Decimal("2.00"))], GOLD_DAILY_CATEGORY_SALES.schema
    )
    assertDataFrameEqual(gold.daily_category_sales(frame(spark, [o1, o2], PURCHASES), DAY), expected)


def test_pairs_count_an_order_once_when_a_product_repeats_and_never_pair_a_product_with_itself(spark) -> None:
    # Orders: {p1 (two lines), p2}, {p1}, {p3}. pair_orders(p1,p2) = 1 of 3 orders; p1 in 2 orders, p2 in 1.
    o1 = purchase("o1", total="25.00", items=[item("p1", 1, "10.00"), item("p2", 1, "5.00"), item("p1", 1, "10.00")])
    o2 = purchase("o2", total="10.00", items=[item("p1", 1, "10.00")])
    o3 = purchase("o3", total="1.00", items=[item("p3", 1, "1.00")])
    expected = spark.createDataFrame(
        [
            # support 1/3; confidence p1->p2 1/2, p2->p1 1/1; lift = 1 * 3 / (2 * 1) = 1.5 both ways
            (DAY, "p1", "p2", 1, Decimal("0.333333"), Decimal("0.500000"), Decimal("1.500000")),
            (DAY, "p2", "p1", 1, Decimal("0.333333"), Decimal("1.000000"), Decimal("1.500000")),
        ],
        GOLD_PRODUCT_PAIRS.schema,
    )
    assertDataFrameEqual(gold.product_pairs(frame(spark, [o1, o2, o3], PURCHASES), DAY), expected)
