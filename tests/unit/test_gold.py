"""Daily sales summary on tiny silver inputs."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from pipeline.batch.gold import daily_sales_summary
from pipeline.tables import GOLD_DAILY_SALES

DAY = dt.date(2026, 11, 2)
PURCHASES = T.StructType(
    [T.StructField("user_id", T.StringType()), T.StructField("total_amount", T.DecimalType(12, 2))]
)
VIEWS = T.StructType([T.StructField("user_id", T.StringType())])


def test_sales_summary_counts_orders_revenue_customers_views_and_visitors(spark) -> None:
    purchases = spark.createDataFrame(
        [("u1", Decimal("10.01")), ("u1", Decimal("5.00")), ("u2", Decimal("0.99"))], PURCHASES
    )
    views = spark.createDataFrame([("u1",), ("u1",), ("u3",), (None,)], VIEWS)
    expected = spark.createDataFrame([(DAY, 3, Decimal("16.00"), 2, 4, 2)], GOLD_DAILY_SALES.schema)
    assertDataFrameEqual(daily_sales_summary(purchases, views, DAY), expected)


def test_a_day_without_events_still_gets_one_row_of_zeros(spark) -> None:
    empty = daily_sales_summary(spark.createDataFrame([], PURCHASES), spark.createDataFrame([], VIEWS), DAY)
    assertDataFrameEqual(empty, spark.createDataFrame([(DAY, 0, Decimal("0.00"), 0, 0, 0)], GOLD_DAILY_SALES.schema))
