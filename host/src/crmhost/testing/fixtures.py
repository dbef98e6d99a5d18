"""pytest fixtures for a plugin's own tests: its sandbox served, admin clients, contexts.

Registered by crmhost's pytest plugin, so a plugin's ``conftest.py`` only names its slug::

    @pytest.fixture(name="crm_slug")
    def fx_crm_slug() -> str:
        return "acme"

and, where its sandbox needs arguments, overrides ``crm_sandbox``. The conformance kit
(:class:`crmhost.testing.contract.PluginContract`) builds the same harness itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from crmhost.sandbox import Sandbox
from crmhost.sandbox.cli import create as create_sandbox
from crmhost.testing.contract.harness import CrmUnderTest, Integration, crm_under_test

__all__ = [
    "fx_crm",
    "fx_crm_admin_sync",
    "fx_crm_connected",
    "fx_crm_sandbox",
    "fx_crm_settings",
    "fx_crm_slug",
]


@pytest.fixture(name="crm_slug")
def fx_crm_slug() -> str:
    """The plugin under test; a plugin's ``conftest.py`` overrides it."""
    pytest.fail(
        "the crm fixtures need the plugin's slug: define a 'crm_slug' fixture in your conftest.py",
        pytrace=False,
    )


@pytest.fixture(name="crm_sandbox")
def fx_crm_sandbox(crm_slug: str) -> Sandbox:
    """A fresh sandbox from the plugin's ``crmhost.sandboxes`` entry point (not yet served)."""
    return create_sandbox(crm_slug)


@pytest.fixture(name="crm_settings")
def fx_crm_settings() -> dict[str, Any]:
    """Integration settings over the plugin's declared defaults (none by default)."""
    return {}


@pytest_asyncio.fixture(name="crm")
async def fx_crm(
    crm_slug: str, crm_sandbox: Sandbox, crm_settings: dict[str, Any]
) -> AsyncIterator[CrmUnderTest]:
    """The plugin loaded from its entry point and ``crm_sandbox`` served on 127.0.0.1.

    The sandbox keeps its own (real) rate limits here, unlike in the conformance kit.
    """
    async with crm_under_test(crm_slug, sandbox=crm_sandbox, settings=crm_settings, rate_tier=None) as crm:
        yield crm


@pytest.fixture(name="crm_admin_sync")
def fx_crm_admin_sync(crm: CrmUnderTest) -> Iterator[httpx.Client]:
    """A synchronous HTTP client on the sandbox, for admin calls from sync code and threads."""
    with httpx.Client(base_url=crm.base_url, timeout=30) as client:
        yield client


@pytest_asyncio.fixture(name="crm_connected")
async def fx_crm_connected(crm: CrmUnderTest) -> Integration:
    """An integration connected through the plugin with fresh credentials (refresh or API key)."""
    return await crm.connect()
