"""Shared fixtures: one SparkSession per test session, one Kafka broker per session, a fresh lake per test.

Tests never read a developer's configuration: SHOPLAKE_* variables are removed and the working directory is a
temporary one (no shoplake.toml), and every test builds its Settings explicitly.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
JARS_HOME = Path(os.environ.get("SHOPLAKE_TEST_JARS_HOME", ROOT / ".shoplake"))

for name in [n for n in os.environ if n.startswith("SHOPLAKE_") and n != "SHOPLAKE_TEST_JARS_HOME"]:
    del os.environ[name]
os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration is marked ``integration``, under tests/perf ``perf``."""
    for item in items:
        parts = Path(str(item.path)).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        if "perf" in parts or "benchmarks" in parts:
            item.add_marker(pytest.mark.perf)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cwd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(previous)


@pytest.fixture(scope="session")
def jars_home() -> Path:
    """The folder holding resolved jars (resolved now if needed: Maven runs once per machine)."""
    from devstack.jars import resolve

    resolve(JARS_HOME)
    return JARS_HOME


def make_settings(home: Path, jars_home: Path, **overrides):
    """Settings for a test: everything under ``home``, a catalog name of its own."""
    from pipeline.config import Settings

    catalog_name = "lake_" + re.sub(r"[^a-z0-9]", "", uuid.uuid4().hex[:10])
    base = {
        "home": home,
        "catalog": {"name": catalog_name},
        "spark": {
            "jars_dir": str(jars_home / "jars" / "spark"),
            "driver_memory": "3g",
            "shuffle_partitions": 2,
        },
        "stream": {"trigger_seconds": 0.5},
        "kafka": {"topic_prefix": "t" + uuid.uuid4().hex[:8]},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}  # type: ignore[dict-item]
        else:
            base[key] = value
    return Settings(**base)


@pytest.fixture
def settings(tmp_path: Path, jars_home: Path):
    return make_settings(tmp_path, jars_home)


@pytest.fixture(scope="session")
def spark(jars_home: Path, tmp_path_factory: pytest.TempPathFactory):
    """The one SparkSession of the test run (local[2], small shuffles, UI off)."""
    from pipeline.spark_session import build_spark_session

    session = build_spark_session(make_settings(tmp_path_factory.mktemp("spark-home"), jars_home))
    yield session
    session.stop()


@pytest.fixture
def lake(spark, settings):
    """``settings`` with its catalog registered on the shared session."""
    from pipeline.spark_session import build_spark_session

    build_spark_session(settings)
    return settings
