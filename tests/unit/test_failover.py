"""bondingd's server failover (bonding.failover): rounds in, the active server, the states,
the events and status out; reloads keep what did not change.  The prober runs without paths (its
rounds judge nothing); the rounds that matter are fed in by hand."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from bonding.config import Config, Globals, Server
from bonding.core.servers import Attempt, Round, ServerState
from bonding.failover import Change, Failover

GOOD = Round((Attempt("wan1", True, 20.0), Attempt("wan2", True, 40.0)))
BAD = Round((Attempt("wan1", False, error="connection refused"),
             Attempt("wan2", False, error="connection refused")))
G = Globals(proxy="shadowsocks-libev", server_hold_s=0)
CFG = Config(globals=G, servers=(Server("a", "203.0.113.10"), Server("b", "203.0.113.20"),
                                 Server("c", "203.0.113.30", enabled=False)))


class Seen:
    def __init__(self) -> None:
        self.active: list[str | None] = []
        self.changes: list[Change] = []

    def states(self) -> list[tuple[str, str, str]]:
        return [(c.name, str(c.previous), str(c.state)) for c in self.changes]


def run(body: Callable[[Failover, Seen], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        seen = Seen()
        f = Failover(paths=lambda: [], on_active=seen.active.append,
                     on_state=seen.changes.append)
        try:
            await body(f, seen)
        finally:
            f.close()
    asyncio.run(main())


def feed(f: Failover, name: str, r: Round, n: int) -> None:
    for _ in range(n):
        f.on_round(name, r)


def states(f: Failover) -> dict[str, str]:
    return {s["name"]: s["state"] for s in f.status()}


def test_start_failover_and_return() -> None:
    async def body(f: Failover, seen: Seen) -> None:
        f.configure(CFG)
        assert f.active == "a" and seen.active == []  # the caller configures the data plane
        assert states(f) == {"a": "active", "b": "standby", "c": "disabled"}
        assert seen.changes == []  # nothing changed yet: no event at start
        feed(f, "a", GOOD, 1)
        feed(f, "b", GOOD, 1)
        feed(f, "a", BAD, 3)
        assert f.active == "b" and seen.active == ["b"]
        assert seen.states() == [("a", "active", "down"), ("b", "standby", "active")]
        assert "connection refused" in seen.changes[0].reason
        assert seen.changes[1].active == "b"
        st = {s["name"]: s for s in f.status()}
        assert st["a"]["paths"]["wan1"] == {"ok": False, "rtt_ms": None,
                                            "error": "connection refused"}
        assert st["b"]["rtt_ms"] == 20.0 and st["b"]["active"] is True
        assert f.active_status()["name"] == "b"
        assert f.active_status()["reason"].startswith("a stopped answering")
        feed(f, "a", GOOD, 3)  # up again; hold 0: back at once
        assert f.active == "a" and seen.active == ["b", "a"]
        assert seen.states()[2:] == [("a", "down", "active"), ("b", "active", "standby")]
    run(body)


def test_a_reload_keeps_the_active_server_and_the_health() -> None:
    async def body(f: Failover, seen: Seen) -> None:
        f.configure(CFG)
        feed(f, "a", BAD, 3)
        feed(f, "b", GOOD, 1)
        assert f.active == "b"
        # same servers, another option: nothing changes, no event
        n = len(seen.changes)
        f.configure(replace(CFG, globals=replace(G, server_hold_s=600)))
        assert f.active == "b" and states(f)["a"] == "down" and len(seen.changes) == n
        # b disabled: a is down, so the choice is the first not known down... none: a is kept
        f.configure(replace(CFG, servers=(CFG.servers[0], replace(CFG.servers[1],
                                                                   enabled=False))))
        assert f.active == "a"
        assert f.active_status()["reason"] == "server b was removed or disabled"
        assert seen.active == ["b"]  # a change made by configure() is not told to on_active
        assert states(f) == {"a": "down", "b": "disabled"}
    run(body)


def test_a_changed_address_starts_the_health_over() -> None:
    async def body(f: Failover, seen: Seen) -> None:
        f.configure(CFG)
        feed(f, "a", BAD, 3)
        assert states(f)["a"] == "down"
        moved = replace(CFG, servers=(replace(CFG.servers[0], address="198.51.100.1"),
                                      *CFG.servers[1:]))
        f.configure(moved)
        a = next(s for s in f.status() if s["name"] == "a")
        assert (a["state"], a["rounds"], a["paths"]) == ("active", 0, {})  # judged afresh
        assert seen.states()[-1] == ("a", "down", "active")
    run(body)


def test_priority_orders_the_servers() -> None:
    async def body(f: Failover, seen: Seen) -> None:
        cfg = replace(CFG, servers=(Server("a", "203.0.113.10", priority=50),
                                    Server("b", "203.0.113.20", priority=5)))
        f.configure(cfg)
        assert f.active == "b"
        assert [s["name"] for s in f.status()] == ["b", "a"]
    run(body)


def test_no_proxy_no_probing_no_active_server() -> None:
    async def body(f: Failover, seen: Seen) -> None:
        f.configure(replace(CFG, globals=replace(G, proxy="none")))
        assert f.active is None and f.prober is None
        assert states(f) == {"a": "standby", "b": "standby", "c": "disabled"}
        assert "no proxy" in f.status()[0]["reason"]
        feed(f, "a", BAD, 5)  # a late round is ignored
        assert states(f)["a"] == "standby"
        f.configure(replace(CFG, globals=replace(G, enabled=False)))
        assert set(states(f).values()) == {"disabled"}
        f.configure(CFG)
        assert f.active == "a" and f.prober is not None
    run(body)


def test_host_names_are_resolved_and_ipv6_is_left_unjudged(monkeypatch: Any) -> None:
    async def body(f: Failover, seen: Seen) -> None:
        loop = asyncio.get_running_loop()
        answers = {"vps.example": [(2, 1, 6, "", ("192.0.2.80", 0))]}

        async def fake(host: str, port: object, **kw: object) -> list[Any]:
            if host not in answers:
                raise OSError(-2, "Name or service not known")
            return answers[host]

        monkeypatch.setattr(loop, "getaddrinfo", fake)
        f.configure(replace(CFG, servers=(Server("n", "vps.example"),
                                          Server("bad", "nowhere.example"),
                                          Server("v6", "2001:db8::1"))))
        assert f._targets() == []  # first call starts the lookups
        await asyncio.sleep(0.01)
        targets = {t.name: t for t in f._targets()}
        assert targets["n"].address == "192.0.2.80" and targets["n"].error == ""
        assert targets["bad"].error == ("cannot resolve nowhere.example: "
                                        "Name or service not known")
        assert "v6" not in targets
        assert "no IPv6 address" in f.servers["v6"].health.reason
    run(body)


def test_server_state_values_are_the_documented_ones() -> None:
    assert [str(s) for s in ServerState] == ["active", "standby", "down", "disabled"]
