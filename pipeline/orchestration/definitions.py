"""The Dagster code location: Kafka topics -> bronze -> silver (kept current by the stream) -> gold (daily).

Open the UI with ``shoplake ui`` (``dagster dev -m pipeline.orchestration.definitions`` underneath).

Gold assets share one daily partitioning. ``gold/data_quality`` is built first and carries the blocking checks
on silver (conservation, one row per event id); every other gold asset depends on it, so a broken silver day
never reaches gold. Other checks warn (anomalies) and always report their counts.
"""

import datetime as dt
from typing import Any

import dagster as dg
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipeline.batch import gold
from pipeline.batch.inputs import data_quality_inputs, silver_until, user_activity_until
from pipeline.config import Settings, load_settings
from pipeline.contracts.events import EventType
from pipeline.iceberg_io import append_rows, ensure_table, ensure_tables, read_day
from pipeline.maintenance import maintain, maintenance_rows
from pipeline.orchestration.resources import IcebergIOManager, LakehouseResource, partition_day
from pipeline.orchestration.sensors import build_late_events_sensor
from pipeline.streaming.job import STREAMING_TABLES
from pipeline.tables import (
    BRONZE_EVENTS,
    GOLD_CUSTOMER_DAILY,
    GOLD_DAILY_CATEGORY_SALES,
    GOLD_DAILY_SALES_SUMMARY,
    GOLD_DATA_QUALITY,
    GOLD_PRODUCT_DAILY,
    GOLD_PRODUCT_PAIRS,
    MAINTENANCE_RUNS,
    SILVER,
    TableSpec,
)

GOLD_JOB = "gold_daily"
MAINTENANCE_JOB = "table_maintenance"


def asset_key(spec: TableSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.layer.value, spec.name])


def streaming_asset_specs() -> list[dg.AssetSpec]:
    """Assets the streaming job keeps current; Dagster shows them for lineage and reads silver through them."""
    topics = [
        dg.AssetSpec(["kafka", e.value], group_name="kafka", kinds={"kafka"}, description=f"{e.value} topic")
        for e in EventType
    ]
    bronze = dg.AssetSpec(
        asset_key(BRONZE_EVENTS),
        deps=[t.key for t in topics],
        group_name="bronze",
        kinds={"iceberg", "spark"},
        description=BRONZE_EVENTS.description,
    )
    silver = [
        dg.AssetSpec(
            asset_key(spec),
            deps=[bronze.key],
            group_name="silver",
            kinds={"iceberg", "spark"},
            description=spec.description,
        ).with_io_manager_key("iceberg")
        for spec in SILVER.values()
    ]
    return [*topics, bronze, *silver]


def _silver_in(event_type: EventType) -> dg.AssetIn:
    return dg.AssetIn(asset_key(SILVER[event_type]))


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """Everything Dagster runs, for the given settings (default: file and environment)."""
    settings = settings or load_settings()
    daily = dg.DailyPartitionsDefinition(start_date=settings.partitions_start, timezone="UTC", end_offset=0)
    gold_asset: dict[str, Any] = {
        "partitions_def": daily,
        "io_manager_key": "iceberg",
        "group_name": "gold",
        "kinds": {"iceberg", "spark"},
    }
    quality_key = asset_key(GOLD_DATA_QUALITY)

    @dg.asset(key=quality_key, deps=[asset_key(s) for s in SILVER.values()], **gold_asset)
    def data_quality(context: dg.AssetExecutionContext, lake: LakehouseResource) -> DataFrame:
        """Per silver table: rows, late rows, duplicates, quarantined by reason, freshness, conservation."""
        day = partition_day(context.partition_key)
        s = lake.settings()
        inputs = data_quality_inputs(lake.spark(), s.catalog.name, s.kafka.topic_prefix, day)
        # Records ingested in the last 5 minutes may still be in flight in a running micro-batch.
        return gold.data_quality(*inputs, day, in_flight_since=dt.datetime.now() - dt.timedelta(minutes=5))

    @dg.asset(
        key=asset_key(GOLD_DAILY_SALES_SUMMARY),
        ins={
            "purchases_df": _silver_in(EventType.PURCHASE),
            "page_views_df": _silver_in(EventType.PAGE_VIEW),
            "cart_events_df": _silver_in(EventType.ADD_TO_CART),
            "user_sessions_df": _silver_in(EventType.USER_SESSION),
        },
        deps=[quality_key],
        **gold_asset,
    )
    def daily_sales_summary(
        context: dg.AssetExecutionContext,
        purchases_df: DataFrame,
        page_views_df: DataFrame,
        cart_events_df: DataFrame,
        user_sessions_df: DataFrame,
    ) -> DataFrame:
        """Orders, revenue after discounts, units, customers, visitors, sessions, conversion of one day."""
        day = partition_day(context.partition_key)
        return gold.daily_sales_summary(purchases_df, page_views_df, cart_events_df, user_sessions_df, day)

    @dg.asset(
        key=asset_key(GOLD_DAILY_CATEGORY_SALES),
        ins={"purchases_df": _silver_in(EventType.PURCHASE)},
        deps=[quality_key],
        **gold_asset,
    )
    def daily_category_sales(context: dg.AssetExecutionContext, purchases_df: DataFrame) -> DataFrame:
        """Orders, units and item revenue per category of one day."""
        return gold.daily_category_sales(purchases_df, partition_day(context.partition_key))

    @dg.asset(
        key=asset_key(GOLD_CUSTOMER_DAILY), deps=[quality_key, *(asset_key(s) for s in SILVER.values())], **gold_asset
    )
    def customer_daily(context: dg.AssetExecutionContext, lake: LakehouseResource) -> DataFrame:
        """Active customers of one day with lifetime value to date, RFM scores and segment."""
        day = partition_day(context.partition_key)
        spark, catalog = lake.spark(), lake.settings().catalog.name
        purchases = silver_until(spark, catalog, EventType.PURCHASE, day)
        return gold.customer_daily(purchases, user_activity_until(spark, catalog, day), day)

    @dg.asset(
        key=asset_key(GOLD_PRODUCT_DAILY),
        ins={
            "page_views_df": _silver_in(EventType.PAGE_VIEW),
            "cart_events_df": _silver_in(EventType.ADD_TO_CART),
            "purchases_df": _silver_in(EventType.PURCHASE),
        },
        deps=[quality_key],
        **gold_asset,
    )
    def product_daily(
        context: dg.AssetExecutionContext, page_views_df: DataFrame, cart_events_df: DataFrame, purchases_df: DataFrame
    ) -> DataFrame:
        """Views, carts, purchases, revenue and funnel rates per product of one day."""
        return gold.product_daily(page_views_df, cart_events_df, purchases_df, partition_day(context.partition_key))

    @dg.asset(
        key=asset_key(GOLD_PRODUCT_PAIRS),
        ins={"purchases_df": _silver_in(EventType.PURCHASE)},
        deps=[quality_key],
        **gold_asset,
    )
    def product_pairs(context: dg.AssetExecutionContext, purchases_df: DataFrame) -> DataFrame:
        """Co-purchase recommendations (support, confidence, lift) of one day."""
        return gold.product_pairs(purchases_df, partition_day(context.partition_key))

    @dg.asset(key=asset_key(MAINTENANCE_RUNS), group_name="maintenance", kinds={"iceberg", "spark"})
    def maintenance(context: dg.AssetExecutionContext, lake: LakehouseResource) -> dg.MaterializeResult:
        """Compact, rewrite manifests, expire snapshots (keeping stream markers), remove old orphan files."""
        spark, catalog = lake.spark(), lake.settings().catalog.name
        ensure_tables(spark, catalog, STREAMING_TABLES)
        results = [maintain(spark, catalog, spec) for spec in STREAMING_TABLES]
        ensure_table(spark, catalog, MAINTENANCE_RUNS)
        append_rows(maintenance_rows(spark, results), catalog, MAINTENANCE_RUNS)
        files = {r.table: f"{r.before.data_files} -> {r.after.data_files}" for r in results}
        snapshots = {r.table: f"{r.before.snapshots} -> {r.after.snapshots}" for r in results}
        context.log.info("data files %s; snapshots %s", files, snapshots)
        return dg.MaterializeResult(
            metadata={
                "data_files_before": sum(r.before.data_files for r in results),
                "data_files_after": sum(r.after.data_files for r in results),
                "snapshots_before": sum(r.before.snapshots for r in results),
                "snapshots_after": sum(r.after.snapshots for r in results),
                "bytes_before": sum(r.before.bytes for r in results),
                "bytes_after": sum(r.after.bytes for r in results),
                "skipped": "; ".join(f"{r.table}: {r.skipped}" for r in results if r.skipped) or "none",
            }
        )

    checks = build_checks(quality_key)
    gold_job = dg.define_asset_job(GOLD_JOB, selection=dg.AssetSelection.groups("gold"))
    maintenance_job = dg.define_asset_job(MAINTENANCE_JOB, selection=dg.AssetSelection.groups("maintenance"))
    lake = LakehouseResource.from_settings(settings)
    return dg.Definitions(
        assets=[
            *streaming_asset_specs(),
            data_quality,
            daily_sales_summary,
            daily_category_sales,
            customer_daily,
            product_daily,
            product_pairs,
            maintenance,
        ],
        asset_checks=checks,
        jobs=[gold_job, maintenance_job],
        schedules=[
            dg.build_schedule_from_partitioned_job(gold_job, hour_of_day=1, minute_of_hour=0),
            dg.ScheduleDefinition(job=maintenance_job, cron_schedule="17 * * * *", execution_timezone="UTC"),
        ],
        sensors=[build_late_events_sensor(GOLD_JOB, asset_key(GOLD_DAILY_SALES_SUMMARY))],
        resources={"lake": lake, "iceberg": IcebergIOManager(lake=lake)},
    )


# -- checks ---------------------------------------------------------------------------------------------------------


def _gold_day(lake: LakehouseResource, spec: TableSpec, partition_key: str) -> DataFrame:
    return read_day(lake.spark(), lake.settings().catalog.name, spec, partition_day(partition_key))


def build_checks(quality_key: dg.AssetKey) -> list[dg.AssetChecksDefinition]:
    @dg.asset_check(
        asset=quality_key, blocking=True, description="Every Kafka record of the day is in exactly one place."
    )
    def conservation(context: dg.AssetCheckExecutionContext, lake: LakehouseResource) -> dg.AssetCheckResult:
        rows = _gold_day(lake, GOLD_DATA_QUALITY, context.partition_key).collect()
        broken = sorted(r["table_name"] for r in rows if not r["conservation_ok"])
        records = sum(r["bronze_records"] for r in rows)
        return dg.AssetCheckResult(
            passed=not broken, metadata={"bronze_records": records, "tables_failing": ", ".join(broken) or "none"}
        )

    @dg.asset_check(
        asset=quality_key, blocking=True, description="Silver holds each event id once and only the day's events."
    )
    def silver_contract(context: dg.AssetCheckExecutionContext, lake: LakehouseResource) -> dg.AssetCheckResult:
        day = partition_day(context.partition_key)
        spark, catalog = lake.spark(), lake.settings().catalog.name
        metadata: dict[str, Any] = {}
        passed = True
        for spec in SILVER.values():
            stats = (
                read_day(spark, catalog, spec, day)
                .agg(
                    F.count("*").alias("rows"),
                    F.count_distinct("event_id").alias("ids"),
                    F.count_if(F.col("event_id").isNull() | (F.to_date("event_time") != F.lit(day))).alias("bad"),
                )
                .first()
            )
            assert stats is not None
            metadata[f"{spec.name}_rows"] = stats["rows"]
            passed &= stats["rows"] == stats["ids"] and stats["bad"] == 0
        return dg.AssetCheckResult(passed=passed, metadata=metadata)

    @dg.asset_check(
        asset=asset_key(GOLD_DAILY_SALES_SUMMARY),
        additional_deps=[asset_key(GOLD_DAILY_CATEGORY_SALES), asset_key(GOLD_CUSTOMER_DAILY)],
        description="Gold tables of the day agree with each other.",
    )
    def totals_reconcile(context: dg.AssetCheckExecutionContext, lake: LakehouseResource) -> dg.AssetCheckResult:
        summary = _gold_day(lake, GOLD_DAILY_SALES_SUMMARY, context.partition_key).first()
        categories = (
            _gold_day(lake, GOLD_DAILY_CATEGORY_SALES, context.partition_key)
            .agg(F.sum("gross_revenue").alias("gross"), F.sum("units").alias("units"))
            .first()
        )
        customers = (
            _gold_day(lake, GOLD_CUSTOMER_DAILY, context.partition_key).agg(F.sum("revenue").alias("revenue")).first()
        )
        assert summary is not None
        assert categories is not None
        assert customers is not None
        expected = (summary["gross_revenue"], summary["units"], summary["revenue"])
        got = (categories["gross"] or 0, categories["units"] or 0, customers["revenue"] or 0)
        return dg.AssetCheckResult(
            passed=all(a == b for a, b in zip(expected, got, strict=True)),
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "summary_revenue": str(summary["revenue"]),
                "customers_revenue": str(got[2]),
                "orders": summary["orders"],
            },
        )

    @dg.asset_check(
        asset=asset_key(GOLD_DAILY_SALES_SUMMARY), description="Revenue within 3x of the trailing 7-day mean."
    )
    def revenue_anomaly(context: dg.AssetCheckExecutionContext, lake: LakehouseResource) -> dg.AssetCheckResult:
        day = partition_day(context.partition_key)
        table = lake.spark().table(GOLD_DAILY_SALES_SUMMARY.qualified(lake.settings().catalog.name))
        window = table.filter(
            (F.col("event_date") < F.lit(day)) & (F.col("event_date") >= F.lit(day - dt.timedelta(days=7)))
        )
        mean_row = window.agg(F.avg("revenue")).first()
        today = table.filter(F.col("event_date") == F.lit(day)).select("revenue").first()
        mean = float(mean_row[0]) if mean_row is not None and mean_row[0] is not None else None
        revenue = float(today[0]) if today is not None else 0.0
        passed = mean is None or mean == 0 or (mean / 3 <= revenue <= mean * 3)
        return dg.AssetCheckResult(
            passed=passed,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"revenue": revenue, "trailing_mean": mean if mean is not None else "no history"},
        )

    @dg.asset_check(asset=asset_key(GOLD_PRODUCT_DAILY), description="Funnel rates are between 0 and 1.")
    def rates_bounded(context: dg.AssetCheckExecutionContext, lake: LakehouseResource) -> dg.AssetCheckResult:
        out_of_range = (
            _gold_day(lake, GOLD_PRODUCT_DAILY, context.partition_key)
            .filter((F.col("view_to_cart_rate") > 1) | (F.col("cart_to_purchase_rate") > 1))
            .count()
        )
        return dg.AssetCheckResult(passed=out_of_range == 0, metadata={"products_out_of_range": out_of_range})

    return [conservation, silver_contract, totals_reconcile, revenue_anomaly, rates_bounded]


defs = build_definitions()
