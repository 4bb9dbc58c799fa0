"""Git worktrees, commits and merges of the orchestrator, on real repositories in tmp_path."""

from __future__ import annotations

import os
import pickle
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ap_actors import git as git_runner
from ap_actors.errors import EXIT_CONFIG
from ap_actors.worktrees import (
    GitError,
    MergeResult,
    add_worktree,
    changed_files,
    commit_all,
    ensure_branch,
    files_changed_between,
    git,
    is_ancestor,
    merge_branches,
    objective_branch,
    remove_worktree,
    repo_root,
    resolve_commit,
    session_branch,
    session_worktree_path,
    worktree_path,
)


def write(root: Path, rel: str, text: str = "x\n") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository on branch main with one commit (README.md and a .gitignore)."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "--quiet", "-b", "main")
    write(root, "README.md", "hello\n")
    write(root, ".gitignore", "*.log\n")
    assert commit_all(root, "initial") is not None
    return root


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def objective(repo: Path, state: Path) -> Callable[..., Path]:
    """Return a function that adds objective ``o``'s worktree of session s1 at main."""

    def add(o: str, *, fresh: bool = False) -> Path:
        return add_worktree(
            repo, worktree_path(state, "s1", o), objective_branch("s1", o), "main", fresh=fresh
        )

    return add


def head(path: Path, ref: str = "HEAD") -> str:
    return resolve_commit(path, ref)


# --- names ----------------------------------------------------------------------------


def test_the_session_branch_and_its_objective_branches_can_coexist(repo: Path, state: Path) -> None:
    assert session_branch("s1") == "ap/s1"
    assert objective_branch("s1", "auth") == "ap/s1--auth"
    assert worktree_path(state, "s1", "auth") == state / "worktrees" / "s1" / "auth"
    assert session_worktree_path(state, "s1") == state / "worktrees" / "s1" / "_session"
    main = head(repo)
    assert ensure_branch(repo, session_branch("s1"), "main") == main
    assert ensure_branch(repo, objective_branch("s1", "auth"), "main") == main


@pytest.mark.parametrize(
    ("session", "objective"),
    [
        *[("s1", o) for o in ("a/b", "_session", ".hidden", "x.lock", "a..b", "", "-f", "é")],
        *[("a--b", "c"), ("a b", "c"), ("..", "c")],
    ],
)
def test_an_id_that_could_clash_or_escape_is_refused(session: str, objective: str) -> None:
    with pytest.raises(GitError, match=r"invalid (session|objective) id"):
        objective_branch(session, objective)
    with pytest.raises(GitError, match="invalid"):
        worktree_path(Path("/state"), session, objective)


# --- errors ---------------------------------------------------------------------------


def test_a_git_error_is_one_line_with_the_command_and_gits_first_error(repo: Path) -> None:
    with pytest.raises(GitError) as caught:
        git(repo, "checkout", "no-such-branch")
    error = caught.value
    assert str(error) == (
        "`git checkout no-such-branch` failed: "
        "error: pathspec 'no-such-branch' did not match any file(s) known to git"
    )
    assert error.args == error.argv == ("git", "checkout", "no-such-branch")
    assert error.returncode == 1 and "pathspec" in error.stderr
    assert error.exit_code == EXIT_CONFIG
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.argv, copy.returncode) == (str(error), error.argv, 1)


def test_a_missing_git_says_it_is_not_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GitError, match=r"^git is not installed \(not found on PATH\)$"):
        git(tmp_path, "--version")


def test_a_git_dir_inherited_from_a_hook_does_not_redirect_commands(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "--quiet", "-b", "main")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(other / ".git" / "index"))
    write(repo, "mine.txt")
    assert changed_files(repo) == ["mine.txt"]
    assert resolve_commit(repo, "main") == resolve_commit(repo, "HEAD")


def test_repo_root_of_a_missing_directory_says_it_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(GitError, match=r"nope does not exist; give the path of a git repository"):
        repo_root(tmp_path / "nope")


def test_repo_root_of_a_name_too_long_says_it_cannot_be_looked_up(tmp_path: Path) -> None:
    with pytest.raises(GitError, match=r"cannot be looked up \(File name too long\); give"):
        repo_root(tmp_path / ("x" * 300))


def test_git_in_a_directory_that_cannot_be_entered_is_a_git_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with pytest.raises(GitError, match=r"cannot run git in .*file: Not a directory"):
        git_runner.run_git(not_a_dir, ["status"])


def test_repo_root_of_a_plain_directory_says_to_run_git_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(GitError, match=r"plain is not a git repository; run `git init` there"):
        repo_root(plain)


def test_repo_root_of_a_nested_file_is_the_top_directory(repo: Path) -> None:
    nested = write(repo, "src/pkg/mod.py")
    assert repo_root(nested) == repo.resolve()
    assert repo_root(nested.parent) == repo.resolve()


def test_an_empty_repository_says_to_commit_something_first(tmp_path: Path) -> None:
    git(tmp_path, "init", "--quiet", "-b", "main")
    with pytest.raises(GitError, match="has no commits; commit something first"):
        resolve_commit(tmp_path, "main")
    with pytest.raises(GitError, match="has no commits"):
        add_worktree(tmp_path, tmp_path / "wt", "ap/s1--a", "main")


def test_an_unknown_ref_is_named_in_the_error(repo: Path) -> None:
    with pytest.raises(GitError, match="unknown ref 'nope'"):
        resolve_commit(repo, "nope")
    with pytest.raises(GitError, match="unknown ref '--help'"):
        resolve_commit(repo, "--help")


# --- branches and worktrees -----------------------------------------------------------


def test_ensure_branch_creates_a_missing_branch_and_leaves_an_existing_one(repo: Path) -> None:
    first = head(repo)
    assert ensure_branch(repo, "feature", "main") == first
    write(repo, "b.txt")
    second = commit_all(repo, "second")
    assert second is not None
    assert ensure_branch(repo, "feature", "main") == first
    assert ensure_branch(repo, "other", "main") == second


def test_a_worktree_is_created_on_a_new_branch_at_start(
    repo: Path, state: Path, objective: Callable[..., Path]
) -> None:
    wt = objective("o1")
    assert wt == worktree_path(state, "s1", "o1").resolve()
    assert (wt / "README.md").read_text() == "hello\n"
    assert git(wt, "symbolic-ref", "HEAD").strip() == "refs/heads/ap/s1--o1"
    assert head(wt) == head(repo, "main")
    assert changed_files(wt) == []


def test_adding_a_worktree_again_reuses_it_with_its_work(
    repo: Path, objective: Callable[..., Path]
) -> None:
    wt = objective("o1")
    write(wt, "done.txt")
    done = commit_all(wt, "work")
    write(wt, "pending.txt")
    assert objective("o1") == wt
    assert head(wt) == done
    assert changed_files(wt) == ["pending.txt"]


def test_a_fresh_add_resets_the_worktree_and_its_branch_to_start(
    repo: Path, objective: Callable[..., Path]
) -> None:
    wt = objective("o1")
    write(wt, "committed.txt")
    commit_all(wt, "work")
    write(wt, "README.md", "changed\n")
    write(wt, "untracked/deep.txt")
    write(wt, "build.log")
    assert objective("o1", fresh=True) == wt
    assert head(wt) == head(repo, "ap/s1--o1") == head(repo, "main")
    assert changed_files(wt) == []
    assert not (wt / "committed.txt").exists() and not (wt / "untracked").exists()
    assert (wt / "build.log").exists(), "ignored files are kept"


def test_a_fresh_add_without_a_worktree_resets_the_existing_branch(
    repo: Path, objective: Callable[..., Path]
) -> None:
    wt = objective("o1")
    write(wt, "committed.txt")
    commit_all(wt, "work")
    remove_worktree(repo, wt)
    assert objective("o1", fresh=True) == wt
    assert head(wt) == head(repo, "main")


def test_a_worktree_whose_directory_was_deleted_is_pruned_and_added_again(
    repo: Path, objective: Callable[..., Path]
) -> None:
    wt = objective("o1")
    write(wt, "done.txt")
    done = commit_all(wt, "work")
    shutil.rmtree(wt)
    assert "prunable" in git(repo, "worktree", "list", "--porcelain")
    assert objective("o1") == wt
    assert head(wt) == done, "the branch keeps its commits"
    assert (wt / "done.txt").exists()


def test_a_worktree_on_another_branch_at_the_path_is_refused(
    repo: Path, state: Path, objective: Callable[..., Path]
) -> None:
    wt = objective("o1")
    with pytest.raises(GitError, match=r"is a worktree on ap/s1--o1, not ap/s1--o2; remove it"):
        add_worktree(repo, wt, objective_branch("s1", "o2"), "main")


def test_a_branch_checked_out_in_another_worktree_is_refused(
    repo: Path, state: Path, objective: Callable[..., Path]
) -> None:
    objective("o1")
    with pytest.raises(GitError, match="already checked out"):
        add_worktree(repo, state / "elsewhere", objective_branch("s1", "o1"), "main")


def test_removing_a_worktree_keeps_its_branch_and_is_idempotent(
    repo: Path, objective: Callable[..., Path]
) -> None:
    wt = objective("o1")
    write(wt, "dirty.txt")
    remove_worktree(repo, wt)
    assert not wt.exists()
    assert head(repo, "ap/s1--o1") == head(repo, "main")
    remove_worktree(repo, wt)
    wt = objective("o1")
    shutil.rmtree(wt)
    remove_worktree(repo, wt)
    assert str(wt) not in git(repo, "worktree", "list")


def test_concurrent_workers_add_worktrees_and_commit_in_one_repository(
    repo: Path, state: Path
) -> None:
    workers = 8
    start = threading.Barrier(workers)

    def work(n: int) -> str | None:
        wt = worktree_path(state, "s1", f"o{n}")
        start.wait()
        add_worktree(repo, wt, objective_branch("s1", f"o{n}"), "main")
        write(wt, f"objective{n}/file.txt", f"{n}\n")
        return commit_all(wt, f"objective {n}")

    with ThreadPoolExecutor(workers) as pool:
        commits = list(pool.map(work, range(workers)))
    assert all(commits)
    for n, sha in enumerate(commits):
        assert head(repo, objective_branch("s1", f"o{n}")) == sha
    session = add_worktree(repo, session_worktree_path(state, "s1"), session_branch("s1"), "main")
    branches = [objective_branch("s1", f"o{n}") for n in range(workers)]
    assert merge_branches(repo, session, branches, "wave 1").merged == branches


@pytest.fixture
def locked_worktree(objective: Callable[..., Path]) -> tuple[Path, Path]:
    """Objective o1's worktree with a change, and its index.lock, taken (as a crash leaves it)."""
    wt = objective("o1")
    lock = Path(git(wt, "rev-parse", "--path-format=absolute", "--git-path", "index.lock").strip())
    lock.touch()
    write(wt, "a.txt")
    return wt, lock


def test_a_command_that_finds_a_lock_taken_retries_until_it_is_released(
    locked_worktree: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    wt, lock = locked_worktree
    waits: list[float] = []

    def release_after_the_second_wait(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            lock.unlink()

    monkeypatch.setattr(git_runner.time, "sleep", release_after_the_second_wait)
    assert commit_all(wt, "after the lock") is not None
    assert len(waits) == 2


def test_a_lock_that_is_never_released_fails_after_a_bounded_wait(
    locked_worktree: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    wt, _ = locked_worktree
    waits: list[float] = []
    monkeypatch.setattr(git_runner.time, "sleep", waits.append)
    with pytest.raises(GitError, match=r"`git add --all` failed: fatal: Unable to create .*lock"):
        commit_all(wt, "never")
    assert len(waits) == git_runner._LOCK_TRIES - 1
    assert sum(waits) < 2.5


# --- changes and commits --------------------------------------------------------------


def test_changed_files_lists_every_kind_of_change(
    repo: Path, objective: Callable[..., Path]
) -> None:
    wt = objective("o1")
    for rel in ("modified.txt", "deleted.txt", "old name.txt", "typechanged.txt", "staged.txt"):
        write(wt, rel, f"{rel}\n")
    commit_all(wt, "base")
    write(wt, "modified.txt", "changed\n")
    (wt / "deleted.txt").unlink()
    git(wt, "mv", "old name.txt", "new name.txt")
    (wt / "typechanged.txt").unlink()
    os.symlink("README.md", wt / "typechanged.txt")
    write(wt, "staged.txt", "staged change\n")
    git(wt, "add", "staged.txt")
    write(wt, "added.txt")
    git(wt, "add", "added.txt")
    write(wt, "new\nline.txt")
    write(wt, "naïve/ünïcode.txt")
    write(wt, "untracked dir/a/b.txt")
    write(wt, "untracked dir/c.txt")
    write(wt, "debug.log")
    write(wt, "untracked dir/ignored.log")
    assert changed_files(wt) == sorted(
        [
            "added.txt",
            "deleted.txt",
            "modified.txt",
            "naïve/ünïcode.txt",
            "new\nline.txt",
            "new name.txt",
            "old name.txt",
            "staged.txt",
            "typechanged.txt",
            "untracked dir/a/b.txt",
            "untracked dir/c.txt",
        ]
    )


def test_changed_files_of_a_clean_worktree_is_empty(repo: Path) -> None:
    assert changed_files(repo) == []


def test_commit_all_commits_everything_as_the_orchestrator_without_user_config(
    repo: Path, objective: Callable[..., Path]
) -> None:
    wt = objective("o1")
    base = head(wt)
    write(wt, "a b/new file.txt")
    (wt / "README.md").unlink()
    write(wt, "trace.log")
    sha = commit_all(wt, "objective o1: done")
    assert sha == head(wt) == head(repo, "ap/s1--o1")
    assert changed_files(wt) == []
    assert git(wt, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%s|%P").strip() == (
        f"ap-actors <ap-actors@localhost>|ap-actors <ap-actors@localhost>|objective o1: done|{base}"
    )
    assert files_changed_between(repo, base, sha) == ["README.md", "a b/new file.txt"]


def test_commit_all_returns_none_when_nothing_but_ignored_files_changed(
    repo: Path, objective: Callable[..., Path]
) -> None:
    wt = objective("o1")
    assert commit_all(wt, "nothing") is None
    write(wt, "trace.log")
    assert commit_all(wt, "nothing") is None
    assert head(wt) == head(repo, "main")


def test_commit_all_runs_no_commit_hooks(repo: Path, objective: Callable[..., Path]) -> None:
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho refused >&2\nexit 1\n")
    hook.chmod(0o755)
    wt = objective("o1")
    write(wt, "a.txt")
    assert commit_all(wt, "hooks skipped") is not None


def test_files_changed_between_gives_both_paths_of_a_rename(repo: Path) -> None:
    base = head(repo)
    (repo / "docs").mkdir()
    git(repo, "mv", "README.md", "docs/README.md")
    sha = commit_all(repo, "move")
    assert sha is not None
    assert files_changed_between(repo, base, sha) == ["README.md", "docs/README.md"]
    assert files_changed_between(repo, sha, sha) == []
    with pytest.raises(GitError, match="unknown ref"):
        files_changed_between(repo, base, "nope")


def test_is_ancestor_follows_history_only_forward(repo: Path) -> None:
    base = head(repo)
    write(repo, "b.txt")
    later = commit_all(repo, "later")
    assert later is not None
    assert is_ancestor(repo, base, later) and is_ancestor(repo, base, base)
    assert not is_ancestor(repo, later, base)


# --- merging --------------------------------------------------------------------------


@pytest.fixture
def session(repo: Path, state: Path) -> Path:
    return add_worktree(repo, session_worktree_path(state, "s1"), session_branch("s1"), "main")


def work_on(add: Callable[..., Path], o: str, files: dict[str, str]) -> str:
    """Commit ``files`` (path -> text) on objective ``o``'s branch; return the branch."""
    wt = add(o)
    for rel, text in files.items():
        write(wt, rel, text)
    assert commit_all(wt, f"work on {o}") is not None
    return objective_branch("s1", o)


def test_two_disjoint_branches_are_merged_with_a_merge_commit_each(
    repo: Path, session: Path, objective: Callable[..., Path]
) -> None:
    base = head(session)
    one = work_on(objective, "o1", {"src/auth.py": "auth\n"})
    two = work_on(objective, "o2", {"docs/auth.md": "docs\n"})
    result = merge_branches(repo, session, [one, two], "wave 1")
    assert result == MergeResult(head(session), [one, two])
    assert head(repo, "ap/s1") == result.commit
    assert (session / "src/auth.py").exists() and (session / "docs/auth.md").exists()
    subjects = git(session, "log", "--merges", "--format=%s|%p", f"{base}..HEAD").splitlines()
    assert [s.split("|")[0] for s in subjects] == [f"wave 1: {two}", f"wave 1: {one}"]
    assert all(len(s.split("|")[1].split()) == 2 for s in subjects)
    assert files_changed_between(repo, base, result.commit) == ["docs/auth.md", "src/auth.py"]


def test_merging_again_after_a_crash_only_merges_what_is_missing(
    repo: Path, session: Path, objective: Callable[..., Path]
) -> None:
    one = work_on(objective, "o1", {"a.txt": "a\n"})
    two = work_on(objective, "o2", {"b.txt": "b\n"})
    partial = merge_branches(repo, session, [one], "wave 1")
    full = merge_branches(repo, session, [one, two], "wave 1")
    assert full.merged == [one, two] and is_ancestor(repo, partial.commit, full.commit)
    assert git(session, "rev-list", "--count", "--merges", "HEAD").strip() == "2"
    assert merge_branches(repo, session, [one, two], "wave 1") == full


def test_a_conflicting_merge_reports_its_paths_and_leaves_the_worktree_clean(
    repo: Path, session: Path, objective: Callable[..., Path]
) -> None:
    one = work_on(objective, "o1", {"README.md": "one\n", "src/a.py": "a\n"})
    two = work_on(objective, "o2", {"README.md": "two\n", "src/a.py": "b\n", "ok.txt": "ok\n"})
    three = work_on(objective, "o3", {"c.txt": "c\n"})
    result = merge_branches(repo, session, [one, two, three], "wave 1")
    assert result.merged == [one]
    assert result.conflict == two and result.conflict_paths == ["README.md", "src/a.py"]
    assert result.commit == head(session) == head(repo, "ap/s1")
    assert changed_files(session) == []
    assert not (session / "ok.txt").exists() and not (session / "c.txt").exists()
    assert git(session, "rev-parse", "--verify", "--quiet", "MERGE_HEAD", check=False) == ""
    assert (session / "README.md").read_text() == "one\n"


def test_a_worktree_left_mid_merge_by_a_crash_is_recovered(
    repo: Path, session: Path, objective: Callable[..., Path]
) -> None:
    one = work_on(objective, "o1", {"README.md": "one\n"})
    two = work_on(objective, "o2", {"README.md": "two\n"})
    merge_branches(repo, session, [one], "wave 1")
    # What a process killed during a conflicting merge leaves behind.
    identity = ("-c", "user.name=crashed", "-c", "user.email=crashed@localhost")
    git(session, *identity, "merge", "--no-ff", "--no-edit", two, check=False)
    assert git(session, "rev-parse", "--verify", "--quiet", "MERGE_HEAD", check=False)
    three = work_on(objective, "o3", {"c.txt": "c\n"})
    result = merge_branches(repo, session, [one, three], "wave 2")
    assert result.merged == [one, three] and result.conflict is None
    assert changed_files(session) == [] and (session / "README.md").read_text() == "one\n"


def test_debris_of_a_crashed_merge_without_merge_head_is_discarded(
    repo: Path, session: Path, objective: Callable[..., Path]
) -> None:
    one = work_on(objective, "o1", {"a.txt": "from o1\n"})
    write(session, "a.txt", "half-written\n")
    write(session, "README.md", "half-written\n")
    result = merge_branches(repo, session, [one], "wave 1")
    assert result.merged == [one]
    assert (session / "a.txt").read_text() == "from o1\n"
    assert (session / "README.md").read_text() == "hello\n"


def test_merging_into_a_detached_worktree_is_refused(
    repo: Path, session: Path, objective: Callable[..., Path]
) -> None:
    one = work_on(objective, "o1", {"a.txt": "a\n"})
    git(session, "checkout", "--quiet", "--detach")
    with pytest.raises(GitError, match="is not on a branch"):
        merge_branches(repo, session, [one], "wave 1")


def test_merging_an_unknown_branch_names_it(repo: Path, session: Path) -> None:
    with pytest.raises(GitError, match="unknown ref 'ap/s1--nope'"):
        merge_branches(repo, session, ["ap/s1--nope"], "wave 1")
