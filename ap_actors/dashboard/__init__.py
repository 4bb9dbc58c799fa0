"""The dashboard server: REST API, WebSocket stream and the static web page.

Served by the broadcaster actor (:mod:`ap_actors.actors.broadcaster`) with aiohttp:
:mod:`.api` (REST), :mod:`.ws` (the event stream), :mod:`.clients` (catch-up and the
slow-client policy), :mod:`.auth` (bind policy, token, Origin), :mod:`.metrics`
(Prometheus). The page itself is plain HTML, CSS and JavaScript modules in ``web/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler

from ap_actors.dashboard import api, ws
from ap_actors.dashboard.auth import make_auth_middleware

if TYPE_CHECKING:
    from ap_actors.actors.broadcaster import Broadcaster


@web.middleware
async def _static_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A static path the filesystem refuses (ENAMETOOLONG, ELOOP ...) is not found.

    aiohttp's static route lets such an ``OSError`` escape from its ``stat`` (a 500).
    """
    try:
        return await handler(request)
    except OSError as e:
        if not request.path.startswith("/static/"):
            raise
        raise web.HTTPNotFound(text="no such file") from e


WEB_DIR = Path(__file__).resolve().parents[2] / "web"
"""The page's files: ``web/`` at the root of the source tree."""


def make_app(
    b: Broadcaster, *, token: str | None, web_dir: Path = WEB_DIR, bind_host: str = "127.0.0.1"
) -> web.Application:
    """Return the aiohttp application of broadcaster ``b``.

    ``/`` serves ``web_dir/index.html`` and ``/static/`` the rest of ``web_dir`` (no path
    can leave it: aiohttp resolves and checks every static path, symlinks not followed).
    """
    app = web.Application(middlewares=[make_auth_middleware(token, bind_host), _static_errors])
    api.add_routes(app, b)
    ws.add_routes(app, b)

    async def index(request: web.Request) -> web.StreamResponse:
        page = web_dir / "index.html"
        if not page.is_file():
            raise web.HTTPNotFound(text=f"the dashboard page is missing: {page}")
        return web.FileResponse(page, headers={"Cache-Control": "no-cache"})

    app.router.add_get("/", index)
    if web_dir.is_dir():
        app.router.add_static("/static/", web_dir, follow_symlinks=False)
    return app
