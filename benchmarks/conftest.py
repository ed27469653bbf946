"""Benchmark options: ``--full`` for the published numbers (default: the quick variant CI runs)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from benchmarks.harness import RESULTS, Results


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--full", action="store_true", help="full benchmark sizes; results go to benchmarks/results")


@pytest.fixture(scope="session")
def full(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--full"))


@pytest.fixture(scope="session")
def results(full: bool) -> Results:
    return Results(RESULTS if full else Path(tempfile.mkdtemp(prefix="shoplake-bench-")))
