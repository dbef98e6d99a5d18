"""Delivering a sandbox's webhooks: signed, retried with backoff, every attempt recorded."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx

__all__ = ["Acknowledged", "Delivery", "DeliveryAttempt", "Signer", "WebhookSender"]

log = logging.getLogger(__name__)

#: Signs one delivery: ``(method, url, body, timestamp_ms) -> headers`` to add.
Signer = Callable[[str, str, bytes, int], Mapping[str, str]]
#: Decides from the receiver's answer whether a delivery is done (default: any 2xx).
Acknowledged = Callable[[httpx.Response], bool]


def _any_2xx(response: httpx.Response) -> bool:
    return 200 <= response.status_code < 300


@dataclass
class DeliveryAttempt:
    """One try at delivering a webhook."""

    delivery_id: int
    attempt: int
    url: str
    status: int | None
    error: str | None
    at: float


@dataclass
class Delivery:
    """A webhook payload waiting to be delivered, and what became of it."""

    id: int
    body: bytes
    content_type: str
    attempts: list[DeliveryAttempt] = field(default_factory=list)
    delivered: bool = False
    given_up: bool = False
    settled: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    async def wait(self) -> None:
        """Wait until it was delivered or given up (call from the sandbox's loop)."""
        await self.settled.wait()


class WebhookSender:
    """Posts payloads to the configured URL from a task in the sandbox's event loop.

    A delivery is retried on connection errors, on timeouts and on any non-2xx answer, after
    ``backoff_s * 2**attempt`` seconds, at most ``max_attempts`` times; CRMs retry over hours,
    a sandbox over seconds. Each attempt is re-signed with a fresh timestamp, as CRMs do.

    Args:
        sign: the CRM's signing scheme.
        max_attempts: tries per delivery (the first included).
        backoff_s: the first retry delay.
        timeout_s: how long one attempt may take (HubSpot: 5 s).
        acknowledged: whether an answer settles the delivery; CRMs that want more than a 2xx
            (Salesforce Outbound Messages need a SOAP ``Ack``) pass their own check.
    """

    def __init__(
        self,
        sign: Signer,
        *,
        max_attempts: int = 5,
        backoff_s: float = 0.2,
        timeout_s: float = 5.0,
        acknowledged: Acknowledged = _any_2xx,
    ) -> None:
        self.sign = sign
        #: rewrites a payload for its n-th attempt (HubSpot's ``attemptNumber``); ``None`` resends as is
        self.prepare: Callable[[bytes, int], bytes] | None = None
        self.url: str | None = None
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.acknowledged = acknowledged
        self.deliveries: list[Delivery] = []
        self._ids = itertools.count(1)
        self._queue: asyncio.Queue[Delivery] | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._unsettled: set[int] = set()

    async def start(self) -> None:
        """Start the delivery task in the running loop (the sandbox's startup)."""
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name="sandbox-webhooks")

    async def stop(self) -> None:
        """Cancel delivery (the sandbox's shutdown); undelivered payloads stay recorded."""
        tasks = [t for t in (self._task, *self._pending) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None

    async def settled(self, delivery: Delivery) -> None:
        """Wait, from any event loop, until ``delivery`` was delivered or given up."""
        if self._task is None:
            raise RuntimeError("the webhook sender is not running")
        loop = self._task.get_loop()
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(delivery.wait(), loop))

    def send(self, body: bytes, content_type: str = "application/json") -> Delivery:
        """Queue ``body`` for delivery to the configured URL; without a URL it is only recorded."""
        delivery = Delivery(id=next(self._ids), body=body, content_type=content_type)
        self.deliveries.append(delivery)
        if self.url is not None and self._queue is not None:
            self._queue.put_nowait(delivery)
            self._unsettled.add(delivery.id)
        return delivery

    @property
    def pending(self) -> int:
        """Deliveries queued and neither delivered nor given up yet (a change not yet told)."""
        return len(self._unsettled)

    def reset(self) -> None:
        """Forget recorded deliveries."""
        self.deliveries.clear()

    def snapshot(self) -> list[dict[str, object]]:
        """Deliveries and their attempts, for ``GET /_sandbox/webhooks``."""
        return [
            {
                "id": d.id,
                "delivered": d.delivered,
                "given_up": d.given_up,
                "attempts": [
                    {"attempt": a.attempt, "url": a.url, "status": a.status, "error": a.error}
                    for a in d.attempts
                ],
            }
            for d in self.deliveries
        ]

    async def _run(self) -> None:
        assert self._queue is not None
        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            while True:
                delivery = await self._queue.get()
                # each delivery retries on its own so one dead receiver does not stall the rest
                task = asyncio.create_task(self._deliver(client, delivery))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)

    async def _deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        try:
            await self._attempts(client, delivery)
        finally:
            self._unsettled.discard(delivery.id)

    async def _attempts(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        for attempt in range(self.max_attempts):
            url = self.url
            if url is None:
                return
            timestamp_ms = int(time.time() * 1000)
            body = delivery.body if self.prepare is None else self.prepare(delivery.body, attempt)
            headers = {
                "Content-Type": delivery.content_type,
                **self.sign("POST", url, body, timestamp_ms),
            }
            status: int | None = None
            error: str | None = None
            acked = False
            try:
                response = await client.post(url, content=body, headers=headers)
                status = response.status_code
                acked = self.acknowledged(response)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            delivery.attempts.append(DeliveryAttempt(delivery.id, attempt, url, status, error, time.time()))
            if acked:
                delivery.delivered = True
                delivery.settled.set()
                return
            log.info("webhook %s attempt %s failed: %s", delivery.id, attempt, error or status)
            if attempt + 1 < self.max_attempts:
                await asyncio.sleep(self.backoff_s * 2**attempt)
        delivery.given_up = True
        delivery.settled.set()
