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

    Membership is psutil's ``children(recursive=True)``: ``pid`` and what descends from it
    through the current parents (a process whose parent exited is reparented away and
    leaves the tree). But that call reads ``/proc/<pid>/stat`` of every process on the
    machine (Linux has no list of a process's children without ``CONFIG_PROC_CHILDREN``):
    milliseconds per call with a few hundred processes, for each agent. So it is made
    only every ``rescan_every`` calls; in between the tree is followed incrementally:
    one ``psutil.pids()`` (a ``listdir`` of ``/proc``, no file read), the parent of each
    pid that was not there at the previous call, and the parent of each known member,
    read along with its CPU time from the one ``stat`` read. The full look is the safety
    net for what the increments cannot see: a pid that was in use at the previous call,
    freed, and taken by a new descendant within one interval (the pid space wrapped).

    Args:
        rescan_every: calls from one full look at every process to the next (>= 1).
    """

    def __init__(self, rescan_every: int = 30) -> None:
        self.rescan_every = max(1, rescan_every)
        self._root = 0  # the pid of the last call; another pid starts afresh
        self._procs: dict[int, psutil.Process] = {}  # the tree at the last call
        self._seen: set[int] = set()  # every pid on the machine at the last call
        self._calls = 0

    def sample(self, pid: int) -> tuple[float, int]:
        """Return the CPU percent (of one core, summed over the tree, since the previous
        call) and the resident memory in bytes of ``pid`` and its descendants; (0.0, 0)
        when the process is gone."""
        if pid != self._root:
            self._root, self._procs, self._calls = pid, {}, 0
        root = self._procs.get(pid)
        # A root not known (yet, or any more: its pid may name a new process) is looked
        # for afresh, with its descendants.
        full = self._calls % self.rescan_every == 0 or root is None or not root.is_running()
        self._calls += 1
        # Listed before the tree is looked at: a process started in between is new next time.
        pids = psutil.pids()
        fresh = [] if full else [p for p in pids if p not in self._seen]
        self._seen = set(pids)
        try:
            nodes = self._known(pid, full)
        except psutil.Error:  # the root is gone
            self._procs = {}
            return 0.0, 0
        for candidate in fresh:
            if candidate not in nodes:
                with contextlib.suppress(psutil.Error):
                    p = psutil.Process(candidate)
                    nodes[candidate] = (p, p.ppid(), None)
        children: dict[int, list[int]] = {}
        for child, (_, parent, _) in nodes.items():
            if child != pid:
                children.setdefault(parent, []).append(child)
        procs: dict[int, psutil.Process] = {}
        cpu, rss = 0.0, 0
        stack = [pid]
        while stack:
            member = stack.pop()
            if member in procs:  # a cycle of reused pids (psutil guards against it too)
                continue
            p, _, measured = nodes[member]
            procs[member] = p
            stack.extend(children.get(member, ()))
            if measured is None:  # new in the tree: this primes its CPU clock
                with contextlib.suppress(psutil.Error):
                    measured = _measure(p)
            if measured is not None:
                cpu += measured[0]
                rss += measured[1]
        self._procs = procs
        return round(cpu, 1), rss

    def _known(self, pid: int, full: bool) -> dict[int, _Node]:
        """The root and the members of the tree known so far (all of them on a full look),
        each with its parent and, when it was measured before, its measurement. Without
        a full look the root must be known and running (:meth:`sample` checks it).

        Raises:
            psutil.Error: the root is gone (or its pid names another process now).
        """
        if full:
            root = psutil.Process(pid)
            found = [root, *root.children(recursive=True)]
            # Same pid and start time: the known object, which holds the CPU baseline.
            live = [k if (k := self._procs.get(p.pid)) is not None and k == p else p for p in found]
        else:  # is_running: False also when the pid names another process by now
            live = [p for p in self._procs.values() if p.pid == pid or p.is_running()]
        nodes: dict[int, _Node] = {}
        for p in live:
            measured = self._procs.get(p.pid) is p
            with contextlib.suppress(psutil.Error), p.oneshot():  # one read of its stat
                nodes[p.pid] = (p, p.ppid(), _measure(p) if measured else None)
        if pid not in nodes:
            raise psutil.NoSuchProcess(pid)
        return nodes


_Node = tuple[psutil.Process, int, tuple[float, int] | None]
"""A process, its parent pid and (CPU percent, RSS bytes) if it was sampled before."""


def _measure(p: psutil.Process) -> tuple[float, int]:
    """CPU percent since ``p``'s previous measurement (0.0 on its first), and its RSS."""
    return p.cpu_percent(None), int(p.memory_info().rss)


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
        if not group_alive(pgid):
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def group_alive(pgid: int) -> bool:
    """True while a member of process group ``pgid`` runs.

    Zombies do not count: a group whose parent died (a killed worker's agent) is reaped
    by init or a subreaper, maybe late, and ``killpg(pgid, 0)`` succeeds on it until then.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False
