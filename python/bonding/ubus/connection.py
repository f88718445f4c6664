"""Connecting to ubusd, noticing it went away, reconnecting with backoff, closing."""

from __future__ import annotations

import asyncio
import logging
from ctypes import addressof
from typing import Any, Self

from . import _lib
from ._base import _Core
from ._lib import UBUS_DATA_HANDLER, UBUS_MSG_CHUNK_SIZE
from .blobmsg import encode
from .status import UbusError, UbusStatus

log = logging.getLogger("bonding.ubus")

UBUS_SYSTEM_OBJECT_EVENT = 1


class _Connection(_Core):
    """The connection's life: connect, attach to the loop, re-register on reconnect, close."""

    async def __aenter__(self) -> Self:
        await self.connect()
        return self


    async def __aexit__(self, *exc: object) -> None:
        self.close()

    async def connect(self, timeout: float | None = None) -> None:
        """Connect, retrying with backoff until ``timeout`` s (None: until it works)."""
        if self._closed:
            raise UbusError(UbusStatus.CONNECTION_FAILED, "connection closed")
        if self._ctx is not None:
            return
        loop = self._loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        delay = 0.05
        where = self.socket or "the default ubus socket"
        while True:
            ctx = self._lib.ubus_connect(self._path)
            if ctx:
                break
            if deadline is not None and loop.time() + delay > deadline:
                raise UbusError(UbusStatus.CONNECTION_FAILED, f"cannot connect to ubusd at {where}")
            if delay == 0.05:
                log.warning("cannot connect to ubusd at %s, retrying", where)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_backoff)
        self._attach(ctx)
        self._on_connected()

    def _attach(self, ctx: int) -> None:
        for layout in _lib.context_layouts():
            view: Any = layout.from_address(ctx)
            if (
                view.msgbuf_data_len == UBUS_MSG_CHUNK_SIZE
                and view.stack_depth == 0
                and view.sock.fd >= 0
                and bool(view.sock.cb)
                and bool(view.connection_lost)
            ):
                break
        else:
            self._lib.ubus_free(ctx)
            raise UbusError(
                UbusStatus.UNKNOWN_ERROR,
                "struct ubus_context of this libubus does not match the binding "
                f"({self._libs.ubus_path})",
            )
        self._ctx = ctx
        self._c = view
        view.connection_lost = self._c_lost
        self._sock_addr = addressof(view.sock)
        self._handle_data = view.sock.cb

    def _on_connected(self) -> None:
        assert self._loop is not None and self._c is not None
        fd = int(self._c.sock.fd)
        self._loop.add_reader(fd, self._on_readable)
        self._reader_fd = fd
        self._connected = True
        self._generation += 1
        ctx = self._ctx
        for handle in list(self._unwanted):
            if handle.registered:
                rc = self._lib.ubus_remove_object(ctx, handle.address)
                if rc and handle.registered:
                    log.warning("cannot remove ubus object %s: %s", handle.name, UbusError(rc))
                    continue
            self._unwanted.remove(handle)
        for handle in self._objects.values():
            if not handle.registered:  # ubus_reconnect re-adds known objects itself
                rc = self._lib.ubus_add_object(ctx, handle.address)
                if rc:
                    log.error("cannot register ubus object %s: %s", handle.name, UbusError(rc))
        for sub in self._subs.values():
            rc = self._lib.ubus_register_event_handler(ctx, sub.address, sub._pattern_b)
            if rc:
                log.error("cannot listen for ubus events %s: %s", sub.pattern, UbusError(rc))
        self._after_sync()

    def _on_connection_lost(self, ctx: int | None) -> None:
        try:
            self._lost()
        except Exception:  # never into C
            log.exception("ubus: error while handling the lost connection")

    def _lost(self) -> None:
        was = self._connected
        self._connected = False
        if self._reader_fd is not None and self._loop is not None:
            self._loop.remove_reader(self._reader_fd)
            self._reader_fd = None
        self._fail_requests(UbusStatus.CONNECTION_FAILED)
        if was:
            log.warning(
                "lost the connection to ubusd%s", ", reconnecting" if self._reconnect else ""
            )
        idle = self._reconnect_task is None or self._reconnect_task.done()
        if self._reconnect and not self._closed and self._loop is not None and idle:
            self._reconnect_task = self._loop.create_task(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        delay = 0.05
        lib = self._lib
        while not self._closed and self._ctx is not None:
            rc = lib.ubus_reconnect(self._ctx, self._path)
            if rc != 0:
                # libubus closed the socket it tried but leaves its number in ctx->sock.fd; the
                # next ubus_reconnect() would close() it again (by then maybe another file)
                self._c.sock.fd = -1
            elif not self._c.sock.eof:
                self._on_connected()
                if self._connected:
                    log.info("reconnected to ubusd; %d objects, %d event patterns registered",
                             len(self._objects), len(self._subs))  # fmt: skip
                    if self._on_reconnect_cb is not None:
                        try:
                            self._on_reconnect_cb()
                        except Exception:
                            log.exception("ubus on_reconnect callback failed")
                    return
            # else: lost again at once; the next ubus_reconnect() closes that socket
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_backoff)

    def close(self) -> None:
        """Abort pending calls, drop the connection and free libubus's context."""
        if self._closed:
            return
        self._closed = True
        was_connected = self._connected
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
        for task in list(self._tasks):
            task.cancel()
        self._fail_requests(UbusStatus.CONNECTION_FAILED)
        if self._ctx is not None and was_connected and not self._cb_depth:
            self._withdraw(self._ctx)
        if self._reader_fd is not None and self._loop is not None:
            self._loop.remove_reader(self._reader_fd)
            self._reader_fd = None
        self._connected = False
        if self._ctx is not None:
            ctx, self._ctx = self._ctx, None
            if self._cb_depth and self._loop is not None:
                # close() from a handler: libubus still runs on this context; free it later
                self._loop.call_soon(self._free, ctx, was_connected)
            else:
                self._free(ctx, was_connected)

    def _free(self, ctx: int, flush: bool) -> None:
        if flush:
            # ubusd skips reading a socket once it sees the hangup, dropping what the client sent
            # just before (e.g. the reply of the method that asked us to close): one round trip
            # (an unknown command to ubusd's event object) makes sure it read everything
            self._lib.ubus_invoke_fd(ctx, UBUS_SYSTEM_OBJECT_EVENT, b"flush", encode(None),
                                     UBUS_DATA_HANDLER(), None, 500, -1)  # fmt: skip
        self._lib.ubus_free(ctx)
        self._c = None
        # libubus no longer points into these
        self._objects.clear()
        self._subs.clear()
        self._unwanted.clear()

