"""Validation of ingest batches: what the journal appends and what it refuses.

Source: ``DESIGN.md``, "Wire protocol"; the error codes are in `protocol.py`. A batch is
refused whole when any of its events is invalid, with the code and the index of the
first offending event:

- ``batch_too_large``: over the configured events or bytes;
- ``not_msgpack``: the payload is not a msgpack list, or holds bytes that are not valid
  msgpack anywhere (invalid UTF-8 in a key the schema does not know, deep nesting);
- ``unknown_type``: an event's ``type`` is not in the catalog, or missing;
- ``invalid_event``: a field is missing or of the wrong type, or the envelope is unusable
  (``id`` empty or over 255 bytes, ``source`` empty, ``ts`` <= 0, ``session_id`` over
  200 bytes or holding NUL: the ids are LMDB keys, at most 511 bytes).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ap_actors import protocol as P
from ap_actors.errors import DecodeError
from ap_actors.eventlog import Prepared
from ap_actors.events import CODEC, EVENT_TYPES, Event

MAX_ID_BYTES = 255  # LMDB keys are at most 511 bytes; the id index uses the id as key
MAX_SESSION_BYTES = 200  # the session index key is session + NUL + 8-byte seq


def validate_batch(payload: bytes, max_events: int, max_bytes: int) -> list[Prepared]:
    """Validate the payload of one ``append`` request.

    Returns:
        The batch as :class:`Prepared` events, in order.

    Raises:
        DecodeError: with ``code`` one of the ingest error codes and ``index`` the
            offending event's position (-1 for the batch as a whole).
    """
    if len(payload) > max_bytes:
        raise DecodeError(
            P.E_BATCH_TOO_LARGE,
            f"batch is {len(payload)} bytes; the limit is {max_bytes}",
            raw=payload[:256],
        )
    # One untyped pass checks that the whole payload is well-formed msgpack, including
    # keys the typed decoder would skip unread (invalid UTF-8 must not reach the log).
    try:
        plain = msgspec.msgpack.decode(payload)
    except _MALFORMED as e:
        index, raw = _first_malformed(payload)
        where = f"event {index}" if index >= 0 else "payload"
        raise DecodeError(
            P.E_NOT_MSGPACK, f"{where} is not valid msgpack: {e}", index, raw or payload[:256]
        ) from e
    if not isinstance(plain, list):
        raise DecodeError(
            P.E_NOT_MSGPACK,
            f"payload must be a msgpack list of events, not {type(plain).__name__}",
            raw=payload[:256],
        )
    if len(plain) > max_events:
        raise DecodeError(
            P.E_BATCH_TOO_LARGE,
            f"batch has {len(plain)} events; the limit is {max_events}",
            raw=payload[:256],
        )
    raws = CODEC.split_batch(payload)
    events: Sequence[Event]
    try:
        events = CODEC.decode_events(payload)
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
        events = [_decode_one(i, raw) for i, raw in enumerate(raws)]
    out: list[Prepared] = []
    topics = _TOPIC_BYTES
    for event, raw in zip(events, raws, strict=True):
        event_id = event.id.encode()
        session = event.session_id.encode()
        if (
            not 0 < len(event_id) <= MAX_ID_BYTES
            or not event.source
            or not event.ts > 0
            or len(session) > MAX_SESSION_BYTES
            or b"\x00" in session
        ):
            _refuse_fields(len(out), event, raw)
        out.append(Prepared(event_id, session, topics[type(event)], bytes(raw)))
    return out


_TOPIC_BYTES = {cls: tag.encode() for tag, cls in EVENT_TYPES.items()}


def _refuse_fields(i: int, event: Event, raw: msgspec.Raw) -> None:
    """Raise the ``invalid_event`` error that says which envelope field is wrong."""
    if not 0 < len(event.id.encode()) <= MAX_ID_BYTES:
        problem = f"`id` must be 1-{MAX_ID_BYTES} bytes of UTF-8"
    elif not event.source:
        problem = "`source` is empty"
    elif not event.ts > 0:
        problem = "`ts` must be > 0 (Unix seconds)"
    else:
        problem = f"`session_id` must be at most {MAX_SESSION_BYTES} bytes, without NUL"
    raise DecodeError(P.E_INVALID_EVENT, f"event {i}: {problem}", i, bytes(raw))


_MALFORMED = (msgspec.DecodeError, UnicodeDecodeError, RecursionError, ValueError)


def _first_malformed(payload: bytes) -> tuple[int, bytes]:
    """Return (index, bytes) of the first malformed element of a list, or (-1, b"")."""
    try:
        raws = CODEC.split_batch(payload)
    except (*_MALFORMED, msgspec.ValidationError):
        return -1, b""
    for i, raw in enumerate(raws):
        try:
            msgspec.msgpack.decode(raw)
        except _MALFORMED:
            return i, bytes(raw)
    return -1, b""


def _decode_one(i: int, raw: msgspec.Raw) -> Event:
    """Decode event ``i`` alone, to report which event of a batch is invalid and why."""
    try:
        return CODEC.decode_event(raw)
    except msgspec.ValidationError as e:
        # One line: msgspec quotes the offending value, which may hold line breaks.
        text = str(e).replace("\r", "\\r").replace("\n", "\\n")
        unknown = ("`$.type`" in text or "field `type`" in text) and not text.startswith(
            "Expected `object`"
        )
        code = P.E_UNKNOWN_TYPE if unknown else P.E_INVALID_EVENT
        raise DecodeError(code, f"event {i}: {text}", i, bytes(raw)) from e
    except (msgspec.DecodeError, UnicodeDecodeError) as e:
        raise DecodeError(P.E_NOT_MSGPACK, f"event {i}: {e}", i, bytes(raw)) from e
