"""The host's configuration, read once from the environment.

Everything has an embedded default so that ``crmhost serve`` runs with nothing installed:
SQLite in the data directory, in-process jobs, a generated encryption key kept beside it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from crmhost.context import ProviderApp
from crmhost.errors import ConfigurationError

__all__ = ["Settings", "load_settings"]


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Host configuration.

    Attributes:
        data_dir: where the embedded default keeps its SQLite file and generated key
            (``CRMHOST_DATA_DIR``, default ``./var``).
        database_url: SQLAlchemy async URL (``CRMHOST_DATABASE_URL``); ``sqlite+aiosqlite``
            in ``data_dir`` by default, ``postgresql+asyncpg://...`` in production.
        redis_url: arq's Redis (``CRMHOST_REDIS_URL``); unset runs jobs in-process.
        encryption_keys: ``CRMHOST_ENCRYPTION_KEYS``, comma-separated ``kid:base64key``; the first
            encrypts, all decrypt. Unset: the embedded default's generated key.
        public_url: the host's external base URL (``CRMHOST_PUBLIC_URL``), used to build the
            OAuth redirect URI and webhook URLs.
        providers: each CRM's OAuth app, from ``CRMHOST_<SLUG>_CLIENT_ID``, ``..._CLIENT_SECRET``
            and ``..._BASE_URL`` (a sandbox's base URL replacing the CRM's hosts).
        refresh_margin_s: refresh access tokens this long before they expire.
        pace_requests: pace CRM calls client-side by each account's published rate limits
            (``CRMHOST_PACE_REQUESTS``, ``on`` by default). ``off`` leaves pacing to the CRM's
            429s alone: for sandboxes and benchmarks with their limits off, never for a real CRM.
        notify_allow: networks (``10.1.2.0/24``) and host names that platform notifications may
            go to although they are not public (``CRMHOST_NOTIFY_ALLOW``, comma-separated;
            empty by default: only public addresses, see :mod:`crmhost.sync.notify_target`).
    """

    data_dir: Path
    database_url: str
    redis_url: str | None = None
    encryption_keys: str | None = field(default=None, repr=False)
    public_url: str = "http://127.0.0.1:8000"
    providers: dict[str, ProviderApp] = field(default_factory=dict)
    refresh_margin_s: float = 300.0
    log_level: str = "INFO"
    pace_requests: bool = True
    notify_allow: tuple[str, ...] = ()

    @property
    def embedded(self) -> bool:
        """Whether this is the embedded default (SQLite)."""
        return self.database_url.startswith("sqlite")

    def prepare(self) -> None:
        """Create the data directory the embedded default keeps its files in (mode 0700).

        It holds the contact store and the generated encryption key: owner-only. A directory
        that already exists keeps its mode (an operator may have chosen it).
        """
        if self.embedded:
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    @property
    def redirect_uri(self) -> str:
        """The OAuth callback URL registered with every CRM."""
        return self.public_url.rstrip("/") + "/v1/oauth/callback"

    def provider(self, slug: str) -> ProviderApp:
        """The OAuth app for ``slug`` (empty client when unconfigured: API-key connects only)."""
        app = self.providers.get(slug)
        if app is None:
            return ProviderApp(redirect_uri=self.redirect_uri)
        return app


_SWITCH = dict.fromkeys(("on", "true", "1", "yes"), True) | dict.fromkeys(("off", "false", "0", "no"), False)


def _providers(env: dict[str, str], redirect_uri: str) -> dict[str, ProviderApp]:
    slugs = set()
    for key in env:
        if key.startswith("CRMHOST_") and key.endswith(("_CLIENT_ID", "_BASE_URL")):
            middle = key[len("CRMHOST_") :].rsplit("_", 2)[0]
            if middle:
                slugs.add(middle)
    out = {}
    for upper in slugs:
        slug = upper.lower()
        out[slug] = ProviderApp(
            client_id=env.get(f"CRMHOST_{upper}_CLIENT_ID", ""),
            client_secret=env.get(f"CRMHOST_{upper}_CLIENT_SECRET", ""),
            redirect_uri=env.get(f"CRMHOST_{upper}_REDIRECT_URI", redirect_uri),
            base_url=env.get(f"CRMHOST_{upper}_BASE_URL") or None,
        )
    return out


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Settings from ``env`` (the process environment by default).

    Raises:
        ConfigurationError: a value is malformed; the message names the variable.
    """
    env = dict(os.environ if env is None else env)
    data_dir = Path(env.get("CRMHOST_DATA_DIR", "var")).resolve()
    database_url = env.get("CRMHOST_DATABASE_URL") or f"sqlite+aiosqlite:///{data_dir / 'crmhost.db'}"
    if database_url.startswith("postgresql://") or database_url.startswith("postgres://"):
        database_url = "postgresql+asyncpg://" + database_url.split("://", 1)[1]
    if not database_url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ConfigurationError(
            "CRMHOST_DATABASE_URL must be sqlite+aiosqlite:///PATH or postgresql+asyncpg://..."
        )
    public_url = env.get("CRMHOST_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
    try:
        margin = float(env.get("CRMHOST_REFRESH_MARGIN_S", "300"))
    except ValueError as exc:
        raise ConfigurationError("CRMHOST_REFRESH_MARGIN_S must be a number of seconds") from exc
    redirect_uri = public_url + "/v1/oauth/callback"
    pace = env.get("CRMHOST_PACE_REQUESTS", "on").strip().lower()
    if pace not in _SWITCH:
        raise ConfigurationError(f"CRMHOST_PACE_REQUESTS must be on or off, not {pace!r}")
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        redis_url=env.get("CRMHOST_REDIS_URL") or None,
        encryption_keys=env.get("CRMHOST_ENCRYPTION_KEYS") or None,
        public_url=public_url,
        providers=_providers(env, redirect_uri),
        refresh_margin_s=margin,
        log_level=env.get("CRMHOST_LOG_LEVEL", "INFO"),
        pace_requests=_SWITCH[pace],
        notify_allow=tuple(e.strip() for e in env.get("CRMHOST_NOTIFY_ALLOW", "").split(",") if e.strip()),
    )
