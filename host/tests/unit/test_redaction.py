"""Log redaction: emails, URL-borne tokens and registered secrets never leave a log record."""

from __future__ import annotations

import logging

import pytest

from crmhost.errors import ConfigurationError
from crmhost.redaction import configure_logging, install, redact, register_secret

TOKEN = "CJSP5qf1KhICAQEYs-gDIIGOBii1hQIyGQAf3xBKmlwHjX7OIpuIFEavB2-qYAGQsF4"


@pytest.mark.parametrize(
    ("line", "gone", "kept"),
    [
        # HubSpot's v1 token metadata and revoke put the token in the path
        (f"HTTP Request: GET http://h/oauth/v1/access-tokens/{TOKEN} 200", TOKEN, "/oauth/v1/access-tokens/"),
        (f"HTTP Request: DELETE http://h/oauth/v1/refresh-tokens/{TOKEN} 204", TOKEN, "refresh-tokens/"),
        (
            "GET /crm/v3/objects/contacts/Ada.Lovelace+x@Example.COM?idProperty=email",
            "Lovelace",
            "idProperty",
        ),
        ("/automation/v2/workflows/w1/enrollments/contacts/ada%40example.com", "ada", "/enrollments/"),
        ("q=SELECT+Id+FROM+Contact+WHERE+Email+IN+(%27ada%2Bx%40example.com%27)", "example.com", "SELECT"),
        ("callback?code=abc123xyz&state=t.i.nonce", "abc123xyz", "callback?code="),
        ("https://h/v1?hapikey=secret-key-123", "secret-key-123", "hapikey="),
        ("Authorization: Bearer pat-na1-11112222-3333", "pat-na1", "Bearer"),
        ("tenant key chk_AbCdEfGhIjKlMnOp was refused", "chk_AbCd", "was refused"),
    ],
)
def test_redact(line: str, gone: str, kept: str) -> None:
    out = redact(line)
    assert gone not in out and kept in out, out


def test_registered_secrets_are_redacted_anywhere() -> None:
    register_secret("s3cr3t-client-value")
    register_secret("short")  # too short to hunt for: left alone
    assert redact("client_secret s3cr3t-client-value; short") == "client_secret <redacted>; short"


def test_every_record_is_redacted_whatever_the_handler(caplog: pytest.LogCaptureFixture) -> None:
    install()
    install()  # idempotent: one wrapper
    log = logging.getLogger("crmhost.test.redaction")
    with caplog.at_level(logging.DEBUG):
        log.debug("pushing %s to %s", "ada@example.com", f"/oauth/v1/access-tokens/{TOKEN}")
        try:
            raise ValueError(f"no contact bob@example.com at /oauth/v1/refresh-tokens/{TOKEN}")
        except ValueError:
            log.exception("push failed")
    text = caplog.text
    assert "example.com" not in text and TOKEN not in text, text
    assert "pushing <email> to /oauth/v1/access-tokens/<redacted>" in text
    assert "ValueError: no contact <email>" in text  # the traceback is kept, redacted


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_uvicorn_access_records_keep_their_arguments() -> None:
    # uvicorn's access formatter unpacks the arguments, so they are redacted one by one
    install()
    access = logging.getLogger("uvicorn.access")  # uvicorn may have set propagate off: a handler of its own
    keep = _Keep()
    access.addHandler(keep)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1", "GET", "/v1/contacts/ada@example.com", "1.1", 200)
    finally:
        access.removeHandler(keep)
        access.setLevel(level)
    [record] = keep.records
    assert isinstance(record.args, tuple) and record.args[2] == "/v1/contacts/<email>"


def test_log_level_must_be_a_level_name() -> None:
    with pytest.raises(ConfigurationError, match="CRMHOST_LOG_LEVEL must be one of DEBUG"):
        configure_logging("chatty")
