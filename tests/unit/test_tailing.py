"""tail_lines against real files, written by real writer tasks and processes.

Every test synchronises on the lines the tail yields (with a deadline), never on sleep().
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ap_actors.tailing import Line, tail_lines

DEADLINE_S = 10.0  # generous: a line normally arrives within a few ms


class Tail:
    """Runs ``tail_lines`` in a task and queues what it yields."""

    def __init__(self, path: Path, **kwargs: Any) -> None:
        self.stop = asyncio.Event()
        self.lines: asyncio.Queue[Line] = asyncio.Queue()
        self.task = asyncio.create_task(self._run(path, kwargs))

    async def _run(self, path: Path, kwargs: dict[str, Any]) -> None:
        async for line in tail_lines(path, stop=self.stop, **kwargs):
            self.lines.put_nowait(line)

    async def take(self, n: int) -> list[Line]:
        """Wait for the next ``n`` lines."""
        async with asyncio.timeout(DEADLINE_S):
            return [await self.lines.get() for _ in range(n)]

    async def finish(self) -> list[Line]:
        """Set stop, wait for the tail to end, and return the lines not taken yet."""
        self.stop.set()
        async with asyncio.timeout(DEADLINE_S):
            await self.task
        out = []
        while not self.lines.empty():
            out.append(self.lines.get_nowait())
        return out


@pytest.fixture
def open_append() -> Iterator[Callable[[Path], int]]:
    """Open files for appending (O_APPEND, like a logger); all are closed at teardown."""
    fds: list[int] = []

    def open_(path: Path) -> int:
        fds.append(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
        return fds[-1]

    yield open_
    for fd in fds:
        os.close(fd)


async def test_appended_lines_are_yielded_in_order_with_their_numbers(
    tmp_path: Path, open_append: Callable[[Path], int]
) -> None:
    path = tmp_path / "agent.log"
    path.write_text("one\ntwo\n")
    tail = Tail(path)
    assert await tail.take(2) == [Line("one", 1, 0), Line("two", 2, 0)]
    fd = open_append(path)
    os.write(fd, b"three\n")
    assert await tail.take(1) == [Line("three", 3, 0)]
    os.write(fd, b"four\nfive\n")
    assert await tail.take(2) == [Line("four", 4, 0), Line("five", 5, 0)]
    assert await tail.finish() == []


async def test_a_line_without_its_newline_is_held_back_until_the_newline_arrives(
    tmp_path: Path, open_append: Callable[[Path], int]
) -> None:
    path = tmp_path / "agent.log"
    fd = open_append(path)
    tail = Tail(path)
    # One write: once "first" is yielded the tail has also read the partial "ab".
    os.write(fd, b"first\nab")
    assert await tail.take(1) == [Line("first", 1, 0)]
    os.write(fd, b"cd\n")
    assert await tail.take(1) == [Line("abcd", 2, 0)]
    assert await tail.finish() == []


async def test_a_final_line_without_newline_is_yielded_once_stop_is_set(tmp_path: Path) -> None:
    path = tmp_path / "agent.log"
    path.write_bytes(b"done\nno newline")
    tail = Tail(path)
    assert await tail.take(1) == [Line("done", 1, 0)]
    assert await tail.finish() == [Line("no newline", 2, 0)]


async def test_after_the_writer_process_exits_stop_drains_every_line_and_ends(
    tmp_path: Path,
) -> None:
    path = tmp_path / "agent.log"
    script = (
        "import sys\n"
        "with open(sys.argv[1], 'a') as f:\n"
        "    for i in range(500):\n"
        "        f.write(f'line {i}\\n')\n"
        "    f.write('last, without newline')\n"
    )
    tail = Tail(path)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, str(path))
    assert await proc.wait() == 0
    got = [line async for line in _remaining(tail)]
    assert [line.text for line in got] == [f"line {i}" for i in range(500)] + [
        "last, without newline"
    ]
    assert [line.number for line in got] == list(range(1, 502))


async def _remaining(tail: Tail) -> Any:
    for line in await tail.finish():
        yield line


async def test_a_file_created_after_the_tail_starts_is_read_from_its_start(
    tmp_path: Path,
) -> None:
    path = tmp_path / "later.log"
    tail = Tail(path)
    path.write_text("hello\nworld\n")
    assert await tail.take(2) == [Line("hello", 1, 0), Line("world", 2, 0)]
    assert await tail.finish() == []


async def test_a_file_whose_directory_is_created_later_is_found(
    tmp_path: Path, open_append: Callable[[Path], int]
) -> None:
    path = tmp_path / "not" / "yet" / "agent.log"
    tail = Tail(path, poll_s=0.05)
    path.parent.mkdir(parents=True)
    path.write_text("found\n")
    assert await tail.take(1) == [Line("found", 1, 0)]
    fd = open_append(path)
    os.write(fd, b"again\n")
    assert await tail.take(1) == [Line("again", 2, 0)]
    assert await tail.finish() == []


async def test_copytruncate_starts_a_new_generation_at_line_one(
    tmp_path: Path, open_append: Callable[[Path], int]
) -> None:
    path = tmp_path / "agent.log"
    fd = open_append(path)
    tail = Tail(path)
    os.write(fd, b"".join(b"old line number %d\n" % i for i in range(5)))
    assert [line.generation for line in await tail.take(5)] == [0] * 5
    # logrotate's copytruncate; the writer (O_APPEND) goes on at offset 0. Less is
    # written than was read, so the tail sees the file shrink whenever it looks.
    shutil.copyfile(path, tmp_path / "agent.log.1")
    os.truncate(path, 0)
    os.write(fd, b"new 1\nnew 2\n")
    assert await tail.take(2) == [Line("new 1", 1, 1), Line("new 2", 2, 1)]
    os.truncate(path, 0)
    os.write(fd, b"newer\n")
    assert await tail.take(1) == [Line("newer", 1, 2)]
    assert await tail.finish() == []


async def test_a_partial_line_cut_off_by_truncation_is_yielded_in_its_generation(
    tmp_path: Path, open_append: Callable[[Path], int]
) -> None:
    path = tmp_path / "agent.log"
    fd = open_append(path)
    tail = Tail(path)
    os.write(fd, b"complete line\ncut off here")
    assert await tail.take(1) == [Line("complete line", 1, 0)]
    os.truncate(path, 0)
    os.write(fd, b"fresh\n")
    assert await tail.take(2) == [Line("cut off here", 2, 0), Line("fresh", 1, 1)]
    assert await tail.finish() == []


async def test_rotation_by_rename_drains_the_old_file_then_follows_the_new_one(
    tmp_path: Path, open_append: Callable[[Path], int]
) -> None:
    path = tmp_path / "agent.log"
    old = open_append(path)
    tail = Tail(path)
    os.write(old, b"a1\na2\n")
    assert await tail.take(2) == [Line("a1", 1, 0), Line("a2", 2, 0)]
    os.rename(path, tmp_path / "agent.log.1")  # logrotate's default
    os.write(old, b"a3 written after the rename\n")  # the writer has not reopened yet
    new = open_append(path)
    os.write(new, b"b1\nb2\n")
    assert await tail.take(3) == [
        Line("a3 written after the rename", 3, 0),
        Line("b1", 1, 1),
        Line("b2", 2, 1),
    ]
    assert await tail.finish() == []


async def test_notifications_alone_carry_appends_rotations_and_replacements(
    tmp_path: Path, open_append: Callable[[Path], int]
) -> None:
    # No safety re-check within the test: every line must come by a notification, from
    # the file's own watch or its directory's; a busy neighbour shares the directory.
    path = tmp_path / "agent.log"
    neighbour = open_append(tmp_path / "other.log")
    tail = Tail(path, poll_s=3600)
    old = open_append(path)
    os.write(old, b"a1\n")
    os.write(neighbour, b"noise\n")
    assert await tail.take(1) == [Line("a1", 1, 0)]
    os.write(old, b"a2\n")
    assert await tail.take(1) == [Line("a2", 2, 0)]
    os.rename(path, tmp_path / "agent.log.1")
    os.write(old, b"a3 written after the rename\n")
    new = open_append(path)
    os.write(new, b"b1\n")
    assert await tail.take(2) == [Line("a3 written after the rename", 3, 0), Line("b1", 1, 1)]
    os.write(new, b"b2\n")
    os.write(neighbour, b"noise\n")
    assert await tail.take(1) == [Line("b2", 2, 1)]
    replacement = tmp_path / "agent.log.tmp"
    replacement.write_bytes(b"c1\n")
    os.rename(replacement, path)  # replaced by a rename over it
    assert await tail.take(1) == [Line("c1", 1, 2)]
    os.write(open_append(path), b"c2\n")
    assert await tail.take(1) == [Line("c2", 2, 2)]
    assert await tail.finish() == []


async def test_a_burst_of_10000_lines_arrives_complete_and_in_order(tmp_path: Path) -> None:
    path = tmp_path / "agent.log"
    script = (
        "import sys\n"
        "with open(sys.argv[1], 'a', buffering=1) as f:\n"  # one write() per line
        "    for i in range(10_000):\n"
        "        f.write(f'burst line {i:05d} ' + 'x' * (i % 97) + '\\n')\n"
    )
    tail = Tail(path)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, str(path))
    got = await tail.take(10_000)
    assert await proc.wait() == 0
    assert [line.text for line in got] == [
        f"burst line {i:05d} " + "x" * (i % 97) for i in range(10_000)
    ]
    assert [line.number for line in got] == list(range(1, 10_001))
    assert {line.generation for line in got} == {0}
    assert await tail.finish() == []


async def test_a_file_larger_than_one_read_is_read_to_its_end_in_one_look(
    tmp_path: Path,
) -> None:
    # 3 MiB and more: several reads of 1 MiB, lines cut across their edges. With stop
    # already set the tail looks once, so that look must read to the end of the file.
    path = tmp_path / "agent.log"
    texts = [f"line {i:06d} " + "y" * (i % 113) for i in range(50_000)]
    path.write_bytes("".join(f"{t}\n" for t in texts).encode())
    assert path.stat().st_size > 3 << 20
    stop = asyncio.Event()
    stop.set()
    got = [line async for line in tail_lines(path, stop=stop)]
    assert [line.text for line in got] == texts
    assert [line.number for line in got] == list(range(1, 50_001))


async def test_from_start_false_skips_the_existing_lines_but_keeps_counting(
    tmp_path: Path,
) -> None:
    path = tmp_path / "agent.log"
    path.write_bytes(b"x1\nx2\nunfinished")
    tail = Tail(path, from_start=False)
    # The unfinished line was not complete when the tail started: it is not skipped.
    assert await tail.finish() == [Line("unfinished", 3, 0)]


async def test_invalid_utf8_is_replaced_and_a_crlf_ending_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "agent.log"
    path.write_bytes(b"caf\xe9\r\n\r\n  indented \n")
    tail = Tail(path)
    assert await tail.take(3) == [
        Line("caf\ufffd", 1, 0),
        Line("", 2, 0),
        Line("  indented ", 3, 0),
    ]
    assert await tail.finish() == []


async def test_stop_on_a_file_that_never_appears_ends_the_tail_with_no_lines(
    tmp_path: Path,
) -> None:
    tail = Tail(tmp_path / "never.log", poll_s=60)
    assert await tail.finish() == []


async def test_leaving_the_loop_early_closes_the_tail(tmp_path: Path) -> None:
    path = tmp_path / "agent.log"
    path.write_text("a\nb\nc\n")
    seen = []
    async with asyncio.timeout(DEADLINE_S):
        async with contextlib.aclosing(tail_lines(path, poll_s=60)) as lines:
            async for line in lines:
                seen.append(line.text)
                if len(seen) == 2:
                    break
    assert seen == ["a", "b"]


async def test_a_directory_cannot_be_tailed(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError, match="is a directory"):
        async with asyncio.timeout(DEADLINE_S):
            async for _ in tail_lines(tmp_path):
                pass


async def test_lines_arrive_by_notification_well_within_the_default_debounce(
    tmp_path: Path, open_append: Callable[[Path], int]
) -> None:
    # poll_s=60: only a watchfiles notification can deliver these lines in time.
    path = tmp_path / "agent.log"
    fd = open_append(path)
    tail = Tail(path, poll_s=60)
    delays = []
    for i in range(20):
        start = time.perf_counter()
        os.write(fd, b"ping %d\n" % i)
        assert await tail.take(1) == [Line(f"ping {i}", i + 1, 0)]
        delays.append(time.perf_counter() - start)
    assert await tail.finish() == []
    assert statistics.median(delays) < 0.25  # watchfiles' own default debounce is 1.6 s


async def test_a_file_in_a_deleted_and_recreated_directory_is_still_followed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "transcripts" / "agent.log"
    path.parent.mkdir()
    path.write_text("before\n")
    tail = Tail(path, poll_s=0.05)
    assert await tail.take(1) == [Line("before", 1, 0)]
    shutil.rmtree(path.parent)
    path.parent.mkdir()
    path.write_text("after\n")
    assert await tail.take(1) == [Line("after", 1, 1)]
    assert await tail.finish() == []
