"""Dagster resources: the lakehouse (settings + Spark session) and the Iceberg IO manager.

Gold assets and checks get their frames from the run's :class:`~pipeline.batch.inputs.GoldRun`, which the
``gold_inputs`` resource keeps for the run (one snapshot of each input) and releases when it ends; assets return a
DataFrame, and the IO manager overwrites exactly the run's days of the asset's table, one day or a backfill's
range (recording restatements of the days rebuilt).
"""

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)
from pydantic import PrivateAttr
from pyspark.sql import DataFrame, SparkSession

from pipeline.batch.inputs import GoldRun
from pipeline.batch.outputs import write_gold_days
from pipeline.config import Settings, load_settings
from pipeline.iceberg_io import read_days, read_table
from pipeline.spark_session import build_spark_session
from pipeline.tables import GOLD_TABLES, TableSpec, table_by_identifier


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


class GoldInputsResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The inputs of gold runs: one :class:`~pipeline.batch.inputs.GoldRun` per Dagster run, shared by its assets
    and checks (the in-process executor sets this resource up once per run) and released when the run ends."""

    lake: dg.ResourceDependency[LakehouseResource]
    _runs: dict[tuple[str, dt.date, dt.date], GoldRun] = PrivateAttr(default_factory=dict)

    def run(self, run_id: str, key_range: dg.PartitionKeyRange) -> GoldRun:
        """The inputs of run ``run_id``, which builds the days of ``key_range``."""
        first, last = partition_days(key_range)
        key = (run_id, first, last)
        if key not in self._runs:
            settings = self.lake.settings()
            spark = build_spark_session(settings)
            self._runs[key] = GoldRun(spark, settings.catalog.name, settings.kafka.topic_prefix, first, last)
        return self._runs[key]

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        for run in self._runs.values():
            run.release()
        self._runs.clear()


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


def partition_days(key_range: dg.PartitionKeyRange) -> tuple[dt.date, dt.date]:
    """The first and last day of a run's partitions: one day, or a backfill's range run at once."""
    return partition_day(key_range.start), partition_day(key_range.end)


def partition_range_tags(first: dt.date, last: dt.date) -> dict[str, str]:
    """The run tags that make one run of the gold job build every day of ``first`` .. ``last`` (its assets have
    the single-run backfill policy); the late-events sensor's range requests carry the same."""
    return {ASSET_PARTITION_RANGE_START_TAG: first.isoformat(), ASSET_PARTITION_RANGE_END_TAG: last.isoformat()}


def run_partition_range(tags: Mapping[str, str]) -> dg.PartitionKeyRange | None:
    """The days a run builds, from its tags (one partition, or a range run at once); None for a run of no day,
    such as an unpartitioned asset materialized on its own."""
    if PARTITION_NAME_TAG in tags:
        return dg.PartitionKeyRange(tags[PARTITION_NAME_TAG], tags[PARTITION_NAME_TAG])
    if ASSET_PARTITION_RANGE_START_TAG in tags and ASSET_PARTITION_RANGE_END_TAG in tags:
        return dg.PartitionKeyRange(tags[ASSET_PARTITION_RANGE_START_TAG], tags[ASSET_PARTITION_RANGE_END_TAG])
    return None


class IcebergIOManager(dg.ConfigurableIOManager):  # type: ignore[type-arg]
    """Writes a gold asset's days (``pipeline.batch.outputs.write_gold_days``, which records restatements) and
    loads it back for whoever asks (e.g. ``Definitions.load_asset_value``).

    Assets read their own inputs through ``pipeline.batch.inputs``; reading never creates a table.
    """

    lake: dg.ResourceDependency[LakehouseResource]

    def handle_output(self, context: dg.OutputContext, obj: DataFrame) -> None:
        spec = table_for(context.asset_key)
        catalog = self.lake.catalog()
        first, last = partition_days(context.asset_partition_key_range)
        # The materialization of this run is recorded after this call: the instance knows only earlier builds.
        built = context.step_context.instance.get_materialized_partitions(context.asset_key)
        written = write_gold_days(
            obj,
            catalog,
            spec,
            first,
            last,
            built_before={partition_day(key) for key in built},
            restate=spec in GOLD_TABLES,
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
        if context.has_asset_partitions and spec.date_column:
            return read_days(spark, catalog, spec, *partition_days(context.asset_partition_key_range))
        return read_table(spark, catalog, spec)
