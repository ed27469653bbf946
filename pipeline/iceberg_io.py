"""Iceberg tables through Spark: creating them, reading them (whole, by day, as of a snapshot), probing their
metadata without a Spark job, appending, overwriting days, merging.

Every write of the pipeline goes through this module, so that table naming, partitioning and row counting live
in one place; the stream's commit protocol on top of its appends is :mod:`pipeline.streaming.commit`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.tables import PartitionField, TableSpec

log = logging.getLogger(__name__)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PROPERTY = re.compile(r"^[A-Za-z0-9_.\-]+$")
_EPOCH = dt.date(1970, 1, 1)


def _identifier(name: str) -> str:
    """A registry name as a quoted SQL identifier; anything but a plain name is refused, never escaped."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return f"`{name}`"


def _property(value: str) -> str:
    if not _PROPERTY.match(value):
        raise ValueError(f"not a plain table property: {value!r}")
    return f"'{value}'"


def _table_name(catalog: str, spec: TableSpec) -> str:
    return ".".join(_identifier(part) for part in (catalog, spec.layer.value, spec.name))


def _column_list(fields: list[T.StructField]) -> str:
    return ", ".join(f"{_identifier(f.name)} {f.dataType.simpleString()}" for f in fields)


def create_table_ddl(catalog: str, spec: TableSpec) -> str:
    """The ``CREATE TABLE IF NOT EXISTS`` statement of a registered table: its columns (all nullable), partition
    transforms and properties, every name checked to be a plain identifier from the registry."""
    name = _table_name(catalog, spec)
    columns = _column_list(spec.schema.fields)
    transforms = [
        f"days({_identifier(p.column)})" if p.transform == "days" else _identifier(p.column) for p in spec.partition_by
    ]
    partitioned = f" PARTITIONED BY ({', '.join(transforms)})" if transforms else ""
    properties = ", ".join(f"{_property(k)} = {_property(v)}" for k, v in spec.properties.items())
    with_properties = f" TBLPROPERTIES ({properties})" if properties else ""
    return f"CREATE TABLE IF NOT EXISTS {name} ({columns}) USING iceberg{partitioned}{with_properties}"


def ensure_table(spark: SparkSession, catalog: str, spec: TableSpec) -> None:
    """Create the table (and its namespace) when it does not exist yet; an existing table gains the columns its
    spec has added since it was created (nullable: its older rows hold null there), and is otherwise left as is.

    One metadata commit and no Spark job: the table starts without a snapshot, as a never written table (an
    empty ``CREATE TABLE AS SELECT`` ran two jobs and committed an empty snapshot, about 0.7 s per table). Columns
    are nullable, as a table created from a DataFrame's schema is.
    """
    if spark.catalog.tableExists(spec.qualified(catalog)):
        held = set(spark.table(spec.qualified(catalog)).columns)
        missing = [f for f in spec.schema.fields if f.name not in held]
        if missing:
            spark.sql(add_columns_ddl(catalog, spec, missing))
        return
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {_identifier(catalog)}.{_identifier(spec.layer.value)}")
    spark.sql(create_table_ddl(catalog, spec))  # IF NOT EXISTS: another process may have created it meanwhile


def add_columns_ddl(catalog: str, spec: TableSpec, fields: list[T.StructField]) -> str:
    """The ``ALTER TABLE ... ADD COLUMNS`` statement adding ``fields`` (registry names, checked) to the table."""
    return f"ALTER TABLE {_table_name(catalog, spec)} ADD COLUMNS ({_column_list(fields)})"


def ensure_tables(spark: SparkSession, catalog: str, specs: tuple[TableSpec, ...] | list[TableSpec]) -> None:
    for spec in specs:
        ensure_table(spark, catalog, spec)


def read_table(spark: SparkSession, catalog: str, spec: TableSpec, snapshot_id: int | None = None) -> DataFrame:
    if snapshot_id is None:
        return spark.table(spec.qualified(catalog))
    return spark.read.option("versionAsOf", snapshot_id).table(spec.qualified(catalog))


def read_day(
    spark: SparkSession, catalog: str, spec: TableSpec, day: dt.date, snapshot_id: int | None = None
) -> DataFrame:
    """Rows of one day of a table partitioned by its date column (the date is bound, not interpolated),
    optionally as of an older snapshot."""
    if spec.date_column is None:
        raise ValueError(f"{spec.identifier} has no date column to select a day by")
    table = read_table(spark, catalog, spec, snapshot_id)
    return table.filter(F.col(spec.date_column) == F.lit(day))


def read_days(
    spark: SparkSession, catalog: str, spec: TableSpec, first: dt.date, last: dt.date, snapshot_id: int | None = None
) -> DataFrame:
    """Rows of the days ``first`` .. ``last`` (inclusive) of a table partitioned by its date column."""
    if spec.date_column is None:
        raise ValueError(f"{spec.identifier} has no date column to select days by")
    if first == last:
        return read_day(spark, catalog, spec, first, snapshot_id)
    table = read_table(spark, catalog, spec, snapshot_id)
    return table.filter(F.col(spec.date_column).between(F.lit(first), F.lit(last)))


def _iceberg_table(spark: SparkSession, catalog: str, spec: TableSpec) -> Any:
    """The table as Iceberg's Java API sees it, loaded through the session's catalog: its metadata file is read,
    no Spark job runs (a query on a metadata table such as ``refs`` costs a job and its planning, 0.2-0.4 s)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    return jvm.org.apache.iceberg.spark.Spark3Util.loadIcebergTable(spark._jsparkSession, spec.qualified(catalog))


def table_location(spark: SparkSession, catalog: str, spec: TableSpec) -> str:
    """Where the table's files live (``file:/...``, ``s3://...``), from its metadata (no Spark job)."""
    return str(_iceberg_table(spark, catalog, spec).location())


def current_snapshot_id(spark: SparkSession, catalog: str, spec: TableSpec) -> int | None:
    """The table's current snapshot id: the head of its ``main`` branch (None for a never written table)."""
    snapshot = _iceberg_table(spark, catalog, spec).currentSnapshot()
    return int(snapshot.snapshotId()) if snapshot is not None else None


def has_snapshot(spark: SparkSession, catalog: str, spec: TableSpec, snapshot_id: int) -> bool:
    """Whether the table still holds snapshot ``snapshot_id`` (expiry removes old ones)."""
    return _iceberg_table(spark, catalog, spec).snapshot(snapshot_id) is not None


def _day_partition(spec: TableSpec) -> int:
    """The position, among the table's partition fields, of the identity partition on its date column."""
    if spec.date_column is None:
        raise ValueError(f"{spec.identifier} has no date column to select days by")
    try:
        return spec.partition_by.index(PartitionField("identity", spec.date_column))
    except ValueError:
        raise ValueError(f"{spec.identifier} is not partitioned by the day in {spec.date_column}") from None


def _files_by_day(
    spark: SparkSession, catalog: str, spec: TableSpec, first: dt.date, last: dt.date | None, snapshot_id: int | None
) -> Generator[tuple[dt.date, int, int]]:
    """(day, records, bytes) of every data file Iceberg plans for the days ``first`` .. ``last`` (None: no upper bound)
    in snapshot ``snapshot_id`` (None: the current one; a never written table has no file). Manifests are read,
    no data file is, and no Spark job runs."""
    position = _day_partition(spec)
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    expressions = jvm.org.apache.iceberg.expressions.Expressions
    column = spec.date_column
    in_range = expressions.greaterThanOrEqual(column, first.isoformat())
    if last is not None:
        in_range = getattr(expressions, "and")(in_range, expressions.lessThanOrEqual(column, last.isoformat()))
    table = _iceberg_table(spark, catalog, spec)
    if snapshot_id is None and table.currentSnapshot() is None:
        return
    scan = table.newScan() if snapshot_id is None else table.newScan().useSnapshot(snapshot_id)
    value = jvm.java.lang.Class.forName("java.lang.Object")
    tasks = scan.filter(in_range).planFiles()
    try:
        files = tasks.iterator()
        while files.hasNext():
            data_file = files.next().file()
            # An identity partition on a date holds days since 1970-01-01.
            day = _EPOCH + dt.timedelta(days=data_file.partition().get(position, value))
            yield day, data_file.recordCount(), data_file.fileSizeInBytes()
    finally:
        tasks.close()


def days_with_rows(
    spark: SparkSession,
    catalog: str,
    spec: TableSpec,
    first: dt.date,
    last: dt.date,
    snapshot_id: int | None = None,
) -> set[dt.date]:
    """The days ``first`` .. ``last`` that hold rows in snapshot ``snapshot_id`` (None: the current one) of a
    table partitioned by the day in its date column, from the data files Iceberg plans for them."""
    return {day for day, records, _ in _files_by_day(spark, catalog, spec, first, last, snapshot_id) if records > 0}


def holds_rows_since(spark: SparkSession, catalog: str, spec: TableSpec, first: dt.date) -> bool:
    """Whether the table's current snapshot holds rows on day ``first`` or later (planning stops at the first
    data file that does)."""
    with contextlib.closing(_files_by_day(spark, catalog, spec, first, None, None)) as files:
        return any(records > 0 for _, records, _ in files)


def planned_bytes(spark: SparkSession, catalog: str, spec: TableSpec, first: dt.date, last: dt.date) -> int:
    """The size of the data files a read of the days ``first`` .. ``last`` of the table plans (0 for a table never
    written), from its manifests: no data file is read."""
    return sum(size for _, _, size in _files_by_day(spark, catalog, spec, first, last, None))


def append_rows(df: DataFrame, catalog: str, spec: TableSpec) -> int:
    """Append rows (not a streaming batch: no once-only bookkeeping); returns how many."""
    rows = df.count()
    if rows:
        df.select(*spec.schema.fieldNames()).writeTo(spec.qualified(catalog)).append()
    return rows


def replace_rows(df: DataFrame, catalog: str, spec: TableSpec) -> int:
    """Replace every row of the table with ``df``'s, in one commit (readers see the old rows or the new, never a
    mix); returns how many."""
    df = df.select(*spec.schema.fieldNames()).localCheckpoint()
    df.writeTo(spec.qualified(catalog)).overwrite(F.lit(True))
    return df.count()


def overwrite_days(df: DataFrame, catalog: str, spec: TableSpec) -> int:
    """Replace the partitions present in ``df`` (other days untouched); returns the rows written."""
    rows = df.count()
    df.select(*spec.schema.fieldNames()).writeTo(spec.qualified(catalog)).overwritePartitions()
    return rows


def _require_day_partitions(spec: TableSpec) -> str:
    """The table's date column, when the table is partitioned by exactly that day (else ValueError)."""
    if spec.date_column is None:
        raise ValueError(f"{spec.identifier} has no date column to select days by")
    if spec.partition_by != (PartitionField("identity", spec.date_column),):
        raise ValueError(f"{spec.identifier} is not partitioned by the day in {spec.date_column}")
    return spec.date_column


@dataclass(frozen=True)
class DayRangeWrite:
    """What :func:`overwrite_day_range` committed: the table's head snapshot after it, and the rows it wrote."""

    snapshot_id: int | None
    rows: int


def overwrite_day_range(
    df: DataFrame, catalog: str, spec: TableSpec, first: dt.date, last: dt.date, *, head: int | None
) -> DayRangeWrite:
    """Replace the days ``first`` .. ``last`` of a table partitioned by its date column with ``df`` (one commit);
    a day of the range without rows in ``df`` ends up empty, days outside it are untouched.

    ``head`` is the table's current snapshot before the write (:func:`current_snapshot_id`; the caller has it).
    ``df`` is computed once, by the write: the rows written come from the commit's snapshot summary, not from
    counting the frame first (which would run its whole plan twice). The summary's ``added-records`` are the rows
    written because the overwrite replaces whole day partitions and keeps none of their old rows.
    """
    date_column = _require_day_partitions(spec)
    in_range = F.col(date_column).between(F.lit(first), F.lit(last))
    df.select(*spec.schema.fieldNames()).writeTo(spec.qualified(catalog)).overwrite(in_range)
    after = _iceberg_table(df.sparkSession, catalog, spec).currentSnapshot()
    if after is None:
        return DayRangeWrite(snapshot_id=None, rows=0)
    snapshot_id = int(after.snapshotId())
    added = after.summary().get("added-records")
    committed = snapshot_id != head and added is not None
    return DayRangeWrite(snapshot_id=snapshot_id, rows=int(added) if committed else 0)


def merge_into(spark: SparkSession, sql: str, args: dict[str, object], table: TableSpec, attempts: int = 4) -> None:
    """Run a MERGE statement (values bound as ``args``) into ``table``.

    A merge that loses a race with a concurrent commit on the same files (table maintenance compacting them) is
    run again: callers make their merges idempotent, so a retry merges exactly what is still missing.
    """
    for attempt in range(1, attempts + 1):
        try:
            spark.sql(sql, args=args)
            return
        except Exception as exc:
            conflict = any(word in str(exc) for word in ("ValidationException", "CommitFailedException", "conflicting"))
            if not conflict or attempt == attempts:
                raise
            log.warning("merge into %s lost a race with a concurrent commit (attempt %d): retrying", table, attempt)
            time.sleep(0.5 * attempt)


def _metadata_json(spark: SparkSession, catalog: str, spec: TableSpec) -> str:
    """The table's current metadata file as Iceberg's Java API loaded it, as JSON: one call, no Spark job."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    current = _iceberg_table(spark, catalog, spec).operations().current()
    return str(jvm.org.apache.iceberg.TableMetadataParser.toJson(current))


def table_metadata(spark: SparkSession, catalog: str, spec: TableSpec) -> dict[str, Any]:
    """The table's current metadata file, parsed."""
    return dict(json.loads(_metadata_json(spark, catalog, spec)))


def metadata_file_bytes(spark: SparkSession, catalog: str, spec: TableSpec) -> int:
    """Bytes of the table's current metadata file (uncompressed JSON): what every commit to it writes again."""
    return len(_metadata_json(spark, catalog, spec).encode())


def snapshot_summaries(spark: SparkSession, catalog: str, spec: TableSpec) -> list[dict[str, str]]:
    """The summary of every snapshot the table's metadata holds (the rows of its ``snapshots`` metadata table),
    oldest first."""
    return [snapshot.get("summary", {}) for snapshot in table_metadata(spark, catalog, spec).get("snapshots", [])]
