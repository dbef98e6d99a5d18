"""Kit tests of ``crm_info``, ``authenticate`` and ``revoke``."""

from __future__ import annotations

import msgspec
import pytest

from crmhost.errors import ReauthRequired
from crmhost.models import ApiKeyGrant, AuthKind, Capability, Credentials, RefreshGrant
from crmhost.plugins import validate_capabilities
from crmhost.testing.contract.harness import CrmUnderTest, covers

__all__ = ["AuthContract"]


class AuthContract:
    """Discovery, the OAuth code flow with PKCE, refresh and rotation, revoke, API keys."""

    @covers("crm_info")
    def test_crm_info_describes_the_plugin(self, crm: CrmUnderTest) -> None:
        """crm_info() is complete, consistent with the implemented hooks, and JSON-safe."""
        info = crm.info
        assert info.slug == crm.slug, "crm_info().slug must equal the entry-point name"
        assert info.title, "crm_info().title is empty"
        assert info.auth_kinds, "crm_info().auth_kinds is empty: how do integrations connect?"
        assert info.objects, "crm_info().objects is empty"
        assert len(set(info.capabilities)) == len(info.capabilities), "a capability is declared twice"
        validate_capabilities(info, crm.plugins.status[crm.slug].hooks)
        for name in ("push_records", "push_activity", "pull"):
            if name in info.batch_sizes:
                assert info.batch_sizes[name] >= 1, f"batch_sizes[{name!r}] must be at least 1"
        if AuthKind.OAUTH2 in info.auth_kinds:
            assert info.oauth is not None, "AuthKind.OAUTH2 needs crm_info().oauth"
        # what GET /v1/plugins serves must survive JSON
        assert msgspec.json.decode(msgspec.json.encode(info), type=type(info)) == info

    @covers("authenticate")
    async def test_oauth_code_flow_through_the_consent_page(self, crm: CrmUnderTest) -> None:
        """A code from the real consent page exchanges for working credentials, once."""
        crm.require_auth(AuthKind.OAUTH2)
        grant, _ = await crm.authorize()
        credentials = await crm.call("authenticate", crm.context(), grant=grant)
        assert isinstance(credentials, Credentials)
        assert credentials.kind is AuthKind.OAUTH2
        assert credentials.access_token and credentials.refresh_token, "a code exchange gives both tokens"
        assert "***" in repr(credentials) and credentials.access_token not in repr(credentials)
        await crm.probe(crm.context(credentials))
        # a code is single use
        with pytest.raises(ReauthRequired):
            await crm.call("authenticate", crm.context(), grant=grant)

    @covers("authenticate")
    async def test_pkce_verifier_is_sent_and_checked(self, crm: CrmUnderTest) -> None:
        """The code exchange sends the PKCE verifier; a wrong one is refused as ReauthRequired."""
        crm.require_auth(AuthKind.OAUTH2)
        if crm.info.oauth is None or not crm.info.oauth.pkce:
            pytest.skip(f"{crm.slug} does not use PKCE (OAuthSpec.pkce is false)")
        grant, _ = await crm.authorize()
        wrong = msgspec.structs.replace(grant, code_verifier="x" * 64)
        with pytest.raises(ReauthRequired):
            await crm.call("authenticate", crm.context(), grant=wrong)

    @covers("authenticate")
    async def test_refresh_and_rotated_refresh_tokens(self, crm: CrmUnderTest) -> None:
        """Refreshing with whatever the last refresh returned keeps working."""
        crm.require_auth(AuthKind.OAUTH2)
        grant, _ = await crm.authorize()
        credentials = await crm.call("authenticate", crm.context(), grant=grant)
        seen = {credentials.access_token}
        # the host stores whatever a refresh returned and refreshes with that next time
        for _ in range(3):
            credentials = await crm.call(
                "authenticate", crm.context(credentials), grant=RefreshGrant(credentials=credentials)
            )
            assert isinstance(credentials, Credentials)
            assert credentials.refresh_token, "a refresh must return a refresh token (the rotated or the old)"
            assert credentials.access_token not in seen, "a refresh must return a new access token"
            seen.add(credentials.access_token)
            await crm.probe(crm.context(credentials))

    @covers("authenticate")
    async def test_an_invalid_refresh_token_needs_reauth(self, crm: CrmUnderTest) -> None:
        """An unknown refresh token is ReauthRequired, not a crash or a retry."""
        crm.require_auth(AuthKind.OAUTH2)
        bogus = Credentials(kind=AuthKind.OAUTH2, access_token="kit-bogus", refresh_token="kit-bogus")  # noqa: S106
        with pytest.raises(ReauthRequired):
            await crm.call("authenticate", crm.context(), grant=RefreshGrant(credentials=bogus))

    @covers("revoke")
    async def test_revoke_ends_the_grant(self, crm: CrmUnderTest) -> None:
        """After revoke the refresh token no longer works."""
        crm.require(Capability.REVOKE)
        crm.require_auth(AuthKind.OAUTH2)
        grant, _ = await crm.authorize()
        credentials = await crm.call("authenticate", crm.context(), grant=grant)
        await crm.call("revoke", crm.context(credentials))
        with pytest.raises(ReauthRequired):
            await crm.call("authenticate", crm.context(), grant=RefreshGrant(credentials=credentials))

    @covers("authenticate")
    async def test_api_key_connect(self, crm: CrmUnderTest) -> None:
        """A key from the sandbox connects and works; a wrong key is ReauthRequired."""
        crm.require_auth(AuthKind.API_KEY)
        grant = await crm.api_key_grant()
        credentials = await crm.call("authenticate", crm.context(), grant=grant)
        assert isinstance(credentials, Credentials)
        assert credentials.kind is AuthKind.API_KEY
        assert grant.api_key not in repr(credentials)
        await crm.probe(crm.context(credentials))
        with pytest.raises(ReauthRequired):
            wrong = ApiKeyGrant(api_key="kit-not-a-key-" + grant.api_key[::-1], api_base=grant.api_base)
            await crm.call("authenticate", crm.context(), grant=wrong)
