"""Iceberg's REST catalog server as a local process, backed by a JDBC catalog on PostgreSQL.

The server is ``org.apache.iceberg.rest.RESTCatalogServer`` (the program behind the ``apache/iceberg-rest-fixture``
image), run from the classpath ``jvm/rest-catalog/pom.xml`` assembles. It takes its backing catalog from
``CATALOG_*`` environment variables (``CATALOG_JDBC_USER`` becomes the property ``jdbc.user``, a double underscore
a dash: ``CATALOG_IO__IMPL`` is ``io-impl``), so the database password reaches it through the environment, never
the command line. Its Jetty server listens on every interface of the machine (the fixture has no host setting;
here the only network is loopback); its port is ``rest.port``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from devstack.jars import is_resolved, jars_dir
from devstack.postgres import PostgresEndpoint
from devstack.process import ManagedProcess, ServiceError, ensure_port_free, free_port, java_executable
from devstack.s3 import S3Endpoint

READY_TIMEOUT_S = 90.0
MAIN_CLASS = "org.apache.iceberg.rest.RESTCatalogServer"


@dataclass(frozen=True)
class RestCatalog:
    """A running REST catalog: its URL and the warehouse its tables live in."""

    uri: str
    warehouse: str
    backend_name: str


def rest_catalog_ready(uri: str) -> bool:
    """``GET /v1/config`` answers with a JSON document (the first call every Iceberg REST client makes)."""
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/v1/config", timeout=2) as response:
            return isinstance(json.load(response), dict)
    except (urllib.error.URLError, OSError, ValueError):
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
    env = backend_environment(postgres, warehouse, backend_name, s3) | {"CATALOG_REST_PORT": str(port)}
    cmd = [
        java,
        "-Xmx512m",
        # The server logs its backing catalog's properties at INFO, the JDBC password among them: keep that
        # one logger at WARN so the credentials never reach the log.
        "-Dorg.slf4j.simpleLogger.log.org.apache.iceberg.rest.RESTCatalogServer=warn",
        "-Dorg.slf4j.simpleLogger.showDateTime=true",
        "-cp",
        f"{jars_dir(home, 'rest-catalog')}/*",
        MAIN_CLASS,
    ]
    process = ManagedProcess.start(
        "rest-catalog", cmd, workdir / "rest-catalog.log", detach=detach, cwd=workdir, env=env
    )
    catalog = RestCatalog(f"http://127.0.0.1:{port}", warehouse, backend_name)
    process.wait_ready(lambda: rest_catalog_ready(catalog.uri), READY_TIMEOUT_S)
    return process, catalog
