"""The command line: deterministic logs, clear errors for bad arguments."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from shoplake.cli import main


def test_simulate_twice_gives_identical_files(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["simulate", "--scenario", "normal_day", "--seed", "7", "--events", "20000", "--out"]
    assert runner.invoke(main, [*args, str(tmp_path / "a.jsonl")]).exit_code == 0
    assert runner.invoke(main, [*args, str(tmp_path / "b.jsonl")]).exit_code == 0
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 20000
    assert (tmp_path / "a.jsonl.manifest.json").exists()


def test_simulate_needs_exactly_one_destination(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["simulate", "--kafka", "--out", str(tmp_path / "x.jsonl")])
    assert result.exit_code == 2
    assert "exactly one of --out FILE or --kafka" in result.output


def test_unknown_scenario_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["simulate", "--scenario", "nope", "--out", str(tmp_path / "x.jsonl")])
    assert result.exit_code == 1
    assert "unknown scenario 'nope'" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_bad_event_count_and_date_are_rejected(tmp_path: Path) -> None:
    assert CliRunner().invoke(main, ["simulate", "--events", "0", "--out", str(tmp_path / "x")]).exit_code == 2
    result = CliRunner().invoke(main, ["gold", "--date", "2026-13-01"])
    assert result.exit_code == 2
    assert "not a date" in result.output


def test_the_cluster_topology_keeps_its_warehouse_on_the_object_store(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SHOPLAKE_HOME", str(tmp_path))
    result = CliRunner().invoke(main, ["services", "up", "--topology", "cluster", "--no-s3"])
    assert result.exit_code == 2
    assert "--topology cluster keeps the warehouse on the object store" in result.output
    assert not (tmp_path / "services").exists()


def test_replay_rejects_a_file_that_is_not_a_log(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"topic": "page_view", "key": "u", "value": "{}"}\nnot json\n')
    result = CliRunner().invoke(main, ["replay", str(bad)])
    assert result.exit_code == 1
    assert "bad.jsonl:2" in result.output


def test_import_rees46_writes_a_replayable_log_and_reports_unmappable_lines(tmp_path: Path) -> None:
    csv = tmp_path / "sample.csv"
    csv.write_text(
        "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\r\n"
        "2019-10-01 00:00:00 UTC,view,1,10,,acme,0.00,7,s1\r\n"
        "2019-10-01 00:00:00 UTC,view,1,10,,acme,0.00,7,s1\r\n"
        "2019-10-01 00:00:01 UTC,purchase,1,10,a.b,,12.50,7,s1\r\n"
        "2019-10-01 00:00:02 UTC,view,2,10,,acme,3.00,8\r\n"
    )
    out = tmp_path / "log.jsonl"
    result = CliRunner().invoke(main, ["import", "rees46", str(csv), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "line 5 not mapped" in result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 4
    assert lines[0] == lines[1], "an exact duplicate row is a redelivery of the same event"
    purchase = json.loads(lines[2]["value"])
    assert (purchase["total_amount"], purchase["items"][0]["category"], "brand" in purchase["items"][0]) == (
        "12.50",
        "a.b",
        False,
    )
    assert lines[3]["value"].startswith("2019-10-01 00:00:02 UTC,view")


def test_import_rejects_a_file_of_another_format(tmp_path: Path) -> None:
    other = tmp_path / "other.csv"
    other.write_text("a,b,c\n1,2,3\n")
    result = CliRunner().invoke(main, ["import", "rees46", str(other), "--out", str(tmp_path / "x.jsonl")])
    assert result.exit_code == 1
    assert "not a REES46 Open CDP file" in result.output


def test_an_unexpected_exception_is_a_bug_and_keeps_its_traceback(tmp_path: Path, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise ValueError("a bug, not a user error")

    monkeypatch.setattr("simulation.sinks.write_log", broken)
    result = CliRunner().invoke(main, ["simulate", "--events", "10", "--out", str(tmp_path / "x.jsonl")])
    assert isinstance(result.exception, ValueError)
    assert "error:" not in result.output


def test_an_unwritable_log_path_is_a_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(main, ["simulate", "--events", "10", "--out", str(blocker / "x.jsonl")])
    assert result.exit_code == 1
    assert "error: cannot write" in result.output
    assert "Traceback" not in result.output


class FakeProducer:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_the_producer_is_closed_when_sending_fails(tmp_path: Path, monkeypatch) -> None:
    from simulation.sinks import SinkError

    producer = FakeProducer()

    def failing_send(*args, **kwargs):
        raise SinkError("3 record(s) were not delivered")

    monkeypatch.setattr("shoplake.runtime.with_services", lambda settings, **_: settings)
    monkeypatch.setattr("shoplake.runtime.ensure_topics", lambda settings: [])
    monkeypatch.setattr("shoplake.runtime.make_producer", lambda servers: producer)
    monkeypatch.setattr("shoplake.runtime.send", failing_send)
    log = tmp_path / "ok.jsonl"
    log.write_text('{"topic": "page_view", "key": "u", "value": "{}"}\n')
    result = CliRunner().invoke(main, ["replay", str(log)])
    assert result.exit_code == 1
    assert "error: 3 record(s) were not delivered" in result.output
    assert producer.closed


def test_ui_reports_configuration_errors_in_one_line(monkeypatch) -> None:
    from pipeline.config import ConfigurationError

    def bad_settings():
        raise ConfigurationError("SHOPLAKE_HOME is not a folder")

    monkeypatch.setattr("shoplake.runtime.load_settings", bad_settings)
    result = CliRunner().invoke(main, ["ui"])
    assert result.exit_code == 1
    assert "error: SHOPLAKE_HOME is not a folder" in result.output


def test_ui_runs_this_interpreters_dagster_on_loopback(tmp_path: Path, monkeypatch) -> None:
    import sys

    calls = []
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setattr("subprocess.call", lambda cmd, env: calls.append(cmd) or 0)
    result = CliRunner().invoke(main, ["ui", "--port", "3111"])
    assert result.exit_code == 0, result.output
    assert calls == [
        [
            sys.executable,
            "-m",
            "dagster",
            "dev",
            "-m",
            "pipeline.orchestration.definitions",
            "-h",
            "127.0.0.1",
            "-p",
            "3111",
        ]
    ]


def test_an_error_line_is_never_broken_however_long_its_path(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 8)
    deep.mkdir(parents=True)
    other = deep / "other.csv"
    other.write_text("a,b,c\n1,2,3\n")
    result = CliRunner().invoke(main, ["import", "rees46", str(other), "--out", str(tmp_path / "x.jsonl")])
    assert result.exit_code == 1
    (line,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert f"{other}: not a REES46 Open CDP file" in line


def test_show_prints_a_products_state_at_an_event_time_and_refuses_tables_without_history(
    tmp_path: Path, monkeypatch
) -> None:
    import datetime as dt
    from decimal import Decimal

    from pipeline.catalog import append_rows, pyiceberg_catalog
    from pipeline.config import Settings
    from pipeline.tables import PRODUCTS

    monkeypatch.setenv("SHOPLAKE_HOME", str(tmp_path))

    def at(hour: int) -> dt.datetime:
        return dt.datetime(2026, 11, 2, hour, tzinfo=dt.UTC)

    def version(product: str, number: int, start: int, end: int | None, price: str | None, stock: int) -> dict:
        return {"product_id": product, "version": number, "valid_from": at(start),
                "valid_to": at(end) if end else None, "is_current": end is None,
                "price": Decimal(price) if price else None, "stock_level": stock, "rating": None,
                "event_id": f"e-{product}-{number}"}  # fmt: skip

    append_rows(
        pyiceberg_catalog(Settings(home=tmp_path)),
        PRODUCTS,
        [
            version("p1", 1, 9, 10, None, 5),
            version("p1", 2, 10, None, "10.00", 0),
            version("p2", 1, 8, None, "3.99", 9),
        ],
    )

    def show(*options: str) -> str:
        result = CliRunner().invoke(main, ["show", "silver.products", *options], terminal_width=200)
        assert result.exit_code == 0, result.output
        return result.output

    before = show("--in-force-at", "2026-11-02T09:59:59", "--where", "product_id=p1")
    assert "1 row(s)" in before
    assert "e-p1-1" in before
    assert "e-p1-2" not in before
    at_ten = show("--in-force-at", "2026-11-02T10:00:00+00:00", "--where", "product_id=p1")  # valid_from is inclusive
    assert "1 row(s)" in at_ten
    assert "e-p1-2" in at_ten
    assert "2 row(s)" in show("--in-force-at", "2026-11-02T09:30:00")  # p1's first version and p2's
    assert "0 row(s)" in show("--in-force-at", "2026-11-02T07:00:00")  # before any version

    no_history = CliRunner().invoke(main, ["show", "silver.purchases", "--in-force-at", "2026-11-02T10:00:00"])
    assert no_history.exit_code == 2
    assert "has no history" in no_history.output
    bad_column = CliRunner().invoke(main, ["show", "silver.products", "--where", "colour=red"])
    assert bad_column.exit_code == 2
    assert "no column 'colour'" in bad_column.output
