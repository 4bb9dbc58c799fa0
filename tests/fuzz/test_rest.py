"""Every REST endpoint of the dashboard fuzzed against a real broadcaster and journal.

Each case is one HTTP request: a method, a path built from the API's routes with any
session id or action (path traversal, NUL, long, unicode), any query (``since``,
``limit`` and others, any value), and any body (JSON of the right shape with wrong
values, JSON of any shape, broken JSON, invalid UTF-8, raw bytes). The answer is never
a 5xx; an error from the API is ``{"error": "one line"}`` with 400, 404 or 409. The
broadcaster still answers ``/api/health`` afterwards, and the records in the log
before the fuzzing are unchanged (submissions and decisions may append new ones).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.conftest import FUZZ, Dashboard, assert_log_kept, log_records, run_cases, tried
from tests.fuzz.strategies import BAD_UTF8, json_values, nasty_text

ROUTES = [
    "/api/health",
    "/api/sessions",
    "/api/sessions/{id}",
    "/api/sessions/{id}/events",
    "/api/sessions/{id}/{action}",
    "/api/workers",
    "/metrics",
    "/",
    "/static/{id}",
]
API_ERRORS = {400, 404, 409}


# Under aiohttp's 8,190-byte request line: longer ones are refused by its HTTP parser
# before the application sees them.
url_text = nasty_text.filter(lambda t: len(t) < 1_000)


def requests(d: Dashboard) -> st.SearchStrategy[tuple[str, str, bytes]]:
    ids = st.sampled_from([d.session_id, d.session_id.upper(), "s"]) | url_text
    actions = st.sampled_from(["approve", "reject", "cancel", "APPROVE", ""]) | url_text
    submit = st.fixed_dictionaries(
        {
            "request": st.sampled_from(["do it"]) | nasty_text,
            "repo": st.sampled_from([str(d.repo), str(d.repo / ".git")]) | nasty_text,
        },
        optional={
            "base": st.sampled_from(["HEAD", "HEAD~5", "--upload-pack=x"]) | nasty_text,
            "plan": st.sampled_from(["/etc/passwd", "plan.toml", str(d.repo / "README.md")])
            | nasty_text,
            "approve": json_values,
            "workers": st.lists(st.sampled_from(["w1", "w2"]) | nasty_text, max_size=2)
            | json_values,
            "resolve_conflicts": st.booleans() | json_values,
            "extra": json_values,
        },
    )
    action = st.fixed_dictionaries(
        {}, optional={"reason": nasty_text | json_values, "by": nasty_text | json_values}
    )
    bodies = st.one_of(
        submit.map(lambda b: json.dumps(b, allow_nan=True).encode()),
        action.map(lambda b: json.dumps(b, allow_nan=True).encode()),
        json_values.map(lambda b: json.dumps(b, allow_nan=True).encode()),
        st.sampled_from([b"", b"{", b'{"request": "x"', b"null", b"[]"]),
        st.tuples(submit, st.sampled_from(BAD_UTF8)).map(
            lambda t: json.dumps(t[0]).encode()[:-1] + b', "x": "' + t[1] + b'"}'
        ),
        st.binary(max_size=64),
    )
    query_values = (
        st.sampled_from(
            ["0", "-1", "1", "10000", "10001", "18446744073709551616", "1e3", "0x10", " 5", "٣"]
        )
        | url_text
    )
    queries = st.dictionaries(
        st.sampled_from(["since", "limit", "session", "token"]) | url_text,
        query_values,
        max_size=3,
    )

    @st.composite
    def request(draw: st.DrawFn) -> tuple[str, str, bytes]:
        method = draw(st.sampled_from(["GET", "POST", "POST", "PUT", "DELETE", "PATCH", "HEAD"]))
        route = draw(st.sampled_from(ROUTES) | url_text.map(lambda t: "/api/" + quote(t)))
        path = route.replace("{id}", quote(draw(ids), safe="")).replace(
            "{action}", quote(draw(actions), safe="")
        )
        query = draw(queries)
        target = path + ("?" + urlencode(query) if query else "")
        return method, target, draw(bodies)

    return request()


def check(status: int, body: bytes, method: str, target: str) -> None:
    assert status < 500, (status, body[:300])
    path = target.split("?", 1)[0]
    if status in API_ERRORS and path.startswith("/api/") and body[:1] == b"{":
        err: Any = json.loads(body)
        assert set(err) == {"error"} and isinstance(err["error"], str), err
        assert err["error"].strip() and "\n" not in err["error"], err
    # Only the API's own checks give these (a HEAD answer has no body, by HTTP).
    if status in (400, 409) and method != "HEAD":
        assert body[:1] == b"{", (status, body[:300])


def test_any_request_to_any_endpoint_gets_an_answer_below_500_and_the_log_keeps_its_records(
    dashboard: Dashboard,
) -> None:
    before = log_records(dashboard.journal.log)

    async def send(method: str, target: str, body: bytes) -> tuple[int, bytes]:
        url = dashboard.base.rstrip("/") + target
        from yarl import URL

        async with dashboard.http.request(
            method, URL(url, encoded=True), data=body, headers={"Content-Type": "application/json"}
        ) as r:
            return r.status, await r.read()

    @FUZZ
    @given(requests(dashboard))
    @example(("GET", "/static/" + "x" * 300, b""))  # ENAMETOOLONG escaped aiohttp's stat
    @example(("HEAD", "/api/sessions/x/events?since=-1", b"{}"))  # a 400 with no body
    @example(("POST", "/api/sessions", b'{"\\n":1}'))  # msgspec quoted the field raw
    # Found at 100,000 cases: a repo name too long for the filesystem (ENAMETOOLONG).
    @example(("POST", "/api/sessions", b'{"request": "do it", "repo": "%s"}' % (b"x" * 300)))
    def property(case: tuple[str, str, bytes]) -> None:
        tried("rest")
        method, target, body = case
        status, answer = dashboard.portal.run(send(method, target, body))
        check(status, answer, method, target)

    run_cases(property)
    dashboard.alive()
    assert_log_kept(dashboard.journal.log, before)
