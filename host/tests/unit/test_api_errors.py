"""The API's error handlers, on an app of their own: the JSON shape and status of each class."""

from __future__ import annotations

from litestar import Litestar, get
from litestar.testing import TestClient
from sqlalchemy.exc import TimeoutError as PoolTimeout

from crmhost.api.errors import BUSY_RETRY_AFTER_S, EXCEPTION_HANDLERS


@get("/busy", sync_to_thread=False)
def _busy() -> None:
    raise PoolTimeout("QueuePool limit of size 10 overflow 10 reached, connection timed out, timeout 30.00")


@get("/broken", sync_to_thread=False)
def _broken() -> None:
    raise RuntimeError("secret internals")


def test_no_free_database_connection_is_a_503_to_retry_not_a_500() -> None:
    with TestClient(Litestar([_busy, _broken], exception_handlers=EXCEPTION_HANDLERS)) as client:
        busy = client.get("/busy")
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == str(BUSY_RETRY_AFTER_S)
        assert busy.json()["detail"].startswith("the service is busy")
        assert "QueuePool" not in busy.text  # no internals
        broken = client.get("/broken")
        assert broken.status_code == 500 and "secret" not in broken.text
