"""What the gold asset checks compute, as pure transforms: each returns one row the check turns into a verdict.

The Dagster checks (``pipeline/orchestration/checks.py``) only read the tables of the day, call these and report
the row; the rules themselves live here, beside the gold transforms, and are unit tested on tiny frames.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence

from pyspark.sql import DataFrame, Row
from pyspark.sql import functions as F

ANOMALY_FACTOR = 3
ANOMALY_TRAILING_DAYS = 7


def conservation_verdict(data_quality_df: DataFrame) -> DataFrame:
    """From the ``gold.data_quality`` rows of one day: ``bronze_records`` (total), ``tables_failing`` (sorted
    names whose conservation does not hold; a null verdict counts as failing) and ``is_ok``."""
    failing = F.filter(
        F.collect_list(F.when(~F.coalesce(F.col("conservation_ok"), F.lit(False)), F.col("table_name"))),
        lambda name: name.isNotNull(),
    )
    return data_quality_df.agg(
        F.coalesce(F.sum("bronze_records"), F.lit(0)).cast("long").alias("bronze_records"),
        F.array_sort(failing).alias("tables_failing"),
    ).withColumn("is_ok", F.size("tables_failing") == 0)


def silver_contract_verdict(silver_df: DataFrame, day: dt.date | None = None, *, exact_ids: bool = True) -> DataFrame:
    """From one silver table's rows of ``day`` (or of several days: then each row's own ``event_date``): ``rows``,
    ``distinct_ids``, ``bad_rows`` (no event id, or an event time on another day) and ``is_ok`` (each event id
    once, no bad row).

    With ``exact_ids=False`` the ids are told apart by a 64-bit hash (xxhash64), about a third cheaper over ten
    million ids: equal ids have equal hashes, so a passing verdict is exact, but two distinct ids may collide (for
    ten million of them, odds of about 3 in a million) and lower ``distinct_ids``. A failing verdict without bad
    rows must then be recounted exactly (:func:`needs_exact_recount`).
    """
    its_day = F.lit(day) if day is not None else F.col("event_date")
    event_id = F.col("event_id")
    is_bad = event_id.isNull() | (F.to_date("event_time") != its_day)
    # xxhash64 of a null is its seed, not null: a missing id is a bad row, never a distinct id.
    ids = event_id if exact_ids else F.when(event_id.isNotNull(), F.xxhash64(event_id))
    return silver_df.agg(
        F.count("*").alias("rows"),
        F.count_distinct(ids).alias("distinct_ids"),
        F.count_if(is_bad).alias("bad_rows"),
    ).withColumn("is_ok", (F.col("rows") == F.col("distinct_ids")) & (F.col("bad_rows") == 0))


def needs_exact_recount(verdict: Row) -> bool:
    """Whether a hashed :func:`silver_contract_verdict` failed on its id count alone, which a collision could
    explain."""
    return not verdict["is_ok"] and verdict["bad_rows"] == 0


def silver_contract_verdicts(silver_dfs: Mapping[str, DataFrame]) -> tuple[dict[str, Row], list[str]]:
    """:func:`silver_contract_verdict` of each silver table (by name), the run's days in its rows' ``event_date``,
    and the tables whose ids were recounted exactly.

    Every table's verdict comes from one query with ids told apart by their hashes; a table failing on its id
    count alone is then recounted exactly, so a hash collision never fails a table.
    """
    hashed = functools.reduce(
        DataFrame.unionByName,
        [
            silver_contract_verdict(frame, exact_ids=False).withColumn("table_name", F.lit(name))
            for name, frame in silver_dfs.items()
        ],
    ).collect()
    verdicts: dict[str, Row] = {v["table_name"]: v for v in hashed}
    recounted = sorted(name for name, verdict in verdicts.items() if needs_exact_recount(verdict))
    for name in recounted:
        exact = silver_contract_verdict(silver_dfs[name]).first()
        assert exact is not None, "an aggregate is one row"
        verdicts[name] = exact
    return verdicts, recounted


def totals_verdict(
    summary_df: DataFrame, category_sales_df: DataFrame, customer_daily_df: DataFrame, by: tuple[str, ...] = ()
) -> DataFrame:
    """Whether one day's gold tables agree: the summary's gross revenue and units equal the categories' sums, its
    revenue the customers' sum (an empty side sums to 0). One row per summary row (none when it is missing).

    ``by``: columns that tell days apart when the frames hold several (``("event_date",)``), kept in the result.
    """
    categories = category_sales_df.groupBy(*by).agg(
        F.sum("gross_revenue").alias("categories_gross_revenue"), F.sum("units").alias("categories_units")
    )
    customers = customer_daily_df.groupBy(*by).agg(F.sum("revenue").alias("customers_revenue"))
    agree = (
        (F.col("gross_revenue") == F.col("categories_gross_revenue"))
        & (F.col("units") == F.col("categories_units"))
        & (F.col("revenue") == F.col("customers_revenue"))
    )
    summary = summary_df.select(*by, "orders", "revenue", "gross_revenue", "units")
    joined = (
        summary.crossJoin(categories).crossJoin(customers)
        if not by
        else summary.join(categories, list(by), "left").join(customers, list(by), "left")
    )
    zero = ["categories_gross_revenue", "categories_units", "customers_revenue"]
    return joined.withColumns({c: F.coalesce(F.col(c), F.lit(0)) for c in zero}).withColumn(
        "is_ok", F.coalesce(agree, F.lit(False))
    )


def revenue_anomaly_verdict(daily_sales_df: DataFrame, day: dt.date) -> DataFrame:
    """``revenue`` of ``day`` (0 without a row) against ``trailing_mean``, the mean revenue of the 7 days before
    (null without history); ``is_ok`` unless the revenue is more than 3x away from a non-zero mean."""
    trailing = (F.col("event_date") < F.lit(day)) & (
        F.col("event_date") >= F.lit(day - dt.timedelta(days=ANOMALY_TRAILING_DAYS))
    )
    today = F.col("event_date") == F.lit(day)
    stats = daily_sales_df.agg(
        F.avg(F.when(trailing, F.col("revenue"))).cast("double").alias("trailing_mean"),
        F.coalesce(F.first(F.when(today, F.col("revenue")), ignorenulls=True).cast("double"), F.lit(0.0)).alias(
            "revenue"
        ),
    )
    mean, revenue = F.col("trailing_mean"), F.col("revenue")
    within = (mean / ANOMALY_FACTOR <= revenue) & (revenue <= mean * ANOMALY_FACTOR)
    return stats.select("revenue", "trailing_mean", (mean.isNull() | (mean == 0) | within).alias("is_ok"))


def revenue_anomaly_verdicts(daily_sales_df: DataFrame, days: Sequence[dt.date]) -> DataFrame:
    """:func:`revenue_anomaly_verdict` of each of ``days`` (``daily_sales_df`` holding them and the 7 days before
    the first), one row per day with its ``event_date``, in one query."""
    return functools.reduce(
        DataFrame.unionByName,
        [revenue_anomaly_verdict(daily_sales_df, day).withColumn("event_date", F.lit(day)) for day in days],
    )


def rates_verdict(product_daily_df: DataFrame) -> DataFrame:
    """``products_out_of_range``: products of the day with a funnel rate above 1, and ``is_ok`` when there are none."""
    above_one = (F.col("view_to_cart_rate") > 1) | (F.col("cart_to_purchase_rate") > 1)
    return product_daily_df.agg(F.count_if(above_one).alias("products_out_of_range")).withColumn(
        "is_ok", F.col("products_out_of_range") == 0
    )
