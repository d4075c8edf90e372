"""A throwaway PostgreSQL cluster for the tests: ``initdb`` into a temporary folder, started on a
free port with a private socket folder, stopped (and removed) at the end of the session.

``initdb`` refuses to run as root: when the tests run as root (as CI does) the cluster is made and
run by the ``postgres`` user through ``runuser``. Durability settings are relaxed for speed
(``fsync=off``, ``synchronous_commit=off``, ``full_page_writes=off``): the tests check what the
broker promises given a database that keeps its commits, not PostgreSQL's own crash safety.

Each test starts on an empty, migrated database: the tests take turns on one, emptied by TRUNCATE
after each (``CREATE DATABASE`` from a migrated template costs 0.3 s a test; it remains for a test
that needs a database of its own, and for when emptying fails).
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


def pg_bin() -> Path:
    """The folder holding initdb and pg_ctl: $A2A_TEST_PG_BIN, else Debian's newest
    /usr/lib/postgresql/<version>/bin, else PATH (the Makefile installs them when missing)."""
    env = os.environ.get("A2A_TEST_PG_BIN")
    if env:
        return Path(env)
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if debian:
        return debian[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError(
        "PostgreSQL's initdb was not found (in /usr/lib/postgresql/*/bin or PATH): `make test` "
        "installs postgresql when it is missing; set A2A_TEST_PG_BIN to use another"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class PgCluster:
    root: Path
    port: int
    bin: Path
    as_postgres: bool
    user: str = "postgres"
    _names: itertools.count[int] = field(default_factory=itertools.count)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    @property
    def host(self) -> str:
        return str(self.root / "sock")

    def url(self, dbname: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def start(self, durable: bool = False, tries: int = 3) -> None:
        """initdb, then start on ``port``; when the port was taken meanwhile (free_port() holds
        nothing: another test process, an xdist worker starting its own cluster, may bind it
        first), again on another free port."""
        data = self.root / "data"
        self._run(
            str(self.bin / "initdb"), "-D", str(data), "-U", self.user, "--auth=trust",
            "--no-sync", "-E", "UTF8", "--locale=C",
        )  # fmt: skip
        fast = "" if durable else " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        for attempt in range(tries):
            opts = (
                f"-p {self.port} -k {self.host} -c listen_addresses=127.0.0.1{fast}"
                " -c max_connections=300 -c shared_buffers=64MB"
            )
            started = self._run(
                str(self.bin / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(self.root / "log"),
                "-w", "-t", "60", "start", check=attempt == tries - 1,
            )  # fmt: skip
            if started.returncode == 0:
                return
            self.port = _free_port()

    def stop(self) -> None:
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop", check=False
        )

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        out = self._run(str(self.bin / "psql"), "-h", self.host, "-p", str(self.port), "-U", self.user,
                        "-d", dbname, "-Atqc", sql)  # fmt: skip
        return out.stdout

    def create_database(self, template: str | None = None) -> str:
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}"
        tmpl = f" TEMPLATE {template}" if template else ""
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}{tmpl}".encode())
        return name

    def empty(self, url: str) -> bool:
        """Empty every table of the database at ``url`` but the migrations' record (and restart
        its sequences); False when that could not be done within a few seconds (a lock held)."""
        import psycopg

        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("SET lock_timeout = '5s'")
                tables = [
                    r[0]
                    for r in conn.execute(
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                        " AND tablename != 'schema_migrations'"
                    )
                ]
                conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE".encode())
            return True
        except psycopg.Error:
            return False


def start_cluster(durable: bool = False) -> PgCluster:
    """A new cluster; ``durable``: PostgreSQL's own defaults (fsync, synchronous commit), for
    benchmarks."""
    as_postgres = os.geteuid() == 0
    root = Path(tempfile.mkdtemp(prefix="a2a-pg-"))
    (root / "sock").mkdir()
    if as_postgres:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(root / "sock", "postgres", "postgres")
    cluster = PgCluster(root=root, port=_free_port(), bin=pg_bin(), as_postgres=as_postgres)
    t0 = time.monotonic()
    cluster.start(durable)
    cluster.started_in = time.monotonic() - t0  # type: ignore[attr-defined]
    return cluster


def remove_cluster(cluster: PgCluster) -> None:
    cluster.stop()
    shutil.rmtree(cluster.root, ignore_errors=True)
