"""The maintenance job beside a running stream: every round completes while the stream cleans its metadata.

The stream merges manifests and expires snapshots of the tables it appends to as it goes (its hygiene); the
hourly maintenance job compacts, expires and lists orphans on the same tables. A file one lists can be gone
when the other reads it, and a snapshot one plans on can be replaced before it commits. Here the stream appends
small micro-batches, its hygiene runs back to back with no retention (the most deletions it can make), and
maintenance rounds run on the busiest tables until the stream ends: every round must complete for every table,
and the lake must still hold every record exactly once.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from pathlib import Path

import pytest

from pipeline.contracts.events import EventType
from pipeline.maintenance import MaintenanceResult, StreamHygiene, maintain
from pipeline.spark_session import in_background_pool
from pipeline.streaming.job import start_stream
from pipeline.tables import BRONZE_EVENTS, SILVER, STREAMING_TABLES
from tests.integration.helpers import assert_lake_matches, send_log, write_day

BUSIEST = (BRONZE_EVENTS, SILVER[EventType.PAGE_VIEW], SILVER[EventType.ADD_TO_CART])


@pytest.mark.extended
def test_maintenance_rounds_complete_while_the_stream_expires_snapshots(
    spark, live, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.maintenance")
    settings = live.model_copy(update={"stream": live.stream.model_copy(update={"max_offsets_per_trigger": 200})})
    catalog = settings.catalog.name
    log = write_day(tmp_path / "day.jsonl", "normal_day", seed=12, events=2000)
    send_log(settings, log)

    hygiene = StreamHygiene(catalog, STREAMING_TABLES, every=dt.timedelta(0), retention=dt.timedelta(0), retain_last=1)
    cleaning = threading.Event()
    hygiene_rounds = 0

    def clean() -> None:
        nonlocal hygiene_rounds
        in_background_pool(spark)
        while cleaning.is_set():
            hygiene.run(spark)
            hygiene_rounds += 1

    stream = start_stream(spark, settings, available_now=True)
    cleaning.set()
    cleaner = threading.Thread(target=clean, name="stream hygiene", daemon=True)
    cleaner.start()
    rounds: list[list[MaintenanceResult]] = []
    try:
        while stream.query.isActive or len(rounds) < 2:
            rounds.append(
                [maintain(spark, catalog, spec, snapshot_retention=dt.timedelta(0), retain_last=1) for spec in BUSIEST]
            )
    finally:
        cleaning.clear()
        cleaner.join(timeout=120)
        stream.await_termination(timeout_s=600)
    assert stream.exception() is None

    assert len(rounds) >= 2
    assert hygiene_rounds >= 2, "the stream's hygiene ran beside maintenance"
    for results in rounds:
        assert [r.table for r in results] == [spec.identifier for spec in BUSIEST]
    assert_lake_matches(spark, settings, [log])
    races = [r.getMessage() for r in caplog.records if "lost a race" in r.getMessage()]
    print(f"{len(rounds)} maintenance rounds, {hygiene_rounds} hygiene rounds, {len(races)} races run again:")
    print("\n".join(races))
