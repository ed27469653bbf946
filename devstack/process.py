"""Local service processes: free ports, Java checks, start with a log, wait until ready, stop for sure."""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class ServiceError(RuntimeError):
    """A local service could not be started, reached or stopped."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_port_free(port: int, what: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ServiceError(f"{what}: port 127.0.0.1:{port} is already taken ({exc.strerror})") from exc


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def java_executable(minimum: int = 17) -> str:
    """The ``java`` to run services with (``JAVA_HOME`` first), checked to be at least ``minimum``."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise ServiceError("Java is not installed (no `java` on PATH, no JAVA_HOME): Java 17+ is required")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)', out)
    if not match or int(match.group(1)) < minimum:
        raise ServiceError(f"{java} is not Java {minimum}+ ({out.strip().splitlines()[0] if out else '?'})")
    return java


def _die_with_parent() -> None:  # runs in the child between fork and exec
    os.setsid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class ManagedProcess:
    """A child process in its own process group, logging to a file."""

    name: str
    pid: int
    log_path: Path

    @classmethod
    def start(
        cls,
        name: str,
        cmd: Sequence[str],
        log_path: Path,
        *,
        detach: bool,
        cwd: Path,
        env: Mapping[str, str] | None = None,
    ) -> ManagedProcess:
        """Start ``cmd``; unless ``detach``, the kernel terminates it when this process dies (even by SIGKILL).

        ``env`` is added to this process's environment for the child (a way to hand it secrets without a
        command line that ``ps`` shows).

        More exactly, when the *thread* that started it ends (``PR_SET_PDEATHSIG``): start services from a thread
        that lives as long as they should.
        """
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                list(cmd),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                env=None if env is None else {**os.environ, **env},
                start_new_session=detach,
                preexec_fn=None if detach else _die_with_parent,
            )
        return cls(name, proc.pid, log_path)

    def alive(self) -> bool:
        try:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                return False
        except ChildProcessError:
            pass  # not our child (started by another `shoplake` process): fall back to a signal probe
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return _not_zombie(self.pid)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def wait_ready(self, probe: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise ServiceError(f"{self.name} exited during start-up; last log lines:\n{self.log_tail()}")
            if probe():
                return
            time.sleep(0.25)
        self.stop()
        raise ServiceError(
            f"{self.name} was not ready within {timeout_s:g}s (log: {self.log_path}); last lines:\n{self.log_tail()}"
        )

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left after ``grace_s``."""
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                return
            except PermissionError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not self.alive():
                    return
                time.sleep(0.1)
        if self.alive():
            raise ServiceError(f"{self.name} (pid {self.pid}) did not stop")


def _stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name: state, parent pid, process group, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _not_zombie(pid: int) -> bool:
    try:
        state = _stat(pid)[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def live_group_members(group: int) -> list[int]:
    """The pids of a process group's live (not zombie) processes, also those its leader left behind when it
    died (a child reparented elsewhere keeps its group)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, _parent, pgrp = _stat(int(entry.name))[:3]
        except (OSError, ValueError):
            continue  # ended meanwhile
        if state != "Z" and int(pgrp) == group:
            members.append(int(entry.name))
    return members
