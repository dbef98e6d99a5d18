"""Loading, validating and dispatching to CRM plugins.

Plugins come from the ``crmhost`` entry-point group. Each is validated when loaded; one that
fails is logged and skipped with its reason kept for ``GET /v1/plugins``, never fatal.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
import os
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import pluggy

from crmhost import hookspecs
from crmhost.errors import PluginLoadError
from crmhost.markers import PROJECT
from crmhost.models import AuthKind, Capability, CrmInfo

__all__ = [
    "CAPABILITY_HOOKS",
    "HOOK_CAPABILITIES",
    "Dispatcher",
    "PluginStatus",
    "Plugins",
    "load_plugins",
    "new_plugin_manager",
    "validate_capabilities",
]

log = logging.getLogger(__name__)

#: Environment variable: comma-separated slugs to load; set but empty loads none.
ALLOW_ENV = "CRMHOST_PLUGINS"
#: Environment variable: log every hook call and its outcome.
TRACE_ENV = "CRMHOST_TRACE_PLUGINS"


@dataclass
class PluginStatus:
    """What loading one plugin gave.

    Attributes:
        name: the entry-point name (the slug).
        version: the distribution version.
        loaded: whether it passed validation and is registered.
        error: why it was skipped.
        info: its ``CrmInfo`` when loaded.
        hooks: the hooks it implements.
    """

    name: str
    version: str = ""
    loaded: bool = False
    error: str | None = None
    info: CrmInfo | None = None
    hooks: list[str] = field(default_factory=list)


#: A declared capability needs each of these hooks implemented (any one of a tuple's names).
CAPABILITY_HOOKS: dict[Capability, tuple[tuple[str, ...], ...]] = {
    Capability.PUSH_RECORDS: (("push_records",),),
    Capability.PUSH_ACTIVITY: (("push_activity",),),
    Capability.WORKFLOW_TRIGGERS: (("push_activity",),),
    Capability.PULL_CHANGES: (("pull_changes",),),
    Capability.LIST_MEMBERSHIPS: (("pull_changes",),),
    Capability.DELETES: (("pull_changes", "handle_webhook"),),
    Capability.WEBHOOKS: (("handle_webhook",),),
    Capability.WEBHOOK_SUBSCRIPTIONS: (
        ("subscribe_webhooks",),
        ("unsubscribe_webhooks",),
        ("handle_webhook",),
    ),
    Capability.FIELD_DISCOVERY: (("discover_fields",),),
    Capability.REVOKE: (("revoke",),),
}
#: An implemented hook needs one of these capabilities declared: the host selects behaviour by
#: capability, so an undeclared hook would never be called (or a declared one called in vain).
HOOK_CAPABILITIES: dict[str, tuple[Capability, ...]] = {
    "push_records": (Capability.PUSH_RECORDS,),
    "push_activity": (Capability.PUSH_ACTIVITY, Capability.WORKFLOW_TRIGGERS),
    "pull_changes": (Capability.PULL_CHANGES,),
    "handle_webhook": (Capability.WEBHOOKS, Capability.WEBHOOK_SUBSCRIPTIONS),
    "discover_fields": (Capability.FIELD_DISCOVERY,),
    "revoke": (Capability.REVOKE,),
    "subscribe_webhooks": (Capability.WEBHOOK_SUBSCRIPTIONS,),
    "unsubscribe_webhooks": (Capability.WEBHOOK_SUBSCRIPTIONS,),
}


def validate_capabilities(info: CrmInfo, hooks: Iterable[str]) -> None:
    """Check that ``info``'s capabilities and auth kinds match the implemented ``hooks``.

    Raises:
        PluginLoadError: names the first capability without its hook, or hook without its
            capability, and how to fix it.
    """
    implemented = set(hooks)
    slug = info.slug
    for capability in info.capabilities:
        for names in CAPABILITY_HOOKS.get(capability, ()):
            if not implemented & set(names):
                wanted = " or ".join(repr(n) for n in names)
                raise PluginLoadError(
                    f"plugin {slug!r}: declares Capability.{capability.name} but does not implement "
                    f"the {wanted} hook; implement it or drop the capability from crm_info()"
                )
    for hook, capabilities in HOOK_CAPABILITIES.items():
        if hook in implemented and not set(capabilities) & set(info.capabilities):
            wanted = " or ".join(f"Capability.{c.name}" for c in capabilities)
            raise PluginLoadError(
                f"plugin {slug!r}: implements {hook!r} but declares neither {wanted} in "
                f"crm_info().capabilities, so the host would never call it"
            )
    if info.auth_kinds and "authenticate" not in implemented:
        kinds = ", ".join(k.value for k in info.auth_kinds)
        raise PluginLoadError(
            f"plugin {slug!r}: supports auth kinds {kinds} but does not implement 'authenticate'"
        )
    if AuthKind.OAUTH2 in info.auth_kinds and info.oauth is None:
        raise PluginLoadError(f"plugin {slug!r}: supports AuthKind.OAUTH2 but crm_info().oauth is None")
    if Capability.WEBHOOKS in info.capabilities and info.webhook_routing is None:
        raise PluginLoadError(
            f"plugin {slug!r}: declares Capability.WEBHOOKS but no crm_info().webhook_routing "
            "(app: one URL for every account; integration: one URL per integration)"
        )


def new_plugin_manager() -> pluggy.PluginManager:
    """A plugin manager with the crmhost specs and no plugins."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    if os.environ.get(TRACE_ENV):
        pm.trace.root.setwriter(lambda msg: log.info("plugin trace: %s", msg.rstrip()))
        pm.enable_tracing()
    return pm


def _implemented_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    return sorted(h.name for h in pm.get_hookcallers(plugin) or [])


def validate_plugin(pm: pluggy.PluginManager, plugin: object, slug: str) -> CrmInfo:
    """Check a registered plugin; raise :class:`PluginLoadError` saying what is wrong."""
    spec_names = {name for name in dir(hookspecs) if name in hookspecs.__all__}
    for impl_name in _declared_impls(plugin):
        if impl_name not in spec_names:
            raise PluginLoadError(f"plugin {slug!r}: hook {impl_name!r} matches no hookspec")
    for caller in pm.get_hookcallers(plugin) or []:
        if caller.name not in hookspecs.ASYNC_HOOKS:
            continue
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin and not inspect.iscoroutinefunction(impl.function):
                raise PluginLoadError(f"plugin {slug!r}: hook {caller.name!r} must be 'async def'")
    crm_info_impl = getattr(plugin, "crm_info", None)
    if crm_info_impl is None:
        raise PluginLoadError(f"plugin {slug!r}: does not implement crm_info")
    info = crm_info_impl()
    if not isinstance(info, CrmInfo):
        raise PluginLoadError(f"plugin {slug!r}: crm_info returned {type(info).__name__}, not CrmInfo")
    if info.slug != slug:
        raise PluginLoadError(
            f"plugin {slug!r}: crm_info().slug is {info.slug!r}; it must equal the entry-point name"
        )
    validate_capabilities(info, _implemented_hooks(pm, plugin))
    return info


def _declared_impls(plugin: object) -> list[str]:
    names = []
    for name in dir(plugin):
        attr = getattr(plugin, name, None)
        if callable(attr) and hasattr(attr, f"{PROJECT}_impl"):
            names.append(name)
    return names


class Plugins:
    """The loaded plugins of one host (one per app, never a module global)."""

    def __init__(self, pm: pluggy.PluginManager | None = None) -> None:
        self.pm = pm or new_plugin_manager()
        self.status: dict[str, PluginStatus] = {}
        # subset hook callers per (slug, hook); rebuilt whenever the set of plugins changes
        self.callers: dict[tuple[str, str], Any] = {}

    def register(self, plugin: object, slug: str, *, version: str = "") -> PluginStatus:
        """Register and validate ``plugin`` under ``slug``; a failure is recorded, not raised."""
        status = PluginStatus(name=slug, version=version)
        self.status[slug] = status
        self.callers.clear()
        try:
            self.pm.register(plugin, name=slug)
        except Exception as exc:
            status.error = f"could not register: {exc}"
            log.error("plugin %s skipped: %s", slug, status.error)
            return status
        try:
            info = validate_plugin(self.pm, plugin, slug)
        except Exception as exc:
            self.pm.unregister(plugin, name=slug)
            status.error = str(exc) if isinstance(exc, PluginLoadError) else f"{type(exc).__name__}: {exc}"
            log.error("plugin %s skipped: %s", slug, status.error)
            return status
        if not info.version and version:
            info = CrmInfo(**{**_struct_dict(info), "version": version})
        status.loaded = True
        status.info = info
        status.hooks = _implemented_hooks(self.pm, plugin)
        return status

    def unregister(self, slug: str) -> None:
        """Remove a plugin (tests register per fixture and unregister after)."""
        plugin = self.pm.get_plugin(slug)
        if plugin is not None:
            self.pm.unregister(plugin, name=slug)
        self.status.pop(slug, None)
        self.callers.clear()

    def info(self, slug: str) -> CrmInfo:
        """The ``CrmInfo`` of a loaded plugin; :class:`KeyError` names the unknown slug."""
        status = self.status.get(slug)
        if status is None or status.info is None:
            raise KeyError(slug)
        return status.info

    def loaded(self) -> list[str]:
        """Slugs of the loaded plugins, sorted."""
        return sorted(s for s, st in self.status.items() if st.loaded)

    def dispatcher(self) -> Dispatcher:
        """A dispatcher over these plugins."""
        return Dispatcher(self)


def _struct_dict(info: CrmInfo) -> dict[str, Any]:
    return {f: getattr(info, f) for f in info.__struct_fields__}


def _allow_list() -> set[str] | None:
    raw = os.environ.get(ALLOW_ENV)
    if raw is None:
        return None
    return {s.strip() for s in raw.split(",") if s.strip()}


def load_plugins(
    plugins: Plugins | None = None,
    *,
    entry_points: Iterable[importlib.metadata.EntryPoint] | None = None,
    allow: set[str] | None = None,
) -> Plugins:
    """Load the installed plugins of the ``crmhost`` entry-point group.

    Args:
        plugins: where to register them (a fresh :class:`Plugins` by default).
        entry_points: the entry points to load (all of the group by default).
        allow: slugs to load; by default ``CRMHOST_PLUGINS`` when set, else all.
    """
    plugins = plugins or Plugins()
    allowed = allow if allow is not None else _allow_list()
    eps = entry_points if entry_points is not None else importlib.metadata.entry_points(group=PROJECT)
    for ep in eps:
        if allowed is not None and ep.name not in allowed:
            continue
        version = ep.dist.version if ep.dist is not None else ""
        try:
            module = ep.load()
        except Exception as exc:
            plugins.status[ep.name] = PluginStatus(
                name=ep.name, version=version, error=f"import failed: {type(exc).__name__}: {exc}"
            )
            log.error("plugin %s skipped: import failed: %s", ep.name, exc)
            continue
        plugins.register(module, ep.name, version=version)
    try:
        plugins.pm.check_pending()
    except pluggy.PluginValidationError as exc:  # pragma: no cover - validate_plugin catches first
        log.error("plugin validation: %s", exc)
    return plugins


class Dispatcher:
    """Calls the one plugin that owns a slug, and awaits it where the hook is async."""

    def __init__(self, plugins: Plugins) -> None:
        self._plugins = plugins

    def _caller(self, slug: str, hook: str) -> Any:
        key = (slug, hook)
        caller = self._plugins.callers.get(key)
        if caller is None:
            pm = self._plugins.pm
            if slug not in self._plugins.loaded():
                raise KeyError(slug)
            others = [p for name, p in pm.list_name_plugin() if name != slug]
            caller = pm.subset_hook_caller(hook, remove_plugins=others)
            impls = caller.get_hookimpls()
            if len(impls) != 1:
                from crmhost.errors import Unsupported

                raise Unsupported(f"plugin {slug!r} does not implement {hook!r}")
            self._plugins.callers[key] = caller
        return caller

    def implements(self, slug: str, hook: str) -> bool:
        """Whether the plugin ``slug`` implements ``hook``."""
        plugin = self._plugins.pm.get_plugin(slug)
        return plugin is not None and hook in _implemented_hooks(self._plugins.pm, plugin)

    def call(self, slug: str, hook: str, **kwargs: Any) -> Any:
        """Call a synchronous hook (``map_fields``) of the plugin ``slug``."""
        results = self._caller(slug, hook)(**kwargs)
        return results[0]

    async def acall(self, slug: str, hook: str, **kwargs: Any) -> Any:
        """Call and await an async hook of the plugin ``slug``."""
        results = self._caller(slug, hook)(**kwargs)
        return await cast(Awaitable[Any], results[0])
