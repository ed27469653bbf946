"""Print the published benchmark results (``benchmarks/results/*.json``) as Markdown tables.

``python -m benchmarks.report`` after ``tox -e bench``: every table. ``--readme``: the block README.md holds
between its markers (the headline table of :data:`MEASURES`, each figure against its target, and the freshness
table). ``--check-readme``: exit 1, with the difference, when README.md's block is not what the results give.
"""

from __future__ import annotations

import argparse
import difflib
import json
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness import RESULTS

README = Path(__file__).resolve().parent.parent / "README.md"
REFERENCE = README.parent / "docs" / "benchmarks.md"
GENERATED_IN = (README, REFERENCE)  # the documents that hold the block between the markers
BEGIN = "<!-- benchmarks:begin -->"
END = "<!-- benchmarks:end -->"


def _load(name: str, results: Path = RESULTS) -> dict[str, Any] | None:
    path = results / f"{name}.json"
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
        [
            f"{r['events']:,}",
            r["spark_s"],
            r["duckdb_s"],
            r["ratio"],
            r.get("dagster_day_s", ""),
            r.get("duckdb_gold_s", ""),
            r.get("gold_ratio", ""),
        ]
        for r in data["runs"]
    ]
    headers = ["silver events", "Spark summary (s)", "DuckDB summary (s)", "ratio", "whole day via Dagster (s)"]
    return _table([*headers, "DuckDB's seven tables (s)", "whole-day ratio"], rows)


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


def _maintenance_runs(run: dict[str, Any]) -> str:
    failed = len(run.get("maintenance_failures", []))
    return f"{run['maintenance_runs']}" + (f" (**{failed} failed**)" if failed else "")


def _drift(data: dict[str, Any]) -> str:
    rows = [
        [f"{r['rate_eps']:,.0f}", _achieved(r), f"{r['duration_s'] / 60:g}", _maintenance_runs(r),
         r["p99_first_window_s"], r["p99_last_window_s"], r["ratio_last_to_first"], r["pauses_over_1s"],
         r["longest_pause_s"]]
        for r in data["runs"]
    ]  # fmt: skip
    header = ["events/s asked", "events/s reached", "minutes", "maintenance runs", "p99 first window (s)",
              "p99 last window (s)", "ratio", "pauses > 1 s", "longest pause (s)"]  # fmt: skip
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


@dataclass(frozen=True)
class Figure:
    """A measure's figure in one results file: the value held against the target, and how the table states it."""

    value: float
    text: str


@dataclass(frozen=True)
class Measure:
    """A headline measure: its target, the results file it is read from and the command that measures it."""

    name: str
    target: str  # as the table states it
    bound: float  # the target's number, in the unit of Figure.value
    at_least: bool  # True: met when the figure is at least the bound; False: at most
    results: str  # benchmarks/results/<results>.json
    command: str
    figure: Callable[[dict[str, Any]], Figure | None]  # from a results file with at least one run

    def met(self, figure: Figure) -> bool:
        return figure.value >= self.bound if self.at_least else figure.value <= self.bound


def _reached(run: dict[str, Any]) -> bool:
    """A live run stands for its asked rate only if the producers reached it (within 5 %); runs from before the
    reached rate was recorded do not."""
    return "achieved_eps" in run and run["achieved_eps"] >= 0.95 * run["rate_eps"]


def _p99_at(rate: float, trigger_s: float | None = None) -> Callable[[dict[str, Any]], Figure | None]:
    """The best p99 among the runs that reached ``rate`` (at ``trigger_s`` only, if given), beside the others."""

    def read(data: dict[str, Any]) -> Figure | None:
        runs = [
            r
            for r in data["runs"]
            if r["rate_eps"] == rate and _reached(r) and (trigger_s is None or r["trigger_s"] == trigger_s)
        ]
        if not runs:
            return None
        best = min(runs, key=lambda r: r["p99_s"])
        text = f"**{best['p99_s']:.2f} s**"
        if trigger_s is None:
            text += f" with trigger {best['trigger_s']:g} s"
            others = [f"{r['p99_s']:.2f} s with {r['trigger_s']:g} s" for r in runs if r is not best]
            text += f" ({', '.join(others)})" if others else ""
        return Figure(best["p99_s"], text)

    return read


def _catch_up(data: dict[str, Any]) -> Figure | None:
    runs = [r for r in data["runs"] if r["events"] == 1_000_000]
    if not runs:
        return None
    run = runs[-1]
    return Figure(run["events_per_s"], f"**{run['events_per_s']:,.0f} events/s** (1M events in {run['seconds']:g} s)")


def _first_visible(data: dict[str, Any]) -> Figure:
    run = data["runs"][-1]
    fresh, restart = run["first_visible_s"], run["restart_visible_s"]
    return Figure(max(fresh, restart), f"**{fresh:.2f} s** on a fresh lake, **{restart:.2f} s** after a SIGKILL")


def _restart_ratio(data: dict[str, Any]) -> Figure:
    run = data["runs"][-1]
    records = run["restart_batches"][0]["records"] if run.get("restart_batches") else None
    held = f" for {records:,} records" if records is not None else ""
    text = f"**{run['restart_ratio']:.2f}×** ({run['restart_first_batch_s']:.2f} s{held}, a steady batch"
    return Figure(run["restart_ratio"], f"{text} {run['steady_batch_s']:.2f} s)")


def _drift_ratio(data: dict[str, Any]) -> Figure:
    run = data["runs"][-1]
    reached = f", {run['achieved_eps']:,.0f} events/s reached" if "achieved_eps" in run else ""
    text = f"**{run['ratio_last_to_first']:.2f}×** (p99 {run['p99_first_window_s']:.2f} s first, "
    failed = "; **a maintenance round failed**" if run.get("maintenance_failures") else ""
    return Figure(run["ratio_last_to_first"], f"{text}{run['p99_last_window_s']:.2f} s last{reached}{failed})")


def _longest_pause(data: dict[str, Any]) -> Figure | None:
    run = data["runs"][-1]
    if "longest_pause_s" not in run:
        return None
    text = f"**{run['longest_pause_s']:.2f} s** longest ({run['pauses_over_1s']} over 1 s in the 30 minutes)"
    return Figure(run["longest_pause_s"], text)


def _millions(events: int) -> str:
    return f"{events / 1_000_000:g}M"


def _spark_over_duckdb(data: dict[str, Any]) -> Figure:
    runs = data["runs"]
    ratios = ", ".join(f"**{r['ratio']:.1f}×** at {_millions(r['events'])} events" for r in runs)
    return Figure(max(r["ratio"] for r in runs), ratios)


def _gold_day(data: dict[str, Any]) -> Figure | None:
    runs = [r for r in data["runs"] if r["events"] == 1_000_000 and "dagster_day_s" in r]
    if not runs:
        return None
    return Figure(runs[-1]["dagster_day_s"], f"**{runs[-1]['dagster_day_s']:g} s**")


def _gold_over_duckdb(data: dict[str, Any]) -> Figure | None:
    runs = [r for r in data["runs"] if r["events"] >= 10_000_000 and "gold_ratio" in r]
    if not runs:
        return None
    run = runs[-1]
    text = f"**{run['gold_ratio']:.1f}×** ({run['dagster_day_s']:g} s against {run['duckdb_gold_s']:g} s)"
    return Figure(run["gold_ratio"], text)


def _day60_over_day1(data: dict[str, Any]) -> Figure:
    run = data["runs"][-1]
    text = f"**{run['day60_over_day1']:.2f}×** (day 60 {run['day60_s']:g} s, day 1 {run['day1_s']:g} s)"
    return Figure(run["day60_over_day1"], text)


def _backfill(data: dict[str, Any]) -> Figure:
    run = data["runs"][-1]
    text = f"**{run['backfill_60_days_s']:g} s** ({run['backfill_per_day_s']:g} s a day)"
    return Figure(run["backfill_60_days_s"], text)


# The targets, in one place: README.md's headline table is these, read from the results (docs/benchmarks.md).
MEASURES = [
    Measure("Kafka → silver p99 at 5,000 events/s, trigger 1 s", "≤ 3 s", 3.0, False, "freshness",
            "pytest benchmarks/test_freshness.py -m perf --full", _p99_at(5000, 1.0)),
    Measure("Kafka → silver p99 at 1,000 events/s, trigger 1 s", "≤ 1.5 s", 1.5, False, "freshness",
            "pytest benchmarks/test_freshness.py -m perf --full", _p99_at(1000, 1.0)),
    Measure("catch-up, 1M events to bronze + silver (`--available-now`)", "≥ 50,000 events/s", 50_000, True,
            "throughput", "pytest benchmarks/test_throughput.py -m perf --full", _catch_up),
    Measure("cold start: `shoplake stream` → first event in silver", "≤ 10 s", 10.0, False, "cold_start",
            "pytest benchmarks/test_cold_start.py -m perf --full", _first_visible),
    Measure("a restart's first batch against a steady one", "≤ 2×", 2.0, False, "cold_start",
            "pytest benchmarks/test_cold_start.py -m perf --full", _restart_ratio),
    Measure("no drift over 30 minutes at 5,000 events/s beside maintenance", "last 5 min p99 ≤ 1.2× first 5", 1.2,
            False, "drift", "pytest benchmarks/test_drift.py -m perf --full", _drift_ratio),
    Measure("the same run: pauses between batches", "none over 1 s", 1.0, False, "drift",
            "pytest benchmarks/test_drift.py -m perf --full", _longest_pause),
    Measure("one day's sales summary, Spark / DuckDB on the same files", "≤ 3×", 3.0, False, "gold",
            "pytest benchmarks/test_gold_vs_duckdb.py -m perf --full", _spark_over_duckdb),
    Measure("one day's whole gold through Dagster (7 assets, 5 checks)", "≤ 6 s at 1M", 6.0, False, "gold",
            "pytest benchmarks/test_gold_vs_duckdb.py -m perf --full", _gold_day),
    Measure("one day's whole gold through Dagster / DuckDB's seven tables, same files", "≤ 4× at 10M", 4.0, False,
            "gold", "pytest benchmarks/test_gold_vs_duckdb.py -m perf --full", _gold_over_duckdb),
    Measure("gold day 60 against day 1 at 50,000 events/day", "≤ 1.2×", 1.2, False, "gold_history",
            "pytest benchmarks/test_gold_history.py -m perf --full", _day60_over_day1),
    Measure("60-day backfill at 50,000 events/day, one Dagster run", "≤ 3 min", 180.0, False, "gold_history",
            "pytest benchmarks/test_gold_history.py -m perf --full", _backfill),
]  # fmt: skip


def _date(data: dict[str, Any]) -> str:
    """The day the results file was written (the run's end), from its machine record."""
    return str(data["machine"]["when"])[:10]


def headline(results: Path = RESULTS) -> str:
    """Every measure of :data:`MEASURES`: its target, the figure in the results, their date and whether met."""
    rows = []
    for measure in MEASURES:
        data = _load(measure.results, results)
        figure = measure.figure(data) if data is not None and data["runs"] else None
        if data is None or figure is None:
            rows.append([measure.name, measure.target, f"not measured yet (`{measure.command}`)", "—", "—"])
            continue
        met = "yes" if measure.met(figure) else "no"
        rows.append([measure.name, measure.target, figure.text, _date(data), met])
    return _table(["measure", "target", "measured", "date", "met"], rows)


def readme_block(results: Path = RESULTS) -> str:
    """The Markdown README.md holds between :data:`BEGIN` and :data:`END`, from the results files."""
    freshness = _load("freshness", results)
    if freshness is None:
        live = "Freshness: not measured yet (`pytest benchmarks/test_freshness.py -m perf --full`)."
    else:
        caption = (
            "Freshness: every event's Kafka timestamp → the commit of the silver snapshot that made it visible "
            f"(`benchmarks/results/freshness.json`, {_date(freshness)}):"
        )
        live = f"{caption}\n\n{_freshness(freshness)}"
    note = "<!-- generated by `python -m benchmarks.report --readme` from benchmarks/results/*.json; do not edit -->"
    return f"{note}\n\n{headline(results)}\n\n{live}\n"


def _readme_section(text: str) -> str | None:
    """What README.md holds between the markers, or None when they are not there once each, in order."""
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        return None
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end] if start <= end else None


def check_readme(readme: Path = README, results: Path = RESULTS) -> int:
    """0 when ``readme``'s benchmark block is what the results give; 1, with the difference, when it is not."""
    held = _readme_section(readme.read_text())
    if held is None:
        print(f"{readme}: no benchmark block (one {BEGIN} line, then one {END} line)", file=sys.stderr)
        return 1
    expected = readme_block(results)
    if held.strip("\n") == expected.strip("\n"):
        print(f"{readme}: the benchmark block matches {results}")
        return 0
    diff = difflib.unified_diff(
        held.strip("\n").splitlines(keepends=True),
        expected.strip("\n").splitlines(keepends=True),
        fromfile=f"{readme} (between the markers)",
        tofile="python -m benchmarks.report --readme",
    )
    print(
        f"{readme}: the benchmark block differs from what {results} gives; put the output of "
        f"`python -m benchmarks.report --readme` between the markers:\n",
        file=sys.stderr,
    )
    sys.stderr.writelines(line if line.endswith("\n") else f"{line}\n" for line in diff)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.report", description="The benchmark results as Markdown tables."
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--readme", action="store_true", help="print the block README.md holds between its markers")
    mode.add_argument(
        "--check-readme",
        action="store_true",
        help="exit 1 when the block of README.md or docs/benchmarks.md differs from it",
    )
    args = parser.parse_args(argv)
    if args.readme:
        print(readme_block(), end="")
        return 0
    if args.check_readme:
        return max(check_readme(document) for document in GENERATED_IN)
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
