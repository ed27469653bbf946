"""The Dagster code location loads, and shows the lineage Kafka -> bronze -> silver -> gold."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from pipeline.config import Settings
from pipeline.orchestration.definitions import FRESHNESS_JOB, GOLD_JOB, MAINTENANCE_JOB, build_definitions


def test_definitions_load_with_job_schedule_and_lineage(tmp_path) -> None:
    defs = build_definitions(Settings(home=tmp_path))
    dg.Definitions.validate_loadable(defs)  # what the webserver and `dagster dev` check: e.g. unique op names
    graph = defs.resolve_asset_graph()
    gold = dg.AssetKey(["gold", "daily_sales_summary"])
    assert dg.AssetKey(["silver", "purchases"]) in graph.get(gold).parent_keys
    assert dg.AssetKey(["bronze", "events"]) in graph.get(dg.AssetKey(["silver", "purchases"])).parent_keys
    assert dg.AssetKey(["kafka", "purchase"]) in graph.get(dg.AssetKey(["bronze", "events"])).parent_keys
    job = defs.resolve_job_def(GOLD_JOB)
    assert job.partitions_def is not None
    assert job.partitions_def.get_first_partition_key() == "2026-01-01"
    assert defs.resolve_schedule_def(f"{GOLD_JOB}_schedule").job_name == GOLD_JOB


def test_gold_assets_share_the_daily_partitions_and_carry_their_checks(tmp_path) -> None:
    defs = build_definitions(Settings(home=tmp_path, partitions_start="2025-06-01"))
    graph = defs.resolve_asset_graph()
    gold = {key for key in graph.get_all_asset_keys() if key.path[0] == "gold"}
    assert {key.path[1] for key in gold} == {
        "data_quality", "daily_sales_summary", "daily_category_sales", "customer_lifetime", "customer_daily",
        "product_daily", "product_pairs",
    }  # fmt: skip
    assert {graph.get(key).partitions_def.get_first_partition_key() for key in gold} == {"2025-06-01"}
    assert {graph.get(key).backfill_policy for key in gold} == {dg.BackfillPolicy.single_run()}
    assert dg.AssetKey(["gold", "customer_lifetime"]) in graph.get(dg.AssetKey(["gold", "customer_daily"])).parent_keys
    checks = {(key.asset_key.path[1], key.name) for key in graph.asset_check_keys if key.asset_key.path[0] == "gold"}
    assert checks == {
        ("data_quality", "conservation"),
        ("data_quality", "silver_contract"),
        ("daily_sales_summary", "totals_reconcile"),
        ("daily_sales_summary", "revenue_anomaly"),
        ("product_daily", "rates_bounded"),
    }
    assert {key.asset_key.path[1] for key in graph.asset_check_keys if key.name == "freshness"} == {
        "page_views", "cart_events", "purchases", "user_sessions", "product_updates",
    }  # fmt: skip
    assert [sensor.name for sensor in defs.sensors] == ["late_events_sensor"]


def test_every_job_runs_its_steps_in_one_process_whoever_launches_it(tmp_path) -> None:
    defs = build_definitions(Settings(home=tmp_path))
    for name in (GOLD_JOB, MAINTENANCE_JOB, FRESHNESS_JOB):
        assert defs.resolve_job_def(name).executor_def is dg.in_process_executor, name


def test_the_freshness_job_runs_only_the_silver_freshness_checks_on_a_schedule_of_its_window(tmp_path) -> None:
    settings = Settings(home=tmp_path, freshness={"window_minutes": 10, "p99_objective_seconds": 4.5})
    defs = build_definitions(settings)
    job = defs.resolve_job_def(FRESHNESS_JOB)
    selected = job.asset_layer.asset_graph.asset_check_keys
    assert {(key.asset_key.path[0], key.name) for key in selected} == {("silver", "freshness")}
    assert len(selected) == 5
    schedule = defs.resolve_schedule_def(f"{FRESHNESS_JOB}_schedule")
    assert schedule.cron_schedule == "*/10 * * * *"
    (freshness,) = [checks for checks in defs.asset_checks or () if checks.node_def.name == "silver_freshness_checks"]
    assert {spec.description for spec in freshness.check_specs} == {
        "Kafka -> silver p99 over the last 10 min is at most 4.5 s."
    }


def test_maintenance_runs_every_hour_and_removes_orphan_files_once_a_day(tmp_path) -> None:
    from dagster._utils.schedules import cron_string_iterator

    defs = build_definitions(Settings(home=tmp_path))
    job = defs.resolve_job_def(MAINTENANCE_JOB)
    day = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)
    runs: dict[dt.datetime, bool] = {}  # tick -> whether its run removes orphan files
    for schedule in defs.get_repository_def().schedule_defs:
        if schedule.job_name != MAINTENANCE_JOB:
            continue
        (request,) = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=day)).run_requests
        dg.validate_run_config(job, request.run_config)  # the config is the job's own
        orphans = request.run_config["ops"]["ops__maintenance_runs"]["config"]["remove_orphan_files"]
        ticks = cron_string_iterator(day.timestamp(), schedule.cron_schedule, "UTC")
        for tick in ticks:
            if tick >= day + dt.timedelta(days=1):
                break
            assert tick not in runs, f"two maintenance runs at {tick}"
            runs[tick] = orphans
    assert sorted(t.hour for t in runs) == list(range(24))
    assert sum(runs.values()) == 1


def test_a_runs_days_come_from_its_partition_tags_and_a_run_without_them_builds_none() -> None:
    from pipeline.orchestration.resources import partition_range_tags, run_partition_range

    assert run_partition_range({"dagster/partition": "2026-11-02"}) == dg.PartitionKeyRange("2026-11-02", "2026-11-02")
    tags = partition_range_tags(dt.date(2026, 11, 2), dt.date(2026, 11, 8))
    assert run_partition_range(tags) == dg.PartitionKeyRange("2026-11-02", "2026-11-08")
    assert run_partition_range({"dagster/backfill": "abc"}) is None


def test_every_gold_run_rebuilds_the_product_dimension_before_product_daily(tmp_path) -> None:
    defs = build_definitions(Settings(home=tmp_path))
    graph = defs.resolve_job_def(GOLD_JOB).asset_layer.asset_graph
    products, product_daily = dg.AssetKey(["silver", "products"]), dg.AssetKey(["gold", "product_daily"])
    assert products in graph.get_all_asset_keys()
    assert products in graph.get(product_daily).parent_keys
