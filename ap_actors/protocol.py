"""The public wire protocol of the journal's three ZeroMQ endpoints.

Source: ``DESIGN.md``, "Wire protocol"; README.md, "Attach your own subscriber".

ingest (ROUTER; clients use DEALER or REQ)
    request ``[b"append", msgpack([event map, ...])]``
    reply   ``[b"ok", msgpack([seq, ...])]`` (same order; a duplicate id gets its
    original seq) or ``[b"error", msgpack({"code", "message", "index"})]``, in which
    case nothing of the batch was appended.
    request ``[b"endpoints"]`` (an addition to DESIGN.md, for ``ap worker --connect``)
    reply   ``[b"endpoints", msgpack({"ingest": URL, "bus": URL, "replay": URL})]``: the
    endpoints the journal bound, concrete ports included; a wildcard host
    (``0.0.0.0``, ``*``) stands for whatever address the client reached it on.
    Answered in order with the append replies of the same client.
bus (PUB)
    ``[topic, seq as 8-byte big-endian unsigned, msgpack(record)]``; topic = event tag.
replay (ROUTER)
    request ``[b"replay", msgpack({"since", "limit", "topics", "session_id"})]``
    reply   one ``[b"record", seq8, msgpack(record)]`` per record with seq > since, then
    ``[b"end", seq8 covered, seq8 last]``: every record up to *covered* has been
    considered (equal to the last record sent when nothing was filtered out), and
    *last* is the log's last seq, so a client pages with ``since=covered`` until
    ``covered == last``. (The third frame is an addition to DESIGN.md; clients that
    read two frames keep working.)
"""

from __future__ import annotations

import struct

APPEND = b"append"
OK = b"ok"
ERROR = b"error"
REPLAY = b"replay"
RECORD = b"record"
END = b"end"
ENDPOINTS = b"endpoints"  # request and reply: the journal's bound endpoints

# Machine-readable error codes of an `error` reply.
E_BAD_REQUEST = "bad_request"  # Wrong frame count or an unknown command frame.
E_NOT_MSGPACK = "not_msgpack"  # The payload is not msgpack, or not a list / map.
E_UNKNOWN_TYPE = "unknown_type"  # An event's "type" is not in the catalog.
E_INVALID_EVENT = "invalid_event"  # A field is missing, mistyped or empty (id, source, ts).
E_BATCH_TOO_LARGE = "batch_too_large"  # Over the events or bytes limit of one batch.
E_STORAGE = "storage_error"  # The log could not append (e.g. disk full); retry later.
ERROR_CODES = (
    E_BAD_REQUEST,
    E_NOT_MSGPACK,
    E_UNKNOWN_TYPE,
    E_INVALID_EVENT,
    E_BATCH_TOO_LARGE,
    E_STORAGE,
)

DEFAULT_MAX_BATCH_EVENTS = 10_000
DEFAULT_MAX_BATCH_BYTES = 16 * 1024 * 1024
DEFAULT_REPLAY_LIMIT = 10_000
MAX_REPLAY_LIMIT = 100_000

SEQ = struct.Struct(">Q")
"""The seq frame's format: 8 bytes, big-endian unsigned (also the log's key format)."""
MAX_SEQ = 2**64 - 1
"""The largest seq a frame (and the log's key) can hold."""


def pack_seq(seq: int) -> bytes:
    """Return ``seq`` as 8 bytes, big-endian unsigned (the bus and replay seq frame)."""
    return SEQ.pack(seq)


def unpack_seq(data: bytes) -> int:
    """Return the seq of an 8-byte big-endian frame.

    Raises:
        struct.error: ``data`` is not 8 bytes.
    """
    return int(SEQ.unpack(data)[0])
