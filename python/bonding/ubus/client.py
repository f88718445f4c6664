"""An asyncio connection to ubusd through libubus: objects, methods, events, calls.

The event loop watches the ubus socket (``ctx->sock.fd``) and, when it is readable, runs what
``ubus_handle_event()`` (an inline function, so not exported) runs: ``ctx->sock.cb(&ctx->sock,
ULOOP_READ)``, i.e. libubus's ``ubus_handle_data``, which reads every complete message, dispatches
it and then processes the messages it had to queue meanwhile. ``uloop_run`` is never used.

Rules this module keeps so that C never touches freed Python memory:

* every ``Structure``, array, name and callback handed to libubus is referenced from this object
  for as long as libubus may use it (objects until removed, requests until completed or aborted);
* a request is always completed or aborted (``ubus_abort_request``) before it is forgotten;
* C callbacks never let an exception escape (ctypes would print it and return 0).

libubus is not thread-safe (one global ``struct blob_buf``): use a connection from one thread,
and do not use :func:`bonding.ubus.call` in another thread of the same process meanwhile.
A connection does not receive the events it sends itself (ubusd does not loop them back).
"""

from __future__ import annotations

import asyncio
import ctypes
import inspect
import logging
import struct
from collections.abc import Awaitable, Callable, Iterable, Mapping
from ctypes import POINTER, addressof, byref, c_uint32
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, cast

from . import _lib
from ._lib import (
    UBUS_COMPLETE_HANDLER,
    UBUS_CONNECTION_LOST,
    UBUS_DATA_HANDLER,
    UBUS_EVENT_HANDLER,
    UBUS_HANDLER,
    UBUS_MSG_CHUNK_SIZE,
    ULOOP_READ,
    BlobmsgPolicy,
    UbusEventHandler,
    UbusLibs,
    UbusMethod,
    UbusObject,
    UbusObjectType,
    UbusRequest,
    UbusRequestData,
)
from .blobmsg import BlobmsgError, BlobmsgType, decode_attrs, encode, type_matches

__all__ = [
    "Args",
    "EventCallback",
    "Handler",
    "Method",
    "ObjectHandle",
    "Subscription",
    "Ubus",
    "UbusError",
    "UbusStatus",
    "call",
    "read_blob_payload",
]

log = logging.getLogger("bonding.ubus")

Args = dict[str, Any]
Reply = Mapping[str, Any] | None
#: a method handler: ``(method_name, args) -> reply`` or an awaitable of it; ``None`` = no data
Handler = Callable[[str, Args], Reply | Awaitable[Reply]]
#: an event callback: ``(event_type, data)``, may be a coroutine function
EventCallback = Callable[[str, Args], Awaitable[None] | None]

_U32 = struct.Struct(">I")
UBUS_SYSTEM_OBJECT_EVENT = 1


class UbusStatus(IntEnum):
    """``enum ubus_msg_status`` (ubusmsg.h); ``ubus call`` exits with these."""

    OK = 0
    INVALID_COMMAND = 1
    INVALID_ARGUMENT = 2
    METHOD_NOT_FOUND = 3
    NOT_FOUND = 4
    NO_DATA = 5
    PERMISSION_DENIED = 6
    TIMEOUT = 7
    NOT_SUPPORTED = 8
    UNKNOWN_ERROR = 9
    CONNECTION_FAILED = 10
    NO_MEMORY = 11
    PARSE_ERROR = 12
    SYSTEM_ERROR = 13


_STRERROR = {
    UbusStatus.OK: "Success",
    UbusStatus.INVALID_COMMAND: "Invalid command",
    UbusStatus.INVALID_ARGUMENT: "Invalid argument",
    UbusStatus.METHOD_NOT_FOUND: "Method not found",
    UbusStatus.NOT_FOUND: "Not found",
    UbusStatus.NO_DATA: "No response",
    UbusStatus.PERMISSION_DENIED: "Permission denied",
    UbusStatus.TIMEOUT: "Request timed out",
    UbusStatus.NOT_SUPPORTED: "Operation not supported",
    UbusStatus.UNKNOWN_ERROR: "Unknown error",
    UbusStatus.CONNECTION_FAILED: "Connection failed",
    UbusStatus.NO_MEMORY: "Out of memory",
    UbusStatus.PARSE_ERROR: "Parsing message data failed",
    UbusStatus.SYSTEM_ERROR: "System error",
}


class UbusError(Exception):
    """A ubus status code other than OK.

    Raise it from a method handler to answer that status (e.g.
    ``raise UbusError(UbusStatus.INVALID_ARGUMENT, "name: unknown path")``; the message is logged
    at debug level, ubus carries only the code). Raised by calls that fail.
    """

    def __init__(self, status: int, message: str | None = None) -> None:
        try:
            self.status: UbusStatus | int = UbusStatus(status)
        except ValueError:
            self.status = status
        text = _STRERROR.get(self.status) if isinstance(self.status, UbusStatus) else None
        self.message = message
        detail = text or f"ubus status {status}"
        super().__init__(f"{message}: {detail}" if message else detail)


@dataclass(frozen=True)
class Method:
    """A method of an object: name, handler and argument policy (name -> blobmsg type).

    The policy is published in the object's signature (``ubus list -v``); with ``check_policy``
    an argument that is present with another type is answered with INVALID_ARGUMENT before the
    handler runs (unknown arguments, e.g. rpcd's ``ubus_rpc_session``, pass through).
    """

    name: str
    handler: Handler
    policy: Mapping[str, BlobmsgType] = field(default_factory=dict)
    check_policy: bool = True


def read_blob_payload(ptr: int | None) -> bytes:
    """The payload (``blob_data``, ``blob_len`` bytes) of the ``struct blob_attr`` at ``ptr``."""
    if not ptr:
        return b""
    raw = _U32.unpack(ctypes.string_at(ptr, 4))[0] & 0x00FFFFFF
    return ctypes.string_at(ptr + 4, raw - 4) if raw > 4 else b""


class ObjectHandle:
    """A registered object; keeps every C structure libubus points into alive."""

    def __init__(self, name: str, methods: Iterable[Method]) -> None:
        self.name = name
        self.methods: dict[str, Method] = {}
        for m in methods:
            if m.name in self.methods:
                raise ValueError(f"object {name!r}: method {m.name!r} given twice")
            self.methods[m.name] = m
        self._keep: list[Any] = []
        self._name_b = name.encode()
        n = len(self.methods)
        self._c_methods = (UbusMethod * max(n, 1))()
        for i, m in enumerate(self.methods.values()):
            mname = m.name.encode()
            policy = (BlobmsgPolicy * max(len(m.policy), 1))()
            for j, (arg, typ) in enumerate(m.policy.items()):
                arg_b = arg.encode()
                self._keep.append(arg_b)
                policy[j].name = arg_b
                policy[j].type = int(typ)
            self._keep += [mname, policy]
            self._c_methods[i].name = mname
            self._c_methods[i].policy = ctypes.cast(policy, POINTER(BlobmsgPolicy))
            self._c_methods[i].n_policy = len(m.policy)
        methods_p = ctypes.cast(self._c_methods, POINTER(UbusMethod))
        self._c_type = UbusObjectType(name=self._name_b, id=0, methods=methods_p, n_methods=n)
        self._c_obj = UbusObject(
            name=self._name_b, id=0, methods=methods_p, n_methods=n,
            type=ctypes.pointer(self._c_type),
        )  # fmt: skip
        self.address = addressof(self._c_obj)

    def _set_handler(self, handler: Any) -> None:
        for i in range(len(self.methods)):
            self._c_methods[i].handler = handler

    @property
    def id(self) -> int:
        """The object id ubusd gave (0 while not registered)."""
        return int(self._c_obj.id)

    @property
    def registered(self) -> bool:
        return self.id != 0


class Subscription:
    """An event handler registered for one pattern (``net.*``, ``bonding.path``, ``*``)."""

    def __init__(self, pattern: str, callback: EventCallback) -> None:
        self.pattern = pattern
        self.callback = callback
        self._pattern_b = pattern.encode()
        self._c_ev = UbusEventHandler()
        self.address = addressof(self._c_ev)


@dataclass
class _Pending:
    """An async invoke in flight."""

    req: UbusRequest
    future: asyncio.Future[int]
    replies: list[Args]
    error: Exception | None = None


class Ubus:
    """One connection to ubusd, driven by the running asyncio loop.

    ``socket`` is ubusd's socket path (default: libubus's, ``/var/run/ubus/ubus.sock``).
    When ubusd goes away the connection retries with backoff (up to ``max_backoff`` s between
    tries) and, once back, registers every object and event pattern again; ``on_reconnect`` is
    then called. Use ``async with Ubus() as bus`` or ``await connect()`` ... ``close()``.
    """

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
        self._reconnect_task: asyncio.Task[None] | None = None
        self._cb_depth = 0  # > 0 while libubus is calling us (its frames are on the stack)
        # C callbacks: one instance each, alive as long as this connection
        self._c_method = UBUS_HANDLER(self._entered(self._on_method))
        self._c_event = UBUS_EVENT_HANDLER(self._entered(self._on_event))
        self._c_data = UBUS_DATA_HANDLER(self._entered(self._on_data))
        self._c_complete = UBUS_COMPLETE_HANDLER(self._entered(self._on_complete))
        self._c_lost = UBUS_CONNECTION_LOST(self._entered(self._on_connection_lost))

    def _entered(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def callback(*args: Any) -> Any:
            self._cb_depth += 1
            try:
                return fn(*args)
            finally:
                self._cb_depth -= 1

        return callback

    # ------------------------------------------------------------------ connection

    @property
    def connected(self) -> bool:
        return self._connected

    async def __aenter__(self) -> Ubus:
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

    def _require(self) -> int:
        if self._ctx is None or not self._connected:
            raise UbusError(UbusStatus.CONNECTION_FAILED, "not connected to ubusd")
        return self._ctx

    def _spawn(self, coro: Awaitable[Any]) -> None:
        assert self._loop is not None
        task = self._loop.create_task(cast(Any, coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ objects

    def add_object(self, name: str, methods: Iterable[Method]) -> ObjectHandle:
        """Publish an object. Registered now if connected, else as soon as the connection is."""
        handle = ObjectHandle(name, methods)
        handle._set_handler(self._c_method)
        if self._connected:
            rc = self._lib.ubus_add_object(self._ctx, handle.address)
            self._after_sync()
            if rc:
                raise UbusError(rc, f"cannot register ubus object {name!r}")
        self._objects[handle.address] = handle
        return handle

    def remove_object(self, handle: ObjectHandle) -> None:
        if self._objects.pop(handle.address, None) is None:
            return
        if not handle.registered:
            return
        if self._connected:
            rc = self._lib.ubus_remove_object(self._ctx, handle.address)
            self._after_sync()
            if rc == 0 or not handle.registered:
                return
        # still in libubus's tree: keep it alive, remove it once connected again
        self._unwanted.append(handle)

    def _on_method(
        self, ctx: int | None, obj: int | None, req: int | None, method: bytes | None,
        msg: int | None,
    ) -> int:  # fmt: skip
        try:
            return int(self._dispatch(obj or 0, req or 0, (method or b"").decode(), msg))
        except Exception:
            log.exception("ubus: internal error dispatching a call")
            return int(UbusStatus.UNKNOWN_ERROR)

    def _dispatch(self, obj: int, req: int, name: str, msg: int | None) -> int:
        handle = self._objects.get(obj)
        if handle is None or self._closed:
            return UbusStatus.NOT_FOUND
        m = handle.methods.get(name)
        if m is None:
            return UbusStatus.METHOD_NOT_FOUND
        try:
            args = decode_attrs(read_blob_payload(msg))
        except BlobmsgError as exc:
            log.debug("%s.%s: undecodable arguments: %s", handle.name, name, exc)
            return UbusStatus.INVALID_ARGUMENT
        if m.check_policy:
            for arg, typ in m.policy.items():
                if arg in args and not type_matches(typ, args[arg]):
                    log.debug("%s.%s: argument %s is not %s: %r",
                              handle.name, name, arg, typ.name, args[arg])  # fmt: skip
                    return UbusStatus.INVALID_ARGUMENT
        try:
            result = m.handler(name, args)
            if inspect.isawaitable(result):
                deferred = UbusRequestData()
                ctypes.memmove(addressof(deferred), req, ctypes.sizeof(UbusRequestData))
                UbusRequestData.from_address(req).deferred = True  # ubus_defer_request()
                self._spawn(self._finish_deferred(deferred, result, handle.name, name))
                return UbusStatus.OK
            return self._reply(req, result)
        except UbusError as exc:
            log.debug("%s.%s: %s", handle.name, name, exc)
            return exc.status
        except Exception:
            log.exception("ubus method %s.%s failed", handle.name, name)
            return UbusStatus.UNKNOWN_ERROR

    def _reply(self, req: int, result: Reply) -> int:
        if result is None:
            return UbusStatus.OK
        blob = encode(result)  # BlobmsgError -> UNKNOWN_ERROR, logged by the caller
        rc = self._lib.ubus_send_reply(self._ctx, req, blob)
        return UbusStatus.OK if rc == 0 else int(rc)

    async def _finish_deferred(
        self, req: UbusRequestData, awaitable: Awaitable[Reply], obj: str, name: str
    ) -> None:
        generation = self._generation
        status: int = UbusStatus.OK
        blob: bytes | None = None
        try:
            result = await awaitable
            if result is not None:
                blob = encode(result)
        except UbusError as exc:
            log.debug("%s.%s: %s", obj, name, exc)
            status = exc.status
        except asyncio.CancelledError:
            if self._closed:
                raise
            status = UbusStatus.UNKNOWN_ERROR
        except Exception:
            log.exception("ubus method %s.%s failed", obj, name)
            status = UbusStatus.UNKNOWN_ERROR
        if not self._connected or generation != self._generation or self._ctx is None:
            log.debug("%s.%s: caller gone with the old ubus connection, reply dropped", obj, name)
            return
        addr = addressof(req)
        if blob is not None and self._lib.ubus_send_reply(self._ctx, addr, blob) != 0:
            status = UbusStatus.NO_DATA
        self._lib.ubus_complete_deferred_request(self._ctx, addr, int(status))
        self._after_sync()

    # ------------------------------------------------------------------ events

    def send_event(self, event: str, data: Mapping[str, Any] | None = None) -> None:
        """Broadcast an event (``ubus send``); raises UbusError when not delivered to ubusd."""
        ctx = self._require()
        rc = self._lib.ubus_send_event(ctx, event.encode(), encode(data or {}))
        self._after_sync()
        if rc:
            raise UbusError(rc, f"cannot send ubus event {event!r}")

    def subscribe(self, pattern: str, callback: EventCallback) -> Subscription:
        """Call ``callback(type, data)`` for every event matching ``pattern`` (``a.b``, ``a.*``)."""
        sub = Subscription(pattern, callback)
        sub._c_ev.cb = self._c_event
        if self._connected:
            rc = self._lib.ubus_register_event_handler(self._ctx, sub.address, sub._pattern_b)
            self._after_sync()
            if rc:
                if sub._c_ev.obj.id:
                    self._unwanted_event_object(sub)
                raise UbusError(rc, f"cannot listen for ubus events {pattern!r}")
        self._subs[sub.address] = sub
        return sub

    def _unwanted_event_object(self, sub: Subscription) -> None:
        # the handler object got added but the pattern not: take the object out again
        rc = self._lib.ubus_remove_object(self._ctx, addressof(sub._c_ev.obj))
        if rc and sub._c_ev.obj.id:
            holder = ObjectHandle.__new__(ObjectHandle)
            holder.name, holder.methods, holder._keep = f"events:{sub.pattern}", {}, [sub]
            holder._c_obj = sub._c_ev.obj
            holder.address = addressof(sub._c_ev.obj)
            self._unwanted.append(holder)

    def unsubscribe(self, sub: Subscription) -> None:
        if self._subs.pop(sub.address, None) is None or not sub._c_ev.obj.id:
            return
        if self._connected:
            rc = self._lib.ubus_remove_object(self._ctx, addressof(sub._c_ev.obj))
            self._after_sync()
            if rc == 0 or not sub._c_ev.obj.id:
                return
        self._unwanted_event_object(sub)

    def _on_event(
        self, ctx: int | None, ev: int | None, typ: bytes | None, msg: int | None
    ) -> None:
        sub = self._subs.get(ev or 0)
        try:
            if sub is None or self._closed:
                return
            event = (typ or b"").decode("utf-8", "surrogateescape")
            data = decode_attrs(read_blob_payload(msg))
            result = sub.callback(event, data)
            if inspect.isawaitable(result):
                self._spawn(self._run_event_cb(result, event))
        except Exception:
            log.exception("ubus event handler for %r failed", sub.pattern if sub else "?")

    async def _run_event_cb(self, awaitable: Awaitable[Any], event: str) -> None:
        try:
            await awaitable
        except Exception:
            log.exception("ubus event handler for %s failed", event)

    # ------------------------------------------------------------------ calls

    def lookup_id(self, path: str) -> int:
        """The id of object ``path``; UbusError(NOT_FOUND) when there is none."""
        ctx = self._require()
        oid = c_uint32(0)
        rc = self._lib.ubus_lookup_id(ctx, path.encode(), byref(oid))
        self._after_sync()
        if rc:
            raise UbusError(rc, f"ubus object {path!r}")
        return int(oid.value)

    async def call(
        self,
        path: str,
        method: str,
        args: Mapping[str, Any] | None = None,
        timeout: float = 30.0,
    ) -> Args:
        """Call ``path.method(args)``; the (last) data reply, ``{}`` when there is none.

        Raises UbusError with the status the callee answered (or TIMEOUT,
        CONNECTION_FAILED, NOT_FOUND for an unknown object).
        """
        return await self.invoke(self.lookup_id(path), method, args, timeout)

    async def invoke(
        self,
        obj_id: int,
        method: str,
        args: Mapping[str, Any] | None = None,
        timeout: float = 30.0,
    ) -> Args:
        """Like :meth:`call`, with an object id (``ubus_invoke_async``, never blocking)."""
        ctx = self._require()
        assert self._loop is not None
        blob = encode(args or {})
        req = UbusRequest()
        addr = addressof(req)
        rc = self._lib.ubus_invoke_async_fd(ctx, obj_id, method.encode(), blob, addr, -1)
        if rc:
            self._after_sync()
            raise UbusError(rc, f"cannot call {method!r} on ubus object {obj_id:#x}")
        req.data_cb = self._c_data
        req.complete_cb = self._c_complete
        pending = _Pending(req, self._loop.create_future(), [])
        self._requests[addr] = pending
        self._lib.ubus_complete_request_async(ctx, addr)
        timer = self._loop.call_later(timeout, self._on_timeout, addr)
        try:
            status = await pending.future
        finally:
            timer.cancel()
            if not pending.future.done() or pending.future.cancelled():
                self._abort(addr)
            self._requests.pop(addr, None)
        if pending.error is not None:
            raise pending.error
        if status:
            raise UbusError(status, f"{method} on ubus object {obj_id:#x}")
        return pending.replies[-1] if pending.replies else {}

    def _abort(self, addr: int) -> None:
        if self._ctx is not None:
            self._lib.ubus_abort_request(self._ctx, addr)

    def _on_timeout(self, addr: int) -> None:
        pending = self._requests.get(addr)
        if pending is not None and not pending.future.done():
            self._abort(addr)
            pending.future.set_result(UbusStatus.TIMEOUT)

    def _fail_requests(self, status: UbusStatus) -> None:
        for addr, pending in list(self._requests.items()):
            if not pending.future.done():
                self._abort(addr)  # libubus < 2025-05 does not flush them on EOF
                pending.future.set_result(status)

    def _on_data(self, req: int | None, typ: int, msg: int | None) -> None:
        pending = self._requests.get(req or 0)
        if pending is None:
            return
        try:
            pending.replies.append(decode_attrs(read_blob_payload(msg)))
        except BlobmsgError as exc:
            pending.error = UbusError(UbusStatus.PARSE_ERROR, f"undecodable reply: {exc}")
        except Exception:
            log.exception("ubus: cannot handle a reply")

    def _on_complete(self, req: int | None, ret: int) -> None:
        pending = self._requests.get(req or 0)
        if pending is None or pending.future.done():
            return
        if ret == UbusStatus.TIMEOUT and self._c is not None and self._c.sock.eof:
            ret = UbusStatus.CONNECTION_FAILED  # flushed by libubus on EOF, not a timeout
        pending.future.set_result(ret)


# ---------------------------------------------------------------------- synchronous client


def call(
    obj: str,
    method: str,
    args: Mapping[str, Any] | None = None,
    socket: str | None = None,
    timeout: float = 30.0,
    *,
    libs: UbusLibs | None = None,
) -> Args:
    """Blocking ``ubus call obj method args`` for scripts and tests: the (last) data reply.

    Raises UbusError (CONNECTION_FAILED when ubusd is not there, NOT_FOUND for an unknown
    object, the callee's status otherwise). Not for use inside a running Ubus connection's
    thread (libubus is not thread-safe, and a blocking call would stall that loop).
    """
    libs = libs or _lib.load()
    lib = libs.ubus
    blob = encode(args or {})
    ctx = lib.ubus_connect(socket.encode() if socket else None)
    if not ctx:
        raise UbusError(UbusStatus.CONNECTION_FAILED,
                        f"cannot connect to ubusd at {socket or 'the default socket'}")  # fmt: skip
    replies: list[Args] = []
    errors: list[Exception] = []

    def on_data(req: int | None, typ: int, msg: int | None) -> None:
        try:
            replies.append(decode_attrs(read_blob_payload(msg)))
        except Exception as exc:
            errors.append(exc)

    c_on_data = UBUS_DATA_HANDLER(on_data)
    try:
        oid = c_uint32(0)
        rc = lib.ubus_lookup_id(ctx, obj.encode(), byref(oid))
        if rc:
            raise UbusError(rc, f"ubus object {obj!r}")
        ms = max(1, int(timeout * 1000))
        rc = lib.ubus_invoke_fd(ctx, oid.value, method.encode(), blob, c_on_data, None, ms, -1)
    finally:
        lib.ubus_free(ctx)
    if errors:
        raise UbusError(UbusStatus.PARSE_ERROR, f"undecodable reply: {errors[0]}")
    if rc:
        raise UbusError(rc, f"{obj}.{method}")
    return replies[-1] if replies else {}
