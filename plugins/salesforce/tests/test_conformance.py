"""Salesforce passes the conformance kit."""

from crmhost.testing.contract import PluginContract


class TestConformance(PluginContract):
    slug = "salesforce"
    # Outbound Messages go out only for objects a workflow action names; they carry no signature
    # (the plugin checks the org id) and no timestamp
    webhook_setup = (
        ("PUT", "/_sandbox/salesforce/outbound", {"sobject": "Contact", "fields": ["Email", "FirstName"]}),
    )
