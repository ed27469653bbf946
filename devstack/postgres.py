"""A PostgreSQL server on loopback from the machine's own binaries, for the JDBC and REST Iceberg catalogs.

The server refuses to run as root, so when this process is root every PostgreSQL program runs as the
``postgres`` user (``runuser -u postgres -- ...``) on a data folder that user owns. The folder lives in a fresh
temporary directory (the test's own folders are private to root, and the server must be able to traverse its
path); it is removed when the server stops. Logins use a password made up per start (SCRAM), over TCP only.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.process import ManagedProcess, ServiceError, ensure_port_free, free_port

READY_TIMEOUT_S = 60.0
SERVER_USER = "postgres"  # the OS account the server runs as when this process is root
ROLE = "shoplake"  # the database superuser initdb creates
DATABASE = "iceberg"
PROGRAMS = ("initdb", "pg_ctl", "postgres")


@dataclass(frozen=True)
class PostgresEndpoint:
    """How to reach the server. ``password`` is a secret: never print or log it."""

    host: str
    port: int
    database: str
    user: str
    password: str

    def connect(self, database: str | None = None, **options: Any) -> Any:
        """A psycopg2 connection with these credentials (to ``database``, by default the catalog's)."""
        import psycopg2

        return psycopg2.connect(
            host=self.host,
            port=self.port,
            dbname=database or self.database,
            user=self.user,
            password=self.password,
            **options,
        )

    @property
    def jdbc_url(self) -> str:
        """The JDBC URL, without credentials (they travel as ``jdbc.user`` / ``jdbc.password``)."""
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.database}"

    @property
    def sqlalchemy_url(self) -> str:
        """The SQLAlchemy URL, without credentials (``pipeline.catalog`` adds them from the settings)."""
        return f"postgresql+psycopg2://{self.host}:{self.port}/{self.database}"

    def __repr__(self) -> str:
        return f"PostgresEndpoint({self.host}:{self.port}/{self.database}, user={self.user})"


def postgres_bin_dir() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``: PATH first, then Debian's versioned folders."""
    on_path = [shutil.which(program) for program in PROGRAMS]
    if all(on_path):
        folders = {Path(str(p)).resolve().parent for p in on_path}
        if len(folders) == 1:
            return folders.pop()
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major_version, reverse=True):
        if all((Path(folder) / program).is_file() for program in PROGRAMS):
            return Path(folder)
    return None


def missing_postgres_reason() -> str | None:
    """Why no local PostgreSQL server can start here (None when it can), naming the missing piece."""
    if postgres_bin_dir() is None:
        return (
            "no PostgreSQL server binaries: initdb, pg_ctl and postgres are neither on PATH nor in "
            "/usr/lib/postgresql/*/bin (install Debian's postgresql package)"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return f"running as root but there is no {SERVER_USER!r} user to run the PostgreSQL server as"
        if shutil.which("runuser") is None:
            return "running as root but `runuser` (util-linux) is missing: it runs PostgreSQL as a non-root user"
    return None


def _major_version(folder: str) -> int:
    try:
        return int(Path(folder).parent.name)
    except ValueError:
        return 0


def _as_server_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--", *cmd] if os.geteuid() == 0 else cmd


def _give_to_server_user(path: Path) -> None:
    if os.geteuid() == 0:
        account = pwd.getpwnam(SERVER_USER)
        os.chown(path, account.pw_uid, account.pw_gid)


@dataclass
class PostgresServer:
    """A running server: the postmaster in the foreground of a managed process, stopped with ``pg_ctl``."""

    process: ManagedProcess
    endpoint: PostgresEndpoint
    root: Path  # the temporary folder holding the data folder and the server log
    bin_dir: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def name(self) -> str:
        return self.process.name

    @property
    def pid(self) -> int:
        return self.process.pid

    def ready(self) -> bool:
        return server_ready(self.endpoint)

    def stop(self) -> None:
        """A fast shutdown (sessions rolled back, data flushed), then the data folder is removed."""
        stop_postgres(self.bin_dir, self.root, self.process)


def server_ready(endpoint: PostgresEndpoint) -> bool:
    """The server accepts a login with the generated credentials and answers a query."""
    import psycopg2

    try:
        with (
            contextlib.closing(endpoint.connect("postgres", connect_timeout=2)) as conn,
            conn.cursor() as cur,
        ):
            cur.execute("SELECT 1")
            return cur.fetchone() == (1,)
    except psycopg2.Error:
        return False


def start_local_postgres(workdir: Path, *, port: int | None = None, detach: bool = False) -> PostgresServer:
    """initdb a fresh cluster, start it on 127.0.0.1, wait until a login works, create the catalog database.

    ``workdir`` receives a pointer file naming the temporary root, so that its log is easy to find.
    """
    reason = missing_postgres_reason()
    if reason is not None:
        raise ServiceError(reason)
    bin_dir = postgres_bin_dir()
    assert bin_dir is not None
    if port is None:
        port = free_port()
    else:
        ensure_port_free(port, "PostgreSQL")
    workdir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="shoplake-pg-"))
    root.chmod(0o700)
    _give_to_server_user(root)
    (workdir / "postgres-root").write_text(str(root) + "\n")
    endpoint = PostgresEndpoint("127.0.0.1", port, DATABASE, ROLE, secrets.token_urlsafe(24))
    try:
        _initdb(bin_dir, root, endpoint)
        process = ManagedProcess.start(
            "postgres",
            _as_server_user(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(root / "data"),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-p",
                    str(port),
                    # The Unix socket goes beside the data, not into /var/run/postgresql (absent or root-owned).
                    "-c",
                    f"unix_socket_directories={root}",
                    "-c",
                    "max_connections=200",
                    "-c",
                    "fsync=off",  # a throwaway server: durability across power loss buys nothing here
                ]
            ),
            root / "postgres.log",
            detach=detach,
            cwd=root,
        )
        server = PostgresServer(process, endpoint, root, bin_dir)
        try:
            process.wait_ready(server.ready, READY_TIMEOUT_S)
            _create_database(endpoint)
        except BaseException:
            server.stop()
            raise
        return server
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def _initdb(bin_dir: Path, root: Path, endpoint: PostgresEndpoint) -> None:
    pwfile = root / "pwfile"
    pwfile.write_text(endpoint.password + "\n")
    pwfile.chmod(0o600)
    _give_to_server_user(pwfile)
    cmd = [
        str(bin_dir / "initdb"),
        "-D",
        str(root / "data"),
        "-U",
        endpoint.user,
        f"--pwfile={pwfile}",
        "--auth-host=scram-sha-256",
        "--auth-local=scram-sha-256",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-instructions",
    ]
    try:
        result = subprocess.run(_as_server_user(cmd), capture_output=True, text=True, check=False, timeout=120)
    finally:
        pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        raise ServiceError(f"initdb failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}")


def _create_database(endpoint: PostgresEndpoint) -> None:
    conn = endpoint.connect("postgres")
    try:
        conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        with conn.cursor() as cur:
            # An identifier, not a value: it cannot be a bind parameter, and it is this module's constant.
            cur.execute(f'CREATE DATABASE "{endpoint.database}"')
    finally:
        conn.close()


def stop_postgres(bin_dir: Path, root: Path, process: ManagedProcess) -> None:
    """``pg_ctl stop -m fast``; a server that does not stop so is terminated; then the folder is removed."""
    data_dir = root / "data"
    if process.alive() and data_dir.is_dir():
        subprocess.run(
            _as_server_user([str(bin_dir / "pg_ctl"), "stop", "-D", str(data_dir), "-m", "fast", "-w", "-t", "30"]),
            capture_output=True,
            check=False,
            timeout=60,
        )
    try:
        process.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
