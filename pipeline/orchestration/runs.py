"""Launching Dagster runs from code: the gold job for a day, or for a range of days in one run (a backfill)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import dagster as dg

from pipeline.batch.inputs import run_days
from pipeline.config import ConfigurationError, Settings
from pipeline.errors import ShoplakeError
from pipeline.orchestration.definitions import GOLD_JOB, build_definitions
from pipeline.orchestration.resources import partition_range_tags


class GoldRunError(ShoplakeError, RuntimeError):
    """A gold run failed; the message names the day and the failing step."""


def dagster_instance(settings: Settings) -> dg.DagsterInstance:
    """The persistent instance under ``DAGSTER_HOME`` (default ``<home>/dagster``), so runs show in the UI."""
    home = Path(os.environ.get("DAGSTER_HOME") or settings.home / "dagster")
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"cannot create DAGSTER_HOME {home}: {exc}") from exc
    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


def _run_gold(
    job: dg.JobDefinition, first: dt.date, last: dt.date, instance: dg.DagsterInstance, log_level: str
) -> dg.ExecuteInProcessResult:
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    if first == last:
        result = job.execute_in_process(
            partition_key=first.isoformat(), instance=instance, raise_on_error=False, run_config=run_config
        )
    else:
        result = job.execute_in_process(
            tags=partition_range_tags(first, last), instance=instance, raise_on_error=False, run_config=run_config
        )
    if not result.success:
        failures = [
            f"{event.step_key}: {_error_text(event.event_specific_data.error)}"  # type: ignore[union-attr]
            for event in result.all_events
            if event.is_step_failure
        ]
        days = first.isoformat() if first == last else f"{first} .. {last}"
        raise GoldRunError(f"gold run for {days} failed: " + "; ".join(failures))
    return result


def _check_start(settings: Settings, day: dt.date) -> None:
    start = dt.date.fromisoformat(settings.partitions_start)
    if day < start:
        raise ConfigurationError(
            f"{day} is before the first daily partition, {start}: set SHOPLAKE_PARTITIONS_START (partitions_start "
            f"in shoplake.toml) to {day} or earlier"
        )


def materialize_gold(
    settings: Settings,
    days: Iterable[dt.date],
    instance: dg.DagsterInstance,
    on_day: Callable[[dt.date, dg.ExecuteInProcessResult], None] = lambda day, result: None,
    log_level: str = "WARNING",
) -> list[dg.ExecuteInProcessResult]:
    """Run the gold job once per day, in order, in this process (sharing its Spark session)."""
    job = build_definitions(settings).resolve_job_def(GOLD_JOB)
    results = []
    for day in days:
        _check_start(settings, day)
        result = _run_gold(job, day, day, instance, log_level)
        on_day(day, result)
        results.append(result)
    return results


def backfill_gold(
    settings: Settings, first: dt.date, last: dt.date, instance: dg.DagsterInstance, log_level: str = "WARNING"
) -> dg.ExecuteInProcessResult:
    """Run the gold job once for every day of ``first`` .. ``last``: one run, one pass per table over the range,
    replacing exactly those days (and restating those built before)."""
    run_days(first, last)  # a range that ends before it starts is an error
    _check_start(settings, first)
    job = build_definitions(settings).resolve_job_def(GOLD_JOB)
    return _run_gold(job, first, last, instance, log_level)


def _error_text(error: object) -> str:
    """A failure's message with its causes (Dagster wraps the real error of an IO manager or asset)."""
    parts = []
    while error is not None:
        parts.append(getattr(error, "message", str(error)).strip().splitlines()[0])
        error = getattr(error, "cause", None)
    return " <- ".join(parts)
