"""Kit tests: the sandbox's fault switches map to the host's errors.

Each test flips one of the sandbox's switches (``POST /_sandbox/faults``) and makes one
authenticated call through the plugin (a pull, else a field listing, else a push), which must
raise the error the host knows how to handle.
"""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from crmhost.errors import AuthExpired, RateLimited, ReauthRequired, TransientError
from crmhost.models import AuthKind, Credentials, RefreshGrant
from crmhost.ratelimit import SlidingWindowLimiter, Slot
from crmhost.testing.contract.harness import CrmUnderTest, covers

__all__ = ["FaultContract"]


class _Ledger(SlidingWindowLimiter):
    """A limiter that keeps every slot it hands out."""

    slots: list[Slot]

    async def acquire(self, bucket: str = "default") -> Slot:
        slot = await super().acquire(bucket)
        self.slots.append(slot)
        return slot


class FaultContract:
    """401/revoked -> AuthExpired/ReauthRequired, 429 -> RateLimited, 5xx and timeouts -> TransientError."""

    @covers("authenticate")
    async def test_a_rejected_token_is_auth_expired(self, crm: CrmUnderTest) -> None:
        """An access token the CRM rejects raises AuthExpired."""
        integration = await crm.connect()
        forged = Credentials(
            kind=integration.credentials.kind,
            access_token="kit-forged-" + integration.credentials.access_token[::-1],
            refresh_token=integration.credentials.refresh_token,
            api_base=integration.credentials.api_base,
            account_id=integration.credentials.account_id,
            extra=integration.credentials.extra,
        )
        with pytest.raises(AuthExpired):
            await crm.probe(crm.context(forged))

    @covers("authenticate")
    async def test_revoked_tokens_need_reauth(self, crm: CrmUnderTest) -> None:
        """Revoked tokens raise AuthExpired on calls and ReauthRequired on refresh."""
        integration = await crm.connect()
        await crm.faults(revoked_tokens=True)
        with pytest.raises(AuthExpired):
            await crm.probe(integration.ctx)
        if AuthKind.OAUTH2 in crm.info.auth_kinds and integration.credentials.refresh_token:
            with pytest.raises(ReauthRequired):
                await crm.call(
                    "authenticate", crm.context(), grant=RefreshGrant(credentials=integration.credentials)
                )

    async def test_429_is_rate_limited_with_a_retry_after(self, crm: CrmUnderTest) -> None:
        """429s past the plugin's own pacing raise RateLimited with a retry_after."""
        integration = await crm.connect()
        await crm.rate_tier("real")
        await crm.faults(rate_limit_share=1.0)
        with pytest.raises(RateLimited) as limited:
            await crm.probe(crm.context(integration.credentials, paced=True))
        assert limited.value.retry_after > 0, "a 429 must say when to retry"

    async def test_5xx_is_transient(self, crm: CrmUnderTest) -> None:
        """5xx answers raise TransientError."""
        integration = await crm.connect()
        await crm.faults(server_error_share=1.0)
        with pytest.raises(TransientError):
            await crm.probe(integration.ctx)

    async def test_a_request_past_the_client_timeout_is_transient(self, crm: CrmUnderTest) -> None:
        """A request held past the client's timeout raises TransientError."""
        integration = await crm.connect()
        await crm.faults(timeout_share=1.0, timeout_hold_s=3.0)
        async with httpx.AsyncClient(timeout=0.5) as impatient:
            with pytest.raises(TransientError):
                await crm.probe(crm.context(integration.credentials, http=impatient))

    async def test_every_request_answers_its_limiter_slot(self, crm: CrmUnderTest) -> None:
        """Each request's limiter slot is answered once its answer or failure is back.

        A slot left pending counts the request from when it was let go, and requests held up
        after that reach the CRM closer together than the limiter let them go (crmhost.ratelimit).
        """
        integration = await crm.connect()
        ledger = _Ledger(crm.info.rate_limit)
        ledger.slots = []
        ctx = dataclasses.replace(crm.context(integration.credentials), limiter=ledger)
        await crm.probe(ctx)
        await crm.faults(server_error_share=1.0)
        with pytest.raises(TransientError):
            await crm.probe(ctx)
        assert ledger.slots, "the plugin sent its requests without the limiter"
        pending = sum(slot.pending for slot in ledger.slots)
        assert pending == 0, f"{pending} of {len(ledger.slots)} slots were never answered"
