"""Creating the registered tables: what the registry declares is what the catalog holds. Replacing days of a
table, and what its metadata says about them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.catalog import pyiceberg_catalog
from pipeline.iceberg_io import (
    create_table_ddl,
    current_snapshot_id,
    days_with_rows,
    ensure_tables,
    holds_rows_since,
    overwrite_day_range,
    read_table,
)
from pipeline.tables import (
    ALL_TABLES,
    GOLD_DAILY_CATEGORY_SALES,
    GOLD_DAILY_SALES_SUMMARY,
    QUARANTINE_EVENTS,
)

# The registry's transform names as PyIceberg spells them.
PYICEBERG_TRANSFORM = {"identity": "identity", "days": "day"}


def test_every_registered_table_is_created_with_its_columns_partitioning_and_properties_and_no_snapshot(
    spark, lake
) -> None:
    catalog = lake.catalog.name
    ensure_tables(spark, catalog, ALL_TABLES)
    ensure_tables(spark, catalog, ALL_TABLES)  # a second call finds them and changes nothing
    iceberg = pyiceberg_catalog(lake)
    for spec in ALL_TABLES:
        assert spark.table(spec.qualified(catalog)).schema == spec.schema, spec.identifier
        table = iceberg.load_table(spec.identifier)
        partitioning = [(str(f.transform), table.schema().find_column_name(f.source_id)) for f in table.spec().fields]
        declared = [(PYICEBERG_TRANSFORM[p.transform], p.column) for p in spec.partition_by]
        assert partitioning == declared, spec.identifier
        properties = dict(spec.properties)
        # The format version is the table's own field, not one of its properties.
        assert table.format_version == int(properties.pop("format-version")), spec.identifier
        assert properties.items() <= table.properties.items(), spec.identifier
        assert table.current_snapshot() is None, f"{spec.identifier} was created with a snapshot"
        assert spark.table(spec.qualified(catalog)).count() == 0


def test_a_table_created_before_its_spec_gained_columns_gains_them_and_keeps_its_rows(spark, lake) -> None:
    catalog = lake.catalog.name
    spec = dataclasses.replace(GOLD_DAILY_CATEGORY_SALES, name="category_sales_upgraded")
    older = dataclasses.replace(spec, schema=T.StructType(spec.schema.fields[:-2]))  # its last two columns are new
    ensure_tables(spark, catalog, [older])
    row = spark.createDataFrame([(dt.date(2026, 11, 2), "books", 3)], "event_date date, category string, orders long")
    row.writeTo(older.qualified(catalog)).append()

    ensure_tables(spark, catalog, [spec])
    ensure_tables(spark, catalog, [spec])  # nothing left to add

    assert spark.table(spec.qualified(catalog)).schema == spec.schema
    added = [f.name for f in spec.schema.fields[-2:]]
    got = spark.table(spec.qualified(catalog)).select("orders", *added).collect()
    assert [tuple(r) for r in got] == [(3, None, None)]


@pytest.mark.parametrize(
    "change",
    [
        {"name": "daily`; DROP TABLE x"},
        {"properties": {"write.format.default": "parquet' , 'x' = 'y"}},
    ],
)
def test_a_table_name_or_property_that_is_not_plain_is_refused_not_escaped(change: dict) -> None:
    with pytest.raises(ValueError, match="not a plain"):
        create_table_ddl("shoplake", dataclasses.replace(GOLD_DAILY_SALES_SUMMARY, **change))


def test_replacing_days_reports_the_rows_written_and_the_metadata_tells_which_days_hold_rows_in_each_snapshot(
    spark, lake
) -> None:
    catalog, spec = lake.catalog.name, GOLD_DAILY_CATEGORY_SALES
    ensure_tables(spark, catalog, [spec])
    assert current_snapshot_id(spark, catalog, spec) is None
    d1, d2, d3 = (dt.date(2026, 11, 2) + dt.timedelta(days=i) for i in range(3))

    def rows(*days: dt.date):
        return spark.createDataFrame([(d, "books", 1, 2, Decimal("3.00")) for d in days], spec.schema)

    first = overwrite_day_range(rows(d1, d3, d3), catalog, spec, d1, d3, head=None)
    assert first.rows == 3
    assert first.snapshot_id == current_snapshot_id(spark, catalog, spec) is not None
    assert days_with_rows(spark, catalog, spec, d1, d3, first.snapshot_id) == {d1, d3}
    assert days_with_rows(spark, catalog, spec, d2, d3, first.snapshot_id) == {d3}

    # d1 is emptied and d2 written; d3 lies outside the replaced range and keeps its rows.
    second = overwrite_day_range(rows(d2), catalog, spec, d1, d2, head=first.snapshot_id)
    assert second.rows == 1
    assert second.snapshot_id == current_snapshot_id(spark, catalog, spec) != first.snapshot_id
    assert days_with_rows(spark, catalog, spec, d1, d3, second.snapshot_id) == {d2, d3}
    assert days_with_rows(spark, catalog, spec, d1, d3, first.snapshot_id) == {d1, d3}, "an older snapshot"
    assert sorted(r.event_date for r in read_table(spark, catalog, spec).collect()) == [d2, d3, d3]

    unpartitioned = dataclasses.replace(spec, partition_by=())
    with pytest.raises(ValueError, match="not partitioned by the day"):
        days_with_rows(spark, catalog, unpartitioned, d1, d3, second.snapshot_id)


def _rows_of(spark, spec, **values: list):
    """Rows of ``spec``'s schema: the given columns' values, every other column null."""
    frame = spark.createDataFrame(list(zip(*values.values(), strict=True)), list(values))
    return frame.select(
        *[
            (frame[f.name] if f.name in values else F.lit(None)).cast(f.dataType).alias(f.name)
            for f in spec.schema.fields
        ]
    )


def test_a_table_with_another_partition_before_its_day_tells_its_days_and_whether_it_holds_rows_since_a_day(
    spark, lake
) -> None:
    """Quarantine is partitioned by Kafka day, then event day: the event day is its second partition field."""
    catalog = lake.catalog.name
    spec = dataclasses.replace(QUARANTINE_EVENTS, name="quarantine_by_day", date_column="event_date")
    ensure_tables(spark, catalog, [spec])
    d1, d2, d3 = (dt.date(2026, 11, 2) + dt.timedelta(days=i) for i in range(3))
    assert not holds_rows_since(spark, catalog, spec, d1), "a never written table holds nothing"
    assert days_with_rows(spark, catalog, spec, d1, d3) == set()

    kafka_times = [dt.datetime(2026, 11, 30, 12, 0), dt.datetime(2026, 12, 1, 12, 0), dt.datetime(2026, 12, 1, 13, 0)]
    rows = _rows_of(spark, spec, kafka_offset=[1, 2, 3], kafka_timestamp=kafka_times, event_date=[d1, d2, d2])
    rows.writeTo(spec.qualified(catalog)).append()
    assert days_with_rows(spark, catalog, spec, d1, d3) == {d1, d2}
    assert days_with_rows(spark, catalog, spec, d2, d3) == {d2}
    assert holds_rows_since(spark, catalog, spec, d2)
    assert not holds_rows_since(spark, catalog, spec, d3)
