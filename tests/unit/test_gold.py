"""Gold metrics on tiny silver frames, and the property that Spark and the oracle agree for any shop day."""

from __future__ import annotations

import datetime as dt
import functools
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from pipeline.batch import gold
from pipeline.contracts.events import EventType
from pipeline.products import product_versions
from pipeline.streaming.bronze import to_bronze
from pipeline.streaming.silver import EventValidator, filter_valid, to_silver
from pipeline.tables import GOLD_CUSTOMER_LIFETIME
from simulation import oracle
from simulation.generator import generate
from simulation.scenario import load_scenario
from simulation.sinks import simulated_items

DAY = dt.date(2026, 11, 2)
KAFKA_SCHEMA = (
    "key binary, value binary, topic string, partition int, offset long, timestamp timestamp, timestampType int"
)


def silver_frames(spark: SparkSession, lines: list[tuple[str, str, bytes]]) -> dict[EventType, DataFrame]:
    """Silver rows exactly as the stream makes them (validator + projection), for accepted, unique events."""
    now = dt.datetime(2026, 11, 25)
    kafka = spark.createDataFrame(
        [(k.encode(), v, f"shop.{t}", 0, i, now, 0) for i, (t, k, v) in enumerate(lines)], KAFKA_SCHEMA
    )
    valid = (
        filter_valid(EventValidator("shop", 65536).validate(to_bronze(kafka)))
        .withColumns({"is_late": F.lit(False), "batch_id": F.lit(0), "ingest_time": F.lit(now)})
        .dropDuplicates(["event_id"])
    )
    return {e: to_silver(valid, e).cache() for e in EventType}


def day_of(frame: DataFrame, day: dt.date) -> DataFrame:
    return frame.filter(F.col("event_date") == F.lit(day))


def test_ratio_rounds_half_up_exactly_and_is_null_for_zero(spark) -> None:
    df = spark.createDataFrame([(1, 3), (2, 3), (1, 8), (5, 0), (0, 7)], "n long, d long")
    got = df.select(gold.ratio(F.col("n"), F.col("d")).alias("r"), gold.ratio(F.col("n"), F.col("d"), 2).alias("c"))
    expected = [
        (Decimal("0.333333"), Decimal("0.33")),
        (Decimal("0.666667"), Decimal("0.67")),
        (Decimal("0.125000"), Decimal("0.13")),
        (None, None),
        (Decimal("0.000000"), Decimal("0.00")),
    ]
    assert [(r.r, r.c) for r in got.collect()] == expected


def test_money_ratio_rounds_to_the_cent(spark) -> None:
    df = spark.createDataFrame([(Decimal("10.05"), 2), (Decimal("0.00"), 0)], T.StructType(
        [T.StructField("a", T.DecimalType(18, 2)), T.StructField("n", T.LongType())]
    ))  # fmt: skip
    assert [r[0] for r in df.select(gold.money_ratio(F.col("a"), F.col("n"))).collect()] == [Decimal("5.03"), None]


@pytest.fixture(scope="module")
def tiny_day(spark):
    scenario = load_scenario("flash_sale")
    records, _ = generate(scenario, 11, 1500)
    lines = list(simulated_items(records, scenario, live=False))
    return silver_frames(spark, lines), oracle.read_truth(lines), scenario.dates[0]


def test_sales_summary_matches_its_definition(tiny_day) -> None:
    frames, truth, day = tiny_day
    row = gold.daily_sales_summary(
        *(
            day_of(frames[e], day)
            for e in (EventType.PURCHASE, EventType.PAGE_VIEW, EventType.ADD_TO_CART, EventType.USER_SESSION)
        ),
        day,
    ).first()
    expected = oracle.daily_sales_summary(truth)[day]
    assert {k: row[k] for k in expected} == expected


def test_a_day_without_events_gets_one_row_of_zeros(spark, tiny_day) -> None:
    frames, _, _ = tiny_day
    empty = {e: f.limit(0) for e, f in frames.items()}
    row = gold.daily_sales_summary(
        empty[EventType.PURCHASE],
        empty[EventType.PAGE_VIEW],
        empty[EventType.ADD_TO_CART],
        empty[EventType.USER_SESSION],
        DAY,
    ).collect()
    assert len(row) == 1
    assert (row[0].orders, row[0].revenue, row[0].sessions, row[0].conversion_rate, row[0].top_payment_method) == (
        0, Decimal("0.00"), 0, None, None
    )  # fmt: skip


def test_conversion_never_exceeds_one_even_when_a_session_buys_twice(spark) -> None:
    purchases = spark.createDataFrame(
        [("s1", "u1", "paypal"), ("s1", "u1", "paypal")], "session_id string, user_id string, payment_method string"
    ).withColumns(
        {
            "event_date": F.lit(DAY),
            "total_amount": F.lit(Decimal("1.00")),
            "subtotal": F.lit(Decimal("1.00")),
            "discount_amount": F.lit(Decimal("0.00")),
            "items": F.array().cast("array<struct<quantity:int>>"),
        }
    )
    views = spark.createDataFrame([(DAY, "s1", "u1")], "event_date date, session_id string, user_id string")
    row = gold.daily_sales_summary(purchases, views, views.limit(0), views.limit(0), DAY).first()
    assert (row.sessions, row.converted_sessions, row.conversion_rate) == (1, 1, Decimal("1.000000"))


def test_restatements_list_changed_added_and_removed_values(spark) -> None:
    schema = "event_date date, user_id string, orders long"
    old = spark.createDataFrame([(DAY, "u1", 1), (DAY, "u2", 2), (DAY, "u3", None)], schema)
    new = spark.createDataFrame([(DAY, "u1", 1), (DAY, "u2", 3), (DAY, "u4", 1), (DAY, "u3", None)], schema)
    changes = gold.restatements(old, new, ("event_date", "user_id"), "gold.customer_daily")
    expected = spark.createDataFrame(
        [
            (DAY, "gold.customer_daily", "user_id=u2", "orders", "2", "3"),
            (DAY, "gold.customer_daily", "user_id=u4", "orders", None, "1"),
        ],
        "event_date date, table_name string, row_key string, metric string, old_value string, new_value string",
    )
    assertDataFrameEqual(changes, expected)


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**31),
    events=st.integers(150, 500),
    scenario_name=st.sampled_from(["normal_day", "flash_sale", "multi_day"]),
)
def test_spark_gold_equals_the_oracle_for_any_simulated_day(spark, seed: int, events: int, scenario_name: str) -> None:
    scenario = load_scenario(scenario_name)
    records, _ = generate(scenario, seed, events)
    lines = list(simulated_items(records, scenario, live=False))
    frames, truth = silver_frames(spark, lines), oracle.read_truth(lines)
    day = scenario.dates[0]
    p, v, c, s = (
        day_of(frames[e], day)
        for e in (EventType.PURCHASE, EventType.PAGE_VIEW, EventType.ADD_TO_CART, EventType.USER_SESSION)
    )

    summary = gold.daily_sales_summary(p, v, c, s, day).first().asDict()
    want = oracle.daily_sales_summary(truth).get(day)
    if want:
        assert {k: summary[k] for k in want} == want
    categories = {r.category: r.asDict() for r in gold.daily_category_sales(p, day).collect()}
    assert {k[1]: v for k, v in oracle.daily_category_sales(truth).items() if k[0] == day} == {
        k: {c: r[c] for c in ("orders", "units", "gross_revenue")} for k, r in categories.items()
    }
    updates = frames[EventType.PRODUCT_UPDATE]
    versions = product_versions(updates)
    products = {
        r.product_id: r.asDict() for r in gold.product_daily(v, c, p, day_of(updates, day), versions, day).collect()
    }
    expected_products = {k[1]: v for k, v in oracle.product_daily(truth).items() if k[0] == day}
    assert {
        k: {c: r[c] for c in next(iter(expected_products.values()))} for k, r in products.items()
    } == expected_products
    activity = F.col("event_date") <= F.lit(day)
    lifetime = gold.customer_lifetime(
        spark.createDataFrame([], GOLD_CUSTOMER_LIFETIME.schema),
        frames[EventType.PURCHASE].filter(activity),
        frames[EventType.PAGE_VIEW]
        .select("user_id", "event_date")
        .unionByName(frames[EventType.USER_SESSION].select("user_id", "event_date"))
        .unionByName(frames[EventType.ADD_TO_CART].select("user_id", "event_date"))
        .unionByName(frames[EventType.PURCHASE].select("user_id", "event_date"))
        .filter(activity),
        day,
    )
    users = gold.customer_daily(lifetime, p, day)
    got_users = {r.user_id: r.asDict() for r in users.collect()}
    expected_users = {k[1]: v for k, v in oracle.customer_daily(truth).items() if k[0] == day}
    assert {
        k: {c: r[c] for c in v} for k, r in got_users.items() for v in [next(iter(expected_users.values()))]
    } == expected_users
    assert sum(r["revenue"] for r in got_users.values()) == summary["revenue"]


def _conservation_by_table(spark, cases: dict[str, tuple[dt.datetime | None, int]], as_of) -> dict[str, bool]:
    """``conservation_ok`` per table, each table holding one bronze record: (ingest time, copies landed)."""
    coordinates = "kafka_topic string, kafka_partition int, kafka_offset long"
    bronze = spark.createDataFrame(
        [(table, 0, 7, dt.datetime(2026, 11, 2, 9), ingest_time) for table, (ingest_time, _) in cases.items()],
        f"{coordinates}, kafka_timestamp timestamp, ingest_time timestamp",
    )
    landed = spark.createDataFrame(
        [(table, 0, 7) for table, (_, copies) in cases.items() for _ in range(copies)], coordinates
    )
    silver = spark.createDataFrame([], "table_name string, event_date date, is_late boolean, latency_s double")
    quarantine = spark.createDataFrame(
        [], "kafka_topic string, kafka_timestamp timestamp, event_date date, failed_rules array<string>"
    )
    topics = {table: table for table in cases}  # one topic per table, named alike
    rows = gold.data_quality(silver, quarantine, bronze, landed, topics, DAY, as_of).collect()
    assert all(r["bronze_records"] == 1 for r in rows)
    return {r["table_name"]: r["conservation_ok"] for r in rows}


def test_conservation_tolerates_records_in_flight_but_never_gaps_or_doubles(spark) -> None:
    as_of = dt.datetime(2026, 11, 2, 12, 0)  # the build's time: records ingested in the 5 minutes before may fly
    settled_by = as_of - gold.IN_FLIGHT
    before, after = settled_by - dt.timedelta(hours=1), settled_by + dt.timedelta(minutes=1)
    cases = {
        "landed_once": (before, 1),
        "lost_long_ago": (before, 0),
        "still_in_flight": (after, 0),
        "doubled_in_flight": (after, 2),
        "lost_unknown_ingest_time": (None, 0),
    }
    assert _conservation_by_table(spark, cases, as_of) == {
        "landed_once": True,
        "lost_long_ago": False,
        "still_in_flight": True,
        "doubled_in_flight": False,
        "lost_unknown_ingest_time": False,
    }
    # Without a build time (nothing allowed in flight), a record not landed yet is a gap.
    assert _conservation_by_table(spark, {"still_in_flight": (after, 0)}, None) == {"still_in_flight": False}


def test_restatements_of_a_day_that_was_empty_list_every_new_value(spark) -> None:
    schema = "event_date date, category string, units long"
    old = spark.createDataFrame([], schema)
    new = spark.createDataFrame([(DAY, "books", 2), (DAY, None, None)], schema)
    changes = gold.restatements(old, new, ("event_date", "category"), "gold.daily_category_sales")
    expected = spark.createDataFrame(
        [(DAY, "gold.daily_category_sales", "category=books", "units", None, "2")],
        "event_date date, table_name string, row_key string, metric string, old_value string, new_value string",
    )
    assertDataFrameEqual(changes, expected)


@pytest.fixture(scope="module")
def three_days(spark):
    """Silver frames and the oracle of a multi-day shop (its first three days are used)."""
    scenario = load_scenario("multi_day")
    records, _ = generate(scenario, 23, 2500)
    lines = list(simulated_items(records, scenario, live=False))
    return silver_frames(spark, lines), oracle.read_truth(lines), scenario.dates[:3]


def _activity(frames: dict[EventType, DataFrame]) -> DataFrame:
    return functools.reduce(
        DataFrame.unionByName,
        [frames[e].select("user_id", "event_date") for e in EventType if e is not EventType.PRODUCT_UPDATE],
    )


def _lifetime(spark, frames, previous: DataFrame | None, after: dt.date | None, days: list[dt.date]) -> DataFrame:
    """The lifetime state of ``days`` from ``previous`` (the state of ``after``) and the events after it."""
    window = F.col("event_date") <= F.lit(days[-1])
    if after is not None:
        window &= F.col("event_date") > F.lit(after)
    empty = spark.createDataFrame([], GOLD_CUSTOMER_LIFETIME.schema)
    return gold.customer_lifetime(
        previous if previous is not None else empty,
        frames[EventType.PURCHASE].filter(window),
        _activity(frames).filter(window),
        days,
    )


def test_lifetime_state_carried_day_to_day_equals_the_state_from_all_history(spark, three_days) -> None:
    frames, _, (d1, d2, d3) = three_days
    from_history = _lifetime(spark, frames, None, None, [d3])
    # Each state is checkpointed, as it would be read back from gold.customer_lifetime.
    state1 = _lifetime(spark, frames, None, None, [d1]).localCheckpoint()
    state2 = _lifetime(spark, frames, state1, d1, [d2]).localCheckpoint()
    carried = _lifetime(spark, frames, state2, d2, [d3])
    across_a_gap = _lifetime(spark, frames, state1, d1, [d3])  # day 2 never built: its events are read instead
    assert from_history.count() > 0
    assertDataFrameEqual(carried, from_history)
    assertDataFrameEqual(across_a_gap, from_history)


def test_a_range_built_in_one_pass_equals_the_oracle_on_every_day(spark, three_days) -> None:
    frames, truth, days = three_days
    in_range = F.col("event_date").between(F.lit(days[0]), F.lit(days[-1]))
    p, v, c, s = (
        frames[e].filter(in_range)
        for e in (EventType.PURCHASE, EventType.PAGE_VIEW, EventType.ADD_TO_CART, EventType.USER_SESSION)
    )
    wanted = set(days)

    def expected(table: dict) -> dict:
        return {k: want for k, want in table.items() if k[0] in wanted}

    summary = {r.event_date: r.asDict() for r in gold.daily_sales_summary(p, v, c, s, days).collect()}
    assert set(summary) == wanted
    want_summary = {d: want for d, want in oracle.daily_sales_summary(truth).items() if d in wanted}
    assert {d: {k: summary[d][k] for k in want} for d, want in want_summary.items()} == want_summary
    categories = {(r.event_date, r.category): r.asDict() for r in gold.daily_category_sales(p, days).collect()}
    assert {k: {c: r[c] for c in ("orders", "units", "gross_revenue")} for k, r in categories.items()} == expected(
        oracle.daily_category_sales(truth)
    )
    updates = frames[EventType.PRODUCT_UPDATE]
    daily = gold.product_daily(v, c, p, updates.filter(F.col("event_date").isin(days)), product_versions(updates), days)
    products = {(r.event_date, r.product_id): r.asDict() for r in daily.collect()}
    want_products = expected(oracle.product_daily(truth))
    assert {k: {m: r[m] for m in next(iter(want_products.values()))} for k, r in products.items()} == want_products
    pairs = {(r.event_date, r.antecedent, r.consequent): r.asDict() for r in gold.product_pairs(p, days).collect()}
    want_pairs = expected(oracle.product_pairs(truth))
    assert {k: {m: r[m] for m in next(iter(want_pairs.values()))} for k, r in pairs.items()} == want_pairs
    lifetime = _lifetime(spark, frames, None, None, days)
    users = {(r.event_date, r.user_id): r.asDict() for r in gold.customer_daily(lifetime, p, days).collect()}
    want_users = expected(oracle.customer_daily(truth))
    assert {k: {m: r[m] for m in next(iter(want_users.values()))} for k, r in users.items()} == want_users
