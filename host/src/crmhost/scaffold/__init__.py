"""``crmhost new-plugin``: a new CRM plugin package, ready to pass ``make test`` unchanged.

:func:`scaffold` writes ``plugins/<slug>/``: ``pyproject.toml`` with the ``crmhost`` and
``crmhost.sandboxes`` entry points, the plugin (``plugin``, ``auth``, ``client``, ``mapping``,
``sync``, ``webhooks``), a sandbox of a small but real JSON CRM, and tests adopting the
conformance kit. Authors then replace the sandbox's CRM with theirs, wire fact by wire fact.
"""

from crmhost.scaffold.names import MAX_SLUG, MAX_TITLE, PluginNames, ScaffoldError, check_slug
from crmhost.scaffold.render import render_files, scaffold

__all__ = ["MAX_SLUG", "MAX_TITLE", "PluginNames", "ScaffoldError", "check_slug", "render_files", "scaffold"]
