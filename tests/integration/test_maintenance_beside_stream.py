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
import time
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from pipeline.contracts.events import EventType
from pipeline.iceberg_io import ensure_tables
from pipeline.maintenance import MaintenanceResult, StreamHygiene, maintain, remove_orphans
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


@pytest.mark.extended
def test_orphan_listing_of_a_table_committed_five_times_a_second(spark, lake) -> None:
    """A table's oldest metadata file goes at every commit: no orphan listing of its local folder fails for it.

    Hadoop's local listing used to read each file's permissions after listing the folder, with ``ls``; beside
    this writer every listing met a file deleted in between. Each listing here runs once, without the
    maintenance job's retries; the local listing is per folder now (``remove_orphans``).
    """
    catalog = lake.catalog.name
    spec = SILVER[EventType.PAGE_VIEW]
    ensure_tables(spark, catalog, [spec])
    rows = spark.range(5).select(
        *[(F.col("id").cast("string") if f.name == "event_id" else F.lit(None)).cast(f.dataType).alias(f.name)
          for f in spec.schema.fields]
    )  # fmt: skip
    writing = threading.Event()
    writing.set()
    commits = 0

    def commit_back_to_back() -> None:
        nonlocal commits
        while writing.is_set():
            rows.writeTo(spec.qualified(catalog)).append()
            commits += 1

    writer = threading.Thread(target=commit_back_to_back, name="writer", daemon=True)
    writer.start()
    listings, failures = 0, []
    during = 0
    try:
        kept = int(spec.properties["write.metadata.previous-versions-max"])
        while commits <= kept:  # past the metadata versions the table keeps: every commit now deletes one
            time.sleep(0.5)
        started = commits
        # At least three listings, and as many more as it takes for 30 commits to land beside them (a listing
        # takes a few seconds or less), each once, without the maintenance job's retries.
        while (listings + len(failures) < 3 or commits - started < 30) and listings + len(failures) < 100:
            try:
                remove_orphans(spark, catalog, spec, dt.datetime.now() - dt.timedelta(days=3))
                listings += 1
            except Exception as exc:
                java = getattr(exc, "java_exception", None)
                failures.append(str(java.toString()) if java is not None else repr(exc))
        during = commits - started
    finally:
        writing.clear()
        writer.join(timeout=60)
    print(f"{listings} listings, {len(failures)} failed, beside {during} commits")
    assert failures == []
    assert listings >= 3
    assert during >= 30, "the writer kept committing (and deleting metadata files) through the listings"
