"""What every actor process does around its work: logs, parent death, ready handshake.

An actor process is started by the supervisor with ``--ready-fd N``: the write end of a
pipe on which it writes one JSON line once it is ready to work (the journal: after
binding, with the endpoints it bound), then closes it. It also asks the kernel to send it
SIGTERM if the supervisor dies (Linux ``PR_SET_PDEATHSIG``), so a ``kill -9`` of the
supervisor leaves no orphans behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import psutil

from ap_actors.errors import StartupError

_PR_SET_PDEATHSIG = 1


def die_with_parent(expected_parent: int | None = None) -> None:
    """Ask for SIGTERM when the parent process exits (Linux; a no-op elsewhere).

    Args:
        expected_parent: the supervisor's pid; if the parent is already another
            process (the supervisor died before this call), exit at once.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if expected_parent is not None and os.getppid() != expected_parent:
        raise SystemExit(0)


def signal_ready(ready_fd: int | None, payload: dict[str, Any] | None = None) -> None:
    """Write one JSON line (``payload`` or ``{}``) to ``ready_fd`` and close it."""
    if ready_fd is None:
        return
    data = msgspec.json.encode(payload or {}) + b"\n"
    try:
        os.write(ready_fd, data)
    finally:
        with contextlib.suppress(OSError):
            os.close(ready_fd)


def spawn_with_ready(
    argv: list[str],
    *,
    log_path: Path,
    env: dict[str, str] | None = None,
    new_session: bool = False,
) -> tuple[subprocess.Popen[bytes], bytes]:
    """Start ``argv + ["--ready-fd", N]`` and wait for its ready line.

    The process's stdout and stderr are appended to ``log_path``.

    Returns:
        ``(process, line)``: the line the process wrote on its ready pipe, or ``b""``
        when it exited (or closed the pipe) without writing one.
    """
    read_fd, write_fd = os.pipe()
    try:
        with open(log_path, "ab") as log_file:
            proc = subprocess.Popen(
                [*argv, "--ready-fd", str(write_fd)],
                pass_fds=(write_fd,),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                env=env,
                start_new_session=new_session,
            )
    finally:
        os.close(write_fd)
    with os.fdopen(read_fd, "rb") as ready:
        return proc, ready.readline()


def hold_lock(path: Path, what: str) -> int:
    """Take an exclusive ``flock`` on ``path`` for the life of this process.

    The kernel releases it when the process exits, however it exits (also ``kill -9``).

    Returns:
        The file descriptor that holds the lock (keep it open).

    Raises:
        StartupError: another live process holds it; ``what`` names the holder.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise StartupError(f"{what} (pid {holder}) already holds {path}") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


class TreeSampler:
    """Samples the CPU and memory of a process and its descendants, call after call.

    CPU percent is measured between two calls, so the :class:`psutil.Process` objects of
    the tree are kept from one call to the next (a fresh object has no earlier sample and
    always reads 0). A process seen for the first time counts 0 in that call.
    """

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}

    def sample(self, pid: int) -> tuple[float, int]:
        """Return the CPU percent (of one core, summed over the tree, since the previous
        call) and the resident memory in bytes of ``pid`` and its descendants; (0.0, 0)
        when the process is gone."""
        try:
            root = self._procs.get(pid) or psutil.Process(pid)
            found = [root, *root.children(recursive=True)]
        except psutil.Error:
            self._procs.clear()
            return 0.0, 0
        procs: dict[int, psutil.Process] = {}
        for p in found:
            known = self._procs.get(p.pid)
            procs[p.pid] = known if known is not None and known == p else p  # same pid and start
        self._procs = procs
        cpu = 0.0
        rss = 0
        for p in procs.values():
            with contextlib.suppress(psutil.Error):
                cpu += p.cpu_percent(interval=None)
                rss += p.memory_info().rss
        return round(cpu, 1), rss


def kill_group(pgid: int, grace_s: float = 0.0) -> None:
    """SIGTERM the process group ``pgid``, then SIGKILL it after ``grace_s`` seconds if a
    member lingers (at once with ``grace_s = 0``). Blocking: call it from a thread in async
    code. A group that is gone, or not ours to signal, is left alone."""
    try:
        os.killpg(pgid, signal.SIGTERM if grace_s > 0 else signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
