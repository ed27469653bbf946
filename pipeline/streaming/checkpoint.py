"""What a stream's checkpoint says, read through Hadoop's file system API as Spark reads it itself, so local and
object-store checkpoints are handled alike."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession


def local_path(location: str) -> Path | None:
    """The local path of a checkpoint location (a path or a ``file:`` URI); None for one on another file system."""
    if "://" in location and not location.startswith("file:"):
        return None
    return Path(location.removeprefix("file://").removeprefix("file:"))


def _path(spark: SparkSession, location: str, name: str) -> tuple[Any, Any]:
    """The Hadoop path of ``name`` inside the checkpoint, and its file system."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    path = jvm.org.apache.hadoop.fs.Path(f"{location.rstrip('/')}/{name}")
    return path, path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())  # type: ignore[union-attr]


def has_query_metadata(spark: SparkSession, location: str) -> bool:
    """Whether the checkpoint holds a query's metadata: a query has run on it before."""
    path, fs = _path(spark, location, "metadata")
    return bool(fs.exists(path))


def query_id(spark: SparkSession, location: str) -> str:
    """The id of the query the checkpoint belongs to: the first line of its metadata file, ``{"id": ...}``, which
    Spark writes when a query first starts on it (read in the driver, without a Spark job)."""
    path, fs = _path(spark, location, "metadata")
    if not fs.exists(path):
        raise RuntimeError(f"checkpoint {location} has no query metadata")
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(fs.open(path), "UTF-8"))
    try:
        first_line = reader.readLine()
    finally:
        reader.close()
    try:
        return str(json.loads(first_line)["id"])
    except (TypeError, ValueError, KeyError) as error:
        raise RuntimeError(f"checkpoint {location} has unreadable query metadata: {first_line!r}") from error


def ensure_query_id(spark: SparkSession, location: str) -> str:
    """The checkpoint's query id; on a new checkpoint, a fresh one written as Spark writes it (``{"id": ...}`` in
    ``metadata``), so that the stream knows its id before the query starts (Spark then adopts the file)."""
    if not has_query_metadata(spark, location):
        path, fs = _path(spark, location, "metadata")
        out = fs.create(path, False)  # never overwrites: another driver's id wins, and is read below
        try:
            out.write(bytearray(json.dumps({"id": str(uuid.uuid4())}).encode() + b"\n"))
        finally:
            out.close()
    return query_id(spark, location)


def _batch_ids(spark: SparkSession, location: str, log_name: str) -> list[int]:
    path, fs = _path(spark, location, log_name)
    if not fs.exists(path):
        return []
    return [int(status.getPath().getName()) for status in fs.listStatus(path) if status.getPath().getName().isdigit()]


def pending_batch(spark: SparkSession, location: str) -> int | None:
    """The batch the checkpoint planned but never committed (the driver died in it), if any."""
    planned, committed = _batch_ids(spark, location, "offsets"), _batch_ids(spark, location, "commits")
    if not planned or max(planned) <= max(committed, default=-1):
        return None
    return max(planned)
