"""Print the published benchmark results (``benchmarks/results/*.json``) as Markdown tables.

``python -m benchmarks.report`` after ``tox -e bench``: the README's benchmark section is this output.
"""

from __future__ import annotations

import json
import statistics
import sys
from typing import Any

from benchmarks.harness import RESULTS


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _achieved(run: dict[str, Any]) -> str:
    """The rate the producers reached (results from before it was measured leave it blank)."""
    return f"{run['achieved_eps']:,.0f}" if "achieved_eps" in run else ""


def _freshness(data: dict[str, Any]) -> str:
    rows = [
        [f"{r['rate_eps']:,.0f}", _achieved(r), r["trigger_s"], f"{r['events']:,}", r["p50_s"], r["p95_s"], r["p99_s"],
         r["max_s"], r["mean_batch_s"]]
        for r in data["runs"]
    ]  # fmt: skip
    header = ["events/s asked", "events/s reached", "trigger (s)", "events", "p50 (s)", "p95 (s)", "p99 (s)", "max (s)"]
    header.append("mean batch (s)")
    return _table(header, rows)


def _throughput(data: dict[str, Any]) -> str:
    rows = [
        [f"{r['events']:,}", r["seconds"], f"{r['events_per_s']:,.0f}", r["max_offsets_per_trigger"]]
        for r in data["runs"]
    ]
    return _table(["events", "seconds", "events/s", "records per batch"], rows)


def _gold(data: dict[str, Any]) -> str:
    rows = [
        [f"{r['events']:,}", r["spark_s"], r["duckdb_s"], r["ratio"], r.get("dagster_day_s", "")] for r in data["runs"]
    ]
    return _table(
        ["silver events", "Spark summary (s)", "DuckDB summary (s)", "ratio", "whole day via Dagster (s)"], rows
    )


def _gold_history(data: dict[str, Any]) -> str:
    rows = [
        [
            r["days"], f"{r['events_per_day']:,}", r["day1_s"], r["day30_s"], r["day60_s"], r["day60_over_day1"],
            r["backfill_60_days_s"],
        ]
        for r in data["runs"]
    ]  # fmt: skip
    return _table(
        ["days", "events/day", "day 1 (s)", "day 30 (s)", "day 60 (s)", "day 60 / day 1", "backfill, one run (s)"],
        rows,
    )


def _maintenance(data: dict[str, Any]) -> str:
    rows = []
    for run in data["runs"]:
        for table, shape in run["tables"].items():
            before, after = shape["before"], shape["after"]
            rows.append(
                [table, f"{before['data_files']:,} → {after['data_files']:,}",
                 f"{before['snapshots']:,} → {after['snapshots']:,}", f"{before['scan_s']} → {after['scan_s']}"]
            )  # fmt: skip
    return _table(["silver table", "data files", "snapshots", "full scan (s)"], rows)


def _cold_start(data: dict[str, Any]) -> str:
    rows = [
        [f"{r['rate_eps']:,.0f}", r["first_visible_s"], r["first_batch_s"], r["restart_visible_s"],
         r["restart_first_batch_s"], r["steady_batch_s"], r["restart_ratio"]]
        for r in data["runs"]
    ]  # fmt: skip
    header = ["events/s", "start → first visible (s)", "first batch (s)", "restart → first visible (s)",
              "first batch after restart (s)", "steady batch (s)", "ratio"]  # fmt: skip
    return _table(header, rows)


def _drift(data: dict[str, Any]) -> str:
    rows = [
        [f"{r['rate_eps']:,.0f}", _achieved(r), f"{r['duration_s'] / 60:g}", r["maintenance_runs"],
         r["p99_first_window_s"], r["p99_last_window_s"], r["ratio_last_to_first"]]
        for r in data["runs"]
    ]  # fmt: skip
    header = ["events/s asked", "events/s reached", "minutes", "maintenance runs", "p99 first window (s)",
              "p99 last window (s)", "ratio"]  # fmt: skip
    return _table(header, rows)


# The sink's phases, then "between": Spark's own time before the batch reached the sink (checkpoint logs,
# offsets, planning). Their sum is one batch cycle.
PHASES = ["materialize", "collect", "lookup", "deduplicate", "plan", "commit", "between"]


def _phase_row(label: str, batches: list[dict[str, float]]) -> list[Any]:
    """Median records and seconds per phase over a run's micro-batches (empty batches left out)."""
    batches = [b for b in batches if b.get("records")]
    if not batches:
        return [label, "0", *["" for _ in PHASES], ""]
    records = statistics.median(b["records"] for b in batches)
    # A phase the run did not record (results from before the sink measured it) is left blank, not zero.
    # A phase only some batches have ("between" has no batch before the first) is the median of those that do.
    medians = [
        statistics.median(b[p] for b in batches if p in b) if any(p in b for b in batches) else None for p in PHASES
    ]
    cells = ["" if m is None else f"{m:.2f}" for m in medians]
    return [label, f"{records:,.0f}", *cells, f"{sum(m for m in medians if m is not None):.2f}"]


def _profile(freshness: dict[str, Any] | None, throughput: dict[str, Any] | None) -> str:
    """Where a micro-batch's time goes: the phases the sink records for every batch."""
    rows = [
        _phase_row(f"live {r['rate_eps']:,.0f}/s, trigger {r['trigger_s']:g} s", r["phases"])
        for r in (freshness or {}).get("runs", [])
        if r.get("phases")
    ]
    rows += [
        _phase_row(f"catch-up {r['events']:,}", r["batches"])
        for r in (throughput or {}).get("runs", [])
        if r.get("batches")
    ]
    return _table(["run", "records/batch", *[f"{p} (s)" for p in PHASES], "sum (s)"], rows)


def _topology(data: dict[str, Any]) -> str:
    rows = []
    for r in data["runs"]:
        catch_up, fresh = r["catch_up"], r["freshness"]
        shape = f"{r['topology']} ({r['kafka_nodes']} Kafka node{'s' if r['kafka_nodes'] > 1 else ''}, {r['catalog']}"
        rows.append(
            [
                f"{shape} catalog, {r['warehouse']} warehouse)",
                f"{catch_up['events']:,}",
                f"{catch_up['events_per_s']:,.0f}",
                f"{fresh['rate_eps']:,.0f}",
                fresh["p50_s"],
                fresh["p99_s"],
                fresh["mean_batch_s"],
            ]
        )
    header = ["topology", "catch-up events", "catch-up events/s", "live events/s", "p50 (s)", "p99 (s)"]
    header.append("mean batch (s)")
    return _table(header, rows)


def _simulator(data: dict[str, Any]) -> str:
    rows = [[r["what"], f"{r['events']:,}", f"{r['events_per_s']:,.0f}"] for r in data["runs"]]
    return _table(["step", "events", "events/s"], rows)


SECTIONS = {
    "freshness": ("Freshness: Kafka -> silver visibility latency", _freshness),
    "throughput": ("Catch-up throughput (--available-now)", _throughput),
    "cold_start": ("Cold start and restart", _cold_start),
    "drift": ("Freshness over a long run beside maintenance", _drift),
    "gold": ("One day's gold", _gold),
    "gold_history": ("Gold as history grows (through Dagster)", _gold_history),
    "maintenance": ("Small-file debt and maintenance", _maintenance),
    "topology": ("The cluster topology beside the local one (same machine, same run)", _topology),
    "simulator": ("Simulator", _simulator),
}


def main() -> int:
    for name, (title, render) in SECTIONS.items():
        data = _load(name)
        if data is None:
            print(f"({name}: no results in {RESULTS})\n", file=sys.stderr)
            continue
        print(f"**{title}**\n\n{render(data)}\n")
    if _load("freshness") or _load("throughput"):
        profile = _profile(_load("freshness"), _load("throughput"))
        print(f"**Micro-batch profile: median seconds per phase**\n\n{profile}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
