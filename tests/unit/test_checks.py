"""The verdicts behind the Dagster asset checks, on tiny frames with explicit schemas (a null row in each)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from pyspark.testing import assertDataFrameEqual

from pipeline.batch import checks

DAY = dt.date(2026, 11, 2)
QUALITY = "table_name string, bronze_records long, conservation_ok boolean"
VERDICT = "bronze_records long, tables_failing array<string>, is_ok boolean"


def test_conservation_fails_naming_tables_that_lost_records_or_have_no_verdict(spark) -> None:
    quality = spark.createDataFrame(
        [("purchases", 5, True), ("page_views", 7, False), ("cart_events", None, None)], QUALITY
    )
    expected = spark.createDataFrame([(12, ["cart_events", "page_views"], False)], VERDICT)
    assertDataFrameEqual(checks.conservation_verdict(quality), expected)


def test_conservation_holds_when_every_table_conserves(spark) -> None:
    quality = spark.createDataFrame([("purchases", 5, True), ("page_views", 0, True)], QUALITY)
    assertDataFrameEqual(checks.conservation_verdict(quality), spark.createDataFrame([(5, [], True)], VERDICT))


SILVER = "event_id string, event_time timestamp"
CONTRACT = "rows long, distinct_ids long, bad_rows long, is_ok boolean"


@pytest.mark.parametrize("exact_ids", [True, False], ids=["exact ids", "hashed ids"])
def test_silver_contract_flags_missing_ids_duplicates_and_other_days(spark, exact_ids: bool) -> None:
    noon = dt.datetime(2026, 11, 2, 12)
    silver = spark.createDataFrame(
        [("e1", noon), ("e1", noon), (None, noon), ("e2", noon - dt.timedelta(days=1)), ("e3", None)], SILVER
    )
    expected = spark.createDataFrame([(5, 3, 2, False)], CONTRACT)
    assertDataFrameEqual(checks.silver_contract_verdict(silver, DAY, exact_ids=exact_ids), expected)


@pytest.mark.parametrize("exact_ids", [True, False], ids=["exact ids", "hashed ids"])
def test_silver_contract_holds_for_unique_events_of_the_day(spark, exact_ids: bool) -> None:
    silver = spark.createDataFrame([("e1", dt.datetime(2026, 11, 2, 0)), ("e2", dt.datetime(2026, 11, 2, 23))], SILVER)
    assertDataFrameEqual(
        checks.silver_contract_verdict(silver, DAY, exact_ids=exact_ids),
        spark.createDataFrame([(2, 2, 0, True)], CONTRACT),
    )


def test_a_hashed_silver_contract_is_recounted_exactly_only_when_it_fails_on_its_id_count_alone(spark) -> None:
    noon = dt.datetime(2026, 11, 2, 12)
    duplicate = spark.createDataFrame([("e1", noon), ("e1", noon)], SILVER)
    (failing_on_ids,) = checks.silver_contract_verdict(duplicate, DAY, exact_ids=False).collect()
    assert checks.needs_exact_recount(failing_on_ids)
    with_bad_row = spark.createDataFrame([("e1", noon), ("e1", noon), (None, noon)], SILVER)
    (failing_anyway,) = checks.silver_contract_verdict(with_bad_row, DAY, exact_ids=False).collect()
    assert not checks.needs_exact_recount(failing_anyway)
    unique = spark.createDataFrame([("e1", noon), ("e2", noon)], SILVER)
    (passing,) = checks.silver_contract_verdict(unique, DAY, exact_ids=False).collect()
    assert not checks.needs_exact_recount(passing)


def test_silver_contract_verdicts_judge_each_table_over_the_days_its_rows_are_dated(spark) -> None:
    schema = "event_id string, event_time timestamp, event_date date"
    noon, next_noon = dt.datetime(2026, 11, 2, 12), dt.datetime(2026, 11, 3, 12)
    tables = {
        "two_days": spark.createDataFrame([("e1", noon, DAY), ("e2", next_noon, DAY + dt.timedelta(days=1))], schema),
        "doubled": spark.createDataFrame([("e1", noon, DAY), ("e1", noon, DAY)], schema),
        "misdated": spark.createDataFrame([("e1", next_noon, DAY)], schema),
    }
    verdicts, recounted = checks.silver_contract_verdicts(tables)
    counts = {name: (v["rows"], v["distinct_ids"], v["bad_rows"], v["is_ok"]) for name, v in verdicts.items()}
    assert counts == {"two_days": (2, 2, 0, True), "doubled": (2, 1, 0, False), "misdated": (1, 1, 1, False)}
    assert recounted == ["doubled"], "failing on its id count alone, a collision could explain it"


SUMMARY = "orders long, revenue decimal(18,2), gross_revenue decimal(18,2), units long"
CATEGORIES = "category string, gross_revenue decimal(18,2), units long"
CUSTOMERS = "user_id string, revenue decimal(18,2)"


def test_totals_agree_when_categories_and_customers_add_up_to_the_summary(spark) -> None:
    summary = spark.createDataFrame([(2, Decimal("9.00"), Decimal("10.00"), 3)], SUMMARY)
    categories = spark.createDataFrame(
        [("a", Decimal("4.00"), 1), ("b", Decimal("6.00"), 2), (None, None, None)], CATEGORIES
    )
    customers = spark.createDataFrame([("u1", Decimal("9.00")), (None, None)], CUSTOMERS)
    row = checks.totals_verdict(summary, categories, customers).first()
    assert (row.is_ok, row.customers_revenue, row.orders) == (True, Decimal("9.00"), 2)


def test_totals_disagree_when_a_customer_revenue_is_missing(spark) -> None:
    summary = spark.createDataFrame([(2, Decimal("9.00"), Decimal("10.00"), 3)], SUMMARY)
    categories = spark.createDataFrame([("a", Decimal("10.00"), 3)], CATEGORIES)
    customers = spark.createDataFrame([("u1", Decimal("4.00")), ("u2", None)], CUSTOMERS)
    assert checks.totals_verdict(summary, categories, customers).first().is_ok is False


def test_totals_of_a_day_without_sales_agree_with_empty_tables(spark) -> None:
    summary = spark.createDataFrame([(0, Decimal("0.00"), Decimal("0.00"), 0)], SUMMARY)
    empty_categories, empty_customers = spark.createDataFrame([], CATEGORIES), spark.createDataFrame([], CUSTOMERS)
    assert checks.totals_verdict(summary, empty_categories, empty_customers).first().is_ok is True


DAILY_SALES = "event_date date, revenue decimal(18,2)"
ANOMALY = "revenue double, trailing_mean double, is_ok boolean"


def _daily_sales(spark, today: str | None, history: list[str | None]):
    rows = [(DAY - dt.timedelta(days=i + 1), None if r is None else Decimal(r)) for i, r in enumerate(history)]
    if today is not None:
        rows.append((DAY, Decimal(today)))
    return spark.createDataFrame(rows, DAILY_SALES)


def test_revenue_three_times_the_trailing_mean_is_an_anomaly(spark) -> None:
    verdict = checks.revenue_anomaly_verdict(_daily_sales(spark, "31.00", ["10.00", "10.00", None]), DAY)
    assertDataFrameEqual(verdict, spark.createDataFrame([(31.0, 10.0, False)], ANOMALY))


def test_revenue_within_three_times_the_trailing_mean_is_normal(spark) -> None:
    verdict = checks.revenue_anomaly_verdict(_daily_sales(spark, "30.00", ["10.00", "10.00"]), DAY)
    assertDataFrameEqual(verdict, spark.createDataFrame([(30.0, 10.0, True)], ANOMALY))


def test_revenue_without_history_or_without_a_row_is_judged_leniently(spark) -> None:
    no_history = checks.revenue_anomaly_verdict(_daily_sales(spark, "5.00", []), DAY)
    assertDataFrameEqual(no_history, spark.createDataFrame([(5.0, None, True)], ANOMALY))
    older_than_a_week = _daily_sales(spark, None, ["10.00", *([None] * 6), "99.00"])
    assertDataFrameEqual(
        checks.revenue_anomaly_verdict(older_than_a_week, DAY), spark.createDataFrame([(0.0, 10.0, False)], ANOMALY)
    )


def test_rates_above_one_are_counted(spark) -> None:
    products = spark.createDataFrame(
        [("p1", Decimal("1.000000"), Decimal("0.5")), ("p2", Decimal("1.5"), None), ("p3", None, None)],
        "product_id string, view_to_cart_rate decimal(12,6), cart_to_purchase_rate decimal(12,6)",
    )
    assertDataFrameEqual(
        checks.rates_verdict(products), spark.createDataFrame([(1, False)], "products_out_of_range long, is_ok boolean")
    )


def test_silver_contract_takes_the_last_millisecond_of_the_day_and_rejects_the_next_midnight(spark) -> None:
    silver = spark.createDataFrame(
        [
            ("e1", dt.datetime(2026, 11, 2, 0, 0, 0)),
            ("e2", dt.datetime(2026, 11, 2, 23, 59, 59, 999000)),
            ("e3", dt.datetime(2026, 11, 3, 0, 0, 0)),
        ],
        SILVER,
    )
    expected = spark.createDataFrame([(3, 3, 1, False)], CONTRACT)
    assertDataFrameEqual(checks.silver_contract_verdict(silver, DAY), expected)


def test_revenue_exactly_a_third_of_the_trailing_mean_is_normal_and_a_cent_less_is_an_anomaly(spark) -> None:
    at_third = checks.revenue_anomaly_verdict(_daily_sales(spark, "10.00", ["30.00"]), DAY)
    assertDataFrameEqual(at_third, spark.createDataFrame([(10.0, 30.0, True)], ANOMALY))
    below = checks.revenue_anomaly_verdict(_daily_sales(spark, "9.99", ["30.00"]), DAY)
    assertDataFrameEqual(below, spark.createDataFrame([(9.99, 30.0, False)], ANOMALY))


def test_each_day_of_a_range_is_judged_against_its_own_trailing_week(spark) -> None:
    # DAY: 31.00 against a mean of 10.00 (an anomaly); the day after: 25.00 against the mean of 10.00 and DAY's 31.00.
    daily_sales = _daily_sales(spark, "31.00", ["10.00"]).unionByName(
        spark.createDataFrame([(DAY + dt.timedelta(days=1), Decimal("25.00"))], DAILY_SALES)
    )
    verdicts = checks.revenue_anomaly_verdicts(daily_sales, [DAY, DAY + dt.timedelta(days=1)])
    assertDataFrameEqual(
        verdicts,
        spark.createDataFrame(
            [(31.0, 10.0, False, DAY), (25.0, 20.5, True, DAY + dt.timedelta(days=1))], f"{ANOMALY}, event_date date"
        ),
    )


def test_the_trailing_mean_includes_the_seventh_day_before_and_not_the_eighth(spark) -> None:
    # D-7 (10.00) is in the window, D-8 (1000.00) is not: mean 10, so 30.00 is normal.
    history = [*([None] * 6), "10.00", "1000.00"]
    verdict = checks.revenue_anomaly_verdict(_daily_sales(spark, "30.00", history), DAY)
    assertDataFrameEqual(verdict, spark.createDataFrame([(30.0, 10.0, True)], ANOMALY))
