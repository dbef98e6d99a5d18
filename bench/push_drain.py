"""Benchmark: one push drain of N pending ``record`` rows, the host's push alone.

The CRM's sandbox runs in its own process (``crmhost sandbox <crm>``), so its CPU is not this
process's; the host runs in this process on a fresh SQLite file (or ``--database-url``), with N
contacts and N pending outbox rows written before the clock starts. The clock covers one
:func:`crmhost.sync.push.drain` until nothing is due. Prints one JSON object: wall time, rate,
CRM calls, peak RSS of this process, seconds the client-side limiter waited, and with
``--profile`` the top functions by cumulative time (cProfile).

``--limits off`` turns the sandbox's limits off and also the host's own per-account pacing
(``host.limiters.enabled``), as ``bench/hubspot_plugin.py`` does; ``--limits real`` keeps both.

    uv run python bench/push_drain.py --crm hubspot --contacts 10000
    uv run python bench/push_drain.py --crm salesforce --contacts 100000 --profile 30
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, insert

from crmhost.context import ProviderApp
from crmhost.db.platform import ContactRow
from crmhost.db.syncstate import OutboxRow
from crmhost.plugins import load_plugins
from crmhost.runtime import open_host
from crmhost.services.tenants import create_tenant
from crmhost.testing.crmstack import (
    UNSERVED_CALLBACK,
    host_settings,
    installed_crms,
    stale_token_integration,
)

CHUNK = 5_000


def _sandbox(crm: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """``crmhost sandbox <crm>`` as a child process; its JSON ready line."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "from crmhost.cli import main; main()", "sandbox", crm],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise SystemExit(f"the {crm} sandbox did not start")
    return proc, dict(json.loads(line))


class SqlTimes:
    """Wall time per SQL statement (its first 70 characters), from the engine's cursor events."""

    def __init__(self, engine: Any) -> None:
        self.totals: dict[str, list[float]] = {}
        self.examples: dict[str, tuple[str, Any]] = {}
        self._starts: dict[int, float] = {}
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        self._starts[id(cursor)] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        took = time.perf_counter() - self._starts.pop(id(cursor), time.perf_counter())
        key = " ".join(statement.split())[:70]
        entry = self.totals.setdefault(key, [0, 0.0])
        entry[0] += 1
        entry[1] += took
        if key not in self.examples:
            self.examples[key] = (statement, parameters)

    def plans(self, path: Path, n: int) -> list[str]:
        """SQLite's ``EXPLAIN QUERY PLAN`` of the ``n`` costliest statements, on the file at ``path``."""
        out = []
        with sqlite3.connect(path) as db:
            for key, _ in sorted(self.totals.items(), key=lambda kv: -kv[1][1])[:n]:
                statement, params = self.examples[key]
                if isinstance(params, list):  # executemany: the first parameter set
                    params = params[0] if params else ()
                try:
                    plan = db.execute("EXPLAIN QUERY PLAN " + statement, params).fetchall()
                except sqlite3.Error as exc:
                    plan = [(0, 0, 0, f"(no plan: {exc})")]
                out.append(f"{key}")
                out.extend(f"    {row[-1]}" for row in plan)
        return out

    def top(self, n: int) -> list[str]:
        ranked = sorted(self.totals.items(), key=lambda kv: -kv[1][1])[:n]
        return [f"{t:8.2f} s {int(c):6d}x  {stmt}" for stmt, (c, t) in ranked]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _seed(host: Any, tenant_id: str, iid: str, n: int) -> None:
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        contacts = [
            {
                "id": f"c{i:07d}",
                "tenant_id": tenant_id,
                "email": f"person{i}@example.com",
                "first_name": f"First{i}",
                "last_name": f"Last{i}",
                "lead_score": i % 100,
                "custom": {},
                "field_modified_at": {},
            }
            for i in range(start, stop)
        ]
        rows = [
            {
                "tenant_id": tenant_id,
                "integration_id": iid,
                "kind": "record",
                "contact_id": c["id"],
                "dedupe_key": f"record:{c['id']}",
                "payload": {},
            }
            for c in contacts
        ]
        async with host.db.transaction(tenant_id) as session:
            await session.execute(insert(ContactRow), contacts)
            await session.execute(insert(OutboxRow), rows)


async def run(args: argparse.Namespace, data: Path) -> dict[str, Any]:
    from crmhost.db.migrate import upgrade
    from crmhost.sync.push import drain

    proc, ready = _sandbox(args.crm)
    try:
        base = ready["base_url"]
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            (await c.put("/_sandbox/rate-limits", json={"tier": args.limits})).raise_for_status()
        url = args.database_url or f"sqlite+aiosqlite:///{data / 'push.db'}"
        await upgrade(url)
        settings = host_settings(data, url)
        settings.providers[args.crm] = ProviderApp(
            client_id=ready["client_id"],
            client_secret=ready["client_secret"],
            redirect_uri=UNSERVED_CALLBACK,
            base_url=base,
        )
        plugins = load_plugins(allow={args.crm})
        async with open_host(settings, plugins=plugins, migrate=False, with_queue=False) as host:
            host.limiters.enabled = args.limits == "real"
            tenant_id, _ = await create_tenant(host, "Bench")
            oauth = host.plugins.info(args.crm).oauth
            scopes = [*oauth.scopes, *oauth.optional_scopes] if oauth is not None else []
            iid = await stale_token_integration(host, tenant_id, args.crm, base, scopes)
            started = time.perf_counter()
            await _seed(host, tenant_id, iid, args.contacts)
            seed_s = time.perf_counter() - started
            profiler = cProfile.Profile() if args.profile else None
            sql = SqlTimes(host.db.engine.sync_engine) if args.sql else None
            started = time.perf_counter()
            if profiler is not None:
                profiler.enable()
            summary = await drain(host, tenant_id, iid, time_budget_s=1e9)
            if profiler is not None:
                profiler.disable()
            wall = time.perf_counter() - started
            waited = sum(lim.waited_s for lim in host.limiters._limiters.values())
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            stats = (await c.get("/_sandbox/stats")).json()
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    out: dict[str, Any] = {
        "crm": args.crm,
        "contacts": args.contacts,
        "limits": args.limits,
        "database": "postgresql" if args.database_url and "postgres" in args.database_url else "sqlite",
        "seed_s": round(seed_s, 1),
        "wall_s": round(wall, 2),
        "contacts_per_s": round(args.contacts / wall, 1),
        "calls": summary.calls,
        "crm_calls": stats.get("total"),
        "counts": summary.counts,
        "stopped": summary.stopped,
        "limiter_waited_s": round(waited, 2),
        "peak_rss_mb": round(_rss_mb(), 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if profiler is not None:
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats("cumulative").print_stats(args.profile)
        out["profile"] = buf.getvalue().splitlines()
    if sql is not None:
        out["profile"] = out.get("profile", []) + sql.top(args.sql)
        if args.explain and not args.database_url:
            out["profile"] += sql.plans(data / "push.db", args.sql)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--crm", choices=installed_crms(), required=True)
    p.add_argument("--contacts", type=int, default=10_000)
    p.add_argument("--limits", choices=("real", "off"), default="off")
    p.add_argument("--database-url", default=None, help="a PostgreSQL URL; a fresh SQLite file by default")
    p.add_argument("--profile", type=int, default=0, help="print the top N functions by cumulative time")
    p.add_argument("--sql", type=int, default=0, help="print the top N SQL statements by wall time")
    p.add_argument("--explain", action="store_true", help="with --sql on SQLite: their query plans")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as data:
        result = asyncio.run(run(args, Path(data)))
    profile = result.pop("profile", None)
    print(json.dumps(result))
    if profile:
        print("\n".join(profile), file=sys.stderr)


if __name__ == "__main__":
    main()
