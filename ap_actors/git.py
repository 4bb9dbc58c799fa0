"""Running git: the one way every module of the orchestrator calls the ``git`` command.

These are plain synchronous functions over ``subprocess.run(["git", ...])``; actors call
them through ``asyncio.to_thread``. Every command runs with ``LC_ALL=C`` (stable messages
to parse), ``GIT_TERMINAL_PROMPT=0``, no pager and no editor, stdin closed (or fed the
given bytes), and without the ``GIT_DIR``-style variables of a calling git hook. Several
worker processes add worktrees and commit in one repository at once; a command that
fails because another git process holds a lock (``index.lock``, a ref's ``.lock``), or
because it read the half-written admin files of a worktree being added, is retried with
a short randomised back-off, up to ``_LOCK_TRIES`` times (about 2 s in all), before it
raises.

Every failure is a :class:`GitError`: one line with the git command and git's own first
error line.
"""

from __future__ import annotations

import os
import random
import re
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ap_actors.errors import EXIT_CONFIG, ApError

_LOCK_TRIES = 10  # Attempts of a command that lost a race for a git lock file.
_LOCK_BACKOFF_S = 0.01  # First back-off; doubled per attempt, capped at _LOCK_BACKOFF_MAX_S.
_LOCK_BACKOFF_MAX_S = 0.5
_LOCK_FAILURE = re.compile(
    r"\.lock'?: File exists|could not lock|cannot lock ref|unable to lock"
    r"|Another git process seems to be running"
    # A worktree another process is adding has its admin files created before they are
    # written; git reading them then fails ("failed to read .git/worktrees/x/commondir").
    r"|failed to read .*worktrees/",
    re.IGNORECASE,
)
# Variables a git hook exports to its children; inherited, they would point every
# command at the hook's repository instead of ``cwd``.
_REPO_LOCATING_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_PREFIX",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_NAMESPACE",
)
_FIXED_ENV = {
    "LC_ALL": "C",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_PAGER": "cat",
    "PAGER": "cat",
    "GIT_EDITOR": ":",
    "GIT_SEQUENCE_EDITOR": ":",
    "GIT_MERGE_AUTOEDIT": "no",
    # `git status` may otherwise take index.lock to refresh the index, racing the agent.
    "GIT_OPTIONAL_LOCKS": "0",
}


class GitError(ApError):
    """A git command failed, or the repository is not in the state an operation needs.

    ``str(error)`` is one line: the command and git's first error line, or what is wrong
    and how to fix it.

    Attributes:
        args: the git command's argv (``("git", "worktree", "add", ...)``), or ``()``
            when no command failed. Unlike other exceptions ``args`` is not the message.
        argv: the same tuple.
        returncode: git's exit status, or -1 when no command failed.
        stderr: git's standard error, decoded, or "".
    """

    exit_code = EXIT_CONFIG

    def __init__(
        self, message: str, argv: Sequence[str] = (), returncode: int = -1, stderr: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.args = self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"GitError({self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # The default rebuilds the error from ``args``, which here is the argv.
        return (type(self), (self.message, self.argv, self.returncode, self.stderr))


def _environment(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _REPO_LOCATING_ENV}
    env.update(_FIXED_ENV)
    if extra:
        env.update(extra)
    return env


def _first_error_line(stderr: str, returncode: int) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("fatal:", "error:")):
            return line
    return lines[0] if lines else f"exit status {returncode}"


def command_error(argv: Sequence[str], returncode: int, stderr: str) -> GitError:
    """The :class:`GitError` of a failed command: ``"`git ...` failed: <first error line>"``.

    Args:
        argv: the full argv, ``git`` included.
        returncode: its exit status.
        stderr: its standard error, decoded.
    """
    first = _first_error_line(stderr, returncode)
    return GitError(f"`{shlex.join(argv)}` failed: {first}", argv, returncode, stderr)


def run_git(
    cwd: Path,
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``git *args`` in ``cwd``, retrying lock races; return the finished process.

    Whatever git's exit status: the caller reads ``returncode``, ``stdout`` and
    ``stderr`` (bytes).

    Args:
        cwd: directory to run in.
        args: git's arguments, without the leading ``git``.
        env: variables added to the environment (over the fixed ``LC_ALL=C`` etc.).
        input: bytes for git's standard input; None closes it.

    Raises:
        GitError: git is not installed, or ``cwd`` does not exist or cannot be entered.
    """
    argv = ["git", *args]
    full_env = _environment(env)
    stdin = subprocess.DEVNULL if input is None else None  # with input, run() makes a pipe
    delay = _LOCK_BACKOFF_S
    for attempt in range(1, _LOCK_TRIES + 1):
        try:
            proc = subprocess.run(
                argv, cwd=cwd, env=full_env, stdin=stdin, input=input, capture_output=True
            )
        except FileNotFoundError as e:
            if not Path(cwd).is_dir():
                raise GitError(f"{cwd} does not exist", argv) from e
            raise GitError("git is not installed (not found on PATH)", argv) from e
        except OSError as e:  # cwd not a directory, not searchable, its name too long
            raise GitError(f"cannot run git in {cwd}: {e.strerror}", argv) from e
        if proc.returncode == 0 or attempt == _LOCK_TRIES:
            return proc
        if not _LOCK_FAILURE.search(proc.stderr.decode("utf-8", "replace")):
            return proc
        time.sleep(delay * random.uniform(0.5, 1.0))
        delay = min(delay * 2, _LOCK_BACKOFF_MAX_S)
    raise AssertionError("unreachable")


def decode_output(data: bytes) -> str:
    """git's output as text: UTF-8, undecodable bytes as surrogate escapes."""
    # Paths are bytes to git; surrogateescape keeps a non-UTF-8 name round-trippable.
    return data.decode("utf-8", "surrogateescape")


def git(cwd: Path, *args: str, check: bool = True, env: dict[str, str] | None = None) -> str:
    """Run ``git *args`` in ``cwd`` and return its standard output.

    A failure caused by another git process holding a lock file is retried with a short
    back-off (about 2 s in all) before it counts.

    Args:
        cwd: directory to run in (a worktree, or any directory for ``git init``).
        args: git's arguments, without the leading ``git``.
        check: raise on a non-zero exit; when False, return stdout whatever the status.
        env: variables added to the environment (over the fixed ``LC_ALL=C`` etc.).

    Returns:
        stdout, decoded as UTF-8 (undecodable bytes as surrogate escapes), not stripped.

    Raises:
        GitError: git exited non-zero (and ``check``), git is not installed, or ``cwd``
            does not exist.
    """
    proc = run_git(cwd, args, env=env)
    if check and proc.returncode != 0:
        stderr = proc.stderr.decode("utf-8", "replace")
        raise command_error(["git", *args], proc.returncode, stderr)
    return decode_output(proc.stdout)


def git_succeeds(cwd: Path, *args: str) -> bool:
    """Whether ``git *args`` exits 0 (for questions git answers by exit status)."""
    return run_git(cwd, args).returncode == 0
