"""Dagster resources: the lakehouse (settings + Spark session) and the Iceberg IO manager.

The IO manager owns every gold read and write: assets receive silver DataFrames for their day and return a
DataFrame; the IO manager overwrites exactly that day's partition of the asset's table.
"""

import datetime as dt
from typing import Any

import dagster as dg
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.batch.gold import restatements
from pipeline.config import Settings, load_settings
from pipeline.iceberg_io import append_rows, current_snapshot_id, ensure_table, overwrite_days, read_day, read_table
from pipeline.spark_session import build_spark_session
from pipeline.tables import RESTATEMENTS, TableSpec, table_by_identifier


class LakehouseResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Where the lakehouse lives. Empty fields fall back to ``pipeline.config.Settings`` (file, environment).

    Object-store credentials are not fields: they come from the environment through ``Settings``, so they never
    show in Dagster's UI or run records.
    """

    home: str = ""
    catalog_name: str = ""
    catalog_uri: str = ""
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
            catalog_uri=settings.catalog_uri,
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
                "uri": self.catalog_uri,
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


def table_for(asset_key: dg.AssetKey) -> TableSpec:
    """Asset ``["silver", "purchases"]`` is table ``silver.purchases``."""
    return table_by_identifier(".".join(asset_key.path))


def partition_day(partition_key: str) -> dt.date:
    return dt.date.fromisoformat(partition_key)


class IcebergIOManager(dg.ConfigurableIOManager):  # type: ignore[type-arg]
    """Reads upstream tables (one day of them for a daily run) and overwrites the asset's day partition.

    When the day was built before, the rows that change are recorded in ``gold.restatements`` (metric, old and
    new value, old and new snapshot id); the old version stays readable by Iceberg time travel.
    """

    lake: dg.ResourceDependency[LakehouseResource]

    def handle_output(self, context: dg.OutputContext, obj: DataFrame) -> None:
        spec = table_for(context.asset_key)
        catalog = self.lake.settings().catalog.name
        spark = obj.sparkSession
        ensure_table(spark, catalog, spec)
        before = current_snapshot_id(spark, catalog, spec)
        day = partition_day(context.partition_key) if context.has_partition_key else None
        rebuilt = before is not None and day is not None and not read_day(spark, catalog, spec, day).isEmpty()
        rows = overwrite_days(obj, catalog, spec)
        after = current_snapshot_id(spark, catalog, spec)
        restated = 0
        if rebuilt:
            assert day is not None
            assert before is not None
            old = read_day(spark, catalog, spec, day, snapshot_id=before)
            new = read_day(spark, catalog, spec, day, snapshot_id=after)
            changes = restatements(old, new, spec.key_columns, spec.identifier).withColumns(
                {
                    "old_snapshot_id": F.lit(before),
                    "new_snapshot_id": F.lit(after),
                    "restated_at": F.current_timestamp(),
                }
            )
            ensure_table(spark, catalog, RESTATEMENTS)
            restated = append_rows(changes, catalog, RESTATEMENTS)
        context.add_output_metadata(
            {"rows": rows, "table": spec.qualified(catalog), "snapshot_id": str(after), "restated_metrics": restated}
        )

    def load_input(self, context: dg.InputContext) -> DataFrame:
        assert context.upstream_output is not None
        spec = table_for(context.upstream_output.asset_key)
        spark = self.lake.spark()
        catalog = self.lake.settings().catalog.name
        ensure_table(spark, catalog, spec)
        if context.has_partition_key and spec.date_column:
            return read_day(spark, catalog, spec, partition_day(context.partition_key))
        return read_table(spark, catalog, spec)
