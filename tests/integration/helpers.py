"""Shared steps of the integration suites: send a simulated log, audit the lake against the oracle."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

from pyspark.sql import SparkSession

from pipeline.audit import conservation
from pipeline.catalog import pyiceberg_catalog
from pipeline.config import Settings
from pipeline.tables import BRONZE_EVENTS, EVENT_MINUTES, QUARANTINE_EVENTS, SESSIONS, SILVER
from simulation import oracle
from simulation.generator import from_log_line, generate
from simulation.scenario import load_scenario
from simulation.sinks import log_items, make_producer, send, write_log


def write_day(path: Path, scenario_name: str, seed: int, events: int) -> Path:
    scenario = load_scenario(scenario_name)
    records, manifest = generate(scenario, seed, events)
    write_log(records, scenario, path, manifest)
    return path


def send_log(settings: Settings, path: Path) -> int:
    producer = make_producer(settings.kafka.bootstrap_servers)
    try:
        return send(producer, log_items(path), settings.kafka.topic_prefix)
    finally:
        producer.close()


def truth_of(paths: Iterable[Path]) -> oracle.Truth:
    """The oracle over several logs sent one after the other (a replay is a redelivery of everything)."""

    def lines():
        for path in paths:
            with path.open(encoding="utf-8") as f:
                yield from (from_log_line(line) for line in f)

    return oracle.read_truth(lines())


def assert_lake_matches(spark: SparkSession, settings: Settings, paths: list[Path]) -> None:
    """Every Kafka record accounted for exactly once, silver and roll-ups equal to the oracle."""
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
