"""User hooks and events (bonding.bondingd.hooks): which ACTION a change is, the environment
the scripts get, and that they really run (real scripts in a temporary directory)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any

import pytest

from bonding.bondingd.hooks import Hooks, path_action, send_event, server_action, server_env
from bonding.core.health import State
from bonding.core.servers import ServerState as S
from bonding.failover import Change
from bonding.ubus import UbusError
from bonding.ubus.client import UbusStatus


@pytest.mark.parametrize(("state", "previous", "action"), [
    (State.UP, State.DOWN, "path-up"),
    (State.DEGRADED, State.DOWN, "path-up"),
    (State.DOWN, State.UP, "path-down"),
    (State.DISABLED, State.DEGRADED, "path-down"),
    (State.DEGRADED, State.UP, None),  # still carrying traffic
    (State.DISABLED, State.DOWN, None),
])
def test_path_action(state: State, previous: State, action: str | None) -> None:
    assert path_action(state, previous) == action


@pytest.mark.parametrize(("state", "previous", "action"), [
    (S.DOWN, S.ACTIVE, "server-down"),
    (S.ACTIVE, S.STANDBY, "server-active"),
    (S.STANDBY, S.DOWN, "server-up"),
    (S.STANDBY, S.ACTIVE, None),
    (S.DISABLED, S.STANDBY, None),
])
def test_server_action(state: S, previous: S, action: str | None) -> None:
    ch = Change("vps1", state, previous, "why", "203.0.113.10", "vps2")
    assert server_action(ch) == action


def test_server_env_names_everything() -> None:
    ch = Change("vps1", S.DOWN, S.ACTIVE, "no answer", "203.0.113.10", None)
    assert server_env("server-down", ch) == {
        "ACTION": "server-down", "SERVER_NAME": "vps1", "ADDRESS": "203.0.113.10",
        "STATE": "down", "PREVIOUS": "active", "REASON": "no answer", "ACTIVE_SERVER": ""}


class Bus:
    def __init__(self, connected: bool = True, fail: bool = False) -> None:
        self.connected = connected
        self.fail = fail
        self.sent: list[tuple[str, Mapping[str, Any]]] = []

    def send_event(self, event: str, data: Mapping[str, Any]) -> None:
        if self.fail:
            raise UbusError(UbusStatus.CONNECTION_FAILED, "gone")
        self.sent.append((event, data))


def test_events_go_out_only_while_connected_and_a_failure_is_not_raised() -> None:
    bus = Bus()
    send_event(bus, "bonding.path", {"name": "wan"})
    assert bus.sent == [("bonding.path", {"name": "wan"})]
    down = Bus(connected=False)
    send_event(down, "bonding.path", {"name": "wan"})
    assert down.sent == []
    send_event(Bus(fail=True), "bonding.path", {})  # logged, not raised
    send_event(None, "bonding.path", {})


def test_hooks_run_in_name_order_with_the_environment(tmp_path: Path) -> None:
    out = tmp_path / "out"
    hooks_dir = tmp_path / "hooks"
    hooks_dir.mkdir()
    for name in ("20-second", "10-first"):
        script = hooks_dir / name
        script.write_text(f'#!/bin/sh\necho "{name} $ACTION $PATH_NAME $HOME" >> {out}\n')
        script.chmod(0o755)
    (hooks_dir / "30-not-executable").write_text(f"#!/bin/sh\necho no >> {out}\n")
    failing = hooks_dir / "40-fails"
    failing.write_text("#!/bin/sh\necho broken >&2\nexit 3\n")
    failing.chmod(0o755)

    async def go() -> None:
        tasks: list[asyncio.Task[None]] = []

        def spawn(coro: Coroutine[Any, Any, None]) -> None:
            tasks.append(asyncio.get_running_loop().create_task(coro))
        Hooks(hooks_dir, spawn).fire({"ACTION": "path-up", "PATH_NAME": "wan"})
        await asyncio.gather(*tasks)
    asyncio.run(go())
    lines = out.read_text().splitlines()
    assert [ln.split()[:3] for ln in lines] == [["10-first", "path-up", "wan"],
                                                ["20-second", "path-up", "wan"]]
    assert all(len(ln.split()) == 4 for ln in lines)  # the daemon's own environment too


def test_no_hooks_directory_runs_nothing(tmp_path: Path) -> None:
    spawned: list[object] = []
    Hooks(tmp_path / "missing", spawned.append).fire({"ACTION": "path-up"})
    Hooks(None, spawned.append).fire({"ACTION": "path-up"})
    assert spawned == []
