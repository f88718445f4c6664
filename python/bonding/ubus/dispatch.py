"""Objects this connection publishes, and the dispatch of their methods to Python handlers."""

from __future__ import annotations

import asyncio
import ctypes
import inspect
import logging
from collections.abc import Awaitable, Iterable
from ctypes import addressof

from ._base import _Core
from ._lib import UbusRequestData
from .blobmsg import BlobmsgError, decode_attrs, encode, type_matches
from .handles import Method, ObjectHandle, Reply, read_blob_payload
from .status import UbusError, UbusStatus

log = logging.getLogger("bonding.ubus")


class _Objects(_Core):
    """add_object/remove_object and answering the calls libubus hands over."""

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
                self._deferred[addressof(deferred)] = deferred
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
        try:
            await self._answer(req, awaitable, obj, name)
        finally:
            self._deferred.pop(addressof(req), None)

    async def _answer(
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

    def _withdraw(self, ctx: int) -> None:
        """Before the context goes: answer every call libubus already handed over or holds in
        the socket (NOT_FOUND, as ubusd answers once the objects are gone), then remove the
        objects, so that no caller waits for its timeout on a service that stopped."""
        assert self._closed  # _dispatch answers NOT_FOUND from here on
        self._on_readable()  # what ubusd forwarded and nobody read yet
        for addr in list(self._deferred):
            self._lib.ubus_complete_deferred_request(ctx, addr, int(UbusStatus.NOT_FOUND))
        self._deferred.clear()
        for handle in list(self._objects.values()):
            if handle.registered:
                # a call that comes while ubusd removes it is queued by libubus and answered
                # (NOT_FOUND) right after, before ubus_remove_object returns
                self._lib.ubus_remove_object(ctx, handle.address)

    # ------------------------------------------------------------------ events
