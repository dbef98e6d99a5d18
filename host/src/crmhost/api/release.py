"""What a request decoded is let go once its response is sent, not when its connection ends."""

from __future__ import annotations

from litestar import Litestar
from litestar.types import ASGIApp, Receive, Scope, Send

__all__ = ["ReleaseRequestMiddleware", "release_requests"]


class ReleaseRequestMiddleware:
    """Empties a request's ``scope["state"]`` once the app is done with the request.

    Litestar keeps a request's body and its decoded JSON in ``scope["state"]``, and an HTTP/1.1
    server keeps the scope of a connection's last request until the next one comes (uvicorn's
    protocol holds its request cycle). So every idle keep-alive connection held its last upload:
    about 0.5 MB for 1,000 contacts, and ``crmhost serve`` grew by that much per connection a
    client kept open (200 tenants' platform clients: 130 to 243 MB). Each request gets its own
    state dict from the server (a copy of the lifespan state), so nothing else shares this one.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app, then drop the request's state whether it answered or raised."""
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["type"] in ("http", "websocket"):
                scope["state"] = {}


def release_requests(app: Litestar) -> None:
    """Put :class:`ReleaseRequestMiddleware` around all of ``app``, its exception handling included.

    Not as one of the app's middleware: those run inside Litestar's outermost exception handler,
    which still reads the request's state when a middleware (the CSRF check) raises.
    """
    app.asgi_handler = ReleaseRequestMiddleware(app.asgi_handler)
