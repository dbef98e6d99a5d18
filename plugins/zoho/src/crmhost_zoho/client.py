"""HTTP to one Zoho CRM org: ``Zoho-oauthtoken`` auth, error bodies to host errors, 429 pacing.

Zoho's errors are ``{"code", "details", "message", "status": "error"}``; batch writes answer
2xx with one such entry per record instead. A 429 is either the concurrency cap (the call may
go again in a moment: the plugin pauses the account's limiter and retries a few times) or the
org's spent credits (``LIMIT_EXCEEDED``: every job of the org pauses, ``RateLimited`` with
scope ``daily``). Zoho documents no ``Retry-After``; when one is sent it wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from crmhost.context import IntegrationContext
from crmhost.errors import AuthExpired, PermanentError, RateLimited, ReauthRequired, TransientError
from crmhost.models import Credentials
from crmhost_zoho.limits import HEAVY_RECORDS, edition_of, gates_for

__all__ = ["API_PATH", "ZohoClient", "error_parts"]

#: the API version prefix below ``api_domain``
API_PATH = "/crm/v8"
#: how long to wait before retrying a call refused for concurrency
CONCURRENCY_PAUSE_S = 1.0
#: how many times a call refused for concurrency is retried before the job is deferred
CONCURRENCY_RETRIES = 3
#: how long jobs pause once the org's credits are spent, unless ``credits_pause_s`` says otherwise
DEFAULT_CREDITS_PAUSE_S = 3600.0
_AUTH_CODES = frozenset({"INVALID_TOKEN", "AUTHENTICATION_FAILURE", "OAUTH_SCOPE_MISMATCH"})


def error_parts(body: Any) -> tuple[str, str, str | None]:
    """``(code, message, api_name)`` of a Zoho error object (or the first entry of ``data``)."""
    item: Any = body
    if isinstance(body, dict) and isinstance(body.get("data"), list) and body["data"]:
        item = body["data"][0]
    if not isinstance(item, dict):
        return "UNKNOWN", str(body)[:300], None
    details = item.get("details")
    api_name = details.get("api_name") if isinstance(details, dict) else None
    return (
        str(item.get("code") or "UNKNOWN"),
        str(item.get("message") or ""),
        str(api_name) if api_name else None,
    )


class ZohoClient:
    """Calls to the connected org's API (``api_domain``/crm/v8).

    Args:
        ctx: the integration.
        credentials: the credentials to use instead of ``ctx.credentials`` (right after a
            code exchange, before the host stored them).
    """

    def __init__(self, ctx: IntegrationContext, credentials: Credentials | None = None) -> None:
        creds = credentials or ctx.require_credentials()
        if not creds.api_base:
            raise ReauthRequired("the credentials carry no api_domain; reconnect Zoho CRM")
        self.ctx = ctx
        self.token = creds.access_token
        self.api_base = creds.api_base.rstrip("/")
        _, edition = edition_of(ctx.settings, creds.extra)
        self.gates = gates_for(self.api_base, creds.account_id or "", edition.concurrency)
        self.credits_pause_s = float(ctx.settings.get("credits_pause_s") or DEFAULT_CREDITS_PAUSE_S)
        self.calls = 0

    def url(self, path: str) -> str:
        """The real URL of an API path (below ``/crm/v8``), rebased by the host onto a sandbox."""
        return self.ctx.url(self.api_base + API_PATH + path)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        records: int = 0,
    ) -> Any:
        """Send one API call; returns the decoded JSON body (``None`` for 204 and 304).

        Args:
            method: the HTTP method.
            path: below ``/crm/v8``, e.g. ``/Contacts/upsert``.
            params: query parameters.
            json: the JSON body.
            headers: extra headers (``If-Modified-Since``).
            records: how many records the call writes (more than 10 makes it a heavy call).

        Raises:
            AuthExpired: 401 ``INVALID_TOKEN``.
            RateLimited: the org's credits are spent (``scope="daily"``), or its concurrency
                cap still refuses after a few paced retries (``scope="concurrency"``).
            TransientError: 5xx, timeouts and connection failures.
            PermanentError: any other error, with Zoho's code and the field it names.
        """
        for attempt in range(CONCURRENCY_RETRIES + 1):
            response = await self._send(method, path, params, json, headers, records)
            if response.status_code != 429:
                return self._answer(method, path, response)
            code, message, _ = error_parts(_json(response))
            retry_after = _retry_after(response)
            if code == "LIMIT_EXCEEDED":
                raise RateLimited(
                    f"the org's Zoho API credits are spent: {message}",
                    retry_after=retry_after or self.credits_pause_s,
                    scope="daily",
                )
            wait = retry_after or CONCURRENCY_PAUSE_S * (attempt + 1)
            if attempt == CONCURRENCY_RETRIES:
                raise RateLimited(
                    f"Zoho refused {method} {path} ({code}): {message}", retry_after=wait, scope="concurrency"
                )
            self.ctx.limiter.pause(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        json: Any,
        headers: Mapping[str, str] | None,
        records: int,
    ) -> httpx.Response:
        sent = {
            "Authorization": f"Zoho-oauthtoken {self.token}",
            "Accept": "application/json",
            **(headers or {}),
        }
        slot = await self.ctx.limiter.acquire()
        heavy = records > HEAVY_RECORDS
        try:
            async with self.gates.all_calls:
                if heavy:
                    async with self.gates.heavy:
                        response = await self.ctx.http.request(
                            method, self.url(path), params=params, json=json, headers=sent
                        )
                else:
                    response = await self.ctx.http.request(
                        method, self.url(path), params=params, json=json, headers=sent
                    )
        except httpx.TimeoutException as exc:
            raise TransientError(f"Zoho did not answer {method} {path} in time: {exc}") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"could not reach Zoho for {method} {path}: {exc}") from exc
        finally:
            slot.answered()  # the window counts it from its answer (crmhost.ratelimit)
        self.calls += 1
        return response

    def _answer(self, method: str, path: str, response: httpx.Response) -> Any:
        status = response.status_code
        if status in (204, 304):
            return None
        body = _json(response)
        if status < 300:
            return body
        code, message, field = error_parts(body)
        where = f"{method} {path}"
        if status == 401 or code in _AUTH_CODES:
            if code == "OAUTH_SCOPE_MISMATCH":
                raise ReauthRequired(f"Zoho refused {where}: the token lacks a scope ({message}); reconnect")
            raise AuthExpired(f"Zoho rejected the access token ({code}): {message}")
        if status >= 500:
            raise TransientError(f"Zoho failed {where} with HTTP {status} ({code}): {message}")
        raise PermanentError(
            f"Zoho rejected {where} with HTTP {status} ({code}): {message}", code=code, field=field
        )


def _json(response: httpx.Response) -> Any:
    try:
        return response.json() if response.content else None
    except ValueError:
        return response.text


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None
