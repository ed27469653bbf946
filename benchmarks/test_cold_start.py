"""Cold start: from `shoplake stream` starting to the first event visible in silver, and the first batch after a
restart (SIGKILL in the middle of live traffic) against the steady batches after it (a second producer starts
once the restarted stream has caught up with the first, however long the restart took).

Every number is read from the tables' Iceberg snapshots, which the stream writes atomically with the rows: a
batch starts at its ingest time (stamped when it reaches the sink) and ends at the commit of its last table.
Nothing depends on the stream's own bookkeeping surviving the kill.

Result: ``benchmarks/results/cold_start.json`` with ``first_visible_s`` (process start -> commit of the first
silver snapshot), ``first_batch_s``, ``killed_jvm_outlived_s`` (how long the driver's JVM ran on after its Python
process was killed; the restart begins once it is gone), ``restart_visible_s`` (the same after the restart),
``restart_first_batch_s``, ``steady_batch_s`` (median of the batches after it) and ``restart_ratio``.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pyiceberg.exceptions import NoSuchTableError

from benchmarks.harness import Results
from benchmarks.pipeline_runs import ROOT, preload, producer_process
from devstack.process import live_group_members
from devstack.pytest_plugin import make_settings
from devstack.services import Services
from pipeline.catalog import pyiceberg_catalog
from pipeline.config import Settings
from pipeline.kafka_topics import ensure_topics
from pipeline.streaming.commit import BATCH_ID_PROPERTY, INGEST_TIME_PROPERTY
from pipeline.tables import BRONZE_EVENTS, QUARANTINE_EVENTS, SILVER


@dataclass(frozen=True)
class BatchSpan:
    """One micro-batch as its snapshots show it."""

    batch_id: int
    records: int  # records added to bronze: every Kafka record of the batch
    started: float  # epoch seconds: the batch's ingest time
    ended: float  # epoch seconds: the commit of its last table

    @property
    def seconds(self) -> float:
        return round(self.ended - self.started, 2)


def _stream(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "shoplake.cli", "stream"],
        env={**os.environ, **settings.to_env(), "SHOPLAKE_LOG_LEVEL": "info"},  # the log times each start-up step
        cwd=ROOT,
        stdout=out,
        stderr=out,
        start_new_session=True,  # its own process group: the JVM it starts can be told apart from ours
    )


def batch_spans(settings: Settings) -> list[BatchSpan]:
    """Every micro-batch of the stream, from the snapshots of bronze, silver and quarantine (none before the
    stream created its tables)."""
    catalog = pyiceberg_catalog(settings)
    spans: dict[int, BatchSpan] = {}
    for spec in (BRONZE_EVENTS, *SILVER.values(), QUARANTINE_EVENTS):
        try:
            snapshots = catalog.load_table(spec.identifier).snapshots()
        except NoSuchTableError:
            return []
        for snapshot in snapshots:
            summary = snapshot.summary.additional_properties if snapshot.summary else {}
            if BATCH_ID_PROPERTY not in summary or INGEST_TIME_PROPERTY not in summary:
                continue
            batch_id = int(summary[BATCH_ID_PROPERTY])
            started = dt.datetime.fromisoformat(summary[INGEST_TIME_PROPERTY]).timestamp()
            records = int(summary.get("added-records", 0)) if spec is BRONZE_EVENTS else 0
            known = spans.get(batch_id, BatchSpan(batch_id, 0, started, 0.0))
            spans[batch_id] = BatchSpan(
                batch_id,
                known.records + records,
                min(known.started, started),
                max(known.ended, snapshot.timestamp_ms / 1000),
            )
    return sorted(spans.values(), key=lambda s: s.batch_id)


def _silver_commits(settings: Settings) -> list[float]:
    """Commit times (epoch seconds) of every silver snapshot a micro-batch wrote (one with a batch marker: a
    snapshot written by anything else shows no new event)."""
    catalog = pyiceberg_catalog(settings)
    try:
        tables = [catalog.load_table(spec.identifier) for spec in SILVER.values()]
    except NoSuchTableError:
        return []
    return sorted(
        s.timestamp_ms / 1000
        for table in tables
        for s in table.snapshots()
        if s.summary is not None and BATCH_ID_PROPERTY in s.summary.additional_properties
    )


def _bronze_rows(settings: Settings) -> int:
    return sum(span.records for span in batch_spans(settings))


def _wait(
    condition: Callable[[], bool], timeout_s: float, what: str, process: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the stream exited ({process.returncode}) before {what}: {log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout_s:g}s: {log.read_text()[-3000:]}")
        time.sleep(0.25)


def test_cold_start_and_restart(full: bool, results: Results, local_services: Services, tmp_path, jars_home) -> None:
    rate, seconds = (1000.0, 40.0) if full else (300.0, 12.0)
    settings = local_services.apply(make_settings(tmp_path, jars_home, stream={"trigger_seconds": 1.0}))
    ensure_topics(settings)
    sent = preload(settings, 2000, seed=41)

    first_log = tmp_path / "first.log"
    started = time.time()
    stream = _stream(settings, first_log)
    producer: subprocess.Popen[bytes] | None = None
    try:
        _wait(lambda: _silver_commits(settings) != [], 120, "silver commit", stream, first_log)
        first_visible = _silver_commits(settings)[0] - started
        producer = producer_process(settings, rate, int(rate * seconds), seed=42)
        time.sleep(seconds / 2)
        stream.send_signal(signal.SIGKILL)  # mid-traffic, wherever the batch is
        stream.wait()
        # The driver's JVM outlives the killed Python process until it notices, and can still commit meanwhile:
        # the restart is timed from when it is gone, so that its commits are not taken for the restart's.
        killed = time.time()
        while live_group_members(stream.pid):
            assert time.time() - killed < 120, f"the killed driver's JVM still runs: {live_group_members(stream.pid)}"
            time.sleep(0.1)
        orphan_s = time.time() - killed
        before_restart = _silver_commits(settings)[-1]

        restart_log = tmp_path / "restart.log"
        restarted = time.time()
        stream = _stream(settings, restart_log)
        _wait(lambda: _silver_commits(settings)[-1] > before_restart, 120, "commit after restart", stream, restart_log)
        restart_visible = _silver_commits(settings)[-1] - restarted
        _, stderr = producer.communicate(timeout=seconds * 4 + 120)
        assert producer.returncode == 0, stderr.decode()[-2000:]
        # Steady traffic for the restarted stream once it has caught up with the first producer, however long the
        # restart took: these records reach it in batches of their own, the batches to compare with (started
        # earlier, a slow restart's first batch could swallow all of them and leave nothing steady to compare).
        caught_up = sent + int(rate * seconds)
        _wait(lambda: _bronze_rows(settings) >= caught_up, 300, f"{caught_up} records in bronze", stream, restart_log)
        producer = producer_process(settings, rate, int(rate * seconds), seed=43)
        _, stderr = producer.communicate(timeout=seconds * 4 + 120)
        assert producer.returncode == 0, stderr.decode()[-2000:]
        total = sent + 2 * int(rate * seconds)
        _wait(lambda: _bronze_rows(settings) >= total, 300, f"{total} records in bronze", stream, restart_log)
    finally:
        if producer is not None and producer.poll() is None:
            producer.kill()
            producer.wait()
        if stream.poll() is None:
            stream.send_signal(signal.SIGTERM)
            stream.wait(timeout=120)

    spans = batch_spans(settings)
    first_run = [s for s in spans if s.started < restarted]
    after_restart = [s for s in spans if s.started >= restarted]
    assert first_run, spans
    assert len(after_restart) >= 2, (after_restart, restart_log.read_text()[-3000:])
    # Every Kafka record reached bronze exactly once, across the kill.
    assert _bronze_rows(settings) == total
    steady = statistics.median([s.seconds for s in after_restart[1:] if s.records] or [after_restart[-1].seconds])
    results.add(
        "cold_start",
        {
            "rate_eps": rate,
            "first_visible_s": round(first_visible, 2),
            "first_batch_s": first_run[0].seconds,
            "killed_jvm_outlived_s": round(orphan_s, 2),
            "restart_visible_s": round(restart_visible, 2),
            "restart_first_batch_s": after_restart[0].seconds,
            "steady_batch_s": round(steady, 2),
            "restart_ratio": round(after_restart[0].seconds / steady, 2),
            "restart_batches": [
                {"batch_id": s.batch_id, "records": s.records, "seconds": s.seconds} for s in after_restart
            ],
        },
    )
