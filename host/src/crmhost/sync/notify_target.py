"""Where platform notifications may go: public http(s) addresses only (no SSRF).

A tenant sets the notification URL, and the host POSTs to it from inside the deployment, so an
unchecked URL would let any tenant make the host call its own internals (``127.0.0.1``, the
database, the cloud metadata service at ``169.254.169.254``). A target must be ``http`` or
``https`` without credentials, and every address its name resolves to must be globally
routable: loopback, private, link-local (metadata), shared (CGNAT), multicast, reserved and
unspecified addresses are refused, IPv4-mapped IPv6 included. The check runs when the URL is
set and again at every send, where the connection then goes to the very address that was
checked (the ``Host`` header and TLS server name stay the URL's), so a name that re-resolves
elsewhere between check and connect (DNS rebinding) gains nothing.

Self-hosters whose platform receives notifications on an internal address list it in
``CRMHOST_NOTIFY_ALLOW`` (comma-separated networks such as ``10.1.2.0/24`` or host names such
as ``hooks.internal``); :data:`Settings.notify_allow` holds it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit, urlunsplit

__all__ = ["MAX_URL", "Target", "UnsafeTarget", "check_url", "resolve_target"]

MAX_URL = 2000
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class UnsafeTarget(Exception):
    """The URL may not receive notifications; ``message`` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Target:
    """A checked target: the URL to connect to (its host the checked address) and what to send.

    Attributes:
        url: the URL with its host replaced by the checked address.
        host_header: the original ``host[:port]``, sent as ``Host``.
        server_name: the original host name, for TLS SNI and certificate checks (https only).
    """

    url: str
    host_header: str
    server_name: str | None


def check_url(url: str) -> SplitResult:
    """The parts of ``url`` when its form is acceptable (scheme, host, no credentials, length).

    Raises:
        UnsafeTarget: what is wrong with it.
    """
    if len(url) > MAX_URL:
        raise UnsafeTarget(f"the URL is longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeTarget(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeTarget("only http and https URLs receive notifications")
    if not parts.hostname:
        raise UnsafeTarget("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeTarget("the URL must not carry credentials (sign with the secret instead)")
    if port == 0:
        raise UnsafeTarget("port 0 is not a port")
    return parts


def _allowed(allow: Sequence[str]) -> tuple[set[str], list[_Network]]:
    names: set[str] = set()
    networks: list[_Network] = []
    for entry in allow:
        entry = entry.strip().lower()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry.rstrip("."))
    return names, networks


def _public(address: _Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


async def _addresses(host: str, port: int) -> list[_Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: dict[_Address, None] = {}
    for info in infos:
        found[ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])] = None
    return list(found)


async def resolve_target(
    url: str, allow: Sequence[str] = (), *, unresolvable_ok: bool = False
) -> Target | None:
    """Check ``url`` and every address it resolves to; the :class:`Target` to connect to.

    Args:
        url: the notification URL.
        allow: ``CRMHOST_NOTIFY_ALLOW`` entries (networks or host names exempt from the check).
        unresolvable_ok: answer ``None`` instead of raising when the name does not resolve
            (when the URL is set: DNS may be down, and every send checks again).

    Raises:
        UnsafeTarget: the URL's form is wrong, its name does not resolve, or an address it
            resolves to is not public and not allowed.
    """
    parts = check_url(url)
    host = str(parts.hostname).rstrip(".").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    names, networks = _allowed(allow)
    try:
        addresses = await _addresses(host, port)
    except (OSError, UnicodeError) as exc:
        if unresolvable_ok:
            return None
        raise UnsafeTarget(f"{host} does not resolve: {exc}") from None
    if not addresses:
        raise UnsafeTarget(f"{host} does not resolve")
    if host not in names:
        for address in addresses:
            if not _public(address) and not any(address in net for net in networks):
                raise UnsafeTarget(
                    f"{host} resolves to {address}, which is not a public address; "
                    "an operator may allow it with CRMHOST_NOTIFY_ALLOW"
                )
    chosen = addresses[0]
    literal = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = parts.netloc.rsplit("@", 1)[-1]
    return Target(url=pinned, host_header=host_header, server_name=host if parts.scheme == "https" else None)
