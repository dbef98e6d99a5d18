"""Throwaway PostgreSQL and Redis servers on 127.0.0.1 for tests (no Docker here or in CI).

Each server lives in its own temporary directory on a free port and is stopped and deleted
after. PostgreSQL refuses to run as root, so when the tests run as root (CI does) the cluster
is created and started as the ``postgres`` system user that Debian's package creates.

Both servers are children of the test process that asked the kernel to stop them when it
dies (``PR_SET_PDEATHSIG``), so a test run killed with SIGKILL, whose ``finally`` never runs,
leaves no server behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "PostgresServer",
    "RedisServer",
    "ServerUnavailable",
    "find_postgres_bin",
    "free_port",
    "postgres_server",
    "redis_server",
]

_START_TIMEOUT_S = 30.0


class ServerUnavailable(RuntimeError):
    """The server's binaries are not installed (the message says which and how to get them)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_postgres_bin() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with ``initdb``, else one on ``PATH``."""
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0,
    )
    if versions:
        return Path(versions[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise ServerUnavailable(
        "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb and no initdb on PATH); "
        "install it with: apt-get install postgresql"
    )


def _die_with_parent(sig: int) -> Callable[[], None]:
    """A ``preexec_fn`` asking Linux to send ``sig`` to the child when its parent dies.

    Nothing else does this: a killed pytest never reaches its fixtures' ``finally``, and
    ``pg_ctl start`` would detach the server from us entirely.
    """
    if sys.platform != "linux":
        return lambda: None
    # looked up here, in the parent: the forked child only makes the one system call
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        prctl(1, sig, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG

    return preexec


def _wait_for_port(port: int, proc: subprocess.Popen[bytes] | None, what: str, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise RuntimeError(f"{what} did not start on 127.0.0.1:{port}; its log ends with:\n{tail}")


@dataclass
class PostgresServer:
    """A running throwaway PostgreSQL cluster.

    Attributes:
        bindir: where its binaries are.
        root: its temporary directory (data, socket, log), deleted by :meth:`stop`.
        port: its TCP port on 127.0.0.1.
        user: the superuser the tests connect as.
        password: that user's password (random per server).
    """

    bindir: Path
    root: Path
    port: int
    user: str = "crmhost"
    password: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)
    _run_as: str | None = field(default=None, repr=False)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        """An SQLAlchemy async URL for ``database``."""
        return f"postgresql+asyncpg://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 (fixed binaries, our own arguments)
            args,
            user=self._run_as,
            group=pwd.getpwnam(self._run_as).pw_gid if self._run_as else None,
            extra_groups=[] if self._run_as else None,
            check=False,
            capture_output=True,
            text=True,
            env={**os.environ, "PGPASSWORD": self.password, "LC_ALL": "C"},
            cwd=self.root,
        )

    def _checked(self, *args: str) -> None:
        done = self._run(*args)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr.strip()}")

    def start(self) -> None:
        """Create the cluster and start it; returns once it accepts connections."""
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        self._chown(pwfile)
        self._checked(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            self.user,
            "--pwfile",
            str(pwfile),
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--no-sync",
        )
        pwfile.unlink()
        # durability is pointless for a throwaway cluster and costs seconds per CREATE DATABASE
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        log = self.root / "postgres.log"
        with log.open("wb") as out:
            # SIGQUIT is PostgreSQL's immediate shutdown: the postmaster takes its backends along
            self.process = subprocess.Popen(  # noqa: S603 (fixed binary, our own arguments)
                [str(self.bindir / "postgres"), "-D", str(self.data_dir), *options.split()],
                user=self._run_as,
                group=pwd.getpwnam(self._run_as).pw_gid if self._run_as else None,
                extra_groups=[] if self._run_as else None,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                env={**os.environ, "LC_ALL": "C"},
                preexec_fn=_die_with_parent(signal.SIGQUIT),
            )
        _wait_for_port(self.port, self.process, "PostgreSQL", log)
        # listening is not ready yet: wait until it answers queries
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            try:
                self.sql("SELECT 1")
                return
            except RuntimeError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement with ``psql`` (outside any event loop, so fixtures stay sync)."""
        done = self._run(
            str(self.bindir / "psql"),
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            self.user,
            "-d",
            database,
            "-c",
            statement,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed on {statement!r}: {done.stderr.strip()}")
        return done.stdout

    def create_database(self, prefix: str = "t", *, template: str | None = None) -> str:
        """Create a database with a unique name (empty, or a copy of ``template``); return the name."""
        name = f"{prefix}_{secrets.token_hex(6)}"
        self.sql(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, disconnecting whoever is still connected."""
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Stop the server and delete its directory."""
        try:
            if self.process is not None and self.process.poll() is None:
                self.process.send_signal(signal.SIGQUIT)
                try:
                    self.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _chown(self, path: Path) -> None:
        if self._run_as is not None:
            entry = pwd.getpwnam(self._run_as)
            os.chown(path, entry.pw_uid, entry.pw_gid)


def _unprivileged_user() -> str | None:
    """Who runs PostgreSQL: ourselves, or ``postgres`` when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ServerUnavailable(
            "running as root and there is no 'postgres' user to run PostgreSQL as "
            "(apt-get install postgresql creates it)"
        ) from None
    return "postgres"


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a throwaway PostgreSQL on a free 127.0.0.1 port; stop and delete it after.

    Raises:
        ServerUnavailable: PostgreSQL is not installed.
    """
    bindir = find_postgres_bin()
    run_as = _unprivileged_user()
    root = Path(tempfile.mkdtemp(prefix="crmhost-pg-"))
    server = PostgresServer(bindir=bindir, root=root, port=free_port(), _run_as=run_as)
    try:
        server._chown(root)
        server.start()
        yield server
    finally:
        server.stop()


@dataclass
class RedisServer:
    """A running throwaway ``redis-server`` (no persistence).

    Attributes:
        port: its TCP port on 127.0.0.1.
        root: its temporary directory, deleted after.
    """

    port: int
    root: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def url(self, db: int = 0) -> str:
        """The ``redis://`` URL of database ``db``."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def command(self, *words: str) -> bytes:
        """Send one command (RESP) and return the raw reply; enough for FLUSHALL and PING."""
        payload = f"*{len(words)}\r\n".encode() + b"".join(
            f"${len(w.encode())}\r\n{w}\r\n".encode() for w in words
        )
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(payload)
            return sock.recv(65536)


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """Start ``redis-server`` on a free 127.0.0.1 port; stop it and delete its files after.

    Raises:
        ServerUnavailable: redis-server is not installed.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServerUnavailable(
            "redis-server is not installed (not on PATH); install it with: apt-get install redis-server"
        )
    root = Path(tempfile.mkdtemp(prefix="crmhost-redis-"))
    server = RedisServer(port=free_port(), root=root)
    log = root / "redis.log"
    try:
        with log.open("wb") as out:
            server.process = subprocess.Popen(  # noqa: S603 (fixed binary, our own arguments)
                [
                    binary,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(server.port),
                    "--dir",
                    str(root),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--protected-mode",
                    "yes",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent(signal.SIGKILL),
            )
        _wait_for_port(server.port, server.process, "redis-server", log)
        yield server
    finally:
        if server.process is not None:
            server.process.terminate()
            try:
                server.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()
        shutil.rmtree(root, ignore_errors=True)
