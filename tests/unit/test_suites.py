"""The suite runner behind `make test`: suites in order, each one's wall time, a stop at the first failure."""

from __future__ import annotations

import sys

import pytest

from devstack import suites


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_suites_run_in_order_and_the_first_failure_stops_the_run_with_its_exit_code(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        suites,
        "SUITES",
        {
            "first": [_python("print('first ran')")],
            "broken": [_python("raise SystemExit(3)"), _python("print('never')")],
            "last": [_python("print('last ran')")],
        },
    )
    assert suites.run(["first", "broken", "last"]) == 3
    out = capfd.readouterr().out
    assert [line for line in out.splitlines() if line.endswith(" ran") or line == "never"] == ["first ran"]
    table = out[out.index("suite wall times") :].splitlines()[1:]
    assert [(row.split()[0], row.split()[-1]) for row in table[:-1]] == [("first", "ok"), ("broken", "FAILED")]
    assert table[-1].split()[0] == "total"


def test_an_unknown_suite_is_refused_naming_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert suites.run(["unit", "unti"]) == 2
    assert "unknown suite(s) unti; known: lint, unit, integration, extended, bench-quick" in capsys.readouterr().err
