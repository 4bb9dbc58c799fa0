"""Actor snapshots: a folded state kept in a file, so that a restart folds only the rest.

Source: ``DESIGN.md``, "State". An actor that opts in
(:attr:`ap_actors.actor.Actor.snapshot_version`) saves its state once it has folded
``snapshot_every`` seqs past its last snapshot (50,000 by default) and when it stops
cleanly; when it starts it loads the snapshot and folds only the records after the
snapshot's seq. Rebuild = snapshot + the events after it. The state is encoded in the
actor's loop (about 0.1 s for the reporter's 44 MB after 1,000 sessions; nothing may
fold meanwhile), the file written in a thread.

**Where: one file per actor, written by the actor,** ``<state dir>/snapshots/<actor>.snap``
(temporary file, fsync, rename, fsync of the directory), rather than sent to the journal
to be stored in the log's ``snapshots`` table:

- *Single writer.* The journal stays the only writer of the LMDB environment, and its
  ingest protocol stays "events only"; each file has one writer too, the one process
  that reads it back.
- *Cost to the group commit.* A busy reporter's state is tens of megabytes (every
  session's worker cards and activity feeds). Through the journal it would cross
  ZeroMQ, then be copied into a write transaction and fsynced by the very loop that
  commits everyone's events, stalling every append meanwhile; in LMDB a value that size
  takes a run of contiguous overflow pages, which fragments the free space and grows a
  map that never shrinks. As a file it costs the actor one write in a thread.
- *Size limits.* An ingest request is capped (16 MiB by default); a file is not.
- *Durability.* A snapshot is a cache, never the truth: losing one costs a full fold.
  The fsync before the rename makes the new file durable before it replaces the old;
  the rename means a reader finds the old file or the new one, never a torn one.
  A snapshot holds only folded records, and a record is folded only once it is durable
  in the log (the journal writes before it publishes), so a snapshot never runs ahead
  of the log. (Under the log's durability "none", for tests and benchmarks, a power
  loss can take back the log's last records; a snapshot beyond the head is then
  ignored, but not one that new appends have caught up with.)

The log's own ``snapshots`` table and :meth:`EventLog.save_snapshot` stay for callers
that write to the log themselves (the journal's process).

**File format:** :data:`MAGIC` (8 bytes), the CRC-32 of the rest (4 bytes, big-endian),
then the msgpack :class:`~ap_actors.eventlog.Snapshot`, whose ``state`` is the actor's
encoded state.

**Validity.** A snapshot is used only if it decodes, its checksum matches, and its name,
kind (actor class), version and log id are the actor's and its seq is not beyond the
log's last seq; otherwise it is ignored with a warning and the actor folds from seq 0.
Checking the log's identity and last seq takes its files: an actor on another machine,
which replays the log through the journal, neither loads nor writes snapshots.
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import os
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import msgspec

from ap_actors.eventlog import Snapshot

S = TypeVar("S")

log = logging.getLogger(__name__)

SNAPSHOT_DIR = "snapshots"  # under the state directory
MAGIC = b"APSNAP1\n"
_HEAD = struct.Struct(">8sI")  # magic, CRC-32 of the body
_BIN_HEAD = {0xC4: 2, 0xC5: 3, 0xC6: 5}  # msgpack bin 8/16/32: bytes before the payload


class _Stored(msgspec.Struct):
    """A :class:`~ap_actors.eventlog.Snapshot` as stored, its state left in the file's
    bytes (``msgspec.Raw`` is a view: a 44 MB state is not copied once more). Same
    fields as Snapshot (the file round-trip test holds them together)."""

    name: str
    seq: int
    version: int
    state: msgspec.Raw  # the msgpack bin holding the state
    taken_at: float
    log_id: str = ""
    kind: str = ""

    def snapshot(self) -> Snapshot:
        """The :class:`~ap_actors.eventlog.Snapshot` it stores (the state copied out)."""
        return Snapshot(
            self.name,
            self.seq,
            self.version,
            bytes(self.state_bytes()),
            self.taken_at,
            self.log_id,
            self.kind,
        )

    def state_bytes(self) -> memoryview:
        """The encoded state: the payload of the stored bin, without copying it."""
        raw = memoryview(self.state)
        head = _BIN_HEAD.get(raw[0]) if len(raw) else None
        if head is None:
            raise ValueError("undecodable: the state is not msgpack bin")
        return raw[head:]


_DECODER = msgspec.msgpack.Decoder(_Stored)


def snapshot_path(state_dir: Path, name: str) -> Path:
    """Return the snapshot file of the actor ``name``: ``<state_dir>/snapshots/<name>.snap``."""
    return state_dir / SNAPSHOT_DIR / f"{name.replace(os.sep, '_')}.snap"


def write_snapshot(path: Path, snapshot: Snapshot) -> int:
    """Replace the snapshot file at ``path`` atomically and durably; return its size.

    Writes a temporary file next to it, fsyncs it, renames it over ``path`` and fsyncs
    the directory. Creates the directory if needed. Blocking: run it in a thread. The
    temporary file's name is fixed, so the next write replaces one left by a writer
    killed midway (one process per actor name writes it).

    Raises:
        OSError: the file could not be written (disk full, permissions); ``path`` is
            left as it was and the temporary file is removed.
    """
    body = msgspec.msgpack.encode(snapshot)  # not a shared Encoder: this runs in threads
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(_HEAD.pack(MAGIC, zlib.crc32(body)))
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself must survive a crash
    finally:
        os.close(fd)
    return _HEAD.size + len(body)


def read_snapshot(path: Path) -> Snapshot | None:
    """Return the snapshot stored at ``path``, or None when there is no file.

    Raises:
        ValueError: the file is not a snapshot, is truncated or corrupt (checksum), or
            does not decode; the message says which.
        OSError: the file exists but cannot be read.
    """
    stored = _read(path)
    return None if stored is None else stored.snapshot()


def _read(path: Path) -> _Stored | None:
    """:func:`read_snapshot`, the state left in the file's bytes.

    The file is mapped rather than read: a restart does not copy a 44 MB state into
    fresh memory before decoding it (that copy was a tenth of a snapshot's load). The
    mapping lives as long as the returned value's views. A snapshot file is only ever
    replaced by a rename (:func:`write_snapshot`), never rewritten in place, so what is
    mapped does not change under the reader.
    """
    try:
        with open(path, "rb") as f:  # the mapping outlives the file object
            size = os.fstat(f.fileno()).st_size
            if size < _HEAD.size:  # mmap refuses an empty file
                raise ValueError(f"{size} bytes, too short for a snapshot")
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError:
        return None
    magic, crc = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise ValueError(f"not a snapshot file (starts with {magic!r})")
    body = memoryview(data)[_HEAD.size :]
    if zlib.crc32(body) != crc:
        raise ValueError("corrupt: checksum mismatch")
    try:
        return _DECODER.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise ValueError(f"undecodable: {e}") from e


def unusable(
    snapshot: Snapshot | _Stored, *, name: str, kind: str, version: int, log_id: str, head: int
) -> str | None:
    """Return why ``snapshot`` cannot start a fold of this log, or None if it can.

    Args:
        name, kind, version: the actor's name, class (``module:Class``) and
            :attr:`~ap_actors.actor.Actor.snapshot_version`.
        log_id: the log's :meth:`~ap_actors.eventlog.EventLog.log_id`.
        head: the log's last seq.
    """
    if snapshot.name != name or snapshot.kind != kind:
        return f"it is {snapshot.kind or '?'} {snapshot.name!r}'s, not {kind} {name!r}'s"
    if snapshot.version != version:
        return f"state version {snapshot.version}, this actor's is {version}"
    if snapshot.log_id != log_id:
        return f"it was folded from another log ({snapshot.log_id or 'unknown'}, not {log_id})"
    if snapshot.seq > head:
        return f"its seq {snapshot.seq} is beyond the log's last seq {head}"
    return None


class SnapshotKeeper:
    """One actor's snapshot file: loaded when the actor starts, written as it folds.

    A write runs in a thread, one at a time; the caller encodes the state before (in
    the event loop, where nothing folds meanwhile). Nothing is written until
    :meth:`load` learnt the log's identity: a snapshot without it could never be used.

    Args:
        state_dir: the mesh's state directory; the file is :func:`snapshot_path`.
        name, kind, version: the actor's name, class (``module:Class``) and
            :attr:`~ap_actors.actor.Actor.snapshot_version`.
        every: a snapshot is due once the actor has folded up to this many seqs past
            the last one; 0 = none but the one of a clean stop.

    Attributes:
        seq: seq of the snapshot last loaded or taken; 0 = none.
    """

    def __init__(self, state_dir: Path, name: str, kind: str, version: int, every: int) -> None:
        self.path = snapshot_path(state_dir, name)
        self.name = name
        self.kind = kind
        self.version = version
        self.every = every
        self.seq = 0
        self.log_id = ""
        self._writing: asyncio.Task[None] | None = None

    def load(
        self, log_id: str, head: int, decode: Callable[[memoryview], S]
    ) -> tuple[int, S] | None:
        """Return ``(seq, state)`` from the snapshot if it can start a fold of this log.

        None when there is none, and also, after a warning saying why (the actor then
        folds from seq 0), when it is unreadable, :func:`unusable`, or its state does
        not ``decode`` (msgspec errors).

        Args:
            log_id: the log's :meth:`~ap_actors.eventlog.EventLog.log_id`.
            head: the log's last seq.
            decode: the actor's state decoder, given a view of the encoded state.
        """
        self.log_id = log_id
        reason: str | None
        try:
            snapshot = _read(self.path)
            state_bytes = None if snapshot is None else snapshot.state_bytes()
        except (OSError, ValueError) as e:
            snapshot, reason = None, str(e)
        else:
            if snapshot is None:
                return None
            reason = unusable(
                snapshot,
                name=self.name,
                kind=self.kind,
                version=self.version,
                log_id=log_id,
                head=head,
            )
        if snapshot is not None and state_bytes is not None and reason is None:
            try:
                state = decode(state_bytes)
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                reason = f"its state does not decode: {e}"
            else:
                self.seq = snapshot.seq
                return snapshot.seq, state
        log.warning(
            "snapshot ignored, folding from seq 0: %s", reason, extra={"snapshot": str(self.path)}
        )
        return None

    def due(self, last_seq: int) -> bool:
        """Whether to take a snapshot after folding ``last_seq`` (no write in flight)."""
        return (
            bool(self.log_id)
            and 0 < self.every <= last_seq - self.seq
            and (self._writing is None or self._writing.done())
        )

    def take(self, seq: int, state: bytes) -> Snapshot:
        """Return the snapshot of ``state`` (encoded) folded up to ``seq``."""
        self.seq = seq
        return Snapshot(
            name=self.name,
            seq=seq,
            version=self.version,
            state=state,
            taken_at=time.time(),
            log_id=self.log_id,
            kind=self.kind,
        )

    def save_soon(self, snapshot: Snapshot) -> None:
        """Start writing ``snapshot`` in a thread (see :meth:`due`)."""
        self._writing = asyncio.create_task(self.save(snapshot))

    async def save(self, snapshot: Snapshot) -> None:
        """Write ``snapshot`` in a thread; a failure is logged and the actor goes on."""
        try:
            size = await asyncio.to_thread(write_snapshot, self.path, snapshot)
        except OSError as e:
            log.warning("snapshot not saved: %s", e, extra={"seq": snapshot.seq})
            return
        log.info("snapshot saved", extra={"seq": snapshot.seq, "bytes": size})

    async def written(self) -> None:
        """Wait for the write in flight, if any."""
        if self._writing is not None:
            await self._writing
