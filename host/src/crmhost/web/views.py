"""The settings page at ``/app``: the roadmap's flow (connect, configure, map, activate, monitor).

Server-rendered Jinja2 templates with htmx for the live parts (expression checks, the monitor's
refresh). Every read and write goes through the same services as the API (``crmhost.services``),
and nothing here names a CRM: forms come from each plugin's declared settings and auth kinds.

A service's refusal (bad input, not found, wrong state) is shown on the page with its message and
the HTTP status the API would answer; a CRM that fails is a 502 page, never a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import quote

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect, Template

from crmhost.api.deps import provide_host
from crmhost.db.models import Integration, IntegrationStatus
from crmhost.errors import CrmError
from crmhost.models import CONTACT_FIELDS, AuthKind, Capability, CrmInfo, ObjectType
from crmhost.runtime import Host
from crmhost.services import conflicts as conflict_svc
from crmhost.services import integrations as svc
from crmhost.services import mappings as maps
from crmhost.services import monitoring as mon
from crmhost.services import outbox as outbox_svc
from crmhost.services.credentials import NoCredentials
from crmhost.services.errors import Conflict, InvalidInput, ServiceError
from crmhost.services.oauth import begin_authorization
from crmhost.services.tenants import hash_api_key, tenant_for_key
from crmhost.services.webhook_secrets import issue_webhook_secret, takes_integration_webhooks
from crmhost.services.webhook_subscriptions import request_subscription
from crmhost.sync.mapping import default_mappings
from crmhost.web.chart import activity_svg
from crmhost.web.forms import MAPPING_FIELDS, mapping_rows, parse_mappings, plugin_settings
from crmhost.web.session import SignedIn, clear_cookie, read_session, session_cookie

__all__ = [
    "PageController",
    "SignInController",
    "SignInRequired",
    "no_cache",
    "page_error",
    "to_sign_in",
]

log = logging.getLogger(__name__)

#: a URL-encoded form body, as the page's forms and htmx send it
Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]
MAPPING_TYPES = ("direct", "formula", "conditional", "aggregation")
MAPPING_DIRECTIONS = ("both", "to_crm", "from_crm", "none")
FIELD_STRATEGIES = ("", "crm_wins", "local_wins", "newest_wins", "fill_if_blank", "manual")
#: what the page says after an action that redirects (``?done=<code>``)
DONE = {
    "saved": "Settings saved.",
    "activated": "Activated: the initial sync has started.",
    "deactivated": "Deactivated: nothing syncs until you activate it again.",
    "disconnected": "Disconnected: the credentials were revoked and deleted.",
    "mappings": "Mappings saved.",
    "reset": "Mappings reset to the plugin's defaults.",
    "retried": "Sent again.",
    "resolved": "Conflict resolved.",
    "deleted": "Integration deleted.",
}


class SignInRequired(Exception):
    """No valid session: the page sends the browser to the sign-in form."""


async def provide_signed_in(request: Request[Any, Any, Any]) -> SignedIn:
    """The session's tenant; :class:`SignInRequired` without a valid session."""
    signed = await read_session(provide_host(request), request)
    if signed is None:
        raise SignInRequired
    return signed


def _is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("hx-request") == "true"


def to_sign_in(request: Request[Any, Any, Any], _: SignInRequired) -> Response[Any]:
    """Exception handler: back to the sign-in form (htmx follows ``HX-Redirect``)."""
    if _is_htmx(request):
        return Response("", status_code=401, headers={"HX-Redirect": "/app/login"})
    return Redirect("/app/login", status_code=303)


def page_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Exception handler: the error as a page (or an htmx fragment), never a bare 500."""
    if isinstance(exc, ServiceError):
        status, message = exc.status, exc.message
    elif isinstance(exc, NoCredentials):
        status, message = 409, "The CRM is not connected: connect it first."
    elif isinstance(exc, CrmError):
        status, message = 502, f"The CRM did not answer as expected: {exc.message}"
    elif isinstance(exc, HTTPException):
        status, message = exc.status_code, str(exc.detail)
        if status == 403 and "csrf" in message.lower():
            message = "This form expired or did not come from this page: reload the page and try again."
    else:
        log.exception("settings page error on %s %s", request.method, request.url.path)
        status, message = 500, "Something went wrong on the host; the error is in its log."
    name = "_error.html" if _is_htmx(request) else "error.html"
    return Template(
        name, context={"status": status, "message": message, "signed_in": None}, status_code=status
    )


def _done(code: str | None) -> str | None:
    return DONE.get(code or "")


def _badge(row: Integration) -> tuple[str, str]:
    """(label, css class) of an integration's state for the list and headers."""
    if row.status == IntegrationStatus.NEEDS_REAUTH.value:
        return "needs reconnect", "bad"
    if not row.enabled:
        return "inactive", "off"
    return {
        IntegrationStatus.ACTIVE.value: ("active", "ok"),
        IntegrationStatus.PENDING.value: ("not connected", "warn"),
        IntegrationStatus.NEEDS_REAUTH.value: ("needs reconnect", "bad"),
        IntegrationStatus.DISABLED.value: ("inactive", "off"),
    }.get(row.status, (row.status, "warn"))


def _plugins(host: Host) -> list[CrmInfo]:
    return [host.plugins.info(slug) for slug in host.plugins.loaded()]


def _base(request: Request[Any, Any, Any]) -> str:
    return str(request.base_url).rstrip("/")


class SignInController(Controller):
    """Sign-in and sign-out (no session needed to reach them)."""

    path = "/app"
    include_in_schema = False

    @get("/login")
    async def login_form(self, request: Request[Any, Any, Any]) -> Template:
        """The sign-in form."""
        return Template("login.html", context={"signed_in": None, "error": None})

    @post("/login", status_code=303)
    async def login(
        self, request: Request[Any, Any, Any], host: NamedDependency[Host], data: Form
    ) -> Response[Any]:
        """Check the API key; on success set the session cookie and go to the integrations."""
        key = (data.get("api_key") or "").strip()
        tenant_id = await tenant_for_key(host, key) if key else None
        if tenant_id is None:
            return Template(
                "login.html",
                context={"signed_in": None, "error": "That API key is not valid (or was revoked)."},
                status_code=401,
            )
        cookie = session_cookie(host, request, tenant_id, hash_api_key(key))
        return Redirect("/app", status_code=303, cookies=[cookie])

    @post("/logout", status_code=303)
    async def logout(self, request: Request[Any, Any, Any]) -> Redirect:
        """Drop the session cookie."""
        return Redirect("/app/login", status_code=303, cookies=[clear_cookie(request)])


class PageController(Controller):
    """Everything behind the sign-in."""

    path = "/app"
    include_in_schema = False
    dependencies = {"signed": Provide(provide_signed_in)}

    # ---------------------------------------------------------------------------------------
    # integrations and connecting

    @get("/")
    async def index(
        self,
        host: NamedDependency[Host],
        signed: NamedDependency[SignedIn],
        done: FromQuery[str | None] = None,
    ) -> Template:
        """The tenant's integrations with their status, and a Connect button per installed CRM."""
        rows = await svc.list_integrations(host, signed.tenant_id)
        titles = {p.slug: p.title for p in _plugins(host)}
        items = [{"row": r, "badge": _badge(r), "title": titles.get(r.provider, r.provider)} for r in rows]
        return Template(
            "index.html",
            context={"signed_in": signed, "items": items, "plugins": _plugins(host), "done": _done(done)},
        )

    @get("/connect/{slug:str}")
    async def connect_form(
        self, host: NamedDependency[Host], signed: NamedDependency[SignedIn], slug: FromPath[str]
    ) -> Template:
        """The connect form of one plugin: its declared settings and the ways it authenticates."""
        info = svc.plugin_info(host, slug, where="path.slug")
        return Template("connect.html", context=_connect_context(signed, info, {}, None))

    @post("/connect/{slug:str}", status_code=303)
    async def connect(
        self,
        request: Request[Any, Any, Any],
        host: NamedDependency[Host],
        signed: NamedDependency[SignedIn],
        slug: FromPath[str],
        data: Form,
    ) -> Response[Any]:
        """Create the integration (inactive), then run OAuth or check the API key.

        It starts inactive so mappings and settings can be set before anything syncs; the
        user activates it from its page.
        """
        info = svc.plugin_info(host, slug, where="path.slug")
        try:
            settings = plugin_settings(info.settings, data, partial=False)
            method = data.get("auth", AuthKind.OAUTH2.value)
            if method not in {k.value for k in info.auth_kinds}:
                raise InvalidInput(f"{info.title} does not connect with {method!r}", where="auth")
            api_key = (data.get("api_key") or "").strip()
            if method == AuthKind.API_KEY.value and not api_key:
                raise InvalidInput("enter the API key", where="api_key")
        except InvalidInput as exc:
            return Template(
                "connect.html", context=_connect_context(signed, info, data, exc), status_code=400
            )
        integration = await svc.create_integration(
            host, signed.tenant_id, provider=slug, name=(data.get("name") or "").strip(), settings=settings
        )
        await svc.update_integration(host, signed.tenant_id, integration.id, {"enabled": False})
        page = f"{_base(request)}/app/integrations/{integration.id}"
        if method == AuthKind.API_KEY.value:
            try:
                await svc.connect_api_key(
                    host, integration, api_key, (data.get("api_base") or "").strip() or None
                )
            except (InvalidInput, Conflict) as exc:
                await svc.delete_integration(host, signed.tenant_id, integration.id)
                return Template(
                    "connect.html", context=_connect_context(signed, info, data, exc), status_code=exc.status
                )
            return Redirect(f"{page}?status=connected", status_code=303)
        return Redirect(await begin_authorization(host, integration, page), status_code=303)

    # ---------------------------------------------------------------------------------------
    # one integration: overview, configure, lifecycle

    @get("/integrations/{integration_id:str}")
    async def integration(
        self,
        host: NamedDependency[Host],
        signed: NamedDependency[SignedIn],
        integration_id: FromPath[str],
        status: FromQuery[str | None] = None,
        error: FromQuery[str | None] = None,
        done: FromQuery[str | None] = None,
    ) -> Template:
        """Status, the configure form and the lifecycle buttons; the OAuth flow returns here."""
        ctx = await _integration_context(host, signed, integration_id)
        if status == "connected":
            ctx["done"] = "Connected."
        elif status == "error":
            ctx["error"] = f"Not connected: {error or 'the CRM refused'}"
        else:
            ctx["done"] = _done(done)
        return Template("integration.html", context=ctx)

    @post("/integrations/{integration_id:str}/configure", status_code=303)
    async def configure(
        self,
        host: NamedDependency[Host],
        signed: NamedDependency[SignedIn],
        integration_id: FromPath[str],
        data: Form,
    ) -> Response[Any]:
        """Save direction, frequency, conflict strategy, name and the plugin's settings."""
        row = await svc.get_integration(host, signed.tenant_id, integration_id)
        info = svc.plugin_info(host, row.provider, where="path.integration_id")
        try:
            changes: dict[str, Any] = {
                k: data[k] for k in ("direction", "sync_frequency", "conflict_strategy") if data.get(k)
            }
            if "name" in data:
                changes["name"] = data["name"].strip()[:200]
            settings = plugin_settings(info.settings, data, partial=False)
            if settings:
                changes["settings"] = settings
            await svc.update_integration(host, signed.tenant_id, integration_id, changes)
        except InvalidInput as exc:
            ctx = await _integration_context(host, signed, integration_id)
            ctx["error"] = exc.message
            return Template("integration.html", context=ctx, status_code=400)
        return Redirect(f"/app/integrations/{integration_id}?done=saved", status_code=303)

    @post("/integrations/{integration_id:str}/activate", status_code=303)
    async def activate(
        self, host: NamedDependency[Host], signed: NamedDependency[SignedIn], integration_id: FromPath[str]
    ) -> Response[Any]:
        """Switch syncing on and start the initial sync (a repeat is harmless)."""
        row = await svc.get_integration(host, signed.tenant_id, integration_id)
        creds = await svc.credential_summary(host, signed.tenant_id, integration_id)
        if creds is None or row.status == IntegrationStatus.NEEDS_REAUTH.value:
            raise Conflict("connect the CRM first: there are no valid credentials", where="integration")
        await svc.update_integration(host, signed.tenant_id, integration_id, {"enabled": True})
        if host.queue is not None:
            # imported here: the sync engine imports the services this module uses
            from crmhost.sync.initial import on_activated

            await on_activated(host, signed.tenant_id, integration_id)
            await request_subscription(host, signed.tenant_id, integration_id)
        return Redirect(f"/app/integrations/{integration_id}/monitor?done=activated", status_code=303)

    @post("/integrations/{integration_id:str}/deactivate", status_code=303)
    async def deactivate(
        self, host: NamedDependency[Host], signed: NamedDependency[SignedIn], integration_id: FromPath[str]
    ) -> Redirect:
        """Switch syncing off (credentials stay)."""
        await svc.update_integration(host, signed.tenant_id, integration_id, {"enabled": False})
        return Redirect(f"/app/integrations/{integration_id}?done=deactivated", status_code=303)

    @post("/integrations/{integration_id:str}/disconnect", status_code=303)
    async def disconnect(
        self, host: NamedDependency[Host], signed: NamedDependency[SignedIn], integration_id: FromPath[str]
    ) -> Redirect:
        """Revoke and delete the credentials; the integration and its settings stay."""
        await svc.disconnect(host, signed.tenant_id, integration_id, actor="page")
        return Redirect(f"/app/integrations/{integration_id}?done=disconnected", status_code=303)

    @post("/integrations/{integration_id:str}/reconnect", status_code=303)
    async def reconnect(
        self,
        request: Request[Any, Any, Any],
        host: NamedDependency[Host],
        signed: NamedDependency[SignedIn],
        integration_id: FromPath[str],
        data: Form,
    ) -> Response[Any]:
        """Run the OAuth flow again, or check a new API key (after needs_reauth or a disconnect)."""
        row = await svc.get_integration(host, signed.tenant_id, integration_id)
        info = svc.plugin_info(host, row.provider, where="path.integration_id")
        page = f"{_base(request)}/app/integrations/{integration_id}"
        api_key = (data.get("api_key") or "").strip()
        if api_key:
            await svc.connect_api_key(host, row, api_key, (data.get("api_base") or "").strip() or None)
            return Redirect(f"{page}?status=connected", status_code=303)
        if AuthKind.OAUTH2 not in info.auth_kinds:
            raise InvalidInput(f"{info.title} connects with an API key: enter one", where="api_key")
        return Redirect(await begin_authorization(host, row, page), status_code=303)

    @post("/integrations/{integration_id:str}/webhook-url")
    async def webhook_url(
        self, host: NamedDependency[Host], signed: NamedDependency[SignedIn], integration_id: FromPath[str]
    ) -> Template:
        """Issue the integration's webhook URL (shown this once; the previous one stops working)."""
        await svc.get_integration(host, signed.tenant_id, integration_id)
        url = await issue_webhook_secret(host, signed.tenant_id, integration_id)
        await request_subscription(host, signed.tenant_id, integration_id)
        ctx = await _integration_context(host, signed, integration_id)
        ctx["webhook_url"] = url
        return Template("integration.html", context=ctx)

    @post("/integrations/{integration_id:str}/delete", status_code=303)
    async def delete(
        self, host: NamedDependency[Host], signed: NamedDependency[SignedIn], integration_id: FromPath[str]
    ) -> Redirect:
        """Disconnect and delete the integration."""
        await svc.get_integration(host, signed.tenant_id, integration_id)
        await svc.delete_integration(host, signed.tenant_id, integration_id)
        return Redirect("/app?done=deleted", status_code=303)

    # ---------------------------------------------------------------------------------------
    # mappings

    @get("/integrations/{integration_id:str}/mappings")
    async def mappings(
        self,
        host: NamedDependency[Host],
        signed: NamedDependency[SignedIn],
        integration_id: FromPath[str],
        done: FromQuery[str | None] = None,
    ) -> Template:
        """The mapping editor with the stored mappings (or the defaults) and the CRM's fields."""
        row = await svc.get_integration(host, signed.tenant_id, integration_id)
        stored = await maps.stored_mappings(host, row)
        if stored:
            rows = [_row_dict(m) for m in stored]
        else:
            rows = [_row_dict(m) for m in default_mappings(row.provider, host=host)]
        ctx = await _mapping_context(host, signed, row, rows, is_default=not stored)
        ctx["done"] = _done(done)
        return Template("mappings.html", context=ctx)

    @post("/integrations/{integration_id:str}/mappings", status_code=303)
    async def save_mappings(
        self,
        host: NamedDependency[Host],
        signed: NamedDependency[SignedIn],
        integration_id: FromPath[str],
        data: Form,
    ) -> Response[Any]:
        """Validate every row (expressions with their positions, the CRM's fields), then save."""
        row = await svc.get_integration(host, signed.tenant_id, integration_id)
        info = svc.plugin_info(host, row.provider, where="path.integration_id")
        rows = mapping_rows(data)
        try:
            proposed = parse_mappings(rows)
            valid = maps.validate(info, signed.tenant_id, row.id, proposed)
            checked = await maps.check_remote_fields(host, row, valid)
        except ServiceError as exc:
            ctx = await _mapping_context(host, signed, row, rows, is_default=False)
            ctx["error"] = exc.message
            ctx["error_row"] = _row_of(exc.where)
            return Template("mappings.html", context=ctx, status_code=exc.status)
        await maps.replace_mappings(host, row, valid, checked=checked, actor="page")
        return Redirect(f"/app/integrations/{integration_id}/mappings?done=mappings", status_code=303)

    @post("/integrations/{integration_id:str}/mappings/reset", status_code=303)
    async def reset_mappings(
        self, host: NamedDependency[Host], signed: NamedDependency[SignedIn], integration_id: FromPath[str]
    ) -> Redirect:
        """Drop the stored mappings: the plugin's defaults apply again."""
        row = await svc.get_integration(host, signed.tenant_id, integration_id)
        await maps.reset_mappings(host, row, actor="page")
        return Redirect(f"/app/integrations/{integration_id}/mappings?done=reset", status_code=303)

    @post("/integrations/{integration_id:str}/mappings/check")
    async def check_expression(
        self,
        host: NamedDependency[Host],
        signed: NamedDependency[SignedIn],
        integration_id: FromPath[str],
        data: Form,
    ) -> Template:
        """htmx: one row's expression checked as it is typed (the error and where it is)."""
        await svc.get_integration(host, signed.tenant_id, integration_id)
        row = data.get("row", "")
        kind = data.get(f"m-{row}-type", "direct")
        text = data.get(f"m-{row}-expression", "")
        ctx: dict[str, Any] = {"kind": kind, "text": text, "error": None}
        if kind in MAPPING_TYPES and kind != "direct" and text.strip():
            ctx["error"] = maps.check_expression(kind, text)
        return Template("_check.html", context=ctx)

    @get("/integrations/{integration_id:str}/mappings/row")
    async def mapping_row(
        self,
        host: NamedDependency[Host],
        signed: NamedDependency[SignedIn],
        integration_id: FromPath[str],
        i: FromQuery[int] = 0,
    ) -> Template:
        """htmx: a blank editor row (index ``i``) to append."""
        row = await svc.get_integration(host, signed.tenant_id, integration_id)
        ctx = await _mapping_context(host, signed, row, [], is_default=False, discover=False)
        ctx.update(i=max(0, min(i, 9999)), m={"object": "contact", "type": "direct", "direction": ""})
        return Template("_row.html", context=ctx)

    # ---------------------------------------------------------------------------------------
    # monitor

    @get("/integrations/{integration_id:str}/monitor")
    async def monitor(
        self,
        host: NamedDependency[Host],
        signed: NamedDependency[SignedIn],
        integration_id: FromPath[str],
        done: FromQuery[str | None] = None,
    ) -> Template:
        """Status, chart, runs, dead letters and open conflicts (the live part refreshes itself)."""
        ctx = await _monitor_context(host, signed, integration_id)
        ctx["done"] = _done(done)
        return Template("monitor.html", context=ctx)

    @get("/integrations/{integration_id:str}/monitor/live")
    async def monitor_live(
        self, host: NamedDependency[Host], signed: NamedDependency[SignedIn], integration_id: FromPath[str]
    ) -> Template:
        """htmx: the monitor's changing part, polled every few seconds."""
        return Template("_live.html", context=await _monitor_context(host, signed, integration_id))

    @get("/runs/{run_id:str}")
    async def run(
        self,
        host: NamedDependency[Host],
        signed: NamedDependency[SignedIn],
        run_id: FromPath[str],
        outcome: FromQuery[str | None] = None,
        after: FromQuery[int] = 0,
    ) -> Template:
        """One run's per-record log, with each record's outcome and error."""
        run, lines, next_after = await mon.run_records(
            host, signed.tenant_id, run_id, outcome=outcome or None, after=max(0, after), limit=200
        )
        integration = await svc.get_integration(host, signed.tenant_id, run.integration_id)
        return Template(
            "run.html",
            context={
                "signed_in": signed,
                "run": run,
                "lines": lines,
                "next_after": next_after,
                "outcome": outcome or "",
                "integration": integration,
            },
        )

    @post("/integrations/{integration_id:str}/outbox/{row_id:int}/retry", status_code=303)
    async def retry_row(
        self,
        host: NamedDependency[Host],
        signed: NamedDependency[SignedIn],
        integration_id: FromPath[str],
        row_id: FromPath[int],
    ) -> Redirect:
        """Send one dead letter again."""
        await outbox_svc.retry_row(host, signed.tenant_id, integration_id, row_id, actor="page")
        return Redirect(f"/app/integrations/{integration_id}/monitor?done=retried", status_code=303)

    @post("/integrations/{integration_id:str}/outbox/retry-dead", status_code=303)
    async def retry_dead(
        self, host: NamedDependency[Host], signed: NamedDependency[SignedIn], integration_id: FromPath[str]
    ) -> Redirect:
        """Send every dead letter again."""
        await outbox_svc.retry_dead(host, signed.tenant_id, integration_id, actor="page")
        return Redirect(f"/app/integrations/{integration_id}/monitor?done=retried", status_code=303)

    @post("/conflicts/{conflict_id:str}/resolve", status_code=303)
    async def resolve(
        self,
        host: NamedDependency[Host],
        signed: NamedDependency[SignedIn],
        conflict_id: FromPath[str],
        data: Form,
    ) -> Redirect:
        """Settle a conflict: keep the platform's value, take the CRM's, or set one."""
        resolution = data.get("resolution", "")
        if resolution not in ("local", "remote", "value"):
            raise InvalidInput("choose local, remote or value", where="resolution")
        value = data.get("value") if resolution == "value" else None
        row, _ = await conflict_svc.resolve_conflict(
            host,
            signed.tenant_id,
            conflict_id,
            "local" if resolution == "local" else "remote" if resolution == "remote" else "value",
            value,
        )
        return Redirect(f"/app/integrations/{row.integration_id}/monitor?done=resolved", status_code=303)


# -------------------------------------------------------------------------------------------
# template contexts


def _connect_context(
    signed: SignedIn, info: CrmInfo, values: Mapping[str, Any], error: ServiceError | None
) -> dict[str, Any]:
    return {
        "signed_in": signed,
        "info": info,
        "values": values,
        "error": error.message if error else None,
        "oauth": AuthKind.OAUTH2 in info.auth_kinds,
        "api_key": AuthKind.API_KEY in info.auth_kinds,
    }


async def _integration_context(host: Host, signed: SignedIn, integration_id: str) -> dict[str, Any]:
    row = await svc.get_integration(host, signed.tenant_id, integration_id)
    info = svc.plugin_info(host, row.provider, where="path.integration_id")
    creds = await svc.credential_summary(host, signed.tenant_id, integration_id)
    return {
        "signed_in": signed,
        "row": row,
        "info": info,
        "badge": _badge(row),
        "creds": creds,
        "connected": creds is not None and row.status == IntegrationStatus.ACTIVE.value,
        "oauth": AuthKind.OAUTH2 in info.auth_kinds,
        "api_key": AuthKind.API_KEY in info.auth_kinds,
        "webhook_routed": takes_integration_webhooks(host, row.provider),
        "directions": svc.DIRECTIONS,
        "frequencies": svc.SYNC_FREQUENCIES,
        "strategies": svc.CONFLICT_STRATEGIES,
        "settings": dict(row.settings or {}),
        "done": None,
        "error": None,
        "webhook_url": None,
    }


def _row_dict(m: Any) -> dict[str, Any]:
    def text(value: Any) -> Any:
        return getattr(value, "value", value)

    return {f: text(getattr(m, f, None)) for f in MAPPING_FIELDS}


def _row_of(where: str | None) -> int | None:
    if where and where.startswith("body.mappings["):
        try:
            return int(where.split("[", 1)[1].split("]", 1)[0])
        except ValueError:
            return None
    return None


async def _mapping_context(
    host: Host,
    signed: SignedIn,
    row: Integration,
    rows: list[dict[str, Any]],
    *,
    is_default: bool,
    discover: bool = True,
) -> dict[str, Any]:
    info = svc.plugin_info(host, row.provider, where="path.integration_id")
    fields: dict[str, list[Any]] = {}
    fields_note = None
    if discover and Capability.FIELD_DISCOVERY in info.capabilities:
        for obj in info.objects:
            try:
                found = await maps.discover_fields(host, row, obj)
            except ServiceError as exc:
                fields_note = exc.message
                break
            if found is None:
                fields_note = "Connect the CRM to pick from its fields."
                break
            fields[obj.value] = sorted(found, key=lambda f: f.name.lower())
    return {
        "signed_in": signed,
        "row": row,
        "info": info,
        "rows": rows,
        "is_default": is_default,
        "fields": fields,
        "fields_note": fields_note,
        "local_fields": [*CONTACT_FIELDS, "custom.<name>"],
        "objects": [o.value for o in info.objects] or [ObjectType.CONTACT.value],
        "types": MAPPING_TYPES,
        "directions": MAPPING_DIRECTIONS,
        "remote_types": maps.REMOTE_TYPES,
        "strategies": FIELD_STRATEGIES,
        "error": None,
        "error_row": None,
        "done": None,
    }


async def _monitor_context(host: Host, signed: SignedIn, integration_id: str) -> dict[str, Any]:
    row = await svc.get_integration(host, signed.tenant_id, integration_id)
    status = await mon.integration_status(host, signed.tenant_id, integration_id)
    runs = await mon.list_runs(host, signed.tenant_id, integration_id, limit=20)
    dead, dead_total, _ = await outbox_svc.list_rows(
        host, signed.tenant_id, integration_id, state="dead", limit=50
    )
    conflicts, _ = await conflict_svc.list_conflicts(
        host, signed.tenant_id, status="open", integration_id=integration_id, limit=50
    )
    buckets = await mon.activity(host, signed.tenant_id, integration_id, hours=24, slots=48)
    title = svc.plugin_info(host, row.provider, where="path.integration_id").title
    return {
        "signed_in": signed,
        "row": row,
        "title": title,
        "badge": _badge(row),
        "status": status,
        "runs": runs,
        "dead": dead,
        "dead_total": dead_total,
        "conflicts": conflicts,
        "chart": activity_svg(buckets, label=f"Records synced with {title}, last 24 hours"),
        "chart_total": sum(b.synced for b in buckets),
        "quote": quote,
    }


def no_cache(response: Response[Any]) -> Response[Any]:
    """Pages carry tenant data and CSRF tokens: never stored by a shared cache."""
    response.headers.setdefault("cache-control", "no-store")
    return response
