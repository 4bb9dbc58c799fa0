"""The dashboard's WebSocket fuzzed against a real broadcaster and journal.

Each case opens ``/ws`` with any query (``since``, ``session``, others; any value) and,
once connected, sends any client messages: text (also invalid UTF-8 and oversized),
binary, pings, pongs, continuation frames out of place, a close with any code. A bad
query is refused with 400 and a JSON ``{"error"}``; a connection gets ``connected`` and
``caught_up``; client messages are ignored or end the connection with a clean close
(never 1011, an internal error). The broadcaster keeps serving, and the log is unchanged.
"""

from __future__ import annotations

from urllib.parse import urlencode

import aiohttp
from aiohttp import WSMsgType
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.conftest import FUZZ, Dashboard, assert_log_kept, log_records, run_cases, tried
from tests.fuzz.strategies import BAD_UTF8, nasty_text
from tests.support.dashboard import read_until

url_text = nasty_text.filter(lambda t: len(t) < 1_000)
queries = st.dictionaries(
    st.sampled_from(["since", "session", "token"]) | url_text,
    st.sampled_from(["0", "-1", "5", "18446744073709551615", "18446744073709551616", "x" * 201])
    | url_text,
    max_size=3,
)
OPCODES = [WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.PING, WSMsgType.PONG, WSMsgType.CONTINUATION]
frames = st.one_of(
    st.tuples(st.sampled_from(OPCODES), st.binary(max_size=64)),
    st.tuples(st.just(WSMsgType.TEXT), st.sampled_from(BAD_UTF8)),
    st.tuples(st.just(WSMsgType.TEXT), st.sampled_from([b'{"type": "resync"}', b"null", b"[]"])),
    st.tuples(st.just(WSMsgType.BINARY), st.just(b"x" * (5 * 1024 * 1024))),
)
closes = st.none() | st.integers(0, 5_000)


def test_any_client_of_the_websocket_gets_a_clean_answer_and_the_server_keeps_serving(
    dashboard: Dashboard,
) -> None:
    before = log_records(dashboard.journal.log)

    async def session(
        query: dict[str, str], sent: list[tuple[int, bytes]], close: int | None
    ) -> None:
        url = dashboard.base + "ws" + ("?" + urlencode(query) if query else "")
        try:
            ws = await dashboard.http.ws_connect(url, autoping=True)
        except aiohttp.WSServerHandshakeError as e:
            assert e.status == 400, e
            return
        try:
            got = await read_until(ws, lambda m: m.get("type") == "caught_up")
            assert got[0]["type"] == "connected"
            for opcode, data in sent:
                if ws.closed:
                    break
                try:
                    await ws.send_frame(data, opcode)
                except ConnectionError:
                    break  # the server closed it mid-send (e.g. 1009, message too big)
            if close is not None and not ws.closed:
                await ws.close(code=close)
            else:
                await ws.close()
            assert ws.close_code != 1011, ws.close_code
        finally:
            await ws.close()

    @FUZZ
    @given(queries, st.lists(frames, max_size=4), closes)
    def property(query: dict[str, str], sent: list[tuple[int, bytes]], close: int | None) -> None:
        tried("websocket")
        dashboard.portal.run(session(query, sent, close))

    run_cases(property)
    dashboard.alive()
    assert_log_kept(dashboard.journal.log, before)
