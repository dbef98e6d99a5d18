"""Schemathesis over every operation of the served OpenAPI description, all checks, a fixed seed.

Issue 11 item 7: the description is the contract. Each operation gets examples, the coverage
phase's boundary and negative cases and a bounded number of fuzzed requests against the real
app (uvicorn on 127.0.0.1, a throwaway SQLite data dir, the test plugin and OAuth server), with
a tenant's API key so authenticated operations are reached; every built-in check runs on every
answer: status codes and content types declared, bodies matching their schemas, no 5xx, valid
input accepted, invalid input refused, auth enforced.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from crmhost.api.app import create_app
from crmhost.context import ProviderApp
from crmhost.plugins import Plugins
from crmhost.runtime import open_host
from crmhost.sandbox.serve import running
from crmhost.security.tokens import generate_key_spec
from crmhost.services.tenants import create_tenant
from crmhost.settings import Settings

from ..support import testcrm
from ..support.oauth_server import OAuthServerState, create_oauth_server

#: the seed of every run: a failure here is the same failure on the next run and in CI
SEED = 20261205
#: fuzzed requests per operation, beside the examples and coverage phases (which are bounded by
#: the schema); enough to vary bodies and parameters, small enough for a loaded 2-core machine
MAX_EXAMPLES = 20

# The description as the app builds it; the served one is compared with it below, so the
# operations collected here are the ones the server describes.
DESCRIPTION: dict[str, Any] = create_app().openapi_schema.to_schema()

schema = schemathesis.openapi.from_dict(
    DESCRIPTION,
    config=schemathesis.Config.from_dict(
        {"seed": SEED, "generation": {"max-examples": MAX_EXAMPLES, "database": "none"}}
    ),
)


#: 400s for schema-valid input that no JSON schema can state, by operation: the places (the
#: error's ``extra[].key``) where each is refused. Only a 400 at one of these places skips the
#: "schema-valid input is accepted" check, for that answer alone; every other check still runs.
POLICY_REFUSALS: dict[tuple[str, str], tuple[str, ...]] = {
    # which providers exist is a deployment fact (GET /v1/plugins), and each plugin declares its
    # own settings there; the static description cannot list either
    ("POST", "/v1/integrations"): (r"body\.provider", r"body\.settings(\..*)?", r"body\.api_key"),
    # the notification target is refused by the address its host name resolves to (loopback,
    # private, reserved: SSRF), which a pattern cannot know
    ("PUT", "/v1/settings/notifications"): (r"body\.url",),
    # rows are checked one by one (a bad row is reported, the good ones kept), so the body takes
    # any rows; a batch whose every row is bad is a 400 naming the first
    ("PUT", "/v1/contacts:bulk"): (r"body\.contacts\[\d+\].*",),
    ("POST", "/v1/events"): (r"body\.events\[\d+\].*",),
    # opaque values only the host issues (a page cursor, a single-use OAuth state): any other
    # string is refused, and a schema can only say "a string"
    ("GET", "/v1/contacts"): (r"query\.cursor",),
    ("GET", "/v1/oauth/callback"): (r"query\.state",),
}

#: what the auth provider puts in cases: some are built when the tests are collected, before any
#: key exists, so each request swaps in the served tenant's key (:func:`_with_key`)
KEY_PLACEHOLDER = "tenant-api-key"


@schema.auth()
class TenantKey:
    """``Authorization: Bearer <key>`` on every case except those testing a missing or bad one."""

    def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
        return KEY_PLACEHOLDER

    def set(self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@dataclass(frozen=True)
class Served:
    url: str
    api_key: str


def _plugins() -> Plugins:
    plugins = Plugins()
    status = plugins.register(testcrm, "testcrm")
    assert status.loaded, status.error
    return plugins


async def _tenant(settings: Settings) -> str:
    async with open_host(settings, plugins=_plugins(), with_queue=False, migrate=False) as host:
        _, api_key = await create_tenant(host, "Contract")
    return api_key


@pytest.fixture(name="served", scope="module")
def fx_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data_dir: Path = tmp_path_factory.mktemp("contract")
    settings = Settings(
        data_dir=data_dir,
        database_url=f"sqlite+aiosqlite:///{data_dir / 'crmhost.db'}",
        encryption_keys=generate_key_spec("k1"),
    )
    oauth = OAuthServerState()
    with running(create_oauth_server(oauth)) as oauth_url, running(create_app(settings, _plugins())) as url:
        # frozen: the public URL is only known once the server listens
        object.__setattr__(settings, "public_url", url)
        settings.providers["testcrm"] = ProviderApp(
            client_id=oauth.client_id,
            client_secret=oauth.client_secret,
            redirect_uri=f"{url}/v1/oauth/callback",
            base_url=oauth_url,
        )
        api_key = asyncio.run(_tenant(settings))
        served = httpx.get(f"{url}/schema/openapi.json", timeout=30).json()
        assert served == DESCRIPTION, "the served description differs from the one collected"
        yield Served(url=url, api_key=api_key)


def _with_key(case: schemathesis.Case, served: Served) -> None:
    if case.headers and case.headers.get("Authorization") == f"Bearer {KEY_PLACEHOLDER}":
        case.headers["Authorization"] = f"Bearer {served.api_key}"


def _policy_refusal(case: schemathesis.Case, response: schemathesis.Response) -> bool:
    places = POLICY_REFUSALS.get((case.method.upper(), case.path), ())
    if response.status_code != 400 or not places:
        return False
    keys = [str(e.get("key")) for e in (response.json().get("extra") or []) if isinstance(e, dict)]
    return bool(keys) and all(any(re.fullmatch(p, k) for p in places) for k in keys)


@pytest.mark.slow
@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_operation_keeps_its_contract(case: schemathesis.Case, served: Served) -> None:
    _with_key(case, served)
    response = case.call(base_url=served.url)
    excluded = [positive_data_acceptance] if _policy_refusal(case, response) else []
    case.validate_response(response, excluded_checks=excluded, transport_kwargs={"base_url": served.url})
