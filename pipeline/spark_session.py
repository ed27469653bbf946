"""Building the SparkSession: jars from the resolved folder, the Iceberg catalog, loopback-only networking.

Jars are never downloaded here: they come from the folder ``shoplake jars`` fills from ``jvm/pom.xml``.
"""

from __future__ import annotations

import os
from pathlib import Path

from pyspark.sql import SparkSession

from pipeline.config import CatalogType, ConfigurationError, Settings

BACKGROUND_POOL = "background"  # FAIR scheduler pool of the stream's work off the critical path

REQUIRED_JAR_PREFIXES = (
    "iceberg-spark-runtime-",
    "spark-sql-kafka-0-10_",
    "kafka-clients-",
    "sqlite-jdbc-",
    "shoplake-spark",  # the project's own functions (the contract's validator), built from jvm/shoplake-spark
)


ADVISORY_PARTITION_BYTES = 64 * 1024 * 1024
"""What a batch job's shuffle partition aims to hold once adaptive execution has coalesced it (Spark's default)."""
MAX_SHUFFLE_PARTITIONS = 200


def batch_shuffle_conf(input_bytes: int, cores: int) -> dict[str, str]:
    """Shuffle settings for a batch job (a gold run) that reads ``input_bytes`` of Parquet on ``cores`` cores.

    Spark's defaults are a cluster's: 200 shuffle partitions, which adaptive execution coalesces down to no fewer
    than the cores (``parallelismFirst``). Here a job starts from one shuffle partition per
    :data:`ADVISORY_PARTITION_BYTES` of input, at least one per core and at most :data:`MAX_SHUFFLE_PARTITIONS`,
    and adaptive execution coalesces by size alone (``parallelismFirst=false``): a shuffle of a few megabytes
    becomes one task rather than one per core, each paying a task's fixed cost for almost no rows, while a large
    one keeps a partition per 64 MiB.
    """
    partitions = min(MAX_SHUFFLE_PARTITIONS, max(cores, -(-input_bytes // ADVISORY_PARTITION_BYTES)))
    return {
        "spark.sql.shuffle.partitions": str(partitions),
        "spark.sql.adaptive.coalescePartitions.parallelismFirst": "false",
        "spark.sql.adaptive.advisoryPartitionSizeInBytes": str(ADVISORY_PARTITION_BYTES),
    }


class JarsMissingError(ConfigurationError):
    """The Spark jars folder lacks a jar the pipeline needs."""


def spark_jars(jars_dir: Path) -> list[Path]:
    """The jars to put on Spark's classpath; fails clearly when a required one is missing."""
    jars = sorted(jars_dir.glob("*.jar")) if jars_dir.is_dir() else []
    missing = [p for p in REQUIRED_JAR_PREFIXES if not any(j.name.startswith(p) for j in jars)]
    if missing:
        raise JarsMissingError(
            f"Spark jars folder {jars_dir} lacks {', '.join(p + '*.jar' for p in missing)}; "
            "resolve them with `shoplake jars` (runs Maven on jvm/pom.xml and builds jvm/shoplake-spark)"
        )
    return jars


def catalog_conf(settings: Settings) -> dict[str, str]:
    """Spark properties that register the Iceberg catalog under ``settings.catalog.name``."""
    name = settings.catalog.name
    prefix = f"spark.sql.catalog.{name}"
    conf = {
        prefix: "org.apache.iceberg.spark.SparkCatalog",
        f"{prefix}.warehouse": settings.warehouse_uri,
        # A streaming query writes through its own copy of the session's catalogs; with caching on, readers in
        # the main session (gold, audits) would see tables up to 30 s old.
        f"{prefix}.cache-enabled": "false",
    }
    if settings.catalog.type is CatalogType.REST:
        conf |= {f"{prefix}.type": "rest", f"{prefix}.uri": settings.catalog_uri}
        if settings.catalog.rest_credential is not None:
            conf[f"{prefix}.rest.auth.type"] = "oauth2"
        conf |= {f"{prefix}.{key}": value for key, value in settings.catalog.rest_auth_properties().items()}
    else:
        conf |= {
            f"{prefix}.type": "jdbc",
            f"{prefix}.uri": jdbc_url(settings.catalog_uri),
            f"{prefix}.jdbc.schema-version": "V1",
            # A micro-batch commits several tables at once: one pooled connection each.
            f"{prefix}.clients": "8",
        }
        # A PostgreSQL login goes to the JDBC driver as connection properties, never inside the URL.
        conf |= {f"{prefix}.{key}": value for key, value in settings.catalog.jdbc_properties().items()}
        if settings.catalog_uri.startswith("sqlite"):
            # Readers (gold, PyIceberg) never block the stream's commits, and concurrent writers wait for the
            # lock instead of failing with "database is locked".
            conf[f"{prefix}.jdbc.journal_mode"] = "WAL"
            conf[f"{prefix}.jdbc.busy_timeout"] = "30000"
    cat = settings.catalog
    if settings.warehouse_uri.startswith("s3"):
        conf[f"{prefix}.io-impl"] = "org.apache.iceberg.aws.s3.S3FileIO"
        conf[f"{prefix}.client.region"] = cat.s3_region
        conf[f"{prefix}.s3.path-style-access"] = str(cat.s3_path_style_access).lower()
        if cat.s3_endpoint:
            conf[f"{prefix}.s3.endpoint"] = cat.s3_endpoint
        if cat.s3_access_key_id and cat.s3_secret_access_key:
            conf[f"{prefix}.s3.access-key-id"] = cat.s3_access_key_id.get_secret_value()
            conf[f"{prefix}.s3.secret-access-key"] = cat.s3_secret_access_key.get_secret_value()
    return conf


def jdbc_url(sqlalchemy_url: str) -> str:
    """``sqlite:////abs/x.db`` -> ``jdbc:sqlite:/abs/x.db``; ``postgresql+driver://h/db`` -> ``jdbc:postgresql://h/db``."""
    scheme, _, rest = sqlalchemy_url.partition("://")
    if scheme == "sqlite":
        return f"jdbc:sqlite:{rest.removeprefix('/')}" if rest.startswith("//") else f"jdbc:sqlite:{rest}"
    if scheme.startswith("postgresql"):
        return f"jdbc:postgresql://{rest}"
    raise ConfigurationError(f"cannot turn catalog URI {sqlalchemy_url!r} into a JDBC URL")


def comet_conf(settings: Settings) -> dict[str, str]:
    """Apache DataFusion Comet under Spark: its plugin, its native shuffle and the off-heap memory its operators
    use. Its jar goes on the driver's class path (the shuffle manager is loaded before ``spark.jars``)."""
    jars = sorted(settings.comet_jars_dir.glob("comet-spark-*.jar"))
    if not jars:
        raise JarsMissingError(
            f"spark.comet is on but {settings.comet_jars_dir} holds no Comet jar: run `shoplake jars --comet`"
        )
    return {
        "spark.driver.extraClassPath": str(jars[-1]),
        "spark.executor.extraClassPath": str(jars[-1]),
        "spark.plugins": "org.apache.spark.CometPlugin",
        "spark.shuffle.manager": "org.apache.spark.sql.comet.execution.shuffle.CometShuffleManager",
        "spark.comet.enabled": "true",
        "spark.comet.exec.enabled": "true",
        "spark.comet.shuffle.enabled": "true",
        "spark.comet.scan.icebergNative.enabled": "true",
        "spark.memory.offHeap.enabled": "true",
        "spark.memory.offHeap.size": settings.spark.comet_offheap,
    }


def session_conf(settings: Settings) -> dict[str, str]:
    jars = spark_jars(settings.spark_jars_dir)
    conf = {
        "spark.master": settings.spark.master,
        "spark.app.name": "shoplake",
        "spark.driver.memory": settings.spark.driver_memory,
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": str(settings.spark.ui_enabled).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.jars": ",".join(str(j) for j in jars),
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(settings.spark.shuffle_partitions),
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.defaultCatalog": settings.catalog.name,
        "spark.sql.streaming.stopGracefullyOnShutdown": "true",
        # Background work of the stream (roll-up folds, its bookkeeping rows, table hygiene) runs in a pool of
        # its own (BACKGROUND_POOL): a fold then takes a fair share of the cores instead of holding them all
        # until it ends while a micro-batch waits behind it.
        "spark.scheduler.mode": "FAIR",
        # Dates before 1582 or in Julian calendar never occur here; fail rather than silently rebase.
        "spark.sql.parquet.datetimeRebaseModeInWrite": "CORRECTED",
        "spark.sql.ansi.enabled": "true",
        # Validation builds wide expressions (one per contract rule); inferring constraints over them costs
        # minutes per plan and buys nothing here.
        "spark.sql.constraintPropagation.enabled": "false",
        # Spark's default redaction, and the REST catalog's `credential`, which it does not match.
        "spark.redaction.regex": "(?i)secret|password|token|access[.]?key|credential",
    }
    if settings.spark.comet:
        conf |= comet_conf(settings)
    if settings.spark.cores_max is not None:
        conf["spark.cores.max"] = str(settings.spark.cores_max)
    if settings.spark.executor_memory is not None:
        conf["spark.executor.memory"] = settings.spark.executor_memory
    if settings.spark.auth_secret is not None:
        conf |= spark_auth_conf(settings.spark.auth_secret.get_secret_value())
    conf |= catalog_conf(settings)
    conf |= settings.spark.extra_conf
    return conf


def spark_auth_conf(secret: str) -> dict[str, str]:
    """What a standalone cluster's master, workers and applications all set to authenticate one another with
    ``secret`` and encrypt their RPC: AES (Spark's default CTR mode) after a key exchange of the second version,
    no fallback to SASL. Spark's GCM mode (``spark.network.crypto.cipher``) kept a worker from registering with
    its master here (Spark 4.1.1). Spark redacts the secret wherever it shows configuration; a worker hands it to
    its executors in their environment, not their command line."""
    return {
        "spark.authenticate": "true",
        "spark.authenticate.secret": secret,
        "spark.network.crypto.enabled": "true",
        "spark.network.crypto.authEngineVersion": "2",
        "spark.network.crypto.saslFallback": "false",
    }


def in_background_pool(spark: SparkSession) -> None:
    """Run the calling thread's Spark jobs in :data:`BACKGROUND_POOL` (a thread-local property)."""
    spark.sparkContext.setLocalProperty("spark.scheduler.pool", BACKGROUND_POOL)


def ensure_local_paths(settings: Settings) -> None:
    """Create the local folders the embedded default writes to (home, SQLite catalog's folder, warehouse)."""
    folders = [settings.home]
    if settings.catalog_uri.startswith("sqlite:///"):
        folders.append(Path(settings.catalog_uri.removeprefix("sqlite:///")).parent)
    if settings.warehouse_uri.startswith("file:"):
        folders.append(Path(settings.warehouse_uri.removeprefix("file:").removeprefix("//")))
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(f"cannot create the folder {folder}: {exc}") from exc


def build_spark_session(settings: Settings) -> SparkSession:
    """Return the process's SparkSession, creating it from ``settings`` if none is running.

    Spark allows one session per process: when one is already running, its session-wide settings stay, and
    only the Iceberg catalog of ``settings`` is registered on it (catalogs are looked up by name at first use,
    so several catalogs can live side by side, as tests do).
    """
    # The process's first session, not `getActiveSession()`: after a streaming query ran, the active session of
    # a thread can be the query's clone, whose configuration the rest of the process does not see.
    ensure_local_paths(settings)
    existing = SparkSession._instantiatedSession
    if existing is not None and not existing._sc._jsc.sc().isStopped():
        for key, value in catalog_conf(settings).items():
            existing.conf.set(key, value)
        return existing
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder
    for key, value in session_conf(settings).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
