"""A history checker in the style of Jepsen's: what clients were told against the log.

Clients record every append they send (an *invoke*) and how it ended: ``ok`` with the
seqs the journal acknowledged, ``fail`` when the journal refused the batch (nothing of
it is appended), ``info`` when the outcome is unknown (no answer: the journal or the
client crashed, a timeout). :func:`check` then reads the log and reports:

- **lost**: an acknowledged event missing from the log, or at another seq than acked;
- **duplicated**: an event id at more than one seq (a resend appended twice);
- **gaps**: seqs missing between 1 and the log's last;
- **failed but present**: an event of a refused batch found in the log;
- **unfinished sessions**: a ``request_submitted`` with no ``session_completed``,
  ``session_failed`` or ``session_cancelled`` after it, or a failure without a reason.

Unknown outcomes are the reason for this shape (Jepsen's *info* operations): an append
that never got its ack may or may not be in the log, and either is correct; only what a
client was told is checked. A history is a JSON-lines file per client process, one line
flushed per operation, so the operations of a client that is later killed count too:
``{"op": "invoke" | "ok" | "fail" | "info", "ids": [...], "seqs": [...], "t": unix_s}``.

Use::

    history = HistoryWriter(path)
    seqs = await history.emit_many(emitter, events)   # records invoke + ok/fail/info
    report = check(log_dir, [path, ...])
    assert report.clean, report.summary()
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import msgspec

from ap_actors.emitter import Emitter
from ap_actors.errors import BusError, RejectedError
from ap_actors.eventlog import EventLog
from ap_actors.events import Event, stamp

EXAMPLES = 10  # examples kept per kind of anomaly in a report

_ENDS = ("session_completed", "session_failed", "session_cancelled")


class HistoryWriter:
    """Appends one client's operations to a JSON-lines history file.

    Args:
        path: the file; created (with its directory) or appended to.
        source: the ``source`` given to events that have none (see :func:`stamp`).
    """

    def __init__(self, path: str | os.PathLike[str], *, source: str = "history") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.source = source
        self._file: IO[str] = self.path.open("a", encoding="utf-8")

    def record(self, op: str, ids: Sequence[str], **extra: Any) -> None:
        """Write one operation line and flush it (so it survives this process's death).

        Raises:
            ValueError: ``op`` is not one of invoke, ok, fail, info.
        """
        if op not in ("invoke", "ok", "fail", "info"):
            raise ValueError(f"unknown history operation {op!r}")
        line = {"op": op, "ids": list(ids), "t": time.time(), **extra}
        self._file.write(json.dumps(line, separators=(",", ":")) + "\n")
        self._file.flush()

    async def emit_many(self, emitter: Emitter, events: Iterable[Event]) -> list[int]:
        """Emit ``events`` through ``emitter``, recording the invoke and its outcome.

        Returns the acknowledged seqs. Raises what :meth:`Emitter.emit_many` raises, after
        recording ``fail`` (a refused single event: surely not appended) or ``info``
        (anything else: the outcome is unknown; a refused event of a larger batch may
        leave the others appended).
        """
        stamped = [stamp(e, source=self.source) for e in events]
        ids = [e.id for e in stamped]
        self.record("invoke", ids)
        try:
            seqs = await emitter.emit_many(stamped)
        except RejectedError as e:
            self.record("fail" if len(ids) == 1 else "info", ids, error=str(e))
            raise
        except (BusError, OSError) as e:
            self.record("info", ids, error=str(e))
            raise
        except BaseException as e:  # cancelled, killed: unknown
            self.record("info", ids, error=type(e).__name__)
            raise
        self.record("ok", ids, seqs=seqs)
        return seqs

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Head(msgspec.Struct):
    id: str
    type: str
    session_id: str = ""
    reason: str | None = None


class _Row(msgspec.Struct):
    seq: int
    event: _Head


class HistoryReport(msgspec.Struct):
    """What :func:`check` found; each list holds at most ``EXAMPLES`` examples.

    Counts are events (ids), not batches. ``indeterminate`` events had no answer;
    ``indeterminate_present`` of them are in the log (either is correct).
    """

    last_seq: int
    records: int
    invoked: int
    acked: int
    failed: int
    indeterminate: int
    indeterminate_present: int
    lost: int
    duplicated: int
    gaps: int
    failed_present: int
    sessions: int
    sessions_unfinished: int
    malformed_lines: int
    lost_examples: list[str] = []
    duplicated_examples: list[str] = []
    gap_examples: list[int] = []
    failed_present_examples: list[str] = []
    unfinished_examples: list[str] = []

    @property
    def clean(self) -> bool:
        """True when nothing acknowledged was lost, duplicated, gapped or wrongly kept,
        and every session ended with a reason."""
        return not (
            self.lost
            or self.duplicated
            or self.gaps
            or self.failed_present
            or self.sessions_unfinished
        )

    def summary(self) -> str:
        """One line: the counts, then up to three examples of each anomaly."""
        parts = [
            f"{self.records} records (last seq {self.last_seq}), {self.invoked} invoked,"
            f" {self.acked} acked, {self.failed} refused, {self.indeterminate} unknown"
            f" ({self.indeterminate_present} in the log);"
            f" lost {self.lost}, duplicated {self.duplicated}, gaps {self.gaps},"
            f" refused-but-present {self.failed_present},"
            f" unfinished sessions {self.sessions_unfinished} of {self.sessions}"
        ]
        for name, examples in (
            ("lost", self.lost_examples),
            ("duplicated", self.duplicated_examples),
            ("gaps", self.gap_examples),
            ("refused-but-present", self.failed_present_examples),
            ("unfinished", self.unfinished_examples),
        ):
            if examples:
                parts.append(f"{name} e.g. {', '.join(map(str, examples[:3]))}")
        return "; ".join(parts)


def read_history(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[dict[str, Any]], int]:
    """Read history files; returns ``(operations, malformed_lines)``.

    A torn last line (the client was killed while writing it) counts as malformed and is
    skipped, as is any line that is not an operation object.
    """
    ops: list[dict[str, Any]] = []
    malformed = 0
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    op = json.loads(line)
                except ValueError:
                    malformed += 1
                    continue
                if isinstance(op, dict) and isinstance(op.get("ids"), list):
                    ops.append(op)
                else:
                    malformed += 1
    return ops, malformed


def check(
    log_path: str | os.PathLike[str], histories: Iterable[str | os.PathLike[str]]
) -> HistoryReport:
    """Check the histories against the log at ``log_path`` (read-only, whole log).

    Raises:
        EventLogError: no log at ``log_path``.
        OSError: a history file cannot be read.
    """
    ops, malformed = read_history(histories)
    invoked: set[str] = set()
    acked: dict[str, int] = {}
    failed: set[str] = set()
    unknown: set[str] = set()
    for op in ops:
        ids = op["ids"]
        kind = op.get("op")
        if kind == "invoke":
            invoked.update(ids)
        elif kind == "ok":
            acked.update(zip(ids, op.get("seqs") or [], strict=False))
        elif kind == "fail":
            failed.update(ids)
        elif kind == "info":
            unknown.update(ids)
    # An id still unanswered at the end (its client died between invoke and outcome)
    # is of unknown outcome too.
    unknown |= invoked - acked.keys() - failed
    unknown -= acked.keys()

    decode = msgspec.msgpack.Decoder(_Row).decode
    seen: dict[str, list[int]] = {}
    gap_examples: list[int] = []
    gaps = 0
    expected = 1
    records = 0
    started: dict[str, int] = {}
    ended: dict[str, str | None] = {}
    with EventLog(log_path, readonly=True) as elog:
        last_seq = elog.last_seq()
        for seq, data in elog.read_raw():
            records += 1
            if seq != expected:
                gaps += seq - expected
                gap_examples.extend(range(expected, min(seq, expected + EXAMPLES)))
            expected = seq + 1
            try:
                event = decode(data).event
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue  # an event this version cannot read: seq and gaps still count
            seen.setdefault(event.id, []).append(seq)
            if event.type == "request_submitted" and event.session_id:
                started.setdefault(event.session_id, seq)
            elif event.type in _ENDS and event.session_id:
                reason = event.reason if event.type == "session_failed" else "ended"
                ended.setdefault(event.session_id, reason)
    if expected <= last_seq:
        gaps += last_seq - expected + 1

    lost = [i for i, seq in acked.items() if seq not in seen.get(i, ())]
    duplicated = [i for i, seqs in seen.items() if len(seqs) > 1]
    failed_present = [i for i in failed if i in seen]
    unfinished = [s for s in started if not ended.get(s)]  # no end, or no reason
    return HistoryReport(
        last_seq=last_seq,
        records=records,
        invoked=len(invoked),
        acked=len(acked),
        failed=len(failed),
        indeterminate=len(unknown),
        indeterminate_present=sum(1 for i in unknown if i in seen),
        lost=len(lost),
        duplicated=len(duplicated),
        gaps=gaps,
        failed_present=len(failed_present),
        sessions=len(started),
        sessions_unfinished=len(unfinished),
        malformed_lines=malformed,
        lost_examples=sorted(lost)[:EXAMPLES],
        duplicated_examples=sorted(duplicated)[:EXAMPLES],
        gap_examples=gap_examples[:EXAMPLES],
        failed_present_examples=sorted(failed_present)[:EXAMPLES],
        unfinished_examples=sorted(unfinished)[:EXAMPLES],
    )
