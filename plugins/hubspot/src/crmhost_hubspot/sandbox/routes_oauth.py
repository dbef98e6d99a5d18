"""HubSpot's token endpoints: date-versioned (2026-03, alias v3) and the legacy v1 ones."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar import Request, Response, delete, get, post
from litestar.handlers import BaseRouteHandler

from crmhost.sandbox import OAuthError, json_response
from crmhost.sandbox.token_endpoint import token_params, token_route

if TYPE_CHECKING:
    from crmhost_hubspot.sandbox.app import HubSpotSandbox

__all__ = ["oauth_routes"]

OAUTH = {"sandbox": "oauth"}
_TOKEN_PATHS = ["/oauth/v1/token", "/oauth/2026-03/token", "/oauth/v3/token"]


def oauth_routes(sandbox: HubSpotSandbox) -> list[BaseRouteHandler]:
    """The routes, bound to ``sandbox``."""
    oauth = sandbox.oauth

    async def client_form(request: Request[Any, Any, Any]) -> dict[str, str]:
        form = await token_params(request)
        oauth.check_client(form.get("client_id"), form.get("client_secret") or "")
        return form

    # the date-versioned endpoints take parameters only in the form body (FACTS 2.1)
    token = token_route(sandbox, _TOKEN_PATHS, params_in="body")

    @post(["/oauth/2026-03/token/revoke", "/oauth/v3/token/revoke"], opt=OAUTH, status_code=200)
    async def revoke(request: Request[Any, Any, Any]) -> Response[bytes]:
        try:
            form = await client_form(request)
        except OAuthError as exc:
            return sandbox.oauth_error_response(exc).to_response()
        oauth.revoke(form.get("token", ""))
        return Response(b"", status_code=200)

    @delete("/oauth/v1/refresh-tokens/{token:str}", opt=OAUTH, status_code=204)
    async def revoke_v1(request: Request[Any, Any, Any]) -> None:
        oauth.revoke(request.path_params["token"])

    @post(["/oauth/2026-03/token/introspect", "/oauth/v3/token/introspect"], opt=OAUTH, status_code=200)
    async def introspect(request: Request[Any, Any, Any]) -> Response[bytes]:
        try:
            form = await client_form(request)
        except OAuthError as exc:
            return sandbox.oauth_error_response(exc).to_response()
        found = oauth.introspect(form.get("token", ""))
        if found is None:
            return json_response(200, {"active": False})
        return json_response(
            200,
            {
                "active": True,
                "client_id": sandbox.client_id,
                "hub_id": int(found.account_id),
                "user_id": int(found.user_id),
                "scopes": found.scopes,
                "token_type": "bearer",
            },
        )

    @get("/oauth/v1/access-tokens/{token:str}", opt=OAUTH)
    async def access_token_info(request: Request[Any, Any, Any]) -> Response[bytes]:
        try:
            found = oauth.authenticate(request.path_params["token"])
        except OAuthError as exc:
            return sandbox.oauth_error_response(exc).to_response()
        return json_response(
            200,
            {
                "token": request.path_params["token"],
                "hub_id": int(found.account_id),
                "hub_domain": f"portal-{found.account_id}.sandbox.hubspot.test",
                "user": "sandbox-user@example.com",
                "user_id": int(found.user_id),
                "app_id": sandbox.app_id,
                "scopes": found.scopes,
                "expires_in": found.expires_in,
                "token_type": "access",
            },
        )

    return [token, revoke, revoke_v1, introspect, access_token_info]
