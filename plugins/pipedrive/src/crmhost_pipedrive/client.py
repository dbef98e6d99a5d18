"""HTTP to Pipedrive: the account's ``api_domain``, its credential, pacing, and errors as host errors.

Every request waits for the account's limiter first (the burst limit per 2 s, refined from the
``x-ratelimit-*`` headers). A burst 429 pauses the limiter for its ``Retry-After`` and is retried
here; a spent daily token budget (a 429 whose ``Retry-After`` runs past the burst window, FACTS
3.5) becomes :class:`RateLimited` with ``scope="daily"``. 401 is :class:`AuthExpired`, 402/403
:class:`PermanentError`, 5xx and transport failures :class:`TransientError`; other 4xx answers are
returned for the caller to read per record.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec

from crmhost.context import IntegrationContext
from crmhost.errors import AuthExpired, PermanentError, RateLimited, TransientError
from crmhost.models import AuthKind

__all__ = ["API", "BURST_WINDOW_S", "WINDOW_MARGIN_S", "PipedriveClient", "error_message"]

#: the SDK default base; an account's own is the token response's ``api_domain``
API = "https://api.pipedrive.com"
BURST_WINDOW_S = 2.0
#: added to the window for what our count cannot see: Pipedrive's window edges and clock. Held-up
#: requests no longer need it: the limiter counts a request from its answer (``Slot.answered``),
#: after Pipedrive counted it. Before that, 0.05 s met 18 429s in a demo of 27,000 calls and the
#: margin was 0.25 s (a tenth of the burst rate); with answer-time counting, 0.05 s met none in a
#: four-CRM quick demo (docs/performance.md, stop 22).
WINDOW_MARGIN_S = 0.05
#: a 429 asking to wait longer than this is the daily budget, not the burst window
DAILY_THRESHOLD_S = 60.0
MAX_429_RETRIES = 8


def error_message(response: httpx.Response) -> str:
    """Pipedrive's ``error`` (and ``error_info``) from an error answer."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or f"HTTP {response.status_code}"
    if not isinstance(body, dict):
        return str(body)[:200]
    return str(body.get("error") or body.get("message") or body)


class PipedriveClient:
    """Requests to one Pipedrive account (``ctx``)."""

    def __init__(self, ctx: IntegrationContext) -> None:
        self.ctx = ctx

    @property
    def base(self) -> str:
        """The account's API base (``api_domain``), rebased onto a sandbox when one is configured."""
        creds = self.ctx.require_credentials()
        return self.ctx.url((creds.api_base or API).rstrip("/"))

    def _auth(self) -> dict[str, str]:
        creds = self.ctx.require_credentials()
        if creds.kind is AuthKind.API_KEY:
            return {"x-api-token": creds.access_token}
        return {"Authorization": f"Bearer {creds.access_token}"}

    async def request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> httpx.Response:
        """Send one API request; returns 2xx and record-level 4xx answers, raises the rest."""
        url = self.base + path
        content = None if json is None else msgspec.json.encode(json)
        headers = {"Accept": "application/json", **self._auth()}
        if content is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(MAX_429_RETRIES + 1):
            slot = await self.ctx.limiter.acquire()
            try:
                response = await self.ctx.http.request(
                    method, url, content=content, params=params, headers=headers
                )
            except httpx.TimeoutException as exc:
                raise TransientError(f"Pipedrive did not answer {method} {path} in time") from exc
            except httpx.TransportError as exc:
                raise TransientError(f"Pipedrive {method} {path}: {type(exc).__name__}: {exc}") from exc
            finally:
                slot.answered()  # the window counts it from its answer (crmhost.ratelimit)
            self._observe(response)
            if response.status_code != 429:
                return self._check(method, path, response)
            wait = self._retry_after(response)
            if wait > DAILY_THRESHOLD_S:
                raise RateLimited(
                    f"Pipedrive {method} {path}: {error_message(response)}", retry_after=wait, scope="daily"
                )
            self.ctx.limiter.pause(wait)
            if attempt == MAX_429_RETRIES:
                raise RateLimited(f"Pipedrive {method} {path}: {error_message(response)}", retry_after=wait)
            self.ctx.log.info("Pipedrive 429 on %s %s; pacing %.2f s", method, path, wait)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _retry_after(response: httpx.Response) -> float:
        for name in ("retry-after", "x-ratelimit-reset"):
            value = response.headers.get(name, "")
            try:
                return max(0.1, float(value))
            except ValueError:
                continue
        return BURST_WINDOW_S

    def _check(self, method: str, path: str, response: httpx.Response) -> httpx.Response:
        status = response.status_code
        if status == 401:
            raise AuthExpired(f"Pipedrive rejected the credentials: {error_message(response)}")
        if status in (402, 403):
            raise PermanentError(
                f"Pipedrive {method} {path} is refused ({status}): {error_message(response)}",
                code="FORBIDDEN" if status == 403 else "PAYMENT_REQUIRED",
            )
        if status >= 500:
            raise TransientError(f"Pipedrive {method} {path} failed with {status}: {error_message(response)}")
        return response

    def _observe(self, response: httpx.Response) -> None:
        limit = response.headers.get("x-ratelimit-limit", "")
        if limit.isdigit() and int(limit) > 0:
            # "remaining" is not fed back: our own window already counts every request
            self.ctx.limiter.update("default", limit=int(limit), window_s=BURST_WINDOW_S + WINDOW_MARGIN_S)

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """:meth:`request` expecting a 2xx envelope; returns it whole. Other answers raise."""
        response = await self.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise PermanentError(
                f"Pipedrive {method} {path}: {error_message(response)}", code=str(response.status_code)
            )
        return response.json() if response.content else {}

    async def pages(self, path: str, params: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
        """Every page of a v2 cursor listing (``limit`` 500)."""
        query = {**params, "limit": 500}
        while True:
            body = await self.json("GET", path, params=query)
            yield list(body.get("data") or [])
            cursor = (body.get("additional_data") or {}).get("next_cursor")
            if not cursor:
                return
            query["cursor"] = cursor
