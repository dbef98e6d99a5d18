"""``GET /v1/oauth/callback``: where CRMs send the browser back after consent."""

from __future__ import annotations

import html
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from litestar import Controller, MediaType, Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter
from litestar.response import Redirect

from crmhost.runtime import Host
from crmhost.services.oauth import CallbackOutcome, complete_authorization

__all__ = ["OAuthController"]

#: the callback parameters OAuth 2.0 defines; the rest go to the plugin as ``callback_params``
_STANDARD_PARAMS = frozenset({"state", "code", "error", "error_description", "error_uri"})
#: a bound on what a callback may carry on to the plugin (a CRM sends two or three)
_MAX_CALLBACK_PARAMS = 16

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title></head>
<body style="font-family:sans-serif;max-width:40em;margin:4em auto"><h1>{title}</h1><p>{text}</p>
</body></html>"""


def _redirect(outcome: CallbackOutcome) -> Redirect:
    assert outcome.redirect_to is not None
    params = {
        "integration_id": outcome.integration_id,
        "status": "connected" if outcome.connected else "error",
    }
    if outcome.error:
        params["error"] = outcome.error
    parts = urlsplit(outcome.redirect_to)
    query = f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
    return Redirect(
        urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment)), status_code=302
    )


class OAuthController(Controller):
    """The OAuth redirect target registered with every CRM."""

    path = "/v1/oauth"
    tags = ["oauth"]

    @get("/callback", media_type=MediaType.HTML)
    async def callback(
        self,
        request: Request[Any, Any, Any],
        host: NamedDependency[Host],
        # required: the host sends state with every authorize URL and OAuth 2.0 has it echoed back
        oauth_state: Annotated[str, QueryParameter(name="state")],
        code: FromQuery[str | None] = None,
        error: FromQuery[str | None] = None,
        error_description: FromQuery[str | None] = None,
    ) -> Response[str] | Redirect:
        """Exchange the code, store the credentials, activate, and send the user on."""
        extra = {k: v for k, v in request.query_params.items() if k not in _STANDARD_PARAMS}
        outcome = await complete_authorization(
            host,
            state=oauth_state,
            code=code,
            error=error,
            error_description=error_description,
            callback_params=dict(sorted(extra.items())[:_MAX_CALLBACK_PARAMS]),
        )
        if outcome.redirect_to:
            return _redirect(outcome)
        if outcome.connected:
            page = _PAGE.format(title="Connected", text="The CRM is connected. You can close this window.")
            return Response(page, status_code=200, media_type=MediaType.HTML)
        text = f"The CRM was not connected: {html.escape(outcome.error or 'unknown error')}."
        return Response(
            _PAGE.format(title="Not connected", text=text),
            status_code=outcome.status,
            media_type=MediaType.HTML,
        )
