"""What never reaches a log: contact emails and secrets, redacted in every log record.

One place for the whole process: :func:`install` wraps the logging record factory, so every
record any logger makes (ours, the plugins', httpx's request lines, uvicorn's, SQLAlchemy's)
is redacted when it is created, before any handler or formatter sees it; handlers added later
(pytest's capture, an operator's JSON shipper) get clean records too. Per-call-site care
misses the next call site; this does not.

Redacted:

- email addresses, plain or percent-encoded (``a%40b.com`` in a SOQL query string);
- tokens in URL paths (HubSpot's v1 ``/oauth/v1/access-tokens/<token>`` and
  ``/oauth/v1/refresh-tokens/<token>``) and secret query parameters (``access_token``,
  ``code``, ``client_secret``, ``hapikey``...);
- ``Bearer``/``Basic`` credentials, tenant API keys (``chk_...``);
- any value registered with :func:`register_secret` (the OAuth apps' client secrets, the
  encryption keys): a secret that turns up somewhere unexpected is still caught.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

from crmhost.errors import ConfigurationError

__all__ = ["REDACTED", "configure_logging", "install", "redact", "register_secret"]

REDACTED = "<redacted>"
EMAIL_REDACTED = "<email>"

_EMAIL = re.compile(
    r"[A-Za-z0-9._%+'-]+(?:@|%40|%2540)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    re.IGNORECASE,
)
_TOKEN_PATH = re.compile(r"(/(?:access|refresh)[-_]tokens?/)[^/?#\s\"'<>]+", re.IGNORECASE)
_SECRET_PARAM = re.compile(
    r"([?&;](?:access_token|refresh_token|id_token|token|code|code_verifier|client_secret|api_key|"
    r"apikey|hapikey|key|secret|password|signature|sig|state)=)[^&#\s\"'<>]+",
    re.IGNORECASE,
)
_AUTH_HEADER = re.compile(r"(\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]{6,}", re.IGNORECASE)
_API_KEY = re.compile(r"\bchk_[A-Za-z0-9_-]{8,}")

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: replaced whole on registration, never changed in place: logging threads iterate it unlocked
_secrets: frozenset[str] = frozenset()
_lock = threading.Lock()
#: shorter values are too likely to occur by chance (and too weak to be secrets worth hunting)
_MIN_SECRET = 8


def register_secret(value: str | None) -> None:
    """Redact ``value`` wherever it appears in a log record from now on."""
    global _secrets
    if value and len(value) >= _MIN_SECRET:
        with _lock:
            _secrets = _secrets | {value}


def redact(text: str) -> str:
    """``text`` with emails, URL-borne tokens, credentials and registered secrets replaced."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _TOKEN_PATH.sub(rf"\1{REDACTED}", text)
    text = _SECRET_PARAM.sub(rf"\1{REDACTED}", text)
    text = _AUTH_HEADER.sub(rf"\1{REDACTED}", text)
    text = _API_KEY.sub(REDACTED, text)
    return _EMAIL.sub(EMAIL_REDACTED, text)


_traceback = logging.Formatter()


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a malformed call: the handler reports it with its own error path
        return
    clean = redact(message)
    if clean != message:
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            # its formatter unpacks the arguments: redact them one by one instead
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        else:
            record.msg, record.args = clean, None
    if record.exc_info:
        text = _traceback.formatException(record.exc_info)
        clean = redact(text)
        if clean != text:  # formatters use exc_text when it is set; drop what would leak
            record.exc_text, record.exc_info = clean, None
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class _RedactingFactory:
    """A log record factory that redacts each record the wrapped factory makes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = self.inner(*args, **kwargs)
        try:
            _redact_record(record)
        except Exception as exc:  # logging must never fail the caller, nor leak on a bug here
            record.msg, record.args = f"<log record withheld: redaction failed ({type(exc).__name__})>", None
            record.exc_info = record.exc_text = record.stack_info = None
        return record


def install() -> None:
    """Redact every log record of this process from now on (idempotent)."""
    with _lock:
        current = logging.getLogRecordFactory()
        if not isinstance(current, _RedactingFactory):
            logging.setLogRecordFactory(_RedactingFactory(current))


def configure_logging(level: str = "INFO") -> None:
    """The CLI's logging: one line per record on stderr at ``level``, redacted.

    SQLAlchemy's and alembic's loggers stay at WARNING whatever ``level`` is: at INFO and
    below they print every statement and result row, which is the contact store itself.

    Raises:
        ConfigurationError: ``level`` is not a logging level name.
    """
    name = level.strip().upper()
    if name not in _LEVELS:
        raise ConfigurationError(f"CRMHOST_LOG_LEVEL must be one of {', '.join(_LEVELS)}, not {level!r}")
    install()
    logging.basicConfig(level=name, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    for noisy in ("alembic", "sqlalchemy", "aiosqlite"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
