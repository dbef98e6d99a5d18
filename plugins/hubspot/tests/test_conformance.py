"""HubSpot passes the conformance kit."""

from crmhost.testing.contract import PluginContract


class TestConformance(PluginContract):
    slug = "hubspot"
    # v3 signatures cover the body and a timestamp HubSpot allows five minutes
    webhook_signs_body = True
    webhook_max_age_s = 300
