"""``silver.products``: a product's versions from its updates, in event time (``docs/metrics.md``)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from pipeline.contracts.events import EventType
from pipeline.products import product_versions
from pipeline.tables import PRODUCTS
from simulation import oracle
from simulation.generator import generate
from simulation.scenario import load_scenario
from simulation.sinks import simulated_items
from tests.unit.test_gold import silver_frames

UPDATES = "product_id string, event_time timestamp, event_id string, new_price decimal(12,2), stock_level int, " \
    "rating decimal(3,2)"  # fmt: skip


def at(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, 2, hour, minute)


def updates(spark: SparkSession, rows: list[tuple[object, ...]]) -> DataFrame:
    return spark.createDataFrame(rows, UPDATES)


def versions(spark: SparkSession, rows: list[tuple[object, ...]]) -> DataFrame:
    return spark.createDataFrame(rows, PRODUCTS.schema)


P1 = [
    ("p1", at(10), "e1", Decimal("10.00"), None, None),  # price change
    ("p1", at(11), "e3", None, None, Decimal("4.50")),  # rating, the same instant as e2: one version
    ("p1", at(11), "e2", None, 0, None),  # out of stock
    ("p1", at(9), "e4", None, 5, None),  # reached Kafka last, happened first
    ("p1", at(12), "e5", None, None, None),  # a price change without a price: nothing changes but the version
]


def test_each_instant_starts_a_version_that_carries_forward_what_its_updates_do_not_set(spark) -> None:
    rows = [*P1, ("p2", at(8), "e9", Decimal("3.99"), None, None)]
    got = product_versions(updates(spark, rows))
    expected = versions(
        spark,
        [
            ("p1", 1, at(9), at(10), False, None, 5, None, "e4"),
            ("p1", 2, at(10), at(11), False, Decimal("10.00"), 5, None, "e1"),
            ("p1", 3, at(11), at(12), False, Decimal("10.00"), 0, Decimal("4.50"), "e3"),
            ("p1", 4, at(12), None, True, Decimal("10.00"), 0, Decimal("4.50"), "e5"),
            ("p2", 1, at(8), None, True, Decimal("3.99"), None, None, "e9"),
        ],
    )
    assertDataFrameEqual(got, expected)


def test_a_late_price_change_splits_the_version_it_falls_into_and_reprices_the_later_ones(spark) -> None:
    late = ("p1", at(10, 30), "e6", Decimal("12.00"), None, None)
    got = product_versions(updates(spark, [*P1, late]))
    expected = versions(
        spark,
        [
            ("p1", 1, at(9), at(10), False, None, 5, None, "e4"),
            ("p1", 2, at(10), at(10, 30), False, Decimal("10.00"), 5, None, "e1"),
            ("p1", 3, at(10, 30), at(11), False, Decimal("12.00"), 5, None, "e6"),
            ("p1", 4, at(11), at(12), False, Decimal("12.00"), 0, Decimal("4.50"), "e3"),
            ("p1", 5, at(12), None, True, Decimal("12.00"), 0, Decimal("4.50"), "e5"),
        ],
    )
    assertDataFrameEqual(got, expected)


def _stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@pytest.mark.parametrize(("scenario_name", "seed"), [("multi_day", 3), ("late_data_storm", 5), ("dirty_stream", 8)])
def test_spark_versions_equal_the_oracles_for_simulated_days_with_late_and_redelivered_updates(
    spark: SparkSession, scenario_name: str, seed: int
) -> None:
    scenario = load_scenario(scenario_name)
    records, _ = generate(scenario, seed, 3000)
    lines = list(simulated_items(records, scenario, live=False))
    frame = silver_frames(spark, lines)[EventType.PRODUCT_UPDATE]
    got = {
        (r["product_id"], r["version"], _stamp(r["valid_from"]), r["valid_to"] and _stamp(r["valid_to"]),
         r["is_current"], r["price"], r["stock_level"], r["rating"], r["event_id"])
        for r in product_versions(frame).collect()
    }  # fmt: skip
    want = {
        (product_id, v["version"], v["valid_from"], v["valid_to"], v["is_current"], v["price"], v["stock_level"],
         v["rating"], v["event_id"])
        for product_id, history in oracle.products(oracle.read_truth(lines)).items()
        for v in history
    }  # fmt: skip
    assert len(want) > 20, "the scenario updates products"
    assert any(len(history) > 1 for history in oracle.products(oracle.read_truth(lines)).values())
    assert got == want
