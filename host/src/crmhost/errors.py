"""The errors a plugin raises, and what the host does with each.

Plugins raise these (never httpx or SDK exceptions) so that the host can turn them into
retries, integration states and HTTP status codes in one place.
"""

from __future__ import annotations

__all__ = [
    "AuthExpired",
    "ConfigurationError",
    "CrmError",
    "PermanentError",
    "PluginLoadError",
    "RateLimited",
    "ReauthRequired",
    "TransientError",
    "Unsupported",
    "WebhookRejected",
]


class CrmError(Exception):
    """Base class of every error a plugin may raise towards the host."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AuthExpired(CrmError):
    """The CRM rejected the access token.

    The host refreshes the credentials once and retries the call; a second rejection moves
    the integration to ``needs_reauth``.
    """


class ReauthRequired(AuthExpired):
    """The credentials cannot be refreshed (``invalid_grant``, revoked, app uninstalled).

    The host moves the integration to ``needs_reauth`` with ``message`` as the reason.
    """


class RateLimited(CrmError):
    """The CRM asked us to slow down (429, or a spent daily allocation).

    Args:
        message: what the CRM said.
        retry_after: seconds until a retry may succeed.
        scope: which budget ran out, e.g. ``"burst"``, ``"daily"``, ``"search"``.
    """

    def __init__(self, message: str, *, retry_after: float, scope: str = "burst") -> None:
        super().__init__(message)
        self.retry_after = max(0.0, retry_after)
        self.scope = scope


class TransientError(CrmError):
    """A failure that may pass: 5xx, timeouts, connection resets. The host retries with backoff."""


class PermanentError(CrmError):
    """A failure that retrying will not fix (validation, missing field, bad request).

    Args:
        message: what is wrong, in the CRM's words where it gave any.
        code: the CRM's error code, e.g. ``INVALID_EMAIL`` or ``DUPLICATES_DETECTED``.
        field: the field the CRM blamed, when it named one.
    """

    def __init__(self, message: str, *, code: str = "", field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


class WebhookRejected(CrmError):
    """A webhook failed verification (bad or stale signature, wrong account, replay).

    Args:
        message: why it was rejected (never echoes a secret).
        status: the HTTP status the host answers with.
    """

    def __init__(self, message: str, *, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


class Unsupported(CrmError):
    """The CRM, or this plugin, cannot do what was asked (e.g. timeline events for private apps)."""


class ConfigurationError(Exception):
    """The host's own configuration is wrong (a missing key, a bad URL). Says which setting."""


class PluginLoadError(Exception):
    """A plugin failed validation at load time. The host logs it and skips the plugin."""
