"""The seven gold tables of one day, computed by DuckDB over silver's Parquet files.

DuckDB's side of ``benchmarks/test_gold_vs_duckdb.py``: one SQL text per gold table (named after it), each the
definition of ``docs/metrics.md`` as ``pipeline.batch.gold`` computes it, to the cent and to the same rounding.
Every value is a bound ``$name`` parameter (the day, the file lists, the micro-batches' commits), never SQL text.

Scope, a one-day build from scratch:

- each silver table's files hold the day; rows of other days are left out (by ``event_date``), except by
  ``customer_lifetime`` and by the product versions of ``product_daily``, built from every product update of the
  files as ``pipeline.products.product_versions`` builds them;
- there is no earlier lifetime state: ``customer_lifetime`` adds up every event of the files up to the day (that
  day's events alone when the files hold only that day), as Spark's ``customer_lifetime`` does from an empty
  previous state;
- bronze and quarantine are empty, so in ``data_quality`` ``duplicates``, ``quarantined``,
  ``undated_quarantined`` and ``bronze_records`` are 0, ``quarantine_reasons`` is empty and ``conservation_ok``
  is true; ``rows`` and ``late_rows`` come from silver. The latency percentiles come from the micro-batches'
  commits given as :class:`Commit` rows (what Spark reads from ``ops.stream_batches``); a row whose batch's commit
  is not given has no latency, like a row whose batch was never recorded. Without commits both percentiles are
  null, and a comparison with Spark must skip ``p50_latency_s`` and ``p95_latency_s``.

Exactness: money is ``DECIMAL(18,2)``, rates ``DECIMAL(12,6)``, and ratios round half up from exact integers,
as ``gold.ratio`` and ``gold.money_ratio`` do (the macros of :data:`MACROS_SQL`); the percentiles interpolate as
Spark's ``percentile`` does, in the same floating-point operations.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import duckdb

# The silver tables, by the names ``files`` uses (``pipeline.tables.SILVER_TABLE_NAMES``).
SILVER_TABLES = ("page_views", "cart_events", "purchases", "user_sessions", "product_updates")

MACROS_SQL = """
-- gold.ratio: n / d for whole numbers, d > 0, half away from zero to six decimals; null when d is 0.
CREATE OR REPLACE TEMP MACRO gold_rate(n, d) AS
    CASE WHEN d <> 0 THEN CAST(
        CAST(sign(n) * ((2 * abs(CAST(n AS HUGEINT)) * 1000000 + d) // (2 * CAST(d AS HUGEINT))) AS DECIMAL(38, 0))
        * 0.000001 AS DECIMAL(12, 6)) END;

-- gold.money_ratio: an amount >= 0 divided by a count, half up to the cent; null when the count is 0.
CREATE OR REPLACE TEMP MACRO gold_cents(amount, d) AS
    CASE WHEN d <> 0 THEN CAST(
        CAST((2 * CAST(amount * 100 AS HUGEINT) + d) // (2 * CAST(d AS HUGEINT)) AS DECIMAL(38, 0)) * 0.01
        AS DECIMAL(18, 2)) END;

-- Spark's percentile at a position of a sorted list: the value there, or the linear interpolation of the two
-- values around it, (ceil - position) * lower + (position - floor) * higher.
CREATE OR REPLACE TEMP MACRO gold_interpolate(sorted, position) AS
    CASE
        WHEN floor(position) = ceil(position)
            OR sorted[CAST(floor(position) AS BIGINT) + 1] = sorted[CAST(ceil(position) AS BIGINT) + 1]
        THEN sorted[CAST(floor(position) AS BIGINT) + 1]
        ELSE (ceil(position) - position) * sorted[CAST(floor(position) AS BIGINT) + 1]
            + (position - floor(position)) * sorted[CAST(ceil(position) AS BIGINT) + 1]
    END;

-- Spark's percentile(x, p) of the non-null values, given sorted ascending; null when there is none.
CREATE OR REPLACE TEMP MACRO gold_percentile(sorted, p) AS
    CASE WHEN len(sorted) > 0 THEN gold_interpolate(sorted, (len(sorted) - 1) * CAST(p AS DOUBLE)) END;
"""

DAILY_SALES_SUMMARY_SQL = """
WITH purchases AS (SELECT * FROM read_parquet($purchases) WHERE event_date = $day),
page_views AS (SELECT * FROM read_parquet($page_views) WHERE event_date = $day),
sales AS (
    SELECT count(*) AS orders,
           CAST(coalesce(sum(total_amount), 0) AS DECIMAL(18, 2)) AS revenue,
           CAST(coalesce(sum(subtotal), 0) AS DECIMAL(18, 2)) AS gross_revenue,
           CAST(coalesce(sum(discount_amount), 0) AS DECIMAL(18, 2)) AS discount_total,
           CAST(coalesce(sum(list_sum(list_transform(items, lambda item: item.quantity))), 0) AS BIGINT) AS units,
           count(DISTINCT user_id) AS unique_customers,
           count(DISTINCT session_id) AS converted_sessions
    FROM purchases
),
traffic AS (SELECT count(*) AS page_views, count(DISTINCT user_id) AS visitors FROM page_views),
sessions AS (
    SELECT count(*) AS sessions
    FROM (
        SELECT session_id FROM purchases
        UNION SELECT session_id FROM page_views
        UNION SELECT session_id FROM read_parquet($cart_events) WHERE event_date = $day
        UNION SELECT session_id FROM read_parquet($user_sessions) WHERE event_date = $day
    )
),
top_method AS (
    SELECT payment_method FROM purchases
    GROUP BY payment_method
    ORDER BY count(*) DESC, payment_method ASC NULLS FIRST
    LIMIT 1
)
SELECT CAST($day AS DATE) AS event_date, orders, revenue, gross_revenue, discount_total,
       gold_cents(revenue, orders) AS average_order_value, units, unique_customers, page_views, visitors,
       sessions, converted_sessions, gold_rate(converted_sessions, sessions) AS conversion_rate,
       gold_cents(revenue, visitors) AS revenue_per_visitor,
       (SELECT payment_method FROM top_method) AS top_payment_method
FROM sales, traffic, sessions
"""

DAILY_CATEGORY_SALES_SQL = """
SELECT event_date, item.category AS category, count(DISTINCT event_id) AS orders,
       CAST(sum(item.quantity) AS BIGINT) AS units,
       CAST(coalesce(sum(item.total_price), 0) AS DECIMAL(18, 2)) AS gross_revenue
FROM (SELECT event_date, event_id, unnest(items) AS item FROM read_parquet($purchases) WHERE event_date = $day)
GROUP BY event_date, item.category
"""

CUSTOMER_LIFETIME_SQL = """
WITH stacked AS (
    SELECT user_id, event_date, 0 AS is_order, CAST(NULL AS DECIMAL(18, 2)) AS amount
    FROM (
        SELECT user_id, event_date FROM read_parquet($page_views)
        UNION ALL SELECT user_id, event_date FROM read_parquet($cart_events)
        UNION ALL SELECT user_id, event_date FROM read_parquet($purchases)
        UNION ALL SELECT user_id, event_date FROM read_parquet($user_sessions)
    )
    UNION ALL
    SELECT user_id, event_date, 1, total_amount FROM read_parquet($purchases)
),
deltas AS (
    SELECT user_id, event_date, sum(is_order) AS orders, CAST(coalesce(sum(amount), 0) AS DECIMAL(18, 2)) AS revenue
    FROM stacked
    WHERE event_date <= $day
    GROUP BY user_id, event_date
)
SELECT CAST($day AS DATE) AS event_date, user_id, min(event_date) AS first_seen, max(event_date) AS last_seen,
       CAST(sum(orders) AS BIGINT) AS orders_to_date, CAST(sum(revenue) AS DECIMAL(18, 2)) AS ltv,
       min(event_date) FILTER (WHERE orders > 0) AS first_order,
       max(event_date) FILTER (WHERE orders > 0) AS last_purchase
FROM deltas
GROUP BY user_id
"""

# customer_daily reads the day's lifetime state, as Spark's customer_daily reads customer_lifetime's frame.
CUSTOMER_DAILY_SQL = (
    "WITH lifetime AS ("  # noqa: S608 (two SQL constants joined; every value is a bound parameter)
    + CUSTOMER_LIFETIME_SQL
    + """),
today AS (
    SELECT user_id, count(*) AS orders, CAST(coalesce(sum(total_amount), 0) AS DECIMAL(18, 2)) AS revenue
    FROM read_parquet($purchases)
    WHERE event_date = $day
    GROUP BY user_id
),
active AS (
    SELECT lifetime.event_date, lifetime.user_id,
           coalesce(today.orders, 0) AS orders,
           coalesce(today.revenue, CAST(0 AS DECIMAL(18, 2))) AS revenue,
           coalesce(lifetime.orders_to_date, 0) AS orders_to_date,
           coalesce(lifetime.ltv, CAST(0 AS DECIMAL(18, 2))) AS ltv,
           lifetime.first_seen, lifetime.first_order, lifetime.last_purchase,
           CAST(lifetime.event_date - lifetime.last_purchase AS INTEGER) AS recency_days
    FROM lifetime LEFT JOIN today ON today.user_id = lifetime.user_id
    WHERE lifetime.last_seen = lifetime.event_date
),
scored AS (
    SELECT *,
           CAST(CASE WHEN last_purchase IS NULL THEN 1
                     WHEN recency_days <= 0 THEN 5 WHEN recency_days <= 7 THEN 4
                     WHEN recency_days <= 30 THEN 3 WHEN recency_days <= 90 THEN 2 ELSE 1 END AS INTEGER)
               AS recency_score,
           CAST(CASE WHEN orders_to_date <= 1 THEN 1 WHEN orders_to_date <= 2 THEN 2
                     WHEN orders_to_date <= 4 THEN 3 WHEN orders_to_date <= 9 THEN 4 ELSE 5 END AS INTEGER)
               AS frequency_score,
           CAST(CASE WHEN ltv < 50 THEN 1 WHEN ltv < 200 THEN 2
                     WHEN ltv < 500 THEN 3 WHEN ltv < 1000 THEN 4 ELSE 5 END AS INTEGER) AS monetary_score
    FROM active
)
SELECT event_date, user_id, orders, revenue, orders_to_date, ltv, first_seen, last_purchase, recency_days,
       recency_score, frequency_score, monetary_score,
       CASE WHEN orders_to_date = 0 THEN 'prospect'
            WHEN recency_score >= 4 AND frequency_score >= 4 THEN 'champion'
            WHEN first_order = event_date THEN 'new_customer'
            WHEN frequency_score >= 3 THEN 'loyal'
            WHEN recency_score <= 2 THEN 'at_risk'
            ELSE 'regular' END AS segment
FROM scored
"""
)

PRODUCT_DAILY_SQL = """
WITH updates AS (SELECT * FROM read_parquet($product_updates)),
running AS (  -- silver.products: each update's state, the newest value of each field up to it
    SELECT product_id, event_time, event_id,
           last_value(new_price IGNORE NULLS) OVER so_far AS price,
           last_value(stock_level IGNORE NULLS) OVER so_far AS stock_level
    FROM updates
    WINDOW so_far AS (PARTITION BY product_id ORDER BY event_time, event_id
                      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
versions AS (  -- the state after the last update of each instant, in force until the product's next instant
    SELECT product_id, epoch_us(event_time) AS valid_from_us,
           epoch_us(lead(event_time) OVER (PARTITION BY product_id ORDER BY event_time)) AS valid_to_us,
           price, stock_level
    FROM (SELECT *, row_number() OVER (PARTITION BY product_id, event_time ORDER BY event_id DESC) AS nth
          FROM running)
    WHERE nth = 1
),
lines AS (
    SELECT p.event_date, p.event_id, p.session_id, p.discount_percent, p.item, v.price AS list_price
    FROM (SELECT event_date, event_id, session_id, event_time, discount_percent, unnest(items) AS item
          FROM read_parquet($purchases) WHERE event_date = $day) AS p
    LEFT JOIN versions AS v
        ON v.product_id = p.item.product_id AND v.valid_from_us <= epoch_us(p.event_time)
        AND (v.valid_to_us IS NULL OR epoch_us(p.event_time) < v.valid_to_us)
),
orders AS (  -- one row per order and product: an order with the product on two lines is one purchase
    SELECT event_date, item.product_id AS product_id, session_id, event_id,
           sum(item.quantity) AS units, sum(item.total_price) AS gross_revenue,
           sum(CASE WHEN list_price > 0 THEN CAST(item.quantity AS HUGEINT) * CAST(list_price * 100 AS HUGEINT)
               * 10000 END) AS list_value,
           sum(CASE WHEN list_price > 0 THEN CAST(item.quantity AS HUGEINT) * CAST(item.unit_price * 100 AS HUGEINT)
               * (10000 - CAST(discount_percent * 100 AS HUGEINT)) END) AS paid_value
    FROM lines
    GROUP BY event_date, item.product_id, session_id, event_id
),
views AS (
    SELECT pv.event_date, pv.product_id, pv.session_id, v.stock_level
    FROM (SELECT * FROM read_parquet($page_views) WHERE event_date = $day AND product_id IS NOT NULL) AS pv
    LEFT JOIN versions AS v
        ON v.product_id = pv.product_id AND v.valid_from_us <= epoch_us(pv.event_time)
        AND (v.valid_to_us IS NULL OR epoch_us(pv.event_time) < v.valid_to_us)
),
stacked AS (
    SELECT event_date, product_id, session_id, 1 AS views, NULL AS carts, NULL AS cart_units, NULL AS purchases,
           NULL AS units, CAST(NULL AS DECIMAL(18, 2)) AS gross_revenue,
           CASE WHEN stock_level = 0 THEN 1 ELSE 0 END AS views_out_of_stock, NULL AS price_changes,
           CAST(NULL AS HUGEINT) AS list_value, CAST(NULL AS HUGEINT) AS paid_value
    FROM views
    UNION ALL
    SELECT event_date, product_id, session_id, NULL, 1, quantity, NULL, NULL, NULL, NULL, NULL, NULL, NULL
    FROM read_parquet($cart_events) WHERE event_date = $day
    UNION ALL
    SELECT event_date, product_id, session_id, NULL, NULL, NULL, 1, units, gross_revenue, NULL, NULL,
           list_value, paid_value
    FROM orders
    UNION ALL
    SELECT event_date, product_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           CASE WHEN update_type = 'price_change' THEN 1 ELSE 0 END, NULL, NULL
    FROM updates WHERE event_date = $day
),
per_session AS (
    SELECT event_date, product_id, session_id, sum(views) AS views, sum(carts) AS carts,
           sum(cart_units) AS cart_units, sum(purchases) AS purchases, sum(units) AS units,
           sum(gross_revenue) AS gross_revenue, sum(views_out_of_stock) AS views_out_of_stock,
           sum(price_changes) AS price_changes, sum(list_value) AS list_value, sum(paid_value) AS paid_value
    FROM stacked
    GROUP BY event_date, product_id, session_id
),
per_product AS (
    SELECT event_date, product_id,
           CAST(coalesce(sum(views), 0) AS BIGINT) AS views,
           CAST(coalesce(sum(carts), 0) AS BIGINT) AS carts,
           CAST(coalesce(sum(cart_units), 0) AS BIGINT) AS cart_units,
           CAST(coalesce(sum(purchases), 0) AS BIGINT) AS purchases,
           CAST(coalesce(sum(units), 0) AS BIGINT) AS units,
           CAST(coalesce(sum(gross_revenue), 0) AS DECIMAL(18, 2)) AS gross_revenue,
           CAST(coalesce(sum(views_out_of_stock), 0) AS BIGINT) AS views_out_of_stock,
           CAST(coalesce(sum(price_changes), 0) AS BIGINT) AS price_changes,
           sum(list_value) AS list_value,
           sum(paid_value) AS paid_value,
           count_if(coalesce(views, 0) > 0) AS viewed,
           -- rows without a session never count as the same session's view and cart
           count_if(coalesce(views, 0) > 0 AND coalesce(carts, 0) > 0 AND session_id IS NOT NULL) AS viewed_carted,
           count_if(coalesce(carts, 0) > 0) AS carted,
           count_if(coalesce(carts, 0) > 0 AND coalesce(purchases, 0) > 0 AND session_id IS NOT NULL)
               AS carted_bought,
           -- the day's last millisecond, in microseconds since the epoch
           (event_date - DATE '1970-01-01') * 86400000000 + 86400000000 - 1000 AS close_us
    FROM per_session
    GROUP BY event_date, product_id
)
SELECT p.event_date, p.product_id, views, carts, cart_units, purchases, units, gross_revenue,
       gold_rate(viewed_carted, viewed) AS view_to_cart_rate,
       gold_rate(carted_bought, carted) AS cart_to_purchase_rate,
       CAST(v.price AS DECIMAL(18, 2)) AS list_price, price_changes, views_out_of_stock,
       gold_rate(list_value - paid_value, list_value) AS discount_vs_list
FROM per_product AS p
LEFT JOIN versions AS v
    ON v.product_id = p.product_id AND v.valid_from_us <= p.close_us
    AND (v.valid_to_us IS NULL OR p.close_us < v.valid_to_us)
"""

PRODUCT_PAIRS_SQL = """
WITH purchases AS (SELECT event_date, event_id, items FROM read_parquet($purchases) WHERE event_date = $day),
baskets AS (  -- each order's distinct products
    SELECT DISTINCT event_date, event_id, item.product_id AS product_id
    FROM (SELECT event_date, event_id, unnest(items) AS item FROM purchases)
),
orders AS (SELECT event_date, count(*) AS orders FROM purchases GROUP BY event_date),
containing AS (SELECT event_date, product_id, count(*) AS n FROM baskets GROUP BY event_date, product_id),
pairs AS (
    SELECT a.event_date, a.product_id AS antecedent, b.product_id AS consequent, count(*) AS pair_orders
    FROM baskets AS a JOIN baskets AS b ON a.event_id = b.event_id AND a.product_id <> b.product_id
    GROUP BY a.event_date, a.product_id, b.product_id
)
SELECT pairs.event_date, antecedent, consequent, pair_orders,
       gold_rate(pair_orders, orders.orders) AS support,
       gold_rate(pair_orders, a.n) AS confidence,
       gold_rate(pair_orders * orders.orders, a.n * b.n) AS lift
FROM pairs
JOIN containing AS a ON a.event_date = pairs.event_date AND a.product_id = pairs.antecedent
JOIN containing AS b ON b.event_date = pairs.event_date AND b.product_id = pairs.consequent
JOIN orders ON orders.event_date = pairs.event_date
"""

DATA_QUALITY_SQL = """
WITH silver AS (
    SELECT 'page_views' AS table_name, event_date, is_late, batch_id, ingest_time, kafka_timestamp
    FROM read_parquet($page_views)
    UNION ALL SELECT 'cart_events', event_date, is_late, batch_id, ingest_time, kafka_timestamp
    FROM read_parquet($cart_events)
    UNION ALL SELECT 'purchases', event_date, is_late, batch_id, ingest_time, kafka_timestamp
    FROM read_parquet($purchases)
    UNION ALL SELECT 'user_sessions', event_date, is_late, batch_id, ingest_time, kafka_timestamp
    FROM read_parquet($user_sessions)
    UNION ALL SELECT 'product_updates', event_date, is_late, batch_id, ingest_time, kafka_timestamp
    FROM read_parquet($product_updates)
),
commits AS (
    SELECT unnest(
        CAST($commits AS STRUCT(batch_id BIGINT, ingest_us BIGINT, committed_us BIGINT)[]),
        recursive := true
    )
),
latencies AS (  -- pipeline.observability.with_latency: the commit of the micro-batch that added the row
    SELECT silver.table_name, silver.is_late,
           CAST(commits.committed_us - epoch_us(silver.kafka_timestamp) AS DOUBLE) / CAST(1000000 AS DOUBLE)
               AS latency_s
    FROM silver
    LEFT JOIN commits
        ON commits.batch_id = silver.batch_id
        AND commits.ingest_us = epoch_us(silver.ingest_time)
    WHERE silver.event_date = $day
),
per_table AS (
    SELECT table_name, count(*) AS rows, count_if(is_late) AS late_rows,
           list(latency_s ORDER BY latency_s) FILTER (WHERE latency_s IS NOT NULL) AS sorted_latencies
    FROM latencies
    GROUP BY table_name
)
SELECT CAST($day AS DATE) AS event_date, grid.table_name,
       coalesce(per_table.rows, 0) AS rows,
       coalesce(per_table.late_rows, 0) AS late_rows,
       CAST(0 AS BIGINT) AS duplicates,
       CAST(0 AS BIGINT) AS quarantined,
       CAST(MAP {} AS MAP(VARCHAR, BIGINT)) AS quarantine_reasons,
       CAST(0 AS BIGINT) AS undated_quarantined,
       gold_percentile(per_table.sorted_latencies, 0.5) AS p50_latency_s,
       gold_percentile(per_table.sorted_latencies, 0.95) AS p95_latency_s,
       CAST(0 AS BIGINT) AS bronze_records,
       true AS conservation_ok
FROM (VALUES ('page_views'), ('cart_events'), ('purchases'), ('user_sessions'), ('product_updates'))
    AS grid(table_name)
LEFT JOIN per_table ON per_table.table_name = grid.table_name
"""

# Gold table -> its SQL, in the order the tables are built.
GOLD_SQL: dict[str, str] = {
    "daily_sales_summary": DAILY_SALES_SUMMARY_SQL,
    "daily_category_sales": DAILY_CATEGORY_SALES_SQL,
    "customer_lifetime": CUSTOMER_LIFETIME_SQL,
    "customer_daily": CUSTOMER_DAILY_SQL,
    "product_daily": PRODUCT_DAILY_SQL,
    "product_pairs": PRODUCT_PAIRS_SQL,
    "data_quality": DATA_QUALITY_SQL,
}

_PARAMETER = re.compile(r"\$([a-z_]+)")


class Commit(NamedTuple):
    """A micro-batch's commit, as ``ops.stream_batches`` records it: its id, its ingest time (``started_at``, on every
    row it wrote) and when its commit ended (naive datetimes are UTC)."""

    batch_id: int
    ingest_time: dt.datetime
    committed_at: dt.datetime


class GoldTable(NamedTuple):
    """A gold table's columns and rows."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


def epoch_us(moment: dt.datetime) -> int:
    """Microseconds since the Unix epoch (a naive datetime is UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return (moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


def gold_parameters(
    files: Mapping[str, Sequence[str]], day: dt.date, commits: Iterable[Commit] | None = None
) -> dict[str, Any]:
    """Every parameter of :data:`GOLD_SQL`: the day, each silver table's file list, the micro-batches' commits."""
    missing = [t for t in SILVER_TABLES if not files.get(t)]
    if missing:  # read_parquet cannot read an empty list of files
        raise ValueError(f"silver tables without a data file: {', '.join(missing)}")
    commit_rows = [
        {"batch_id": c.batch_id, "ingest_us": epoch_us(c.ingest_time), "committed_us": epoch_us(c.committed_at)}
        for c in commits or ()
    ]
    return {"day": day, "commits": commit_rows, **{t: list(files[t]) for t in SILVER_TABLES}}


def parameters_of(sql: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters ``sql`` names (DuckDB refuses any other)."""
    return {name: parameters[name] for name in sorted(set(_PARAMETER.findall(sql)))}


def duckdb_gold(
    con: duckdb.DuckDBPyConnection,
    files: Mapping[str, Sequence[str]],
    day: dt.date,
    commits: Iterable[Commit] | None = None,
) -> dict[str, GoldTable]:
    """The seven gold tables of ``day``, by name (:data:`GOLD_SQL`), from each silver table's Parquet files.

    Args:
        con: a DuckDB connection; the macros of :data:`MACROS_SQL` are created on it (temporary).
        files: silver table name (:data:`SILVER_TABLES`) -> its data files; none may be empty.
        day: the day built.
        commits: the micro-batches' commits (``ops.stream_batches``), for the latency percentiles of
            ``data_quality``; None: the percentiles are null.
    """
    con.execute(MACROS_SQL)
    parameters = gold_parameters(files, day, commits)
    tables = {}
    for name, sql in GOLD_SQL.items():
        cursor = con.execute(sql, parameters_of(sql, parameters))
        columns = tuple(column[0] for column in cursor.description or ())
        tables[name] = GoldTable(columns, cursor.fetchall())
    return tables
