"""The conformance kit's harness: one plugin and its sandbox, reached only over HTTP.

:class:`CrmUnderTest` finds the plugin through its ``crmhost`` entry point (loaded and validated
exactly as the host loads it) and the sandbox through its ``crmhost.sandboxes`` entry point,
serves the sandbox on 127.0.0.1 and builds :class:`~crmhost.context.IntegrationContext` s the
way the host does. It talks to the sandbox only through HTTP: the CRM's API through the
plugin's hooks, everything else through the sandbox's admin endpoints. Nothing in here knows
a CRM by name.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn, TypeVar
from urllib.parse import parse_qsl, urlsplit

import httpx
import msgspec
import pytest
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from crmhost.context import IntegrationContext, ProviderApp, utcnow
from crmhost.errors import Unsupported
from crmhost.models import (
    ApiKeyGrant,
    AuthKind,
    AuthorizationCodeGrant,
    Capability,
    Credentials,
    CrmInfo,
    FieldDirection,
    FieldMapping,
    MappingDirection,
    ObjectType,
    Record,
    RecordBatch,
    RecordOp,
    RecordResult,
    RefreshGrant,
)
from crmhost.plugins import Plugins, load_plugins
from crmhost.ratelimit import SlidingWindowLimiter
from crmhost.sandbox import ActivityView, PersonView, Sandbox, running
from crmhost.sandbox.cli import create as create_sandbox
from crmhost.testing.browser import consent

__all__ = [
    "REDIRECT_URI",
    "AdminCall",
    "CrmUnderTest",
    "Integration",
    "covered_hooks",
    "covers",
    "crm_under_test",
]

#: the host's OAuth callback as the kit registers it; nothing serves it (the kit reads the redirect)
REDIRECT_URI = "http://127.0.0.1:9/v1/oauth/callback"
#: an admin request a plugin's conformance class asks for before webhook tests: (method, path, json)
AdminCall = tuple[str, str, Any]

F = TypeVar("F", bound=Callable[..., Any])
_HOOKS_ATTR = "crmhost_contract_hooks"


def covers(*hooks: str) -> Callable[[F], F]:
    """Mark a kit test as exercising ``hooks`` (read by the host's every-hook-has-a-test check)."""

    def mark(test: F) -> F:
        setattr(test, _HOOKS_ATTR, (*getattr(test, _HOOKS_ATTR, ()), *hooks))
        return test

    return mark


def covered_hooks(cls: type) -> dict[str, list[str]]:
    """Hook name -> the tests of ``cls`` that exercise it."""
    found: dict[str, list[str]] = {}
    for name in dir(cls):
        if name.startswith("test_"):
            for hook in getattr(getattr(cls, name), _HOOKS_ATTR, ()):
                found.setdefault(hook, []).append(name)
    return found


class _Unavailable(Exception):
    """The sandbox lacks an admin feature (501); the test needing it is skipped."""


@dataclass
class Integration:
    """A connected integration as the kit holds it: the context and its credentials."""

    ctx: IntegrationContext
    credentials: Credentials


@dataclass
class CrmUnderTest:
    """One plugin, its running sandbox, and the means to drive both.

    Attributes:
        slug: the plugin's entry-point name.
        info: its ``crm_info()``.
        plugins: the host's plugin registry with exactly this plugin loaded.
        base_url: the sandbox's loopback URL.
        client_id: the sandbox's OAuth client id (as ``crmhost sandbox`` prints it).
        client_secret: its OAuth client secret.
        admin: an HTTP client on the sandbox (admin endpoints only).
        http: the HTTP client the contexts share, as the host's is shared.
        settings: the integration settings every context gets.
    """

    slug: str
    info: CrmInfo
    plugins: Plugins
    base_url: str
    client_id: str
    client_secret: str = field(repr=False)
    admin: httpx.AsyncClient
    http: httpx.AsyncClient
    settings: Mapping[str, Any] = field(default_factory=dict)
    api_base: str | None = None

    # ------------------------------------------------------------------ capabilities

    def has(self, *capabilities: Capability) -> bool:
        """Whether the plugin declares every one of ``capabilities``."""
        return all(c in self.info.capabilities for c in capabilities)

    def require(self, *capabilities: Capability) -> None:
        """Skip the calling test unless the plugin declares ``capabilities``."""
        missing = [c.value for c in capabilities if c not in self.info.capabilities]
        if missing:
            pytest.skip(f"{self.slug} does not declare Capability {', '.join(missing)}")

    def require_auth(self, kind: AuthKind) -> None:
        """Skip the calling test unless the plugin supports ``kind``."""
        if kind not in self.info.auth_kinds:
            pytest.skip(f"{self.slug} does not support AuthKind {kind.value}")

    @property
    def person_object(self) -> ObjectType:
        """The object platform contacts sync to in this CRM (contact, else lead)."""
        for candidate in (ObjectType.CONTACT, ObjectType.LEAD):
            if candidate in self.info.objects:
                return candidate
        pytest.skip(f"{self.slug} syncs no contacts or leads")

    # ------------------------------------------------------------------ contexts and hooks

    def app(self, *, client_secret: str | None = None) -> ProviderApp:
        """The host's OAuth app for this CRM, pointed at the sandbox."""
        return ProviderApp(
            client_id=self.client_id,
            client_secret=self.client_secret if client_secret is None else client_secret,
            redirect_uri=REDIRECT_URI,
            base_url=self.base_url,
        )

    def context(
        self,
        credentials: Credentials | None = None,
        *,
        http: httpx.AsyncClient | None = None,
        app: ProviderApp | None = None,
        paced: bool = False,
        integration_id: str | None = "kit-integration",
        now: Callable[[], datetime] = utcnow,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> IntegrationContext:
        """A context like the host's; unpaced by default (the kit turns the sandbox's limits off).

        ``settings`` go over the integration settings this harness was made with.
        """
        limiter = SlidingWindowLimiter(self.info.rate_limit)
        limiter.enabled = paced
        return IntegrationContext(
            provider=self.slug,
            app=app or self.app(),
            http=http or self.http,
            limiter=limiter,
            integration_id=integration_id,
            tenant_id="kit-tenant" if integration_id else None,
            credentials=credentials,
            settings={**self.settings, **(settings or {})},
            now=now,
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
        )

    async def call(self, hook: str, ctx: IntegrationContext, **kwargs: Any) -> Any:
        """Await the plugin's ``hook`` through the host's dispatcher."""
        return await self.plugins.dispatcher().acall(self.slug, hook, ctx=ctx, **kwargs)

    def implements(self, hook: str) -> bool:
        """Whether the plugin implements ``hook``."""
        return self.plugins.dispatcher().implements(self.slug, hook)

    def map_fields(
        self,
        ctx: IntegrationContext,
        record: Record,
        direction: MappingDirection,
        mapping: Sequence[FieldMapping] | None = None,
    ) -> Record:
        """The plugin's ``map_fields`` with ``mapping`` (the default mapping of the object)."""
        if mapping is None:
            mapping = self.mapping(record.object, direction)
        result = self.plugins.dispatcher().call(
            self.slug, "map_fields", ctx=ctx, record=record, direction=direction, mapping=list(mapping)
        )
        assert isinstance(result, Record), f"map_fields returned {type(result).__name__}, not Record"
        return result

    def mapping(self, obj: ObjectType, direction: MappingDirection) -> list[FieldMapping]:
        """The default mapping's fields of ``obj`` that sync ``direction``."""
        allowed = {
            MappingDirection.TO_CRM: (FieldDirection.TO_CRM, FieldDirection.BOTH),
            MappingDirection.FROM_CRM: (FieldDirection.FROM_CRM, FieldDirection.BOTH),
        }[direction]
        target = obj
        if obj is ObjectType.LEAD and not any(m.object is obj for m in self.info.default_mapping):
            target = ObjectType.CONTACT
        return [m for m in self.info.default_mapping if m.object is target and m.direction in allowed]

    # ------------------------------------------------------------------ credentials

    async def connect(self) -> Integration:
        """A connected integration with fresh credentials, obtained through the plugin.

        OAuth plugins refresh a refresh token the sandbox's admin endpoint minted (the same
        ``authenticate`` path as the host's refresher); API-key plugins check a key the sandbox
        minted.
        """
        if AuthKind.OAUTH2 in self.info.auth_kinds:
            scopes = self.info.oauth.scopes if self.info.oauth else []
            minted = await self.admin_json("POST", "/_sandbox/token", {"scopes": list(scopes)})
            stale = Credentials(
                kind=AuthKind.OAUTH2,
                access_token="kit-stale-access-token",  # noqa: S106 (a value the CRM rejects)
                refresh_token=str(minted["refresh_token"]),
            )
            credentials = await self.call(
                "authenticate", self.context(), grant=RefreshGrant(credentials=stale)
            )
        else:
            credentials = await self.call("authenticate", self.context(), grant=await self.api_key_grant())
        assert isinstance(credentials, Credentials)
        return Integration(self.context(credentials), credentials)

    async def api_key_grant(self) -> ApiKeyGrant:
        """A grant for a fresh API key of the sandbox's account."""
        body = await self.admin_json("POST", "/_sandbox/api-key")
        return ApiKeyGrant(api_key=str(body["api_key"]), api_base=self.api_base)

    async def authorize(self, *, pkce: bool | None = None) -> tuple[AuthorizationCodeGrant, str]:
        """Walk the sandbox's real consent page like a browser; return the code grant and state.

        Raises:
            AssertionError: the consent page redirected back without a code, or with another state.
        """
        oauth = self.info.oauth
        assert oauth is not None, f"{self.slug} supports OAuth but crm_info().oauth is None"
        state = secrets.token_urlsafe(16)
        verifier = secrets.token_urlsafe(64) if (oauth.pkce if pkce is None else pkce) else None
        params = dict(oauth.extra_authorize_params)
        if oauth.optional_scopes:
            params["optional_scope"] = oauth.scope_separator.join(oauth.optional_scopes)
        if verifier:
            params["code_challenge"] = create_s256_code_challenge(verifier)
            params["code_challenge_method"] = "S256"
        url = prepare_grant_uri(
            self.app().rebase(oauth.authorize_url),
            client_id=self.client_id,
            response_type="code",
            redirect_uri=REDIRECT_URI,
            scope=oauth.scope_separator.join(oauth.scopes),
            state=state,
            **params,
        )
        async with httpx.AsyncClient(timeout=30) as browser:
            location = await consent(browser, str(url))
        query = dict(parse_qsl(urlsplit(location).query))
        assert "code" in query, f"the consent page redirected to {location!r} without a code"
        assert query.get("state") == state, "the consent page did not return the state it was given"
        extra = {k: v for k, v in query.items() if k not in ("code", "state")}
        grant = AuthorizationCodeGrant(
            code=query["code"], redirect_uri=REDIRECT_URI, code_verifier=verifier, callback_params=extra
        )
        return grant, state

    async def probe(self, ctx: IntegrationContext) -> None:
        """One authenticated API call through the plugin (raises what the plugin raises)."""
        if self.implements("pull_changes"):
            await self.call("pull_changes", ctx, object=self.person_object, cursor=None)
        elif self.implements("discover_fields"):
            await self.call("discover_fields", ctx, object=self.person_object)
        elif self.implements("push_records"):
            await self.push_people(ctx, [sample_person(0)])
        else:
            raise Unsupported(f"{self.slug} implements no hook the kit can probe credentials with")

    # ------------------------------------------------------------------ records

    def person_record(self, ctx: IntegrationContext, fields: Mapping[str, Any]) -> Record:
        """A canonical person mapped to the CRM's names by the plugin's default mapping."""
        canonical = Record(object=self.person_object, key=str(fields["email"]).lower(), fields=dict(fields))
        return self.map_fields(ctx, canonical, MappingDirection.TO_CRM)

    async def push_people(
        self, ctx: IntegrationContext, people: Sequence[Mapping[str, Any]], op: RecordOp = RecordOp.UPSERT
    ) -> list[RecordResult]:
        """Push canonical people through ``push_records`` in the plugin's batch size."""
        size = max(1, self.info.batch_sizes.get("push_records", 1))
        records = [self.person_record(ctx, p) for p in people]
        results: list[RecordResult] = []
        for start in range(0, len(records), size):
            batch = RecordBatch(object=self.person_object, op=op, records=records[start : start + size])
            page = await self.call("push_records", ctx, batch=batch)
            assert len(page) == len(batch.records), (
                f"push_records gave {len(page)} results for {len(batch.records)}"
            )
            results.extend(page)
        return results

    # ------------------------------------------------------------------ the sandbox's admin side

    async def admin_json(self, method: str, path: str, body: Any = None) -> Any:
        """One admin request; a 501 (the sandbox lacks the feature) skips the test."""
        response = await self.admin.request(method, path, json=body)
        if response.status_code == 501:
            _skip_unavailable(path, response)
        assert response.is_success, f"{method} {path} answered {response.status_code}: {response.text[:500]}"
        return response.json() if response.content else None

    async def faults(self, **switches: Any) -> None:
        """Set the sandbox's fault switches (``FaultSwitches`` fields)."""
        await self.admin_json("POST", "/_sandbox/faults", switches)

    async def rate_tier(self, tier: str) -> None:
        """Switch the sandbox's rate-limit tier (``real``, ``off`` or a named one)."""
        await self.admin_json("PUT", "/_sandbox/rate-limits", {"tier": tier})

    async def people(self) -> list[PersonView]:
        """Every person the CRM holds (the inspector)."""
        body = await self.admin_json("GET", "/_sandbox/people")
        return msgspec.convert(body["people"], list[PersonView])

    async def activities(self) -> list[ActivityView]:
        """Every email activity the CRM holds (the inspector)."""
        body = await self.admin_json("GET", "/_sandbox/activities")
        return msgspec.convert(body["activities"], list[ActivityView])

    async def user_creates_person(self, fields: Mapping[str, Any]) -> str:
        """A CRM user creates a person; returns its id."""
        return str((await self.admin_json("POST", "/_sandbox/people", {"fields": dict(fields)}))["id"])

    async def user_edits_person(self, person_id: str, fields: Mapping[str, Any]) -> None:
        """A CRM user edits a person."""
        await self.admin_json("PATCH", f"/_sandbox/people/{person_id}", {"fields": dict(fields)})

    async def user_deletes_people(self, ids: Iterable[str]) -> None:
        """A CRM user deletes persons."""
        await self.admin_json("POST", "/_sandbox/people/delete", {"ids": list(ids)})

    async def deliveries(self) -> list[dict[str, Any]]:
        """The sandbox's webhook deliveries and their attempts."""
        return list((await self.admin_json("GET", "/_sandbox/webhooks"))["deliveries"])


def _skip_unavailable(path: str, response: httpx.Response) -> NoReturn:
    try:
        reason = str(response.json().get("error", response.text))
    except ValueError:
        reason = response.text
    pytest.skip(f"the sandbox does not provide {path} yet (501: {reason[:200]})")


def sample_person(n: int, **overrides: Any) -> dict[str, Any]:
    """Canonical fields of the ``n``-th kit person (unique email per ``n``)."""
    return {
        "email": f"kit.person{n}@example.com",
        "first_name": f"Kit{n}",
        "last_name": f"Person{n}",
        **overrides,
    }


def plugin_settings(info: CrmInfo, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The settings' declared defaults, with ``overrides`` on top."""
    settings = {s.name: s.default for s in info.settings if s.default is not None}
    settings.update(overrides)
    return settings


def load_plugin(slug: str) -> Plugins:
    """The host's plugin registry with exactly ``slug`` loaded from its ``crmhost`` entry point.

    Raises:
        AssertionError: the plugin is not installed or did not load (the loader's reason).
    """
    plugins = load_plugins(allow={slug})
    status = plugins.status.get(slug)
    assert status is not None, f"no plugin {slug!r} in the 'crmhost' entry-point group; is it installed?"
    assert status.loaded and status.info is not None, f"plugin {slug!r} did not load: {status.error}"
    return plugins


def harness_for(
    slug: str,
    sandbox: Sandbox,
    base_url: str,
    *,
    admin: httpx.AsyncClient,
    http: httpx.AsyncClient,
    settings: Mapping[str, Any] | None = None,
    api_base: str | None = None,
    plugins: Plugins | None = None,
) -> CrmUnderTest:
    """A :class:`CrmUnderTest` for ``sandbox`` served at ``base_url``; the caller owns the clients.

    ``plugins`` replaces the registry loaded from the entry point (the kit's own tests run it
    against deliberately broken plugins).
    """
    plugins = plugins or load_plugin(slug)
    info = plugins.info(slug)
    return CrmUnderTest(
        slug=slug,
        info=info,
        plugins=plugins,
        base_url=base_url,
        client_id=sandbox.client_id,
        client_secret=sandbox.client_secret,
        admin=admin,
        http=http,
        settings=plugin_settings(info, settings or {}),
        api_base=api_base,
    )


@asynccontextmanager
async def attach(
    slug: str,
    sandbox: Sandbox,
    base_url: str,
    *,
    settings: Mapping[str, Any] | None = None,
    api_base: str | None = None,
    plugins: Plugins | None = None,
) -> AsyncIterator[CrmUnderTest]:
    """A :class:`CrmUnderTest` for ``sandbox``, already served at ``base_url``, with its own clients."""
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30) as admin,
        httpx.AsyncClient(timeout=30) as http,
    ):
        yield harness_for(
            slug,
            sandbox,
            base_url,
            admin=admin,
            http=http,
            settings=settings,
            api_base=api_base,
            plugins=plugins,
        )


@asynccontextmanager
async def crm_under_test(
    slug: str,
    *,
    sandbox: Sandbox | None = None,
    settings: Mapping[str, Any] | None = None,
    api_base: str | None = None,
    rate_tier: str | None = "off",
    plugins: Plugins | None = None,
) -> AsyncIterator[CrmUnderTest]:
    """The plugin ``slug`` loaded from its entry point and its sandbox served on 127.0.0.1.

    Args:
        slug: the plugin's entry-point name.
        sandbox: the sandbox to serve; by default a new one from the ``crmhost.sandboxes``
            entry point.
        settings: integration settings over the sandbox's (``GET /_sandbox/settings``) and the
            plugin's declared defaults.
        api_base: what an API-key connect passes as ``ApiKeyGrant.api_base``.
        rate_tier: the sandbox's rate-limit tier to start with; ``None`` keeps its own (real).
        plugins: a registry to use instead of the entry point's plugin.

    Raises:
        AssertionError: the plugin did not load (the loader's reason is in the message).
    """
    box = sandbox if sandbox is not None else create_sandbox(slug)
    with running(box) as base_url:
        async with attach(slug, box, base_url, settings=settings, api_base=api_base, plugins=plugins) as crm:
            # what a CRM admin would enter at connect for the sandbox's app, under the caller's
            answer = await crm.admin.get("/_sandbox/settings")
            if answer.status_code == 200:
                crm.settings = plugin_settings(crm.info, {**answer.json()["settings"], **(settings or {})})
            if rate_tier is not None:
                await crm.rate_tier(rate_tier)
            yield crm
