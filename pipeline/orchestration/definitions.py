"""The Dagster code location: Kafka topics -> bronze -> silver (kept current by the stream) -> gold (daily).

Open the UI with ``shoplake ui`` (``dagster dev -m pipeline.orchestration.definitions`` underneath).

This module only composes: assets (``assets.py``), checks (``checks.py``, the silver freshness check built from
the settings' objective and run by the ``silver_freshness`` job and its schedule), the late-events sensor
(``sensors.py``) and the resources (``resources.py``), with the one daily partitioning built from the settings
and shared by the gold assets, their job, its schedule and backfills.
"""

import dagster as dg

from pipeline.config import Settings, load_settings
from pipeline.orchestration.assets import (
    GOLD_ASSETS,
    GOLD_GROUP,
    MAINTENANCE_GROUP,
    PRODUCTS_GROUP,
    MaintenanceConfig,
    maintenance,
    products,
    streaming_asset_specs,
)
from pipeline.orchestration.checks import ASSET_CHECKS, build_freshness_check
from pipeline.orchestration.resources import GoldInputsResource, IcebergIOManager, LakehouseResource, asset_key
from pipeline.orchestration.sensors import build_late_events_sensor
from pipeline.tables import GOLD_DAILY_SALES_SUMMARY

GOLD_JOB = "gold_daily"
MAINTENANCE_JOB = "table_maintenance"
FRESHNESS_JOB = "silver_freshness"


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    """One partition per UTC day from ``partitions_start`` up to today."""
    return dg.DailyPartitionsDefinition(start_date=settings.partitions_start, timezone="UTC", end_offset=0)


def _every(minutes: int) -> str:
    """A cron schedule about once per window, so that consecutive evaluations look at every event."""
    return f"*/{minutes} * * * *" if minutes < 60 else "0 * * * *"


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """Everything Dagster runs, for the given settings (default: file and environment)."""
    settings = settings or load_settings()
    daily = daily_partitions(settings)
    # A backfill of a range of days is one run, computing the range in one pass per table (``assets.py``).
    gold_assets = [
        a.map_asset_specs(lambda spec: spec.replace_attributes(partitions_def=daily)).with_attributes(
            backfill_policy=dg.BackfillPolicy.single_run()
        )
        for a in GOLD_ASSETS
    ]
    # One executor for every way a run starts (the UI, the daemon's schedules and sensor, `shoplake gold`): all
    # steps in the run's one process, so a run is one Spark application with one session. Dagster's default
    # executor would start a process, hence a Spark driver, per step when launched from the UI.
    in_process = dg.in_process_executor
    gold_job = dg.define_asset_job(
        GOLD_JOB, selection=dg.AssetSelection.groups(GOLD_GROUP, PRODUCTS_GROUP), executor_def=in_process
    )
    maintenance_job = dg.define_asset_job(
        MAINTENANCE_JOB, selection=dg.AssetSelection.groups(MAINTENANCE_GROUP), executor_def=in_process
    )
    freshness_check = build_freshness_check(settings.freshness)
    freshness_job = dg.define_asset_job(
        FRESHNESS_JOB, selection=dg.AssetSelection.checks(freshness_check), executor_def=in_process
    )
    lake = LakehouseResource.from_settings(settings)
    return dg.Definitions(
        assets=[*streaming_asset_specs(), products, *gold_assets, maintenance],
        asset_checks=[*ASSET_CHECKS, freshness_check],
        jobs=[gold_job, maintenance_job, freshness_job],
        schedules=[
            dg.build_schedule_from_partitioned_job(gold_job, hour_of_day=1, minute_of_hour=0),
            *_maintenance_schedules(),
            dg.ScheduleDefinition(
                job=freshness_job, cron_schedule=_every(settings.freshness.window_minutes), execution_timezone="UTC"
            ),
        ],
        sensors=[build_late_events_sensor(GOLD_JOB, asset_key(GOLD_DAILY_SALES_SUMMARY))],
        resources={"lake": lake, "gold_inputs": GoldInputsResource(lake=lake), "iceberg": IcebergIOManager(lake=lake)},
    )


def _maintenance_schedules() -> list[dg.ScheduleDefinition]:
    """Compaction, manifest rewrites and snapshot expiry every hour; orphan removal, which reads every manifest of
    every snapshot kept, with the run at 02:17 only (a file becomes an orphan only when a write fails)."""
    runs = {"hourly": ("17 0,1,3-23 * * *", False), "daily_with_orphans": ("17 2 * * *", True)}
    return [
        dg.ScheduleDefinition(
            name=f"{MAINTENANCE_JOB}_{name}",
            job_name=MAINTENANCE_JOB,
            cron_schedule=cron,
            execution_timezone="UTC",
            run_config=dg.RunConfig(ops={"ops__maintenance_runs": MaintenanceConfig(remove_orphan_files=orphans)}),
        )
        for name, (cron, orphans) in runs.items()
    ]


@dg.definitions
def defs() -> dg.Definitions:
    """What ``dagster dev -m pipeline.orchestration.definitions`` loads: settings are read when it loads, not at
    import."""
    return build_definitions()
