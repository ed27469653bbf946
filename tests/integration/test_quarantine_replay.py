"""`shoplake quarantine replay` on a real stream: records of a version the stream did not accept are re-sent once
the version is enabled, reach silver, and the gold day they belong to is restated; nothing counts twice."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from dagster import DagsterInstance

from pipeline.audit import conservation
from pipeline.catalog import pyiceberg_catalog
from pipeline.config import Settings
from pipeline.orchestration.runs import materialize_gold
from pipeline.replay import operator
from pipeline.tables import (
    BRONZE_EVENTS,
    GOLD_DAILY_SALES_SUMMARY,
    GOLD_DATA_QUALITY,
    QUARANTINE_EVENTS,
    QUARANTINE_REPLAYS,
    RESTATEMENTS,
    SILVER,
)
from shoplake.cli import main
from simulation import oracle
from simulation.logfile import from_log_line, to_log_line
from simulation.scenario import load_scenario
from tests.integration.helpers import assert_gold_matches, catch_up, gold_rows, send_log, truth_of, write_day

pytestmark = pytest.mark.extended  # tox -e suites -- extended (see README "Tests")

RULE = "unsupported_schema_version"
PURCHASES, OTHERS = 6, 24


def _with_version_3(original: Path, out: Path) -> list[tuple[str, dict]]:
    """``original`` with some valid events (each the only delivery of its id) sent as schema_version 3, written
    to ``out``; returns those (topic, event)."""
    records = [from_log_line(line) for line in original.read_text().splitlines()]
    valid = [
        (topic, key, json.loads(value)) for topic, key, value in records if not oracle.rejection_reason(topic, value)
    ]
    deliveries = Counter(event["event_id"] for _, _, event in valid)
    chosen: dict[str, tuple[str, dict]] = {}
    for index, (topic, _key, event) in enumerate(valid):
        wanted = PURCHASES if topic == "purchase" else OTHERS
        same_kind = sum((t == "purchase") == (topic == "purchase") for t, _ in chosen.values())
        spread = topic == "purchase" or index % 5 == 0  # purchases are few: the first ones
        if deliveries[event["event_id"]] == 1 and event["schema_version"] == 1 and spread and same_kind < wanted:
            chosen[event["event_id"]] = (topic, {**event, "schema_version": 3})
    assert len(chosen) == PURCHASES + OTHERS, "the log is too small to pick from"
    lines = []
    for topic, key, value in records:
        event_id = json.loads(value).get("event_id") if not oracle.rejection_reason(topic, value) else None
        if event_id in chosen:
            value = json.dumps(chosen[event_id][1], separators=(",", ":")).encode()
        lines.append(to_log_line(topic, key, value) + "\n")
    out.write_text("".join(lines))
    return list(chosen.values())


def _replay(settings: Settings, *options: str) -> str:
    result = CliRunner().invoke(main, ["quarantine", "replay", *options], env=settings.to_env())
    assert result.exit_code == 0, result.output
    return result.output


def _quarantined(settings: Settings) -> list[list[str]]:
    table = pyiceberg_catalog(settings).load_table(QUARANTINE_EVENTS.identifier)
    return [row["failed_rules"] for row in table.scan(selected_fields=("failed_rules",)).to_arrow().to_pylist()]


def _orders(settings: Settings, day: dt.date) -> int:
    (row,) = [r for r in gold_rows(settings, GOLD_DAILY_SALES_SUMMARY.identifier) if r["event_date"] == day]
    return row["orders"]


def _sales_restatements(settings: Settings) -> list[tuple]:
    """Restated (table, row, metric, old, new) of every gold table but data_quality (which counts quarantine)."""
    rows = gold_rows(settings, RESTATEMENTS.identifier)
    return sorted(
        (r["table_name"], r["row_key"], r["metric"], r["old_value"], r["new_value"])
        for r in rows
        if r["table_name"] != GOLD_DATA_QUALITY.identifier
    )


def test_records_of_a_version_enabled_later_are_replayed_into_silver_and_their_gold_day_is_restated(
    spark, live, tmp_path: Path
) -> None:
    (day,) = load_scenario("normal_day").dates
    original = write_day(tmp_path / "day.jsonl", "normal_day", seed=11, events=1500)
    bumped = _with_version_3(original, tmp_path / "day.v3.jsonl")
    sent = send_log(live, tmp_path / "day.v3.jsonl")
    catch_up(spark, live, timeout_s=300)
    assert sum(RULE in rules for rules in _quarantined(live)) == len(bumped)

    instance = DagsterInstance.ephemeral()
    materialize_gold(live, [day], instance)
    full = truth_of([original])  # every event, each once, as the producer meant them
    orders_without = _orders(live, day)
    assert orders_without == oracle.daily_sales_summary(full)[day]["orders"] - PURCHASES

    enabled = live.model_copy(
        update={"stream": live.stream.model_copy(update={"supported_schema_versions": [1, 2, 3]})}
    )
    today = dt.datetime.now(dt.UTC).date()
    days = (
        "--since",
        (today - dt.timedelta(days=1)).isoformat(),
        "--until",
        (today + dt.timedelta(days=1)).isoformat(),
    )
    dry = _replay(enabled, "--rule", RULE, *days, "--dry-run")
    assert f"dry run: {len(bumped)} records of rule {RULE} would be re-sent" in dry, dry
    replayed = _replay(enabled, "--rule", RULE, *days)
    assert f"re-sent {len(bumped)} records of rule {RULE}" in replayed, replayed
    catch_up(spark, enabled, timeout_s=300)

    catalog = pyiceberg_catalog(enabled)
    silver_ids = [
        row["event_id"]
        for spec in SILVER.values()
        for row in catalog.load_table(spec.identifier).scan(selected_fields=("event_id",)).to_arrow().to_pylist()
    ]
    assert sorted(silver_ids) == sorted(event["event_id"] for event in full.events), "the replay reached silver once"
    audit = conservation(spark, enabled.catalog.name)
    assert audit.ok, audit
    assert audit.bronze_records == sent + len(bumped), "the dry run sent nothing, the replay each record once"

    materialize_gold(enabled, [day], instance)
    # The originals stay in quarantine: gold.data_quality counts them as quarantined on their event day.
    expected = truth_of([original])
    expected.quarantined.extend((topic, oracle.event_date(event), RULE) for topic, event in bumped)
    assert_gold_matches(enabled, expected, [day])
    restated = [
        r
        for r in gold_rows(enabled, RESTATEMENTS.identifier)
        if r["event_date"] == day and r["table_name"] == GOLD_DAILY_SALES_SUMMARY.identifier and r["metric"] == "orders"
    ]
    assert [(r["old_value"], r["new_value"]) for r in restated] == [
        (str(orders_without), str(oracle.daily_sales_summary(full)[day]["orders"]))
    ]

    restated_before = _sales_restatements(enabled)

    # Replayed twice: the second copies find their event ids in silver and land in quarantine as duplicates.
    again = _replay(enabled, "--rule", RULE, *days)
    assert f"re-sent {len(bumped)} records" in again, again
    catch_up(spark, enabled, timeout_s=300)
    assert sum(rules == ["duplicate"] for rules in _quarantined(enabled)) == full.duplicates + len(bumped)
    audit = conservation(spark, enabled.catalog.name)
    assert audit.ok, audit
    assert (
        audit.bronze_records
        == sent + 2 * len(bumped)
        == catalog.load_table(BRONZE_EVENTS.identifier).scan().to_arrow().num_rows
    )
    materialize_gold(enabled, [day], instance)  # rebuilt again: only the day's duplicate count moves
    expected.quarantined.extend((topic, oracle.event_date(event), "duplicate") for topic, event in bumped)
    assert_gold_matches(enabled, expected, [day])
    assert _sales_restatements(enabled) == restated_before, "replaying twice changed a sales figure"

    log = sorted(
        spark.table(QUARANTINE_REPLAYS.qualified(enabled.catalog.name)).collect(), key=lambda r: r.replayed_at
    )  # written without Spark, read by Spark
    assert [(r.rule, r.records, r.is_dry_run, r.replayed_by) for r in log] == [
        (RULE, len(bumped), True, operator()),
        (RULE, len(bumped), False, operator()),
        (RULE, len(bumped), False, operator()),
    ]
    assert {(r.since, r.until) for r in log} == {(today - dt.timedelta(days=1), today + dt.timedelta(days=1))}
