"""Several accounts of one CRM at one URL, the way the CRM's cloud serves all its customers.

A :class:`~crmhost.sandbox.Sandbox` plays one account (a HubSpot portal, a Salesforce org) and
the host reaches each CRM at one base URL (``ProviderApp.base_url``), so many tenants, each
connected to an account of its own, need their accounts to answer at that one URL.
:class:`Accounts` is that URL: an ASGI app in front of sandboxes of one CRM app (one client id
and secret, :meth:`Sandbox.new_account`) that sends each request to the account it belongs to,
as the CRM tells its accounts apart:

- by the credentials it carries (an access or refresh token, an authorization code, an API key;
  in the ``Authorization`` header, the path, the query or a form body), learned from the answers
  that handed them out: token responses, the consent page's redirect, ``/_sandbox/token`` and
  ``/_sandbox/api-key``;
- on the consent page, by the browser's login session: the cookie of :func:`login_cookies`;
- under ``/_accounts/<n>/`` (:func:`account_url`): the account's own URL, for its admin and
  inspector endpoints.

A request that names no account goes to the first one, so a front of one account answers as
its sandbox does. Each account keeps its own records, call stats, rate limits and webhooks. All
accounts share this process's event loop, as one sandbox served with :func:`running` does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from crmhost.sandbox.app import Sandbox, WireResponse, _send_wire

__all__ = ["ACCOUNT_COOKIE", "Accounts", "account_url", "login_cookies"]

#: the login-session cookie the consent page is routed by (the account's number)
ACCOUNT_COOKIE = "sandbox_account"
_PREFIX = "/_accounts/"
#: keys of JSON answers that hand out credentials (token responses, the admin mints)
_ISSUED = ("access_token", "refresh_token", "api_key")
#: answers larger than this are never credentials and are not looked into
_SMALL = 16 * 1024

# ASGI as plain dicts: the front passes every kind of message through
Message = dict[str, Any]
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def account_url(front_url: str, n: int) -> str:
    """The URL of account ``n`` of the front at ``front_url`` (for its ``/_sandbox/...`` endpoints)."""
    return f"{front_url.rstrip('/')}{_PREFIX}{n}"


def login_cookies(n: int) -> dict[str, str]:
    """The cookies of a browser logged in to account ``n`` (its consent page is that account's)."""
    return {ACCOUNT_COOKIE: str(n)}


class Accounts:
    """An ASGI app that serves ``boxes`` (accounts of one CRM app) at one URL.

    Args:
        boxes: sandboxes of one CRM with the same client id and secret and distinct account ids.

    Raises:
        ValueError: no box, two apps, or an account twice.
    """

    def __init__(self, boxes: Sequence[Sandbox]) -> None:
        if not boxes:
            raise ValueError("a front needs at least one account")
        first = boxes[0]
        if any((b.client_id, b.client_secret) != (first.client_id, first.client_secret) for b in boxes):
            raise ValueError("every account must have the same app (client id and secret)")
        if len({b.account_id for b in boxes}) != len(boxes):
            raise ValueError("an account is in the front twice (account ids must differ)")
        self.boxes = list(boxes)
        self._owner: dict[str, int] = {}  # credential -> account number

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            await self._serve(0, scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(_PREFIX):
            head, _, rest = path[len(_PREFIX) :].partition("/")
            if not head.isdigit() or int(head) >= len(self.boxes):
                error = f"no account {head!r} (the front has {len(self.boxes)})"
                await _send_wire(send, WireResponse(404, {"error": error}))  # type: ignore[arg-type]
                return
            rest = "/" + rest
            inner = {**scope, "path": rest, "raw_path": rest.encode()}
            await self._serve(int(head), inner, receive, send)
            return
        n, receive = await self._account_of(scope, receive)
        await self._serve(n, scope, receive, send)

    async def _serve(self, n: int, scope: Scope, receive: Receive, send: Send) -> None:
        app: Any = self.boxes[n]
        await app(scope, receive, self._learning(send, n) if scope["type"] == "http" else send)

    # ------------------------------------------------------------------ routing

    def _known(self, candidates: Sequence[str]) -> int | None:
        for value in candidates:
            n = self._owner.get(value)
            if n is not None:
                return n
        return None

    async def _account_of(self, scope: Scope, receive: Receive) -> tuple[int, Receive]:
        headers = {k.lower(): v.decode("latin-1") for k, v in scope["headers"]}
        authorization = headers.get(b"authorization", "").split()
        query = [v for _, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"))]
        n = self._known([*authorization[-1:], *scope["path"].split("/"), *query])
        if n is not None:
            return n, receive
        if headers.get(b"content-type", "").startswith("application/x-www-form-urlencoded"):
            body = await _read_body(receive)
            n = self._known([v for _, v in parse_qsl(body.decode("latin-1"))])
            receive = _replay(body, receive)
            if n is not None:
                return n, receive
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(headers.get(b"cookie", ""))
        morsel = cookie.get(ACCOUNT_COOKIE)
        if morsel is not None and morsel.value.isdigit() and int(morsel.value) < len(self.boxes):
            return int(morsel.value), receive
        return 0, receive

    def _learning(self, send: Send, n: int) -> Send:
        """``send`` that remembers the credentials account ``n``'s answer hands out."""
        chunks: list[bytes] = []
        size = 0

        async def learn(message: Message) -> None:
            nonlocal size
            if message["type"] == "http.response.start" and 300 <= message["status"] < 400:
                for key, value in message.get("headers", []):
                    if key.lower() == b"location":
                        for name, code in parse_qsl(urlsplit(value.decode("latin-1")).query):
                            if name == "code":
                                self._owner[code] = n
            elif message["type"] == "http.response.body" and size <= _SMALL:
                body = message.get("body", b"")
                chunks.append(body)
                size += len(body)
                if not message.get("more_body", False) and size <= _SMALL:
                    self._remember(b"".join(chunks), n)
            await send(message)

        return learn

    def _remember(self, body: bytes, n: int) -> None:
        if not any(key.encode() in body for key in _ISSUED):
            return
        try:
            got = json.loads(body)
        except ValueError:
            return
        if isinstance(got, dict):
            for key in _ISSUED:
                if isinstance(got.get(key), str) and got[key]:
                    self._owner[got[key]] = n

    # ------------------------------------------------------------------ lifespan

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Every account's startup and shutdown (their webhook senders), in step with the server's."""
        lives = [_Lifespan(box, scope) for box in self.boxes]
        for phase in ("startup", "shutdown"):
            await receive()
            answers = await asyncio.gather(*(life.step(phase) for life in lives))
            failed = [str(a.get("message", "")) for a in answers if a["type"].endswith(".failed")]
            if failed:
                await send({"type": f"lifespan.{phase}.failed", "message": "; ".join(failed)})
                return
            await send({"type": f"lifespan.{phase}.complete"})


class _Lifespan:
    """One account's lifespan, driven message by message."""

    def __init__(self, app: Sandbox, scope: Scope) -> None:
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        asgi: Any = app
        self.task = asyncio.create_task(asgi({**scope, "state": {}}, self.inbox.get, self.outbox.put))

    async def step(self, phase: str) -> Message:
        await self.inbox.put({"type": f"lifespan.{phase}"})
        answer = asyncio.ensure_future(self.outbox.get())
        done, _ = await asyncio.wait({answer, self.task}, return_when=asyncio.FIRST_COMPLETED)
        if answer in done:
            return answer.result()
        answer.cancel()
        error = self.task.exception() if not self.task.cancelled() else None
        return {"type": f"lifespan.{phase}.failed", "message": repr(error)}


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` that first hands out ``body`` again (read to find the account)."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again
