"""The catalog servers as local processes: they start, refuse a wrong login, keep secrets out of logs, stop clean."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from pathlib import Path

import psycopg2
import pytest

from devstack.postgres import PostgresServer, missing_postgres_reason, start_local_postgres
from devstack.process import ServiceError
from devstack.rest_catalog import access_token
from devstack.services import CatalogBackend, Mode, start_services
from pipeline.catalog import pyiceberg_catalog
from pipeline.config import CatalogType, Settings
from tests.integration.test_services import _gone

pytestmark = pytest.mark.cluster


def test_postgres_refuses_a_wrong_password_and_no_password_and_trusts_no_one(postgres: PostgresServer) -> None:
    endpoint = postgres.endpoint
    login = {"host": endpoint.host, "port": endpoint.port, "dbname": endpoint.database, "user": endpoint.user}
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(**login, password="wrong")
    with pytest.raises(psycopg2.OperationalError, match="no password supplied"):
        psycopg2.connect(**login, passfile="/dev/null")
    with (
        contextlib.closing(endpoint.connect()) as conn,
        conn.cursor() as cur,
    ):
        cur.execute("SHOW listen_addresses")
        assert cur.fetchone() == ("127.0.0.1",)
        cur.execute("SHOW password_encryption")
        assert cur.fetchone() == ("scram-sha-256",)
        # Every rule of the host-based authentication file asks for a SCRAM password: no trust entry.
        cur.execute("SELECT DISTINCT auth_method FROM pg_hba_file_rules")
        assert {method for (method,) in cur.fetchall()} == {"scram-sha-256"}


def test_missing_postgres_binaries_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("devstack.postgres.glob.glob", lambda pattern: [])
    reason = missing_postgres_reason()
    assert reason is not None
    assert "initdb, pg_ctl and postgres" in reason
    with pytest.raises(ServiceError, match="postgresql package"):
        start_local_postgres(tmp_path)


def test_rest_catalog_services_serve_pyiceberg_and_stop_without_a_trace(cluster_jars: Path, tmp_path: Path) -> None:
    if missing_postgres_reason() is not None:
        pytest.skip(missing_postgres_reason() or "")
    services = start_services(cluster_jars, tmp_path / "services", with_s3=True, catalog=CatalogBackend.REST)
    try:
        assert services.mode == Mode.LOCAL.value
        assert services.rest_catalog is not None
        assert services.postgres is not None
        uri, credential = services.rest_catalog.uri, services.rest_catalog.credential
        # Nobody in without credentials: no token, a made-up token, a wrong secret.
        for headers in ({}, {"Authorization": "Bearer made-up"}):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(urllib.request.Request(uri + "/v1/config", headers=headers), timeout=5)
            assert refused.value.code == 401
        client_id = credential.partition(":")[0]
        with pytest.raises(urllib.error.HTTPError) as refused:
            access_token(uri, f"{client_id}:not-the-secret")
        assert refused.value.code == 401
        token = access_token(uri, credential)
        config = urllib.request.Request(uri + "/v1/config", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(config, timeout=5) as response:
            assert "defaults" in json.load(response)
        settings = services.apply(Settings(home=tmp_path / "home"))
        assert settings.catalog.type is CatalogType.REST
        assert settings.warehouse_uri.startswith("s3://")
        catalog = pyiceberg_catalog(settings)
        catalog.create_namespace("smoke")
        assert ("smoke",) in catalog.list_namespaces()
        rest_log = Path(services.logs["rest-catalog"]).read_text()
        assert services.postgres.password not in rest_log, "the database password reached the REST server's log"
        assert credential.partition(":")[2] not in rest_log, "the client secret reached the REST server's log"
        pids = dict(services.pids)
        postgres_root = Path(services.postgres_root)
    finally:
        services.stop()
    assert set(pids) == {"kafka", "s3", "postgres", "rest-catalog"}
    assert all(_gone(pid) for pid in pids.values())
    assert not postgres_root.exists(), "the PostgreSQL data folder outlived the server"
