"""One driver per stream: a lock on a file beside the checkpoint, held by the driver's JVM for as long as it lives.

A SIGKILL of ``shoplake stream`` ends its Python process at once, but not the JVM that process started: the JVM
(the process that commits to Iceberg) exits only once it notices that its parent is gone, and an Iceberg commit
it was making can still land meanwhile. A restarted stream that read its recovery state (the batch each table
holds) before that commit landed would append the batch to that table a second time. So a stream's JVM takes an
exclusive lock before the stream reads any state and keeps it until the stream stops or the JVM dies, however it
dies (the kernel releases a dead process's locks): a restart waits for the previous JVM to be gone, and a
second stream started on the same checkpoint is refused, with the holder's process ids in the error.

The lock is a POSIX record lock on a local file (Java's ``FileChannel.tryLock`` takes an ``fcntl`` lock on
Linux). It keeps drivers on one host apart. A checkpoint on an object store gets its lock file under
``<home>/locks``; drivers on different hosts must be kept to one by whatever runs them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from py4j.protocol import Py4JError
from pyspark.sql import SparkSession

from pipeline.config import ConfigurationError
from pipeline.streaming.checkpoint import local_path

log = logging.getLogger(__name__)


class StreamAlreadyRunningError(ConfigurationError):
    """Another driver holds the stream's lock (its checkpoint) and did not let go in time."""


def lock_file(checkpoint_location: str, home: Path) -> Path:
    """The lock file of the stream whose checkpoint is ``checkpoint_location``: beside a local checkpoint, or in
    ``<home>/locks`` (named after the location) for one on an object store."""
    local = local_path(checkpoint_location)
    if local is not None:
        return local.with_name(f"{local.name}.lock")
    digest = hashlib.sha256(checkpoint_location.encode()).hexdigest()[:16]
    return home / "locks" / f"stream-{digest}.lock"


@dataclass
class StreamLock:
    """The held lock; :meth:`release` lets the next driver in (a dead JVM has released it already)."""

    path: Path
    _channel: Any  # java.nio.channels.FileChannel of the driver's JVM
    _lock: Any  # java.nio.channels.FileLock

    def release(self) -> None:
        _held.pop(self.path, None)
        try:
            self._lock.release()
            self._channel.close()
        except Py4JError:
            pass  # the JVM is gone, and its lock with it


_held: dict[Path, StreamLock] = {}  # the locks this process's JVM holds, by file


def hold_stream_lock(spark: SparkSession, path: Path, wait_s: float) -> StreamLock:
    """Take the lock in the driver's JVM, waiting up to ``wait_s`` for another driver to let go of it.

    A stream this process already runs on the same checkpoint shares its lock (Spark refuses two active queries
    of one checkpoint in one session itself).
    """
    if (held := _held.get(path)) is not None and _valid(held):
        return held
    path.parent.mkdir(parents=True, exist_ok=True)
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    channel = jvm.java.io.RandomAccessFile(str(path), "rw").getChannel()
    deadline = time.monotonic() + wait_s
    announced = False
    while (lock := channel.tryLock()) is None:
        holder = _holder(path)
        if time.monotonic() >= deadline:
            channel.close()
            raise StreamAlreadyRunningError(
                f"another stream driver ({holder}) holds {path} and did not end within {wait_s:g} s "
                "(stream.lock_wait_seconds); stop it before starting this one: two drivers on one checkpoint "
                "would write the same batches twice"
            )
        if not announced:
            log.warning("waiting up to %g s for the stream driver holding %s (%s) to end", wait_s, path, holder)
            announced = True
        time.sleep(0.2)
    jvm_pid = jvm.java.lang.ProcessHandle.current().pid()
    path.write_text(f"JVM pid {jvm_pid}, Python pid {os.getpid()}\n")  # advisory: for the message above
    held = StreamLock(path, channel, lock)
    _held[path] = held
    return held


def _valid(lock: StreamLock) -> bool:
    try:
        return bool(lock._lock.isValid())
    except Py4JError:  # the JVM that held it was stopped; a new one must take the lock again
        _held.pop(lock.path, None)
        return False


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "process unknown"
    except OSError:
        return "process unknown"
