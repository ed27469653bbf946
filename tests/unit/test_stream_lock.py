"""One driver per checkpoint: the stream's lock is held by the driver's JVM and keeps every other process out
until it is let go or the JVM holding it dies. Other processes here are plain Python holding (or probing) the
same POSIX record lock, which is what Java's FileChannel.tryLock takes on Linux."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from pipeline.streaming.lock import StreamAlreadyRunningError, hold_stream_lock, lock_file

HOLD = """
import fcntl, sys, time
with open(sys.argv[1], "w") as f:
    fcntl.lockf(f, fcntl.LOCK_EX)
    f.write("JVM pid 4242, Python pid 4343"); f.flush()
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""

PROBE = """
import fcntl, sys
with open(sys.argv[1], "a") as f:
    try:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        sys.exit(3)
"""


def _holder(path: Path, seconds: float) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "held"
    return process


def _probe(path: Path) -> int:
    """3 when another process holds the lock, 0 when this probe could take it."""
    return subprocess.run([sys.executable, "-c", PROBE, str(path)], check=False).returncode


def test_the_lock_file_sits_beside_a_local_checkpoint_and_under_home_for_a_remote_one(tmp_path: Path) -> None:
    assert lock_file("/lake/checkpoints/kafka_to_lake", tmp_path) == Path("/lake/checkpoints/kafka_to_lake.lock")
    assert lock_file("file:///lake/cp/q", tmp_path) == Path("/lake/cp/q.lock")
    assert lock_file("file:/lake/cp/q", tmp_path) == Path("/lake/cp/q.lock")
    remote = lock_file("s3a://bucket/checkpoints/q", tmp_path)
    assert remote.parent == tmp_path / "locks"
    assert remote != lock_file("s3a://bucket/checkpoints/other", tmp_path)
    assert remote == lock_file("s3a://bucket/checkpoints/q", tmp_path)


def test_a_held_lock_keeps_other_processes_out_until_it_is_released(spark: SparkSession, tmp_path: Path) -> None:
    path = tmp_path / "stream.lock"
    lock = hold_stream_lock(spark, path, wait_s=0)
    try:
        assert _probe(path) == 3
        assert hold_stream_lock(spark, path, wait_s=0) is lock, "a second stream of this process shares the lock"
        assert "Python pid" in path.read_text()
    finally:
        lock.release()
    assert _probe(path) == 0


def test_a_stream_is_refused_while_another_driver_holds_the_lock(spark: SparkSession, tmp_path: Path) -> None:
    path = tmp_path / "stream.lock"
    other = _holder(path, 60)
    try:
        started = time.monotonic()
        with pytest.raises(StreamAlreadyRunningError, match=r"JVM pid 4242, Python pid 4343.*within 0\.5 s"):
            hold_stream_lock(spark, path, wait_s=0.5)
        assert time.monotonic() - started >= 0.5
    finally:
        other.kill()
        other.wait()
    lock = hold_stream_lock(spark, path, wait_s=0)  # the holder died: the kernel let its lock go
    lock.release()


def test_a_starting_stream_waits_for_the_previous_driver_to_end(spark: SparkSession, tmp_path: Path) -> None:
    path = tmp_path / "stream.lock"
    previous = _holder(path, 1.5)  # lets go 1.5 s after it took the lock
    try:
        started = time.monotonic()
        lock = hold_stream_lock(spark, path, wait_s=60)
        assert time.monotonic() - started >= 1.0, "the lock was taken while the previous driver still held it"
        lock.release()
    finally:
        previous.kill()
        previous.wait()
