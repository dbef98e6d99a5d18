"""The app factory and the one core plugin that wires crmhost into Litestar."""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.plugins import InitPluginProtocol
from litestar.routes import HTTPRoute

from crmhost import __version__
from crmhost.api.bounds import BoundedPathsMiddleware, BoundedRequest
from crmhost.api.conflicts import ConflictController
from crmhost.api.contacts import ContactController
from crmhost.api.contract import COMPONENTS, ClosedStructSchemas, bound_inputs, declare
from crmhost.api.deps import provide_host
from crmhost.api.errors import EXCEPTION_HANDLERS
from crmhost.api.events import EventController
from crmhost.api.integrations import IntegrationController
from crmhost.api.mappings import MappingController
from crmhost.api.monitoring import MetricsController, MonitoringController
from crmhost.api.oauth import OAuthController
from crmhost.api.outbox import OutboxController
from crmhost.api.privacy import PrivacyController
from crmhost.api.release import release_requests
from crmhost.api.rules import RuleController
from crmhost.api.settings import SettingsController
from crmhost.api.system import HealthController, PluginController
from crmhost.api.webhooks import WebhookController
from crmhost.plugins import Plugins
from crmhost.runtime import open_host
from crmhost.settings import Settings
from crmhost.web import template_config, web_routes

__all__ = ["CrmHostCore", "create_app"]

log = logging.getLogger(__name__)


class CrmHostCore(InitPluginProtocol):
    """Opens the :class:`~crmhost.runtime.Host` for the app's lifetime and registers the API."""

    def __init__(self, settings: Settings | None = None, plugins: Plugins | None = None) -> None:
        self._settings = settings
        self._plugins = plugins

    @asynccontextmanager
    async def _lifespan(self, app: Litestar) -> AsyncIterator[None]:
        async with open_host(self._settings, plugins=self._plugins, run_cron=True) as host:
            app.state.host = host
            log.info("crmhost ready: plugins %s", ", ".join(host.plugins.loaded()) or "none")
            yield

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        """Add routes, dependencies, error handlers and the host's lifespan."""
        app_config.route_handlers.extend(
            [HealthController, PluginController, IntegrationController, OAuthController, OutboxController]
        )
        # the CRM side: webhook deliveries and the conflict review queue
        app_config.route_handlers.extend([WebhookController, ConflictController])
        # field mappings and monitoring (runs, record log, audit, status, /metrics)
        app_config.route_handlers.extend([MappingController, MonitoringController, MetricsController])
        # the platform side: contacts, events, rules, settings
        platform = [ContactController, EventController, RuleController, SettingsController, PrivacyController]
        app_config.route_handlers.extend(platform)
        # the OpenAPI contract: error responses and the bearer scheme (crmhost.api.contract)
        declare(app_config.route_handlers)
        # the settings page at /app (crmhost.web): templates, session sign-in, its static files
        app_config.route_handlers.extend(web_routes())
        app_config.template_config = template_config()
        app_config.dependencies["host"] = Provide(provide_host, sync_to_thread=False)
        app_config.exception_handlers.update(EXCEPTION_HANDLERS)
        # bad input is a 400 wherever it comes in (crmhost.api.bounds)
        app_config.request_class = BoundedRequest
        app_config.middleware.insert(0, BoundedPathsMiddleware)
        app_config.lifespan.append(self._lifespan)
        return app_config


def _complete_options(app: Litestar) -> None:
    """Make every path's automatic ``OPTIONS`` answer list all of the path's methods.

    Litestar 2 registers a controller's handlers one at a time; the ``OPTIONS`` handler made for
    a path's first handler answers from that first route's methods and is carried over when a
    later handler of the same path rebuilds the route (litestar-org/litestar#4169, fixed in
    Litestar 3 only), so ``OPTIONS /v1/integrations`` said ``Allow: OPTIONS, POST`` though GET
    is served too. The stale route each handler still reads is given the path's methods.
    """
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if handler.handler_name != "options_handler":
                continue
            stale = inspect.getclosurevars(handler.fn).nonlocals.get("self")
            if isinstance(stale, HTTPRoute) and stale is not route:
                stale.methods = set(route.methods)


def create_app(settings: Settings | None = None, plugins: Plugins | None = None) -> Litestar:
    """The platform API. Plugins are loaded when the app starts, not at import."""
    app = Litestar(
        plugins=[CrmHostCore(settings, plugins), ClosedStructSchemas()],
        # logging is the process's (``crmhost serve`` sets it up with CRMHOST_LOG_LEVEL and
        # redaction); Litestar's default config would replace the root handler and level
        logging_config=None,
        openapi_config=OpenAPIConfig(
            title="crmhost platform API", version=__version__, path="/schema", components=COMPONENTS
        ),
    )
    _complete_options(app)
    # an idle keep-alive connection holds no upload it sent
    release_requests(app)
    # the shared input bounds, stated on the built description (it is built once and cached)
    bound_inputs(app.openapi_schema)
    return app
