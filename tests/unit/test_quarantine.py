"""The quarantine summary on tiny Arrow tables: reasons per arrival day and topic, samples safe to print."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from click.testing import CliRunner
from rich.console import Console

from pipeline.quarantine import arrival_filter, reason_counts, rule_samples, safe_text, summarize
from pipeline.tables import QUARANTINE_EVENTS
from shoplake.cli import main
from shoplake.views import quarantine_renderable

DAY = dt.date(2026, 11, 2)


def at(day: int, hour: int) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, tzinfo=dt.UTC)


def records() -> pa.Table:
    return pa.table(
        {
            "kafka_topic": ["t.page_view", "t.page_view", "t.page_view", "t.purchase", None],
            "kafka_partition": pa.array([0, 0, 1, 0, None], pa.int32()),
            "kafka_offset": pa.array([7, 3, 1, 1, None], pa.int64()),
            "kafka_timestamp": pa.array([at(2, 9), at(2, 9), at(2, 23), at(3, 0), None], pa.timestamp("us", tz="UTC")),
            "value": pa.array([b'{"a":', b"\xff\x1b[2J[bold]x", b"{}", b"y" * 500, None], pa.binary()),
            "failed_rules": pa.array(
                [["invalid_json"], ["invalid_utf8"] * 2, ["invalid_json"], ["missing:a", "negative:b"], None],
                pa.list_(pa.string()),
            ),
        }
    )


def test_each_rule_counts_once_per_record_per_arrival_day_and_topic() -> None:
    got = [tuple(r.values()) for r in reason_counts(records()).to_pylist()]
    assert got == [
        (DAY, "t.page_view", "invalid_json", 2),
        (DAY, "t.page_view", "invalid_utf8", 1),  # listed twice, counted once
        (DAY + dt.timedelta(days=1), "t.purchase", "missing:a", 1),
        (DAY + dt.timedelta(days=1), "t.purchase", "negative:b", 1),
        (None, None, "(none)", 1),  # the null row is counted, not lost
    ]


def test_samples_are_the_first_to_arrive_and_safe_to_print() -> None:
    samples = {(s.rule, s.kafka_topic): s for s in rule_samples(records(), per_rule=1)}
    assert samples[("invalid_json", "t.page_view")].samples == ['{"a":']  # 09:00 before 23:00
    assert samples[("invalid_json", "t.page_view")].records == 2
    assert samples[("invalid_utf8", "t.page_view")].samples == ["\ufffd\\x1b[2J[bold]x"]
    assert samples[("(none)", None)].samples == ["(no value)"]
    assert len(samples[("missing:a", "t.purchase")].samples[0]) == 80


def test_safe_text_replaces_bad_bytes_escapes_controls_and_cuts() -> None:
    assert safe_text(b"ok") == "ok"
    assert safe_text(b"a\nb\x00") == "a\\nb\\x00"
    assert safe_text("é".encode() * 100, limit=10) == "é" * 9 + "…"
    assert safe_text(None) == "(no value)"


def test_arrival_days_become_a_range_on_the_partition_column() -> None:
    both = str(arrival_filter(DAY, DAY))
    assert "GreaterThanOrEqual(term=Reference(name='kafka_timestamp')" in both
    assert "LessThan(term=Reference(name='kafka_timestamp')" in both
    assert str(arrival_filter(None, None)) == "AlwaysTrue()"


def test_the_summary_fits_80_columns_and_prints_payloads_as_text() -> None:
    console = Console(width=80, record=True, color_system=None)
    console.print(quarantine_renderable(summarize(records()), "t", DAY, None))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "invalid_json on page_view (2 records)" in text
    assert "[bold]x" in text, "markup in a payload is shown, not interpreted"
    assert "\x1b" not in text


def test_bad_or_reversed_dates_are_usage_errors() -> None:
    result = CliRunner().invoke(main, ["quarantine", "summary", "--since", "2026-02-30"])
    assert result.exit_code == 2
    assert "not a date" in result.output
    result = CliRunner().invoke(main, ["quarantine", "summary", "--since", "2026-11-03", "--until", "2026-11-02"])
    assert result.exit_code == 2
    assert "before --since" in result.output


def test_reading_selects_the_arrival_days(tmp_path) -> None:
    # Unpartitioned here (PyIceberg writes day partitions only with pyiceberg-core); the real table's day
    # partitions are read in tests/integration/test_live_and_quarantine.py.
    from pyiceberg.catalog import load_catalog

    from pipeline.quarantine import read_quarantine

    catalog = load_catalog("t", type="sql", uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=tmp_path.as_uri())
    catalog.create_namespace("quarantine")
    table = catalog.create_table(QUARANTINE_EVENTS.identifier, schema=records().schema)
    table.append(records())

    def arrived(since: dt.date | None, until: dt.date | None) -> list:
        return sorted(read_quarantine(catalog, since, until)["kafka_offset"].to_pylist(), key=str)

    assert arrived(DAY, DAY) == [1, 3, 7]  # 2 Nov 09:00 and 23:00 UTC
    assert arrived(DAY + dt.timedelta(days=1), None) == [1]
    assert arrived(None, None) == [1, 1, 3, 7, None]  # the record without a timestamp too
