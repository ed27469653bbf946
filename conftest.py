"""Test isolation for every suite (tests/, benchmarks/), and the project's fixtures (devstack.pytest_plugin).

Tests never read a developer's configuration: SHOPLAKE_* variables are removed (the suites' own SHOPLAKE_TEST_*
knobs stay) and the working directory is a temporary one (no shoplake.toml); every test builds its Settings
explicitly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["devstack.pytest_plugin"]

for name in [n for n in os.environ if n.startswith("SHOPLAKE_") and not n.startswith("SHOPLAKE_TEST_")]:
    del os.environ[name]
os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration is marked ``integration``, tests/cluster ``cluster``; tests/perf and
    benchmarks/ ``perf``."""
    for item in items:
        parts = Path(str(item.path)).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        if "cluster" in parts:
            item.add_marker(pytest.mark.cluster)
        if "perf" in parts or "benchmarks" in parts:
            item.add_marker(pytest.mark.perf)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cwd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(previous)
