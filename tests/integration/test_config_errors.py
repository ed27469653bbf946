"""Configuration errors fail fast, with a message naming what to fix, and a non-zero exit status."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from pipeline.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def _shoplake(settings: Settings, *args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    environment = {**os.environ, **settings.to_env(), **env}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "shoplake.cli", *args],
        env=environment,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result, time.monotonic() - started


def test_unreachable_bootstrap_servers(settings: Settings) -> None:
    result, seconds = _shoplake(settings, "stream", SHOPLAKE_KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:1")
    assert result.returncode == 1
    assert "no Kafka broker answered at '127.0.0.1:1'" in result.stderr
    assert seconds < 20, f"the error took {seconds:.1f} s, past the 10 s it promises (and the start-up)"


def test_unusable_catalog(settings: Settings, live: Settings) -> None:
    blocker = settings.home / "not-a-folder"
    blocker.write_text("a file where the catalog's folder should be")
    result, _ = _shoplake(
        settings,
        "stream",
        SHOPLAKE_KAFKA__BOOTSTRAP_SERVERS=live.kafka.bootstrap_servers,
        SHOPLAKE_CATALOG__URI=f"sqlite:///{blocker}/catalog.db",
    )
    assert result.returncode == 1
    assert "error:" in result.stderr
    assert "not-a-folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreadable_checkpoint(settings: Settings, live: Settings) -> None:
    checkpoint = settings.home / "checkpoints" / "kafka_to_lake"
    (checkpoint / "offsets").mkdir(parents=True)
    (checkpoint / "metadata").write_text("{ not json")
    result, _ = _shoplake(settings, "stream", SHOPLAKE_KAFKA__BOOTSTRAP_SERVERS=live.kafka.bootstrap_servers)
    assert result.returncode == 1
    assert "is unreadable" in result.stderr
    assert "move it away to start over" in result.stderr


def test_bad_dates_are_rejected_before_anything_runs(settings: Settings) -> None:
    result, _ = _shoplake(settings, "gold", "--date", "2026-02-30")
    assert result.returncode == 2
    assert "not a date" in result.stderr
    result, _ = _shoplake(settings, "gold", "--date", "2026-11-05", "--to", "2026-11-01")
    assert result.returncode == 1
    assert "ends (2026-11-01) before it starts (2026-11-05)" in result.stderr
    result, _ = _shoplake(settings, "gold", "--date", "2019-01-01")
    assert result.returncode == 1
    assert "before the first daily partition" in result.stderr
