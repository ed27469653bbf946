"""A dirty day through Kafka, the stream and Dagster gold on each production catalog, read back with PyIceberg.

The catalog is chosen by settings alone (``SHOPLAKE_CATALOG__*``): the PostgreSQL JDBC catalog, and Iceberg's
REST catalog server backed by the same PostgreSQL, both with the warehouse on the S3 store. Each run ends with
the conservation audit and gold equal to the oracle, and checks that the tables really live where the settings
say (rows in PostgreSQL, objects on S3), so a silent fallback to the embedded SQLite catalog cannot pass.
"""

from __future__ import annotations

import contextlib
import json
import urllib.request
from pathlib import Path

import pytest
from dagster import DagsterInstance

from devstack.postgres import PostgresServer
from devstack.rest_catalog import RestCatalog, access_token
from pipeline.catalog import pyiceberg_catalog
from pipeline.config import CatalogType, Settings
from pipeline.kafka_topics import ensure_topics
from pipeline.orchestration.runs import materialize_gold
from pipeline.tables import BRONZE_EVENTS, GOLD_DAILY_SALES_SUMMARY, GOLD_TABLES, SILVER
from simulation.scenario import load_scenario
from tests.integration.helpers import (
    assert_gold_matches,
    assert_lake_matches,
    catch_up,
    send_log,
    truth_of,
    write_day,
)

pytestmark = pytest.mark.cluster

SCENARIO = "dirty_stream"
EVENTS = 3000


def _run_dirty_day(spark, settings: Settings, tmp_path: Path) -> None:
    """Send a dirty day to Kafka, catch the stream up, build gold through Dagster; assert audit and oracle."""
    scenario = load_scenario(SCENARIO)
    ensure_topics(settings)
    log = write_day(tmp_path / "dirty.jsonl", SCENARIO, seed=23, events=EVENTS)
    send_log(settings, log)
    catch_up(spark, settings, timeout_s=900)
    materialize_gold(settings, scenario.dates, DagsterInstance.ephemeral())
    truth = truth_of([log])
    assert sum(truth.rejected.values()) > 0, "the day is not dirty: no record to reject"
    assert truth.duplicates > 0, "the day is not dirty: no redelivery"
    assert_lake_matches(spark, settings, [log])  # conservation audit, silver and roll-ups == oracle (PyIceberg)
    assert_gold_matches(settings, truth, scenario.dates)


def _catalog_rows(postgres: PostgresServer, catalog_name: str) -> set[str]:
    """``namespace.table`` of every table the JDBC catalog ``catalog_name`` holds in PostgreSQL."""
    endpoint = postgres.endpoint
    with (
        contextlib.closing(endpoint.connect()) as conn,
        conn.cursor() as cur,
    ):
        cur.execute(
            "SELECT table_namespace, table_name, metadata_location FROM iceberg_tables WHERE catalog_name = %s",
            (catalog_name,),
        )
        rows = cur.fetchall()
    assert all(location.startswith("s3://") for _, _, location in rows), rows
    return {f"{namespace}.{name}" for namespace, name, _ in rows}


EXPECTED_TABLES = {BRONZE_EVENTS.identifier, *(spec.identifier for spec in SILVER.values())} | {
    spec.identifier for spec in GOLD_TABLES
}


def test_dirty_day_on_the_postgres_jdbc_catalog_is_conserved_and_gold_equals_the_oracle(
    spark, jdbc_catalog: Settings, postgres: PostgresServer, tmp_path: Path
) -> None:
    assert jdbc_catalog.catalog.type is CatalogType.SQL
    assert jdbc_catalog.catalog_uri.startswith("postgresql+psycopg2://127.0.0.1:")

    _run_dirty_day(spark, jdbc_catalog, tmp_path)

    assert _catalog_rows(postgres, jdbc_catalog.catalog.name) >= EXPECTED_TABLES
    assert not (jdbc_catalog.home / "catalog.db").exists(), "a SQLite catalog was created beside PostgreSQL"


def test_dirty_day_on_the_rest_catalog_is_conserved_and_gold_equals_the_oracle(
    spark, rest_catalog: Settings, rest_catalog_server: RestCatalog, postgres: PostgresServer, tmp_path: Path
) -> None:
    assert rest_catalog.catalog.type is CatalogType.REST

    _run_dirty_day(spark, rest_catalog, tmp_path)

    # The REST server lists the tables Spark wrote, it keeps them in PostgreSQL, and PyIceberg sees the same.
    token = access_token(rest_catalog_server.uri, rest_catalog_server.credential)
    listing = urllib.request.Request(
        f"{rest_catalog_server.uri}/v1/namespaces/gold/tables", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(listing, timeout=10) as response:
        listed = {f"gold.{entry['name']}" for entry in json.load(response)["identifiers"]}
    assert {spec.identifier for spec in GOLD_TABLES} <= listed
    assert _catalog_rows(postgres, rest_catalog_server.backend_name) >= EXPECTED_TABLES
    summary = pyiceberg_catalog(rest_catalog).load_table(GOLD_DAILY_SALES_SUMMARY.identifier)
    assert summary.metadata_location.startswith(rest_catalog_server.warehouse)
    assert not (rest_catalog.home / "catalog.db").exists(), "a SQLite catalog was created beside the REST catalog"
