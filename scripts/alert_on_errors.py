"""Example subscriber: alert on every `worker_error` and failed session of a running mesh.

Usage: python scripts/alert_on_errors.py [--state-dir DIR] [--webhook URL] [--since SEQ]
Prints one line per alert, or POSTs it as JSON ({"text": ...}) to the webhook URL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

import aiohttp

from ap_actors import Subscriber
from ap_actors.events import SessionFailed, WorkerError


async def main(state_dir: str | None, webhook: str | None, since: int) -> None:
    topics = ["worker_error", "session_failed"]
    async with aiohttp.ClientSession() as http:
        async for record in Subscriber.connect(state_dir, topics=topics, since=since):
            match record.event:
                case WorkerError(worker_id=worker, error=error):
                    text = f"[{record.seq}] worker {worker} failed: {error}"
                case SessionFailed(reason=reason, session_id=session):
                    text = f"[{record.seq}] session {session} failed: {reason}"
                case _:
                    continue
            if webhook:
                await http.post(webhook, json={"text": text}, raise_for_status=True)
            else:
                print(text, flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", default=None)
    parser.add_argument("--webhook", default=None)
    parser.add_argument("--since", type=int, default=0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.state_dir, args.webhook, args.since))
