"""The ubus object `bonding`: its methods, their arguments and how bad input is answered.

Transport-free: :func:`dispatch` validates a call's arguments against :data:`METHODS` and runs
the matching :class:`Backend` method (bondingd implements it); :func:`methods` wraps the same for
:class:`bonding.ubus.Ubus`.  Bad input is answered with a ubus status, never an exception out of
the daemon:

* a missing, mistyped or out-of-range argument → INVALID_ARGUMENT (2)
* an unknown path → NOT_FOUND (4)
* a key that cannot be stored (bonding_secrets unparsable, not writable) → UNKNOWN_ERROR (9)

`set_key` writes a key into /etc/config/bonding_secrets for LuCI, which never touches that
file through rpcd's uci: no reply and no log line carries a key (a bad key's message says what is
wrong with it, not what it is).

Every method accepts (and ignores) rpcd's ``ubus_rpc_session`` and any other unknown argument,
so a newer LuCI can call an older daemon.  Booleans are JSON booleans, or 0/1 as `ubus call`
sends integers from a shell.

Log policy: a refusal is the caller's business (the reply says why), and any ubus caller, a LuCI
read-only user among them, can send them by the thousand.  So a refused value is quoted at most
:data:`SHOWN` characters long, and at most :data:`REFUSALS_LOGGED` refusals per
:data:`REFUSAL_WINDOW_S` are logged, then one line counts the rest: OpenWrt's 64 KB log ring
cannot be flushed through us.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bonding import config
from bonding.ubus.blobmsg import BlobmsgType
from bonding.ubus.client import Method, UbusError, UbusStatus

log = logging.getLogger("bondingd.api")

OBJECT = "bonding"
EVENT_PATH = "bonding.path"
EVENT_SERVER = "bonding.server"
IFACE_ACTIONS = ("ifup", "ifdown", "ifupdate")
MAX_NAME = 64
SHOWN = 40  # characters of a refused value that a message quotes
REFUSALS_LOGGED = 10  # refusals logged per window, then one line counts the rest
REFUSAL_WINDOW_S = 60.0

Reply = Mapping[str, Any]


class Backend(Protocol):
    """What the object serves (bondingd)."""

    def api_status(self) -> Reply: ...
    def api_path(self, name: str) -> Reply | None: ...
    def api_set_path(self, name: str, enabled: bool | None,
                     backup: bool | None) -> Reply | None: ...
    def api_probe(self, name: str) -> Awaitable[Reply | None]: ...
    def api_reload(self) -> Reply: ...
    def api_iface(self, interface: str, action: str, device: str | None) -> Reply: ...
    def api_set_key(self, server: str, key: str, cipher: str | None) -> Reply: ...


@dataclass(frozen=True)
class Arg:
    name: str
    type: BlobmsgType
    required: bool = False
    secret: bool = False  # a key: checked by its own rules, never quoted


METHODS: Mapping[str, tuple[Arg, ...]] = {
    "status": (),
    "path": (Arg("name", BlobmsgType.STRING, True),),
    "set_path": (Arg("name", BlobmsgType.STRING, True), Arg("enabled", BlobmsgType.BOOL),
                 Arg("backup", BlobmsgType.BOOL)),
    "probe": (Arg("name", BlobmsgType.STRING, True),),
    "reload": (),
    "iface": (Arg("interface", BlobmsgType.STRING, True), Arg("action", BlobmsgType.STRING, True),
              Arg("device", BlobmsgType.STRING)),
    "set_key": (Arg("server", BlobmsgType.STRING, True),
                Arg("key", BlobmsgType.STRING, True, secret=True),
                Arg("cipher", BlobmsgType.STRING)),
}
READ_METHODS = ("status", "path")  # what LuCI's read ACL grants; the rest change state


def shown(v: object) -> str:
    """`v` for a message: its repr, cut to :data:`SHOWN` characters (its length said)."""
    text = repr(v)
    if len(text) <= SHOWN:
        return text
    return f"{text[:SHOWN]}… ({len(text)} characters)"


def _invalid(method: str, msg: str) -> UbusError:
    return UbusError(UbusStatus.INVALID_ARGUMENT, f"{OBJECT}.{method}: {msg}")


def parse_args(method: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments `method` knows, checked and normalised; UbusError when they are bad."""
    spec = METHODS.get(method)
    if spec is None:
        raise UbusError(UbusStatus.METHOD_NOT_FOUND, f"{OBJECT}.{method}")
    out: dict[str, Any] = {}
    for a in spec:
        if a.name not in args:
            if a.required:
                raise _invalid(method, f"argument '{a.name}' is required")
            out[a.name] = None
            continue
        v = args[a.name]
        if a.type is BlobmsgType.BOOL:
            if isinstance(v, bool):
                out[a.name] = v
            elif isinstance(v, int) and v in (0, 1):
                out[a.name] = bool(v)
            else:
                raise _invalid(method, f"'{a.name}' must be true/false (or 1/0), not {shown(v)}")
        elif a.secret:
            bad = None if isinstance(v, str) else f"'{a.name}' must be a string"
            bad = bad or config.key_shape_problem(v)
            if bad is not None:
                raise _invalid(method, bad)
            out[a.name] = v
        elif a.type is BlobmsgType.STRING:
            if not isinstance(v, str):
                raise _invalid(method, f"'{a.name}' must be a string, not {shown(v)}")
            if not v or len(v) > MAX_NAME or not v.isprintable():
                raise _invalid(method, f"'{a.name}' must be 1–{MAX_NAME} printable characters")
            out[a.name] = v
        else:  # pragma: no cover - METHODS uses only the types above
            raise AssertionError(a.type)
    if method == "iface" and out["action"] not in IFACE_ACTIONS:
        raise _invalid(method, f"'action' must be one of {', '.join(IFACE_ACTIONS)}, "
                               f"not {shown(out['action'])}")
    if method == "set_path" and out["enabled"] is None and out["backup"] is None:
        raise _invalid(method, "give 'enabled' and/or 'backup'")
    if method == "set_key":
        bad = config.invalid_server_name(out["server"])
        if bad is not None:
            raise _invalid(method, bad)
    if method == "set_key" and out["cipher"] is not None:
        if out["cipher"] not in config.CIPHERS:
            raise _invalid(method, f"'cipher' must be one of {', '.join(config.CIPHERS)}, "
                                   f"not {shown(out['cipher'])}")
        bad = config.key_problem(out["cipher"], out["key"])
        if bad is not None:
            raise _invalid(method, bad)
    return out


def _found(name: str, reply: Reply | None) -> Reply:
    if reply is None:
        raise UbusError(UbusStatus.NOT_FOUND, f"no path named {shown(name)}")
    return reply


async def _await_found(name: str, pending: Awaitable[Reply | None]) -> Reply:
    return _found(name, await pending)


def dispatch(backend: Backend, method: str, args: Mapping[str, Any]
             ) -> Reply | Awaitable[Reply]:
    """Run one call: a reply, an awaitable reply (`probe`), or UbusError."""
    a = parse_args(method, args)
    if method == "status":
        return backend.api_status()
    if method == "path":
        return _found(a["name"], backend.api_path(a["name"]))
    if method == "set_path":
        return _found(a["name"], backend.api_set_path(a["name"], a["enabled"], a["backup"]))
    if method == "probe":
        return _await_found(a["name"], backend.api_probe(a["name"]))
    if method == "reload":
        return backend.api_reload()
    if method == "iface":
        return backend.api_iface(a["interface"], a["action"], a["device"])
    if method == "set_key":
        return backend.api_set_key(a["server"], a["key"], a["cipher"])
    raise UbusError(UbusStatus.METHOD_NOT_FOUND, f"{OBJECT}.{method}")  # pragma: no cover


class RefusalLog:
    """Logs refused calls, at most :data:`REFUSALS_LOGGED` per window (see the log policy)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.start = -REFUSAL_WINDOW_S
        self.count = 0

    def log(self, e: UbusError) -> None:
        now = self.clock()
        if now - self.start >= REFUSAL_WINDOW_S:
            if self.count > REFUSALS_LOGGED:
                log.info("%d more ubus calls refused in %.0f s, not logged",
                         self.count - REFUSALS_LOGGED, now - self.start)
            self.start, self.count = now, 0
        self.count += 1
        if self.count <= REFUSALS_LOGGED:
            log.info("ubus call refused: %s", e)


def methods(backend: Backend) -> list[Method]:
    """The object's methods for :meth:`bonding.ubus.Ubus.add_object`.

    The policy is published for `ubus list -v`; checking is ours (check_policy off) so that
    0/1 pass as booleans and every refusal is logged with its reason.
    """
    refusals = RefusalLog()

    def handler(name: str, args: dict[str, Any]) -> Reply | Awaitable[Reply]:
        try:
            return dispatch(backend, name, args)
        except UbusError as e:
            refusals.log(e)
            raise

    out = []
    for name, spec in METHODS.items():
        h: Callable[[str, dict[str, Any]], Any] = handler
        out.append(Method(name, h, {a.name: a.type for a in spec}, check_policy=False))
    return out
