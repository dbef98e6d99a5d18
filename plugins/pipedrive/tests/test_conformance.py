"""Pipedrive passes the conformance kit."""

from typing import Any, ClassVar

from crmhost.testing.contract import PluginContract


class TestConformance(PluginContract):
    slug = "pipedrive"
    # Pipedrive takes any text as an email; a name beyond its 255-character text limit it refuses
    bad_person: ClassVar[dict[str, Any]] = {"first_name": "A" * 300}
