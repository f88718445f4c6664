"""Calls from this connection to other objects (``ubus_invoke_async``, never blocking)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from ctypes import addressof, byref, c_uint32
from typing import Any

from ._base import _Core
from ._lib import UbusRequest
from .blobmsg import BlobmsgError, decode_attrs, encode
from .handles import Args, _Pending, read_blob_payload
from .status import UbusError, UbusStatus

log = logging.getLogger("bonding.ubus")


class _Calls(_Core):
    """lookup_id, call and invoke, and the C callbacks that finish them."""

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

    def _on_timeout(self, addr: int) -> None:
        pending = self._requests.get(addr)
        if pending is not None and not pending.future.done():
            self._abort(addr)
            pending.future.set_result(UbusStatus.TIMEOUT)

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
