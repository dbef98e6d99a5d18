"""Health, readiness and the plugin listing."""

from __future__ import annotations

import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from sqlalchemy import text

from crmhost import HOOKSPEC_VERSION
from crmhost.api.deps import provide_tenant_id
from crmhost.api.schemas import PluginOut
from crmhost.runtime import Host
from crmhost.services.errors import NotFound

__all__ = ["HealthController", "PluginController", "PluginDetail", "PluginSetting", "plugin_listing"]


class PluginSetting(msgspec.Struct, kw_only=True):
    """One per-integration setting a plugin declares (what a connect form asks for)."""

    name: str
    type: str
    description: str
    default: str | int | bool | None
    choices: list[str]
    secret: bool


class PluginDetail(msgspec.Struct, kw_only=True):
    """``GET /v1/plugins/{slug}``: one loaded plugin, with what connecting to it takes."""

    name: str
    title: str
    version: str
    auth_kinds: list[str]
    objects: list[str]
    capabilities: list[str]
    settings: list[PluginSetting]
    webhook_routing: str | None
    hooks: list[str]


def plugin_listing(host: Host) -> list[PluginOut]:
    """Every plugin found, loaded or not, with its version, capabilities and load status."""
    out = []
    for name, st in sorted(host.plugins.status.items()):
        info = st.info
        out.append(
            PluginOut(
                name=name,
                version=(info.version if info and info.version else st.version),
                loaded=st.loaded,
                error=st.error,
                title=info.title if info else None,
                auth_kinds=[k.value for k in info.auth_kinds] if info else [],
                objects=[o.value for o in info.objects] if info else [],
                capabilities=[c.value for c in info.capabilities] if info else [],
                hooks=st.hooks,
            )
        )
    return out


class HealthController(Controller):
    """Liveness and readiness probes (no authentication)."""

    tags = ["system"]

    @get("/healthz")
    async def healthz(self) -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @get("/readyz")
    async def readyz(self, host: NamedDependency[Host]) -> Response[dict[str, object]]:
        """The database answers and plugins are loaded; 503 otherwise."""
        checks: dict[str, object] = {}
        ok = True
        try:
            async with host.db.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            ok = False
            checks["database"] = f"error: {type(exc).__name__}"
        checks["plugins"] = host.plugins.loaded()
        checks["jobs"] = "redis" if host.settings.redis_url else "in-process"
        return Response(
            {"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503
        )


class PluginController(Controller):
    """``GET /v1/plugins``."""

    path = "/v1/plugins"
    tags = ["system"]
    dependencies = {"tenant_id": Provide(provide_tenant_id)}

    @get("/")
    async def list_plugins(
        self, host: NamedDependency[Host], tenant_id: NamedDependency[str]
    ) -> dict[str, object]:
        """Installed plugins, their versions, capabilities and load status."""
        return {"hookspec_version": HOOKSPEC_VERSION, "plugins": plugin_listing(host)}

    @get("/{slug:str}")
    async def get_plugin(
        self, host: NamedDependency[Host], tenant_id: NamedDependency[str], slug: FromPath[str]
    ) -> PluginDetail:
        """A loaded plugin's declared settings, auth kinds, objects and capabilities; 404 otherwise."""
        status = host.plugins.status.get(slug)
        if status is None or not status.loaded or status.info is None:
            loaded = ", ".join(host.plugins.loaded()) or "none"
            why = f" (it failed to load: {status.error})" if status is not None and status.error else ""
            raise NotFound(f"no loaded plugin {slug!r}{why}; loaded: {loaded}", where="path.slug")
        info = status.info
        return PluginDetail(
            name=slug,
            title=info.title,
            version=info.version or status.version,
            auth_kinds=[k.value for k in info.auth_kinds],
            objects=[o.value for o in info.objects],
            capabilities=[c.value for c in info.capabilities],
            settings=[
                PluginSetting(
                    name=s.name,
                    type=s.type,
                    description=s.description,
                    default=None if s.secret else s.default,
                    choices=list(s.choices),
                    secret=s.secret,
                )
                for s in info.settings
            ],
            webhook_routing=info.webhook_routing.value if info.webhook_routing else None,
            hooks=list(status.hooks),
        )
