"""The conformance kit: every plugin passes the same tests against its own sandbox.

A plugin adopts it in one line, in ``tests/test_conformance.py``::

    from crmhost.testing.contract import PluginContract

    class TestConformance(PluginContract):
        slug = "acme"

The kit loads the plugin from its ``crmhost`` entry point (validated like the host validates
it), serves the sandbox from its ``crmhost.sandboxes`` entry point on 127.0.0.1, and runs the
tests that the plugin's ``CrmInfo.capabilities`` and ``auth_kinds`` select; the others are
skipped with the reason. See "Testing your plugin" in ``docs/plugins.md``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

import pytest_asyncio

from crmhost.testing.contract.auth import AuthContract
from crmhost.testing.contract.faults import FaultContract
from crmhost.testing.contract.harness import (
    AdminCall,
    CrmUnderTest,
    Integration,
    attach,
    covered_hooks,
    covers,
    crm_under_test,
    harness_for,
    load_plugin,
)
from crmhost.testing.contract.mapping import MappingContract
from crmhost.testing.contract.pull import PullContract
from crmhost.testing.contract.push import PushContract
from crmhost.testing.contract.webhooks import Capture, WebhookContract, capture_server

__all__ = [
    "AdminCall",
    "Capture",
    "CrmUnderTest",
    "Integration",
    "PluginContract",
    "attach",
    "capture_server",
    "covered_hooks",
    "covers",
    "crm_under_test",
    "harness_for",
    "load_plugin",
]


class PluginContract(
    AuthContract, PushContract, PullContract, WebhookContract, FaultContract, MappingContract
):
    """The conformance tests; subclass it with ``slug`` set (the class name must start with ``Test``).

    Optional class attributes, for what the kit cannot know about a CRM:

    Attributes:
        slug: the plugin's entry-point name (required).
        settings: integration settings every context gets, over the declared defaults.
        api_base: the ``ApiKeyGrant.api_base`` an API-key connect passes (an account domain).
        bad_person: canonical fields that make a person the CRM refuses (default: an
            invalid email).
        webhook_setup: admin requests ``(method, path, json)`` that make the sandbox send webhooks
            for person changes, where the CRM needs that set up (an Outbound Message action).
        webhook_signs_body: the CRM signs deliveries over their body (tampered bodies are refused).
        webhook_max_age_s: the CRM timestamps deliveries and older ones are refused.
    """

    slug: ClassVar[str]
    settings: ClassVar[Mapping[str, Any]] = {}
    api_base: ClassVar[str | None] = None

    @pytest_asyncio.fixture(name="crm")
    async def fx_crm(self) -> AsyncIterator[CrmUnderTest]:
        """The plugin and its sandbox, fresh for every test."""
        async with crm_under_test(self.slug, settings=self.settings, api_base=self.api_base) as crm:
            yield crm
