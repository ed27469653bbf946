"""Dagster resources: the lakehouse (settings + Spark session) and the Iceberg IO manager.

Gold assets read their inputs with the lakehouse resource and return a DataFrame; the IO manager overwrites
exactly that day's partition of the asset's table (recording restatements of a rebuilt day).
"""

import datetime as dt
from decimal import Decimal
from typing import Any

import dagster as dg
from pyspark.sql import DataFrame, SparkSession

from pipeline.batch.outputs import write_gold_day
from pipeline.config import Settings, load_settings
from pipeline.iceberg_io import read_day, read_table
from pipeline.spark_session import build_spark_session
from pipeline.tables import TableSpec, table_by_identifier


class LakehouseResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Where the lakehouse lives. Empty fields fall back to ``pipeline.config.Settings`` (file, environment).

    Object-store credentials and the catalog database's password are not fields: they come from the environment
    through ``Settings``, so they never show in Dagster's UI or run records.
    """

    home: str = ""
    catalog_name: str = ""
    catalog_type: str = ""
    catalog_uri: str = ""
    jdbc_user: str = ""
    warehouse: str = ""
    s3_endpoint: str = ""
    spark_master: str = ""
    jars_dir: str = ""
    topic_prefix: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> "LakehouseResource":
        return cls(
            home=str(settings.home),
            catalog_name=settings.catalog.name,
            catalog_type=settings.catalog.type.value,
            catalog_uri=settings.catalog_uri,
            jdbc_user=settings.catalog.jdbc_user,
            warehouse=settings.warehouse_uri,
            s3_endpoint=settings.catalog.s3_endpoint,
            spark_master=settings.spark.master,
            jars_dir=str(settings.spark_jars_dir),
            topic_prefix=settings.kafka.topic_prefix,
        )

    def settings(self) -> Settings:
        overrides: dict[str, Any] = {"home": self.home} if self.home else {}
        catalog = {
            key: value
            for key, value in {
                "name": self.catalog_name,
                "type": self.catalog_type,
                "uri": self.catalog_uri,
                "jdbc_user": self.jdbc_user,
                "warehouse": self.warehouse,
                "s3_endpoint": self.s3_endpoint,
            }.items()
            if value
        }
        spark = {key: value for key, value in {"master": self.spark_master, "jars_dir": self.jars_dir}.items() if value}
        kafka = {"topic_prefix": self.topic_prefix} if self.topic_prefix else {}
        # Nested keyword values are merged over the file and environment, field by field.
        return load_settings(**overrides, catalog=catalog, spark=spark, kafka=kafka)

    def spark(self) -> SparkSession:
        return build_spark_session(self.settings())

    def catalog(self) -> str:
        """The Spark catalog name the lakehouse's tables are registered under."""
        return self.settings().catalog.name


def asset_key(spec: TableSpec) -> dg.AssetKey:
    """Table ``silver.purchases`` is asset ``["silver", "purchases"]``."""
    return dg.AssetKey([spec.layer.value, spec.name])


def table_for(key: dg.AssetKey) -> TableSpec:
    """Asset ``["silver", "purchases"]`` is table ``silver.purchases``."""
    return table_by_identifier(".".join(key.path))


def _markdown_pairs(pairs: list[tuple[str, Any]]) -> str:
    """(column, value) pairs as a two-column Markdown table, one row per column: fits any width."""
    lines = ["| column | value |", "| --- | --- |"]
    lines += [f"| {name} | {str(value).replace('|', chr(92) + '|')} |" for name, value in pairs]
    return "\n".join(lines)


def partition_day(partition_key: str) -> dt.date:
    return dt.date.fromisoformat(partition_key)


class IcebergIOManager(dg.ConfigurableIOManager):  # type: ignore[type-arg]
    """Writes a gold asset's day (``pipeline.batch.outputs.write_gold_day``, which records restatements) and
    loads it back for whoever asks (e.g. ``Definitions.load_asset_value``).

    Assets read their own inputs through ``pipeline.batch.inputs``; reading never creates a table.
    """

    lake: dg.ResourceDependency[LakehouseResource]

    def handle_output(self, context: dg.OutputContext, obj: DataFrame) -> None:
        spec = table_for(context.asset_key)
        catalog = self.lake.catalog()
        # The materialization of this run is recorded after this call: the instance knows only earlier builds.
        built = context.step_context.instance.get_materialized_partitions(context.asset_key)
        written = write_gold_day(
            obj, catalog, spec, partition_day(context.partition_key), built_before=context.partition_key in built
        )
        metadata: dict[str, Any] = {
            "rows": written.rows,
            "table": spec.qualified(catalog),
            "snapshot_id": str(written.snapshot_id),
            "restated_metrics": written.restated_metrics,
        }
        # Money as a float: the UI plots numbers across partitions; the table holds the exact decimal.
        metadata |= {
            name: float(value) if isinstance(value, Decimal) else value for name, value in written.headline.items()
        }
        if written.preview:
            metadata["preview"] = dg.MetadataValue.md(_markdown_pairs(written.preview))
        context.add_output_metadata(metadata)

    def load_input(self, context: dg.InputContext) -> DataFrame:
        assert context.upstream_output is not None
        spec = table_for(context.upstream_output.asset_key)
        spark = self.lake.spark()
        catalog = self.lake.catalog()
        if context.has_partition_key and spec.date_column:
            return read_day(spark, catalog, spec, partition_day(context.partition_key))
        return read_table(spark, catalog, spec)
