"""The settings page served at ``/app`` (server-rendered templates, htmx, no build step).

:func:`web_routes` gives the route handlers and :func:`template_config` the Jinja2 setup the
app factory adds (``crmhost.api.app``). The page's static files (htmx, its license, the style
sheet) are served by the host from ``static/``; nothing comes from a CDN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Router
from litestar.exceptions import HTTPException
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from crmhost.errors import CrmError
from crmhost.services.credentials import NoCredentials
from crmhost.services.errors import ServiceError
from crmhost.web.session import HostKeyedCSRF
from crmhost.web.views import (
    PageController,
    SignInController,
    SignInRequired,
    no_cache,
    page_error,
    to_sign_in,
)

__all__ = ["STATIC", "TEMPLATES", "template_config", "web_routes"]

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """Jinja2 over the page's templates, autoescaping everything."""
    return TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine)


def web_routes() -> list[Any]:
    """The page's routes: sign-in and the pages behind it (CSRF-checked), and its static files."""
    pages = Router(
        path="/",
        route_handlers=[SignInController, PageController],
        middleware=[HostKeyedCSRF],
        exception_handlers={
            # every type the app answers in JSON (crmhost.api.errors) is a page here
            SignInRequired: to_sign_in,
            ServiceError: page_error,
            NoCredentials: page_error,
            HTTPException: page_error,
            CrmError: page_error,
            Exception: page_error,
        },
        after_request=no_cache,
        include_in_schema=False,
    )
    static = create_static_files_router(
        path="/app/static", directories=[STATIC], include_in_schema=False, name="app-static"
    )
    return [pages, static]
