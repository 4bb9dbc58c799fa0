"""Structured logs: one JSON object per line on stderr, for every actor process.

Shape: ``{"ts": Unix seconds, "level": "INFO", "actor": name, "logger": name,
"msg": text, ...extra}``; ``exc`` holds the formatted traceback of an exception.
The supervisor sends each actor's stderr to ``<state dir>/logs/<actor>.log``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import msgspec

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_encoder = msgspec.json.Encoder()


class JsonFormatter(logging.Formatter):
    """Format a log record as one JSON line; ``extra=`` keys become fields."""

    def __init__(self, actor: str) -> None:
        super().__init__()
        self.actor = actor

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname,
            "actor": self.actor,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return _encoder.encode(out).decode("utf-8", "replace")

    def formatException(self, ei: Any) -> str:
        return super().formatException(ei)


def setup_logging(actor: str, level: int = logging.INFO, path: Path | None = None) -> None:
    """Send this process's logs as JSON lines tagged with ``actor``.

    Args:
        path: append to this file instead of stderr (created with its folder).
    """
    handler: logging.Handler
    if path is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(JsonFormatter(actor))
    root = logging.getLogger()
    for old in root.handlers:
        if isinstance(old.formatter, JsonFormatter):  # ours: close its file, if any
            old.close()
    root.handlers[:] = [handler]
    root.setLevel(level)
