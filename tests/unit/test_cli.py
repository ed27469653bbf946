"""The command line: deterministic logs, clear errors for bad arguments."""

from __future__ import annotations

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


def test_replay_rejects_a_file_that_is_not_a_log(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"topic": "page_view", "key": "u", "value": "{}"}\nnot json\n')
    result = CliRunner().invoke(main, ["replay", str(bad)])
    assert result.exit_code == 1
    assert "bad.jsonl:2" in result.output
