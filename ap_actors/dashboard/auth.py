"""Who may use the dashboard: the bind policy, the token and the WebSocket Origin.

- The dashboard binds ``127.0.0.1`` by default (``[mesh] dashboard`` in ap.toml). Any
  other address needs a token in ``$AP_TOKEN``; without one the broadcaster refuses to
  start (:func:`check_bind`).
- With a token set, ``/api/*``, ``/metrics`` and ``/ws`` need it: the HTTP header
  ``Authorization: Bearer <token>`` or, for the WebSocket (browsers cannot set headers
  on it), the query parameter ``token``. A wrong or missing token gets 401 and nothing
  else. The page and its static files need none: they hold no data.
- A WebSocket opened from a web page must come from the dashboard's own origin: the
  ``Origin`` header, when present, must name the host and port the request was sent to
  (403 otherwise), so another site open in the owner's browser cannot read the stream.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from ap_actors.errors import StartupError

TOKEN_ENV = "AP_TOKEN"
PROTECTED = ("/api/", "/ws", "/metrics")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback bind without a token.

    Raises:
        StartupError: ``host`` is not loopback and ``token`` is empty.
    """
    if not is_loopback(host) and not token:
        raise StartupError(
            f"the dashboard would listen on {host}, beyond this machine, without a token;"
            f" set {TOKEN_ENV} (a long random string) or bind 127.0.0.1"
        )


def _presented(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer ") :].strip()
    return request.query.get("token", "")


def make_auth_middleware(
    token: str | None,
) -> Middleware:
    """Return the middleware that checks the token and the WebSocket Origin."""

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if (
            token
            and path.startswith(PROTECTED)
            and not hmac.compare_digest(_presented(request).encode(), token.encode())
        ):
            raise web.HTTPUnauthorized(
                text='{"error": "a valid token is required (Authorization: Bearer ...)"}',
                content_type="application/json",
            )
        if path == "/ws":
            origin = request.headers.get("Origin")
            if origin and urlsplit(origin).netloc != request.host:
                raise web.HTTPForbidden(
                    text='{"error": "cross-origin WebSocket refused"}',
                    content_type="application/json",
                )
        return await handler(request)

    return auth
