"""HTTP to one Salesforce org: error arrays to host errors, ``Sforce-Limit-Info`` to a daily budget.

Salesforce has no per-second limit but a rolling 24-hour allocation per org. Every answer
says how much of it is used (``Sforce-Limit-Info: api-usage=used/max``); once it is spent every
call gets 403 ``REQUEST_LIMIT_EXCEEDED`` (never 429, never ``Retry-After``) until usage falls.
The :class:`DailyBudget` remembers per org when to try again, so that every job of the org
pauses (``RateLimited(scope="daily")``) instead of burning calls on 403s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from crmhost.context import IntegrationContext
from crmhost.errors import AuthExpired, PermanentError, RateLimited, ReauthRequired, TransientError

__all__ = [
    "API_VERSION",
    "DailyBudget",
    "SalesforceClient",
    "budget_for",
    "first_error",
    "soql_quote",
]

#: the REST API version the plugin speaks unless the integration's ``api_version`` says otherwise
API_VERSION = "v60.0"
#: how long to pause after the daily allocation ran out, unless ``daily_pause_s`` says otherwise;
#: the window rolls, so usage falls gradually and an hour is a reasonable re-check interval
DEFAULT_DAILY_PAUSE_S = 3600.0
#: how long to back off when Salesforce refuses for concurrent long-running requests
CONCURRENCY_PAUSE_S = 5.0
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")


@dataclass
class DailyBudget:
    """What one org's ``Sforce-Limit-Info`` last said, and until when its jobs pause."""

    used: int | None = None
    total: int | None = None
    paused_until: datetime | None = None

    def observe(self, header: str, now: datetime, reserve: int, pause_s: float) -> None:
        """Read ``api-usage=used/max``; pause once no more than ``reserve`` calls are left."""
        match = _USAGE.search(header)
        if match is None:
            return
        self.used, self.total = int(match.group(1)), int(match.group(2))
        if self.total - self.used <= reserve:
            self.paused_until = now + timedelta(seconds=pause_s)

    def exhausted(self, now: datetime, pause_s: float) -> None:
        """Salesforce answered ``REQUEST_LIMIT_EXCEEDED``: pause for ``pause_s``."""
        self.paused_until = now + timedelta(seconds=pause_s)

    def check(self, now: datetime) -> None:
        """Raise ``RateLimited(scope="daily")`` while the org's jobs are paused."""
        if self.paused_until is not None and now < self.paused_until:
            raise RateLimited(
                f"the org's daily API allocation is spent (api-usage={self.used}/{self.total})",
                retry_after=(self.paused_until - now).total_seconds(),
                scope="daily",
            )


_BUDGETS: dict[tuple[str, str], DailyBudget] = {}


def budget_for(api_base: str, org_id: str) -> DailyBudget:
    """The budget of one org, shared by every integration of this process that talks to it."""
    return _BUDGETS.setdefault((api_base, org_id), DailyBudget())


#: SOQL's escape sequences in string literals (backslash first, so none is escaped twice)
_SOQL_ESCAPES = str.maketrans(
    {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
)


def soql_quote(value: str) -> str:
    """``value`` as a SOQL string literal: quotes, backslashes and control characters escaped."""
    return "'" + value.translate(_SOQL_ESCAPES) + "'"


def first_error(body: Any) -> tuple[str, str, str | None]:
    """``(errorCode, message, first field)`` of a Salesforce error array (or a lone error object)."""
    item: Any = body[0] if isinstance(body, list) and body else body
    if not isinstance(item, dict):
        return "UNKNOWN", str(body)[:300], None
    fields = item.get("fields") or []
    return (
        str(item.get("errorCode") or item.get("statusCode") or "UNKNOWN"),
        str(item.get("message", "")),
        str(fields[0]) if fields else None,
    )


class SalesforceClient:
    """Calls to the connected org's REST API (``instance_url``/services/data/vXX.X).

    Args:
        ctx: the integration; its credentials give ``instance_url`` and the org id.
    """

    def __init__(self, ctx: IntegrationContext) -> None:
        creds = ctx.require_credentials()
        if not creds.api_base:
            raise ReauthRequired("the credentials carry no instance_url; reconnect the integration")
        self.ctx = ctx
        self.token = creds.access_token
        self.instance_url = creds.api_base.rstrip("/")
        self.org_id = creds.account_id or ""
        self.version = str(ctx.settings.get("api_version") or API_VERSION)
        self.budget = budget_for(self.instance_url, self.org_id)
        self.reserve = int(ctx.settings.get("daily_reserve") or 0)
        self.pause_s = float(ctx.settings.get("daily_pause_s") or DEFAULT_DAILY_PAUSE_S)
        self.calls = 0

    @property
    def data_path(self) -> str:
        """``/services/data/vXX.X``, the prefix of composite subrequest URLs."""
        return f"/services/data/{self.version}"

    def url(self, path: str) -> str:
        """The real URL of ``path`` (a data path or a full ``/services/...`` path) rebased by the host."""
        full = path if path.startswith("/services/") else self.data_path + path
        return self.ctx.url(self.instance_url + full)

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Authorization plus the duplicate-rule header when the integration sets one."""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        duplicate_rule = self.ctx.settings.get("duplicate_rule_header")
        if duplicate_rule:
            headers["Sforce-Duplicate-Rule-Header"] = str(duplicate_rule)
        headers.update(extra or {})
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> Any:
        """Send one API call; returns the decoded JSON body (``None`` for 204).

        Args:
            method: the HTTP method.
            path: below ``/services/data/vXX.X`` (or a full ``/services/...`` path such as a
                ``nextRecordsUrl``).
            params: query parameters.
            json: the JSON body.

        Raises:
            AuthExpired: 401 ``INVALID_SESSION_ID``.
            RateLimited: the daily allocation is spent (``scope="daily"``) or too many
                concurrent long requests (``scope="concurrency"``).
            TransientError: 5xx, timeouts and connection failures.
            PermanentError: any other error, with Salesforce's error code and field.
        """
        now = self.ctx.now()
        self.budget.check(now)
        slot = await self.ctx.limiter.acquire()
        try:
            response = await self.ctx.http.request(
                method, self.url(path), params=params, json=json, headers=self.headers()
            )
        except httpx.TimeoutException as exc:
            raise TransientError(f"Salesforce did not answer {method} {path} in time: {exc}") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"could not reach Salesforce for {method} {path}: {exc}") from exc
        finally:
            slot.answered()  # the window counts it from its answer (crmhost.ratelimit)
        self.calls += 1
        limit_info = response.headers.get("sforce-limit-info")
        if limit_info:
            self.budget.observe(limit_info, now, self.reserve, self.pause_s)
        status = response.status_code
        if status == 204:
            return None
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = response.text
        if status < 300:
            return body
        self._raise(method, path, status, body, now)

    def _raise(self, method: str, path: str, status: int, body: Any, now: datetime) -> None:
        code, message, field = first_error(body)
        where = f"{method} {path.split('?')[0]}"
        if status == 401:
            raise AuthExpired(f"Salesforce rejected the session ({code}): {message}")
        if status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
            if "TotalRequests" in message:
                self.budget.exhausted(now, self.pause_s)
                raise RateLimited(
                    f"the org's daily API allocation is spent: {message}",
                    retry_after=self.pause_s,
                    scope="daily",
                )
            raise RateLimited(
                f"Salesforce refused {where}: {message}", retry_after=CONCURRENCY_PAUSE_S, scope="concurrency"
            )
        if status >= 500:
            raise TransientError(f"Salesforce failed {where} with HTTP {status} ({code}): {message}")
        raise PermanentError(
            f"Salesforce rejected {where} with HTTP {status}: {message}", code=code, field=field
        )

    async def composite(self, subrequests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One ``POST /composite`` (one API call); the subrequests' answers in order."""
        body = await self.request(
            "POST", "/composite", json={"allOrNone": False, "compositeRequest": subrequests}
        )
        answers = body.get("compositeResponse") if isinstance(body, dict) else None
        if not isinstance(answers, list) or len(answers) != len(subrequests):
            raise TransientError("Salesforce answered /composite without one response per subrequest")
        return answers
