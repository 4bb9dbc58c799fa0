"""Every git operation of the orchestrator: branches, worktrees, commits and merges.

Each objective of a session runs in its own linked worktree of the owner's repository,
``<state>/worktrees/<session>/<objective>`` on branch ``ap/<session>--<objective>``;
after a wave the scheduler merges the objective branches, in the session worktree
``<state>/worktrees/<session>/_session``, into the session branch ``ap/<session>``.

Branch names depart from DESIGN.md ("Workers and agents"), which says
``ap/<session>/<objective>``: git stores ``refs/heads/ap/S`` as a file and
``refs/heads/ap/S/obj`` as a file inside a directory ``refs/heads/ap/S``, and one path
cannot be both, so the session branch and its objective branches could not coexist.
``ap/<session>--<objective>`` keeps them side by side and still sorts together. Ids are
restricted to ``[A-Za-z0-9._-]``, not starting with ``.``, ``-`` or ``_`` (so no
objective is called ``_session`` and no id escapes its directory), and a session id may
not contain ``--``, so two (session, objective) pairs never share a branch name.

Git itself runs through :mod:`ap_actors.git` (fixed environment, lock-race retries;
``git`` and ``GitError`` are re-exported here). These are plain synchronous functions;
actors call them through ``asyncio.to_thread``. Commits and merges are made as
``ap-actors <ap-actors@localhost>`` with no user config needed, without commit hooks and
unsigned.

Every failure is a :class:`GitError`: one line with the git command and git's own first
error line, or what is wrong and how to fix it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from pathlib import Path

import msgspec

from ap_actors.git import GitError, command_error, decode_output, git, git_succeeds, run_git

__all__ = [
    "SESSION_WORKTREE",
    "GitError",
    "MergeResult",
    "add_worktree",
    "changed_files",
    "commit_all",
    "ensure_branch",
    "files_changed_between",
    "git",
    "is_ancestor",
    "merge_branches",
    "objective_branch",
    "remove_worktree",
    "repo_root",
    "resolve_commit",
    "session_branch",
    "session_worktree_path",
    "worktree_path",
]

# Directory of the session worktree; objective ids never start with "_".
SESSION_WORKTREE = "_session"

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class MergeResult(msgspec.Struct, frozen=True):
    """What :func:`merge_branches` did."""

    commit: str  # Session branch head after the call (40-hex sha).
    merged: list[str]  # Branches now contained in it, in the order given (this call or earlier).
    conflict: str | None = None  # Branch whose merge conflicted; it and later ones are not merged.
    conflict_paths: list[str] = []  # Repo-relative POSIX paths in conflict, sorted.


# --- names ----------------------------------------------------------------------------


def _check_id(kind: str, value: str) -> str:
    if not _ID.fullmatch(value) or value.endswith((".lock", ".")) or ".." in value:
        raise GitError(
            f"invalid {kind} id {value!r}: use letters, digits, '.', '_' and '-', "
            "not starting with '.', '-' or '_', not ending with '.' or '.lock', no '..'"
        )
    if kind == "session" and "--" in value:
        raise GitError(f"invalid session id {value!r}: it may not contain '--'")
    return value


def session_branch(session_id: str) -> str:
    """The session branch, ``ap/<session>``; raises :class:`GitError` for an invalid id."""
    return f"ap/{_check_id('session', session_id)}"


def objective_branch(session_id: str, objective_id: str) -> str:
    """An objective's branch, ``ap/<session>--<objective>`` (see the module docstring)."""
    return f"{session_branch(session_id)}--{_check_id('objective', objective_id)}"


def worktree_path(state_dir: Path, session_id: str, objective_id: str) -> Path:
    """An objective's worktree directory, ``<state>/worktrees/<session>/<objective>``."""
    session = _check_id("session", session_id)
    return state_dir / "worktrees" / session / _check_id("objective", objective_id)


def session_worktree_path(state_dir: Path, session_id: str) -> Path:
    """The session worktree directory, ``<state>/worktrees/<session>/_session``."""
    return state_dir / "worktrees" / _check_id("session", session_id) / SESSION_WORKTREE


# --- repositories and refs ------------------------------------------------------------


def repo_root(path: Path) -> Path:
    """The top directory of the worktree containing ``path``.

    Args:
        path: a directory or file inside a git worktree.

    Returns:
        the absolute top-level directory (for a linked worktree, that worktree's).

    Raises:
        GitError: ``path`` does not exist or cannot be looked up (e.g. a name too
            long), is not inside a git repository, or is in a bare repository; the
            message says how to fix it.
    """
    try:
        exists, is_dir = path.exists(), path.is_dir()
    except OSError as e:  # a name too long, a parent that cannot be searched
        raise GitError(
            f"{path} cannot be looked up ({e.strerror}); give the path of a git repository"
        ) from None
    if not exists:
        raise GitError(f"{path} does not exist; give the path of a git repository")
    where = path if is_dir else path.parent
    argv = ("git", "rev-parse", "--show-toplevel")
    proc = run_git(where, argv[1:])
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        if "not a git repository" in stderr:
            raise GitError(
                f"{path} is not a git repository; run `git init` there (and commit) "
                "or give the path of one",
                argv,
                proc.returncode,
                stderr,
            )
        raise command_error(argv, proc.returncode, stderr)
    top = decode_output(proc.stdout).strip()
    if not top:
        raise GitError(f"{path} is in a bare repository; give a repository with a worktree")
    return Path(top)


def resolve_commit(repo: Path, ref: str) -> str:
    """The full sha of the commit ``ref`` names (a branch, tag, sha or ``HEAD~2``).

    Raises:
        GitError: the repository has no commit at all ("has no commits; commit something
            first"), or ``ref`` names no commit ("unknown ref").
    """
    argv = ("git", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    proc = run_git(repo, argv[1:])
    if proc.returncode == 0:
        return decode_output(proc.stdout).strip()
    stderr = proc.stderr.decode("utf-8", "replace")
    if not git(repo, "rev-list", "-n", "1", "--all").strip():
        raise GitError(
            f"{repo} has no commits; commit something first", argv, proc.returncode, stderr
        )
    raise GitError(f"unknown ref {ref!r} in {repo}", argv, proc.returncode, stderr)


def ensure_branch(repo: Path, branch: str, start: str) -> str:
    """Create ``branch`` at ``start`` unless it exists; an existing branch is left as is.

    Returns:
        the branch's commit (40-hex sha).

    Raises:
        GitError: ``start`` is unknown, or ``branch`` is not a valid branch name.
    """
    ref = f"refs/heads/{branch}"
    if git_succeeds(repo, "rev-parse", "--verify", "--quiet", ref):
        return resolve_commit(repo, ref)
    sha = resolve_commit(repo, start)
    proc = run_git(repo, ("branch", "--no-track", branch, sha))
    # Another process may have created it between the check and here: that is fine.
    if proc.returncode != 0 and not git_succeeds(repo, "rev-parse", "--verify", "--quiet", ref):
        argv = ("git", "branch", "--no-track", branch, sha)
        raise command_error(argv, proc.returncode, proc.stderr.decode("utf-8", "replace"))
    return resolve_commit(repo, ref)


def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    """Whether commit ``ancestor`` is reachable from ``descendant`` (or is it).

    Raises:
        GitError: either ref is unknown.
    """
    older, newer = resolve_commit(repo, ancestor), resolve_commit(repo, descendant)
    argv = ("git", "merge-base", "--is-ancestor", older, newer)
    proc = run_git(repo, argv[1:])
    if proc.returncode in (0, 1):
        return proc.returncode == 0
    raise command_error(argv, proc.returncode, proc.stderr.decode("utf-8", "replace"))


# --- worktrees ------------------------------------------------------------------------


class _Worktree(msgspec.Struct, frozen=True):
    path: Path  # As git recorded it: absolute, symlinks resolved.
    branch: str | None  # "refs/heads/...", or None when detached or bare.
    prunable: bool  # Its directory is gone; `git worktree prune` drops it.


def _worktrees(repo: Path) -> list[_Worktree]:
    """The registered worktrees, from ``git worktree list --porcelain -z``."""
    found: list[_Worktree] = []
    fields: dict[str, str] = {}
    for line in git(repo, "worktree", "list", "--porcelain", "-z").split("\0"):
        if line:
            key, _, value = line.partition(" ")
            fields[key] = value
        elif fields:
            path = Path(fields["worktree"])
            found.append(_Worktree(path, fields.get("branch"), "prunable" in fields))
            fields = {}
    return found


def _registered(repo: Path, path: Path, branch: str) -> _Worktree | None:
    """The worktree registered at ``path``, after pruning a stale one at it or ``branch``.

    A stale registration (directory deleted, still registered) would make git refuse to
    add a worktree at that path or to check the branch out again.
    """
    ref = f"refs/heads/{branch}"
    entries = _worktrees(repo)
    if any(e.prunable and (e.path == path or e.branch == ref) for e in entries):
        git(repo, "worktree", "prune")
        entries = _worktrees(repo)
    return next((e for e in entries if e.path == path), None)


def add_worktree(repo: Path, path: Path, branch: str, start: str, *, fresh: bool = False) -> Path:
    """Give ``branch`` a worktree at ``path``, creating the branch at ``start`` if missing.

    Idempotent: when ``path`` already is a worktree on ``branch`` it is reused as it is
    (a restarted worker resumes its work). A registration whose directory was deleted
    is pruned first. Parent directories are created.

    Args:
        repo: any worktree of the repository.
        path: the worktree directory; it must not exist, be empty, or already be the
            worktree of ``branch``.
        branch: the branch to check out (e.g. :func:`objective_branch`).
        start: commit-ish the branch starts at when it is created.
        fresh: start over: the branch is reset to ``start``, the worktree reset hard to
            it and its untracked files removed (ignored files are kept).

    Returns:
        the worktree directory, absolute with symlinks resolved.

    Raises:
        GitError: ``start`` is unknown; ``path`` is a worktree on another branch, or a
            non-empty directory that is no worktree; ``branch`` is checked out elsewhere.
    """
    target = path.resolve()
    entry = _registered(repo, target, branch)
    if entry is not None:
        if entry.branch != f"refs/heads/{branch}":
            on = entry.branch.removeprefix("refs/heads/") if entry.branch else "a detached HEAD"
            raise GitError(
                f"{target} is a worktree on {on}, not {branch}; remove it first "
                f"(git worktree remove --force {shlex.quote(str(target))})"
            )
        if fresh:
            git(target, "reset", "--hard", "--quiet", resolve_commit(repo, start))
            git(target, "clean", "-ffd", "--quiet")
        return target
    sha = resolve_commit(repo, start)
    target.parent.mkdir(parents=True, exist_ok=True)
    if fresh:
        git(repo, "worktree", "add", "--quiet", "--no-track", "-B", branch, str(target), sha)
    else:
        ensure_branch(repo, branch, sha)
        git(repo, "worktree", "add", "--quiet", str(target), branch)
    return target


def remove_worktree(repo: Path, path: Path) -> None:
    """Remove the worktree at ``path`` with everything in it; its branch stays.

    No error when ``path`` is not (or no longer) a registered worktree; a directory
    there that is not one is left alone.

    Raises:
        GitError: git could not remove it.
    """
    target = path.resolve()
    entry = next((e for e in _worktrees(repo) if e.path == target), None)
    if entry is None:
        return
    if entry.prunable:
        git(repo, "worktree", "prune")
    else:
        git(repo, "worktree", "remove", "--force", "--force", str(target))


# --- changes and commits --------------------------------------------------------------


def changed_files(worktree: Path) -> list[str]:
    """Every path changed in ``worktree`` relative to its HEAD, staged or not.

    Modified, added, deleted, type-changed, renamed (the old and the new path), and
    untracked files (each file of an untracked directory; ignored files are not
    included). Parsed from ``git status --porcelain=v1 -z --untracked-files=all``, where
    a rename or copy record is ``XY NEW\\0OLD\\0`` and paths are not quoted.

    Returns:
        repo-relative POSIX paths, sorted, without duplicates.

    Raises:
        GitError: ``worktree`` is not a git worktree.
    """
    output = git(worktree, "status", "--porcelain=v1", "-z", "--untracked-files=all")
    fields = output.split("\0")
    paths: set[str] = set()
    i = 0
    while i < len(fields):
        record = fields[i]
        i += 1
        if not record:
            continue
        status, path = record[:2], record[3:]
        paths.add(path)
        if "R" in status or "C" in status:
            if "R" in status:  # The source of a copy is unchanged; a rename's is gone.
                paths.add(fields[i])
            i += 1
    return sorted(paths)


def _identity(author: str, email: str) -> tuple[list[str], dict[str, str]]:
    """``-c`` options and environment that make git commit as ``author <email>``.

    Both, so that neither a missing nor a different user config matters; signing is off
    because an orchestrator cannot answer a passphrase prompt.
    """
    options = ["-c", f"user.name={author}", "-c", f"user.email={email}"]
    options += ["-c", "commit.gpgSign=false"]
    env = {
        "GIT_AUTHOR_NAME": author,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": author,
        "GIT_COMMITTER_EMAIL": email,
    }
    return options, env


def commit_all(
    worktree: Path, message: str, *, author: str = "ap-actors", email: str = "ap-actors@localhost"
) -> str | None:
    """Stage everything (``git add -A``) and commit it as ``author <email>``.

    No user config is needed and no hooks run (``--no-verify``). Ignored files are not
    committed.

    Args:
        worktree: the worktree to commit in, on a branch.
        message: the commit message; git strips trailing whitespace and blank lines
            (``--cleanup=whitespace``), ``#`` lines are kept.

    Returns:
        the new commit's sha, or None when nothing changed (no commit is made).

    Raises:
        GitError: git failed (e.g. an empty ``message``).
    """
    git(worktree, "add", "--all")
    if git_succeeds(worktree, "diff", "--cached", "--quiet"):
        return None
    options, env = _identity(author, email)
    args = ["commit", "--quiet", "--no-verify", "--cleanup=whitespace", "-m", message]
    git(worktree, *options, *args, env=env)
    return resolve_commit(worktree, "HEAD")


def _split_z(output: str) -> list[str]:
    return [field for field in output.split("\0") if field]


def files_changed_between(repo: Path, base: str, head: str) -> list[str]:
    """Paths that differ between commits ``base`` and ``head`` (``git diff base..head``).

    Rename detection is off, so a renamed file gives both its old and its new path.

    Returns:
        repo-relative POSIX paths, sorted.

    Raises:
        GitError: either ref is unknown.
    """
    old, new = resolve_commit(repo, base), resolve_commit(repo, head)
    output = git(repo, "diff", "--name-only", "-z", "--no-renames", old, new)
    return sorted(set(_split_z(output)))


# --- merging --------------------------------------------------------------------------


def _conflicted(worktree: Path) -> list[str]:
    output = git(worktree, "diff", "--name-only", "-z", "--diff-filter=U")
    return sorted(set(_split_z(output)))


def _restore(worktree: Path) -> None:
    """Bring a private worktree back to its HEAD: no merge in progress, nothing changed."""
    merging = git_succeeds(worktree, "rev-parse", "--verify", "--quiet", "MERGE_HEAD")
    if merging and not git_succeeds(worktree, "merge", "--abort"):
        git(worktree, "reset", "--hard", "--quiet", "HEAD")
    if git(worktree, "status", "--porcelain=v1", "-z", "--untracked-files=all"):
        git(worktree, "reset", "--hard", "--quiet", "HEAD")
        git(worktree, "clean", "-ffd", "--quiet")


def merge_branches(
    repo: Path,
    session_wt: Path,
    branches: Sequence[str],
    message: str,
    *,
    author: str = "ap-actors",
    email: str = "ap-actors@localhost",
) -> MergeResult:
    """Merge ``branches`` in order into the branch checked out in ``session_wt``.

    Each branch not yet contained in the session branch gets a ``--no-ff`` merge commit
    whose subject is ``"<message>: <branch>"``; a branch already merged is skipped, so a
    repeated call (after a crash) merges only what is missing and returns the same
    result. On a conflict the conflicting paths are recorded, the merge is aborted and
    the remaining branches are left alone: ``session_wt`` is never left mid-merge.

    ``session_wt`` must be private to the orchestrator: a merge left in progress by a
    crashed process is aborted first, and any other uncommitted change in it is
    discarded (``reset --hard`` and ``clean``), since only a crashed merge leaves one.

    Args:
        repo: any worktree of the repository.
        session_wt: the session worktree, on the session branch.
        branches: branch names (or other commit-ishes) to merge, in order.
        message: subject prefix of the merge commits.
        author: name of the merge commits' author and committer.
        email: their email.

    Returns:
        the session head after the call, the branches it contains, and the conflict.

    Raises:
        GitError: a branch is unknown, ``session_wt`` is not on a branch, or a merge
            failed for another reason than a conflict (it is aborted first).
    """
    if not git_succeeds(session_wt, "symbolic-ref", "--quiet", "HEAD"):
        raise GitError(f"{session_wt} is not on a branch; check the session branch out there")
    _restore(session_wt)
    options, env = _identity(author, email)
    options += ["-c", "rerere.enabled=false"]  # A recorded resolution must not hide a conflict.
    merged: list[str] = []
    for branch in branches:
        tip = resolve_commit(repo, branch)
        if not is_ancestor(repo, tip, resolve_commit(session_wt, "HEAD")):
            args = [*options, "merge", "--no-ff", "--no-edit", "--no-verify"]
            args += ["-m", f"{message}: {branch}", tip]
            proc = run_git(session_wt, args, env=env)
            if proc.returncode != 0:
                paths = _conflicted(session_wt)
                _restore(session_wt)
                if not paths:
                    stderr = proc.stderr.decode("utf-8", "replace") or decode_output(proc.stdout)
                    raise command_error(["git", *args], proc.returncode, stderr)
                head = resolve_commit(session_wt, "HEAD")
                return MergeResult(head, merged, conflict=branch, conflict_paths=paths)
        merged.append(branch)
    return MergeResult(resolve_commit(session_wt, "HEAD"), merged)
