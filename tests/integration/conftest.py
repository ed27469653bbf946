"""Real services for integration tests: a Kafka broker and an S3-compatible object store.

Each scenario runs on local processes (Kafka in KRaft mode and s3proxy, from the project's Maven jars), and
again on testcontainers (Kafka, MinIO) where a Docker engine answers; without one those runs skip, saying so.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.services import Mode, Services, docker_available, start_services


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
    from pipeline.kafka_topics import ensure_topics

    settings = local_services.apply(lake)
    ensure_topics(settings)
    return settings
