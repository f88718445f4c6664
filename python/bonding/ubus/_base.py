"""The state one ubus connection shares between its parts, and the helpers they all use."""

from __future__ import annotations

import asyncio
import ctypes
import logging
from collections.abc import Awaitable, Callable
from ctypes import addressof
from typing import Any, cast

from . import _lib
from ._lib import (
    UBUS_COMPLETE_HANDLER,
    UBUS_CONNECTION_LOST,
    UBUS_DATA_HANDLER,
    UBUS_EVENT_HANDLER,
    UBUS_HANDLER,
    ULOOP_READ,
    UbusLibs,
)
from .handles import ObjectHandle, Subscription, _Pending
from .status import UbusError, UbusStatus

log = logging.getLogger("bonding.ubus")


class _Core:
    """The fields of :class:`bonding.ubus.Ubus`; its parts (connection, objects, events,
    calls) are mixins over this, each in its own module."""

    def __init__(
        self,
        socket: str | None = None,
        *,
        libs: UbusLibs | None = None,
        reconnect: bool = True,
        max_backoff: float = 1.0,
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        self._libs = libs or _lib.load()
        self._lib = self._libs.ubus
        self.socket = socket
        self._path = socket.encode() if socket else None
        self._reconnect = reconnect
        self._max_backoff = max_backoff
        self._on_reconnect_cb = on_reconnect
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ctx: int | None = None
        self._c: Any = None  # the UbusContext view of self._ctx
        self._sock_addr = 0
        self._handle_data: Any = None
        self._reader_fd: int | None = None
        self._connected = False
        self._closed = False
        self._generation = 0
        self._kick_scheduled = False
        self._objects: dict[int, ObjectHandle] = {}
        self._unwanted: list[ObjectHandle] = []  # removed while disconnected
        self._subs: dict[int, Subscription] = {}
        self._requests: dict[int, _Pending] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._deferred: dict[int, Any] = {}  # address -> UbusRequestData of unanswered calls
        self._reconnect_task: asyncio.Task[None] | None = None
        self._cb_depth = 0  # > 0 while libubus is calling us (its frames are on the stack)
        # C callbacks: one instance each, alive as long as this connection
        self._c_method = UBUS_HANDLER(self._entered(self._on_method))
        self._c_event = UBUS_EVENT_HANDLER(self._entered(self._on_event))
        self._c_data = UBUS_DATA_HANDLER(self._entered(self._on_data))
        self._c_complete = UBUS_COMPLETE_HANDLER(self._entered(self._on_complete))
        self._c_lost = UBUS_CONNECTION_LOST(self._entered(self._on_connection_lost))

    # what libubus calls; each part (dispatch, events, calls, connection) provides its own

    def _on_method(
        self, ctx: int | None, obj: int | None, req: int | None, method: bytes | None,
        msg: int | None,
    ) -> int:  # fmt: skip
        raise NotImplementedError

    def _on_event(
        self, ctx: int | None, ev: int | None, typ: bytes | None, msg: int | None
    ) -> None:
        raise NotImplementedError

    def _on_data(self, req: int | None, typ: int, msg: int | None) -> None:
        raise NotImplementedError

    def _on_complete(self, req: int | None, ret: int) -> None:
        raise NotImplementedError

    def _on_connection_lost(self, ctx: int | None) -> None:
        raise NotImplementedError

    def _withdraw(self, ctx: int) -> None:
        raise NotImplementedError

    def _entered(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def callback(*args: Any) -> Any:
            self._cb_depth += 1
            try:
                return fn(*args)
            finally:
                self._cb_depth -= 1

        return callback

    @property
    def connected(self) -> bool:
        return self._connected

    def _on_readable(self) -> None:
        self._kick_scheduled = False
        c = self._c
        if c is None or not self._connected:
            return
        if c.stack_depth == 0:
            # left set by the last blocking request; it would make ubus_handle_data stop after
            # one message (uloop's own loop has the same quirk); no request is waiting here
            c.cancel_poll = False
        self._handle_data(self._sock_addr, ULOOP_READ)
        self._after_sync()


    def _after_sync(self) -> None:
        """Make sure messages libubus queued during a nested call get processed."""
        c = self._c
        if c is None or not self._connected or self._kick_scheduled or self._loop is None:
            return
        first = ctypes.cast(c.pending.next, ctypes.c_void_p).value
        if first and first != addressof(c.pending):
            self._kick_scheduled = True
            self._loop.call_soon(self._on_readable)

    def _require(self) -> int:
        if self._ctx is None or not self._connected:
            raise UbusError(UbusStatus.CONNECTION_FAILED, "not connected to ubusd")
        return self._ctx

    def _spawn(self, coro: Awaitable[Any]) -> None:
        assert self._loop is not None
        task = self._loop.create_task(cast(Any, coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _abort(self, addr: int) -> None:
        if self._ctx is not None:
            self._lib.ubus_abort_request(self._ctx, addr)

    def _fail_requests(self, status: UbusStatus) -> None:
        for addr, pending in list(self._requests.items()):
            if not pending.future.done():
                self._abort(addr)  # libubus < 2025-05 does not flush them on EOF
                pending.future.set_result(status)

