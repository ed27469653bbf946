"""An S3-compatible object store on loopback: s3proxy with a filesystem backend, from the resolved jars."""

from __future__ import annotations

import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from devstack.jars import is_resolved, jars_dir
from devstack.process import ManagedProcess, ServiceError, ensure_port_free, free_port, java_executable

READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class S3Endpoint:
    endpoint: str
    access_key_id: str
    secret_access_key: str
    region: str = "us-east-1"


def s3_ready(endpoint: str) -> bool:
    """The server answers HTTP (an unauthenticated request gets an S3 error document, which is an answer)."""
    try:
        with urllib.request.urlopen(endpoint + "/", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def start_local_s3(
    home: Path, workdir: Path, *, port: int | None = None, detach: bool = False
) -> tuple[ManagedProcess, S3Endpoint]:
    if not is_resolved(home, "s3proxy"):
        raise ServiceError("s3proxy jars are not resolved: run `shoplake jars` first")
    java_executable(17)  # fail before creating anything when Java is missing
    if port is None:
        port = free_port()
    else:
        ensure_port_free(port, "object store")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "data").mkdir(exist_ok=True)
    # Credentials are made up per start and never leave this machine's state folder.
    endpoint = S3Endpoint(f"http://127.0.0.1:{port}", "shoplake-" + secrets.token_hex(4), secrets.token_urlsafe(24))
    conf = workdir / "s3proxy.conf"
    conf.write_text(
        "\n".join(
            [
                f"s3proxy.endpoint={endpoint.endpoint}",
                "s3proxy.authorization=aws-v2-or-v4",
                f"s3proxy.identity={endpoint.access_key_id}",
                f"s3proxy.credential={endpoint.secret_access_key}",
                "jclouds.provider=filesystem-nio2",
                f"jclouds.filesystem.basedir={workdir / 'data'}",
                "",
            ]
        )
    )
    conf.chmod(0o600)
    return relaunch_local_s3(home, workdir, endpoint, detach=detach), endpoint


def relaunch_local_s3(home: Path, workdir: Path, endpoint: S3Endpoint, *, detach: bool = False) -> ManagedProcess:
    """Start s3proxy on an existing configuration (same port, credentials and data): a start or a restart."""
    cmd = [
        java_executable(17),
        "-Xmx512m",
        "-cp",
        f"{jars_dir(home, 's3proxy')}/*",
        "org.gaul.s3proxy.Main",
        "--properties",
        str(workdir / "s3proxy.conf"),
    ]
    process = ManagedProcess.start("s3proxy", cmd, workdir / "s3proxy.log", detach=detach, cwd=workdir)
    process.wait_ready(lambda: s3_ready(endpoint.endpoint), READY_TIMEOUT_S)
    return process
