"""Local services: they start in bounded time, fail clearly, and leave no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack.process import ServiceError, port_open
from devstack.services import Mode, Services, start_services

ROOT = Path(__file__).resolve().parents[2]


def _gone(pid: int, within_s: float = 15.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "Z":
                return True
        except (ProcessLookupError, FileNotFoundError):
            return True
        time.sleep(0.2)
    return False


def test_stopped_services_leave_no_process(jars_home: Path, tmp_path: Path) -> None:
    services = start_services(jars_home, tmp_path, with_s3=True, mode=Mode.LOCAL)
    pids = dict(services.pids)
    assert set(pids) == {"kafka", "s3"}
    services.stop()
    assert all(_gone(pid) for pid in pids.values())


def test_services_die_with_a_killed_parent(jars_home: Path, tmp_path: Path) -> None:
    script = (
        "import json, sys, time; from pathlib import Path; from devstack.services import Mode, start_services;"
        f"s = start_services(Path({str(jars_home)!r}), Path({str(tmp_path)!r}), with_s3=True, mode=Mode.LOCAL);"
        "print(json.dumps(s.pids), flush=True); time.sleep(600)"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert parent.stdout is not None
        pids = json.loads(parent.stdout.readline())
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        assert all(_gone(pid) for pid in pids.values()), "a service outlived the process that started it"
    finally:
        parent.kill()


def test_taken_port_is_reported_by_number(jars_home: Path, tmp_path: Path, local_services: Services) -> None:
    port = int(local_services.kafka_bootstrap.rsplit(":", 1)[1])
    with pytest.raises(ServiceError, match=f"127.0.0.1:{port} is already taken"):
        start_services(jars_home, tmp_path, mode=Mode.LOCAL, kafka_port=port)


def test_unresolved_jars_name_the_command_to_run(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="shoplake jars"):
        start_services(tmp_path, tmp_path / "work", mode=Mode.LOCAL)


def test_missing_java_is_reported(jars_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(ServiceError, match="Java"):
        start_services(jars_home, tmp_path, mode=Mode.LOCAL)


def test_cli_services_up_status_down(jars_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "jars").symlink_to(jars_home / "jars")
    env = {**os.environ, "SHOPLAKE_HOME": str(home)}
    shoplake = [sys.executable, "-m", "shoplake.cli"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*shoplake, *args], env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path)

    up = run("services", "up")
    assert up.returncode == 0, up.stderr
    state = json.loads((home / "services" / "state.json").read_text())
    try:
        assert port_open(int(state["kafka_bootstrap"].rsplit(":", 1)[1]))
        status = run("services", "status")
        assert "kafka" in status.stderr
        assert " up" in status.stderr
        again = run("services", "up")
        assert again.returncode == 1
        assert "already up" in again.stderr
    finally:
        down = run("services", "down")
    assert down.returncode == 0, down.stderr
    assert all(_gone(pid) for pid in state["pids"].values())
    assert "no local services" in run("services", "status").stderr
