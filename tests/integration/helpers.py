"""Shared steps of the integration suites: send a simulated log, audit the lake against the oracle."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

from pyspark.sql import SparkSession

from pipeline.audit import Conservation, conservation
from pipeline.catalog import pyiceberg_catalog
from pipeline.config import Settings
from pipeline.streaming.job import start_stream
from pipeline.tables import BRONZE_EVENTS, EVENT_MINUTES, QUARANTINE_EVENTS, SESSIONS, SILVER
from simulation import oracle
from simulation.generator import generate
from simulation.logfile import from_log_line
from simulation.scenario import load_scenario
from simulation.sinks import log_items, make_producer, send, write_log


def write_day(path: Path, scenario_name: str, seed: int, events: int) -> Path:
    scenario = load_scenario(scenario_name)
    records, manifest = generate(scenario, seed, events)
    write_log(records, scenario, path, manifest)
    return path


def catch_up(spark: SparkSession, settings: Settings, timeout_s: float) -> None:
    """Stream everything Kafka holds now (``--available-now``) and require the query to end without error."""
    stream = start_stream(spark, settings, available_now=True)
    stream.await_termination(timeout_s=timeout_s)
    assert stream.exception() is None


def split_log(path: Path) -> tuple[Path, Path]:
    """The log's first two thirds and the rest, as two logs beside it (late events then arrive in the rest)."""
    lines = path.read_text().splitlines(keepends=True)
    cut = len(lines) * 2 // 3
    first, rest = path.with_name(f"{path.stem}.first.jsonl"), path.with_name(f"{path.stem}.rest.jsonl")
    first.write_text("".join(lines[:cut]))
    rest.write_text("".join(lines[cut:]))
    return first, rest


def send_log(settings: Settings, path: Path) -> int:
    producer = make_producer(settings.kafka)
    try:
        return send(producer, log_items(path), settings.kafka.topic_prefix)
    finally:
        producer.close()


def restamped_redeliveries(path: Path) -> int:
    """Event ids the log delivers more than once with different timestamps (a producer re-stamping on retry)."""
    stamps: dict[str, set[str]] = {}
    for _topic, _key, value in log_items(path):
        try:
            event = json.loads(value)
        except ValueError:
            continue
        if isinstance(event, dict) and isinstance(event.get("event_id"), str):
            stamps.setdefault(event["event_id"], set()).add(str(event.get("timestamp")))
    return sum(len(times) > 1 for times in stamps.values())


def truth_of(paths: Iterable[Path]) -> oracle.Truth:
    """The oracle over several logs sent one after the other (a replay is a redelivery of everything)."""

    def lines():
        for path in paths:
            with path.open(encoding="utf-8") as f:
                yield from (from_log_line(line) for line in f)

    return oracle.read_truth(lines())


def assert_lake_matches(spark: SparkSession, settings: Settings, paths: list[Path]) -> Conservation:
    """Every Kafka record accounted for exactly once, silver and roll-ups equal to the oracle; returns the audit."""
    truth = truth_of(paths)
    catalog = pyiceberg_catalog(settings)

    def rows(identifier: str, *columns: str) -> list[dict]:
        scan = catalog.load_table(identifier).scan(selected_fields=columns or ("*",))
        return scan.to_arrow().to_pylist()

    report = conservation(spark, settings.catalog.name)
    assert report.ok, report
    bronze_rows = len(rows(BRONZE_EVENTS.identifier, "kafka_offset"))
    assert report.bronze_records == truth.records == bronze_rows, (report, truth.records, bronze_rows)

    silver_ids = [r["event_id"] for spec in SILVER.values() for r in rows(spec.identifier, "event_id")]
    assert len(silver_ids) == len(set(silver_ids)), "an event landed twice in silver"
    assert set(silver_ids) == {e["event_id"] for e in truth.events}
    quarantine = rows(QUARANTINE_EVENTS.identifier, "failed_rules")
    assert len(quarantine) == sum(truth.rejected.values()) + truth.duplicates
    assert sum(r["failed_rules"] == ["duplicate"] for r in quarantine) == truth.duplicates

    expected_sessions = oracle.sessions(truth)
    sessions = {r["session_id"]: r for r in rows(SESSIONS.identifier)}
    assert set(sessions) == set(expected_sessions)
    for session_id, want in expected_sessions.items():
        got = sessions[session_id]
        assert (got["page_views"], got["carts"], got["purchases"], got["revenue"], got["has_logout"]) == (
            want["page_views"], want["carts"], want["purchases"], want["revenue"], want["has_logout"]
        ), session_id  # fmt: skip
        assert got["started_at"].strftime("%Y-%m-%dT%H:%M:%S") == want["started_at"][:19]
        assert got["ended_at"].strftime("%Y-%m-%dT%H:%M:%S") == want["ended_at"][:19]

    minutes = {
        (r["minute"].strftime("%Y-%m-%dT%H:%M"), r["event_type"]): (r["events"], r["purchases"], r["revenue"])
        for r in rows(EVENT_MINUTES.identifier)
    }
    expected = {k: (v["events"], v["purchases"], v["revenue"]) for k, v in oracle.event_minutes(truth).items()}
    assert minutes == expected
    assert sum(Decimal(e["total_amount"]) for e in truth.events if e["event_type"] == "purchase") == sum(
        m[2] for m in minutes.values()
    )
    return report


def gold_rows(settings: Settings, identifier: str) -> list[dict]:
    return pyiceberg_catalog(settings).load_table(identifier).scan().to_arrow().to_pylist()


def assert_gold_matches(settings: Settings, truth: oracle.Truth, days: list) -> None:
    """Every gold table equals the oracle for ``days``, value for value (decimals exact)."""
    from pipeline.tables import (
        GOLD_CUSTOMER_DAILY,
        GOLD_DAILY_CATEGORY_SALES,
        GOLD_DAILY_SALES_SUMMARY,
        GOLD_DATA_QUALITY,
        GOLD_PRODUCT_DAILY,
        GOLD_PRODUCT_PAIRS,
    )

    wanted = set(days)

    def keyed(identifier: str, *keys: str) -> dict:
        out = {}
        for row in gold_rows(settings, identifier):
            if row["event_date"] in wanted:
                key = tuple(row[k] for k in ("event_date", *keys))
                assert key not in out, f"{identifier}: two rows for {key}"
                out[key if keys else row["event_date"]] = row
        return out

    def compare(name: str, got: dict, expected: dict) -> None:
        expected = {k: v for k, v in expected.items() if (k[0] if isinstance(k, tuple) else k) in wanted}
        assert set(got) == set(expected), f"{name}: rows differ: {sorted(set(got) ^ set(expected), key=str)[:5]}"
        for key, want in expected.items():
            have = {column: got[key][column] for column in want}
            assert have == want, f"{name} {key}: {have} != {want}"

    summary = {d: v for d, v in oracle.daily_sales_summary(truth).items()}
    compare("daily_sales_summary", keyed(GOLD_DAILY_SALES_SUMMARY.identifier), summary)
    compare(
        "daily_category_sales",
        keyed(GOLD_DAILY_CATEGORY_SALES.identifier, "category"),
        oracle.daily_category_sales(truth),
    )
    compare("customer_daily", keyed(GOLD_CUSTOMER_DAILY.identifier, "user_id"), oracle.customer_daily(truth))
    compare("product_daily", keyed(GOLD_PRODUCT_DAILY.identifier, "product_id"), oracle.product_daily(truth))
    compare(
        "product_pairs", keyed(GOLD_PRODUCT_PAIRS.identifier, "antecedent", "consequent"), oracle.product_pairs(truth)
    )
    quality = keyed(GOLD_DATA_QUALITY.identifier, "table_name")
    dated = {k: v for k, v in oracle.data_quality(truth).items() if k[0] is not None}
    for (day, table), want in dated.items():
        if day in wanted:
            row = quality[(day, table)]
            assert {c: row[c] for c in want} == want, (day, table, {c: row[c] for c in want}, want)
    assert all(row["conservation_ok"] for row in quality.values())


def assert_products_match(settings: Settings, truth: oracle.Truth) -> None:
    """``silver.products`` equals the oracle's product versions, every product and version (decimals exact)."""
    from pipeline.tables import PRODUCTS

    def stamp(moment: dt.datetime | None) -> str | None:
        return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" if moment else None

    got = {
        (row["product_id"], row["version"]): {
            **row,
            "valid_from": stamp(row["valid_from"]),
            "valid_to": stamp(row["valid_to"]),
        }
        for row in gold_rows(settings, PRODUCTS.identifier)
    }
    expected = {(product, v["version"]): v for product, history in oracle.products(truth).items() for v in history}
    assert expected, "the scenario updates products"
    assert set(got) == set(expected), f"silver.products: versions differ: {sorted(set(got) ^ set(expected))[:5]}"
    for key, want in expected.items():
        assert {c: got[key][c] for c in want} == want, f"silver.products {key}"
