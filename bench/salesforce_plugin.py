"""Benchmark: the Salesforce plugin against its sandbox over real HTTP on 127.0.0.1.

Upserts 10,000 contacts through ``push_records`` (batches of 1,000 = one composite call of 5
collections of 200 each) and pulls 12,000 through ``pull_changes`` (pages of 2,000), with the
org's daily API allocation on (the sandbox's ``real`` tier, 100,000 calls per rolling day).
For comparison it also upserts contacts one API call each, the naive way
(``PATCH /sobjects/Contact/PenguinMails_Email_Key__c/{email}``).

Prints one JSON object. Usage: ``uv run python bench/salesforce_plugin.py [--naive N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import httpx

import crmhost_salesforce.plugin as plugin
from crmhost.context import IntegrationContext, ProviderApp
from crmhost.models import ObjectType, Record, RecordBatch, RecordOp
from crmhost.plugins import Plugins
from crmhost.ratelimit import SlidingWindowLimiter
from crmhost.sandbox import running
from crmhost_salesforce.auth import credentials_from_token
from crmhost_salesforce.info import INFO
from crmhost_salesforce.sandbox import create_sandbox

PUSH = 10_000
PULL = 12_000


def _record(i: int) -> Record:
    email = f"bench{i}@example.com"
    fields = {
        "Email": email,
        "FirstName": f"F{i}",
        "LastName": f"L{i}",
        "PenguinMails_Lead_Score__c": i % 100,
    }
    return Record(object=ObjectType.CONTACT, key=email, fields=fields)


async def run(naive: int) -> dict[str, Any]:
    sandbox = create_sandbox()
    plugins = Plugins()
    plugins.register(plugin, "salesforce")
    dispatcher = plugins.dispatcher()
    with running(sandbox) as base_url:
        async with httpx.AsyncClient(timeout=60) as http:
            app = ProviderApp(
                client_id=sandbox.client_id, client_secret=sandbox.client_secret, base_url=base_url
            )
            limiter = SlidingWindowLimiter(INFO.rate_limit)
            bare = IntegrationContext(provider="salesforce", app=app, http=http, limiter=limiter)
            creds = credentials_from_token(
                bare, (await http.post(f"{base_url}/_sandbox/token", json={"scopes": ["api"]})).json(), None
            )
            ctx = IntegrationContext(
                provider="salesforce", app=app, http=http, limiter=limiter, credentials=creds
            )

            sandbox.stats.reset()
            started = time.perf_counter()
            for start in range(0, PUSH, 1000):
                batch = RecordBatch(
                    object=ObjectType.CONTACT,
                    op=RecordOp.UPSERT,
                    records=[_record(i) for i in range(start, start + 1000)],
                )
                results = await dispatcher.acall("salesforce", "push_records", ctx=ctx, batch=batch)
                assert all(r.ok for r in results)
            push_s = time.perf_counter() - started
            push_stats = sandbox.stats.snapshot()

            extra = [_record(i).fields for i in range(PUSH, PULL)]
            await http.post(
                f"{base_url}/_sandbox/seed/Contact",
                json=[{**f, "PenguinMails_Email_Key__c": f["Email"]} for f in extra],
            )
            sandbox.stats.reset()
            started = time.perf_counter()
            cursor, pulled, pages = None, 0, 0
            while True:
                page = await dispatcher.acall(
                    "salesforce", "pull_changes", ctx=ctx, object=ObjectType.CONTACT, cursor=cursor
                )
                pulled += len(page.changes)
                pages += 1
                cursor = page.next_cursor
                if not page.has_more:
                    break
            pull_s = time.perf_counter() - started
            pull_stats = sandbox.stats.snapshot()

            sandbox.stats.reset()
            headers = {"Authorization": f"Bearer {creds.access_token}"}
            started = time.perf_counter()
            for i in range(naive):
                email = f"naive{i}@example.com"
                response = await http.patch(
                    f"{base_url}/services/data/v60.0/sobjects/Contact/PenguinMails_Email_Key__c/{email}",
                    json={"Email": email, "LastName": f"L{i}"},
                    headers=headers,
                )
                assert response.status_code in (200, 201)
            naive_s = time.perf_counter() - started
            usage = (await http.get(f"{base_url}/_sandbox/rate-limits")).json()
            limit_info = (await http.get(f"{base_url}/services/data/v60.0/limits", headers=headers)).json()
    per_record_naive = naive_s / naive if naive else 0.0
    return {
        "daily_allocation": {"tier": usage["tier"], **limit_info["DailyApiRequests"]},
        "upsert": {
            "records": PUSH,
            "api_calls": push_stats["total"],
            "calls_by_endpoint": push_stats["calls"],
            "wall_s": round(push_s, 3),
            "records_per_s": round(PUSH / push_s),
        },
        "pull": {
            "records": pulled,
            "pages": pages,
            "api_calls": pull_stats["total"],
            "calls_by_endpoint": pull_stats["calls"],
            "wall_s": round(pull_s, 3),
            "records_per_s": round(pulled / pull_s),
        },
        "naive_upsert": {
            "records": naive,
            "api_calls": naive,
            "wall_s": round(naive_s, 3),
            "extrapolated_10000_wall_s": round(per_record_naive * PUSH, 1),
            "api_call_ratio_vs_plugin": round(PUSH / max(1, push_stats["total"]), 1),
            "wall_ratio_vs_plugin": round(per_record_naive * PUSH / push_s, 1) if naive else None,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--naive", type=int, default=2000, help="contacts to upsert one call each (0 skips)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.naive))))


if __name__ == "__main__":
    main()
