"""HTTP to HubSpot: bearer auth, pacing, and HubSpot's answers turned into host errors.

Every request waits for the account's limiter first. 429s are paced and retried here (the
``policyName`` of the body says which limit: the ten-secondly one and search's secondly one pass
within a second or so; the daily one does not, and becomes :class:`RateLimited`). Rate-limit
headers refine the limiter. 401 is :class:`AuthExpired`, 5xx and transport failures are
:class:`TransientError`; other 4xx answers are returned for the caller to read per record.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec

from crmhost.context import IntegrationContext
from crmhost.errors import AuthExpired, PermanentError, RateLimited, TransientError

__all__ = ["API", "WINDOW_MARGIN_S", "HubSpotClient", "error_message", "headers_int", "next_after"]

API = "https://api.hubapi.com"
#: 429s retried here before the host is asked to defer the job
MAX_429_RETRIES = 8
#: added to every rate-limit window for what our count cannot see: HubSpot's window edges and
#: clock. Held-up requests no longer need it: the limiter counts a request from its answer
#: (``Slot.answered``), after HubSpot counted it. Counted from the send, 0.05 s met one 429 in two
#: of four quick demos and the margin was 0.25 s; counted from the answer, 0.05 s met none in
#: three (docs/performance.md, stop 22).
WINDOW_MARGIN_S = 0.05


def error_message(response: httpx.Response) -> tuple[str, str]:
    """HubSpot's ``(message, category)`` from an error answer; all fields are optional (FACTS 2.5)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or f"HTTP {response.status_code}", ""
    if not isinstance(body, dict):
        return str(body)[:200], ""
    return str(body.get("message") or body.get("error_description") or body), str(
        body.get("category") or body.get("errorType") or body.get("error") or ""
    )


def next_after(body: dict[str, Any]) -> Any:
    """The ``paging.next.after`` token of a HubSpot list or search answer (``None`` at the end)."""
    return ((body.get("paging") or {}).get("next") or {}).get("after")


def headers_int(response: httpx.Response, name: str) -> int | None:
    """An integer header, or ``None`` when absent or malformed."""
    value = response.headers.get(name, "")
    return int(value) if value.isdigit() else None


class HubSpotClient:
    """Requests to HubSpot for one integration (``ctx``)."""

    def __init__(self, ctx: IntegrationContext) -> None:
        self.ctx = ctx

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        bucket: str = "default",
    ) -> httpx.Response:
        """Send one API request; returns 2xx and record-level 4xx answers, raises the rest."""
        token = self.ctx.require_credentials().access_token
        url = self.ctx.url(API + path)
        content = None if json is None else msgspec.json.encode(json)
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if content is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(MAX_429_RETRIES + 1):
            slot = await self.ctx.limiter.acquire(bucket)
            try:
                response = await self.ctx.http.request(
                    method, url, content=content, params=params, headers=headers
                )
            except httpx.TimeoutException as exc:
                raise TransientError(f"HubSpot did not answer {method} {path} in time") from exc
            except httpx.TransportError as exc:
                raise TransientError(f"HubSpot {method} {path}: {type(exc).__name__}: {exc}") from exc
            finally:
                slot.answered()  # the window counts it from its answer (crmhost.ratelimit)
            self._observe(response, bucket)
            if response.status_code != 429:
                return self._check(method, path, response)
            wait, scope = self._pause_for(response, bucket)
            if scope == "daily" or attempt == MAX_429_RETRIES:
                message, _ = error_message(response)
                raise RateLimited(f"HubSpot {method} {path}: {message}", retry_after=wait, scope=scope)
            self.ctx.log.info("HubSpot 429 (%s) on %s %s; pacing %.2f s", scope, method, path, wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _check(self, method: str, path: str, response: httpx.Response) -> httpx.Response:
        status = response.status_code
        if status == 401:
            message, _ = error_message(response)
            raise AuthExpired(f"HubSpot rejected the token: {message}")
        if status == 403:
            message, category = error_message(response)
            raise PermanentError(
                f"HubSpot {method} {path} is forbidden: {message}", code=category or "FORBIDDEN"
            )
        if status >= 500:
            message, _ = error_message(response)
            raise TransientError(f"HubSpot {method} {path} failed with {status}: {message}")
        return response

    def _observe(self, response: httpx.Response, bucket: str) -> None:
        headers = response.headers
        limit = headers.get("x-hubspot-ratelimit-max")
        interval = headers.get("x-hubspot-ratelimit-interval-milliseconds")
        if limit and interval and limit.isdigit() and interval.isdigit() and bucket == "default":
            # "remaining" is not fed back: our own window already counts every request, and a
            # pause for a whole window on "0 left" would wait longer than the window needs
            window_s = int(interval) / 1000 + WINDOW_MARGIN_S
            self.ctx.limiter.update("default", limit=int(limit), window_s=window_s)

    def _pause_for(self, response: httpx.Response, bucket: str) -> tuple[float, str]:
        try:
            body = response.json()
        except ValueError:
            body = {}
        policy = str(body.get("policyName", "")) if isinstance(body, dict) else ""
        retry_after = response.headers.get("retry-after")
        if policy == "DAILY":
            now = self.ctx.now()
            midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
            return (midnight - now).total_seconds(), "daily"
        scope = "search" if bucket == "search" or policy == "SECONDLY" else "burst"
        if retry_after and retry_after.replace(".", "", 1).isdigit():
            wait = float(retry_after)
        else:
            # HubSpot sends no Retry-After: our own window already holds the next request until
            # its oldest one ages out, so a 429 here means we were a hair early; wait one slot
            limit = headers_int(response, "x-hubspot-ratelimit-max") or (5 if scope == "search" else 110)
            interval = headers_int(response, "x-hubspot-ratelimit-interval-milliseconds") or (
                1000 if scope == "search" else 10_000
            )
            wait = max(0.1, interval / 1000 / limit)
        self.ctx.limiter.pause(wait, "search" if scope == "search" else None)
        return wait, scope

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """:meth:`request` expecting a 2xx JSON answer; other answers become :class:`PermanentError`."""
        response = await self.request(method, path, **kwargs)
        if response.status_code >= 400:
            message, category = error_message(response)
            raise PermanentError(f"HubSpot {method} {path}: {message}", code=category)
        return response.json() if response.content else None
