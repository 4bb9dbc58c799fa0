"""The task type of a request: the kind of work it asks for, by ordered keyword rules.

:func:`task_type_of` documents the rules; :func:`is_task_word` tells the single words
of those rules, which never name a module.
"""

from __future__ import annotations

import re

from ap_actors.events import TaskType

# (task type, strong word patterns, weak word patterns); each pattern is a regular
# expression that must match whole words, several words for a phrase.
_TASK_RULES: list[tuple[TaskType, list[str], list[str]]] = [
    (
        "security",
        [r"vulnerab\w*", r"cves?", "xss", "csrf", "ssrf", r"injections?", r"saniti[sz]\w*",
         r"exploit\w*", r"insecure\w*", r"harden\w*"],
        [r"secur\w*"],
    ),
    (
        "bug",
        [r"fix(es|ed|ing)?", r"bugs?", r"buggy", r"crash\w*", "broken", r"regressions?",
         "traceback", r"hotfix\w*"],
        [r"errors?", r"fail\w*", r"exceptions?", "wrong"],
    ),
    (
        "perf",
        ["perf", "performance", "faster", r"slow\w*", r"optimi[sz]\w*", "latency",
         "speed up", "speedup", "throughput", r"bottlenecks?"],
        ["speed", "memory"],
    ),
    (
        "test",
        [r"tests?", "testing", r"unittests?", "pytest", "coverage"],
        [],
    ),
    (
        "docs",
        ["docs", "documentation", r"docstrings?", r"readmes?", "changelog"],
        ["doc", r"document\w*", r"comments?"],
    ),
    ("reset", [r"rewrit\w*", "from scratch", "start over", "start afresh"], [r"reset\w*"]),
    (
        "refactor",
        [r"refactor\w*", r"moderni[sz]\w*", "clean up", "cleanup", r"reorgani[sz]\w*",
         r"restructur\w*", "sort imports", "type hints", "type annotations", "upgrade syntax",
         r"lint\w*", r"dedup\w*", r"simplif\w*"],
        [r"renam\w*", r"format\w*", r"migrat\w*", "typing", "tidy"],
    ),
]  # fmt: skip
_FEATURE_VERBS = {
    "add", "implement", "create", "build", "introduce", "support", "enable", "allow",
    "provide", "integrate", "expose", "extend", "new",
}  # fmt: skip


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _compile(pattern: str) -> list[re.Pattern[str]]:
    return [re.compile(part) for part in pattern.split(" ")]


def _has(words: list[str], phrase: list[re.Pattern[str]]) -> bool:
    n = len(phrase)
    return any(
        all(p.fullmatch(words[i + k]) for k, p in enumerate(phrase))
        for i in range(len(words) - n + 1)
    )


_COMPILED_RULES = [
    (kind, [_compile(p) for p in strong], [_compile(p) for p in weak])
    for kind, strong, weak in _TASK_RULES
]


def task_type_of(request: str) -> TaskType:
    """Return the kind of work a request asks for, by ordered keyword rules.

    The request is lower-cased and split into words (runs of ``[a-z0-9]``, so
    ``CVE-2024-1`` gives ``cve 2024 1`` and ``clean-up`` gives ``clean up``). The rules
    are tried in this order and the first that matches decides. A *strong* word matches
    anywhere; a *weak* word matches only when the request does not open with a feature
    verb (add, implement, create, build, introduce, support, enable, allow, provide,
    integrate, expose, extend, new), because a request that mainly adds something is a
    feature even if it mentions, say, secure token handling or error handling.

    ========  ==========================================================  =================
    type      strong words (regular expressions over whole words)         weak words
    ========  ==========================================================  =================
    security  vulnerab*, cve(s), xss, csrf, ssrf, injection(s),           secur*
              saniti[sz]*, exploit*, insecure*, harden*
    bug       fix/fixes/fixed/fixing, bug(s), buggy, crash*, broken,      error(s), fail*,
              regression(s), traceback, hotfix*                           exception(s),
                                                                          wrong
    perf      perf, performance, faster, slow*, optimi[sz]*, latency,     speed, memory
              "speed up", speedup, throughput, bottleneck(s)
    test      test(s), testing, unittest(s), pytest, coverage             --
    docs      docs, documentation, docstring(s), readme(s), changelog     doc, document*,
                                                                          comment(s)
    reset     rewrit*, "from scratch", "start over", "start afresh"       reset*
    refactor  refactor*, moderni[sz]*, "clean up", cleanup,               renam*, format*,
              reorgani[sz]*, restructur*, "sort imports", "type hints",   migrat*, typing,
              "type annotations", "upgrade syntax", lint*, dedup*,        tidy
              simplif*
    feature   everything else (add, implement, support, create ...)       --
    ========  ==========================================================  =================

    Examples: "Add JWT authentication with secure token handling" is a feature (weak
    ``secure`` after the feature verb ``add``); "Fix the SQL injection in login" is
    security (security is tried before bug); "Modernize syntax and sort imports across
    the codebase" is a refactor.
    """
    words = _words(request)
    feature_led = bool(words) and words[0] in _FEATURE_VERBS
    for kind, strong, weak in _COMPILED_RULES:
        if any(_has(words, p) for p in strong):
            return kind
        if not feature_led and any(_has(words, p) for p in weak):
            return kind
    return "feature"


def is_task_word(word: str) -> bool:
    """Whether ``word`` alone is a strong or weak word of a task-type rule."""
    return any(
        len(p) == 1 and p[0].fullmatch(word)
        for _, strong, weak in _COMPILED_RULES
        for p in (*strong, *weak)
    )
