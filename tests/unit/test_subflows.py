"""Subflow counts per local address from mptcp_pm_events."""

from __future__ import annotations

from bonding.core.subflows import SubflowTracker

A, B, S = "100.64.1.2", "100.64.2.2", "203.0.113.10"


def test_connection_lifecycle() -> None:
    t = SubflowTracker()
    assert t.on_event("created", 7, A, 40000, S, 65101)
    assert not t.on_event("established", 7, A, 40000, S, 65101)  # same initial subflow
    assert t.on_event("sub_established", 7, B, 40001, S, 65101)
    assert t.on_event("sub_established", 7, A, 40002, S, 65101)
    assert (t.count(A), t.count(B), t.count("100.64.3.2")) == (2, 1, 0)
    assert t.on_event("sub_closed", 7, B, 40001, S, 65101)
    assert not t.on_event("sub_closed", 7, B, 40001, S, 65101)  # twice: no change
    assert t.count(B) == 0
    assert t.on_event("closed", 7, None, None, None, None)
    assert t.count(A) == 0
    assert t.count(None) is None


def test_events_without_token_or_address_are_ignored() -> None:
    t = SubflowTracker()
    assert not t.on_event("created", None, A, 1, S, 2)
    assert not t.on_event("sub_established", 3, None, None, None, None)
    assert not t.on_event("announced", 3, A, 1, S, 2)
    assert t.by_address() == {}


def test_lost_events_make_counts_unknown_until_seen_connections_close() -> None:
    t = SubflowTracker()
    t.on_event("created", 1, A, 1, S, 2)
    t.events_lost()
    assert t.count(A) is None
    t.on_event("closed", 1, None, None, None, None)
    assert t.count(A) == 0  # nothing seen is open any more: counting again
