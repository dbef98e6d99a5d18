"""The OAuth 2.0 token endpoint every sandbox serves: code exchange and refresh.

CRMs differ only in where the parameters travel (form body only, or the query string too, as
Zoho's accounts server takes them), how the client authenticates (form fields or HTTP Basic, as
Pipedrive's does) and the shapes of the answer and the error, which the sandbox decides through
:meth:`~crmhost.sandbox.Sandbox.token_response` and
:meth:`~crmhost.sandbox.Sandbox.oauth_error_response`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from litestar import Request, Response, post
from litestar.handlers import BaseRouteHandler

from crmhost.sandbox.oauth import IssuedTokens, OAuthError, OAuthServer

if TYPE_CHECKING:
    from crmhost.sandbox.app import Sandbox

__all__ = ["ParamsIn", "grant_tokens", "token_params", "token_route"]

#: where a CRM's token endpoint reads its parameters: the form body only (HubSpot's
#: date-versioned endpoints refuse query parameters), or the body and the query string
ParamsIn = Literal["body", "body_or_query"]


async def token_params(request: Request[Any, Any, Any], params_in: ParamsIn = "body") -> dict[str, str]:
    """The token request's parameters, with HTTP Basic client credentials as form fields.

    Raises:
        OAuthError: ``invalid_request`` for query parameters where only the body is read, or a
            malformed Basic header.
    """
    if params_in == "body" and request.query_params:
        raise OAuthError("invalid_request", "parameters must be sent in the form body, not the query")
    params = {k: str(v) for k, v in request.query_params.items()} if params_in == "body_or_query" else {}
    params.update({k: str(v) for k, v in (await request.form()).items()})
    auth = request.headers.get("authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(auth[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise OAuthError("invalid_client", "malformed Basic authorization header", status=401) from exc
        client_id, _, client_secret = decoded.partition(":")
        params.setdefault("client_id", client_id)
        params.setdefault("client_secret", client_secret)
    return params


def grant_tokens(oauth: OAuthServer, params: Mapping[str, str]) -> IssuedTokens:
    """Answer an ``authorization_code`` or ``refresh_token`` grant.

    Raises:
        OAuthError: the grant is refused, or its type is not supported.
    """
    grant = params.get("grant_type")
    if grant == "authorization_code":
        return oauth.exchange_code(
            client_id=params.get("client_id"),
            client_secret=params.get("client_secret"),
            code=params.get("code"),
            redirect_uri=params.get("redirect_uri"),
            code_verifier=params.get("code_verifier"),
        )
    if grant == "refresh_token":
        return oauth.refresh(
            client_id=params.get("client_id"),
            client_secret=params.get("client_secret"),
            refresh_token=params.get("refresh_token"),
        )
    raise OAuthError("unsupported_grant_type", f"grant_type {grant!r} is not supported")


def token_route(
    sandbox: Sandbox, paths: str | list[str], *, params_in: ParamsIn = "body"
) -> BaseRouteHandler:
    """The token endpoint at ``paths``, answered in ``sandbox``'s wire shapes."""
    from crmhost.sandbox.app import json_response

    @post(paths, opt={"sandbox": "oauth"}, status_code=200)
    async def token(request: Request[Any, Any, Any]) -> Response[bytes]:
        try:
            tokens = grant_tokens(sandbox.oauth, await token_params(request, params_in))
        except OAuthError as exc:
            return sandbox.oauth_error_response(exc).to_response()
        return json_response(200, sandbox.token_response(tokens))

    return token
