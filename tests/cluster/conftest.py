"""Fixtures of the cluster suite: the production catalogs as local servers, selected through settings.

PostgreSQL runs from the machine's binaries (the suite skips, naming the missing piece, where there are none);
Iceberg's REST catalog server runs from ``jvm/rest-catalog/pom.xml``'s jars (resolved here if needed), one per
test so that each test's tables start empty; Kafka and s3proxy are the session's local processes. Every test
picks its catalog the way a deployment does: ``SHOPLAKE_CATALOG__*`` environment variables, read by ``Settings``
in the test and again by the Dagster resource in the gold runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from devstack.jars import OPTIONAL_PROFILES, PROFILES, resolve
from devstack.postgres import PostgresServer, missing_postgres_reason, start_local_postgres
from devstack.pytest_plugin import make_settings
from devstack.rest_catalog import RestCatalog, start_rest_catalog
from devstack.services import WAREHOUSE_BUCKET, Services
from pipeline.config import KafkaSettings, Settings
from pipeline.spark_session import build_spark_session


@pytest.fixture(scope="session")
def cluster_jars(jars_home: Path) -> Path:
    """The default jars and the REST catalog server's (Maven runs once per machine)."""
    resolve(jars_home, PROFILES + OPTIONAL_PROFILES)
    return jars_home


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (each test's catalog rows are keyed by a catalog name of its own)."""
    reason = missing_postgres_reason()
    if reason is not None:
        pytest.skip(reason)
    server = start_local_postgres(tmp_path_factory.mktemp("postgres"))
    yield server
    server.stop()


def s3_environment(services: Services) -> dict[str, str]:
    assert services.s3 is not None
    return {
        "SHOPLAKE_CATALOG__S3_ENDPOINT": services.s3.endpoint,
        "SHOPLAKE_CATALOG__S3_REGION": services.s3.region,
        "SHOPLAKE_CATALOG__S3_ACCESS_KEY_ID": services.s3.access_key_id,
        "SHOPLAKE_CATALOG__S3_SECRET_ACCESS_KEY": services.s3.secret_access_key,
    }


@pytest.fixture
def jdbc_catalog(
    spark, cluster_jars: Path, postgres: PostgresServer, local_services: Services, tmp_path: Path, monkeypatch
) -> Settings:
    """Settings for the PostgreSQL JDBC catalog (warehouse on the S3 store), chosen through the environment."""
    endpoint = postgres.endpoint
    environment = {
        "SHOPLAKE_CATALOG__TYPE": "sql",
        "SHOPLAKE_CATALOG__URI": endpoint.sqlalchemy_url,
        "SHOPLAKE_CATALOG__JDBC_USER": endpoint.user,
        "SHOPLAKE_CATALOG__JDBC_PASSWORD": endpoint.password,
        "SHOPLAKE_CATALOG__WAREHOUSE": f"s3://{WAREHOUSE_BUCKET}/{_folder_name(tmp_path)}/",
        "SHOPLAKE_KAFKA__BOOTSTRAP_SERVERS": local_services.kafka_bootstrap,
        **s3_environment(local_services),
    }
    return _settings_from_environment(spark, tmp_path, cluster_jars, environment, monkeypatch)


def _folder_name(tmp_path: Path) -> str:
    return tmp_path.name.replace("-", "_").lower()[-40:]


@pytest.fixture
def rest_catalog_server(
    cluster_jars: Path, postgres: PostgresServer, local_services: Services, tmp_path: Path
) -> Iterator[RestCatalog]:
    """A REST catalog server of the test's own, backed by the session's PostgreSQL, warehouse on the S3 store."""
    backend = "rest_" + _folder_name(tmp_path)
    process, catalog = start_rest_catalog(
        cluster_jars,
        tmp_path / "rest-catalog",
        postgres.endpoint,
        f"s3://{WAREHOUSE_BUCKET}/{backend}/",
        backend_name=backend,
        s3=local_services.s3,
    )
    yield catalog
    process.stop()


@pytest.fixture
def rest_catalog(
    spark, cluster_jars: Path, rest_catalog_server: RestCatalog, local_services: Services, tmp_path: Path, monkeypatch
) -> Settings:
    """Settings for the REST catalog, chosen through the environment (no database login on this side; the
    server's client credentials)."""
    environment = {
        "SHOPLAKE_CATALOG__TYPE": "rest",
        "SHOPLAKE_CATALOG__URI": rest_catalog_server.uri,
        "SHOPLAKE_CATALOG__REST_CREDENTIAL": rest_catalog_server.credential,
        "SHOPLAKE_CATALOG__WAREHOUSE": rest_catalog_server.warehouse,
        "SHOPLAKE_KAFKA__BOOTSTRAP_SERVERS": local_services.kafka_bootstrap,
        **s3_environment(local_services),
    }
    return _settings_from_environment(spark, tmp_path, cluster_jars, environment, monkeypatch)


def _settings_from_environment(
    spark, home: Path, jars: Path, environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Settings:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    # The test's own home, catalog name, topics and Spark sizing as keywords; the catalog from the environment.
    settings = make_settings(home, jars)
    for name, value in settings.to_env().items():  # the gold runs rebuild Settings from the environment
        monkeypatch.setenv(name, value)
    build_spark_session(settings)  # the catalog, with the JDBC login as its properties
    return settings


def partition_leaders(kafka: KafkaSettings, topic: str, replicas: int) -> dict[int, int]:
    """Each partition's leader node id; every partition must have ``replicas`` replicas."""
    admin = KafkaAdminClient(
        bootstrap_servers=kafka.bootstrap_servers, request_timeout_ms=10000, **kafka.python_client()
    )
    try:
        (described,) = admin.describe_topics([topic])
    finally:
        admin.close()
    assert all(len(p["replica_nodes"]) == replicas for p in described["partitions"]), described
    return {p["partition_index"]: p["leader_id"] for p in described["partitions"]}
