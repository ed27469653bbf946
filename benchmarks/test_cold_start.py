"""Cold start: from `shoplake stream` starting to the first event visible in silver, and the first batch after a
restart (SIGKILL in the middle of live traffic) against the steady batches around it.

Result: ``benchmarks/results/cold_start.json`` with ``first_visible_s`` (process start -> commit of the first
silver snapshot), ``restart_visible_s`` (the same after the restart), ``restart_first_batch_s``,
``steady_batch_s`` (median of the batches after it) and their ratio.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from pyiceberg.exceptions import NoSuchTableError

from benchmarks.harness import Results
from benchmarks.pipeline_runs import ROOT, preload, producer_process
from devstack.pytest_plugin import make_settings
from devstack.services import Services
from pipeline.catalog import pyiceberg_catalog
from pipeline.config import Settings
from pipeline.kafka_topics import ensure_topics
from pipeline.tables import BRONZE_EVENTS, SILVER, STREAM_BATCHES


def _stream(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "shoplake.cli", "stream"],
        env={**os.environ, **settings.to_env()},
        cwd=ROOT,
        stdout=out,
        stderr=out,
    )


def _silver_commits_ms(settings: Settings) -> list[int]:
    """Commit times of every silver snapshot (none while the stream has not created the tables yet)."""
    catalog = pyiceberg_catalog(settings)
    try:
        tables = [catalog.load_table(spec.identifier) for spec in SILVER.values()]
    except NoSuchTableError:
        return []
    return sorted(s.timestamp_ms for table in tables for s in table.snapshots())


def _bronze_rows(settings: Settings) -> int:
    try:
        table = pyiceberg_catalog(settings).load_table(BRONZE_EVENTS.identifier)
    except NoSuchTableError:
        return 0
    snapshot = table.current_snapshot()
    total = snapshot.summary.get("total-records") if snapshot and snapshot.summary else None
    return int(total or 0)


def _wait(condition, timeout_s: float, what: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the stream exited ({process.returncode}) before {what}: {log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout_s:g}s: {log.read_text()[-3000:]}")
        time.sleep(0.25)


def _batches(settings: Settings, since: float) -> list[tuple[int, int, float]]:
    """(batch id, records, seconds) of the batches a stream started at ``since`` (epoch seconds) or later, from
    ``ops.stream_batches``."""
    rows = pyiceberg_catalog(settings).load_table(STREAM_BATCHES.identifier).scan().to_arrow().to_pylist()
    return sorted(
        (r["batch_id"], r["records"], round((r["committed_at"] - r["started_at"]).total_seconds(), 2))
        for r in rows
        if r["started_at"].timestamp() >= since
    )


def test_cold_start_and_restart(full: bool, results: Results, local_services: Services, tmp_path, jars_home) -> None:
    rate, seconds = (1000.0, 40.0) if full else (300.0, 12.0)
    settings = local_services.apply(make_settings(tmp_path, jars_home, stream={"trigger_seconds": 1.0}))
    ensure_topics(settings)
    sent = preload(settings, 2000, seed=41)

    first_log = tmp_path / "first.log"
    started = time.time()
    stream = _stream(settings, first_log)
    try:
        _wait(lambda: _silver_commits_ms(settings) != [], 120, "silver commit", stream, first_log)
        first_visible = _silver_commits_ms(settings)[0] / 1000 - started
        producer = producer_process(settings, rate, int(rate * seconds), seed=42)
        time.sleep(seconds / 2)
        stream.send_signal(signal.SIGKILL)  # mid-traffic, wherever the batch is
        stream.wait()
        before_restart = _silver_commits_ms(settings)[-1]

        restart_log = tmp_path / "restart.log"
        restarted = time.time()
        stream = _stream(settings, restart_log)
        _wait(
            lambda: _silver_commits_ms(settings)[-1] > before_restart, 120, "commit after restart", stream, restart_log
        )
        restart_visible = _silver_commits_ms(settings)[-1] / 1000 - restarted
        _, stderr = producer.communicate(timeout=seconds * 4 + 120)
        assert producer.returncode == 0, stderr.decode()[-2000:]
        total = sent + int(rate * seconds)
        _wait(lambda: _bronze_rows(settings) >= total, 300, f"{total} records in bronze", stream, restart_log)
    finally:
        if stream.poll() is None:
            stream.send_signal(signal.SIGTERM)
            stream.wait(timeout=120)

    batches = _batches(settings, restarted)
    assert len(batches) >= 3, (batches, restart_log.read_text()[-3000:])
    first_run = _batches(settings, started)
    first_batch = batches[0][2]
    steady = statistics.median(s for _, n, s in batches[1:] if n)
    results.add(
        "cold_start",
        {
            "rate_eps": rate,
            "first_visible_s": round(first_visible, 2),
            "first_batch_s": first_run[0][2],
            "restart_visible_s": round(restart_visible, 2),
            "restart_first_batch_s": first_batch,
            "steady_batch_s": round(steady, 2),
            "restart_ratio": round(first_batch / steady, 2),
            "restart_batches": [{"batch_id": b, "records": n, "seconds": s} for b, n, s in batches],
        },
    )
