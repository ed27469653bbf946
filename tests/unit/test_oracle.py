"""The oracle's own consistency: its tables reconcile with each other for any simulated run."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from simulation import oracle
from simulation.generator import generate
from simulation.scenario import load_scenario
from simulation.sinks import simulated_items


def truth_of(scenario_name: str, seed: int, events: int) -> oracle.Truth:
    scenario = load_scenario(scenario_name)
    records, _ = generate(scenario, seed, events)
    return oracle.read_truth(simulated_items(records, scenario, live=False))


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31), scenario_name=st.sampled_from(["multi_day", "flash_sale", "dirty_stream"]))
def test_gold_tables_reconcile_with_the_daily_summary(seed: int, scenario_name: str) -> None:
    truth = truth_of(scenario_name, seed, 2500)
    summary = oracle.daily_sales_summary(truth)
    sums: dict[dt.date, dict[str, Decimal | int]] = defaultdict(lambda: defaultdict(int))  # type: ignore[arg-type]
    for (day, _), row in oracle.daily_category_sales(truth).items():
        sums[day]["category_gross"] += row["gross_revenue"]
        sums[day]["category_units"] += row["units"]
    for (day, _), row in oracle.customer_daily(truth).items():
        sums[day]["customer_revenue"] += row["revenue"]
        sums[day]["customer_orders"] += row["orders"]
    for (day, _), row in oracle.product_daily(truth).items():
        sums[day]["product_units"] += row["units"]
        assert row["view_to_cart_rate"] is None or row["view_to_cart_rate"] <= 1
        assert row["cart_to_purchase_rate"] is None or row["cart_to_purchase_rate"] <= 1
    for day, row in summary.items():
        assert row["gross_revenue"] - row["discount_total"] == row["revenue"]
        assert sums[day]["category_gross"] == row["gross_revenue"]
        assert sums[day]["category_units"] == sums[day]["product_units"] == row["units"]
        assert sums[day]["customer_revenue"] == row["revenue"]
        assert sums[day]["customer_orders"] == row["orders"]
        assert row["conversion_rate"] is None or 0 <= row["conversion_rate"] <= 1


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**31))
def test_lifetime_value_is_the_running_sum_of_daily_revenue(seed: int) -> None:
    rows = oracle.customer_daily(truth_of("multi_day", seed, 3000))
    running: dict[str, Decimal] = defaultdict(Decimal)
    for (_, user), row in sorted(rows.items()):
        running[user] += row["revenue"]
        assert row["ltv"] == running[user]
        assert (row["segment"] == "prospect") == (row["orders_to_date"] == 0)


def test_ratios_round_half_up_exactly() -> None:
    assert oracle.ratio(Decimal("10.05"), 2, oracle.CENTS) == Decimal("5.03")
    assert oracle.ratio(1, 8, oracle.CENTS) == Decimal("0.13")
    assert oracle.ratio(2, 3, oracle.RATE) == Decimal("0.666667")
    assert oracle.ratio(5, 0, oracle.RATE) is None


def test_data_quality_counts_every_record_once() -> None:
    truth = truth_of("dirty_stream", 3, 3000)
    counts = oracle.data_quality(truth)
    total = sum(row["rows"] + row["duplicates"] + row["quarantined"] for row in counts.values())
    assert total == truth.records


def test_hostile_envelopes_get_a_reason_instead_of_an_exception() -> None:
    deep = b"[" * 5000 + b"]" * 5000
    assert oracle.rejection_reason("purchase", deep) == "invalid_json"
    assert oracle.rejection_reason("purchase", b'{"event_type": ["purchase"]}') == "unknown_event_type"
    assert oracle.rejection_reason("purchase", b'{"event_type": "purchase", "schema_version": "1"}') == (
        "unsupported_schema_version"
    )
    assert oracle.rejection_reason("purchase", b'{"event_type": "purchase", "schema_version": 1.0}') == (
        "unsupported_schema_version"
    )
