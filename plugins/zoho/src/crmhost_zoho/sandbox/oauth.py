"""Zoho Accounts in the sandbox: the multi-DC callback, Zoho's token answers and its token caps.

The consent redirect carries ``location`` and ``accounts-server`` beside the code, as Zoho's
multi-DC flow does. A refresh token mints at most 10 access tokens in 10 minutes (then Zoho
answers ``Access Denied``), and a user keeps at most 20 refresh tokens per client: a 21st
consent silently revokes the oldest.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from crmhost.sandbox import IssuedTokens, OAuthError, OAuthServer

__all__ = ["ACCESS_PER_WINDOW", "REFRESH_TOKENS_PER_USER", "ZohoAccounts"]

#: access tokens one refresh token may mint per window
ACCESS_PER_WINDOW = 10
ACCESS_WINDOW_S = 600.0
#: refresh tokens a user keeps per client
REFRESH_TOKENS_PER_USER = 20


class ZohoAccounts(OAuthServer):
    """The sandbox's accounts server for one data centre.

    Args:
        location: the data centre's code (``us``, ``eu``...), sent back on the callback.
        accounts_server: its accounts server URL (asked when a callback is sent back).
        **kwargs: as :class:`OAuthServer` takes them.
    """

    def __init__(
        self,
        *,
        location: str,
        accounts_server: Callable[[], str],
        clock: Callable[[], float] = time.time,
        **kwargs: Any,
    ) -> None:
        super().__init__(clock=clock, **kwargs)
        self.location = location
        self.accounts_server = accounts_server
        self._minted: dict[str, deque[float]] = {}
        self._user_refresh: deque[str] = deque()

    def decide(self, params: Mapping[str, str]) -> str:
        """The consent redirect, with ``location`` and ``accounts-server`` when it carries a code."""
        location = super().decide(params)
        if "code=" in location:
            location += "&" + urlencode(
                {"location": self.location, "accounts-server": self.accounts_server()}
            )
        return location

    def exchange_code(self, **kwargs: Any) -> IssuedTokens:
        """The code grant; the user's 21st refresh token revokes the oldest."""
        tokens = super().exchange_code(**kwargs)
        self._user_refresh.append(tokens.refresh_token)
        while len(self._user_refresh) > REFRESH_TOKENS_PER_USER:
            self.revoke(self._user_refresh.popleft())
        return tokens

    def refresh(
        self, *, client_id: str | None, client_secret: str | None, refresh_token: str | None
    ) -> IssuedTokens:
        """The refresh grant, at most 10 access tokens per refresh token in 10 minutes."""
        now = self.clock()
        minted = self._minted.setdefault(refresh_token or "", deque())
        while minted and now - minted[0] >= ACCESS_WINDOW_S:
            minted.popleft()
        if refresh_token and len(minted) >= ACCESS_PER_WINDOW:
            raise OAuthError(
                "Access Denied",
                "You have made too many requests continuously. Please try again after some time.",
                status=400,
            )
        tokens = super().refresh(
            client_id=client_id, client_secret=client_secret, refresh_token=refresh_token
        )
        minted.append(now)
        return tokens
