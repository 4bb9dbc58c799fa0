"""What the log of a scale run says: events lost, journal lag, each line's way to the clients.

Events lost. The log monitor gives the activity number ``i`` that its parser yields for
line ``number`` (generation 0) of an attempt's transcript the id ``derive_id(f"{session}:
{objective}:{attempt}", "log_monitor.<worker>", f"0:{number}:{i}")`` (``"end:{i}"`` for
what the parser yields at the end of the stream) and an ``error`` activity a
``worker_error`` besides (:mod:`ap_actors.actors.log_monitor`). So the transcript, read
here through a new parser of the same adapter (what ``ap parse`` does), gives the exact
set of ids the log must hold. The transcript is checked first: the worker's ``COMMAND:``
line, then exactly the lines the replay wrote (its stamp file says how many; the
recording looped), then the worker's ``EXIT:`` line. An event lost is an expected id
that is not in the log; an extra one is a ``worker_activity`` of the objective that is
not expected.

Times (all Unix seconds from the machine's one clock): a line's write time (the
replay's stamp file), the event's ``ts`` (stamped by the log monitor's emitter when it
sends the batch), the record's ``appended_at`` (the journal), and the time a WebSocket
client received it (the client's sample: receive time - ``ts``, for the events whose seq
is a multiple of the sampling step).
"""

from __future__ import annotations

import array
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ap_actors.agents import get_adapter
from ap_actors.agents.base import read_transcript
from ap_actors.eventlog import EventLog
from ap_actors.events import (
    ObjectiveStarted,
    SessionCompleted,
    TranscriptRead,
    WorkerActivity,
    WorkerError,
    derive_id,
)

FIRST_REPLAY_LINE = 2  # the transcript's line 1 is the worker's "[ts] COMMAND: ..." line


@dataclass
class Expected:
    """What the adapter's parser yields for one attempt's transcript."""

    activities: dict[str, int]  # id -> transcript line number (0: at the end of the stream)
    errors: set[str]  # ids of the worker_error events
    replay_ok: bool  # the transcript holds exactly the lines written, between the markers
    why: str = ""  # what is wrong with it, when not replay_ok


def expected_ids(
    started: ObjectiveStarted, agent: str, recording: Sequence[str], written: int
) -> Expected:
    """Parse the transcript of ``started`` as its log monitor did; check its lines."""
    parser = get_adapter(agent).parser(started.workdir or None)
    key = f"{started.session_id}:{started.objective_id}:{started.attempt}"
    actor = f"log_monitor.{started.worker_id}"
    ids: dict[str, int] = {}
    errors: set[str] = set()
    lines: list[str] = []

    def add(where: str, number: int, activities: Iterable[object]) -> None:
        for i, a in enumerate(activities):
            base = derive_id(key, actor, f"{where}:{i}")
            ids[base] = number
            if getattr(a, "activity_type", "") == "error":
                errors.add(derive_id(base, actor, "error"))

    for number, text in enumerate(read_transcript(started.transcript), 1):
        lines.append(text)
        add(f"0:{number}", number, parser.feed(text))
    add("end", 0, parser.finish())
    body = lines[FIRST_REPLAY_LINE - 1 : FIRST_REPLAY_LINE - 1 + written]
    why = ""
    if not lines or "] COMMAND: " not in lines[0]:
        why = "no COMMAND line first"
    elif body != [recording[k % len(recording)] for k in range(written)]:
        why = "the lines differ from the recording"
    elif len(lines) != written + 2 or "] EXIT: " not in lines[-1]:
        why = f"{len(lines)} lines, expected {written} between COMMAND and EXIT"
    return Expected(ids, errors, replay_ok=not why, why=why)


def read_stamps(path: Path) -> array.array[float]:
    """Write time of each line from a replay's stamp file (``"<k> <time>"`` lines)."""
    out = array.array("d")
    if path.exists():
        for k, line in enumerate(path.read_text().splitlines()):
            n, t = line.split()
            if int(n) != k:
                raise RuntimeError(f"{path}: line {k} is for replay line {n}")
            out.append(float(t))
    return out


@dataclass
class ObjectiveCheck:
    """One objective: lines written, activities expected and logged."""

    objective_id: str
    worker_id: str
    written: int  # lines the replay wrote (its stamps)
    write_rate: float  # lines/s it achieved, first line to last
    expected: int  # activities the parser yields for its transcript
    logged: int  # worker_activity events of the objective in the log
    lost: int  # expected, not in the log
    extra: int  # in the log, not expected
    errors_expected: int
    errors_logged: int
    replay_ok: bool
    why: str


@dataclass
class LogFigures:
    """The figures of the log; latencies in ms, sorted."""

    objectives: list[ObjectiveCheck] = field(default_factory=list)
    appended_per_s: float = 0.0  # every record, in the window
    activities_per_s: float = 0.0  # worker_activity records, in the window
    journal_lag: list[float] = field(default_factory=list)  # appended_at - ts, every record
    line_to_ts: list[float] = field(default_factory=list)  # line written -> event ts
    line_to_log: list[float] = field(default_factory=list)  # line written -> appended_at
    e2e_kept: list[float] = field(default_factory=list)  # line -> client, clients kept up
    e2e_all: list[float] = field(default_factory=list)  # line -> client, every client
    last_line_at: float = 0.0  # Unix s: the last line any replay wrote
    last_read_at: float = 0.0  # appended_at of the last transcript_read
    completed_at: float = 0.0  # appended_at of session_completed (0: none)
    records: int = 0  # records of the run (after the mesh came up)


def analyse(
    log_path: str,
    since: int,
    session_id: str,
    agent: str,
    recording: Path,
    stamps: Path,
    window: tuple[float, float],
    samples: dict[str, tuple[bytes, bytes]],
) -> LogFigures:
    """Read the log after ``since``; check every objective; compute the latencies.

    Args:
        window: (from, to) Unix s: the records appended then give the append rates.
        samples: ``"kept"`` and ``"all"``: (latencies ``array("d")`` of receive - ts, s;
            their seqs ``array("q")``) from the clients.
    """
    figures = LogFigures()
    started: dict[str, ObjectiveStarted] = {}
    logged: dict[str, dict[str, tuple[int, float, float]]] = defaultdict(dict)  # obj -> id ->
    errors: dict[str, set[str]] = defaultdict(set)
    sampled: set[int] = set()
    for raw_seqs in (s[1] for s in samples.values()):
        sampled.update(array.array("q", raw_seqs))
    seq_ids: dict[int, tuple[str, float]] = {}  # sampled seq -> (id, ts)
    t0, t1 = window
    in_window = activities_in_window = 0
    with EventLog(log_path, readonly=True) as log:
        for r in log.read(since):
            figures.records += 1
            e = r.event
            figures.journal_lag.append((r.appended_at - e.ts) * 1000)
            if t0 <= r.appended_at < t1:
                in_window += 1
                activities_in_window += isinstance(e, WorkerActivity)
            if e.session_id != session_id:
                continue
            match e:
                case WorkerActivity():
                    logged[e.objective_id][e.id] = (r.seq, e.ts, r.appended_at)
                    if r.seq in sampled:
                        seq_ids[r.seq] = (e.id, e.ts)
                case WorkerError():
                    errors[e.objective_id or ""].add(e.id)
                case ObjectiveStarted():
                    started[e.objective_id] = e
                case TranscriptRead():
                    figures.last_read_at = max(figures.last_read_at, r.appended_at)
                case SessionCompleted():
                    figures.completed_at = r.appended_at
    figures.appended_per_s = in_window / (t1 - t0)
    figures.activities_per_s = activities_in_window / (t1 - t0)
    recording_lines = list(read_transcript(recording))
    line_time: dict[str, float] = {}  # activity id -> write time of its line
    for objective_id, s in sorted(started.items()):
        times = read_stamps(stamps / f"{objective_id}.txt")
        exp = expected_ids(s, agent, recording_lines, len(times))
        got = logged[objective_id]
        for id_, number in exp.activities.items():
            k = number - FIRST_REPLAY_LINE
            if exp.replay_ok and 0 <= k < len(times):
                line_time[id_] = times[k]
                if id_ in got:
                    _, ts, appended = got[id_]
                    figures.line_to_ts.append((ts - times[k]) * 1000)
                    figures.line_to_log.append((appended - times[k]) * 1000)
        if len(times):
            figures.last_line_at = max(figures.last_line_at, times[-1])
        figures.objectives.append(
            ObjectiveCheck(
                objective_id=objective_id,
                worker_id=s.worker_id,
                written=len(times),
                write_rate=(len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0,
                expected=len(exp.activities),
                logged=len(got),
                lost=len(exp.activities.keys() - got.keys()),
                extra=len(got.keys() - exp.activities.keys()),
                errors_expected=len(exp.errors),
                errors_logged=len(errors[objective_id] & exp.errors),
                replay_ok=exp.replay_ok,
                why=exp.why,
            )
        )
    for name, target in (("kept", figures.e2e_kept), ("all", figures.e2e_all)):
        lat_raw, seqs_raw = samples[name]
        for lat, seq in zip(array.array("d", lat_raw), array.array("q", seqs_raw), strict=True):
            id_, ts = seq_ids.get(seq, ("", 0.0))
            if id_ in line_time:  # receive time - the line's write time
                target.append((lat + ts - line_time[id_]) * 1000)
    for values in (
        figures.journal_lag,
        figures.line_to_ts,
        figures.line_to_log,
        figures.e2e_kept,
        figures.e2e_all,
    ):
        values.sort()
    return figures
