"""Creating the registered tables: what the registry declares is what the catalog holds."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.catalog import pyiceberg_catalog
from pipeline.iceberg_io import create_table_ddl, ensure_tables
from pipeline.tables import ALL_TABLES, GOLD_DAILY_SALES_SUMMARY

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
