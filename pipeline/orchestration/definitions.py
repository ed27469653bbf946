"""The Dagster code location: Kafka topics -> bronze -> silver (kept current by the stream) -> gold (daily).

Open the UI with ``shoplake ui`` (or ``dagster dev -m pipeline.orchestration.definitions``).
"""

import dagster as dg
from pyspark.sql import DataFrame

from pipeline.batch.gold import daily_sales_summary
from pipeline.config import Settings, load_settings
from pipeline.contracts.events import EventType
from pipeline.orchestration.resources import IcebergIOManager, LakehouseResource, partition_day
from pipeline.tables import BRONZE_EVENTS, SILVER, TableSpec

GOLD_JOB = "gold_daily"


def _key(spec: TableSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.layer.value, spec.name])


def streaming_asset_specs() -> list[dg.AssetSpec]:
    """Assets the streaming job keeps current; Dagster shows them for lineage and reads silver through them."""
    topics = [
        dg.AssetSpec(
            ["kafka", event_type.value],
            group_name="kafka",
            kinds={"kafka"},
            description=f"{event_type.value} topic",
        )
        for event_type in EventType
    ]
    bronze = dg.AssetSpec(
        _key(BRONZE_EVENTS),
        deps=[t.key for t in topics],
        group_name="bronze",
        kinds={"iceberg", "spark"},
        description=BRONZE_EVENTS.description,
    )
    silver = [
        dg.AssetSpec(
            _key(spec),
            deps=[bronze.key],
            group_name="silver",
            kinds={"iceberg", "spark"},
            description=spec.description,
        ).with_io_manager_key("iceberg")
        for spec in SILVER.values()
    ]
    return [*topics, bronze, *silver]


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """Everything Dagster runs, for the given settings (default: file and environment)."""
    settings = settings or load_settings()
    daily = dg.DailyPartitionsDefinition(start_date=settings.partitions_start, timezone="UTC")

    @dg.asset(
        key=["gold", "daily_sales_summary"],
        partitions_def=daily,
        ins={
            "purchases_df": dg.AssetIn(_key(SILVER[EventType.PURCHASE])),
            "page_views_df": dg.AssetIn(_key(SILVER[EventType.PAGE_VIEW])),
        },
        io_manager_key="iceberg",
        group_name="gold",
        kinds={"iceberg", "spark"},
    )
    def daily_sales(context: dg.AssetExecutionContext, purchases_df: DataFrame, page_views_df: DataFrame) -> DataFrame:
        """Orders, revenue after discounts, customers, page views and visitors of one day."""
        return daily_sales_summary(purchases_df, page_views_df, partition_day(context.partition_key))

    gold_job = dg.define_asset_job(GOLD_JOB, selection=dg.AssetSelection.groups("gold"))
    lake = LakehouseResource.from_settings(settings)
    return dg.Definitions(
        assets=[*streaming_asset_specs(), daily_sales],
        jobs=[gold_job],
        schedules=[dg.build_schedule_from_partitioned_job(gold_job, hour_of_day=1, minute_of_hour=0)],
        resources={"lake": lake, "iceberg": IcebergIOManager(lake=lake)},
    )


defs = build_definitions()
