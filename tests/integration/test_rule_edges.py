"""The rules' edges through the real broker, stream and Dagster: conflicting redeliveries keep the first delivery
within a micro-batch, across micro-batches and across a restart; the edge scenario's gold equals the oracle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dagster import DagsterInstance

from pipeline.catalog import pyiceberg_catalog
from pipeline.contracts.events import EventType
from pipeline.orchestration.runs import materialize_gold
from pipeline.streaming.job import start_stream
from pipeline.streaming.plan import BatchReport
from pipeline.tables import GOLD_CUSTOMER_DAILY, GOLD_DAILY_SALES_SUMMARY, QUARANTINE_EVENTS, SILVER
from simulation.logfile import to_log_line
from simulation.scenario import load_scenario
from simulation.sinks import write_lines
from tests.integration.helpers import (
    assert_gold_matches,
    assert_lake_matches,
    assert_products_match,
    catch_up,
    gold_rows,
    send_log,
    truth_of,
    write_day,
)


def _purchase(method: str) -> bytes:
    """One delivery of order o-1 (always event id ``e-o1``), paid with ``method``: the payloads differ only there."""
    body = {
        "event_id": "e-o1",
        "event_type": "purchase",
        "schema_version": 1,
        "timestamp": "2026-11-02T23:59:59.999Z",
        "user_id": "u1",
        "session_id": "s1",
        "order_id": "o-1",
        "items": [
            {"product_id": "p1", "quantity": 1, "unit_price": "10.00", "total_price": "10.00", "category": "books"}
        ],
        "subtotal": "10.00",
        "discount_percent": "0.00",
        "discount_amount": "0.00",
        "total_amount": "10.00",
        "payment_method": method,
        "shipping_method": "standard",
    }
    return json.dumps(body).encode()


def _log(path: Path, methods: list[str]) -> Path:
    write_lines(path, (to_log_line("purchase", "u1", _purchase(m)) for m in methods))
    return path


def test_conflicting_redeliveries_keep_the_first_within_a_batch_across_batches_and_after_a_restart(
    spark, live, tmp_path: Path
) -> None:
    # Two records per micro-batch: batch 1 holds the first delivery (paypal) and a conflicting one (apple_pay),
    # batch 2 another (credit_card); then the query stops and a new one (a restart) meets a fourth (gift_card).
    settings = live.model_copy(update={"stream": live.stream.model_copy(update={"max_offsets_per_trigger": 2})})
    before = _log(tmp_path / "before.jsonl", ["paypal", "apple_pay", "credit_card"])
    after = _log(tmp_path / "after.jsonl", ["gift_card"])

    send_log(settings, before)
    reports: list[BatchReport] = []
    stream = start_stream(spark, settings, available_now=True, on_batch=[reports.append])
    stream.await_termination(timeout_s=600)
    assert stream.exception() is None
    assert [(r.records, r.duplicates) for r in reports if r.records] == [(2, 1), (1, 1)]

    send_log(settings, after)
    catch_up(spark, settings, timeout_s=600)  # a new query on the same checkpoint: its dedup state is rebuilt

    catalog = pyiceberg_catalog(settings)
    purchases = catalog.load_table(SILVER[EventType.PURCHASE].identifier).scan().to_arrow().to_pylist()
    assert [(r["event_id"], r["payment_method"], r["kafka_offset"]) for r in purchases] == [("e-o1", "paypal", 0)]
    quarantined = catalog.load_table(QUARANTINE_EVENTS.identifier).scan().to_arrow().to_pylist()
    assert sorted((r["kafka_offset"], r["failed_rules"]) for r in quarantined) == [
        (1, ["duplicate"]),
        (2, ["duplicate"]),
        (3, ["duplicate"]),
    ]
    assert_lake_matches(spark, settings, [before, after])


@pytest.mark.extended
def test_the_edge_scenario_reaches_gold_equal_to_the_oracle_through_dagster(spark, live, tmp_path: Path) -> None:
    scenario = load_scenario("rule_edges")
    log = write_day(tmp_path / "edges.jsonl", "rule_edges", seed=23, events=3000)
    send_log(live, log)
    catch_up(spark, live, timeout_s=900)
    assert_lake_matches(spark, live, [log])

    edge_day, next_day = scenario.dates[-2:]
    materialize_gold(live, [edge_day, next_day], DagsterInstance.ephemeral())
    assert_gold_matches(live, truth_of([log]), [edge_day, next_day])
    assert_products_match(live, truth_of([log]))

    # The comparison covered the edges (values from docs/metrics.md, not from either implementation).
    summary = {r["event_date"]: r for r in gold_rows(live, GOLD_DAILY_SALES_SUMMARY.identifier)}
    assert (summary[edge_day]["top_payment_method"], summary[next_day]["top_payment_method"]) == ("apple_pay", "paypal")
    users = {r["user_id"]: r for r in gold_rows(live, GOLD_CUSTOMER_DAILY.identifier) if r["event_date"] == edge_day}
    assert [users[f"edge-recency-{k}"]["recency_score"] for k in (0, 1, 7, 8, 30, 31, 90, 91)] == [
        5,
        4,
        4,
        3,
        3,
        2,
        2,
        1,
    ]
    assert users["edge-segment-champion-7"]["segment"] == "champion"
    assert users["edge-segment-loyal-8"]["segment"] == "loyal"
