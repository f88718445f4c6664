"""Which paths cannot carry MPTCP: pure decisions from what bondingd saw through each path.

Two ways an ISP breaks MPTCP, each seen its own way:
- The MPTCP options are stripped (a middlebox removes unknown TCP options): a connection opened
  through that path falls back to plain TCP.  bondingd opens an MPTCP connection to the server
  through each path every `mptcp_check_interval` s (bonding.mptcpprobe) and reads whether it fell
  back.  `strip_rounds` fallbacks in a row through a path, while another path's latest check
  got MPTCP, block it (when every path falls back the server does not speak MPTCP: nothing is
  blocked, that is not the ISP's doing).  `clear_rounds` MPTCP answers in a row unblock it.
- MP_JOIN SYNs are dropped: joins over that path never complete.  From the subflow dumps
  (bonding.netlink.diag, every 2 s): an MPTCP connection that has lived `join_s` seconds, while
  the path had its endpoint the whole time, with no subflow over the path, while a join over
  another path was established in the same dump, blocks it.  The kernel does not retry a failed
  join, so the block is lifted after `retest_s` to try again (the endpoint comes back; joins
  are created for the existing connections) and is judged again from there.

A blocked path gets no MPTCP endpoint and carries no first subflow (bonding.core.plan); what
does not need MPTCP (pinned and native traffic) may still use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum


class Check(StrEnum):
    """What one MPTCP check through a path saw."""

    MPTCP = "mptcp"  # the connection is MPTCP
    FALLBACK = "fallback"  # the handshake completed as plain TCP: the options were stripped
    FAILED = "failed"  # no connection: says nothing about MPTCP


class Kind(StrEnum):
    NONE = ""
    STRIPPED = "options-stripped"
    JOIN = "join-dropped"


REASON = "mptcp-blocked"


@dataclass(frozen=True)
class Params:
    strip_rounds: int = 2
    clear_rounds: int = 2
    join_s: float = 20.0
    retest_s: float = 600.0
    max_joins: int = 8  # the kernel's subflows limit: a connection that has as many joins
    # cannot take one more, over any path


@dataclass(frozen=True)
class Conn:
    """One MPTCP connection in a subflow dump: its subflows' local addresses, those of its
    joins, and how many subflows it has."""

    addresses: frozenset[str]
    joins: frozenset[str] = frozenset()
    subflows: int = 1


@dataclass(frozen=True)
class PathBlock:
    """What is known of one path's MPTCP: blocked or not, and the evidence so far."""

    kind: Kind = Kind.NONE
    since: float | None = None  # when it was blocked
    detail: str = ""  # what was seen
    fallbacks: int = 0  # fallback checks in a row
    good: int = 0  # MPTCP checks in a row
    last: Check | None = None  # the latest check's result
    # connections (by token) that lacked a subflow over this path, and since when
    waiting: tuple[tuple[int, float], ...] = field(default=())

    @property
    def blocked(self) -> bool:
        return self.kind is not Kind.NONE

    def reason(self, name: str) -> str:
        """The status text: what was seen, what to do."""
        if not self.blocked:
            return ""
        what = ("the ISP strips the MPTCP options (connections fall back to plain TCP)"
                if self.kind is Kind.STRIPPED else
                "the ISP drops MP_JOIN (no subflow joins over this link)")
        return (f"{REASON}: {what}: {self.detail}; {name} carries no bonded traffic, only "
                f"what needs no MPTCP.  Ask the ISP to pass TCP options, or use another "
                f"link/APN; it is checked again by itself")


def on_check(st: PathBlock, got: Check, others_mptcp: bool, now: float, p: Params) -> PathBlock:
    """One MPTCP check through the path; `others_mptcp`: another path's latest check was
    MPTCP (the server speaks MPTCP)."""
    if got is Check.FAILED:
        return replace(st, last=got)
    if got is Check.MPTCP:
        st = replace(st, last=got, fallbacks=0, good=st.good + 1)
        if st.kind is Kind.STRIPPED and st.good >= p.clear_rounds:
            return replace(st, kind=Kind.NONE, since=None, detail="")
        return st
    st = replace(st, last=got, good=0, fallbacks=st.fallbacks + 1)
    if not st.blocked and others_mptcp and st.fallbacks >= p.strip_rounds:
        return replace(st, kind=Kind.STRIPPED, since=now,
                       detail=f"{st.fallbacks} MPTCP connections in a row to the server fell "
                              f"back to TCP through it, while other links kept MPTCP")
    return st


def on_subflows(st: PathBlock, address: str | None, carrying_since: float | None,
                conns: Mapping[int, Conn], now: float, p: Params) -> PathBlock:
    """One subflow dump, for a path with `address` that has had its endpoint since
    `carrying_since` (None: it has none now)."""
    if st.kind is Kind.JOIN:
        if st.since is not None and now - st.since >= p.retest_s:
            return replace(st, kind=Kind.NONE, since=None, detail="", waiting=())  # retry
        return st
    if address is None or carrying_since is None or st.blocked:
        return replace(st, waiting=())
    if any(address in c.joins for c in conns.values()):
        return replace(st, waiting=())  # joins over it work
    joins_elsewhere = any(c.joins - {address} for c in conns.values())
    before = dict(st.waiting)
    waiting = tuple((t, max(before.get(t, now), carrying_since))
                    for t, c in sorted(conns.items())
                    if address not in c.addresses and c.subflows <= p.max_joins)
    st = replace(st, waiting=waiting)
    oldest = min((since for _, since in waiting), default=now)
    if joins_elsewhere and now - oldest >= p.join_s:
        return replace(st, kind=Kind.JOIN, since=now, waiting=(),
                       detail=f"a connection lived {now - oldest:.0f} s with no subflow over "
                              f"it while joins over other links worked")
    return st


def others_mptcp(states: Mapping[str, PathBlock], name: str) -> bool:
    """Whether a path other than `name` got MPTCP on its latest check."""
    return any(s.last is Check.MPTCP for n, s in states.items() if n != name)


def blocked(states: Mapping[str, PathBlock]) -> Iterable[str]:
    return (n for n, s in states.items() if s.blocked)
