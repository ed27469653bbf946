"""Unit tests run Spark on frames of a few rows: one session with settings for tiny data.

The session default (``devstack.pytest_plugin.spark``) is the stream's and gold's configuration, which the
integration suite and the benchmarks exercise. Here a plan's fixed costs dominate every query, so the session
skips them: one shuffle partition, no adaptive re-planning, and expressions interpreted instead of compiled
(code generation costs a few hundred milliseconds per query and pays off only on many rows; Spark's own test
suites run in this mode too). Measured on the Spark-heavy unit files (gold, gold edges, checks, commit): 106 s
with the default settings, 85 s with these.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from devstack.pytest_plugin import make_settings
from pipeline.spark_session import build_spark_session

TINY_DATA_CONF = {
    "spark.sql.shuffle.partitions": "1",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
}


@pytest.fixture(scope="session")
def spark(jars_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    """The unit suite's one SparkSession (local[2], UI off, :data:`TINY_DATA_CONF`)."""
    settings = make_settings(tmp_path_factory.mktemp("spark-home"), jars_home, spark={"extra_conf": TINY_DATA_CONF})
    session = build_spark_session(settings)
    yield session
    session.stop()
