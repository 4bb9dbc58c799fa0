"""The scope algebra: matching, exact overlap with witnesses, recolouring, violations.

Oracles: pathspec's ``GitIgnoreSpec`` for concrete paths, real ``git check-ignore``
(git 2.39) where pathspec and git disagree, and greenery's automaton algebra for the
emptiness of an overlap. A scope pattern is anchored at the repository root, so the
oracles are given its gitignore form (:func:`as_gitignore`).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pathspec import GitIgnoreSpec

from ap_actors import scope
from ap_actors.errors import EXIT_CONFIG, ScopeError
from ap_actors.events import Objective, ScopeConflict
from ap_actors.scope import (
    anchored,
    check_changes,
    check_pattern,
    find_conflicts,
    in_scope,
    matches,
    overlap,
    recolour,
)

# --- helpers ----------------------------------------------------------------------------


def git_ignored(patterns: Sequence[str], files: Sequence[str]) -> set[str]:
    """Return the files git ignores in a real repository whose .gitignore is ``patterns``.

    ``files`` are created (so git knows files from folders); none may be a folder of
    another.
    """
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        env = {
            **os.environ,
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": tmp,
            "XDG_CONFIG_HOME": tmp,
        }
        subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
        for name in files:
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            (repo / name).write_text("")
        (repo / ".gitignore").write_text("".join(f"{p}\n" for p in patterns))
        result = subprocess.run(
            ["git", "check-ignore", "--no-index", "-z", "-v", "-n", "--stdin"],
            cwd=repo,
            input="".join(f"{name}\0" for name in files),
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert result.returncode in (0, 1), result.stderr
        fields = result.stdout.split("\0")
        # Records of 4 fields: source, line number, pattern, path; source "" = no match.
        return {fields[i + 3] for i in range(0, len(fields) - 1, 4) if fields[i]}


def as_gitignore(pattern: str) -> str:
    """The .gitignore pattern meaning what scope ``pattern`` means: rooted unless "**/"."""
    return pattern if pattern.startswith(("/", "**/")) else "/" + pattern


@cache
def oracle(pattern: str) -> GitIgnoreSpec:
    """pathspec's reading of one scope pattern, asked the question git answers.

    The pattern is anchored at the root first (:func:`as_gitignore`). pathspec lets
    ``foo/**/`` match the file ``foo/x``; git does not (see
    ``test_a_trailing_globstar_folder_pattern_follows_git_where_pathspec_differs``), and
    ``foo/*/`` means to both what ``foo/**/`` means to git.
    """
    pattern = as_gitignore(pattern)
    if pattern.endswith("**/"):
        pattern = pattern[:-3] + "*/"
    return GitIgnoreSpec.from_lines([pattern])


def said(pattern: str, path: str) -> bool:
    return oracle(pattern).match_file(path)


def folders_apart(paths: Sequence[str]) -> list[str]:
    """The paths that are not a folder of another one (a tree git can hold)."""
    unique = sorted(set(paths))
    return [p for p in unique if not any(q.startswith(p + "/") for q in unique)]


def objective(
    id: str,
    touch: Sequence[str],
    *,
    wave: int = 1,
    forbid: Sequence[str] = (),
    depends_on: Sequence[str] = (),
) -> Objective:
    return Objective(
        id=id,
        title=id,
        wave=wave,
        scope_touch=list(touch),
        scope_forbid=list(forbid),
        depends_on=list(depends_on),
    )


# Paths and patterns of the property tests: small trees over a few names.
NAMES = ["a", "b", "ab", "a.py", "test_a.py", "x.md", ".a", "a b"]
GLOBS = ["*", "?", "**", "[ab]", "*.py", "test_*", "a*", "?.md", "[!a]*", "*b", "[a-b]?", "x.*"]
GLOBS += ["*.*", "??", "[!.]*", ".*", "\\*", "[^b]", "a?b", "a\\ b"]
paths = st.lists(st.sampled_from(NAMES), min_size=1, max_size=4).map("/".join)
trees = st.lists(paths, min_size=1, max_size=12)
patterns = st.builds(
    lambda rooted, segments, folder: "/" * rooted + "/".join(segments) + "/" * folder,
    st.booleans(),
    st.lists(st.sampled_from(NAMES + GLOBS), min_size=1, max_size=3),
    st.booleans(),
)

# --- matching ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "pattern", "expected"),
    [
        ("b.py", "*.py", True),
        ("a/b.py", "*.py", False),  # Anchored at the root, unlike in a .gitignore.
        ("a.py/b", "*.py", True),  # Through a root folder named like a Python file.
        ("a/b.py", "/*.py", False),
        ("a/b.py", "**/*.py", True),  # A leading "**/": any depth.
        ("setup.py", "/setup.py", True),
        ("setup.py", "setup.py", True),
        ("src/setup.py", "/setup.py", False),
        ("src/setup.py", "setup.py", False),
        ("src/a.py", "src/*.py", True),
        ("x/src/a.py", "src/*.py", False),
        ("src/a/b.py", "src/*.py", False),  # "*" does not cross "/".
        ("src/auth/jwt.py", "src/", True),  # Through a parent folder.
        ("x/src/a", "src/", False),
        ("a/tests/x", "tests/", False),
        ("a/tests/x", "**/tests/", True),
        ("src", "src/", False),  # A trailing "/" matches folders only.
        ("src", "src", True),
        ("src/a/b/c.py", "src/**/c.py", True),
        ("src/c.py", "src/**/c.py", True),  # "/**/" may match no folder.
        ("x/y/c.py", "**/c.py", True),
        ("src/a/b", "src/**", True),
        ("src", "src/**", False),  # Trailing "/**": inside only.
        ("b.md", "?.md", True),
        ("ab.md", "?.md", False),
        ("b.py", "[ab].py", True),
        ("c.py", "[!ab].py", True),
        ("a.py", "[!ab].py", False),
        ("*.py", "\\*.py", True),  # Escaped wildcard.
        ("a.py", "\\*.py", False),
        ("#x", "\\#x", True),
        ("!x", "\\!x", True),
        ("src/a", "src/   ", True),  # Trailing spaces are stripped ...
        ("foo ", "foo\\ ", True),  # ... unless escaped.
    ],
)
def test_matches_follows_gitignore(path: str, pattern: str, expected: bool) -> None:
    assert matches(path, [pattern]) is expected
    assert scope._compile(pattern).accepts(path) is expected
    assert (path in git_ignored([as_gitignore(pattern)], [path])) is expected


def test_no_pattern_matches_nothing() -> None:
    assert matches("a.py", []) is False


def test_in_scope_is_touched_and_not_forbidden() -> None:
    touch, forbid = ["src/auth/"], ["src/auth/vendor/"]
    assert in_scope("src/auth/jwt.py", touch, forbid)
    assert not in_scope("src/auth/vendor/x.py", touch, forbid)
    assert not in_scope("src/billing.py", touch, forbid)


@pytest.mark.parametrize("path", ["", "/a", "a/", "a//b", "./a", "a/../b", "a\0b"])
def test_a_path_that_is_not_repository_relative_is_rejected(path: str) -> None:
    with pytest.raises(ScopeError, match="not a repository-relative file path"):
        matches(path, ["*"])


def test_a_path_with_a_newline_is_matched_like_git_does() -> None:
    # pathspec's regular expressions do not cross a newline; the automaton does.
    assert matches("a\nb/c.py", ["**/*.py"])
    assert not matches("a\nb/c.py", ["*.py"])
    assert matches("a\nb/c.py", ["/a?b/"])


# --- pattern validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        ("!src/", "negates; put the path in scope_forbid instead"),
        ("", "is empty"),
        ("   ", "is empty"),
        ("# notes", "comment"),
        ("/", "repository root"),
        ("a\0b", "NUL"),
        ("a\tb", "control character U+0009"),
        ("a\u00a0b", "whitespace U+00A0"),
        ("src/../x", "'..' segment"),
        ("./src", "'.' or '..' segment"),
        ("src//x", "empty folder name"),
        ("~/src", "home directory"),
        ("C:\\src", "Windows absolute path"),
        ("/home/alice/repo/src/", "'home/alice/repo/src/' if 'home' really is a top folder"),
        ("/Users/al/x.py", "absolute filesystem path"),
        ("src\\", "lone '\\'"),
        ("src\\auth", "escapes 'a', which needs no escape"),
        ("a\\/b", "escapes a '/'"),
        ("a/***/b", "'***'"),
        ("a**/b", "'**' inside a name; write '*', or '**' between slashes"),
        ("**.py", "'**' inside a name"),
        ("a[b", "unclosed '['"),
        ("[]a]", "'[]'"),
        ("[a/b]", "'/' inside [...]"),
        ("[\\]]", "'\\' inside [...]"),
        ("[[:alpha:]]", "[a-zA-Z]"),
        ("[z-a]", "reversed range 'z-a'; write 'a-z'"),
        ("[+--]", "'--' inside"),
        ("[a-c-]x", None),  # Valid: git and pathspec both read a literal '-'.
    ],
)
def test_an_invalid_pattern_says_what_is_wrong_and_how_to_fix_it(
    pattern: str, says: str | None
) -> None:
    if says is None:
        check_pattern(pattern)
        return
    with pytest.raises(ScopeError) as caught:
        check_pattern(pattern)
    message = str(caught.value)
    assert says in message
    assert message.startswith(f"scope pattern {pattern!r} ")
    assert "\n" not in message
    assert caught.value.exit_code == EXIT_CONFIG


@pytest.mark.parametrize(
    "pattern",
    ["**", "**/", "/**", "*", "a/**/b", "\\!x", "\\#x", "\\~", "[!a-z]x", "/setup.py", "/tmp/"],
)
def test_ordinary_patterns_are_valid(pattern: str) -> None:
    check_pattern(pattern)


def test_every_operation_rejects_an_invalid_pattern() -> None:
    for call in (
        lambda: matches("a", ["!a"]),
        lambda: overlap(["a"], ["!a"]),
        lambda: overlap(["a"], ["b"], forbid_b=[""]),
        lambda: check_changes(["a"], ["a"], ["#b"]),
        lambda: find_conflicts([objective("a", ["../a"])]),
    ):
        with pytest.raises(ScopeError):
            call()


# --- where pathspec differs from git ----------------------------------------------------


def test_a_trailing_globstar_folder_pattern_follows_git_where_pathspec_differs() -> None:
    files = ["foo/f", "foo/x/y"]
    assert git_ignored(["foo/**/"], files) == {"foo/x/y"}
    assert GitIgnoreSpec.from_lines(["foo/**/"]).match_file("foo/f")  # pathspec 1.1.
    assert [f for f in files if matches(f, ["foo/**/"])] == ["foo/x/y"]
    assert overlap(["foo/**/"], ["foo/f"]) == [("foo/**/", "foo/f", "foo/f/a")]


def test_trailing_spaces_are_stripped_as_git_strips_them() -> None:
    # "sp\\ " is an escaped backslash then a space: git strips the space, pathspec not.
    assert git_ignored(["sp\\\\ "], ["sp\\"]) == {"sp\\"}
    assert not GitIgnoreSpec.from_lines(["sp\\\\ "]).match_file("sp\\")
    assert matches("sp\\", ["sp\\\\ "])


def test_three_stars_are_rejected_because_git_and_pathspec_read_them_differently() -> None:
    assert git_ignored(["foo/***/z"], ["foo/x/y/z"]) == {"foo/x/y/z"}
    assert not GitIgnoreSpec.from_lines(["foo/***/z"]).match_file("foo/x/y/z")
    with pytest.raises(ScopeError, match=r"\*\*\*"):
        check_pattern("foo/***/z")


def test_a_double_star_inside_a_name_is_rejected_because_git_reads_it_two_ways() -> None:
    # wildmatch reads "a**" as "a*", but git first strips an anchored pattern's literal
    # prefix ("a"), and the "**/" left at the start is a globstar: "a**/*" matches "a".
    assert git_ignored(["a**/*"], ["a"]) == {"a"}
    assert git_ignored(["**.py"], ["x/a.py"]) == {"x/a.py"}  # Unanchored: just "*".
    assert not GitIgnoreSpec.from_lines(["a**/*"]).match_file("a")
    with pytest.raises(ScopeError, match=r"'\*\*' inside a name"):
        check_pattern("a**/*")


# --- overlap ----------------------------------------------------------------------------


# The acceptance examples of the scope validator's issue, verbatim.


def test_a_folder_pattern_conflicts_with_a_file_inside_it() -> None:
    assert overlap(["src/"], ["src/auth.py"]) == [("src/", "src/auth.py", "src/auth.py")]


def test_a_root_glob_does_not_conflict_with_the_root_tests_folder() -> None:
    assert overlap(["*.py"], ["tests/"]) == []
    assert find_conflicts([objective("a", ["*.py"]), objective("b", ["tests/"])]) == []


def test_a_globstar_pattern_overlaps_a_file_it_names() -> None:
    found = overlap(["src/**/test_*.py"], ["src/a/test_b.py"])
    assert found == [("src/**/test_*.py", "src/a/test_b.py", "src/a/test_b.py")]


def test_a_glob_at_any_depth_overlaps_a_folder_with_a_witness_inside_it() -> None:
    assert overlap(["**/*.py"], ["tests/"]) == [("**/*.py", "tests/", "tests/a.py")]


def test_a_root_glob_meets_a_folder_pattern_only_through_a_folder_named_like_a_file() -> None:
    # gitignore(5) matches "*.py" against folders too: git ignores everything in a root
    # folder "a.py/", so "*.py" and "**/tests/" share "a.py/tests/a".
    assert overlap(["*.py"], ["**/tests/"]) == [("*.py", "**/tests/", "a.py/tests/a")]
    assert git_ignored(["/*.py"], ["a.py/tests/a"]) == {"a.py/tests/a"}
    assert git_ignored(["**/tests/"], ["a.py/tests/a"]) == {"a.py/tests/a"}
    assert overlap(["*.py"], ["tests/*.py", "tests/**"]) == []


def test_sibling_folders_are_disjoint() -> None:
    assert overlap(["src/auth/", "docs/auth.md"], ["src/billing/", "docs/billing.md"]) == []


def test_a_forbid_pattern_removes_the_overlap_it_covers() -> None:
    assert overlap(["src/"], ["src/auth/"], forbid_a=["src/auth/"]) == []
    assert overlap(["src/auth/"], ["src/"], forbid_b=["src/auth/"]) == []
    assert overlap(["src/"], ["src/auth/"]) == [("src/", "src/auth/", "src/auth/a")]


def test_a_partial_forbid_leaves_a_witness_outside_it() -> None:
    found = overlap(["src/"], ["**/*.py"], forbid_a=["src/a.py", "src/a*"])
    assert found == [("src/", "**/*.py", "src/b.py")]


def test_character_classes_overlap_on_their_common_characters() -> None:
    assert overlap(["[ab].py"], ["[!a].py"]) == [("[ab].py", "[!a].py", "b.py")]
    assert overlap(["/[a-c]x"], ["/[d-f]x"]) == []
    assert overlap(["/[a-c]x"], ["/[c-f]x"]) == [("/[a-c]x", "/[c-f]x", "cx")]


def test_escaped_wildcards_are_literal() -> None:
    assert overlap(["/\\*.py"], ["/*.py"]) == [("/\\*.py", "/*.py", "*.py")]
    assert overlap(["/\\*.py"], ["/a.py"]) == []
    assert overlap(["/foo\\ "], ["/foo?"]) == [("/foo\\ ", "/foo?", "foo ")]


def test_witnesses_are_readable() -> None:
    assert overlap(["?"], ["*"]) == [("?", "*", "a")]
    assert overlap(["/[!a-z]"], ["/?"]) == [("/[!a-z]", "/?", "0")]
    assert overlap(["/[!a-z0-9_.-]"], ["/*"]) == [("/[!a-z0-9_.-]", "/*", "A")]
    # "tests/.py" is shorter, but a hidden file only when the patterns demand one.
    assert overlap(["**/*.py"], ["tests/"])[0][2] == "tests/a.py"
    assert overlap([".github/"], ["**/*.yml"])[0][2] == ".github/a.yml"


def test_a_witness_needs_a_character_outside_ascii_when_the_patterns_do() -> None:
    [(_, _, witness)] = overlap(["/[! -~]"], ["/?"])
    assert len(witness) == 1 and not witness.isascii() and witness.isprintable()
    assert overlap(["/é*"], ["/?"]) == [("/é*", "/?", "é")]


def test_overlap_lists_every_overlapping_pair_in_order() -> None:
    found = overlap(["/docs/", "src/a.py", "**/*.md"], ["/src/", "/README.md"])
    assert found == [
        ("src/a.py", "/src/", "src/a.py"),
        ("**/*.md", "/src/", "src/a.md"),
        ("**/*.md", "/README.md", "README.md"),
    ]


def test_a_pattern_is_anchored_at_the_root_unless_it_starts_with_a_globstar() -> None:
    # In a .gitignore "src/" is any folder named src; in a scope, the root one only.
    assert overlap(["src/"], ["docs/"]) == []
    assert overlap(["**/src/"], ["docs/"]) == [("**/src/", "docs/", "docs/src/a")]
    assert overlap(["src/a.py"], ["README.md"]) == []
    assert [anchored(p) for p in ["tests/", "*.py", "/setup.py", "**/*.py", "**"]] == [
        "/tests/",
        "/*.py",
        "/setup.py",
        "**/*.py",
        "/**",
    ]


# --- find_conflicts ---------------------------------------------------------------------


def test_find_conflicts_reports_each_overlapping_pair_of_a_wave_in_plan_order() -> None:
    plan = [
        objective("a", ["/src/"]),
        objective("b", ["/src/auth.py", "/docs/"]),
        objective("c", ["/docs/"]),
        objective("d", ["/src/"], wave=2),
    ]
    assert find_conflicts(plan) == [
        ScopeConflict(
            wave=1,
            objective_a="a",
            objective_b="b",
            pattern_a="/src/",
            pattern_b="/src/auth.py",
            witness="src/auth.py",
        ),
        ScopeConflict(
            wave=1,
            objective_a="b",
            objective_b="c",
            pattern_a="/docs/",
            pattern_b="/docs/",
            witness="docs/a",
        ),
    ]


def test_forbid_patterns_of_either_objective_resolve_a_conflict() -> None:
    plan = [
        objective("a", ["src/"], forbid=["src/auth/"]),
        objective("b", ["src/auth/"]),
    ]
    assert find_conflicts(plan) == []


def twenty_objective_plan() -> list[Objective]:
    """Twenty objectives of five patterns each, one of them unanchored (``**/``)."""
    modules = ["auth", "billing", "users", "api", "db", "cache", "ui", "cli", "docs", "jobs"]
    modules += ["mail", "search", "admin", "reports", "sync", "export", "io", "stats", "logs"]
    modules += ["queue"]
    return [
        objective(
            f"obj-{i}",
            [f"src/{m}/", f"tests/{m}/", f"tests/test_{m}*.py", f"docs/{m}.md", f"**/{m}_*.json"],
            forbid=[f"src/{m}/generated/"],
        )
        for i, m in enumerate(modules)
    ]


def test_a_plan_of_twenty_objectives_has_the_overlaps_of_its_unanchored_patterns() -> None:
    # Its speed is measured in make bench ("scope validation"), not asserted here.
    conflicts = find_conflicts(twenty_objective_plan())
    # Each "**/<m>_*.json" can put a file in every folder of another objective: 1710
    # real overlaps, each with a witness; the anchored patterns are pairwise disjoint.
    assert len(conflicts) == 1710
    assert all("**/" in c.pattern_a + c.pattern_b for c in conflicts)


# --- recolour ---------------------------------------------------------------------------


def waves(objectives: Sequence[Objective]) -> dict[str, int]:
    return {o.id: o.wave for o in objectives}


def test_recolour_moves_the_later_of_two_conflicting_objectives_to_the_next_wave() -> None:
    plan = [objective("a", ["/src/"]), objective("b", ["/src/a.py"]), objective("c", ["/docs/"])]
    assert waves(recolour(plan)) == {"a": 1, "b": 2, "c": 1}


def test_recolour_keeps_a_plan_without_conflicts_as_it_is() -> None:
    plan = [objective("a", ["src/"]), objective("b", ["src/a.py"], wave=2, depends_on=["a"])]
    assert recolour(plan) == plan  # "src/" and "src/a.py" overlap, but not in one wave.


def test_recolour_puts_an_objective_after_what_it_depends_on() -> None:
    plan = [objective("a", ["/src/"]), objective("b", ["/docs/"], depends_on=["a"])]
    assert waves(recolour(plan)) == {"a": 1, "b": 2}


def test_recolour_moves_to_the_earliest_later_wave_that_works() -> None:
    plan = [
        objective("a", ["/src/"]),
        objective("b", ["/docs/"], wave=2),
        objective("c", ["/src/a.py", "/docs/a.md"]),  # Conflicts with a (1) and b (2).
        objective("d", ["/src/b.py"], wave=3),  # Conflicts with a only: stays.
    ]
    assert waves(recolour(plan)) == {"a": 1, "b": 2, "c": 3, "d": 3}


def test_recolour_renumbers_waves_without_holes() -> None:
    plan = [objective("a", ["/src/"], wave=2), objective("b", ["/docs/"], wave=5)]
    assert waves(recolour(plan)) == {"a": 1, "b": 2}


def test_recolour_returns_the_objectives_in_plan_order_with_only_the_wave_changed() -> None:
    plan = [objective("b", ["src/x"], forbid=["src/x/y"]), objective("a", ["src/"])]
    result = recolour(plan)
    assert [o.id for o in result] == ["b", "a"]
    assert result[1] == Objective(id="a", title="a", wave=2, scope_touch=["src/"])


def test_recolour_names_the_objectives_of_a_dependency_cycle() -> None:
    plan = [
        objective("a", ["x"], depends_on=["c"]),
        objective("b", ["y"], depends_on=["a"]),
        objective("c", ["z"], depends_on=["b"]),
        objective("d", ["w"]),
    ]
    with pytest.raises(ScopeError, match="cycle: a -> b -> c -> a"):
        recolour(plan)
    with pytest.raises(ScopeError, match="cycle: e -> e"):
        recolour([objective("e", ["x"], depends_on=["e"])])


def test_recolour_names_an_unknown_dependency() -> None:
    with pytest.raises(ScopeError, match="'a' depends on unknown objective\\(s\\) 'zz'"):
        recolour([objective("a", ["x"], depends_on=["zz"])])


def test_recolour_rejects_a_duplicate_objective_id() -> None:
    with pytest.raises(ScopeError, match="'a' appears twice"):
        recolour([objective("a", ["x"]), objective("a", ["y"])])


# --- check_changes ----------------------------------------------------------------------


def test_check_changes_reports_files_outside_touch_and_inside_forbid() -> None:
    touch, forbid = ["src/auth/", "tests/test_auth*.py"], ["src/auth/vendor/"]
    changed = [
        "src/auth/jwt.py",
        "src/auth/vendor/lib.py",
        "tests/test_auth_jwt.py",
        "README.md",
        "README.md",
        "docs/a.md",
    ]
    assert check_changes(changed, touch, forbid) == (
        ["README.md", "docs/a.md"],
        ["src/auth/vendor/lib.py"],
    )


def test_check_changes_of_an_empty_change_is_clean() -> None:
    assert check_changes([], ["src/"], []) == ([], [])


# --- properties -------------------------------------------------------------------------


@given(tree=trees, pattern=patterns)
@settings(max_examples=300, deadline=None)
def test_matches_and_the_automaton_agree_with_pathspec(tree: list[str], pattern: str) -> None:
    for path in tree:
        expected = said(pattern, path)
        assert matches(path, [pattern]) is expected
        assert scope._compile(pattern).accepts(path) is expected


@given(tree=trees, pattern=patterns)
@settings(max_examples=40, deadline=None)
def test_matches_agrees_with_git(tree: list[str], pattern: str) -> None:
    files = folders_apart(tree)
    expected = git_ignored([as_gitignore(pattern)], files)
    assert {f for f in files if matches(f, [pattern])} == expected


@given(pattern=patterns)
@settings(max_examples=100, deadline=None)
def test_a_pattern_and_the_same_pattern_with_a_leading_slash_are_equivalent(
    pattern: str,
) -> None:
    rooted = "/" + pattern.removeprefix("/")
    # Exact: no path is matched by one and not by the other.
    assert overlap([pattern], [pattern], forbid_b=[rooted]) == []
    assert overlap([rooted], [rooted], forbid_b=[pattern]) == []


@given(tree=trees, a=patterns, b=patterns, forbid=st.lists(patterns, max_size=2))
@settings(max_examples=300, deadline=None)
def test_overlap_finds_every_shared_path_and_only_true_witnesses(
    tree: list[str], a: str, b: str, forbid: list[str]
) -> None:
    found = overlap([a], [b], forbid_b=forbid)
    shared = [p for p in tree if said(a, p) and said(b, p) and not any(said(f, p) for f in forbid)]
    if shared:
        assert found, f"{a!r} and {b!r} share {shared[0]!r}"
    for _, _, witness in found:
        assert said(a, witness) and said(b, witness)
        assert not any(said(f, witness) for f in forbid)
        assert witness.isprintable() and "//" not in witness
        assert overlap([b], [a], forbid_a=forbid) == [(b, a, witness)]


@given(a=patterns, b=patterns, forbid=st.lists(patterns, max_size=1))
@settings(max_examples=25, deadline=None)
def test_overlap_is_empty_exactly_when_greenery_finds_no_common_path(
    a: str, b: str, forbid: list[str]
) -> None:
    common = scope._language(a) & scope._language(b)
    for f in forbid:
        common = common - scope._language(f)
    assert (overlap([a], [b], forbid_a=forbid) == []) is common.empty()


@given(
    changed=st.lists(paths, max_size=8),
    touch=st.lists(patterns, max_size=3),
    forbid=st.lists(patterns, max_size=2),
)
@settings(max_examples=200, deadline=None)
def test_check_changes_agrees_with_brute_force(
    changed: list[str], touch: list[str], forbid: list[str]
) -> None:
    outside = sorted({p for p in changed if not any(said(t, p) for t in touch)})
    inside = sorted({p for p in changed if any(said(f, p) for f in forbid)})
    assert check_changes(changed, touch, forbid) == (outside, inside)


@st.composite
def plans(draw: st.DrawFn) -> list[Objective]:
    count = draw(st.integers(2, 6))
    return [
        objective(
            f"o{i}",
            draw(st.lists(patterns, min_size=1, max_size=2)),
            wave=draw(st.integers(1, 3)),
            forbid=draw(st.lists(patterns, max_size=1)),
            depends_on=draw(st.lists(st.sampled_from([f"o{j}" for j in range(i)]), max_size=2))
            if i
            else [],
        )
        for i in range(count)
    ]


@given(plan=plans())
@settings(max_examples=100, deadline=None)
def test_recolour_leaves_no_conflict_and_keeps_dependency_order(plan: list[Objective]) -> None:
    result = recolour(plan)
    assert find_conflicts(result) == []
    wave = waves(result)
    for o in result:
        assert all(wave[d] < o.wave for d in o.depends_on)
    assert sorted(set(wave.values())) == list(range(1, max(wave.values()) + 1))
    assert [(o.id, o.scope_touch) for o in result] == [(o.id, o.scope_touch) for o in plan]
    assert recolour(result) == result
