"""The ``crmhost`` command, run as a subprocess the way ops run it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def _run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crmhost", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(name="env")
def fx_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMHOST_")}
    env["CRMHOST_DATA_DIR"] = str(tmp_path / "data")
    return env


def test_create_tenant_prints_one_json_line_and_keeps_a_0600_key(env: dict[str, str], tmp_path: Path) -> None:
    done = _run(["create-tenant", "Acme Ltd"], env)
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    out = json.loads(line)
    assert set(out) == {"tenant_id", "api_key"} and out["api_key"].startswith("chk_")
    key_file = tmp_path / "data" / "encryption.keys"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert "generated a key" in done.stderr and str(key_file) in done.stderr
    assert out["api_key"] not in done.stderr


def test_the_embedded_store_is_private_to_its_owner(env: dict[str, str], tmp_path: Path) -> None:
    # a permissive umask, as on many servers (the command inherits it): modes must not depend on it
    before = os.umask(0o002)
    try:
        done = _run(["create-tenant", "Acme"], env)
    finally:
        os.umask(before)
    assert done.returncode == 0, done.stderr
    data = tmp_path / "data"
    assert data.stat().st_mode & 0o777 == 0o700
    store = [p for p in data.iterdir() if p.name.startswith("crmhost.db")]
    assert data / "crmhost.db" in store
    for path in store:  # the database and its -wal/-shm files
        assert path.stat().st_mode & 0o777 == 0o600, path.name


def test_bad_database_url_is_one_line(env: dict[str, str]) -> None:
    env["CRMHOST_DATABASE_URL"] = "mysql://db/crm"
    done = _run(["migrate"], env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "crmhost migrate: CRMHOST_DATABASE_URL must be sqlite+aiosqlite:///PATH or postgresql+asyncpg://..."
    ]


def test_bad_encryption_keys_name_the_entry(env: dict[str, str]) -> None:
    env["CRMHOST_ENCRYPTION_KEYS"] = "k1:!!!notbase64"
    done = _run(["create-tenant", "x"], env)
    assert done.returncode == 2 and "CRMHOST_ENCRYPTION_KEYS entry 1 ('k1')" in done.stderr
    assert "Traceback" not in done.stderr


def test_worker_without_redis_says_why(env: dict[str, str]) -> None:
    done = _run(["worker"], env)
    assert done.returncode == 2 and "CRMHOST_REDIS_URL is not set" in done.stderr


def test_unknown_sandbox_lists_installed(env: dict[str, str]) -> None:
    done = _run(["sandbox", "nope"], env)
    assert done.returncode == 2 and "no sandbox 'nope'; installed:" in done.stderr


def test_empty_tenant_name_is_rejected(env: dict[str, str]) -> None:
    done = _run(["create-tenant", "  "], env)
    assert done.returncode == 2 and "tenant name must be 1 to 200 characters" in done.stderr


def test_plugins_allow_list_empty_loads_none(env: dict[str, str]) -> None:
    env["CRMHOST_PLUGINS"] = ""
    done = _run(["plugins"], env)
    assert done.returncode == 0 and done.stdout == ""


def _head() -> str | None:
    from alembic.script import ScriptDirectory

    from crmhost.db.migrate import alembic_config

    return ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite://")).get_current_head()


def test_migrate_then_rotate_keys(env: dict[str, str]) -> None:
    head = _head()
    assert head is not None
    assert json.loads(_run(["migrate"], env).stdout) == {"revision": head}
    assert json.loads(_run(["migrate"], env).stdout) == {"revision": head}  # twice: a no-op
    done = _run(["rotate-keys"], env)
    assert done.returncode == 0 and json.loads(done.stdout)["re_encrypted"] == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("listen", ["port", "inherited socket"])
def test_serve_becomes_ready_and_answers(env: dict[str, str], listen: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
        if listen == "port":
            sock.close()  # serve binds the port itself
            args, fds = ["--port", str(port)], ()
        else:  # kept bound and handed over: no other process can take the port meanwhile
            args, fds = ["--fd", str(sock.fileno())], (sock.fileno(),)
        proc = subprocess.Popen(
            [sys.executable, "-m", "crmhost", "serve", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            pass_fds=fds,
        )
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline and ready is None:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                ready = r
            except httpx.TransportError:
                time.sleep(0.1)
        assert ready is not None and ready.status_code == 200, "serve never became ready"
        assert ready.json()["checks"]["jobs"] == "in-process"
        assert httpx.get(f"http://127.0.0.1:{port}/v1/integrations").status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_unreachable_database_is_one_line(env: dict[str, str]) -> None:
    env["CRMHOST_DATABASE_URL"] = f"postgresql+asyncpg://u:p@127.0.0.1:{_free_port()}/x"
    done = _run(["migrate"], env)
    assert done.returncode == 2 and done.stderr.startswith("crmhost migrate: ")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
