"""Render the plugin template (package data beside this module) into a new package directory.

Template files end in ``.tmpl`` (so the host's own linters, type checker and test collection
never read them as code) and are filled with :class:`string.Template`: ``$slug``, ``$title``,
``$package``, ``$dist``, ``$cls``, ``$env``, ``$domain`` and ``$workspace_sources`` (the ``[tool.uv.sources]``
table when the package lands inside a uv workspace); a literal dollar is ``$$``. Path parts
``__slug__`` and ``__package__`` are replaced by the slug and the package name.

Everything is rendered in memory first and written to a sibling temporary directory that is
renamed into place at the end, so a failure leaves nothing behind.
"""

from __future__ import annotations

import shutil
import string
import tempfile
import tomllib
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath

from crmhost.scaffold.names import PluginNames, ScaffoldError, check_slug

__all__ = ["TEMPLATE_SUFFIX", "render_files", "scaffold"]

TEMPLATE_SUFFIX = ".tmpl"
# inside a uv workspace the host comes from the workspace, not from an index
_WORKSPACE_SOURCES = "\n[tool.uv.sources]\ncrmhost = { workspace = true }\n"


def _template_root() -> Traversable:
    return files("crmhost.scaffold").joinpath("template")


def _walk(node: Traversable, prefix: PurePosixPath) -> list[tuple[PurePosixPath, Traversable]]:
    found: list[tuple[PurePosixPath, Traversable]] = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.name == "__pycache__":
            continue
        if child.is_dir():
            found.extend(_walk(child, prefix / child.name))
        elif child.name.endswith(TEMPLATE_SUFFIX):
            found.append((prefix / child.name, child))
    return found


def _in_uv_workspace(target: Path) -> bool:
    """Whether ``target`` lies under a directory whose ``pyproject.toml`` declares a uv workspace."""
    for parent in target.parents:
        pyproject = parent / "pyproject.toml"
        if pyproject.is_file():
            try:
                data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError):
                continue
            if "workspace" in data.get("tool", {}).get("uv", {}):
                return True
    return False


def render_files(names: PluginNames, *, workspace: bool) -> dict[PurePosixPath, str]:
    """The package's files (relative path -> text), rendered from the template.

    Raises:
        ScaffoldError: a template names a placeholder that does not exist (a broken template).
    """
    values = {
        "slug": names.slug,
        "title": names.title,
        "package": names.package,
        "dist": names.dist,
        "cls": names.cls,
        "env": names.env,
        "domain": names.domain,
        "workspace_sources": _WORKSPACE_SOURCES if workspace else "",
    }
    rendered: dict[PurePosixPath, str] = {}
    for relative, node in _walk(_template_root(), PurePosixPath()):
        parts = [
            p.replace("__slug__", names.slug).replace("__package__", names.package) for p in relative.parts
        ]
        target = PurePosixPath(*parts)
        target = target.with_name(target.name.removesuffix(TEMPLATE_SUFFIX))
        try:
            rendered[target] = string.Template(node.read_text(encoding="utf-8")).substitute(values)
        except (KeyError, ValueError) as exc:
            raise ScaffoldError(f"template {relative}: bad placeholder {exc}") from exc
    return rendered


def scaffold(slug: str, *, root: Path, title: str | None = None) -> Path:
    """Write the package of plugin ``slug`` to ``root / slug`` and return that directory.

    Args:
        slug: the plugin's slug (``[a-z][a-z0-9_]*``).
        root: the directory that receives the package directory (``plugins/`` of the workspace).
        title: the CRM's display name; defaults to the slug in title case.

    Raises:
        ScaffoldError: a bad slug or title, ``root / slug`` exists, or ``root`` is not a
            writable directory; nothing is written.
    """
    check_slug(slug, title)
    names = PluginNames.from_slug(slug, title)
    root = root.resolve()
    if root.exists() and not root.is_dir():
        raise ScaffoldError(f"{root} is not a directory")
    target = root / slug
    if target.exists():
        raise ScaffoldError(f"{target} already exists; choose another slug or --dir")
    rendered = render_files(names, workspace=_in_uv_workspace(target))
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{slug}-", dir=root))
    try:
        for relative, text in rendered.items():
            path = staging.joinpath(*relative.parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        (staging / "src" / names.package / "py.typed").touch()
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
