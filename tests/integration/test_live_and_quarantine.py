"""`shoplake live` (once, and refreshed in place in a terminal) and `shoplake quarantine summary` on a real lake:
what they print equals the oracle."""

from __future__ import annotations

import datetime as dt
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from pipeline.catalog import pyiceberg_catalog
from pipeline.config import Settings
from pipeline.contracts.events import EventType
from pipeline.tables import QUARANTINE_EVENTS, SILVER, STREAM_BATCHES
from simulation import oracle
from tests.integration.helpers import catch_up, send_log, split_log, truth_of, write_day

pytestmark = pytest.mark.extended  # tox -e suites -- extended (see README "Tests")

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
    newest = (
        spark.table(STREAM_BATCHES.qualified(live.catalog.name))
        .filter("kafka_ts_min IS NOT NULL")
        .orderBy(F.desc("committed_at"))
        .first()
    )
    assert newest is not None
    # The newest batch's oldest record's age at commit, from ops.stream_batches: what the view must show.
    age_s = (newest.committed_at - newest.kafka_ts_min).total_seconds()
    assert float(freshness.group(1)) == pytest.approx(age_s, abs=0.06)

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


ANSI_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][AB0-2]|\r")
FOOTER = re.compile(r"read at (\d\d:\d\d:\d\d) UTC, every 0\.5 s; Ctrl-C stops")


class Terminal:
    """A command running on a pseudo-terminal of 80 columns; collects everything it draws."""

    def __init__(self, settings: Settings, *args: str) -> None:
        self.controller, device = pty.openpty()
        env = {**os.environ, **settings.to_env(), "COLUMNS": "80", "LINES": "60", "TERM": "xterm-256color"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "shoplake.cli", *args], env=env, cwd=ROOT, stdin=device, stdout=device, stderr=device
        )
        os.close(device)
        self.drawn: list[bytes] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.controller, 65536)
            except OSError:  # the command ended and closed the terminal
                return
            if not chunk:
                return
            self.drawn.append(chunk)

    def frames(self) -> list[tuple[str, str]]:
        """Each complete frame drawn so far, as (its text without terminal controls, its footer's time)."""
        text = ANSI_CONTROL.sub("", b"".join(self.drawn).decode("utf-8", errors="replace"))
        parts = FOOTER.split(text)  # frame text, footer time, frame text, footer time, ..., unfinished frame
        return list(zip(parts[0:-1:2], parts[1::2], strict=True))

    def wait_for(self, wanted, timeout_s: float) -> tuple[str, str]:
        """The first frame for which ``wanted(text)`` holds, waiting for it to be drawn."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = next((frame for frame in self.frames() if wanted(frame[0])), None)
            if found is not None:
                return found
            assert self.process.poll() is None, self.frames()[-1:]
            time.sleep(0.2)
        raise AssertionError(f"no such frame in {timeout_s} s; the last: {self.frames()[-1:]}")

    def interrupt(self) -> int:
        """Ctrl-C, as a person would stop it; returns the exit status."""
        self.process.send_signal(signal.SIGINT)
        status = self.process.wait(timeout=30)
        self.reader.join(timeout=5)
        os.close(self.controller)
        return status

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def test_live_redraws_in_place_with_what_the_stream_commits_until_ctrl_c(spark, live, tmp_path: Path) -> None:
    log = write_day(tmp_path / "day.jsonl", "normal_day", seed=23, events=3000)
    first, rest = split_log(log)
    send_log(live, first)
    catch_up(spark, live, timeout_s=300)
    before, after = _expected_minutes(truth_of([first])), _expected_minutes(truth_of([log]))
    assert before != after, "the rest of the log must change the newest minutes"

    terminal = Terminal(live, "live", "--interval", "0.5", "--minutes", str(MINUTES))
    try:
        _, drawn_before = terminal.wait_for(lambda text: _shown_minutes(text) == before, timeout_s=60)
        send_log(live, rest)
        catch_up(spark, live, timeout_s=300)  # the view keeps refreshing meanwhile
        text, drawn_after = terminal.wait_for(lambda text: _shown_minutes(text) == after, timeout_s=60)
        assert terminal.interrupt() == 0
    finally:
        terminal.kill()
    frames = terminal.frames()
    assert len(frames) >= 3, frames
    assert b"\x1b[2K" in b"".join(terminal.drawn), "each frame erases the one before it (drawn in place)"
    assert drawn_before <= drawn_after, "frames are drawn in time order"
    assert [frame for frame, _ in frames].index(text) > 0, "the newer figures replace the older in the same view"
    assert max(len(line) for frame, _ in frames for line in frame.splitlines()) <= 80
