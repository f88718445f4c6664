"""bonding.core.mptcpblock: which paths cannot carry MPTCP, from tables of what was seen."""

from __future__ import annotations

import pytest

from bonding.core.mptcpblock import Check, Conn, Kind, Params, PathBlock, on_check, on_subflows

P = Params(strip_rounds=2, clear_rounds=2, join_s=20.0, retest_s=600.0, max_joins=8)
A, X = "192.0.2.1", "198.51.100.1"  # another path's address, the judged path's


def checks(seq: str, others: bool = True) -> PathBlock:
    st = PathBlock()
    letters = {"m": Check.MPTCP, "f": Check.FALLBACK, "x": Check.FAILED}
    for i, c in enumerate(seq):
        st = on_check(st, letters[c], others, float(i), P)
    return st


@pytest.mark.parametrize(("seq", "others", "kind"), [
    ("ff", True, Kind.STRIPPED),  # two fallbacks in a row while others keep MPTCP
    ("f", True, Kind.NONE),  # one is not enough
    ("fmf", True, Kind.NONE),  # not in a row
    ("fxf", True, Kind.STRIPPED),  # a failed connect says nothing: the row goes on
    ("fff", False, Kind.NONE),  # every path falls back: the server does not speak MPTCP
    ("ffm", True, Kind.STRIPPED),  # one MPTCP answer does not unblock ...
    ("ffmm", True, Kind.NONE),  # ... two in a row do
    ("ffmxm", True, Kind.NONE),
    ("mmmm", True, Kind.NONE),
    ("xxxx", True, Kind.NONE),
])
def test_stripped_options(seq: str, others: bool, kind: Kind) -> None:
    assert checks(seq, others).kind is kind


def test_stripped_reason_says_what_and_what_to_do() -> None:
    st = checks("ff")
    text = st.reason("wan2")
    assert text.startswith("mptcp-blocked: the ISP strips the MPTCP options")
    assert "fell back to TCP" in text and "Ask the ISP" in text
    assert st.since == 1.0
    assert PathBlock().reason("wan2") == ""


def run(dumps: list[tuple[float, dict[int, Conn]]], carrying_since: float | None = 0.0,
        st: PathBlock | None = None) -> PathBlock:
    st = st or PathBlock()
    for now, conns in dumps:
        st = on_subflows(st, X, carrying_since, conns, now, P)
    return st


LACKS = Conn(frozenset({A}))  # a connection on A only
# started on X, joined over A: joins elsewhere work (and it has X: it is no evidence)
JOINED_ELSEWHERE = Conn(frozenset({X, A}), frozenset({A}), 2)
HAS_X = Conn(frozenset({A, X}), frozenset({X}), 2)
FIRST_ON_X = Conn(frozenset({X}))


@pytest.mark.parametrize(("dumps", "carrying_since", "kind"), [
    # a connection lacks X for 20 s while a join over another path works: blocked
    ([(0, {1: LACKS, 2: JOINED_ELSEWHERE}), (20, {1: LACKS, 2: JOINED_ELSEWHERE})], 0.0,
     Kind.JOIN),
    # 18 s are not enough
    ([(0, {1: LACKS, 2: JOINED_ELSEWHERE}), (18, {1: LACKS, 2: JOINED_ELSEWHERE})], 0.0,
     Kind.NONE),
    # no join works anywhere: it may be the server's doing, not this ISP's
    ([(0, {1: LACKS}), (30, {1: LACKS})], 0.0, Kind.NONE),
    # joins over X work
    ([(0, {1: LACKS, 2: HAS_X}), (30, {1: LACKS, 2: HAS_X})], 0.0, Kind.NONE),
    # X got its endpoint only at 15: the time counts from then
    ([(0, {1: LACKS, 2: JOINED_ELSEWHERE}), (30, {1: LACKS, 2: JOINED_ELSEWHERE})], 15.0,
     Kind.NONE),
    # X has no endpoint: nothing is judged
    ([(0, {1: LACKS, 2: JOINED_ELSEWHERE}), (30, {1: LACKS, 2: JOINED_ELSEWHERE})], None,
     Kind.NONE),
    # a connection that started on X has it: only connection 1 counts, and it is gone at 20
    ([(0, {1: LACKS, 2: JOINED_ELSEWHERE}), (10, {3: FIRST_ON_X, 2: JOINED_ELSEWHERE}),
      (20, {3: FIRST_ON_X, 2: JOINED_ELSEWHERE})], 0.0, Kind.NONE),
    # a connection at the subflow limit cannot join: it does not count
    ([(0, {1: Conn(frozenset({A}), frozenset({A}), 9), 2: JOINED_ELSEWHERE}),
      (30, {1: Conn(frozenset({A}), frozenset({A}), 9), 2: JOINED_ELSEWHERE})], 0.0,
     Kind.NONE),
    # short connections, each seen once, never add up
    ([(t, {t: LACKS, 100: JOINED_ELSEWHERE}) for t in range(0, 40, 2)], 0.0, Kind.NONE),
])
def test_join_dropped(dumps: list[tuple[float, dict[int, Conn]]], carrying_since: float | None,
                      kind: Kind) -> None:
    assert run(dumps, carrying_since).kind is kind


def test_join_block_is_retested_after_retest_s() -> None:
    both = {1: LACKS, 2: JOINED_ELSEWHERE}
    st = run([(0, both), (20, both)])
    assert st.kind is Kind.JOIN and st.since == 20
    assert "no subflow over it" in st.reason("wan2") and "MP_JOIN" in st.reason("wan2")
    st = run([(300, both)], st=st)
    assert st.kind is Kind.JOIN  # held
    st = run([(620, both)], st=st)
    assert st.kind is Kind.NONE and st.waiting == ()  # lifted: judged again from here
    assert run([(640, both), (660, both)], carrying_since=620,
               st=st).kind is Kind.JOIN  # still dropped
    assert run([(640, {1: HAS_X}), (660, {1: HAS_X})], carrying_since=620,
               st=st).kind is Kind.NONE  # works now


def test_a_stripped_path_is_not_judged_for_joins_and_keeps_its_block() -> None:
    st = checks("ff")
    both = {1: LACKS, 2: JOINED_ELSEWHERE}
    assert run([(0, both), (30, both)], st=st).kind is Kind.STRIPPED
