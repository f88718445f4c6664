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

from .calls import _Calls
from .connection import _Connection
from .dispatch import _Objects
from .events import _Events
from .handles import (
    Args,
    EventCallback,
    Handler,
    Method,
    ObjectHandle,
    Subscription,
    read_blob_payload,
)
from .oneshot import call
from .status import UbusError, UbusStatus

# the names callers took from here before the split (api.py: Method, UbusError, UbusStatus)
__all__ = ["Args", "EventCallback", "Handler", "Method", "ObjectHandle", "Subscription", "Ubus",
           "UbusError", "UbusStatus", "call", "read_blob_payload"]  # fmt: skip

class Ubus(_Connection, _Objects, _Events, _Calls):
    """One connection to ubusd, driven by the running asyncio loop.

    ``socket`` is ubusd's socket path (default: libubus's, ``/var/run/ubus/ubus.sock``).
    When ubusd goes away the connection retries with backoff (up to ``max_backoff`` s between
    tries) and, once back, registers every object and event pattern again; ``on_reconnect`` is
    then called. Use ``async with Ubus() as bus`` or ``await connect()`` ... ``close()``.

    The parts: :mod:`.connection` (connect, reconnect, close), :mod:`._base` (state, driving the
    socket), :mod:`.dispatch` (objects and methods), :mod:`.events`, :mod:`.calls`.
    """

