"""Which maintenance failures are races with the stream's own clean-up (run again) and which are errors."""

from __future__ import annotations

import pytest

from pipeline.maintenance import lost_a_race, retrying_races

# Shaped as Spark reports them: the Java exception's class and message inside the Python error's text.
RACES = [
    # Hadoop's local listing asks ``ls`` for a file's permissions after the stream's hygiene deleted it.
    "An error occurred while calling o1234.sql.\n: java.lang.RuntimeException: Error while running command to get "
    "file permissions : ExitCodeException exitCode=2: ls: cannot access '/lake/silver/page_views/metadata/"
    "00003-5d0c.metadata.json': No such file or directory",
    # A snapshot's manifest list read after another expiry removed it.
    "org.apache.iceberg.exceptions.NotFoundException: Failed to open input stream for file: "
    "/lake/silver/page_views/metadata/snap-81-1-ab.avro",
    "java.io.FileNotFoundException: File /lake/bronze/events/metadata/9f-m0.avro does not exist",
    # A commit against a snapshot the stream replaced meanwhile.
    "org.apache.iceberg.exceptions.CommitFailedException: Cannot commit: stale table metadata",
    "org.apache.iceberg.exceptions.ValidationException: Found conflicting files that can contain records matching",
]
ERRORS = [
    "[TABLE_OR_VIEW_NOT_FOUND] The table or view `lake`.`silver`.`page_views` cannot be found.",
    "org.sqlite.SQLiteException: [SQLITE_CANTOPEN] Unable to open the database file",
    "java.lang.OutOfMemoryError: Java heap space",
]


@pytest.mark.parametrize("message", RACES)
def test_a_step_that_read_or_committed_against_what_the_stream_just_replaced_lost_a_race(message: str) -> None:
    assert lost_a_race(RuntimeError(message))


@pytest.mark.parametrize("message", ERRORS)
def test_other_failures_are_errors_and_are_not_run_again(message: str) -> None:
    assert not lost_a_race(RuntimeError(message))


class _Step:
    """A maintenance step that fails with each of ``failures`` in turn, then returns how often it ran."""

    def __init__(self, *failures: str) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        if self.failures:
            raise RuntimeError(self.failures.pop(0))
        return self.calls


def test_a_step_that_loses_races_runs_again_until_it_completes() -> None:
    step = _Step(RACES[0], RACES[1], RACES[3])
    assert retrying_races("orphan removal", "silver.page_views", step, attempts=4, backoff_s=0) == 4


def test_an_error_fails_the_step_at_once_and_a_race_lost_every_time_fails_it_after_the_last_attempt() -> None:
    error = _Step(RACES[0], ERRORS[0])
    with pytest.raises(RuntimeError, match="TABLE_OR_VIEW_NOT_FOUND"):
        retrying_races("snapshot expiry", "silver.page_views", error, attempts=4, backoff_s=0)
    assert error.calls == 2
    races = _Step(*RACES[:4])
    with pytest.raises(RuntimeError, match="FileNotFoundException"):
        retrying_races("snapshot expiry", "silver.page_views", races, attempts=3, backoff_s=0)
    assert races.calls == 3


def test_orphans_older_than_the_cutoff_go_and_newer_files_and_the_tables_own_stay(spark, lake) -> None:
    import datetime as dt
    import os
    import time

    from pipeline.catalog import pyiceberg_catalog
    from pipeline.contracts.events import EventType
    from pipeline.iceberg_io import ensure_tables
    from pipeline.maintenance import remove_orphans
    from pipeline.tables import SILVER
    from tests.unit.test_iceberg_io import _rows_of

    catalog = lake.catalog.name
    spec = SILVER[EventType.PAGE_VIEW]
    ensure_tables(spark, catalog, [spec])
    _rows_of(spark, spec, event_id=["a", "b"]).writeTo(spec.qualified(catalog)).append()
    location = pyiceberg_catalog(lake).load_table(spec.identifier).location()
    data = os.path.join(location.removeprefix("file:"), "data")
    old, new = os.path.join(data, "left-by-a-failed-write.parquet"), os.path.join(data, "being-written.parquet")
    for path in (old, new):
        with open(path, "wb") as out:
            out.write(b"not referenced by any snapshot")
    four_days_ago = time.time() - 4 * 86400
    os.utime(old, (four_days_ago, four_days_ago))

    assert remove_orphans(spark, catalog, spec, dt.datetime.now() - dt.timedelta(days=3)) == 1
    assert not os.path.exists(old)
    assert os.path.exists(new)
    assert sorted(r.event_id for r in spark.table(spec.qualified(catalog)).collect()) == ["a", "b"]


def test_compaction_merges_the_files_under_the_floor_and_leaves_a_file_at_or_over_it_alone(spark, lake) -> None:
    """A day's compacted file is not rewritten again at every round while the stream keeps adding to the day."""
    import uuid

    from pipeline.contracts.events import EventType
    from pipeline.iceberg_io import ensure_tables
    from pipeline.maintenance import maintain
    from pipeline.tables import SILVER
    from tests.unit.test_iceberg_io import _rows_of

    catalog = lake.catalog.name
    spec = SILVER[EventType.PAGE_VIEW]
    ensure_tables(spark, catalog, [spec])
    name = spec.qualified(catalog)
    _rows_of(spark, spec, event_id=[uuid.uuid4().hex for _ in range(3000)]).coalesce(1).writeTo(name).append()
    [compacted] = spark.table(f"{name}.files").select("file_path", "file_size_in_bytes").collect()
    for batch in range(3):  # the stream's small appends since
        _rows_of(spark, spec, event_id=[f"{batch}-a", f"{batch}-b"]).coalesce(1).writeTo(name).append()

    result = maintain(spark, catalog, spec, orphans=False, compacted_file_bytes=compacted["file_size_in_bytes"])

    assert result.rewritten_files == 3
    files = [r["file_path"] for r in spark.table(f"{name}.files").collect()]
    assert len(files) == 2
    assert compacted["file_path"] in files
    assert spark.table(name).count() == 3006


def test_maintenance_keeps_its_priority_when_spark_already_runs_in_its_process(spark, caplog) -> None:
    import logging
    import os

    from pipeline.maintenance import lower_priority

    before = os.nice(0)
    with caplog.at_level(logging.WARNING, logger="pipeline.maintenance"):
        lower_priority(19)
    assert os.nice(0) == before
    assert "Spark already runs in this process" in caplog.text


def test_maintenance_lowers_its_priority_before_it_starts_spark() -> None:
    import os
    import subprocess
    import sys

    lowered = "lower_priority(os.nice(0) + 5); print(os.nice(0))"
    code = f"import os; from pipeline.maintenance import lower_priority; {lowered}"
    start = os.nice(0)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(done.stdout) == min(start + 5, 19)
