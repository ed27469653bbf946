"""The Dagster code location loads, and shows the lineage Kafka -> bronze -> silver -> gold."""

from __future__ import annotations

import dagster as dg

from pipeline.config import Settings
from pipeline.orchestration.definitions import GOLD_JOB, build_definitions


def test_definitions_load_with_job_schedule_and_lineage(tmp_path) -> None:
    defs = build_definitions(Settings(home=tmp_path))
    graph = defs.resolve_asset_graph()
    gold = dg.AssetKey(["gold", "daily_sales_summary"])
    assert dg.AssetKey(["silver", "purchases"]) in graph.get(gold).parent_keys
    assert dg.AssetKey(["bronze", "events"]) in graph.get(dg.AssetKey(["silver", "purchases"])).parent_keys
    assert dg.AssetKey(["kafka", "purchase"]) in graph.get(dg.AssetKey(["bronze", "events"])).parent_keys
    job = defs.resolve_job_def(GOLD_JOB)
    assert job.partitions_def is not None
    assert job.partitions_def.get_first_partition_key() == "2026-01-01"
    assert defs.resolve_schedule_def(f"{GOLD_JOB}_schedule").job_name == GOLD_JOB
