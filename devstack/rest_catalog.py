"""Iceberg's REST catalog server as a local process, backed by a JDBC catalog on PostgreSQL, behind OAuth2 client
credentials.

The server is the servlet of ``org.apache.iceberg.rest.RESTCatalogServer`` (the program behind the
``apache/iceberg-rest-fixture`` image), from the classpath ``jvm/rest-catalog/pom.xml`` assembles, run by
``jvm/shoplake-rest-catalog``'s ``AuthenticatingCatalogServer``: the fixture authenticates nothing, so that main
puts a filter in front of it. A client exchanges the client id and secret for a bearer token at
``/v1/oauth/tokens``; every other request without a live token gets 401. It takes its backing catalog from
``CATALOG_*`` environment variables (``CATALOG_JDBC_USER`` becomes the property ``jdbc.user``, a double underscore
a dash: ``CATALOG_IO__IMPL`` is ``io-impl``) and its client credentials from ``SHOPLAKE_REST_CLIENT_*``, so the
secrets reach it through the environment, never the command line. It listens on 127.0.0.1 only, port
``rest.port``.
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from devstack.jars import is_resolved, jars_dir
from devstack.postgres import PostgresEndpoint
from devstack.process import ManagedProcess, ServiceError, ensure_port_free, free_port, java_executable
from devstack.s3 import S3Endpoint

READY_TIMEOUT_S = 90.0
MAIN_CLASS = "org.apache.iceberg.rest.AuthenticatingCatalogServer"
CLIENT_ID = "shoplake"


@dataclass(frozen=True)
class RestCatalog:
    """A running REST catalog: its URL and the warehouse its tables live in."""

    uri: str
    warehouse: str
    backend_name: str
    credential: str = ""  # ``client_id:client_secret`` a client exchanges for a token (a secret: never print it)


def access_token(uri: str, credential: str, timeout_s: float = 5.0) -> str:
    """A bearer token for ``credential`` from the server's token endpoint (OAuth2 client credentials)."""
    client_id, _, secret = credential.partition(":")
    form = urllib.parse.urlencode(
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret, "scope": "catalog"}
    ).encode()
    with urllib.request.urlopen(uri.rstrip("/") + "/v1/oauth/tokens", data=form, timeout=timeout_s) as response:
        return str(json.load(response)["access_token"])


def rest_catalog_ready(uri: str, credential: str) -> bool:
    """``GET /v1/config`` answers with a JSON document (the first call every Iceberg REST client makes, after
    exchanging its credential for a token)."""
    try:
        token = access_token(uri, credential, timeout_s=2)
        request = urllib.request.Request(uri.rstrip("/") + "/v1/config", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=2) as response:
            return isinstance(json.load(response), dict)
    except (urllib.error.URLError, OSError, ValueError, KeyError):
        return False


def backend_environment(
    postgres: PostgresEndpoint, warehouse: str, backend_name: str, s3: S3Endpoint | None
) -> dict[str, str]:
    """The ``CATALOG_*`` variables the server builds its backing catalog from (holds the database password)."""
    env = {
        "CATALOG_CATALOG__IMPL": "org.apache.iceberg.jdbc.JdbcCatalog",
        "CATALOG_URI": postgres.jdbc_url,
        "CATALOG_JDBC_USER": postgres.user,
        "CATALOG_JDBC_PASSWORD": postgres.password,
        "CATALOG_JDBC_SCHEMA__VERSION": "V1",
        # Rows of the JDBC catalog tables are keyed by this name: one server, one set of tables.
        "CATALOG_CATALOG_NAME": backend_name,
        "CATALOG_WAREHOUSE": warehouse,
    }
    if warehouse.startswith("s3"):
        if s3 is None:
            raise ServiceError(f"the REST catalog's warehouse {warehouse} is on S3 but no object store is running")
        env |= {
            "CATALOG_IO__IMPL": "org.apache.iceberg.aws.s3.S3FileIO",
            "CATALOG_S3_ENDPOINT": s3.endpoint,
            "CATALOG_S3_PATH__STYLE__ACCESS": "true",
            "CATALOG_S3_ACCESS__KEY__ID": s3.access_key_id,
            "CATALOG_S3_SECRET__ACCESS__KEY": s3.secret_access_key,
            "CATALOG_CLIENT_REGION": s3.region,
        }
    return env


def start_rest_catalog(
    home: Path,
    workdir: Path,
    postgres: PostgresEndpoint,
    warehouse: str,
    *,
    backend_name: str = "rest_backend",
    s3: S3Endpoint | None = None,
    port: int | None = None,
    detach: bool = False,
) -> tuple[ManagedProcess, RestCatalog]:
    """Start the server on ``port`` (a free one by default) and wait until ``GET /v1/config`` answers."""
    if not is_resolved(home, "rest-catalog"):
        raise ServiceError("REST catalog jars are not resolved: run `shoplake jars --rest-catalog` first")
    java = java_executable(17)
    if port is None:
        port = free_port()
    else:
        ensure_port_free(port, "REST catalog")
    workdir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    env = backend_environment(postgres, warehouse, backend_name, s3) | {
        "CATALOG_REST_PORT": str(port),
        "SHOPLAKE_REST_CLIENT_ID": CLIENT_ID,
        "SHOPLAKE_REST_CLIENT_SECRET": secret,
    }
    cmd = [
        java,
        "-Xmx512m",
        "-Dorg.slf4j.simpleLogger.showDateTime=true",
        "-cp",
        f"{jars_dir(home, 'rest-catalog')}/*",
        MAIN_CLASS,
    ]
    process = ManagedProcess.start(
        "rest-catalog", cmd, workdir / "rest-catalog.log", detach=detach, cwd=workdir, env=env
    )
    catalog = RestCatalog(f"http://127.0.0.1:{port}", warehouse, backend_name, f"{CLIENT_ID}:{secret}")
    process.wait_ready(lambda: rest_catalog_ready(catalog.uri, catalog.credential), READY_TIMEOUT_S)
    return process, catalog
