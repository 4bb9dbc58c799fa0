"""Follow a growing text file line by line, across truncation and rotation (``tail -F``).

The log monitor tails each worker's transcript and the agent's own log files with
:func:`tail_lines`::

    stop = asyncio.Event()          # set it once the writer process has exited
    async for line in tail_lines(transcript, stop=stop):
        for activity in parser.feed(line.text):
            ...

How a change is noticed: the file's parent directory is watched, non-recursively, for
changes to paths whose name starts with the file's name (``agent.log``, and
``agent.log.1`` once logrotate has renamed it). On Linux an inotify(7) descriptor (the
``inotify_simple`` library) is read by the event loop itself (``add_reader``): no
thread, no polling, a few tens of microseconds per notification, which matters with a
hundred tails on a machine (a ``make bench-scale`` finding: watchfiles' Rust loop woke
every ``STEP_MS`` to take the GIL and handed each change over through an anyio worker
thread, about 1 ms of CPU per line at 50 lines/s). There the directory is watched only
for names that come and go (created, renamed, deleted), and the file itself for its
writes, as is each file the path named before (a rotated file keeps its watch): the
transcripts of a session share one directory, and a directory-wide watch for writes
woke every tail in it for each line of every agent (with 20 busy agents, 19 wake-ups
in 20 for nothing, which doubled a log monitor's CPU per line). Elsewhere
``watchfiles`` does it: its loop checks for changes every ``STEP_MS`` and returns a
batch once a step passes without a new one, or after ``DEBOUNCE_MS`` in a steady stream
(its defaults, 50 ms step and 1,600 ms debounce, would hold a line back for up to
1.6 s), in one of anyio's worker threads (its default limiter allows 40). A safety
re-check every ``poll_s`` seconds (one timer for the tail's life, whether notifications
come or not: a timeout armed per wait would cost a timer per line) reads the file even
without a notification, so a missed one (a writer to the old file after a rename, a
parent directory created late, a file system without inotify, no inotify instance left
for this user) delays a line by at most ``poll_s`` and never stalls the tail.

Each tail reads the file on the event loop: reads of a local file do not block for
long, and they are done in 1 MiB chunks. A look at the file costs one ``pread`` when
it grew (a short read is its end: what is written next comes with its own
notification), and an ``fstat`` for truncation only when nothing new was there, plus
the ``stat`` of the path that tells a rotation.

Rotation and truncation (generations): the first file read is generation 0.

- Truncation (``copytruncate``, or ``> file``): the file's size fell below the read
  position. Reading restarts at offset 0 with ``generation + 1``. A truncation followed
  by more writes than were read before the tail looks cannot be told from an append;
  writers that open the file without ``O_APPEND`` keep writing at their old offset after
  ``copytruncate`` and leave NUL bytes, which are yielded as they are.
- Rotation (``mv file file.1`` and a new ``file``): the path names another file. The old
  file is read to its end first (a writer may still append to it until it reopens), then
  the new one from offset 0 with ``generation + 1``. While the path names nothing, the
  old file is still followed.

A line that has not got its newline yet is held back until it does, or until the file
is truncated or rotated away, or until ``stop`` is set; then it is yielded as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import sys
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path

import msgspec
from watchfiles import Change, awatch

STEP_MS = 2
"""watchfiles' check interval, ms: a lone write is noticed within about two steps."""

DEBOUNCE_MS = 20
"""Longest watchfiles groups a steady stream of changes before reporting them, ms."""

_CHUNK = 1 << 20  # bytes per read: bounds the time one read keeps the event loop busy

# inotify(7) on Linux, through the inotify_simple library.
if sys.platform.startswith("linux"):
    from inotify_simple import INotify, parse_events
    from inotify_simple import flags as _in

    # Plain ints: each notification is tested against them.
    # The directory: names that appear, move or go (not writes to its files).
    _IN_DIR_MASK = int(
        _in.MOVED_FROM
        | _in.MOVED_TO
        | _in.CREATE
        | _in.DELETE
        | _in.DELETE_SELF
        | _in.MOVE_SELF
        | _in.ONLYDIR
    )
    # The file: writes (also truncation), metadata, close after writing, its own move.
    _IN_FILE_MASK = int(_in.MODIFY | _in.ATTRIB | _in.CLOSE_WRITE | _in.MOVE_SELF | _in.DELETE_SELF)
    _IN_GONE = int(_in.DELETE_SELF | _in.MOVE_SELF | _in.IGNORED)  # the directory itself went
    _IN_Q_OVERFLOW = int(_in.Q_OVERFLOW)  # events were dropped: anything may have changed
    _INOTIFY_READ = 4096  # bytes per read(2) of the descriptor (more stays readable)
else:  # pragma: no cover - watchfiles does it elsewhere
    INotify = None


class Line(msgspec.Struct, frozen=True):
    """One complete line of a tailed file."""

    text: str  # The line without its "\n" (and without a "\r" before it); UTF-8, errors replaced.
    number: int  # 1-based line number within this generation of the file.
    generation: int  # 0 for the first file; +1 after each truncation or rotation.


async def tail_lines(
    path: str | Path,
    *,
    stop: asyncio.Event | None = None,
    from_start: bool = True,
    poll_s: float = 0.5,
) -> AsyncGenerator[Line, None]:
    """Yield the lines of ``path`` as they are written, until ``stop`` is set.

    The file need not exist yet (nor its parent directory): the tail waits for it. Lines
    are yielded in file order, each once, a line only when it is complete (see the
    module docstring for partial lines, truncation and rotation). When ``stop`` is set,
    what is left up to the end of the file is yielded, a final line without newline
    included, and the iteration ends; with ``stop=None`` it runs until the caller stops
    iterating. Cancelling the iterating task, or closing the generator (wrap it in
    ``contextlib.aclosing`` to close it at ``break``), stops the watcher thread within
    a few ms; a generator left unclosed is closed when it is garbage collected.

    Args:
        path: the file to follow.
        stop: set it when the writer is done (e.g. its process exited).
        from_start: True yields the lines already in the file; False starts after its
            last complete line (line numbers still count the skipped lines). A file
            that does not exist when the tail first looks is read from its start.
        poll_s: seconds between safety re-checks, made whether a notification came or
            not; also the polling interval while the parent directory does not exist.

    Yields:
        :class:`Line` values.

    Raises:
        IsADirectoryError: ``path`` is a directory.
        OSError: the file exists but cannot be opened or read (e.g. permission denied).
    """
    path = Path(path)
    stop = stop if stop is not None else asyncio.Event()
    wake = asyncio.Event()  # set by the watcher and by stop; cleared before each read
    done = asyncio.Event()  # tells the watcher thread to return
    follower = _Follower(path, skip_existing=not from_start)
    watcher = asyncio.create_task(_watch(path, wake, done, poll_s), name=f"tail {path}")
    stopper = asyncio.create_task(_forward(stop, wake))
    # The safety re-check: one timer per poll_s, not one per wait (a line is one wait).
    safety = _Ticker(poll_s, wake)
    # Let the watcher arm inotify before the first read (awatch creates its watch
    # synchronously on its first step), so nothing written after that read is missed.
    await asyncio.sleep(0)
    try:
        while True:
            wake.clear()
            final = stop.is_set()
            for line in follower.read_new():
                yield line
            if final:
                for line in follower.flush_partial():
                    yield line
                return
            await wake.wait()
    finally:
        safety.cancel()
        done.set()
        stopper.cancel()
        follower.close()
        # The watcher's thread returns within a step once ``done`` is set.
        await asyncio.gather(watcher, stopper, return_exceptions=True)


class _Ticker:
    """Sets ``wake`` every ``period_s`` seconds until cancelled."""

    def __init__(self, period_s: float, wake: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._period_s = period_s
        self._wake = wake
        self._handle = self._loop.call_later(period_s, self._tick)

    def _tick(self) -> None:
        self._wake.set()
        self._handle = self._loop.call_later(self._period_s, self._tick)

    def cancel(self) -> None:
        self._handle.cancel()


async def _forward(stop: asyncio.Event, wake: asyncio.Event) -> None:
    await stop.wait()
    wake.set()


async def _watch(path: Path, wake: asyncio.Event, done: asyncio.Event, poll_s: float) -> None:
    """Set ``wake`` whenever ``path`` (or a rotated copy) changes, until ``done`` is set.

    inotify on the event loop on Linux (:func:`_inotify`), else watchfiles
    (:func:`_watchfiles`). While the parent directory is missing, or after it was deleted
    (its watch is then gone), or when no watch can be set up, look again every ``poll_s``.
    """
    name = path.name
    parent = os.path.abspath(path.parent)
    while not done.is_set():
        if os.path.isdir(parent):
            # OSError: the directory vanished while the watch was being armed, or the
            # user's inotify instances are used up (the poll below still reads the file).
            with contextlib.suppress(OSError):
                if INotify is not None:
                    await _inotify(parent, name, wake, done)
                else:
                    await _watchfiles(parent, name, wake, done)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(poll_s):
                await done.wait()
        wake.set()


async def _inotify(parent: str, name: str, wake: asyncio.Event, done: asyncio.Event) -> None:
    """Watch ``parent`` and the file ``name`` in it with an inotify descriptor
    (``inotify_simple``) read by the event loop; return when ``done`` is set or the
    directory is gone.

    Raises:
        OSError: the descriptor or the directory's watch cannot be made (e.g. ``EMFILE``:
            the user's ``fs.inotify.max_user_instances`` are used up; ``ENOENT``: no
            directory).
    """
    inotify = INotify(nonblocking=True)  # OSError (EMFILE: no instance left) goes up
    loop = asyncio.get_running_loop()
    gone = asyncio.Event()
    fd = inotify.fileno()
    path = os.path.join(parent, name)

    def watch_file() -> None:
        # The file the path names now (a new one after a rotation; its predecessor keeps
        # its watch, so late writes to it are seen). Not there yet: the directory's
        # watch tells when it is.
        with contextlib.suppress(OSError):
            inotify.add_watch(path, _IN_FILE_MASK)

    def on_events() -> None:
        try:  # one read(2) (INotify.read would ask for the size first)
            events = parse_events(os.read(fd, _INOTIFY_READ))
        except BlockingIOError:
            return
        for event in events:
            if event.wd != directory:  # a file we watch, or Q_OVERFLOW (no watch)
                wake.set()
                if event.mask & _IN_Q_OVERFLOW:
                    watch_file()  # a creation may have been among the dropped events
            elif event.mask & _IN_GONE:
                gone.set()
                wake.set()
            elif event.name.startswith(name):
                wake.set()
                if event.name == name:
                    watch_file()

    try:
        directory = inotify.add_watch(parent, _IN_DIR_MASK)
        watch_file()
        loop.add_reader(fd, on_events)
        try:
            waits = {asyncio.ensure_future(gone.wait()), asyncio.ensure_future(done.wait())}
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
        finally:
            loop.remove_reader(fd)
    finally:
        inotify.close()


async def _watchfiles(parent: str, name: str, wake: asyncio.Event, done: asyncio.Event) -> None:
    """Watch ``parent`` with watchfiles (a thread); return when ``done`` is set or the
    directory is gone."""
    parent_gone = (Change.deleted, parent)

    def relevant(_change: Change, changed: str) -> bool:
        return os.path.basename(changed).startswith(name) or changed == parent

    changes_of = awatch(
        parent,
        watch_filter=relevant,
        debounce=DEBOUNCE_MS,
        step=STEP_MS,
        stop_event=done,
        recursive=False,
    )
    async with contextlib.aclosing(changes_of):
        async for changes in changes_of:
            wake.set()
            if parent_gone in changes:
                break


class _Follower:
    """The reading side of a tail: open file, position, held-back partial line, counters."""

    def __init__(self, path: Path, *, skip_existing: bool) -> None:
        self.path = path
        self.fd: int | None = None
        self.ident: tuple[int, int] | None = None  # (st_dev, st_ino) of the open file
        self.pos = 0  # bytes of the open file consumed
        self.partial = bytearray()  # bytes after the last newline read
        self.number = 0  # lines yielded in this generation
        self.generation = 0
        self.opened_once = False
        self.skip_existing = skip_existing

    def read_new(self) -> Iterator[Line]:
        """Yield the lines completed since the last call, switching files on rotation."""
        if self.fd is None and not self._open():
            return
        yield from self._read()
        while (ident := _ident_of(self.path)) is not None and ident != self.ident:
            # Rotated: finish the old file (its writer may have appended since), then
            # move to the new one.
            yield from self._read()
            yield from self.flush_partial()
            self.close()
            if not self._open():
                return
            yield from self._read()

    def flush_partial(self) -> Iterator[Line]:
        """Yield the held-back final line, if any (the file ends or is left)."""
        if self.partial:
            data = bytes(self.partial)
            self.partial.clear()
            yield self._line(data)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def _open(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            os.close(fd)
            raise IsADirectoryError(f"cannot tail {self.path}: it is a directory")
        self.fd, self.ident = fd, (st.st_dev, st.st_ino)
        self.pos, self.number = 0, 0
        if self.opened_once:
            self.generation += 1
        elif self.skip_existing:
            self._skip_complete_lines()
        self.opened_once = True
        return True

    def _skip_complete_lines(self) -> None:
        """Move past the lines already in the file, counting them."""
        assert self.fd is not None
        pos, after_last_newline = 0, 0
        while chunk := os.pread(self.fd, _CHUNK, pos):
            self.number += chunk.count(b"\n")
            last = chunk.rfind(b"\n")
            if last >= 0:
                after_last_newline = pos + last + 1
            pos += len(chunk)
        self.pos = after_last_newline

    def _read(self) -> Iterator[Line]:
        assert self.fd is not None
        chunk = os.pread(self.fd, _CHUNK, self.pos)
        # A file with bytes past our position is not shorter than it: fstat only when
        # there were none (truncated and written past it reads as appended to anyway).
        if not chunk and os.fstat(self.fd).st_size < self.pos:  # truncated
            yield from self.flush_partial()
            self.generation += 1
            self.pos, self.number = 0, 0
            chunk = os.pread(self.fd, _CHUNK, 0)
        while chunk:
            self.pos += len(chunk)
            parts = chunk.split(b"\n")
            if len(parts) == 1:
                self.partial += chunk
            else:
                if self.partial:
                    parts[0] = bytes(self.partial) + parts[0]
                self.partial = bytearray(parts.pop())
                for data in parts:
                    yield self._line(data)
            # A short read reached the end: what is written next comes with a notification.
            chunk = os.pread(self.fd, _CHUNK, self.pos) if len(chunk) == _CHUNK else b""

    def _line(self, data: bytes) -> Line:
        self.number += 1
        text = data.decode("utf-8", errors="replace")
        if text.endswith("\r"):
            text = text[:-1]
        return Line(text, self.number, self.generation)


def _ident_of(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (st.st_dev, st.st_ino)
