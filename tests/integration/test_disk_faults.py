"""Disk faults under a real journal: a map that starts tiny, and a disk that fills up.

The disk is a real tmpfs mounted over the journal's event log directory
(``<state dir>/eventlog``); the journal's config, lock and stderr log stay on the normal
disk so that the test can read what the journal logged. Mounting needs root: as another
user the test runs itself again under ``unshare --user --map-root-user --mount`` (a
private mount namespace), and is skipped, saying why, when neither works.

What LMDB does on a full disk (py-lmdb 3, LMDB 0.9; seen with strace): without
``MDB_WRITEMAP`` the map is only address space, so growing it writes nothing and never
fails for lack of room; ``data.mdb`` grows when a commit writes its pages, and that
write comes back short (``mdb_txn_commit: Input/output error``, LMDB's EIO for "short
write, filesystem full?") or fails with ENOSPC (``lmdb.DiskError``). The transaction is
aborted and the log stays as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq
import zmq.asyncio

from ap_actors import protocol as P
from ap_actors.bus import Emitter, Subscriber
from ap_actors.eventlog import EventLog
from ap_actors.events import CODEC, WorkerActivity, WorkerError, stamp
from ap_actors.history import HistoryWriter, check
from tests.integration.conftest import FREE_PORTS, JournalProcess, start_journal

MIB = 1024 * 1024
TINY_MAP = FREE_PORTS + "[eventlog]\nmap_size_mb = 1\n"
_IN_NAMESPACE = "AP_TEST_PRIVATE_MOUNTS"  # set when this module runs under unshare
_EMITTERS: list[multiprocessing.process.BaseProcess] = []  # this test's emitter processes


# --- emitter processes ----------------------------------------------------------------


def _emit_process(ingest: str, name: str, count: int, history: str, queued: Any) -> None:
    """Emit ``count`` ~1 KB events in batches of 100, recording them in ``history``.

    Sets ``queued`` (a multiprocessing Event) once every event is invoked (handed to
    the emitter); returns (exit code 0) once every event is acknowledged. The emitter's
    warnings (storage_error retries, resends) go to ``<history>.log``.
    """
    logging.basicConfig(filename=history + ".log", level=logging.INFO)
    asyncio.run(_emit_all(ingest, name, count, history, queued))


async def _emit_all(ingest: str, name: str, count: int, history_path: str, queued: Any) -> None:
    history = HistoryWriter(history_path, source=name)
    pad = "x" * 1000
    chunks = [
        [
            WorkerActivity(worker_id=name, description=f"{name} {i} {pad}")
            for i in range(k, min(k + 100, count))
        ]
        for k in range(0, count, 100)
    ]
    async with Emitter(ingest, source=name, max_batch_events=100) as emitter:
        sends = [asyncio.ensure_future(history.emit_many(emitter, c)) for c in chunks]
        await asyncio.sleep(0)  # one turn of the loop: each send queues its events
        queued.set()
        await asyncio.gather(*sends)
    history.close()


async def _start_emitters(ingest: str, tmp_path: Path, n: int, count: int) -> list[Path]:
    """Start ``n`` emitter processes; return their histories once all events are queued."""
    ctx = multiprocessing.get_context("spawn")
    histories = [tmp_path / f"emitter-{k}.jsonl" for k in range(n)]
    queued = [ctx.Event() for _ in histories]
    for k, (history, event) in enumerate(zip(histories, queued, strict=True)):
        args = (ingest, f"e{k}", count, str(history), event)
        _EMITTERS.append(ctx.Process(target=_emit_process, args=args, daemon=True))
        _EMITTERS[-1].start()
    for event in queued:
        await asyncio.to_thread(event.wait)
    return histories


async def _join_emitters() -> None:
    for p in _EMITTERS:
        await asyncio.to_thread(p.join)
        assert p.exitcode == 0, f"emitter {p.name} exited with {p.exitcode}"


@pytest.fixture(autouse=True)
def _stop_emitters() -> Iterator[None]:
    yield
    for p in _EMITTERS:
        if p.is_alive():
            p.kill()
            p.join()
    _EMITTERS.clear()


# --- the journal's log ----------------------------------------------------------------


def _journal_lines(j: JournalProcess) -> list[dict[str, object]]:
    """The JSON lines of the journal's log (stderr), every journal started on it."""
    out = []
    for line in (j.state_dir / "journal.log").read_text().splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


def _stop(j: JournalProcess) -> None:
    if j.proc.poll() is None:
        j.proc.terminate()
        j.proc.wait(timeout=20)


# --- map growth -----------------------------------------------------------------------


async def test_a_journal_whose_map_starts_at_one_mib_grows_it_under_a_burst_and_loses_nothing(
    tmp_path: Path,
) -> None:
    j = start_journal(tmp_path / "state", TINY_MAP)
    try:
        caught_up = asyncio.Event()

        async def on_caught_up(head: int) -> None:
            caught_up.set()

        # A reader in another process than the journal, reading the log directly (LMDB,
        # read-only) for its history and for the gaps a small high-water mark makes.
        subscriber = Subscriber(j.bus, log_path=j.log, rcvhwm=200, on_caught_up=on_caught_up)
        total = 2 * 3000  # ~6 MB: the map doubles from 1 MiB at least three times
        received: list[tuple[int, str]] = []

        async def follow() -> None:
            async for record in subscriber:
                received.append((record.seq, record.event.id))
                if len(received) == total:
                    return

        follower = asyncio.create_task(follow())
        await caught_up.wait()
        histories = await _start_emitters(j.ingest, tmp_path, 2, total // 2)
        await _join_emitters()
        await follower
        await subscriber.close()
        assert j.proc.poll() is None

        report = check(j.log, histories)
        assert report.clean, report.summary()
        assert (report.acked, report.records, report.indeterminate) == (total, total, 0)
        with EventLog(j.log, readonly=True) as log:
            stored = [(r.seq, r.event.id) for r in log.read()]
        assert received == stored  # every record, in order, none twice
        grown = [line for line in _journal_lines(j) if "map grown" in str(line["msg"])]
        assert len(grown) >= 3, grown
    finally:
        _stop(j)
    # Reopened with the 1 MiB it started with, the log is as large as it grew.
    with EventLog(j.log, readonly=True, map_size=MIB) as log:
        assert log.map_size() > 4 * MIB


# --- a full disk ----------------------------------------------------------------------


@contextlib.contextmanager
def _tmpfs(path: Path, size_kib: int) -> Iterator[None]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(path)],
        check=True,
        capture_output=True,
    )
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def _resize_tmpfs(path: Path, size_kib: int) -> None:
    subprocess.run(
        ["mount", "-o", f"remount,size={size_kib}k", str(path)], check=True, capture_output=True
    )


def _mounting_works_or_rerun_privately(request: pytest.FixtureRequest) -> bool:
    """True to go on here; False when the test ran (and passed) in a private namespace.

    Skips, saying why, when this user may not mount a tmpfs in any way tried.
    """
    if os.geteuid() == 0:
        return True
    if os.environ.get(_IN_NAMESPACE) or shutil.which("unshare") is None:
        pytest.skip("mounting a tmpfs needs root, or `unshare --user --map-root-user --mount`")
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip(
            "mounting a tmpfs needs root or a user namespace, and unshare failed:"
            f" {probe.stderr.decode(errors='replace').strip()}"
        )
    argv = ["unshare", "--user", "--map-root-user", "--mount"]
    argv += [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"]
    argv.append(f"{__file__}::{request.node.name}")
    env = {**os.environ, _IN_NAMESPACE: "1"}
    done = subprocess.run(
        argv, capture_output=True, text=True, env=env, cwd=request.config.rootpath
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return False


async def _append(sock: zmq.asyncio.Socket, event: WorkerError) -> list[bytes]:
    await sock.send_multipart([P.APPEND, CODEC.encode([event])])
    return await sock.recv_multipart()


async def _probe_until_refused(
    ingest: str, history: HistoryWriter, refusals: int
) -> dict[str, object]:
    """Append one 64 KB event at a time until ``refusals`` of them got storage_error.

    Each request and its outcome go to ``history`` (``fail`` for a refused one: the
    journal said nothing of it was appended). Returns the last error reply's payload.
    """
    sock = zmq.asyncio.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(ingest)
    refused = 0
    try:
        while True:
            event = stamp(WorkerError(worker_id="probe", error="p" * 65536), source="probe")
            assert isinstance(event, WorkerError)
            history.record("invoke", [event.id])
            reply = await _append(sock, event)
            if reply[0] == P.OK:
                history.record("ok", [event.id], seqs=msgspec.msgpack.decode(reply[1]))
                continue
            err = msgspec.msgpack.decode(reply[1])
            assert err["code"] == P.E_STORAGE, err
            history.record("fail", [event.id], error=err["message"])
            refused += 1
            if refused == refusals:
                return dict(err)
    finally:
        sock.close()


def _episodes(lines: list[dict[str, object]]) -> tuple[list[str], int]:
    """The journal's disk lines in order ("error" / "resumed") and the refusals counted
    by its "resumed" lines."""
    kinds = []
    counted = 0
    for line in lines:
        msg = str(line["msg"])
        if msg.startswith("append failed, nothing acknowledged"):
            kinds.append("error")
        elif m := re.match(r"appends resumed after (\d+) refused", msg):
            kinds.append("resumed")
            counted += int(m.group(1))
    return kinds, counted


def _alternate(kinds: list[str]) -> bool:
    """One error line per episode: errors and resumptions alternate, error first."""
    return all(k == ("error" if i % 2 == 0 else "resumed") for i, k in enumerate(kinds))


async def test_a_full_disk_refuses_appends_with_storage_error_and_they_resume_when_space_returns(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if not _mounting_works_or_rerun_privately(request):
        return
    state = tmp_path / "state"
    disk = state / "eventlog"
    with _tmpfs(disk, 1536):
        j = start_journal(state, TINY_MAP)
        restarted: JournalProcess | None = None
        probe = HistoryWriter(tmp_path / "probe.jsonl", source="probe")
        try:
            # Two emitters with ~4 MB between them fill the 1.5 MB disk, and a probe
            # appending one event at a time waits for the journal to refuse it.
            histories = await _start_emitters(j.ingest, tmp_path, 2, 2000)
            refusals = 20
            histories.append(probe.path)
            err = await _probe_until_refused(j.ingest, probe, refusals)

            # (a) a clear one-line error naming the disk and the fix, logged once per
            # episode however many requests are refused; (c) the journal stays up.
            message = str(err["message"])
            assert "disk is full" in message and "free space" in message, message
            assert str(disk) in message and "\n" not in message, message
            assert j.proc.poll() is None
            lines = _journal_lines(j)
            kinds, _ = _episodes(lines)
            assert kinds and _alternate(kinds), kinds
            assert kinds.count("error") < refusals, kinds
            assert not [line for line in lines if "exc" in line or line["level"] == "CRITICAL"]
            assert "Traceback" not in (state / "journal.log").read_text()
            assert all(p.is_alive() for p in _EMITTERS)  # their batches wait for room

            # (b) nothing acknowledged is missing, before and after a kill -9.
            report = check(j.log, histories)
            assert report.clean and report.failed >= refusals, report.summary()
            j.proc.send_signal(signal.SIGKILL)
            j.proc.wait()
            after_kill = check(j.log, histories)
            assert after_kill.clean, after_kill.summary()
            assert after_kill.last_seq >= report.last_seq

            # A journal restarted on the still-full disk opens the log, comes up, refuses.
            restarted = start_journal(state, TINY_MAP, ingest=j.ingest, bus=j.bus, replay=j.replay)

            await _probe_until_refused(restarted.ingest, probe, 1)

            # (d) space returns: the emitters' refused batches go in by themselves.
            _resize_tmpfs(disk, 32 * 1024)
            await _join_emitters()
            assert restarted.proc.poll() is None
        finally:
            probe.close()  # also when a check failed: no file left to the garbage collector
            for journal in (j, restarted):
                if journal is not None:
                    _stop(journal)
        final = check(j.log, histories)
        assert final.clean, final.summary()
        assert (final.lost, final.duplicated, final.gaps) == (0, 0, 0)
        probe_acked = probe.path.read_text().count('"op":"ok"')
        assert final.acked == 2 * 2000 + probe_acked  # every emitter event, in the end
        assert final.records == final.acked  # and nothing else
        with EventLog(j.log, readonly=True, map_size=MIB) as log:
            assert log.map_size() > MIB

        # The emitters were refused and backed off, and the restarted journal's disk
        # episodes each ended with appends resuming.
        warned = "".join(Path(str(h) + ".log").read_text() for h in histories[:2])
        assert "could not store a batch" in warned
        lines = _journal_lines(j)
        ready = [i for i, line in enumerate(lines) if line["msg"] == "journal ready"]
        kinds, counted = _episodes(lines[ready[-1] :])
        assert kinds and _alternate(kinds) and kinds[-1] == "resumed", kinds
        assert counted >= kinds.count("error")
