"""A real public clickstream through the whole pipeline, checked against DuckDB SQL run straight on the CSV.

The expected numbers come from SQL over the raw file (no code shared with the pipeline or the importer): exact
duplicate rows count once, a row with missing fields is unmappable, money is summed as DECIMAL.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import duckdb
import pytest
from dagster import DagsterInstance

from devstack.pytest_plugin import REES46_MISSING
from devstack.pytest_plugin import REES46_SAMPLE as SAMPLE
from pipeline.catalog import pyiceberg_catalog
from pipeline.orchestration.runs import materialize_gold
from pipeline.tables import GOLD_DAILY_SALES_SUMMARY, GOLD_DATA_QUALITY, GOLD_PRODUCT_DAILY, QUARANTINE_EVENTS
from simulation.rees46 import ImportReport, read_records
from simulation.sinks import make_producer, send
from tests.integration.helpers import catch_up

pytestmark = pytest.mark.extended  # tox -e suites -- extended (see README "Tests")

DAY = dt.date(2019, 10, 1)

ROWS = """
CREATE VIEW ok AS SELECT DISTINCT * FROM raw WHERE user_session IS NOT NULL AND user_id IS NOT NULL
    AND event_type IN ('view', 'cart', 'purchase');
CREATE VIEW priced AS SELECT *, CAST(price AS DECIMAL(18, 2)) AS amount FROM ok;
"""
SUMMARY = """
SELECT count(*) FILTER (event_type = 'purchase') AS orders,
       coalesce(sum(amount) FILTER (event_type = 'purchase'), 0) AS revenue,
       count(DISTINCT user_id) FILTER (event_type = 'purchase') AS unique_customers,
       count(*) FILTER (event_type = 'view') AS page_views,
       count(DISTINCT user_id) FILTER (event_type = 'view') AS visitors,
       count(DISTINCT user_session) AS sessions,
       count(DISTINCT user_session) FILTER (event_type = 'purchase') AS converted_sessions
FROM priced
"""
PRODUCTS = """
WITH s AS (
    SELECT product_id, user_session,
           bool_or(event_type = 'view') AS v, bool_or(event_type = 'cart') AS c, bool_or(event_type = 'purchase') AS p
    FROM priced GROUP BY 1, 2
)
SELECT product_id,
       count(*) FILTER (event_type = 'view') AS views,
       count(*) FILTER (event_type = 'cart') AS carts,
       count(*) FILTER (event_type = 'purchase') AS purchases,
       coalesce(sum(amount) FILTER (event_type = 'purchase'), 0) AS gross_revenue,
       (SELECT count(*) FILTER (v AND c) FROM s WHERE s.product_id = priced.product_id) AS viewed_carted,
       (SELECT count(*) FILTER (v) FROM s WHERE s.product_id = priced.product_id) AS viewed
FROM priced GROUP BY product_id
"""
QUALITY = """
SELECT event_type, count(*) AS delivered, count(DISTINCT (event_time, event_type, product_id, category_id,
       category_code, brand, price, user_id, user_session)) AS distinct_rows
FROM raw WHERE user_session IS NOT NULL GROUP BY 1
"""


@pytest.fixture(scope="module")
def expected() -> dict:
    con = duckdb.connect()
    con.read_csv(str(SAMPLE), header=True, all_varchar=True, null_padding=True).create_view("raw")
    for statement in ROWS.strip().split(";"):
        if statement.strip():
            con.execute(statement)
    summary = dict(zip([d[0] for d in con.execute(SUMMARY).description], con.execute(SUMMARY).fetchone(), strict=True))
    products = {row[0]: row[1:] for row in con.execute(PRODUCTS).fetchall()}
    quality = {row[0]: (row[1], row[2]) for row in con.execute(QUALITY).fetchall()}
    unmappable = con.execute("SELECT count(*) FROM raw WHERE user_session IS NULL").fetchone()[0]
    return {"summary": summary, "products": products, "quality": quality, "unmappable": unmappable}


@pytest.mark.skipif(not SAMPLE.exists(), reason=REES46_MISSING)
def test_rees46_sample_through_kafka_stream_and_dagster_equals_duckdb(spark, live, expected: dict) -> None:
    settings = live.model_copy(update={"partitions_start": "2019-10-01"})
    report = ImportReport()
    producer = make_producer(settings.kafka)
    items = ((r.topic.value, r.key, r.value) for r in read_records(SAMPLE, report))
    sent = send(producer, items, settings.kafka.topic_prefix)
    producer.close()
    assert sent == report.rows == 17435
    assert [line for line, _ in report.unmappable] == [17436]

    catch_up(spark, settings, timeout_s=900)
    materialize_gold(settings, [DAY], DagsterInstance.ephemeral())
    catalog = pyiceberg_catalog(settings)

    def rows(spec) -> list[dict]:
        return [
            r
            for r in catalog.load_table(spec.identifier).scan().to_arrow().to_pylist()
            if r.get("event_date", DAY) == DAY
        ]

    summary = rows(GOLD_DAILY_SALES_SUMMARY)[0]
    want = expected["summary"]
    assert {k: summary[k] for k in want} == want
    assert summary["units"] == want["orders"]
    assert summary["discount_total"] == Decimal("0.00")

    products = {r["product_id"]: r for r in rows(GOLD_PRODUCT_DAILY)}
    assert set(products) == set(expected["products"])
    for product_id, (views, carts, purchases, revenue, viewed_carted, viewed) in expected["products"].items():
        got = products[product_id]
        assert (got["views"], got["carts"], got["purchases"], got["gross_revenue"]) == (
            views,
            carts,
            purchases,
            revenue,
        )
        if viewed:
            assert got["view_to_cart_rate"] == (Decimal(viewed_carted) / viewed).quantize(Decimal("0.000001"))

    quality = {r["table_name"]: r for r in rows(GOLD_DATA_QUALITY)}
    for kind, table in (("view", "page_views"), ("cart", "cart_events"), ("purchase", "purchases")):
        delivered, distinct = expected["quality"].get(kind, (0, 0))
        assert (quality[table]["rows"], quality[table]["duplicates"]) == (distinct, delivered - distinct), table
        assert quality[table]["quarantined"] == 0
    invalid = [
        r
        for r in catalog.load_table(QUARANTINE_EVENTS.identifier).scan().to_arrow().to_pylist()
        if r["failed_rules"] != ["duplicate"]
    ]
    assert len(invalid) == expected["unmappable"] == 1
    assert invalid[0]["failed_rules"] == ["invalid_json"]
