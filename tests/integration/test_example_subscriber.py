"""The example subscriber in scripts/ works against a running mesh."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

from aiohttp import web

from tests.integration.conftest import REPO, _env

SCRIPT = str(REPO / "scripts" / "alert_on_errors.py")


def test_the_example_subscriber_prints_an_alert_for_a_worker_error(mesh_factory: Any) -> None:
    mesh = mesh_factory()
    mesh.up()
    mesh.ap("emit", json.dumps({"type": "worker_activity", "worker_id": "w1"}))
    error = {"type": "worker_error", "worker_id": "w1", "error": "disk full"}
    seq = int(mesh.ap("emit", json.dumps(error)).stdout)
    proc = subprocess.Popen(
        [sys.executable, SCRIPT, "--state-dir", str(mesh.state_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"[{seq}] worker w1 failed: disk full"
        failed = {"type": "session_failed", "session_id": "s7", "reason": "merge conflict"}
        seq = int(mesh.ap("emit", json.dumps(failed)).stdout)
        assert proc.stdout.readline().strip() == f"[{seq}] session s7 failed: merge conflict"
    finally:
        proc.terminate()
        proc.communicate(timeout=20)


async def test_the_example_subscriber_posts_alerts_to_a_webhook(mesh_factory: Any) -> None:
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        await received.put(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    mesh = mesh_factory()
    mesh.up()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        SCRIPT,
        "--state-dir",
        str(mesh.state_dir),
        "--webhook",
        f"http://127.0.0.1:{port}/hook",
        env=_env(),
    )
    try:
        error = {"type": "worker_error", "worker_id": "w2", "error": "oom"}
        emitted = await asyncio.to_thread(mesh.ap, "emit", json.dumps(error))
        alert = await asyncio.wait_for(received.get(), 30)
        assert alert == {"text": f"[{int(emitted.stdout)}] worker w2 failed: oom"}
    finally:
        proc.terminate()
        await proc.wait()
        await runner.cleanup()
