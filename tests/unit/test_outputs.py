"""What a gold write reports about the day it wrote: headline figures and the preview of the summary row."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from pipeline.batch.outputs import day_headline, day_preview
from pipeline.tables import GOLD_DAILY_CATEGORY_SALES, GOLD_DAILY_SALES_SUMMARY

DAY = dt.date(2026, 11, 2)


def _summary_row(orders: int | None, revenue: str | None) -> tuple:
    values = {name: None for name in GOLD_DAILY_SALES_SUMMARY.schema.fieldNames()}
    values |= {"event_date": DAY, "orders": orders, "revenue": Decimal(revenue) if revenue else None}
    return tuple(values.values())


def test_the_summary_day_reports_its_orders_and_exact_revenue_and_an_empty_day_zero(spark) -> None:
    schema = GOLD_DAILY_SALES_SUMMARY.schema
    day_df = spark.createDataFrame([_summary_row(3, "120.50")], schema)
    assert day_headline(GOLD_DAILY_SALES_SUMMARY, day_df) == {"orders": 3, "revenue": Decimal("120.50")}
    empty = spark.createDataFrame([], schema)
    assert day_headline(GOLD_DAILY_SALES_SUMMARY, empty) == {"orders": 0, "revenue": Decimal("0.00")}
    nulls = spark.createDataFrame([_summary_row(None, None)], schema)
    assert day_headline(GOLD_DAILY_SALES_SUMMARY, nulls) == {"orders": 0, "revenue": Decimal("0.00")}


def test_the_preview_is_the_summary_row_column_by_column_and_other_tables_have_none(spark) -> None:
    day_df = spark.createDataFrame([_summary_row(3, "120.50")], GOLD_DAILY_SALES_SUMMARY.schema)
    preview = day_preview(GOLD_DAILY_SALES_SUMMARY, day_df)
    assert [name for name, _ in preview] == GOLD_DAILY_SALES_SUMMARY.schema.fieldNames()
    assert dict(preview)["revenue"] == Decimal("120.50")
    assert day_preview(GOLD_DAILY_SALES_SUMMARY, spark.createDataFrame([], GOLD_DAILY_SALES_SUMMARY.schema)) == []
    categories = spark.createDataFrame([(DAY, "books", 1, 2, Decimal("3.00"))], GOLD_DAILY_CATEGORY_SALES.schema)
    assert day_preview(GOLD_DAILY_CATEGORY_SALES, categories) == []
    assert day_headline(GOLD_DAILY_CATEGORY_SALES, categories) == {}
