"""A bulk request is all or nothing: ``crmhost serve`` killed (SIGKILL) mid-request commits none of it.

The server is a real ``crmhost serve`` subprocess. On PostgreSQL the test makes the kill land
deterministically mid-request: it holds a row lock on a contact the request reaches only in its
second chunk of rows, waits until the server's transaction is blocked on that lock (everything of
the first chunk is written by then, uncommitted), and kills the server there. SQLite has no row
locks to hold, so the kill lands as soon as the server is seen holding the write lock: the
request's transaction is open and nothing of it may survive. (A kill timed later, to land after
a chunk-per-transaction ingest would have committed a chunk, landed after the final commit on a
loaded machine; the PostgreSQL run is the one that catches chunk commits.) A resend after a
restart then lands every row exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from crmhost.security.tokens import generate_key_spec
from crmhost.sync.ingest import CHUNK

#: rows per request: more than two chunks, so a chunk-per-transaction ingest commits in part
ROWS = 3 * CHUNK
#: the row the PostgreSQL test holds a lock on: in the second chunk, past the first
LOCKED_ROW = CHUNK + CHUNK // 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """``crmhost serve`` as a subprocess; ``kill`` is a SIGKILL, ``start`` a fresh process."""

    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""

    def start(self) -> None:
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "crmhost", "serve", "--port", str(port)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet: poll again
            time.sleep(0.1)
        raise AssertionError(f"crmhost serve never became ready:\n{self.log.read_text()}")

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=20)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


@pytest.fixture(name="server")
def fx_server(database_url: str, tmp_path: Path) -> Iterator[tuple[Server, str, str]]:
    """A served host on ``database_url`` and one tenant: ``(server, tenant_id, api_key)``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMHOST_")}
    env |= {
        "CRMHOST_DATA_DIR": str(tmp_path / "data"),
        "CRMHOST_DATABASE_URL": database_url,
        "CRMHOST_ENCRYPTION_KEYS": generate_key_spec("k1"),
        "CRMHOST_PLUGINS": "",
    }
    done = subprocess.run(
        [sys.executable, "-m", "crmhost", "create-tenant", "Acme"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    tenant = json.loads(done.stdout)
    server = Server(env=env, log=tmp_path / "serve.log")
    server.start()
    try:
        yield server, tenant["tenant_id"], tenant["api_key"]
    finally:
        server.stop()


def _contacts(prefix: str) -> list[dict[str, Any]]:
    return [{"email": f"{prefix}{i:05d}@atomic.example", "first_name": f"N{i}"} for i in range(ROWS)]


def _events(prefix: str) -> list[dict[str, Any]]:
    at = datetime.now(UTC) - timedelta(hours=1)
    return [
        {
            "id": f"{prefix}-evt-{i:05d}",
            "kind": "opened",
            "email": f"{prefix}{i:05d}@atomic.example",
            "occurred_at": (at + timedelta(seconds=i % 600)).isoformat(),
        }
        for i in range(ROWS)
    ]


async def _scalar(conn: AsyncConnection, sql: str, **params: Any) -> int:
    return int((await conn.execute(text(sql), params)).scalar_one())


@asynccontextmanager
async def _connection(database_url: str) -> AsyncIterator[AsyncConnection]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            yield conn
    finally:
        await engine.dispose()


async def _counts(database_url: str, tenant_id: str, prefix: str) -> tuple[int, int]:
    """How many of this prefix's contacts and events are committed."""
    async with _connection(database_url) as conn:
        contacts = await _scalar(
            conn,
            "SELECT count(*) FROM contacts WHERE tenant_id = :t AND email LIKE :p",
            t=tenant_id,
            p=f"{prefix}%",
        )
        events = await _scalar(
            conn,
            "SELECT count(*) FROM email_events WHERE tenant_id = :t AND event_id LIKE :p",
            t=tenant_id,
            p=f"{prefix}-evt-%",
        )
    return contacts, events


async def _kill_mid_request_postgres(
    server: Server,
    database_url: str,
    tenant_id: str,
    start: Callable[[], asyncio.Task[httpx.Response]],
    locked_email: str,
) -> asyncio.Task[httpx.Response]:
    """Hold a lock on a second-chunk contact, kill the server while its transaction waits on it."""
    async with _connection(database_url) as holder:
        await holder.execute(
            text("SELECT id FROM contacts WHERE tenant_id = :t AND email = :e FOR UPDATE"),
            {"t": tenant_id, "e": locked_email},
        )
        # the request starts only once the lock is held, so it cannot finish before reaching it
        send = start()
        me = await _scalar(holder, "SELECT pg_backend_pid()")
        deadline = time.monotonic() + 60
        async with _connection(database_url) as watcher:
            while True:
                waiting = await _scalar(
                    watcher,
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> :me",
                    me=me,
                )
                if waiting:
                    break
                assert not send.done(), "the request finished without reaching the locked contact"
                assert time.monotonic() < deadline, "the server never waited on the locked contact"
                await asyncio.sleep(0.05)
        server.kill()
        await holder.rollback()  # the killed server's backend now runs on into a closed socket
    async with _connection(database_url) as conn:
        deadline = time.monotonic() + 60
        others = (
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        while await _scalar(conn, others):
            assert time.monotonic() < deadline, "the killed server's transaction never ended"
            await asyncio.sleep(0.05)
    return send


def _sqlite_writing(path: str) -> bool:
    """Whether another connection holds SQLite's write lock (a write transaction is open)."""
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            return True
        raise
    finally:
        conn.close()


async def _kill_mid_request_sqlite(
    server: Server, database_url: str, send: asyncio.Task[httpx.Response]
) -> None:
    """Kill the server while this request's write transaction is open."""
    path = database_url.split(":///", 1)[1]
    deadline = time.monotonic() + 60
    while not _sqlite_writing(path):
        assert not send.done(), "the request finished before it was seen writing"
        assert time.monotonic() < deadline, "the server never started writing"
        await asyncio.sleep(0.01)
    assert not send.done(), "the request finished before the kill: the machine was too fast to test"
    server.kill()


async def _killed_mid_request(
    server: Server,
    database_url: str,
    tenant_id: str,
    key: str,
    path: str,
    body: dict[str, Any],
    *,
    locked_email: str,
) -> None:
    """Send ``body`` to ``path``, kill the server mid-request, check it never answered."""
    client = httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=120)
    async with client:
        method = client.put if path.endswith(":bulk") else client.post
        sent: list[asyncio.Task[httpx.Response]] = []

        def start() -> asyncio.Task[httpx.Response]:
            sent.append(asyncio.ensure_future(method(path, json=body)))
            return sent[0]

        try:
            if database_url.startswith("postgresql"):
                send = await _kill_mid_request_postgres(server, database_url, tenant_id, start, locked_email)
            else:
                send = start()
                await _kill_mid_request_sqlite(server, database_url, send)
            with pytest.raises(httpx.TransportError):
                await send
        finally:
            for task in sent:
                task.cancel()


async def test_killed_bulk_requests_commit_nothing_and_a_resend_lands_once(
    server: tuple[Server, str, str], database_url: str
) -> None:
    srv, tenant_id, key = server
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=srv.url, headers=headers, timeout=120) as c:
        # the contact the PostgreSQL run locks exists before the request that reaches it
        first = await c.put("/v1/contacts:bulk", json={"contacts": [_contacts("k")[LOCKED_ROW]]})
        assert first.status_code == 200 and first.json()["created"] == 1
    locked = _contacts("k")[LOCKED_ROW]["email"]

    await _killed_mid_request(
        srv,
        database_url,
        tenant_id,
        key,
        "/v1/contacts:bulk",
        {"contacts": _contacts("k")},
        locked_email=locked,
    )
    assert await _counts(database_url, tenant_id, "k") == (1, 0), "a killed bulk upsert committed in part"

    srv.start()
    async with httpx.AsyncClient(base_url=srv.url, headers=headers, timeout=120) as c:
        r = await c.put("/v1/contacts:bulk", json={"contacts": _contacts("k")})
        assert r.status_code == 200, r.text
        assert (r.json()["created"], r.json()["updated"], r.json()["unchanged"]) == (ROWS - 1, 0, 1)
    assert await _counts(database_url, tenant_id, "k") == (ROWS, 0)

    await _killed_mid_request(
        srv,
        database_url,
        tenant_id,
        key,
        "/v1/events",
        {"events": _events("k")},
        locked_email=locked,
    )
    assert await _counts(database_url, tenant_id, "k") == (ROWS, 0), "a killed events batch committed in part"

    srv.start()
    async with httpx.AsyncClient(base_url=srv.url, headers=headers, timeout=120) as c:
        r = await c.post("/v1/events", json={"events": _events("k")})
        assert r.status_code == 200, r.text
        assert (r.json()["accepted"], r.json()["duplicate"]) == (ROWS, 0)
        again = (await c.post("/v1/events", json={"events": _events("k")})).json()
        assert (again["accepted"], again["duplicate"]) == (0, ROWS)
        one = (await c.get(f"/v1/contacts/{_contacts('k')[7]['email']}")).json()
        assert one["total_opens"] == 1 and one["version"] == 2  # created, then one open: once each
    assert await _counts(database_url, tenant_id, "k") == (ROWS, ROWS)
