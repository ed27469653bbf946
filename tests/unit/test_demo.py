"""The demo's screen output: gold tables and the final summary fit an 80-column terminal, nothing cut."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from pathlib import Path

from rich.console import Console

from pipeline.config import Settings
from pipeline.observability import Freshness, LatencySummary
from shoplake.demo import GOLD_METRICS, format_seconds, gold_matches, gold_tables, latency_text, summary_text


def _day(day: dt.date, **overrides: object) -> dict:
    row: dict = {
        "event_date": day,
        "orders": 1234,
        "revenue": Decimal("1234567.89"),
        "gross_revenue": Decimal("1300000.00"),
        "discount_total": Decimal("65432.11"),
        "average_order_value": Decimal("1000.46"),
        "units": 4321,
        "unique_customers": 987,
        "page_views": 123456,
        "visitors": 1999,
        "sessions": 2500,
        "converted_sessions": 1100,
        "conversion_rate": Decimal("0.440000"),
        "revenue_per_visitor": Decimal("617.59"),
        "top_payment_method": "credit_card",
    }
    return row | overrides


def _render(renderable: object, width: int = 80, soft_wrap: bool = False) -> list[str]:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(renderable, soft_wrap=soft_wrap)
    return out.getvalue().splitlines()


def test_one_day_of_gold_is_one_metric_per_row_within_80_columns() -> None:
    day = dt.date(2026, 11, 2)
    gold = [_day(day, top_payment_method=None)]  # a null shows as "-"
    expected = {day: {"orders": 1234, "revenue": Decimal("1234567.89")}}
    (table,) = gold_tables(gold, expected, width=80)
    lines = _render(table)
    assert max(len(line) for line in lines) <= 80
    assert not any("…" in line for line in lines)
    for metric in GOLD_METRICS:
        assert any(line.split()[:1] == [metric] for line in lines), metric
    assert any("1234567.89" in line and line.split()[0] == "revenue" for line in lines)
    assert any(line.split() == ["top_payment_method", "-"] for line in lines)
    assert any(line.split() == ["oracle", "equal"] for line in lines)


def test_a_week_of_gold_splits_into_tables_that_each_fit_80_columns() -> None:
    days = [dt.date(2026, 11, 2) + dt.timedelta(days=i) for i in range(7)]
    gold = [_day(d) for d in days]
    expected = {d: {"orders": 1234} for d in days}
    expected[days[3]] = {"orders": 1}
    tables = gold_tables(gold, expected, width=80)
    assert len(tables) > 1
    lines = [line for table in tables for line in _render(table)]
    assert max(len(line) for line in lines) <= 80
    assert not any("…" in line for line in lines)
    assert all(sum(d.isoformat() in line for line in lines) == 1 for d in days), "every day heads one column"
    verdicts = [word for line in lines if line.split()[:1] == ["oracle"] for word in line.split()[1:]]
    assert verdicts == ["equal"] * 3 + ["DIFFERS"] + ["equal"] * 3
    assert not gold_matches(gold, expected)
    assert gold_matches(gold[:3], {d: {"orders": 1234} for d in days[:3]})
    assert not gold_matches(gold[:3], {d: {"orders": 1234} for d in days[:4]}), "a day missing from gold"


def test_the_summary_says_where_the_tables_are_and_what_to_try_next(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, catalog={"uri": f"sqlite:///{tmp_path}/demo/catalog.db"})
    # Printed soft-wrapped, as the demo does: a long path stays one line to copy, the terminal folds it.
    lines = _render(
        summary_text(settings, tmp_path / "demo" / "logs" / "spark.log", tmp_path / "demo" / "dagster", 119.6),
        soft_wrap=True,
    )
    text = "\n".join(lines)
    assert "Done in 2m 00s" in text
    assert "catalog.db" in text
    assert "spark.log" in text
    assert f"export DAGSTER_HOME={tmp_path / 'demo' / 'dagster'}" in text
    commands = [line.strip() for line in lines if line.strip().startswith("shoplake ")]
    assert [c.split("#")[0].split()[:2] for c in commands] == [
        ["shoplake", "show"],
        ["shoplake", "live"],
        ["shoplake", "ui"],
    ]
    assert all(len(line) <= 80 for line in lines if line.strip().startswith("shoplake "))
    assert format_seconds(3.25) == "3.2s"


def test_latency_text_reports_the_cold_start_apart_from_the_warm_events_and_hides_neither() -> None:
    freshness = Freshness(
        cold_start_s=7.84,
        warm=LatencySummary(events=19_000, p50_s=1.25, p95_s=2.0, p99_s=2.75, max_s=3.5),
        all=LatencySummary(events=20_000, p50_s=1.5, p95_s=4.0, p99_s=9.5, max_s=11.0),
    )
    lines = _render(latency_text(freshness, trigger_seconds=1.0), soft_wrap=True)
    text = " ".join(lines)
    assert "7.8s after the stream started" in text
    assert "19,000 events sent after that: p50 1.25s, p99 2.75s" in text
    assert "all 20,000 events" in text
    assert "p99 9.50s" in text


def test_latency_text_without_warm_events_still_reports_every_event() -> None:
    everything = LatencySummary(events=300, p50_s=5.0, p95_s=6.0, p99_s=6.5, max_s=7.0)
    text = " ".join(_render(latency_text(Freshness(6.0, None, everything), trigger_seconds=0.5), soft_wrap=True))
    assert "sent after that" not in text
    assert "all 300 events" in text
