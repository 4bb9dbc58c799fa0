"""The journal: the single writer of the event log and the owner of the three endpoints.

Source: ``DESIGN.md``, "The event log and the bus" and "Wire protocol". Loop (group
commit): wait for ingest traffic; drain every waiting ``append`` request; validate each
batch (a batch with one invalid event is refused whole with an ``error`` reply); append
all valid batches in one LMDB write transaction (one fsync); acknowledge each sender with
its seqs; then publish the new records on the bus in seq order. Nothing reaches the bus
that is not durable. Replay requests are served by a second thread with its own socket and
short read transactions, so a long replay never delays appends.

Run as a process: ``python -m ap_actors.actors.journal --state-dir DIR [--config F]
[--ingest URL --bus URL --replay URL] [--ready-fd N]``. Exit codes: 0 after SIGTERM,
``EXIT_STARTUP`` (7) when an endpoint cannot be bound, ``EXIT_EVENTLOG`` (6) when the log
cannot be opened, ``EXIT_CONFIG`` (3) for a bad config.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import zmq

from ap_actors import protocol as P
from ap_actors.config import Config, eventlog_dir, load_config, resolve_state_dir
from ap_actors.errors import ApError, DecodeError, EventLogError, StartupError
from ap_actors.eventlog import Appended, EventLog, Prepared
from ap_actors.events import CODEC
from ap_actors.ingest import validate_batch
from ap_actors.logs import setup_logging
from ap_actors.process import die_with_parent, hold_lock, signal_ready
from ap_actors.security import CurveKeys, require_keys, start_authenticator

log = logging.getLogger("ap_actors.journal")

_SNDMORE = int(zmq.SNDMORE)

_MAX_GROUP_EVENTS = 50_000  # events per group commit; bounds one transaction's latency
_POLL_MS = 100  # how often the loop looks at the stop flag while idle
_REPLAY_SEND_TIMEOUT_MS = 5_000  # a replay client that reads nothing this long is dropped


class ReplayRequest(msgspec.Struct, frozen=True):
    """Payload of a replay request (see `protocol.py`)."""

    since: int = 0
    limit: int = P.DEFAULT_REPLAY_LIMIT
    topics: list[str] | None = None
    session_id: str | None = None


class Endpoints(msgspec.Struct, frozen=True):
    """The endpoints the journal bound (concrete ports when ``*`` was asked for)."""

    ingest: str
    bus: str
    replay: str


def _error_reply(code: str, message: str, index: int = -1) -> list[bytes]:
    return [P.ERROR, CODEC.encode({"code": code, "message": message, "index": index})]


class Journal:
    """The journal's sockets and loops (one instance per journal process).

    Args:
        log: the event log, opened for writing.
        ingest, bus, replay: endpoints to bind (``tcp://host:*`` binds a free port).
        max_batch_events, max_batch_bytes: limits of one append request.
        bus_hwm: messages the bus queues per subscriber before dropping for it (the
            subscriber then refills the gap from the log).
        curve: the mesh's CurveZMQ server keys (:meth:`CurveKeys.for_server`): the three
            endpoints then speak CURVE and a ZAP handler lets in only the allowed
            clients (:mod:`ap_actors.security`); None = plain ZeroMQ.

    Raises:
        StartupError: from :meth:`bind` when an endpoint cannot be bound.
    """

    def __init__(
        self,
        log: EventLog,
        ingest: str,
        bus: str,
        replay: str,
        *,
        max_batch_events: int = P.DEFAULT_MAX_BATCH_EVENTS,
        max_batch_bytes: int = P.DEFAULT_MAX_BATCH_BYTES,
        bus_hwm: int = 100_000,
        context: zmq.Context[Any] | None = None,
        curve: CurveKeys | None = None,
    ) -> None:
        self.log = log
        self.curve = curve
        self._auth: Any = None  # the ZAP handler (a thread) when curve is set
        self.wanted = Endpoints(ingest, bus, replay)
        self.max_batch_events = max_batch_events
        self.max_batch_bytes = max_batch_bytes
        self.bus_hwm = bus_hwm
        self.ctx = context or zmq.Context.instance()
        self.stop = threading.Event()
        self.appended = 0  # events appended since start (for logs and tests)
        self.storage_failures = 0  # group commits the log refused in a row (disk full)

    def bind(self) -> Endpoints:
        """Bind the three sockets and return the concrete endpoints."""
        if self.curve is not None and self._auth is None:
            self._auth = start_authenticator(self.ctx, self.curve)  # before any bind
        self.ingest = self.ctx.socket(zmq.ROUTER)
        self.ingest.setsockopt(zmq.RCVHWM, 0)
        self.ingest.setsockopt(zmq.SNDHWM, 0)
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.SNDHWM, self.bus_hwm)
        self.replay = self.ctx.socket(zmq.ROUTER)
        self.replay.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.replay.setsockopt(zmq.SNDTIMEO, _REPLAY_SEND_TIMEOUT_MS)
        for s in (self.ingest, self.pub, self.replay):
            s.setsockopt(zmq.LINGER, 0)
            if self.curve is not None:
                self.curve.serve(s)
        bound = []
        for sock, url, name in (
            (self.ingest, self.wanted.ingest, "ingest"),
            (self.pub, self.wanted.bus, "bus"),
            (self.replay, self.wanted.replay, "replay"),
        ):
            try:
                sock.bind(url)
            except zmq.ZMQError as e:
                self.close()
                raise StartupError(
                    f"journal cannot bind its {name} endpoint {url}: {e.strerror}; "
                    "stop the other mesh or choose another address in ap.toml [mesh]"
                ) from e
            bound.append(sock.getsockopt_string(zmq.LAST_ENDPOINT))
        self.endpoints = Endpoints(*bound)
        self._endpoints_map = CODEC.encode(self.endpoints)  # the `endpoints` reply
        return self.endpoints

    def close(self) -> None:
        for name in ("ingest", "pub", "replay"):
            sock = getattr(self, name, None)
            if sock is not None:
                sock.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
            self._auth = None

    # --- ingest ---------------------------------------------------------------------

    def serve(self) -> None:
        """Run the group-commit loop until :attr:`stop` is set."""
        replay_thread = threading.Thread(target=self._serve_replay, name="replay", daemon=True)
        replay_thread.start()
        poller = zmq.Poller()
        poller.register(self.ingest, zmq.POLLIN)
        try:
            while not self.stop.is_set():
                if poller.poll(_POLL_MS):
                    self._group_commit()
        finally:
            self.stop.set()
            replay_thread.join(timeout=2)

    def _group_commit(self) -> None:
        """Drain, validate, append in one transaction, answer in arrival order, publish.

        Replies go out in the order the requests came, refusals included: a client with
        several batches in flight matches replies to batches by their order.
        """
        ingest = self.ingest
        # (envelope, validated batch or None, error frames or None), in arrival order.
        requests: list[tuple[list[bytes], list[Prepared] | None, list[bytes] | None]] = []
        waiting = 0
        while waiting < _MAX_GROUP_EVENTS:
            try:
                frames = ingest.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            envelope, body = _split_envelope(frames)
            if body == [P.ENDPOINTS]:  # a remote worker looking for the bus and replay
                requests.append((envelope, None, [P.ENDPOINTS, self._endpoints_map]))
                continue
            if len(body) != 2 or body[0] != P.APPEND:
                expected = "expected frames [b'append', msgpack list]"
                requests.append((envelope, None, _error_reply(P.E_BAD_REQUEST, expected)))
                continue
            try:
                prepared = validate_batch(body[1], self.max_batch_events, self.max_batch_bytes)
            except DecodeError as e:
                log.info("refused a batch: %s", e, extra={"code": e.code})
                requests.append((envelope, None, _error_reply(e.code, str(e), e.index)))
                continue
            except Exception as e:  # a validation bug must not take the journal down
                log.exception("unexpected error validating a batch")
                requests.append((envelope, None, _error_reply(P.E_BAD_REQUEST, repr(e))))
                continue
            requests.append((envelope, prepared, None))
            waiting += len(prepared)
        if not requests:
            return
        flat = [p for _, batch, _ in requests if batch for p in batch]
        appended: list[Appended] = []
        storage_error: list[bytes] | None = None
        seqs: list[int] = []
        if flat:
            try:
                seqs, appended = self.log.append_prepared(flat)
            except EventLogError as e:
                if not self.storage_failures:  # once per episode: clients retry at once
                    log.error("append failed, nothing acknowledged: %s", e)
                self.storage_failures += 1
                storage_error = _error_reply(P.E_STORAGE, str(e))
            else:
                if self.storage_failures:
                    n = self.storage_failures
                    log.info("appends resumed after %d refused group commits", n)
                    self.storage_failures = 0
        pos = 0
        for envelope, batch, refused in requests:
            if batch is None:
                assert refused is not None
                ingest.send_multipart(envelope + refused)
            elif storage_error is not None:
                ingest.send_multipart(envelope + storage_error)
            else:
                n = len(batch)
                ingest.send_multipart([*envelope, P.OK, CODEC.encode(seqs[pos : pos + n])])
                pos += n
        # Three plain sends with int flags: send_multipart costs twice as much per record.
        send = self.pub.send
        for _, topic, record, key in appended:
            send(topic, _SNDMORE)
            send(key, _SNDMORE)
            send(record)
        self.appended += len(appended)

    # --- replay ---------------------------------------------------------------------

    def _serve_replay(self) -> None:
        poller = zmq.Poller()
        poller.register(self.replay, zmq.POLLIN)
        decoder = msgspec.msgpack.Decoder(ReplayRequest)
        while not self.stop.is_set():
            if not poller.poll(_POLL_MS):
                continue
            try:
                frames = self.replay.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                continue
            envelope, body = _split_envelope(frames)
            try:
                if len(body) != 2 or body[0] != P.REPLAY:
                    raise DecodeError(P.E_BAD_REQUEST, "expected frames [b'replay', msgpack map]")
                try:
                    req = decoder.decode(body[1])
                except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as e:
                    # RecursionError: nesting deeper than the decoder follows.
                    raise DecodeError(P.E_NOT_MSGPACK, f"bad replay request: {e}") from e
                if req.since < 0 or not 0 < req.limit <= P.MAX_REPLAY_LIMIT:
                    raise DecodeError(
                        P.E_BAD_REQUEST,
                        f"since must be >= 0 and limit in 1..{P.MAX_REPLAY_LIMIT}",
                    )
                self._send_replay(envelope, req)
            except DecodeError as e:
                self._send_quietly(envelope + _error_reply(e.code, str(e)))
            except zmq.ZMQError as e:  # the client went away or stopped reading
                log.info("replay to a client abandoned: %s", e.strerror)
            except EventLogError as e:
                self._send_quietly(envelope + _error_reply(P.E_STORAGE, str(e)))
            except Exception as e:  # a bug must not stop the replay thread for good
                log.exception("unexpected error serving a replay request")
                self._send_quietly(envelope + _error_reply(P.E_BAD_REQUEST, repr(e)))

    def _send_replay(self, envelope: list[bytes], req: ReplayRequest) -> None:
        last = self.log.last_seq()
        covered = req.since
        send = self.replay.send
        # Nothing lies after the end: not reading also spares the log a seq past 2**64 - 1.
        records: Iterable[tuple[int, bytes]] = (
            self.log.read_raw(req.since, until=last, topics=req.topics, session_id=req.session_id)
            if req.since < last
            else ()
        )
        for sent, (seq, data) in enumerate(records, 1):
            for frame in envelope:
                send(frame, _SNDMORE)
            send(P.RECORD, _SNDMORE)
            send(P.pack_seq(seq), _SNDMORE)
            send(data)
            covered = seq
            if sent >= req.limit:
                break
        else:
            covered = last  # everything up to `last` was considered
        self.replay.send_multipart([*envelope, P.END, P.pack_seq(covered), P.pack_seq(last)])

    def _send_quietly(self, frames: list[bytes]) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self.replay.send_multipart(frames)


def _split_envelope(frames: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """Split ROUTER frames into (routing envelope, body); REQ peers add an empty frame."""
    if len(frames) >= 2 and frames[1] == b"":
        return frames[:2], frames[2:]
    return frames[:1], frames[1:]


# --- process entry point ------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ap-journal", description="Run the journal actor.")
    p.add_argument("--state-dir", default=None)
    p.add_argument("--config", default=None)
    p.add_argument("--ingest")
    p.add_argument("--bus")
    p.add_argument("--replay")
    p.add_argument("--ready-fd", type=int, default=None)
    p.add_argument("--parent-pid", type=int, default=None)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the journal process until SIGTERM/SIGINT; see the module docstring."""
    args = _parse_args(argv)
    setup_logging("journal")
    die_with_parent(args.parent_pid)
    try:
        config: Config = load_config(args.config)
        endpoints_wanted = {
            "ingest": args.ingest or config.mesh.ingest,
            "bus": args.bus or config.mesh.bus,
            "replay": args.replay or config.mesh.replay,
        }
        keys = config.security.keys
        require_keys(endpoints_wanted, keys)
        curve = CurveKeys.for_server(keys) if keys else None
        state_dir = resolve_state_dir(args.state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        # One writer: a second journal on this log refuses to start.
        hold_lock(state_dir / "journal.lock", "another journal writing this event log")
        elog = EventLog(
            eventlog_dir(state_dir),
            durability=config.eventlog.durability,
            map_size=config.eventlog.map_size_mb * 1024 * 1024,
        )
        journal = Journal(
            elog,
            endpoints_wanted["ingest"],
            endpoints_wanted["bus"],
            endpoints_wanted["replay"],
            max_batch_events=config.eventlog.max_batch_events,
            max_batch_bytes=config.eventlog.max_batch_bytes,
            bus_hwm=config.mesh.bus_hwm,
            curve=curve,
        )
        endpoints = journal.bind()
    except ApError as e:
        print(f"journal: {e}", file=sys.stderr)
        return e.exit_code

    def _stop(signum: int, _frame: object) -> None:
        journal.stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    # The hot loop makes no reference cycles, only many short-lived objects: freeze what
    # startup made and collect rarely. Python's default (700 allocations) spent 15 % of
    # the journal's time in the cycle collector (bench/NOTES.md).
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    started = time.monotonic()
    log.info(
        "journal ready",
        extra={"endpoints": msgspec.to_builtins(endpoints), "last_seq": elog.last_seq()},
    )
    signal_ready(
        args.ready_fd,
        {**msgspec.to_builtins(endpoints), "log": str(Path(elog.path).resolve())},
    )
    try:
        journal.serve()
    finally:
        journal.close()
        elog.close()
        log.info(
            "journal stopped",
            extra={"appended": journal.appended, "uptime_s": time.monotonic() - started},
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
