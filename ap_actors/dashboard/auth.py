"""Who may use the dashboard: the bind policy, the token and the WebSocket Origin.

- The dashboard binds ``127.0.0.1`` by default (``[mesh] dashboard`` in ap.toml). Any
  other address needs a token in ``$AP_TOKEN``; without one the broadcaster refuses to
  start (:func:`check_bind`).
- With a token set, every path but the page (``/``) and its static files
  (``/static/...``), which hold no data, needs it: ``/api/*``, ``/metrics``, ``/ws``,
  and any other path, so that a route added later is protected too and a client without
  the token cannot even tell which paths exist. It is sent as the HTTP header
  ``Authorization: Bearer <token>`` or, for the WebSocket (browsers cannot set headers
  on it), the query parameter ``token``. A wrong or missing token gets 401 and one
  fixed line, the same for every path: no data, no hint of what exists. The token is
  read when the broadcaster starts; after a change, restart it (``ap down``/``ap up``)
  and the old token is refused.
- A WebSocket opened from a web page must come from the dashboard's own origin: the
  ``Origin`` header, when present, must name the host and port the request was sent to
  (403 otherwise), so another site open in the owner's browser cannot read the stream.
- A request that changes something (POST) with an ``Origin`` must come from the same
  origin too (403 otherwise): browsers send ``Origin`` on every cross-origin POST, so a
  form or a fetch from another site cannot approve, cancel or submit for the owner.
- A dashboard bound to loopback answers only requests whose ``Host`` is a loopback name
  (421 otherwise), which closes DNS rebinding.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from ap_actors.errors import StartupError

TOKEN_ENV = "AP_TOKEN"
PUBLIC_PREFIX = "/static/"  # with "/": the page and its files, which need no token

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


def make_auth_middleware(token: str | None, bind_host: str = "127.0.0.1") -> Middleware:
    """Return the middleware that checks the Host, the token and the Origin."""
    loopback_only = is_loopback(bind_host)

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        host = urlsplit(f"//{request.host}").hostname or ""
        if loopback_only and not is_loopback(host):
            # A loopback server answers loopback names only: no DNS rebinding.
            raise _refuse(web.HTTPMisdirectedRequest, f"unexpected Host {request.host!r}")
        if (
            token
            and path != "/"
            and not path.startswith(PUBLIC_PREFIX)
            and not hmac.compare_digest(_presented(request).encode(), token.encode())
        ):
            raise _refuse(
                web.HTTPUnauthorized, "a valid token is required (Authorization: Bearer ...)"
            )
        origin = request.headers.get("Origin")
        cross_origin = bool(origin) and urlsplit(origin).netloc != request.host
        if path == "/ws" and cross_origin:
            raise _refuse(web.HTTPForbidden, "cross-origin WebSocket refused")
        if request.method not in ("GET", "HEAD", "OPTIONS") and cross_origin:
            # No other site may act for the owner (browsers send Origin on every
            # cross-origin POST, whatever its content type).
            raise _refuse(web.HTTPForbidden, "cross-origin request refused")
        return await handler(request)

    return auth


def _refuse(status: type[web.HTTPException], message: str) -> web.HTTPException:
    return status(text=json.dumps({"error": message}), content_type="application/json")
