"""The conformance kit covers the whole contract, and plugins use only its public surface.

Datasette style: adding a hook to ``hookspecs.py`` fails here until the kit tests it and
``docs/plugins.md`` documents it; a plugin reaching into the host's internals fails here too.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from crmhost import hookspecs
from crmhost.testing.contract import PluginContract, covered_hooks

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "plugins.md"

#: what plugin code may import from the host (exact modules), and the packages whose submodules too
PUBLIC_MODULES = (
    "crmhost",
    "crmhost.models",
    "crmhost.errors",
    "crmhost.context",
    "crmhost.ratelimit",
    "crmhost.rounds",
)
PUBLIC_PACKAGES = ("crmhost.sandbox",)
#: what a plugin's tests may import besides
TEST_PACKAGES = ("crmhost.testing",)


def _hooks() -> list[str]:
    return sorted(n for n in hookspecs.__all__ if inspect.isfunction(getattr(hookspecs, n)))


@pytest.mark.parametrize("hook", _hooks())
def test_every_hook_has_a_kit_test_and_a_doc_section(hook: str) -> None:
    tests = covered_hooks(PluginContract).get(hook)
    assert tests, f"no PluginContract test exercises {hook!r}: add one marked @covers({hook!r})"
    assert re.search(rf"^### {hook}\(", DOC.read_text(), re.MULTILINE), (
        f"docs/plugins.md has no '### {hook}(...)' section"
    )


def test_the_kit_marks_only_real_hooks() -> None:
    unknown = set(covered_hooks(PluginContract)) - set(_hooks())
    assert not unknown, f"kit tests claim hooks that do not exist: {sorted(unknown)}"


def _allowed(module: str, *, test: bool) -> bool:
    packages = PUBLIC_PACKAGES + (TEST_PACKAGES if test else ())
    return module in PUBLIC_MODULES or any(module == p or module.startswith(p + ".") for p in packages)


def _host_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "crmhost"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "crmhost":
                found.append((node.lineno, node.module))
    return found


def _plugin_files() -> list[Path]:
    return sorted(p for p in (ROOT / "plugins").glob("*/*/**/*.py") if p.parts[-1] != "__pycache__")


def test_plugins_import_only_the_public_surface() -> None:
    files = _plugin_files()
    assert any("src" in p.parts for p in files) and any("tests" in p.parts for p in files)
    wrong = []
    for path in files:
        in_tests = "tests" in path.relative_to(ROOT).parts[2:3]
        for line, module in _host_imports(path):
            if not _allowed(module, test=in_tests):
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {module}")
    listing = "\n".join(wrong)
    assert not wrong, f"plugins import host internals (see 'Public surface' in docs/plugins.md):\n{listing}"


def test_the_public_surface_is_documented() -> None:
    section = DOC.read_text().split("## Public surface", 1)
    assert len(section) == 2, "docs/plugins.md has no '## Public surface' section"
    body = section[1].split("\n## ", 1)[0]
    for module in PUBLIC_MODULES + PUBLIC_PACKAGES + TEST_PACKAGES:
        assert f"`{module}`" in body, f"the public surface in docs/plugins.md does not list {module}"


def test_the_surface_check_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import crmhost.db.models\nfrom crmhost.models import Contact\nfrom crmhost.sync import push\n"
    )
    found = _host_imports(bad)
    assert found == [(1, "crmhost.db.models"), (2, "crmhost.models"), (3, "crmhost.sync")]
    assert [m for _, m in found if not _allowed(m, test=True)] == ["crmhost.db.models", "crmhost.sync"]
    assert not _allowed("crmhost.testing.contract", test=False)
