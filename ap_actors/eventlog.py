"""The append-only event log: one LMDB environment, one writer, many reader processes.

Source: ``DESIGN.md``, "The event log and the bus". Layout of the environment
(a directory, default ``.ap/eventlog/``, holding ``data.mdb`` and ``lock.mdb``):

``events``    seq (8 bytes big-endian) -> msgpack record ``{"seq", "appended_at", "event"}``
``ids``       event id (UTF-8) -> seq (8 bytes): idempotent appends
``sessions``  session id (UTF-8) + NUL + seq (8 bytes) -> b"": the per-session index
``types``     event type (UTF-8) + NUL + seq (8 bytes) -> b"": the by-type index (what
              EventStoreDB calls the ``$et-`` streams): a topic-filtered read visits only
              the matching records, never the others
``snapshots`` name (UTF-8) -> msgpack :class:`Snapshot`
``meta``      ``b"log_id"`` -> the log's identity: 32 hex characters drawn at random
              when the writer first opens the log; a copy of the log keeps it, a new
              log in the same directory gets another (actor snapshots record it).
              ``b"types_upto"`` -> seq (8 bytes): every record up to it is in ``types``
              (written in the append's transaction). A log from before the index gets it
              built when a writer of this version opens it; records after ``types_upto``
              (appended by an older writer) are filtered by reading their heads.

Actors keep their snapshots in files of their own, not in ``snapshots``
(:mod:`ap_actors.snapshots` says why). Only the journal process writes; any number of
processes read with short read-only transactions (LMDB MVCC: readers never block the
writer). A full map is grown, never reported as an error; a full disk aborts the write
transaction (the log stays as it was) and raises :class:`EventLogError`. Durability ``"fsync"``
(default) syncs data and meta pages at every commit; ``"none"`` leaves flushing to the
OS (a power loss may drop the last commits, never corrupt the log) and exists for tests
and benchmarks.
"""

from __future__ import annotations

import logging
import os
import secrets
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeAlias

import lmdb
import msgspec

from ap_actors.errors import EventLogError
from ap_actors.events import CODEC, Event, Record, topic_of
from ap_actors.protocol import MAX_SEQ, SEQ, pack_seq, unpack_seq

log = logging.getLogger(__name__)

Durability = Literal["fsync", "none"]
DURABILITIES: tuple[str, ...] = ("fsync", "none")

DEFAULT_MAP_SIZE = 64 * 1024 * 1024  # bytes; doubled whenever it fills up
_LOW_SPACE = 1024 * 1024  # bytes free below which a failed commit means a full disk
MAX_READERS = 1024
_CHUNK = 1024  # records read per read transaction, so no reader pins old pages for long
_DB_NAMES = (b"events", b"ids", b"sessions", b"snapshots")
_META = b"meta"  # opened apart: a log written before it existed has none
_TYPES = b"types"  # the same
_LOG_ID = b"log_id"
_TYPES_UPTO = b"types_upto"
_INDEX_BATCH = 20_000  # records indexed per write transaction when building the index
_FLOAT64 = struct.Struct(">d")
_RECORD_HEAD = b"\x83\xa3seq\xcf"  # fixmap(3), "seq", uint64 follows
_RECORD_TIME = b"\xabappended_at\xcb"  # "appended_at", float64 follows
_RECORD_EVENT = b"\xa5event"  # "event", the event map follows


def _record_middle(appended_at: float) -> bytes:
    """The fixed bytes of a record between its seq and its event.

    A record is the msgpack map ``{"seq", "appended_at", "event"}`` with the event's bytes
    spliced in as received: ``_RECORD_HEAD + seq (8 bytes) + middle + event``. It is what
    encoding a :class:`~ap_actors.events.RawRecord` gives, save the int width, without
    building a struct and encoding it per event.
    """
    return _RECORD_TIME + _FLOAT64.pack(appended_at) + _RECORD_EVENT


class Snapshot(msgspec.Struct, frozen=True):
    """A folded state saved at ``seq``: rebuild = snapshot + the events after ``seq``.

    ``version`` is the schema version of ``state`` (msgpack bytes); a reader that expects
    another version ignores the snapshot and folds from the start, and so does one on
    another log (``log_id``, see :meth:`EventLog.log_id`) or of another kind.
    """

    name: str  # Who folded it, e.g. the actor's name.
    seq: int  # Seq of the last record folded into ``state``.
    version: int  # Schema version of ``state``.
    state: bytes  # The folded state, msgpack.
    taken_at: float  # Unix seconds.
    log_id: str = ""  # Identity of the log it was folded from; "" = unknown.
    kind: str = ""  # What folded it, e.g. the actor class "module:Class"; "" = unknown.


class Prepared(NamedTuple):
    """A validated event ready for :meth:`EventLog.append_prepared`.

    ``raw`` is the event map exactly as received (msgpack); it is stored unchanged.
    """

    id: bytes
    session_id: bytes
    topic: bytes
    raw: bytes


_Chunk: TypeAlias = list[tuple[bytes, bytes]]
"""Records read in one transaction: ``(seq as 8 bytes big-endian, record)``."""

Appended: TypeAlias = tuple[int, bytes, bytes, bytes]
"""A record newly written by an append, what the journal publishes:
``(seq, topic, record, key)`` with ``record`` the msgpack record as stored and ``key``
the seq as 8 bytes big-endian (the LMDB key and the bus's seq frame). A plain tuple:
a NamedTuple's constructor cost a tenth of the append."""


@dataclass
class _SharedEnv:
    env: Any  # lmdb.Environment
    dbs: dict[bytes, Any]
    readonly: bool
    refs: int
    lock: threading.RLock
    stale_readers_cleared: int


# LMDB forbids opening one environment twice in a process (closing either breaks the
# other's locks), so every EventLog on the same directory shares one handle.
_ENVS: dict[str, _SharedEnv] = {}
_ENVS_LOCK = threading.Lock()


def _open_env(path: Path, readonly: bool, map_size: int, durability: str) -> _SharedEnv:
    key = str(path.resolve())
    with _ENVS_LOCK:
        shared = _ENVS.get(key)
        if shared is not None:
            if shared.readonly and not readonly:
                raise EventLogError(
                    f"event log {path} is open read-only in this process; "
                    "close its readers before opening it for writing"
                )
            shared.refs += 1
            return shared
        if readonly and not (path / "data.mdb").exists():
            raise EventLogError(
                f"no event log at {path}: start the mesh with `ap up` or pass the right --state-dir"
            )
        try:
            if not readonly:
                path.mkdir(parents=True, exist_ok=True)
            env = lmdb.open(
                str(path),
                map_size=map_size,
                max_dbs=len(_DB_NAMES) + 2,
                max_readers=MAX_READERS,
                readonly=readonly,
                sync=durability == "fsync",
                metasync=durability == "fsync",
                readahead=False,
                create=not readonly,
            )
            cleared = env.reader_check()
            if cleared:
                log.warning("cleared %d stale reader slot(s) in %s", cleared, path)
            dbs = {n: env.open_db(n, create=not readonly) for n in _DB_NAMES}
            meta = _open_meta(env, readonly)
            if meta is not None:
                dbs[_META] = meta
                types = _open_types(env, dbs[b"events"], meta, readonly, path)
                if types is not None:
                    dbs[_TYPES] = types
        except lmdb.Error as e:
            raise EventLogError(f"cannot open event log {path}: {e}") from e
        shared = _SharedEnv(env, dbs, readonly, 1, threading.RLock(), cleared)
        _ENVS[key] = shared
        return shared


def _open_meta(env: Any, readonly: bool) -> Any:
    """Open the ``meta`` table; the writer also gives the log its id if it has none.

    Returns None for a reader of a log whose writer has not created the table yet.
    """
    try:
        db = env.open_db(_META, create=not readonly)
    except lmdb.NotFoundError:
        return None
    if not readonly:
        with env.begin(write=True) as txn:
            txn.put(_LOG_ID, secrets.token_hex(16).encode(), db=db, overwrite=False)
    return db


def _open_types(env: Any, events: Any, meta: Any, readonly: bool, path: Path) -> Any:
    """Open the by-type index; the writer first indexes the records it lacks.

    Returns None for a reader of a log whose writer has not created the index yet.
    """
    try:
        db = env.open_db(_TYPES, create=not readonly)
    except lmdb.NotFoundError:
        return None
    if readonly:
        return db
    with env.begin() as txn:
        upto = txn.get(_TYPES_UPTO, db=meta)
        cur = txn.cursor(db=events)
        last = unpack_seq(cur.key()) if cur.last() else 0
    done = 0 if upto is None else unpack_seq(upto)
    if done >= last:
        if upto is None:
            with env.begin(write=True) as txn:
                txn.put(_TYPES_UPTO, pack_seq(last), db=meta)
        return db
    log.info("indexing records %d to %d of %s by type", done + 1, last, path)
    head = CODEC.decode_head
    while done < last:
        with env.begin(write=True) as txn:
            cur = txn.cursor(db=events)
            rows = []
            if cur.set_range(pack_seq(done + 1)):
                for key, data in islice(cur.iternext(), _INDEX_BATCH):
                    rows.append((head(data).event.type.encode() + b"\x00" + key, b""))
                    done = unpack_seq(key)
            txn.cursor(db=db).putmulti(rows)
            txn.put(_TYPES_UPTO, pack_seq(done if rows else last), db=meta)
            if not rows:
                break
    return db


def _matching_types(cur: Any, prefixes: list[bytes]) -> list[bytes]:
    """The ``type + NUL`` keys of the by-type index whose type starts with a prefix."""
    found: set[bytes] = set()
    for prefix in prefixes:
        ok = cur.set_range(prefix)
        while ok:
            key = cur.key()
            if not key.startswith(prefix):
                break
            type_key = key[: key.index(b"\x00") + 1]
            found.add(type_key)
            ok = cur.set_range(type_key[:-1] + b"\x01")  # past every seq of this type
    return sorted(found)


def _close_env(path: Path) -> None:
    key = str(path.resolve())
    with _ENVS_LOCK:
        shared = _ENVS.get(key)
        if shared is None:
            return
        shared.refs -= 1
        if shared.refs == 0:
            shared.env.close()
            del _ENVS[key]


def _session_key(session_id: bytes, key: bytes) -> bytes:
    """The per-session index key: session id, NUL, seq as 8 bytes (``key``)."""
    return session_id + b"\x00" + key


class EventLog:
    """The LMDB event log (see the module docstring for the layout).

    Args:
        path: directory of the LMDB environment; created when opened for writing.
        readonly: open for reading only (any process may, while the journal writes).
        durability: ``"fsync"`` (default) or ``"none"``; only meaningful for the writer.
        map_size: initial map size in bytes; the writer doubles it whenever it is full.

    Raises:
        EventLogError: the directory holds no log (read-only) or LMDB refused to open it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        readonly: bool = False,
        durability: Durability = "fsync",
        map_size: int = DEFAULT_MAP_SIZE,
    ) -> None:
        if durability not in DURABILITIES:
            raise EventLogError(f"durability must be one of {DURABILITIES}, not {durability!r}")
        self.path = Path(path)
        self.readonly = readonly
        self.durability = durability
        self._shared = _open_env(self.path, readonly, map_size, durability)
        self._env = self._shared.env
        self._events = self._shared.dbs[b"events"]
        self._ids = self._shared.dbs[b"ids"]
        self._sessions = self._shared.dbs[b"sessions"]
        self._snapshots = self._shared.dbs[b"snapshots"]
        self._closed = False
        # Reader slots of dead processes that were freed when this process opened the log.
        self.stale_readers_cleared: int = self._shared.stale_readers_cleared

    # --- lifecycle ------------------------------------------------------------------

    def close(self) -> None:
        """Release this handle; the environment closes with its last handle."""
        if not self._closed:
            self._closed = True
            _close_env(self.path)

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transactions ---------------------------------------------------------------

    def _begin(self, write: bool = False) -> Any:
        """Begin a transaction, adopting a map grown by the writer in another process."""
        try:
            return self._env.begin(write=write, buffers=False)
        except lmdb.MapResizedError:
            with self._shared.lock:
                self._env.set_mapsize(0)
            return self._env.begin(write=write, buffers=False)
        except lmdb.Error as e:
            raise EventLogError(f"cannot read event log {self.path}: {e}") from e

    def _grow(self) -> None:
        """Double the map (a full map is grown, never reported).

        Raises:
            EventLogError: the map could not grow (LMDB refused, or the size did not
                change): raised rather than retried, so a full map never loops forever.
        """
        # set_mapsize needs no transaction open in this process: readers of this process
        # hold the shared lock for each of their (short) transactions.
        with self._shared.lock:
            size = self._env.info()["map_size"]
            try:
                self._env.set_mapsize(size * 2)
            except lmdb.Error as e:
                raise self._write_error(f"growing the map past {size} bytes of", e) from e
            grown = self._env.info()["map_size"]
        if grown <= size:
            raise EventLogError(f"the map of event log {self.path} did not grow past {size} bytes")
        log.info("event log map grown from %d to %d bytes", size, grown)

    def _write_error(self, what: str, e: lmdb.Error, need: int = 0) -> EventLogError:
        """The one-line error for a failed write transaction (it was aborted: the log is
        as it was before it).

        Without ``MDB_WRITEMAP`` LMDB grows ``data.mdb`` by writing pages at commit, so a
        full disk shows there: ENOSPC (``lmdb.DiskError``) when nothing could be written,
        or EIO ("short write, filesystem full?" in ``mdb_page_flush``) when part could.
        Either counts as a full disk when the filesystem has less room left than the
        transaction needed (``need`` bytes, estimated) plus a margin.
        """
        try:
            st = os.statvfs(self.path)
            free = st.f_bavail * st.f_frsize
        except OSError:
            free = -1
        if isinstance(e, lmdb.PanicError):  # a meta page write failed earlier
            return EventLogError(
                f"{what} event log {self.path} failed: {e}; LMDB refuses every"
                " transaction until the log is reopened: restart the journal once the"
                f" disk holding it has room ({free} bytes free)"
            )
        if isinstance(e, lmdb.DiskError) or 0 <= free < 2 * need + _LOW_SPACE:
            return EventLogError(
                f"{what} event log {self.path} failed: the disk is full ({free} bytes free);"
                " free space on that filesystem; nothing was written, and appends resume"
                " by themselves once there is room"
            )
        return EventLogError(
            f"{what} event log {self.path} failed: {e}; check the disk holding it"
            f" ({free} bytes free); nothing was written"
        )

    def _read_last_seq(self) -> int:
        with self._shared.lock, self._begin() as txn:
            cur = txn.cursor(db=self._events)
            return unpack_seq(cur.key()) if cur.last() else 0

    # --- writing --------------------------------------------------------------------

    def append(self, events: Sequence[Event], *, now: float | None = None) -> list[int]:
        """Append events in one transaction and return their seqs, in order.

        Events must already carry their ``id`` (see :func:`ap_actors.events.stamp`).
        An id already in the log gets its original seq and is not appended again.

        Raises:
            EventLogError: the log is read-only or the disk refused the write; nothing of
                the batch was appended.
        """
        prepared = [
            Prepared(e.id.encode(), e.session_id.encode(), topic_of(e).encode(), CODEC.encode(e))
            for e in events
        ]
        seqs, _ = self.append_prepared(prepared, now=now)
        return seqs

    def append_prepared(
        self, items: Sequence[Prepared], *, now: float | None = None
    ) -> tuple[list[int], list[Appended]]:
        """Append validated events in one write transaction (one fsync).

        Args:
            items: events as :class:`Prepared` tuples, in the order to append them.
            now: ``appended_at`` of the new records, Unix seconds (default: now).

        Returns:
            ``(seqs, appended)``: the seq of every item in order (the original seq for a
            duplicate id, including a repeat inside ``items``), and the records actually
            written, in seq order.

        Raises:
            EventLogError: read-only log, or LMDB failed (disk full, I/O error); the
                transaction is aborted and nothing is appended.
        """
        if self.readonly:
            raise EventLogError(f"event log {self.path} is open read-only")
        stamp_ts = time.time() if now is None else now
        while True:
            try:
                return self._append_txn(items, stamp_ts)
            except lmdb.MapFullError:
                self._grow()
            except lmdb.Error as e:
                need = sum(len(item.raw) for item in items)
                raise self._write_error("appending to", e, need) from e

    def _append_txn(
        self, items: Sequence[Prepared], appended_at: float
    ) -> tuple[list[int], list[Appended]]:
        txn = self._env.begin(write=True)
        try:
            # Read the last seq inside the write transaction: it is the truth even if
            # another handle on this environment appended meanwhile.
            cur = txn.cursor(db=self._events)
            last = unpack_seq(cur.key()) if cur.last() else 0
            result = self._append_new(txn, items, last, appended_at)
            if result is None:  # some id is known already: start over, id by id
                txn.abort()
                txn = self._env.begin(write=True)
                result = self._append_checked(txn, items, last, appended_at)
            txn.commit()
        except BaseException:
            txn.abort()
            raise
        return result

    def _append_new(
        self, txn: Any, items: Sequence[Prepared], last: int, appended_at: float
    ) -> tuple[list[int], list[Appended]] | None:
        """Append assuming every id is new (the common case); None if one is not.

        The id index is written first with ``overwrite=False``: if it added fewer keys
        than there are events, an id was stored already or repeats in the batch, and
        the caller aborts this transaction.
        """
        pack = SEQ.pack
        keys = [pack(seq) for seq in range(last + 1, last + 1 + len(items))]
        _, added = txn.cursor(db=self._ids).putmulti(
            [(item.id, key) for item, key in zip(items, keys, strict=True)], overwrite=False
        )
        if added != len(items):
            return None
        middle = _record_middle(appended_at)
        appended: list[Appended] = [
            (last + 1 + i, item.topic, b"".join((_RECORD_HEAD, key, middle, item.raw)), key)
            for i, (item, key) in enumerate(zip(items, keys, strict=True))
        ]
        self._put_records(txn, appended, items, last)
        return list(range(last + 1, last + 1 + len(items))), appended

    def _append_checked(
        self, txn: Any, items: Sequence[Prepared], last: int, appended_at: float
    ) -> tuple[list[int], list[Appended]]:
        """Append the events whose id is new; give the others their original seq."""
        pack = SEQ.pack
        middle = _record_middle(appended_at)
        seqs: list[int] = []
        appended: list[Appended] = []
        fresh: list[Prepared] = []
        new_ids: dict[bytes, int] = {}  # ids appended by this batch (repeats inside it)
        get, ids = txn.get, self._ids
        first = last
        for item in items:
            found = new_ids.get(item.id)
            if found is None:
                stored = get(item.id, db=ids)
                if stored is not None:
                    found = unpack_seq(stored)
            if found is not None:
                seqs.append(found)
                continue
            last += 1
            key = pack(last)
            new_ids[item.id] = last
            seqs.append(last)
            fresh.append(item)
            appended.append(
                (last, item.topic, b"".join((_RECORD_HEAD, key, middle, item.raw)), key)
            )
        if appended:
            txn.cursor(db=ids).putmulti([(i, pack(s)) for i, s in new_ids.items()])
            self._put_records(txn, appended, fresh, first)
        return seqs, appended

    def _put_records(
        self, txn: Any, appended: list[Appended], items: Sequence[Prepared], first: int
    ) -> None:
        """Write the records and the session index rows (one putmulti per table)."""
        _, added = txn.cursor(db=self._events).putmulti(
            [(key, record) for _, _, record, key in appended], overwrite=False, append=True
        )
        if added != len(appended):
            raise EventLogError(f"seqs after {first} already exist in {self.path}")
        sessions = [
            (_session_key(item.session_id, key), b"")
            for item, (_, _, _, key) in zip(items, appended, strict=True)
            if item.session_id
        ]
        if sessions:
            txn.cursor(db=self._sessions).putmulti(sessions)
        types = self._shared.dbs.get(_TYPES)
        if types is not None and appended:
            txn.cursor(db=types).putmulti(
                [
                    (item.topic + b"\x00" + key, b"")
                    for item, (_, _, _, key) in zip(items, appended, strict=True)
                ]
            )
            txn.put(_TYPES_UPTO, appended[-1][3], db=self._shared.dbs[_META])

    # --- reading --------------------------------------------------------------------

    def last_seq(self) -> int:
        """Return the seq of the newest record (0 for an empty log)."""
        return self._read_last_seq()

    def log_id(self) -> str:
        """Return the log's identity (32 hex characters), "" if its writer has not given
        it one yet (a log from before ids, not yet opened by a journal of this version).
        """
        with self._shared.lock:
            db = self._shared.dbs.get(_META)
            if db is None:  # the writer may have created the table since this opened it
                try:
                    db = self._shared.dbs[_META] = self._env.open_db(_META, create=False)
                except lmdb.NotFoundError:
                    return ""
                except lmdb.Error as e:
                    raise EventLogError(f"cannot read event log {self.path}: {e}") from e
            with self._begin() as txn:
                found = txn.get(_LOG_ID, db=db)
        return "" if found is None else bytes(found).decode()

    def seq_of(self, event_id: str) -> int | None:
        """Return the seq at which the event with this id was appended, or None."""
        with self._shared.lock, self._begin() as txn:
            found = txn.get(event_id.encode(), db=self._ids)
        return None if found is None else unpack_seq(found)

    def get(self, seq: int) -> Record | None:
        """Return the record at ``seq``, or None."""
        with self._shared.lock, self._begin() as txn:
            data = txn.get(pack_seq(seq), db=self._events)
        return None if data is None else CODEC.decode_record(data)

    def read_raw(
        self,
        since: int = 0,
        *,
        until: int | None = None,
        limit: int | None = None,
        topics: Iterable[str] | None = None,
        session_id: str | None = None,
    ) -> Iterator[tuple[int, bytes]]:
        """Yield ``(seq, record bytes)`` with ``since < seq <= until`` in seq order.

        Args:
            since: exclusive lower bound (0 = from the start).
            until: inclusive upper bound; None = up to the last record when each chunk
                is read (records appended meanwhile are included).
            limit: at most this many records.
            topics: keep only events whose type starts with one of these prefixes.
            session_id: keep only this session's events (uses the per-session index).
        """
        if limit is not None and limit <= 0:
            return
        unpack = SEQ.unpack
        sent = 0
        for chunk in self._chunks(since, until, topics, session_id):
            for key, data in chunk:
                yield unpack(key)[0], data
                sent += 1
                if limit is not None and sent >= limit:
                    return

    def read_chunks(
        self,
        since: int = 0,
        *,
        until: int | None = None,
        topics: Iterable[str] | None = None,
        session_id: str | None = None,
    ) -> Iterator[list[bytes]]:
        """Yield the records of :meth:`read_raw` (each holds its seq) as lists, in order.

        Each list comes from one short read transaction (about a thousand records
        before filtering; never empty): a consumer that folds a long history does its
        per-record work in a tight loop. Arguments as :meth:`read_raw`.
        """
        for chunk in self._chunks(since, until, topics, session_id):
            yield [data for _, data in chunk]

    def _chunks(
        self,
        since: int,
        until: int | None,
        topics: Iterable[str] | None,
        session_id: str | None,
    ) -> Iterator[_Chunk]:
        prefixes = tuple(topics) if topics else ()
        if since >= MAX_SEQ:
            return  # nothing can follow the largest seq (and since + 1 does not pack)
        if session_id is not None:
            chunks = self._session_chunks(session_id.encode(), since, until)
        elif prefixes:
            yield from self._type_chunks(prefixes, since, until)
            return
        else:
            chunks = self._seq_chunks(since, until)
        if not prefixes:
            yield from chunks
            return
        yield from self._head_filtered(chunks, prefixes)

    @staticmethod
    def _head_filtered(chunks: Iterable[_Chunk], prefixes: tuple[str, ...]) -> Iterator[_Chunk]:
        """Keep the records whose event type starts with a prefix (decodes each head)."""
        head = CODEC.decode_head
        for chunk in chunks:
            kept = [item for item in chunk if head(item[1]).event.type.startswith(prefixes)]
            if kept:
                yield kept

    def read(
        self,
        since: int = 0,
        *,
        until: int | None = None,
        limit: int | None = None,
        topics: Iterable[str] | None = None,
        session_id: str | None = None,
    ) -> Iterator[Record]:
        """Yield decoded :class:`Record` s; arguments as :meth:`read_raw`."""
        for _, data in self.read_raw(
            since, until=until, limit=limit, topics=topics, session_id=session_id
        ):
            yield CODEC.decode_record(data)

    def _seq_chunks(self, since: int, until: int | None) -> Iterator[_Chunk]:
        # Keys stay bytes: 8-byte big-endian seqs compare as bytes as they do as ints,
        # and a replay spends its time in this loop (an unpack per record was a third).
        last = None if until is None else pack_seq(until)
        pos = since
        while True:
            chunk: _Chunk = []
            with self._shared.lock, self._begin() as txn:
                cur = txn.cursor(db=self._events)
                if cur.set_range(pack_seq(pos + 1)):
                    chunk = list(islice(cur.iternext(), _CHUNK))
            if last is not None and chunk and chunk[-1][0] > last:
                chunk = [item for item in chunk if item[0] <= last]  # the last chunk
            if not chunk:
                return
            yield chunk
            if len(chunk) < _CHUNK:
                return
            pos = unpack_seq(chunk[-1][0])

    def _types_db(self) -> tuple[Any, int] | None:
        """The by-type index and the seq it is complete up to; None without one."""
        dbs = self._shared.dbs
        with self._shared.lock:
            if _TYPES not in dbs:  # the writer may have created it since this opened
                try:
                    if _META not in dbs:
                        dbs[_META] = self._env.open_db(_META, create=False)
                    dbs[_TYPES] = self._env.open_db(_TYPES, create=False)
                except lmdb.NotFoundError:
                    return None
                except lmdb.Error as e:
                    raise EventLogError(f"cannot read event log {self.path}: {e}") from e
            with self._begin() as txn:
                upto = txn.get(_TYPES_UPTO, db=dbs[_META])
        return None if upto is None else (dbs[_TYPES], unpack_seq(upto))

    def _type_chunks(
        self, prefixes: tuple[str, ...], since: int, until: int | None
    ) -> Iterator[_Chunk]:
        """Records of the matching types through the by-type index, in seq order.

        Each transaction lists the matching types (a seek per type, skipping the rest),
        takes at most ``_CHUNK`` seqs of each after ``pos``, keeps those below the first
        truncated type's last one (so that the merge is complete), and reads them.
        Records after the index's ``types_upto`` are filtered by their heads.
        """
        index = self._types_db()
        if index is None:
            yield from self._head_filtered(self._seq_chunks(since, until), prefixes)
            return
        db, upto = index
        stop = upto if until is None else min(until, upto)
        wanted = [p.encode() for p in prefixes]
        pos = since
        while pos < stop:
            bound = pack_seq(stop)
            start = pack_seq(pos + 1)
            chunk: _Chunk = []
            more = False
            with self._shared.lock, self._begin() as txn:
                cur = txn.cursor(db=db)
                seqs: list[bytes] = []
                for type_key in _matching_types(cur, wanted):
                    found = 0
                    if cur.set_range(type_key + start):
                        for key in cur.iternext(keys=True, values=False):
                            if not key.startswith(type_key):
                                break
                            seq = key[len(type_key) :]
                            if seq > bound:
                                break
                            seqs.append(seq)
                            found += 1
                            if found >= _CHUNK:
                                more = True
                                bound = min(bound, seq)
                                break
                seqs = sorted({s for s in seqs if s <= bound})
                get, events = txn.get, self._events
                for seq in seqs:
                    data = get(seq, db=events)
                    if data is not None:
                        chunk.append((seq, data))
            if chunk:
                yield chunk
            if not more:
                break
            pos = unpack_seq(bound)
        if until is None or until > upto:
            tail = self._seq_chunks(max(since, upto), until)
            yield from self._head_filtered(tail, prefixes)

    def _session_chunks(self, session: bytes, since: int, until: int | None) -> Iterator[_Chunk]:
        prefix = session + b"\x00"
        last = None if until is None else pack_seq(until)
        pos = since
        while True:
            chunk: _Chunk = []
            with self._shared.lock, self._begin() as txn:
                cur = txn.cursor(db=self._sessions)
                if cur.set_range(_session_key(session, pack_seq(pos + 1))):
                    for key in cur.iternext(keys=True, values=False):
                        if not key.startswith(prefix) or len(key) != len(prefix) + 8:
                            break
                        seq = key[-8:]
                        if last is not None and seq > last:
                            break
                        data = txn.get(seq, db=self._events)
                        if data is not None:
                            chunk.append((seq, data))
                        if len(chunk) >= _CHUNK:
                            break
            if not chunk:
                return
            yield chunk
            if len(chunk) < _CHUNK:
                return
            pos = unpack_seq(chunk[-1][0])

    def session_ids(self) -> list[str]:
        """Return every session id that has events, sorted (skips through the index)."""
        out: list[str] = []
        with self._shared.lock, self._begin() as txn:
            cur = txn.cursor(db=self._sessions)
            found = cur.first()
            while found:
                key = cur.key()
                session = key[:-9]
                out.append(session.decode())
                # Jump past every key of this session: NUL+seq sorts below NUL+1.
                found = cur.set_range(session + b"\x01")
        return out

    # --- snapshots ------------------------------------------------------------------

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Store ``snapshot`` under its name, replacing an older one.

        Raises:
            EventLogError: read-only log or LMDB failure.
        """
        if self.readonly:
            raise EventLogError(f"event log {self.path} is open read-only")
        data = CODEC.encode(snapshot)
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    txn.put(snapshot.name.encode(), data, db=self._snapshots)
                return
            except lmdb.MapFullError:
                self._grow()
            except lmdb.Error as e:
                what = f"saving snapshot {snapshot.name!r} in"
                raise self._write_error(what, e, len(data)) from e

    def load_snapshot(self, name: str) -> Snapshot | None:
        """Return the snapshot saved under ``name``, or None."""
        with self._shared.lock, self._begin() as txn:
            data = txn.get(name.encode(), db=self._snapshots)
        return None if data is None else msgspec.msgpack.decode(data, type=Snapshot)

    # --- size -----------------------------------------------------------------------

    def size_bytes(self) -> int:
        """Return the bytes in use by the log (pages used, not the sparse map size)."""
        info = self._env.info()
        stat = self._env.stat()
        return int((info["last_pgno"] + 1) * stat["psize"])

    def map_size(self) -> int:
        """Return the current map size in bytes (the log's capacity before it grows)."""
        return int(self._env.info()["map_size"])
