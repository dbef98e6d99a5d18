"""Fault switches: the share of requests a sandbox answers with a 429, a 5xx or a hang."""

from __future__ import annotations

import enum
import random

import msgspec

__all__ = ["Fault", "FaultInjector", "FaultSwitches"]


class Fault(enum.StrEnum):
    """What the injector decided for one API request."""

    NONE = "none"
    RATE_LIMIT = "rate_limit"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"


class FaultSwitches(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The switches ``POST /_sandbox/faults`` sets.

    Attributes:
        rate_limit_share: share (0..1) of API requests answered with the CRM's 429.
        server_error_share: share of API requests answered with a 5xx.
        server_error_status: the status used for injected 5xx answers.
        timeout_share: share of API requests held ``timeout_hold_s`` before a 504, so that a
            client with a shorter timeout gives up first.
        timeout_hold_s: how long a "timed out" request is held.
        revoked_tokens: while true every access token is rejected as revoked and every refresh
            fails with ``invalid_grant``.
        latency_ms: added to every API request.
        seed: seeds the draws, so a run with the same switches and requests is repeatable.
    """

    rate_limit_share: float = 0.0
    server_error_share: float = 0.0
    server_error_status: int = 503
    timeout_share: float = 0.0
    timeout_hold_s: float = 30.0
    revoked_tokens: bool = False
    latency_ms: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("rate_limit_share", "server_error_share", "timeout_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.rate_limit_share + self.server_error_share + self.timeout_share > 1.0:
            raise ValueError("the shares of 429s, 5xx and timeouts add up to more than 1")
        if not 500 <= self.server_error_status <= 599:
            raise ValueError(f"server_error_status must be a 5xx status, got {self.server_error_status}")
        if self.latency_ms < 0 or self.timeout_hold_s < 0:
            raise ValueError("latency_ms and timeout_hold_s must not be negative")


class FaultInjector:
    """Draws a :class:`Fault` per API request from the current switches, deterministically."""

    def __init__(self, switches: FaultSwitches | None = None) -> None:
        self.switches = FaultSwitches()
        self._random = random.Random(0)  # noqa: S311 - fault draws, not secrets
        self.set(switches or FaultSwitches())

    def set(self, switches: FaultSwitches) -> None:
        """Replace the switches and restart the draws from their seed."""
        self.switches = switches
        self._random = random.Random(switches.seed)  # noqa: S311

    def update(self, changes: dict[str, object]) -> FaultSwitches:
        """Change some switches (the others keep their values); raises on bad values."""
        merged = {**msgspec.structs.asdict(self.switches), **changes}
        switches = msgspec.convert(merged, FaultSwitches)
        self.set(switches)
        return switches

    def draw(self) -> Fault:
        """The fault for the next API request."""
        s = self.switches
        if not (s.rate_limit_share or s.server_error_share or s.timeout_share):
            return Fault.NONE
        r = self._random.random()
        if r < s.rate_limit_share:
            return Fault.RATE_LIMIT
        r -= s.rate_limit_share
        if r < s.server_error_share:
            return Fault.SERVER_ERROR
        r -= s.server_error_share
        if r < s.timeout_share:
            return Fault.TIMEOUT
        return Fault.NONE
