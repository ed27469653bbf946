"""The assets Dagster materializes: the streaming tables it shows for lineage, the daily gold tables, maintenance.

Each gold asset takes its inputs from the run's :class:`~pipeline.batch.inputs.GoldRun` (one partition, or a
backfill's whole range, which a single run computes in one pass; each silver table read once for the run). It
calls the pure transform that defines the table (``pipeline.batch.gold``) and returns the DataFrame; the
``iceberg`` IO manager replaces those days. Gold assets
carry no partitions here: ``definitions.py`` gives them the one daily partitioning, built from the settings, and
the single-run backfill policy.
``gold/data_quality`` is built first and carries the blocking checks on silver; every other gold asset depends
on it, so a broken silver day never reaches gold. ``gold/customer_lifetime`` carries each user's lifetime state
from day to day; ``gold/customer_daily`` reads it.
"""

import datetime as dt
from typing import Any

import dagster as dg
from pyspark.sql import DataFrame

from pipeline.batch import gold
from pipeline.batch.inputs import USER_EVENT_TYPES, GoldRun
from pipeline.contracts.events import EventType
from pipeline.iceberg_io import ensure_tables, read_table, replace_rows
from pipeline.maintenance import lower_priority, maintain_tables
from pipeline.orchestration.resources import GoldInputsResource, LakehouseResource, asset_key, run_partition_range
from pipeline.products import product_versions
from pipeline.tables import (
    BRONZE_EVENTS,
    GOLD_CUSTOMER_DAILY,
    GOLD_CUSTOMER_LIFETIME,
    GOLD_DAILY_CATEGORY_SALES,
    GOLD_DAILY_SALES_SUMMARY,
    GOLD_DATA_QUALITY,
    GOLD_PRODUCT_DAILY,
    GOLD_PRODUCT_PAIRS,
    MAINTENANCE_RUNS,
    PRODUCTS,
    SILVER,
)

GOLD_GROUP = "gold"
MAINTENANCE_GROUP = "maintenance"
QUALITY_KEY = asset_key(GOLD_DATA_QUALITY)
_GOLD: dict[str, Any] = {"io_manager_key": "iceberg", "group_name": GOLD_GROUP, "kinds": {"iceberg", "spark"}}


def streaming_asset_specs() -> list[dg.AssetSpec]:
    """Assets the streaming job keeps current; Dagster shows them for lineage."""
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
        )
        for spec in SILVER.values()
    ]
    return [*topics, bronze, *silver]


def _silver_keys(*event_types: EventType) -> list[dg.AssetKey]:
    return [asset_key(SILVER[e]) for e in event_types or tuple(EventType)]


def gold_run(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext, gold_inputs: GoldInputsResource
) -> GoldRun:
    """The run's inputs, for the days of its partition or backfill range."""
    return gold_inputs.run(context.run.run_id, context.partition_key_range)


@dg.asset(key=QUALITY_KEY, deps=_silver_keys(), **_GOLD)
def data_quality(context: dg.AssetExecutionContext, gold_inputs: GoldInputsResource) -> DataFrame:
    """Per silver table: rows, late rows, duplicates, quarantined by reason, freshness, conservation."""
    run = gold_run(context, gold_inputs)
    inputs = run.data_quality()
    return gold.data_quality(
        inputs.silver_df,
        inputs.quarantine_df,
        inputs.bronze_df,
        inputs.landed_df,
        inputs.table_of_topic,
        run.days,
        as_of=dt.datetime.now(),
    )


_SUMMARY_INPUTS = (EventType.PURCHASE, EventType.PAGE_VIEW, EventType.ADD_TO_CART, EventType.USER_SESSION)


@dg.asset(key=asset_key(GOLD_DAILY_SALES_SUMMARY), deps=[QUALITY_KEY, *_silver_keys(*_SUMMARY_INPUTS)], **_GOLD)
def daily_sales_summary(context: dg.AssetExecutionContext, gold_inputs: GoldInputsResource) -> DataFrame:
    """Orders, revenue after discounts, units, customers, visitors, sessions, conversion of one day."""
    run = gold_run(context, gold_inputs)
    purchases, page_views, cart_events, user_sessions = [run.silver(e) for e in _SUMMARY_INPUTS]
    return gold.daily_sales_summary(purchases, page_views, cart_events, user_sessions, run.days)


@dg.asset(key=asset_key(GOLD_DAILY_CATEGORY_SALES), deps=[QUALITY_KEY, *_silver_keys(EventType.PURCHASE)], **_GOLD)
def daily_category_sales(context: dg.AssetExecutionContext, gold_inputs: GoldInputsResource) -> DataFrame:
    """Orders, units and item revenue per category of one day."""
    run = gold_run(context, gold_inputs)
    return gold.daily_category_sales(run.silver(EventType.PURCHASE), run.days)


@dg.asset(key=asset_key(GOLD_CUSTOMER_LIFETIME), deps=[QUALITY_KEY, *_silver_keys(*USER_EVENT_TYPES)], **_GOLD)
def customer_lifetime(context: dg.AssetExecutionContext, gold_inputs: GoldInputsResource) -> DataFrame:
    """Each user's lifetime state (first seen, orders, LTV, last purchase) as of each day: the day before's plus the
    day's events."""
    run = gold_run(context, gold_inputs)
    inputs = run.lifetime()
    if inputs.state_day != run.first - dt.timedelta(days=1):
        context.log.info(
            "no lifetime state for %s: starting from %s", run.first - dt.timedelta(days=1), inputs.state_day
        )
    return gold.customer_lifetime(inputs.previous_df, inputs.purchases_df, inputs.activity_df, run.days)


@dg.asset(
    key=asset_key(GOLD_CUSTOMER_DAILY),
    deps=[asset_key(GOLD_CUSTOMER_LIFETIME), *_silver_keys(EventType.PURCHASE)],
    **_GOLD,
)
def customer_daily(context: dg.AssetExecutionContext, gold_inputs: GoldInputsResource) -> DataFrame:
    """Active customers of one day with lifetime value to date, RFM scores and segment."""
    run = gold_run(context, gold_inputs)
    return gold.customer_daily(run.gold(GOLD_CUSTOMER_LIFETIME), run.silver(EventType.PURCHASE), run.days)


PRODUCTS_GROUP = "products"


@dg.asset(
    key=asset_key(PRODUCTS),
    # After the run's silver contract check: a silver that broke its contract builds nothing from it.
    deps=[QUALITY_KEY, *_silver_keys(EventType.PRODUCT_UPDATE)],
    group_name=PRODUCTS_GROUP,
    kinds={"iceberg", "spark"},
    description=PRODUCTS.description,
)
def products(
    context: dg.AssetExecutionContext, lake: LakehouseResource, gold_inputs: GoldInputsResource
) -> dg.MaterializeResult:
    """The product dimension with history, rebuilt from every product update in one commit (a pure function of
    them: a replay, a late update or a redelivery gives the rows the definition says). In a gold run, from the
    run's own read of the updates, so that the table and the run's ``product_daily`` agree."""
    spark, catalog = lake.spark(), lake.catalog()
    ensure_tables(spark, catalog, (SILVER[EventType.PRODUCT_UPDATE], PRODUCTS))
    key_range = run_partition_range(context.run.tags)
    if key_range is None:  # materialized on its own
        versions = product_versions(read_table(spark, catalog, SILVER[EventType.PRODUCT_UPDATE]))
    else:
        versions = gold_inputs.run(context.run.run_id, key_range).product_versions()
    rows = replace_rows(versions, catalog, PRODUCTS)
    context.log.info("%s: %d versions", PRODUCTS.identifier, rows)
    return dg.MaterializeResult(metadata={"versions": rows})


_PRODUCT_INPUTS = (EventType.PAGE_VIEW, EventType.ADD_TO_CART, EventType.PURCHASE, EventType.PRODUCT_UPDATE)


@dg.asset(
    key=asset_key(GOLD_PRODUCT_DAILY),
    deps=[QUALITY_KEY, asset_key(PRODUCTS), *_silver_keys(*_PRODUCT_INPUTS)],
    **_GOLD,
)
def product_daily(context: dg.AssetExecutionContext, gold_inputs: GoldInputsResource) -> DataFrame:
    """Views, carts, purchases, revenue, funnel rates, list price, price changes, views while out of stock and
    discount against the list price, per product of one day."""
    run = gold_run(context, gold_inputs)
    page_views, cart_events, purchases, product_updates = [run.silver(e) for e in _PRODUCT_INPUTS]
    return gold.product_daily(page_views, cart_events, purchases, product_updates, run.product_versions(), run.days)


@dg.asset(key=asset_key(GOLD_PRODUCT_PAIRS), deps=[QUALITY_KEY, *_silver_keys(EventType.PURCHASE)], **_GOLD)
def product_pairs(context: dg.AssetExecutionContext, gold_inputs: GoldInputsResource) -> DataFrame:
    """Co-purchase recommendations (support, confidence, lift) of one day."""
    run = gold_run(context, gold_inputs)
    return gold.product_pairs(run.silver(EventType.PURCHASE), run.days)


GOLD_ASSETS: tuple[dg.AssetsDefinition, ...] = (
    data_quality,
    daily_sales_summary,
    daily_category_sales,
    customer_lifetime,
    customer_daily,
    product_daily,
    product_pairs,
)


class MaintenanceConfig(dg.Config):
    """What a maintenance run does besides compaction, manifest rewrites and snapshot expiry."""

    remove_orphan_files: bool = True  # the hourly schedule turns it off, the daily one on


@dg.asset(key=asset_key(MAINTENANCE_RUNS), group_name=MAINTENANCE_GROUP, kinds={"iceberg", "spark"})
def maintenance(
    context: dg.AssetExecutionContext, config: MaintenanceConfig, lake: LakehouseResource
) -> dg.MaterializeResult:
    """Compact, rewrite manifests, expire snapshots (keeping stream markers), remove old orphan files; at a lower
    CPU priority than the stream (the run's own process: the maintenance job runs nothing else)."""
    settings = lake.settings()
    lower_priority(settings.maintenance.niceness)
    results = maintain_tables(
        lake.spark(),
        settings.catalog.name,
        settings.stream.snapshot_retention,
        orphans=config.remove_orphan_files,
        compacted_file_bytes=settings.maintenance.compacted_file_bytes,
    )
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
            "orphan_files_removed": (
                sum(r.orphans_removed for r in results) if config.remove_orphan_files else "not this run"
            ),
            "skipped": "; ".join(f"{r.table}: {r.skipped}" for r in results if r.skipped) or "none",
        }
    )
