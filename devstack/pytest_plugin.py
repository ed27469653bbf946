"""pytest fixtures for the project's suites: one SparkSession per test session, real services, a fresh lake.

Loaded by the repository's root ``conftest.py``. Services: each scenario runs on local processes (Kafka in KRaft
mode and s3proxy, from the project's Maven jars), and again on testcontainers (Kafka, MinIO) where a Docker
engine answers; without one those runs skip, saying so.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.jars import resolve
from devstack.services import Mode, Services, docker_available, start_services
from pipeline.config import Settings
from pipeline.kafka_topics import ensure_topics
from pipeline.spark_session import build_spark_session

ROOT = Path(__file__).resolve().parent.parent
JARS_HOME = Path(os.environ.get("SHOPLAKE_TEST_JARS_HOME", ROOT / ".shoplake"))
# The public REES46 clickstream sample the suites replay: beside the project unless the environment says where.
REES46_SAMPLE = Path(
    os.environ.get("SHOPLAKE_TEST_REES46_CSV", ROOT.parent / "shared" / "data" / "rees46" / "2019-Oct-head.csv")
)
REES46_MISSING = f"REES46 sample not found at {REES46_SAMPLE} (set SHOPLAKE_TEST_REES46_CSV to its path)"


@pytest.fixture(scope="session")
def jars_home() -> Path:
    """The folder holding resolved jars (resolved now if needed: Maven runs once per machine)."""
    resolve(JARS_HOME)
    return JARS_HOME


def make_settings(home: Path, jars_home: Path, **overrides: Any) -> Settings:
    """Settings for a test: everything under ``home``, a catalog and topic prefix of its own."""
    catalog_name = "lake_" + re.sub(r"[^a-z0-9]", "", uuid.uuid4().hex[:10])
    base: dict[str, Any] = {
        "home": home,
        "catalog": {"name": catalog_name},
        "spark": {
            "jars_dir": str(jars_home / "jars" / "spark"),
            "driver_memory": "3g",
            "shuffle_partitions": 2,
            # SHOPLAKE_TEST_COMET=1 runs a suite on Apache DataFusion Comet (`shoplake jars --comet` first).
            "comet": os.environ.get("SHOPLAKE_TEST_COMET") == "1",
        },
        "stream": {"trigger_seconds": 0.5},
        "kafka": {"topic_prefix": "t" + uuid.uuid4().hex[:8]},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return Settings(**base)


@pytest.fixture
def settings(tmp_path: Path, jars_home: Path):
    return make_settings(tmp_path, jars_home)


@pytest.fixture(scope="session")
def spark(jars_home: Path, tmp_path_factory: pytest.TempPathFactory):
    """The one SparkSession of the test run (local[2], small shuffles, UI off)."""
    session = build_spark_session(make_settings(tmp_path_factory.mktemp("spark-home"), jars_home))
    yield session
    session.stop()


@pytest.fixture
def lake(spark, settings):
    """``settings`` with its catalog registered on the shared session."""
    from pipeline.spark_session import build_spark_session

    build_spark_session(settings)
    return settings


def _start(mode: Mode, jars_home: Path, workdir: Path) -> Services:
    if mode is Mode.CONTAINERS and not docker_available():
        pytest.skip("no Docker engine answers: testcontainers cannot start Kafka/MinIO here (the local run covers it)")
    return start_services(jars_home, workdir, with_s3=True, mode=mode)


@pytest.fixture(scope="session")
def local_services(jars_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """Kafka and s3proxy as local processes, shared by the whole session."""
    services = _start(Mode.LOCAL, jars_home, tmp_path_factory.mktemp("services"))
    yield services
    services.stop()


@pytest.fixture(scope="session")
def container_services(jars_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    services = _start(Mode.CONTAINERS, jars_home, tmp_path_factory.mktemp("containers"))
    yield services
    services.stop()


@pytest.fixture(params=[Mode.LOCAL, Mode.CONTAINERS], ids=["local-processes", "testcontainers"])
def services(request: pytest.FixtureRequest) -> Services:
    """Both backends, one after the other."""
    fixture = "local_services" if request.param is Mode.LOCAL else "container_services"
    return request.getfixturevalue(fixture)


@pytest.fixture
def live(lake, local_services: Services):
    """Test settings pointing at the local broker, with the event topics created."""

    settings = local_services.apply(lake)
    ensure_topics(settings)
    return settings
