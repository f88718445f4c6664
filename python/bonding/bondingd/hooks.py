"""The user hooks in /etc/hotplug.d/bonding (mwan3-style) and the ubus events of a change.

A path or server change becomes an ACTION (path-up, path-down, server-down, server-up,
server-active) and an environment; every executable file in the hooks directory runs with it,
in name order, each for at most HOOK_TIMEOUT_S, without blocking the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, Protocol

from bonding.core.health import State
from bonding.core.servers import ServerState
from bonding.failover import Change
from bonding.ubus import UbusError

log = logging.getLogger("bondingd")

HOOK_TIMEOUT_S = 10.0


class EventBus(Protocol):
    """Where events go (bonding.ubus.Ubus)."""

    @property
    def connected(self) -> bool: ...
    def send_event(self, event: str, data: Mapping[str, Any]) -> None: ...


def send_event(bus: EventBus | None, event: str, data: dict[str, Any]) -> None:
    """An event on ubus (dropped, with a debug line, when not connected)."""
    log.debug("event %s %s", event, json.dumps(data))
    if bus is None or not bus.connected:
        return
    try:
        bus.send_event(event, data)
    except UbusError as e:
        log.warning("sending %s: %s", event, e)


def path_action(state: State, previous: State) -> str | None:
    """path-up when a path starts carrying traffic, path-down when it stops, else None."""
    if state.live and not previous.live:
        return "path-up"
    if previous.live and not state.live:
        return "path-down"
    return None


def server_action(ch: Change) -> str | None:
    if ch.state is ServerState.DOWN:
        return "server-down"
    if ch.state is ServerState.ACTIVE:
        return "server-active"
    if ch.previous is ServerState.DOWN and ch.state is ServerState.STANDBY:
        return "server-up"
    return None


def server_env(action: str, ch: Change) -> dict[str, str]:
    return {"ACTION": action, "SERVER_NAME": ch.name, "ADDRESS": ch.address,
            "STATE": str(ch.state), "PREVIOUS": str(ch.previous), "REASON": ch.reason,
            "ACTIVE_SERVER": ch.active or ""}


class Hooks:
    """Runs the hook scripts of `hooks_dir` (None or missing: none) as tasks `spawn` keeps."""

    def __init__(self, hooks_dir: Path | None,
                 spawn: Callable[[Coroutine[Any, Any, None]], None]) -> None:
        self.hooks_dir = hooks_dir
        self.spawn = spawn

    def fire(self, env: Mapping[str, str]) -> None:
        """Run every hook with the daemon's environment plus `env`."""
        if self.hooks_dir is None or not self.hooks_dir.is_dir():
            return
        self.spawn(self.run(dict(os.environ, **env)))

    async def run(self, env: dict[str, str]) -> None:
        assert self.hooks_dir is not None
        for script in sorted(self.hooks_dir.iterdir()):
            if script.is_file() and os.access(script, os.X_OK):
                await _run_one(script, env)


async def _run_one(script: Path, env: dict[str, str]) -> None:
    try:
        proc = await asyncio.create_subprocess_exec(
            str(script), env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), HOOK_TIMEOUT_S)
        if proc.returncode:
            log.warning("hook %s exited %s: %s", script, proc.returncode,
                        err.decode(errors="replace").strip()[:200])
    except TimeoutError:
        log.warning("hook %s took more than %gs: killed", script, HOOK_TIMEOUT_S)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    except OSError as e:
        log.warning("hook %s: %s", script, e)
