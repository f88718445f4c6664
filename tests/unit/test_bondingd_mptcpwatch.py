"""bondingd.mptcpwatch: subflow dumps grouped by connection, each path's MPTCP block kept with
its events and hooks, and the MPTCP check's reading of a socket (bonding.mptcpprobe)."""

from __future__ import annotations

import errno
import struct

import pytest

from bonding.bondingd.mptcpwatch import MptcpWatch, Watched, connections, event, hook_env
from bonding.core import mptcpblock as mb
from bonding.mptcpprobe import fell_back
from bonding.netlink.diag import Subflow

A, B, X = "100.64.1.2", "100.64.2.2", "100.64.3.2"


def test_subflows_are_grouped_by_connection() -> None:
    got = connections([Subflow(A, 7), Subflow(B, 7, True), Subflow(X, 9), Subflow(B)])
    assert got == {7: mb.Conn(frozenset({A, B}), frozenset({B}), 2),
                   9: mb.Conn(frozenset({X}), frozenset(), 1)}


class Recorder:
    def __init__(self) -> None:
        self.changes: list[tuple[str, mb.Kind, mb.Kind]] = []
        self.rechecks: list[tuple[str, float]] = []

    def watch(self) -> MptcpWatch:
        return MptcpWatch(mb.Params(join_s=20.0), self.change, self.recheck)

    def change(self, name: str, before: mb.PathBlock, after: mb.PathBlock) -> None:
        self.changes.append((name, before.kind, after.kind))

    def recheck(self, name: str, delay: float) -> None:
        self.rechecks.append((name, delay))


def test_a_fallback_is_rechecked_soon_and_a_second_blocks_with_one_change() -> None:
    r = Recorder()
    w = r.watch()
    w.on_check("wan1", mb.Check.MPTCP, 0.0)
    w.on_check("wan2", mb.Check.FALLBACK, 0.0)
    assert r.rechecks == [("wan2", 3.0)] and r.changes == []
    w.on_check("wan2", mb.Check.FALLBACK, 3.0)
    assert r.changes == [("wan2", mb.Kind.NONE, mb.Kind.STRIPPED)]
    assert w.blocked() == {"wan2"}
    st = w.status("wan2", 10.0)
    assert st["blocked"] and st["kind"] == "options-stripped" and st["blocked_for_s"] == 7.0
    assert st["reason"].startswith("mptcp-blocked: ")
    ev = event("wan2", w.get("wan2"))
    assert ev == {"name": "wan2", "blocked": True, "kind": "options-stripped",
                  "reason": st["reason"]}
    env = hook_env("wan2", w.get("wan2"), "wan2", "eth2")
    assert env["ACTION"] == "mptcp-blocked" and env["KIND"] == "options-stripped"
    w.on_check("wan2", mb.Check.MPTCP, 60.0)
    w.on_check("wan2", mb.Check.MPTCP, 120.0)
    assert r.changes[-1] == ("wan2", mb.Kind.STRIPPED, mb.Kind.NONE) and w.blocked() == set()
    assert hook_env("wan2", w.get("wan2"), "wan2", "eth2")["ACTION"] == "mptcp-ok"


def test_dropped_joins_are_seen_in_the_dumps() -> None:
    r = Recorder()
    w = r.watch()
    paths = [Watched("wan1", A, 0.0), Watched("wan2", B, 0.0), Watched("wan3", X, 0.0)]
    # connection 1 started on wan1 and joined over wan3 only; connection 2 started on wan2
    dump = [Subflow(A, 1), Subflow(X, 1, True), Subflow(B, 2), Subflow(A, 2, True),
            Subflow(X, 2, True)]
    for t in (0.0, 10.0, 20.0):
        w.on_dump(paths, dump, t)
    assert r.changes == [("wan2", mb.Kind.NONE, mb.Kind.JOIN)]
    w.on_dump(paths, None, 30.0)  # unknown: nothing changes
    assert w.blocked() == {"wan2"}


class FakeSock:
    def __init__(self, answer: bytes | OSError) -> None:
        self.answer = answer

    def getsockopt(self, level: int, opt: int, size: int) -> bytes:
        assert (level, opt) == (284, 1)
        if isinstance(self.answer, OSError):
            raise self.answer
        return self.answer


@pytest.mark.parametrize(("answer", "fallback"), [
    (struct.pack("=6Bxx I", 1, 0, 0, 8, 0, 0, 2) + bytes(40), False),  # key received
    (struct.pack("=6Bxx I", 1, 0, 0, 8, 0, 0, 1) + bytes(40), True),  # FLAG_FALLBACK
    (OSError(errno.EOPNOTSUPP, "Operation not supported"), True),  # 6.18 on a fallback
])
def test_a_fallback_is_read_from_mptcp_info(answer: bytes | OSError, fallback: bool) -> None:
    assert fell_back(FakeSock(answer)) is fallback  # type: ignore[arg-type]


def test_another_error_reading_mptcp_info_is_raised() -> None:
    with pytest.raises(OSError):
        fell_back(FakeSock(OSError(errno.EBADF, "bad")))  # type: ignore[arg-type]
