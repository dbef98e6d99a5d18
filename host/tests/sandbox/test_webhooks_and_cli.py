from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
from typing import Any

import httpx
import pytest
from litestar import Litestar, Request, Response, post

from crmhost.sandbox import running
from crmhost.sandbox.cli import create

from .conftest import ToySandbox


def test_webhooks_are_signed_and_retried_until_accepted(toy: ToySandbox, client: httpx.Client) -> None:
    received: list[tuple[bytes, dict[str, str]]] = []
    done = threading.Event()

    @post("/hook", status_code=200)
    async def hook(request: Request[Any, Any, Any]) -> Response[str]:
        received.append((await request.body(), dict(request.headers)))
        if len(received) < 3:
            return Response("not yet", status_code=500)
        done.set()
        return Response("ok")

    with running(Litestar([hook])) as receiver:
        toy.webhooks.backoff_s = 0.01
        client.put("/_sandbox/webhooks", json={"url": f"{receiver}/hook"})
        loop_sender = toy.webhooks
        # deliveries are queued from the sandbox's own loop, like its routes do
        asyncio.run_coroutine_threadsafe(_send(loop_sender, b'[{"eventId": 1}]'), _loop_of(toy)).result(5)
        assert done.wait(10)
    assert len(received) == 3
    for body, headers in received:
        expected = hmac.new(
            toy.client_secret.encode(), body + headers["x-toy-timestamp"].encode(), hashlib.sha256
        ).hexdigest()
        assert headers["x-toy-signature"] == expected
    deliveries = client.get("/_sandbox/webhooks").json()["deliveries"]
    assert deliveries[0]["delivered"] is True
    assert [a["status"] for a in deliveries[0]["attempts"]] == [500, 500, 200]


def test_unreachable_receiver_is_given_up_after_max_attempts(toy: ToySandbox, client: httpx.Client) -> None:
    toy.webhooks.backoff_s = 0.01
    toy.webhooks.max_attempts = 2
    client.put("/_sandbox/webhooks", json={"url": "http://127.0.0.1:9/closed"})
    delivery = asyncio.run_coroutine_threadsafe(_send(toy.webhooks, b"[]"), _loop_of(toy)).result(5)
    future = asyncio.run_coroutine_threadsafe(delivery.wait(), _loop_of(toy))
    future.result(10)
    assert delivery.given_up and not delivery.delivered
    assert len(delivery.attempts) == 2
    assert all(a.error and a.status is None for a in delivery.attempts)


async def _send(sender: Any, body: bytes) -> Any:
    return sender.send(body)


def _loop_of(toy: ToySandbox) -> asyncio.AbstractEventLoop:
    task = toy.webhooks._task
    assert task is not None
    return task.get_loop()


def test_cli_create_names_what_is_installed() -> None:
    with pytest.raises(LookupError, match="no sandbox 'nope'"):
        create("nope")


def test_a_delivery_is_pending_until_delivered_or_given_up(toy: ToySandbox, client: httpx.Client) -> None:
    toy.webhooks.backoff_s = 0.2
    toy.webhooks.max_attempts = 2
    client.put("/_sandbox/webhooks", json={"url": "http://127.0.0.1:9/closed"})
    delivery = asyncio.run_coroutine_threadsafe(_send(toy.webhooks, b"[]"), _loop_of(toy)).result(5)
    assert toy.webhooks.pending == 1  # retrying: /_sandbox/counts says so as webhooks_pending
    asyncio.run_coroutine_threadsafe(delivery.wait(), _loop_of(toy)).result(10)
    assert delivery.given_up
    assert toy.webhooks.pending == 0
