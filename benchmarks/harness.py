"""Benchmark results: JSON files of runs, each with the machine it ran on, and PNG plots beside them.

Full runs write to ``benchmarks/results/`` (committed); quick runs (CI) to a temporary folder, so that proving
the harness works never overwrites published numbers.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from dagster import DagsterInstance

RESULTS = Path(__file__).resolve().parent / "results"

T = TypeVar("T")


def best_of(run: Callable[[], T], runs: int = 2) -> tuple[float, T]:
    """Seconds of the fastest of ``runs`` runs (the first pays for warm-ups and cold caches) and the last result."""
    timings = []
    for _ in range(runs):
        started = time.monotonic()
        result = run()
        timings.append(time.monotonic() - started)
    return min(timings), result


def best_of_two(run: Callable[[], T]) -> tuple[float, T]:
    """:func:`best_of` two runs."""
    return best_of(run, 2)


def step_seconds(instance: DagsterInstance, run_id: str) -> dict[str, float]:
    """Each step's wall seconds in a Dagster run, from its start event to its success or failure, in run order.

    What is left of a run's time beyond these is Dagster's own (planning the run, loading the code, events).
    """
    started: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or entry.step_key is None:
            continue
        if event.is_step_start:
            started[entry.step_key] = entry.timestamp
        elif (event.is_step_success or event.is_step_failure) and entry.step_key in started:
            seconds[entry.step_key] = round(entry.timestamp - started[entry.step_key], 2)
    return seconds


def machine_info() -> dict[str, Any]:
    java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False).stderr.splitlines()
    try:
        memory_kib = int(
            next(
                line.split()[1]
                for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")
            )
        )
    except (OSError, StopIteration, ValueError):
        memory_kib = 0
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "java": java[0] if java else "",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


class Results:
    """Appends runs to ``<dir>/<name>.json``: ``{"machine": ..., "runs": [...]}`` (replaced per session)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._runs: dict[str, list[dict[str, Any]]] = {}

    def add(self, name: str, run: dict[str, Any]) -> Path:
        self._runs.setdefault(name, []).append(run)
        path = self.directory / f"{name}.json"
        path.write_text(json.dumps({"machine": machine_info(), "runs": self._runs[name]}, indent=1, default=str) + "\n")
        return path

    def path(self, name: str) -> Path:
        return self.directory / name
