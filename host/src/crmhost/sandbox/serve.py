"""Serving a sandbox with uvicorn: in a background thread for tests, or in the foreground."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

__all__ = ["running", "serve"]


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self._on_ready is not None and self.started:
            self._on_ready()


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _config(app: Any) -> uvicorn.Config:
    # held (timed-out) requests must not keep a stopping server alive for long. Idle connections
    # stay open 75 s, as the CRMs' load balancers keep them (60 s and more): with uvicorn's 5 s,
    # the same as httpx's keep-alive expiry, a client could reuse a connection the sandbox was
    # closing that moment and get a ReadError (a 100,000-person seed in bench/run.py did)
    return uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=1,
        timeout_keep_alive=75,
    )


@contextmanager
def running(app: Any, *, host: str = "127.0.0.1") -> Iterator[str]:
    """Run ``app`` on a free port of ``host`` in a background thread; yields its base URL.

    The server is stopped, and the thread joined, when the block ends.
    """
    sock = _bind(host, 0)
    port = sock.getsockname()[1]
    server = _Server(_config(app))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{port}", daemon=True
    )
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"the server on {host}:{port} failed to start")
            time.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def serve(
    app: Any, host: str = "127.0.0.1", port: int = 0, *, on_ready: Callable[[str], None] | None = None
) -> None:
    """Serve ``app`` in the foreground until interrupted; ``on_ready`` gets the base URL once it listens."""
    sock = _bind(host, port)
    url = f"http://{host}:{sock.getsockname()[1]}"
    server = _Server(_config(app), on_ready=(lambda: on_ready(url)) if on_ready else None)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
