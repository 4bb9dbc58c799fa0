"""The cheapest witness: the shortest readable path that some patterns share.

Whether gitignore(5) patterns can ever match a common path (one that may not exist
yet) is decided exactly: a cheapest-first search over the product of their automata,
the forbid automata and the automaton of valid paths (all from
:mod:`ap_actors.scope.automata`) finds the shortest readable witness or proves that
there is none.
"""

from __future__ import annotations

import heapq
from functools import lru_cache

from ap_actors.scope.automata import _U_FINAL, _U_NEXT, _alphabet, _compile

_HIDDEN_COST = 3  # A "." starting a segment makes a hidden file: avoid it when possible.


def _witness(touch: tuple[str, ...], forbid: tuple[str, ...]) -> str | None:
    """Return the cheapest valid path every ``touch`` and no ``forbid`` pattern matches.

    A* over the product automaton (heuristic: the most characters some touch pattern
    still needs); a path costs 1 per character of ``_CHEAP``, more for others and for
    a "." that starts a segment; ties go to characters earlier in ``_PREFERRED``. Of
    the characters that no automaton tells apart in a state only the best is tried.
    Returns None when there is no such path: the search then has exhausted the product.
    """
    positive = [_compile(p) for p in touch]
    longest = max((a.prefix for a in positive), key=len)
    if any(not longest.startswith(a.prefix) for a in positive):
        return None  # Anchored literal prefixes that diverge: disjoint, no search.
    # Every witness starts with `longest`; a forbid pattern whose prefix diverges from it
    # can match none of them.
    negative = [
        a
        for a in map(_compile, forbid)
        if longest.startswith(a.prefix) or a.prefix.startswith(longest)
    ]
    automata = positive + negative
    alphabet = _alphabet(frozenset().union(*(a.wide_cuts for a in automata)))
    chars, costs, size = alphabet.chars, alphabet.costs, len(alphabet.chars)
    split = len(positive) + 1
    masks = [a.masks if a.ascii_only else None for a in automata]
    touching = [(a.rows, a.step, a.distance, a.final) for a in positive]
    forbidding = [(a.rows, a.step, a.universal, a.final) for a in negative]
    # A state is (universe state, *automaton states). Paths are kept as strings of
    # chr(alphabet index) so that comparing them compares readability.
    start = (0, *(a.start for a in automata))
    heap: list[tuple[int, str, int, tuple[int, ...]]] = [(0, "", 0, start)]
    settled = set()
    while heap:
        _, path, cost, state = heapq.heappop(heap)
        if state in settled:
            continue
        settled.add(state)
        u = state[0]
        if (
            u == _U_FINAL
            and all([final[s] for (*_, final), s in zip(touching, state[1:], strict=False)])
            and not any(
                [final[s] for (*_, final), s in zip(forbidding, state[split:], strict=True)]
            )
        ):
            return "".join(chars[ord(c)] for c in path)
        mask = alphabet.special
        for a, m, s in zip(automata, masks, state[1:], strict=True):
            mask |= a.explicit(s, alphabet) if m is None else m[s]
        mask |= ~mask & (mask + 1)  # The best character that no automaton tells apart.
        u_next = _U_NEXT[u]
        while mask:
            low = mask & -mask
            mask ^= low
            i = low.bit_length() - 1
            if i >= size:
                break
            char = chars[i]
            u2 = u_next.get(char, _U_FINAL)
            if u2 < 0:
                continue
            nxt, h = [u2], 0
            for (rows, step, distance, _), s in zip(touching, state[1:], strict=False):
                t = rows[s].get(char)
                if t is None:
                    t = step(s, char)
                if not t:
                    break  # This touch pattern can no longer match.
                h = max(h, distance[t])
                nxt.append(t)
            else:
                for (rows, step, universal, _), s in zip(forbidding, state[split:], strict=True):
                    t = rows[s].get(char)
                    if t is None:
                        t = step(s, char)
                    if universal[t]:
                        break  # A forbid pattern matched a folder: all below is forbidden.
                    nxt.append(t)
                else:
                    key = tuple(nxt)
                    if key not in settled:
                        g = cost + costs[i] + (_HIDDEN_COST if u == 0 and char == "." else 0)
                        heapq.heappush(heap, (g + h, path + chr(i), g, key))
    return None


@lru_cache(maxsize=65536)
def _pair_witness(a: str, b: str, forbid: tuple[str, ...]) -> str | None:
    return _witness((a, b), forbid)
