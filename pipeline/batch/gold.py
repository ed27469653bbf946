"""Silver -> gold: daily aggregates. Pure transforms over one day of silver rows.

Each metric is defined in ``docs/metrics.md``; the simulator's oracle implements the same definitions
independently.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.tables import GOLD_DAILY_SALES


def daily_sales_summary(purchases_df: DataFrame, page_views_df: DataFrame, day: dt.date) -> DataFrame:
    """One row for ``day``: orders, revenue after discounts, unique customers, page views, visitors.

    Always exactly one row, with zeros on a day without events, so that rebuilding a day replaces its row.
    """
    sales = purchases_df.agg(
        F.count("*").alias("orders"),
        F.sum("total_amount").alias("revenue"),
        F.count_distinct("user_id").alias("unique_customers"),
    )
    traffic = page_views_df.agg(
        F.count("*").alias("page_views"),
        F.count_distinct("user_id").alias("visitors"),
    )
    return (
        sales.crossJoin(traffic)
        .select(
            F.lit(day).alias("event_date"),
            "orders",
            F.coalesce(F.col("revenue"), F.lit(0)).cast(T.DecimalType(18, 2)).alias("revenue"),
            "unique_customers",
            "page_views",
            "visitors",
        )
        .select(*GOLD_DAILY_SALES.schema.fieldNames())
    )
