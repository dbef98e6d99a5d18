"""Benchmark: the HubSpot plugin against its sandbox over real HTTP on 127.0.0.1.

- push: 10,000 contacts upserted through ``push_records`` (100 batches of 100 by email), with the
  sandbox's rate limits at the default tier (public OAuth app: 110 requests per rolling 10 s) and
  with limits off; the client paces itself with the plugin's declared policy in both cases
  (disabled when limits are off); 10,000 fit in one 10 s window (102 calls), so a sustained run of
  30,000 (302 calls) shows the pacing against the floor the window sets;
- naive: the same contacts one record per call (batches of 1), measured on ``--naive`` contacts
  with limits off, and the floor the 110/10 s limit sets for doing all of them that way;
- pull: 25,000 contacts through ``pull_changes``, as a backfill (list endpoint, 100 a page) and as
  an increment (search, 200 a page, 5/s, restarting before the 10,000-result cap), at the default
  tier and with limits off.

Prints one JSON object. Usage: ``uv run python bench/hubspot_plugin.py [--naive 1000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from typing import Any

import httpx

import crmhost_hubspot.plugin as plugin
from crmhost.context import IntegrationContext, ProviderApp
from crmhost.models import AuthKind, Credentials, ObjectType, Record, RecordBatch, RecordOp, RefreshGrant
from crmhost.plugins import Dispatcher, Plugins
from crmhost.ratelimit import SlidingWindowLimiter
from crmhost.sandbox import running
from crmhost_hubspot.sandbox import create_sandbox

PUSH = 10_000
PULL = 25_000
BURST, WINDOW_S = 110, 10.0


def _record(i: int) -> Record:
    email = f"bench{i}@example.com"
    fields = {"firstname": f"F{i}", "lastname": f"L{i}", "penguinmails_lead_score": str(i % 100)}
    return Record(object=ObjectType.CONTACT, key=email, fields=fields)


def _floor_s(calls: int, limit: int = BURST, window_s: float = WINDOW_S) -> float:
    """Seconds a rolling window of ``limit`` per ``window_s`` forces on ``calls`` from a fresh window.

    Request ``k`` (from 0) cannot go before ``window_s * (k // limit)``: bursts of ``limit``, one
    window apart.
    """
    return window_s * ((calls - 1) // limit) if calls else 0.0


class Run:
    """One sandbox, one integration context, the admin client."""

    def __init__(self, base_url: str, sandbox: Any, http: httpx.AsyncClient, dispatcher: Dispatcher) -> None:
        self.base_url, self.sandbox, self.http, self.dispatcher = base_url, sandbox, http, dispatcher
        self.admin = httpx.AsyncClient(base_url=base_url, timeout=60)

    async def ctx(self, *, paced: bool) -> IntegrationContext:
        limiter = SlidingWindowLimiter(plugin.RATE_LIMIT)
        limiter.enabled = paced
        app = ProviderApp(
            client_id=self.sandbox.client_id,
            client_secret=self.sandbox.client_secret,
            redirect_uri="http://127.0.0.1/cb",
            base_url=self.base_url,
        )
        ctx = IntegrationContext(provider="hubspot", app=app, http=self.http, limiter=limiter)
        minted = (await self.admin.post("/_sandbox/token", json={})).json()
        stale = Credentials(kind=AuthKind.OAUTH2, access_token="x", refresh_token=minted["refresh_token"])
        creds = await self.dispatcher.acall(
            "hubspot", "authenticate", ctx=ctx, grant=RefreshGrant(credentials=stale)
        )
        return IntegrationContext(
            provider="hubspot", app=app, http=self.http, limiter=limiter, credentials=creds
        )

    async def stats(self) -> dict[str, Any]:
        return dict((await self.admin.get("/_sandbox/stats")).json())

    async def tier(self, name: str, *, wipe: bool = True) -> None:
        await self.admin.put("/_sandbox/rate-limits", json={"tier": name})
        if wipe:
            await self.admin.post("/_sandbox/reset", params={"data": "true"})


async def push(run: Run, *, limits: bool, count: int = PUSH, batch_size: int = 100) -> dict[str, Any]:
    await run.tier("real" if limits else "off")
    ctx = await run.ctx(paced=limits)
    await run.admin.post("/_sandbox/reset")
    started = time.perf_counter()
    ok = 0
    for start in range(0, count, batch_size):
        batch = RecordBatch(
            object=ObjectType.CONTACT,
            op=RecordOp.UPSERT,
            records=[_record(i) for i in range(start, min(count, start + batch_size))],
        )
        results = await run.dispatcher.acall("hubspot", "push_records", ctx=ctx, batch=batch)
        ok += sum(r.ok for r in results)
    wall = time.perf_counter() - started
    stats = await run.stats()
    return {
        "contacts": count,
        "ok": ok,
        "api_calls": stats["total"],
        "batch_calls": stats["calls"].get("POST /crm/v3/objects/{object_type}/batch/upsert", 0),
        "rate_limited_429": stats["rate_limited"],
        "wall_s": round(wall, 2),
        "contacts_per_s": round(count / wall, 1),
        "client_waited_s": round(ctx.limiter.waited_s, 2),
        "limit_floor_s": round(_floor_s(stats["total"]), 2) if limits else 0.0,
    }


async def pull(run: Run, *, limits: bool) -> dict[str, Any]:
    await run.tier("off")
    for start in range(0, PULL, 5000):
        chunk = [{"email": f"pull{i}@example.com", "firstname": f"P{i}"} for i in range(start, start + 5000)]
        await run.admin.post("/_sandbox/seed/contacts", json=chunk)
    await run.tier("real" if limits else "off", wipe=False)
    out: dict[str, Any] = {"contacts": PULL}
    for name, cursor in (
        ("backfill_list", None),
        ("increment_search", json.dumps({"mode": "search", "since": 0})),
    ):
        ctx = await run.ctx(paced=limits)
        await run.admin.post("/_sandbox/reset")
        started = time.perf_counter()
        seen: set[str] = set()
        pages = 0
        while True:
            page = await run.dispatcher.acall(
                "hubspot", "pull_changes", ctx=ctx, object=ObjectType.CONTACT, cursor=cursor
            )
            pages += 1
            seen.update(c.remote_id for c in page.changes)
            cursor = page.next_cursor
            if not page.has_more:
                break
        wall = time.perf_counter() - started
        stats = await run.stats()
        floor = _floor_s(stats["total"]) if name == "backfill_list" else _floor_s(stats["total"], 5, 1.0)
        out[name] = {
            "distinct_contacts": len(seen),
            "api_calls": stats["total"],
            "rate_limited_429": stats["rate_limited"],
            "wall_s": round(wall, 2),
            "contacts_per_s": round(PULL / wall, 1),
            "limit_floor_s": round(floor, 2) if limits else 0.0,
        }
    return out


async def scenario(plugins: Plugins, measure: Any, **kwargs: Any) -> dict[str, Any]:
    """Run ``measure`` against a fresh sandbox (no state or cache carried between scenarios)."""
    sandbox = create_sandbox()
    with running(sandbox) as base_url:
        async with httpx.AsyncClient(timeout=60) as http:
            run = Run(base_url, sandbox, http, plugins.dispatcher())
            try:
                return dict(await measure(run, **kwargs))
            finally:
                await run.admin.aclose()


async def main(naive: int) -> dict[str, Any]:
    plugins = Plugins()
    plugins.register(plugin, "hubspot")
    report: dict[str, Any] = {
        "push_10000_default_tier": await scenario(plugins, push, limits=True),
        "push_10000_limits_off": await scenario(plugins, push, limits=False),
        "push_30000_default_tier_sustained": await scenario(plugins, push, limits=True, count=3 * PUSH),
    }
    naive_run = await scenario(plugins, push, limits=False, count=naive, batch_size=1)
    naive_run["floor_for_10000_at_default_tier_s"] = round(_floor_s(PUSH), 1)
    report["naive_one_per_call_limits_off"] = naive_run
    report["pull_25000_default_tier"] = await scenario(plugins, pull, limits=True)
    report["pull_25000_limits_off"] = await scenario(plugins, pull, limits=False)
    batched = report["push_10000_limits_off"]
    report["ratio_vs_naive"] = {
        "api_calls": round(PUSH / batched["api_calls"], 1),
        "contacts_per_s": round(batched["contacts_per_s"] / naive_run["contacts_per_s"], 1),
    }
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--naive", type=int, default=1000, help="contacts to push one per call")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.naive)), indent=2))
