"""`shoplake live --once` and `shoplake quarantine summary` on a real lake: what they print equals the oracle."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from pipeline.catalog import pyiceberg_catalog
from pipeline.config import Settings
from pipeline.contracts.events import EventType
from pipeline.tables import QUARANTINE_EVENTS, SILVER
from simulation import oracle
from tests.integration.helpers import catch_up, send_log, truth_of, write_day

ROOT = Path(__file__).resolve().parents[2]
MINUTES = 3
# The view's columns after the minute: these four event types, then purchases and revenue.
TYPE_COLUMNS = ("page_view", "add_to_cart", "user_session", "product_update")
MINUTE_ROW = re.compile(r"^\s*(\d\d:\d\d|\d\d-\d\d \d\d:\d\d)((?:\s+[\d,]+){5})\s+([\d,]+\.\d\d)\s*$")
REASON_ROW = re.compile(r"^\s*(\d{4}-\d\d-\d\d|-)\s+(\S+)\s+(\S+)\s+([\d,]+)\s*$")
# Oracle reasons that are exactly one pipeline rule (the others are families of rules, e.g. missing:<field>).
SAME_RULE = {
    "invalid_json": "invalid_json",
    "invalid_utf8": "invalid_utf8",
    "oversized": "oversized_payload",
    "unknown_event_type": "unknown_event_type",
}


def _shoplake(settings: Settings, *args: str) -> str:
    """Run the command as a user would (a fresh process, an 80-column terminal); returns what it printed."""
    env = {**os.environ, **settings.to_env(), "COLUMNS": "80"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "shoplake.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    print(f"shoplake {' '.join(args)}: {time.monotonic() - started:.2f} s, process start to exit")  # no assertion
    assert done.returncode == 0, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert max(len(line) for line in output.splitlines()) <= 80, output
    return output


def _expected_minutes(truth: oracle.Truth) -> dict[str, tuple[int, ...]]:
    """The oracle's newest MINUTES minutes: per ``HH:MM``, events per type (view order), purchases, revenue."""
    per_minute = oracle.event_minutes(truth)
    newest = max(dt.datetime.fromisoformat(minute) for minute, _ in per_minute)
    out: dict[str, list] = {}
    for (minute, event_type), figures in per_minute.items():
        moment = dt.datetime.fromisoformat(minute)
        if moment <= newest - dt.timedelta(minutes=MINUTES):
            continue
        row = out.setdefault(moment.strftime("%H:%M"), [0, 0, 0, 0, 0, Decimal("0.00")])
        if event_type in TYPE_COLUMNS:
            row[TYPE_COLUMNS.index(event_type)] += figures["events"]
        row[4] += figures["purchases"]
        row[5] += figures["revenue"]
    return {minute: tuple(row) for minute, row in out.items()}


def _shown_minutes(output: str) -> dict[str, tuple[int, ...]]:
    shown = {}
    for line in output.splitlines():
        match = MINUTE_ROW.match(line)
        if match:
            counts = [int(n.replace(",", "")) for n in match.group(2).split()]
            shown[match.group(1)[-5:]] = (*counts, Decimal(match.group(3).replace(",", "")))
    return shown


def _active_sessions_from_silver(settings: Settings) -> int:
    """Sessions with an event in the 30 newest minutes of event time and no logout, from silver's rows alone."""
    catalog = pyiceberg_catalog(settings)
    newest_event = dt.datetime.min.replace(tzinfo=dt.UTC)
    ended: dict[str, dt.datetime] = {}
    logged_out: set[str] = set()
    for event_type, spec in SILVER.items():
        columns = ("event_time",) if event_type is EventType.PRODUCT_UPDATE else ("event_time", "session_id")
        if event_type is EventType.USER_SESSION:
            columns = (*columns, "session_type")
        for row in catalog.load_table(spec.identifier).scan(selected_fields=columns).to_arrow().to_pylist():
            newest_event = max(newest_event, row["event_time"])
            if event_type is EventType.PRODUCT_UPDATE:
                continue
            session = row["session_id"]
            ended[session] = max(ended.get(session, row["event_time"]), row["event_time"])
            if row.get("session_type") == "logout":
                logged_out.add(session)
    newest_minute = newest_event.replace(second=0, microsecond=0)
    since = newest_minute - dt.timedelta(minutes=29)  # the 30 minute buckets ending at the newest
    return sum(1 for session, last in ended.items() if last >= since and session not in logged_out)


def test_live_once_and_the_quarantine_summary_show_what_the_oracle_says(spark, live, tmp_path: Path) -> None:
    log = write_day(tmp_path / "dirty.jsonl", "dirty_stream", seed=31, events=3000)
    send_log(live, log)
    catch_up(spark, live, timeout_s=300)
    truth = truth_of([log])

    view = _shoplake(live, "live", "--once", "--minutes", str(MINUTES))
    assert _shown_minutes(view) == _expected_minutes(truth), view
    active = re.search(r"active sessions: ([\d,]+)", view)
    assert active is not None, view
    assert int(active.group(1).replace(",", "")) == _active_sessions_from_silver(live)
    freshness = re.search(r"freshness: ([\d.]+) s", view)
    assert freshness is not None, view
    assert float(freshness.group(1)) >= 0

    summary = _shoplake(live, "quarantine", "summary")
    quarantined = sum(truth.rejected.values()) + truth.duplicates
    assert f"quarantine.events: {quarantined:,} records" in summary, summary
    per_rule: dict[str, int] = defaultdict(int)
    for line in summary.splitlines():
        match = REASON_ROW.match(line)
        if match:
            per_rule[match.group(3)] += int(match.group(4).replace(",", ""))
    assert per_rule["duplicate"] == truth.duplicates > 0
    for reason, rule in SAME_RULE.items():
        assert per_rule.get(rule, 0) == truth.rejected[reason], (reason, dict(per_rule), truth.rejected)
    assert "duplicate on page_view (" in summary

    # The arrival days select partitions: the days the records arrived hold them all, the next day none.
    arrived = [
        row["kafka_timestamp"].date()
        for row in pyiceberg_catalog(live)
        .load_table(QUARANTINE_EVENTS.identifier)
        .scan(selected_fields=("kafka_timestamp",))
        .to_arrow()
        .to_pylist()
    ]
    first, last = min(arrived).isoformat(), max(arrived).isoformat()
    assert f"{quarantined:,} records" in _shoplake(live, "quarantine", "summary", "--since", first, "--until", last)
    after = (max(arrived) + dt.timedelta(days=1)).isoformat()
    assert "no record" in _shoplake(live, "quarantine", "summary", "--since", after)
