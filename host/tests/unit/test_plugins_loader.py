"""Loading plugins from entry points: validation, the allow-list, and single-owner dispatch.

The plugins are real modules written to a temporary directory and reached through real
``importlib.metadata.EntryPoint`` objects, exactly as installed plugins are.
"""

from __future__ import annotations

import importlib.metadata
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from crmhost.errors import Unsupported
from crmhost.plugins import ALLOW_ENV, load_plugins

PLUGIN = """
from crmhost import hookimpl
from crmhost.models import AuthKind, CrmInfo, RateLimitPolicy

CALLS = []


@hookimpl
def crm_info():
    return CrmInfo(
        slug={slug!r},
        title="Test CRM",
        auth_kinds=[AuthKind.API_KEY],
        objects=[],
        batch_sizes={{}},
        rate_limit=RateLimitPolicy(requests=10, per_seconds=1),
        capabilities=[],
    )

{body}
"""

PUSH = """
@hookimpl
async def push_records(ctx, batch):
    CALLS.append(("push_records", batch))
    return [{slug!r}]
"""

Make = Callable[..., importlib.metadata.EntryPoint]


@pytest.fixture(name="make_plugin")
def fx_make_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Make]:
    """Writes a plugin module and returns an entry point for it."""
    monkeypatch.syspath_prepend(str(tmp_path))
    modules: list[str] = []

    def make(
        name: str, *, slug: str | None = None, body: str = "", source: str | None = None
    ) -> importlib.metadata.EntryPoint:
        module = f"crmhost_test_{name}_{len(modules)}"
        text = source if source is not None else PLUGIN.format(slug=slug or name, body=body)
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(text))
        modules.append(module)
        return importlib.metadata.EntryPoint(name=name, value=module, group="crmhost")

    yield make
    for module in modules:
        sys.modules.pop(module, None)


def test_a_good_plugin_loads(make_plugin: Make) -> None:
    plugins = load_plugins(entry_points=[make_plugin("good", body=PUSH.format(slug="good"))], allow=None)
    status = plugins.status["good"]
    assert (status.loaded, status.error) == (True, None)
    assert status.hooks == ["crm_info", "push_records"]
    assert plugins.info("good").title == "Test CRM"
    assert plugins.loaded() == ["good"]


def test_a_broken_import_is_skipped_with_its_reason(make_plugin: Make) -> None:
    broken = make_plugin("broken", source="import crmhost_no_such_dependency\n")
    good = make_plugin("good")
    plugins = load_plugins(entry_points=[broken, good])
    assert plugins.loaded() == ["good"]
    error = plugins.status["broken"].error or ""
    assert error.startswith("import failed: ModuleNotFoundError")
    assert "crmhost_no_such_dependency" in error


def test_a_sync_function_where_async_is_required(make_plugin: Make) -> None:
    body = "@hookimpl\ndef push_records(ctx, batch):\n    return []\n"
    plugins = load_plugins(entry_points=[make_plugin("syncy", body=body)])
    assert plugins.loaded() == []
    assert plugins.status["syncy"].error == "plugin 'syncy': hook 'push_records' must be 'async def'"
    assert plugins.pm.get_plugin("syncy") is None  # unregistered again


def test_an_unknown_hook_name(make_plugin: Make) -> None:
    body = "@hookimpl\nasync def push_recrods(ctx, batch):\n    return []\n"
    plugins = load_plugins(entry_points=[make_plugin("typo", body=body)])
    assert plugins.loaded() == []
    assert plugins.status["typo"].error == "plugin 'typo': hook 'push_recrods' matches no hookspec"


def test_a_slug_that_differs_from_the_entry_point_name(make_plugin: Make) -> None:
    plugins = load_plugins(entry_points=[make_plugin("hubspot", slug="hub-spot")])
    assert plugins.loaded() == []
    error = plugins.status["hubspot"].error or ""
    assert "crm_info().slug is 'hub-spot'" in error
    assert "entry-point name" in error


def test_missing_crm_info(make_plugin: Make) -> None:
    source = "from crmhost import hookimpl\n\n@hookimpl\nasync def revoke(ctx):\n    return None\n"
    plugins = load_plugins(entry_points=[make_plugin("mute", source=source)])
    assert plugins.status["mute"].error == "plugin 'mute': does not implement crm_info"


@pytest.mark.parametrize(
    ("env", "expected"),
    [(None, ["one", "two"]), ("two", ["two"]), (" one , two ", ["one", "two"]), ("", [])],
)
def test_the_allow_list(
    make_plugin: Make, monkeypatch: pytest.MonkeyPatch, env: str | None, expected: list[str]
) -> None:
    if env is None:
        monkeypatch.delenv(ALLOW_ENV, raising=False)
    else:
        monkeypatch.setenv(ALLOW_ENV, env)
    plugins = load_plugins(entry_points=[make_plugin("one"), make_plugin("two")])
    assert plugins.loaded() == expected
    assert sorted(plugins.status) == expected  # not allowed: not even imported


def test_an_explicit_allow_set_wins_over_the_environment(
    make_plugin: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ALLOW_ENV, "")
    plugins = load_plugins(entry_points=[make_plugin("one"), make_plugin("two")], allow={"one"})
    assert plugins.loaded() == ["one"]


async def test_the_dispatcher_calls_only_the_owner(make_plugin: Make) -> None:
    eps = [make_plugin(s, body=PUSH.format(slug=s)) for s in ("alpha", "beta")]
    eps.append(make_plugin("gamma"))  # no push_records
    plugins = load_plugins(entry_points=eps)
    dispatcher = plugins.dispatcher()
    modules = {ep.name: sys.modules[ep.value] for ep in eps}

    assert await dispatcher.acall("beta", "push_records", ctx=None, batch="b1") == ["beta"]
    assert await dispatcher.acall("alpha", "push_records", ctx=None, batch="a1") == ["alpha"]
    assert modules["alpha"].CALLS == [("push_records", "a1")]
    assert modules["beta"].CALLS == [("push_records", "b1")]
    assert dispatcher.implements("alpha", "push_records")
    assert not dispatcher.implements("gamma", "push_records")
    with pytest.raises(Unsupported, match="'gamma' does not implement 'push_records'"):
        await dispatcher.acall("gamma", "push_records", ctx=None, batch="g1")
    with pytest.raises(KeyError, match="delta"):
        await dispatcher.acall("delta", "push_records", ctx=None, batch="d1")
    assert modules["gamma"].CALLS == []
    # after one plugin leaves, the others' cached callers are rebuilt and still exclusive
    plugins.unregister("alpha")
    assert await dispatcher.acall("beta", "push_records", ctx=None, batch="b2") == ["beta"]
    with pytest.raises(KeyError):
        await dispatcher.acall("alpha", "push_records", ctx=None, batch="a2")
