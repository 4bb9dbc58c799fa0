"""Replay a recorded agent transcript on stdout at a steady rate, as a live agent would.

``make bench-scale`` runs it as the agent of every worker: a worker's ``command`` in
``team.toml`` replaces the agent CLI's command line, and the worker's adapter parser
(``agent = "claude"``, ``"codex"``, ...) reads what this prints, as it would read the
real CLI::

    python scripts/replay_transcript.py FILE [--rate 50] [--seconds S | --lines N]
        [--stamp PATH] [--gate PATH] [--gate-timeout S] [--phase S]

FILE is a recording of an agent's output, one line at a time (e.g.
``tests/fixtures/agent-streams/claude/stream-json_v2.1.197_real-cli-scripted-model_bash-write.jsonl``,
Claude Code's real ``stream-json``). Its lines are written to stdout unchanged, looped
from the first line again when the file ends, until ``--lines`` lines or ``--seconds`` x
``--rate`` lines were written (neither: the file once). Line ``k`` (from 0) is
``FILE[k % len(FILE)]``.

Pacing: line ``k`` is due at ``start + phase + k / rate`` (an absolute schedule: a line
written late does not delay the next ones; lines overdue are written at once, none is
skipped). ``start`` is when the gate opened (``--gate``: the file PATH exists; polled
every 5 ms), else when the program started; ``--phase`` (seconds, default a random
fraction of one interval) keeps many replays from writing in lockstep. Each line is one
``write`` of the whole line and its newline to file descriptor 1, with no buffering.

Write times (``--stamp PATH``): one line per written line, ``"<k> <time>"``, ``k`` from
0 and ``time`` the ``time.time()`` taken just before its ``write`` (Unix seconds, 6
decimals), so a benchmark can join each line with what became of it. The file is
written through a buffer and complete when the program exits (also on SIGTERM/SIGINT).

Nothing else is printed on a successful run: stdout is the transcript, and a worker
appends stderr to the same transcript.

Exit codes: 0 every line written; 2 bad command line; 3 FILE (or the stamp path) cannot
be read or written, or FILE holds no line; 4 the gate did not open within
``--gate-timeout`` seconds; 5 stdout was closed before every line was written (the
reader went away); 143 / 130 stopped by SIGTERM / SIGINT (the stamps written so far are
kept). Errors are one line on stderr. Only the standard library: the command runs in
the objective's worktree with whatever Python the team file names.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, NoReturn

EXIT_OK = 0
EXIT_USAGE = 2  # argparse's own code for a bad command line
EXIT_INPUT = 3  # the recording or the stamp file cannot be used
EXIT_GATE = 4  # the gate did not open in time
EXIT_CLOSED = 5  # stdout was closed under us
GATE_POLL_S = 0.005


class ReplayError(Exception):
    """A failure with its exit code; ``main`` prints the message as one line."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def load_lines(path: Path) -> list[bytes]:
    """The lines of the recording, each with its newline (one is added to a last line
    that lacks it); blank lines are kept as they are.

    Raises:
        ReplayError: the file cannot be read, or holds no line (``EXIT_INPUT``).
    """
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise ReplayError(f"{path} is a directory; give one recording file", EXIT_INPUT) from None
    except OSError as e:
        raise ReplayError(f"cannot read {path}: {e.strerror or e}", EXIT_INPUT) from e
    if not data:
        raise ReplayError(f"{path} is empty; give a recording with at least one line", EXIT_INPUT)
    lines = data.splitlines(keepends=True)
    if not lines[-1].endswith(b"\n"):
        lines[-1] += b"\n"
    return lines


def wait_for_gate(gate: Path, timeout: float) -> None:
    """Return once ``gate`` exists.

    Raises:
        ReplayError: it did not exist within ``timeout`` seconds (``EXIT_GATE``).
    """
    deadline = time.monotonic() + timeout
    while not gate.exists():
        if time.monotonic() > deadline:
            raise ReplayError(f"the gate {gate} did not open within {timeout:g} s", EXIT_GATE)
        time.sleep(GATE_POLL_S)


def replay(
    lines: Sequence[bytes], count: int, rate: float, phase: float, stamps: IO[str] | None
) -> None:
    """Write ``count`` lines, looping over ``lines``, at ``rate`` lines/s from now + phase.

    Raises:
        ReplayError: stdout was closed (``EXIT_CLOSED``).
    """
    start = time.monotonic() + phase
    size = len(lines)
    for k in range(count):
        delay = start + k / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        line = lines[k % size]
        t = time.time()
        try:
            written = os.write(1, line)
            while written < len(line):  # a pipe may take part of a long line
                written += os.write(1, line[written:])
        except BrokenPipeError:
            raise ReplayError(
                f"stdout was closed after {k} of {count} lines", EXIT_CLOSED
            ) from None
        if stamps is not None:
            stamps.write(f"{k} {t:.6f}\n")


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="replay_transcript.py",
        description="Write a recorded agent transcript to stdout at a steady rate.",
    )
    p.add_argument("file", type=Path, help="the recording, e.g. a stream-json .jsonl file")
    p.add_argument("--rate", type=float, default=50.0, help="lines per second (default 50)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, help="loop the recording for this long")
    length.add_argument("--lines", type=int, help="write this many lines, looping")
    p.add_argument("--stamp", type=Path, help="write '<line> <time>' per written line here")
    p.add_argument("--gate", type=Path, help="start once this file exists")
    p.add_argument("--gate-timeout", type=float, default=600.0, help="seconds (default 600)")
    p.add_argument("--phase", type=float, help="delay of the schedule, s (default random)")
    args = p.parse_args(argv)
    if not 0 < args.rate <= 1e6:
        p.error(f"--rate must be in (0, 1e6] lines/s, not {args.rate:g}")
    if args.seconds is not None and not 0 <= args.seconds <= 86_400:
        p.error(f"--seconds must be in [0, 86400], not {args.seconds:g}")
    if args.lines is not None and args.lines < 0:
        p.error(f"--lines must be >= 0, not {args.lines}")
    if args.phase is not None and not 0 <= args.phase <= 3600:
        p.error(f"--phase must be in [0, 3600] s, not {args.phase:g}")
    return args


def _stop(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds: the stamp file is flushed and closed


def main(argv: Sequence[str] | None = None) -> int:
    """Run the replay (module docstring); return the exit code."""
    args = _parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        lines = load_lines(args.file)
        if args.lines is not None:
            count = args.lines
        elif args.seconds is not None:
            count = round(args.seconds * args.rate)
        else:
            count = len(lines)
        phase = args.phase if args.phase is not None else random.random() / args.rate
        try:
            stamps = args.stamp.open("w") if args.stamp is not None else None
        except OSError as e:
            raise ReplayError(f"cannot write {args.stamp}: {e.strerror or e}", EXIT_INPUT) from e
        try:
            if args.gate is not None:
                wait_for_gate(args.gate, args.gate_timeout)
            replay(lines, count, args.rate, phase, stamps)
        finally:
            if stamps is not None:
                stamps.close()
    except ReplayError as e:
        print(f"replay_transcript: {e}", file=sys.stderr)
        return e.code
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
