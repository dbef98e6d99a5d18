"""Zoho's data centres: where each one's accounts server and API live.

Every Zoho account lives in one data centre, and its tokens are valid there only: the code
exchange must go to the accounts server the OAuth callback names (``accounts-server``), API calls
to the ``api_domain`` of the token response. Both are checked against this table, so that a
forged callback cannot send the client secret or a token to a host that is not Zoho's.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from crmhost.errors import ReauthRequired

__all__ = [
    "DEFAULT_REGION",
    "REGIONS",
    "Region",
    "check_zoho_url",
    "origin",
    "region_for_accounts_server",
]


@dataclass(frozen=True)
class Region:
    """One data centre.

    Attributes:
        code: the ``location`` value of Zoho's OAuth callback (``us``, ``eu``...).
        accounts_server: the accounts server (authorize, token and revoke endpoints).
        api_domain: the CRM API domain of production accounts.
    """

    code: str
    accounts_server: str
    api_domain: str

    @property
    def api_hosts(self) -> frozenset[str]:
        """The production, sandbox and developer API hosts of this data centre."""
        suffix = urlsplit(self.api_domain).hostname or ""
        suffix = suffix.removeprefix("www.")
        return frozenset(f"{prefix}.{suffix}" for prefix in ("www", "sandbox", "developer"))


REGIONS: dict[str, Region] = {
    r.code: r
    for r in (
        Region("us", "https://accounts.zoho.com", "https://www.zohoapis.com"),
        Region("eu", "https://accounts.zoho.eu", "https://www.zohoapis.eu"),
        Region("in", "https://accounts.zoho.in", "https://www.zohoapis.in"),
        Region("au", "https://accounts.zoho.com.au", "https://www.zohoapis.com.au"),
        Region("jp", "https://accounts.zoho.jp", "https://www.zohoapis.jp"),
        Region("ca", "https://accounts.zohocloud.ca", "https://www.zohoapis.ca"),
        Region("cn", "https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn"),
        Region("sa", "https://accounts.zoho.sa", "https://www.zohoapis.sa"),
    )
}
DEFAULT_REGION = REGIONS["us"]


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lower-cased."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def region_for_accounts_server(url: str, location: str = "", sandbox: str | None = None) -> Region:
    """The data centre whose accounts server ``url`` is.

    Args:
        url: the callback's ``accounts-server``.
        location: the callback's ``location``.
        sandbox: the origin of the sandbox the host is configured to call instead of Zoho; a
            sandbox names itself as accounts server and API domain.

    Raises:
        ReauthRequired: ``url`` is not one of Zoho's accounts servers (nor the sandbox).
    """
    if sandbox is not None and origin(url) == sandbox:
        code = location.lower() if location.lower() in REGIONS else DEFAULT_REGION.code
        return Region(code, url.rstrip("/"), url.rstrip("/"))
    host = urlsplit(url if "://" in url else f"https://{url}").hostname
    for region in REGIONS.values():
        if urlsplit(region.accounts_server).hostname == host:
            return region
    raise ReauthRequired(f"{url!r} is not a Zoho accounts server; connect again from Zoho's consent page")


def check_zoho_url(url: str, what: str, sandbox: str | None = None) -> str:
    """``url`` without a trailing slash when it is an https URL of a Zoho API host (or the sandbox).

    Raises:
        ReauthRequired: any other URL (the token response is not trusted).
    """
    if sandbox is not None and origin(url) == sandbox:
        return url.rstrip("/")
    parts = urlsplit(url)
    hosts = frozenset().union(*(r.api_hosts for r in REGIONS.values()))
    if parts.scheme != "https" or parts.hostname not in hosts:
        raise ReauthRequired(f"Zoho's {what} {url!r} is not a Zoho API domain; it was not trusted")
    return url.rstrip("/")
