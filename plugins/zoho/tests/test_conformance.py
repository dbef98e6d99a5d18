"""Zoho CRM passes the conformance kit."""

from crmhost.testing.contract import PluginContract


class TestConformance(PluginContract):
    slug = "zoho"
