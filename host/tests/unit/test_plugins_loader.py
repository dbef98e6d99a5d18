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
from crmhost.models import AuthKind, Capability, CrmInfo, OAuthSpec, RateLimitPolicy, WebhookRouting

CALLS = []


@hookimpl
def crm_info():
    return CrmInfo(
        slug={slug!r},
        title="Test CRM",
        auth_kinds=[{auth}],
        objects=[],
        batch_sizes={{}},
        rate_limit=RateLimitPolicy(requests=10, per_seconds=1),
        capabilities=[{capabilities}],
        {extra}
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
        name: str,
        *,
        slug: str | None = None,
        body: str = "",
        source: str | None = None,
        capabilities: str | None = None,
        auth: str = "",
        extra: str = "",
    ) -> importlib.metadata.EntryPoint:
        module = f"crmhost_test_{name}_{len(modules)}"
        if capabilities is None:  # by default, declare what the body implements
            capabilities = "Capability.PUSH_RECORDS" if "def push_records" in body else ""
        text = (
            source
            if source is not None
            else PLUGIN.format(
                slug=slug or name, body=body, capabilities=capabilities, auth=auth, extra=extra
            )
        )
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


REVOKE = "@hookimpl\nasync def revoke(ctx):\n    return None\n"
AUTH = "@hookimpl\nasync def authenticate(ctx, grant):\n    return None\n"
WEBHOOK = "@hookimpl\nasync def handle_webhook(ctx, request):\n    return None\n"


@pytest.mark.parametrize(
    ("capabilities", "body", "message"),
    [
        (
            "Capability.PUSH_RECORDS",
            "",
            "declares Capability.PUSH_RECORDS but does not implement the 'push_records' hook",
        ),
        ("Capability.REVOKE", "", "declares Capability.REVOKE but does not implement the 'revoke' hook"),
        (
            "Capability.WEBHOOKS",
            "",
            "declares Capability.WEBHOOKS but does not implement the 'handle_webhook' hook",
        ),
        (
            "Capability.WEBHOOK_SUBSCRIPTIONS",
            WEBHOOK,
            "declares Capability.WEBHOOK_SUBSCRIPTIONS but does not implement the 'subscribe_webhooks' hook",
        ),
        (
            "Capability.DELETES",
            "",
            "declares Capability.DELETES but does not implement the 'pull_changes' or 'handle_webhook' hook",
        ),
        ("", PUSH.format(slug="x"), "implements 'push_records' but declares neither Capability.PUSH_RECORDS"),
        ("", REVOKE, "implements 'revoke' but declares neither Capability.REVOKE"),
        (
            "",
            WEBHOOK,
            "implements 'handle_webhook' but declares neither Capability.WEBHOOKS or "
            "Capability.WEBHOOK_SUBSCRIPTIONS",
        ),
    ],
)
def test_declared_capabilities_must_match_the_implemented_hooks(
    make_plugin: Make, capabilities: str, body: str, message: str
) -> None:
    bad = make_plugin("mismatch", body=body, capabilities=capabilities)
    good = make_plugin("fine", body=PUSH.format(slug="fine"))
    plugins = load_plugins(entry_points=[bad, good])
    assert plugins.loaded() == ["fine"]  # one mismatch does not stop the others
    error = plugins.status["mismatch"].error or ""
    assert error.startswith("plugin 'mismatch': ") and message in error
    assert plugins.pm.get_plugin("mismatch") is None


@pytest.mark.parametrize(
    ("auth", "body", "extra", "message"),
    [
        ("AuthKind.API_KEY", "", "", "supports auth kinds api_key but does not implement 'authenticate'"),
        ("AuthKind.OAUTH2", AUTH, "", "supports AuthKind.OAUTH2 but crm_info().oauth is None"),
        ("", WEBHOOK, "", "declares Capability.WEBHOOKS but no crm_info().webhook_routing"),
    ],
)
def test_auth_kinds_and_webhooks_need_their_parts(
    make_plugin: Make, auth: str, body: str, extra: str, message: str
) -> None:
    capabilities = "Capability.WEBHOOKS" if "handle_webhook" in body else ""
    ep = make_plugin("partial", body=body, capabilities=capabilities, auth=auth, extra=extra)
    plugins = load_plugins(entry_points=[ep])
    assert message in (plugins.status["partial"].error or "")


def test_a_complete_declaration_loads(make_plugin: Make) -> None:
    extra = (
        'oauth=OAuthSpec(authorize_url="https://a.example/auth", token_url="https://a.example/token"),\n'
        "        webhook_routing=WebhookRouting.INTEGRATION,"
    )
    ep = make_plugin(
        "complete",
        body=AUTH + REVOKE + WEBHOOK,
        capabilities="Capability.REVOKE, Capability.WEBHOOKS, Capability.DELETES",
        auth="AuthKind.OAUTH2, AuthKind.API_KEY",
        extra=extra,
    )
    plugins = load_plugins(entry_points=[ep])
    assert plugins.status["complete"].error is None
    assert plugins.status["complete"].hooks == ["authenticate", "crm_info", "handle_webhook", "revoke"]
