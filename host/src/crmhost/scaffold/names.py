"""The names a new plugin is known by, derived from its slug, and the checks a slug must pass."""

from __future__ import annotations

import importlib.metadata
import keyword
import re
from dataclasses import dataclass

from crmhost.markers import PROJECT

__all__ = ["MAX_SLUG", "MAX_TITLE", "SLUG_PATTERN", "PluginNames", "ScaffoldError", "check_slug"]

#: a slug is one name everywhere: entry point, package suffix, URL segment, env-var infix
SLUG_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
#: the longest slug and title: the template's lines stay within the line length with them
MAX_SLUG, MAX_TITLE = 24, 32
# the title lands in Python strings, TOML and Markdown: one printable line, nothing to escape
_TITLE = re.compile(r"[^\x00-\x1f\x7f\"\\]+")


class ScaffoldError(ValueError):
    """The scaffold cannot be written as asked; the message says what and where. Nothing was written."""


@dataclass(frozen=True)
class PluginNames:
    """Every spelling of one plugin's name.

    Attributes:
        slug: the entry-point name, ``CrmInfo.slug`` and ``/v1/webhooks/<slug>`` segment.
        title: the CRM's display name.
        package: the import package, ``crmhost_<slug>``.
        dist: the distribution, ``crmhost-<slug>`` (underscores become dashes).
        cls: a CamelCase prefix for class names (``acme_crm`` -> ``AcmeCrm``).
        env: the upper-case infix of the host's ``CRMHOST_<ENV>_*`` settings.
        domain: the made-up DNS name of the template's CRM (``acme-crm.example``).
    """

    slug: str
    title: str
    package: str
    dist: str
    cls: str
    env: str
    domain: str

    @classmethod
    def from_slug(cls, slug: str, title: str | None = None) -> PluginNames:
        """The names of ``slug``; ``title`` defaults to the slug in title case."""
        words = [w for w in slug.split("_") if w]
        return cls(
            slug=slug,
            title=title.strip() if title and title.strip() else " ".join(w.capitalize() for w in words),
            package=f"crmhost_{slug}",
            dist=f"crmhost-{slug.replace('_', '-')}",
            cls="".join(w.capitalize() for w in words),
            env=slug.upper(),
            domain=f"{slug.replace('_', '-')}.example",
        )


def installed_slugs() -> set[str]:
    """Slugs of the plugins installed in this environment (the ``crmhost`` entry-point group)."""
    return {ep.name for ep in importlib.metadata.entry_points(group=PROJECT)}


def check_slug(slug: str, title: str | None = None) -> None:
    """Refuse a slug that cannot name a plugin.

    Raises:
        ScaffoldError: the slug is not ``[a-z][a-z0-9_]*``, is a Python keyword, ends in ``_``
            or repeats one (the package and env names would be ambiguous), is longer than
            :data:`MAX_SLUG`, is an installed plugin's, or the title is blank, longer than
            :data:`MAX_TITLE`, spans lines or holds a quote or backslash.
    """
    if not SLUG_PATTERN.fullmatch(slug):
        raise ScaffoldError(
            f"slug {slug!r} must match [a-z][a-z0-9_]* (lower-case letter first, then letters, digits, _)"
        )
    if len(slug) > MAX_SLUG:
        raise ScaffoldError(f"slug {slug!r} is longer than {MAX_SLUG} characters")
    if keyword.iskeyword(slug) or keyword.issoftkeyword(slug):
        raise ScaffoldError(f"slug {slug!r} is a Python keyword")
    if slug.endswith("_") or "__" in slug:
        raise ScaffoldError(f"slug {slug!r} must not end in '_' or contain '__'")
    if slug in installed_slugs():
        raise ScaffoldError(f"slug {slug!r} is already the name of an installed plugin")
    if title is not None and len(title.strip()) > MAX_TITLE:
        raise ScaffoldError(f"title {title!r} is longer than {MAX_TITLE} characters")
    if title is not None and not _TITLE.fullmatch(title.strip()):
        raise ScaffoldError(
            f"title {title!r} must be one non-blank line without double quotes or backslashes"
        )
