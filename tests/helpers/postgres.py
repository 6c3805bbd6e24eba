"""A real PostgreSQL server from the distribution's packages, on a free
loopback port in a temporary folder, for the job-store tests.

initdb refuses to run as root, so under root (CI) the server runs as the
`postgres` user the package creates.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg

_USER = "voicegraph"
_PASSWORD = "voicegraph-test"


def postgres_bin() -> Path | None:
    """The folder of initdb and pg_ctl: VG_TEST_POSTGRES_BIN, PATH, or the newest Debian install."""
    if configured := os.environ.get("VG_TEST_POSTGRES_BIN"):
        return Path(configured)
    if found := shutil.which("initdb"):
        return Path(found).parent
    installed = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(installed[-1]).parent if installed else None


class PostgresServer:
    """Its folder is made in the system temp folder, not pytest's: under root
    the `postgres` user must reach it, and pytest's folders are root's alone."""

    def __init__(self, port: int):
        self.root = Path(tempfile.mkdtemp(prefix="voicegraph-postgres-"))
        self.port = port
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "socket"
        self._bin = postgres_bin()
        if self._bin is None:
            raise RuntimeError(
                "PostgreSQL is not installed: apt-get install postgresql (or set VG_TEST_POSTGRES_BIN)"
            )
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        command = [str(self._bin / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")

    def start(self) -> None:
        self.socket_dir.mkdir(exist_ok=True)
        password_file = self.root / "password"
        password_file.write_text(_PASSWORD)
        if self._as_postgres:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.socket_dir, "postgres")
            shutil.chown(password_file, "postgres")
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", _USER, "--pwfile", str(password_file),
            "--auth=scram-sha-256", "-E", "UTF8", "--no-sync",
        )
        # fsync off: a test database need not survive a power cut, and it makes commits cheap.
        options = f"-h 127.0.0.1 -p {self.port} -k {self.socket_dir} -c fsync=off -c max_connections=200"
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.root / "server.log"), "-w", "-t", "60",
            "-o", options, "start",
        )

    def stop(self) -> None:
        if self.data_dir.exists():
            try:
                self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
            except RuntimeError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres", password: str = _PASSWORD) -> str:
        return f"postgresql://{_USER}:{password}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """The URL of a new, empty database: one per test, so no test sees another's jobs."""
        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return self.url(name)
