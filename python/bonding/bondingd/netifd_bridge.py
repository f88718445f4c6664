"""The netifd bridge: netifd's interfaces (`network.interface dump` over ubus), read again on
every netifd event and hotplug call, one read at a time; a call while a read is under way
makes one more read after it.  Each read ends with `on_read` (the daemon re-resolves its
paths).  At the start the daemon makes no plan while `holding`: until netifd's first answer, when
its paths come from netifd."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from bonding.netifd import NetifdView
from bonding.ubus import UbusError

log = logging.getLogger("bondingd")

NETIFD_TIMEOUT_S = 3.0


class Bus(Protocol):
    """The ubus calls the bridge makes (bonding.ubus.Ubus)."""

    @property
    def connected(self) -> bool: ...
    async def call(self, path: str, method: str, args: Mapping[str, Any] | None = None,
                   timeout: float = ...) -> dict[str, Any]: ...


class NetifdBridge:
    def __init__(self, view: NetifdView, bus: Callable[[], Bus | None],
                 bus_error: Callable[[], str | None], on_read: Callable[[], None]) -> None:
        self.view = view
        self.bus = bus
        self.bus_error = bus_error
        self.on_read = on_read
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._hold_until = 0.0

    def hold(self, seconds: float, then: Callable[[], None]) -> None:
        """`holding` until netifd first answers (or cannot be asked) or `seconds` have passed,
        when `then` is called."""
        self._hold_until = time.monotonic() + seconds
        asyncio.get_running_loop().call_later(seconds, then)

    @property
    def holding(self) -> bool:
        return (time.monotonic() < self._hold_until
                and not (self.view.known or self.view.error is not None))

    def refresh(self) -> None:
        """Read netifd's interfaces again (once at a time)."""
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._read())

    def on_event(self, event: str, data: dict[str, Any]) -> None:
        """A `network.interface` event on ubus."""
        log.debug("netifd event %s %s", event, data)
        self.refresh()

    async def _read(self) -> None:
        while True:
            self._again = False
            bus = self.bus()
            if bus is None or not bus.connected:
                self.view.failed(self.bus_error() or "not connected to ubusd")
            else:
                try:
                    self.view.update(await bus.call("network.interface", "dump",
                                                    timeout=NETIFD_TIMEOUT_S))
                except UbusError as e:
                    self.view.failed(f"network.interface dump: {e}")
                    log.warning("asking netifd: %s", e)
            self.on_read()
            if not self._again:
                return
