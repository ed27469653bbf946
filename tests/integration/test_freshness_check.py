"""The ``freshness`` check on silver, executed through Dagster on a lake a real stream just wrote."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from pipeline.catalog import pyiceberg_catalog
from pipeline.config import FreshnessSettings, Settings
from pipeline.orchestration.definitions import FRESHNESS_JOB, build_definitions
from pipeline.tables import SILVER, STREAM_BATCHES
from tests.integration.helpers import catch_up, send_log, write_day

pytestmark = pytest.mark.extended  # tox -e suites -- extended (see README "Tests")


def _evaluate(settings: Settings, objective_s: float) -> dict[str, dg.AssetCheckEvaluation]:
    """Run the freshness job with this p99 objective; the evaluation per silver table name."""
    objective = settings.model_copy(
        update={"freshness": FreshnessSettings(p99_objective_seconds=objective_s, window_minutes=30)}
    )
    job = build_definitions(objective).resolve_job_def(FRESHNESS_JOB)
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success, "a failed check is a result, not a failed run"
    return {evaluation.asset_key.path[1]: evaluation for evaluation in result.get_asset_check_evaluations()}


def test_the_freshness_check_warns_when_silvers_p99_exceeds_the_objective_and_passes_within_it(
    spark, live, tmp_path: Path
) -> None:
    send_log(live, write_day(tmp_path / "day.jsonl", "normal_day", seed=3, events=1500))
    catch_up(spark, live, timeout_s=300)
    catalog = pyiceberg_catalog(live)
    rows = {spec.name: catalog.load_table(spec.identifier).scan().to_arrow().num_rows for spec in SILVER.values()}
    assert rows["page_views"] > 0
    batches = catalog.load_table(STREAM_BATCHES.identifier).scan().to_arrow()
    # No event can have waited longer than from the first batch's oldest record to the last batch's commit.
    longest_s = (max(batches["committed_at"].to_pylist()) - min(batches["kafka_ts_min"].to_pylist())).total_seconds()

    tight = _evaluate(live, objective_s=0.001)  # no real commit is that fast
    assert set(tight) == set(rows)
    for name, evaluation in tight.items():
        metadata = {key: value.value for key, value in evaluation.metadata.items()}
        assert metadata["events"] == rows[name], (name, metadata)  # every event became visible in the window
        assert metadata["p99_objective_s"] == 0.001
        assert evaluation.severity is dg.AssetCheckSeverity.WARN
        if rows[name]:
            assert not evaluation.passed, (name, metadata)
            assert 0 < metadata["p50_s"] <= metadata["p99_s"] <= metadata["max_s"] <= longest_s + 1, metadata
        else:
            assert evaluation.passed
            assert metadata["p99_s"] == "no event"

    loose = _evaluate(live, objective_s=3600)
    for name, evaluation in loose.items():
        assert evaluation.passed, (name, evaluation.metadata)
        assert evaluation.metadata["p99_s"].value == tight[name].metadata["p99_s"].value
