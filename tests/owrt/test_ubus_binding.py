"""The ubus binding against a real ubusd, ubus CLI, libubox and libubus (OpenWrt userland).

Needs ``$OWRT_PREFIX`` (sbin/ubusd, bin/ubus, lib/libubus.so, lib/libubox.so); skips with the
reason otherwise. Every ubusd and helper process started here is killed at the end.

A server process (``SERVER`` below) registers objects with our binding under its own asyncio
loop; the tests talk to it with the ubus CLI, with the blocking :func:`bonding.ubus.call`, and
with an asyncio :class:`bonding.ubus.Ubus` in the test process itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bonding.ubus import Method, Ubus, UbusError, UbusLibs, UbusStatus, _lib, call, load
from bonding.ubus.blobmsg import BlobmsgType as T
from bonding.ubus.blobmsg import decode, encode

REPO_PYTHON = Path(__file__).resolve().parents[2] / "python"
OBJ = "pytest.obj"
TWO = "pytest.two"

SERVER = r"""
import asyncio, os, signal, sys
from bonding.ubus import BlobmsgType as T, Method, Ubus, UbusError, UbusStatus

SOCK = sys.argv[1]
events = []


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


async def main():
    bus = Ubus(SOCK, max_backoff=0.2)

    async def slow(name, args):
        await asyncio.sleep(args.get("delay", 0.2))
        return {"slept": args.get("delay", 0.2), "method": name}

    async def aecho(name, args):
        await asyncio.sleep(0)
        return args

    def fail(name, args):
        raise UbusError(args["status"], "asked to fail")

    async def afail(name, args):
        await asyncio.sleep(0.01)
        raise UbusError(UbusStatus.NOT_SUPPORTED)

    def crash(name, args):
        raise RuntimeError("boom")

    def emit(name, args):
        bus.send_event(args["event"], args.get("data", {}))

    async def relay(name, args):
        return await bus.call(args["object"], args["method"], args.get("args"), timeout=5)

    types = {
        "int": 42, "neg": -7, "int64": 2**40 + 1, "int64neg": -(2**62), "max64": 2**63 - 1,
        "true": True, "false": False, "double": 0.25, "negdouble": -1.5e10,
        "string": "héllo", "empty": "", "null": None,
        "nested": {"list": [1, "two", [3.5, {"deep": True}], {}], "table": {"a": {"b": {}}}},
    }
    bus.add_object("pytest.obj", [
        Method("echo", lambda n, a: a),
        Method("aecho", aecho),
        Method("types", lambda n, a: types),
        Method("typed", lambda n, a: {"got": a},
               {"name": T.STRING, "count": T.INT32, "on": T.BOOL, "ratio": T.DOUBLE,
                "opts": T.TABLE, "items": T.ARRAY, "big": T.INT64}),
        Method("slow", slow, {"delay": T.DOUBLE}),
        Method("fail", fail, {"status": T.INT32}),
        Method("afail", afail),
        Method("crash", crash),
        Method("bad_reply", lambda n, a: {"x": object()}),
        Method("noreply", lambda n, a: None),
        Method("emit", emit, {"event": T.STRING, "data": T.TABLE}),
        Method("relay", relay, {"object": T.STRING, "method": T.STRING, "args": T.TABLE}),
        Method("events", lambda n, a: {"events": events}),
        Method("rss", lambda n, a: {"rss_kb": rss_kb()}),
    ])
    bus.subscribe("pytest.ev.*", lambda t, d: events.append({"type": t, "data": d}))
    await bus.connect(timeout=10)
    # added while connected (the first one was registered by connect())
    bus.add_object("pytest.two", [Method("hello", lambda n, a: {"from": "two", "args": a})])
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("READY", os.getpid(), flush=True)
    await stop.wait()
    bus.close()


asyncio.run(main())
"""


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def ubus_prefix(owrt_prefix: Path) -> Path:
    """``owrt_prefix`` (tests/owrt/conftest.py) with the ubus parts this module needs."""
    needed = ["sbin/ubusd", "bin/ubus", "lib/libubus.so", "lib/libubox.so"]
    missing = [n for n in needed if not (owrt_prefix / n).exists()]
    if missing:
        reason = f"OWRT_PREFIX={owrt_prefix} lacks {', '.join(missing)}"
        print(f"SKIP: {reason}", file=sys.stderr)
        pytest.skip(reason)
    return owrt_prefix


@pytest.fixture(scope="module")
def libs(ubus_prefix: Path) -> UbusLibs:
    return load(str(ubus_prefix / "lib/libubus.so"), str(ubus_prefix / "lib/libubox.so"))


def _env(prefix: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = str(prefix / "lib")
    env["PYTHONPATH"] = str(REPO_PYTHON) + os.pathsep + env.get("PYTHONPATH", "")
    env["OWRT_PREFIX"] = str(prefix)
    return env


class Ubusd:
    """A ubusd on a socket in a temporary directory; can be killed and started again."""

    def __init__(self, prefix: Path, sock: Path) -> None:
        self.prefix = prefix
        self.sock = sock
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.proc is None
        self.proc = subprocess.Popen(
            [str(self.prefix / "sbin/ubusd"), "-s", str(self.sock)], env=_env(self.prefix)
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as s:
                s.connect(str(self.sock))
                return
            time.sleep(0.01)
        raise RuntimeError(f"ubusd did not come up on {self.sock}")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


@pytest.fixture(scope="module")
def ubusd(ubus_prefix: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ubusd]:
    d = tmp_path_factory.mktemp("ubus")
    daemon = Ubusd(ubus_prefix, d / "ubus.sock")
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.kill()


@pytest.fixture(scope="module")
def server(ubusd: Ubusd, ubus_prefix: Path, libs: UbusLibs) -> Iterator[subprocess.Popen[str]]:
    script = ubusd.sock.parent / "server.py"
    script.write_text(SERVER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(ubusd.sock)],
        env=_env(ubus_prefix),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        line = proc.stdout.readline() if ready else ""
        assert line.startswith("READY"), f"server did not start: {line!r}"
        wait_for_object(ubusd, TWO, libs, 5)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_for_object(ubusd: Ubusd, name: str, libs: UbusLibs, timeout: float) -> float:
    """Seconds until ``name`` answers a call (bounded by ``timeout``)."""
    start = time.monotonic()
    while True:
        try:
            if name == TWO:
                call(TWO, "hello", {}, socket=str(ubusd.sock), timeout=1, libs=libs)
            else:
                call(name, "echo", {}, socket=str(ubusd.sock), timeout=1, libs=libs)
            return time.monotonic() - start
        except UbusError:
            if time.monotonic() - start > timeout:
                raise
            time.sleep(0.02)


def cli(ubusd: Ubusd, *args: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ubusd.prefix / "bin/ubus"), "-s", str(ubusd.sock), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(ubusd.prefix),
    )


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# --------------------------------------------------------------------------- codec vs libubox


def c_encode(libs: UbusLibs, value: dict[str, Any]) -> bytes:
    """The same message built by libubox itself (blobmsg_add_field / open_nested / nest_end).

    The inline helpers (blobmsg_add_u32, _u64, _u8, _double, _string) are exactly
    ``blobmsg_add_field(buf, TYPE, name, &big_endian_value, size)``.
    """
    ubox = libs.ubox
    buf = _lib.BlobBuf()
    assert ubox.blob_buf_init(ctypes.byref(buf), 0) == 0

    def add(name: str | None, v: Any) -> None:
        nb = name.encode() if name is not None else None
        bp = ctypes.byref(buf)
        if isinstance(v, dict):
            cookie = ubox.blobmsg_open_nested(bp, nb, False)
            for k, x in v.items():
                add(k, x)
            ubox.blob_nest_end(bp, cookie)
        elif isinstance(v, list):
            cookie = ubox.blobmsg_open_nested(bp, nb, True)
            for x in v:
                add(None, x)
            ubox.blob_nest_end(bp, cookie)
        elif isinstance(v, str):
            data = v.encode() + b"\0"
            assert ubox.blobmsg_add_field(bp, T.STRING, nb, data, len(data)) == 0
        elif isinstance(v, bool):
            assert ubox.blobmsg_add_field(bp, T.BOOL, nb, b"\x01" if v else b"\x00", 1) == 0
        elif isinstance(v, int) and -(2**31) <= v < 2**31:
            assert ubox.blobmsg_add_field(bp, T.INT32, nb, struct.pack(">i", v), 4) == 0
        elif isinstance(v, int):
            assert ubox.blobmsg_add_field(bp, T.INT64, nb, struct.pack(">q", v), 8) == 0
        elif isinstance(v, float):
            assert ubox.blobmsg_add_field(bp, T.DOUBLE, nb, struct.pack(">d", v), 8) == 0
        elif v is None:
            assert ubox.blobmsg_add_field(bp, T.UNSPEC, nb, None, 0) == 0
        else:
            raise TypeError(v)

    try:
        for k, x in value.items():
            add(k, x)
        head = buf.head
        raw = struct.unpack(">I", ctypes.string_at(head, 4))[0] & 0xFFFFFF
        return ctypes.string_at(head, raw)
    finally:
        ubox.blob_buf_free(ctypes.byref(buf))


SAMPLE: dict[str, Any] = {
    "s": "string",
    "u": "ünïcødé",
    "e": "",
    "a": "x" * 1001,
    "i": 1,
    "neg": -(2**31),
    "i64": 2**31,
    "n64": -(2**63),
    "b": True,
    "f": False,
    "d": 3.25,
    "nan_free": -0.0,
    "null": None,
    "t": {"x": {"y": {"z": [1, [2, [3]], {"k": "v"}, [], {}]}}},
    "arr": [True, None, 1.5, "s", 2**40, {"in": ["a", "bc", "def", "ghij"]}],
    "longname" * 20: 7,
}


def test_encoder_matches_libubox(libs: UbusLibs) -> None:
    ours = encode(SAMPLE)
    theirs = c_encode(libs, SAMPLE)
    assert ours == theirs
    assert decode(theirs) == SAMPLE


def test_encoder_matches_libblobmsg_json(ubus_prefix: Path, libs: UbusLibs) -> None:
    """``blobmsg_add_json_from_string`` (what ``ubus call`` uses) picks the same types/bytes."""
    path = ubus_prefix / "lib/libblobmsg_json.so"
    if not path.exists():
        pytest.skip(f"{path} absent")
    try:
        bj = ctypes.CDLL(str(path))
    except OSError as exc:
        pytest.skip(f"cannot load {path}: {exc}")
    bj.blobmsg_add_json_from_string.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    bj.blobmsg_add_json_from_string.restype = ctypes.c_bool
    doc = {k: v for k, v in SAMPLE.items() if k != "nan_free"}
    doc["edge"] = [2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63 - 1, 0]
    text = json.dumps(doc)
    buf = _lib.BlobBuf()
    libs.ubox.blob_buf_init(ctypes.byref(buf), 0)
    try:
        assert bj.blobmsg_add_json_from_string(ctypes.byref(buf), text.encode())
        raw = struct.unpack(">I", ctypes.string_at(buf.head, 4))[0] & 0xFFFFFF
        theirs = ctypes.string_at(buf.head, raw)
    finally:
        libs.ubox.blob_buf_free(ctypes.byref(buf))
    assert encode(doc) == theirs
    assert decode(theirs) == doc


STRUCT_PROBE = r"""
#include <stdio.h>
#include <stddef.h>
#include <libubus.h>
#define O(t, f) printf("%s.%s %zu\n", #t, #f, offsetof(struct t, f))
#define S(t) printf("%s %zu\n", #t, sizeof(struct t))
int main(void) {
    S(list_head); S(avl_node); S(avl_tree); S(uloop_fd); S(uloop_timeout); S(blob_buf);
    S(blobmsg_policy); S(ubus_method); S(ubus_object_type); S(ubus_object);
    S(ubus_event_handler); S(ubus_request_data); S(ubus_request); S(ubus_object_data);
    S(ubus_context); S(ubus_msghdr_buf);
    O(avl_node, key); O(avl_node, leader); O(avl_tree, comp); O(avl_tree, cmp_ptr);
    O(uloop_fd, fd); O(uloop_fd, eof); O(uloop_fd, flags); O(uloop_timeout, time);
    O(ubus_method, handler); O(ubus_method, mask); O(ubus_method, policy);
    O(ubus_method, n_policy); O(ubus_object_type, id); O(ubus_object_type, methods);
    O(ubus_object_type, n_methods); O(ubus_object, name); O(ubus_object, id);
    O(ubus_object, path); O(ubus_object, type); O(ubus_object, subscribe_cb);
    O(ubus_object, has_subscribers); O(ubus_object, methods); O(ubus_object, n_methods);
    O(ubus_event_handler, cb); O(ubus_request_data, seq); O(ubus_request_data, acl);
    O(ubus_request_data, deferred); O(ubus_request_data, fd); O(ubus_request_data, req_fd);
    O(ubus_request, status_code); O(ubus_request, notify); O(ubus_request, peer);
    O(ubus_request, seq); O(ubus_request, raw_data_cb); O(ubus_request, data_cb);
    O(ubus_request, fd_cb); O(ubus_request, complete_cb); O(ubus_request, fd);
    O(ubus_request, ctx); O(ubus_request, priv); O(ubus_object_data, signature);
    O(ubus_context, objects); O(ubus_context, pending); O(ubus_context, sock);
    O(ubus_context, pending_timer); O(ubus_context, local_id); O(ubus_context, request_seq);
    O(ubus_context, cancel_poll); O(ubus_context, stack_depth);
    O(ubus_context, connection_lost); O(ubus_context, monitor_cb); O(ubus_context, msgbuf);
    O(ubus_context, msgbuf_data_len); O(ubus_context, msgbuf_reduction_counter);
    O(ubus_context, auto_subscribers); O(ubus_context, auto_subscribe_event_handler);
    O(ubus_context, request_handler);
    return 0;
}
"""

CTYPES_OF = {
    "list_head": _lib.ListHead,
    "avl_node": _lib.AvlNode,
    "avl_tree": _lib.AvlTree,
    "uloop_fd": _lib.UloopFd,
    "blob_buf": _lib.BlobBuf,
    "blobmsg_policy": _lib.BlobmsgPolicy,
    "ubus_method": _lib.UbusMethod,
    "ubus_object_type": _lib.UbusObjectType,
    "ubus_object": _lib.UbusObject,
    "ubus_event_handler": _lib.UbusEventHandler,
    "ubus_request_data": _lib.UbusRequestData,
    "ubus_request": _lib.UbusRequest,
    "ubus_object_data": _lib.UbusObjectData,
    "ubus_msghdr_buf": _lib.UbusMsghdrBuf,
}


def _ctypes_layout(ctx: Any) -> dict[str, int]:
    types = dict(CTYPES_OF, ubus_context=ctx)
    types["uloop_timeout"] = dict(ctx._fields_)["pending_timer"]
    out: dict[str, int] = {}
    for name, cls in types.items():
        out[name] = ctypes.sizeof(cls)
        for fname, *_ in cls._fields_:
            out[f"{name}.{fname}"] = getattr(cls, fname).offset
    u = ctx.u.offset
    out["ubus_context.auto_subscribers"] = u
    out["ubus_context.request_handler"] = u
    out["ubus_context.auto_subscribe_event_handler"] = (
        u + _lib._AutoSubscribe.auto_subscribe_event_handler.offset
    )
    return out


def test_struct_layouts_match_the_c_headers(ubus_prefix: Path, tmp_path: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to compile the layout probe")
    src = tmp_path / "probe.c"
    src.write_text(STRUCT_PROBE)
    exe = tmp_path / "probe"
    subprocess.run(
        [cc, "-I", str(ubus_prefix / "include"), str(src), "-o", str(exe)],
        check=True,
        capture_output=True,
    )
    lines = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    c_layout = {k: int(v) for k, v in (line.split() for line in lines.splitlines())}
    ours = _ctypes_layout(_lib.context_layouts()[0])
    mismatches = {k: (v, ours.get(k)) for k, v in c_layout.items() if ours.get(k) != v}
    assert not mismatches, f"C vs ctypes: {mismatches}"
    assert len(c_layout) > 70


# --------------------------------------------------------------------------- through the CLI


def test_list_shows_methods_with_argument_types(server: Any, ubusd: Ubusd) -> None:
    out = cli(ubusd, "-v", "list", OBJ)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"'{OBJ}' @")
    sig = {}
    for line in lines[1:]:
        name, _, rest = line.strip().partition(":")
        sig[json.loads(name)] = json.loads(rest)
    assert sig["typed"] == {
        "name": "String",
        "count": "Integer",
        "on": "Boolean",
        "ratio": "(unknown)",  # ubus list only names int8/int32/string/array/table
        "opts": "Table",
        "items": "Array",
        "big": "(unknown)",
    }
    assert sig["slow"] == {"delay": "(unknown)"}
    assert sig["echo"] == {}
    assert {"echo", "aecho", "types", "fail", "crash", "emit", "relay"} <= set(sig)
    assert cli(ubusd, "list").stdout.split() == sorted([OBJ, TWO])


def test_cli_call_returns_all_types(server: Any, ubusd: Ubusd) -> None:
    out = cli(ubusd, "call", OBJ, "types")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "int": 42,
        "neg": -7,
        "int64": 2**40 + 1,
        "int64neg": -(2**62),
        "max64": 2**63 - 1,
        "true": True,
        "false": False,
        "double": 0.25,
        "negdouble": -1.5e10,
        "string": "héllo",
        "empty": "",
        "null": None,
        "nested": {"list": [1, "two", [3.5, {"deep": True}], {}], "table": {"a": {"b": {}}}},
    }


def test_cli_arguments_round_trip(server: Any, ubusd: Ubusd) -> None:
    doc = {
        "big": 5_000_000_000,
        "neg": -5_000_000_000,
        "small": -1,
        "on": True,
        "off": False,
        "ratio": 0.5,
        "nothing": None,
        "name": "wan1 ✓",
        "deep": {"list": [1, [2, [3, {"x": [True, None]}]]], "empty": {}, "arr": []},
        "ubus_rpc_session": "00000000000000000000000000000000",
    }
    for method in ("echo", "aecho"):
        out = cli(ubusd, "call", OBJ, method, json.dumps(doc))
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == doc


def test_method_without_reply_data(server: Any, ubusd: Ubusd) -> None:
    out = cli(ubusd, "call", OBJ, "noreply")
    assert (out.returncode, out.stdout) == (0, "")


def test_policy_types_are_checked(server: Any, ubusd: Ubusd) -> None:
    good = {
        "name": "x",
        "count": 3,
        "on": True,
        "ratio": 1.5,
        "opts": {},
        "items": [],
        "big": 1,
        "extra": "passes",
    }
    out = cli(ubusd, "call", OBJ, "typed", json.dumps(good))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"got": good}
    bad: dict[str, Any]
    for bad in ({"name": 1}, {"count": "3"}, {"on": 1}, {"opts": []}, {"items": {}}):
        out = cli(ubusd, "call", OBJ, "typed", json.dumps(bad))
        assert out.returncode == (-UbusStatus.INVALID_ARGUMENT) & 0xFF, (bad, out)
        assert "Invalid argument" in out.stderr


def _concurrent_cli(ubusd: Ubusd, n: int, delay: float) -> tuple[float, list[str]]:
    exe = [str(ubusd.prefix / "bin/ubus"), "-s", str(ubusd.sock)]
    start = time.monotonic()
    procs = [
        subprocess.Popen(
            [*exe, "call", OBJ, "slow", json.dumps({"delay": delay})],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(ubusd.prefix),
        )
        for _ in range(n)
    ]
    outs = [p.communicate(timeout=10)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    return time.monotonic() - start, outs


def test_deferred_async_method(server: Any, ubusd: Ubusd) -> None:
    start = time.monotonic()
    out = cli(ubusd, "call", OBJ, "slow", '{"delay": 0.4}')
    took = time.monotonic() - start
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"slept": 0.4, "method": "slow"}
    assert took >= 0.4
    # five deferred calls at once overlap: the daemon keeps serving while they await
    took, outs = _concurrent_cli(ubusd, 5, 0.6)
    assert all(json.loads(o) == {"slept": 0.6, "method": "slow"} for o in outs)
    assert took < 0.6 * 5 - 0.5, f"deferred calls did not overlap ({took:.2f} s)"


@pytest.mark.parametrize(
    ("method", "args", "status"),
    [
        ("fail", {"status": 4}, UbusStatus.NOT_FOUND),
        ("fail", {"status": 6}, UbusStatus.PERMISSION_DENIED),
        ("afail", {}, UbusStatus.NOT_SUPPORTED),
        ("crash", {}, UbusStatus.UNKNOWN_ERROR),
        ("bad_reply", {}, UbusStatus.UNKNOWN_ERROR),
        ("no_such_method", {}, UbusStatus.METHOD_NOT_FOUND),
        ("slow", {"delay": "soon"}, UbusStatus.INVALID_ARGUMENT),
    ],
)
def test_error_status_reaches_the_cli(
    server: Any, ubusd: Ubusd, libs: UbusLibs, method: str, args: dict[str, Any], status: int
) -> None:
    out = cli(ubusd, "call", OBJ, method, json.dumps(args))
    # with stderr not a terminal, ubus prints the error and exits with -status
    assert out.returncode == (-status) & 0xFF, out
    assert f"Command failed: ubus call {OBJ} {method}" in out.stderr
    with pytest.raises(UbusError) as info:
        call(OBJ, method, args, socket=str(ubusd.sock), libs=libs)
    assert info.value.status == status
    # and the daemon keeps serving
    assert call(OBJ, "echo", {"ok": 1}, socket=str(ubusd.sock), libs=libs) == {"ok": 1}


# --------------------------------------------------------------------------- events


def test_events_we_send_reach_ubus_listen(server: Any, ubusd: Ubusd, libs: UbusLibs) -> None:
    exe = [str(ubusd.prefix / "bin/ubus"), "-s", str(ubusd.sock), "listen", "pytest.out"]
    listener = subprocess.Popen(
        exe, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(ubusd.prefix)
    )
    try:
        assert listener.stdout is not None
        data = {"name": "wan1", "state": "up", "rtt": 12.5, "n": 2**33, "ok": True}
        got = None
        for _ in range(50):  # the listener registers asynchronously: send until it hears
            call(
                OBJ,
                "emit",
                {"event": "pytest.out", "data": data},
                socket=str(ubusd.sock),
                libs=libs,
            )
            ready, _, _ = select.select([listener.stdout], [], [], 0.1)
            if ready:
                got = listener.stdout.readline()
                break
        assert got is not None, "ubus listen saw no event"
        assert json.loads(got) == {"pytest.out": data}
    finally:
        listener.kill()
        listener.wait(5)


def test_events_from_ubus_send_reach_us(server: Any, ubusd: Ubusd, libs: UbusLibs) -> None:
    assert cli(ubusd, "send", "pytest.ev.one", '{"n": 1, "t": {"x": [1]}}').returncode == 0
    assert cli(ubusd, "send", "pytest.other", '{"n": 2}').returncode == 0
    assert cli(ubusd, "send", "pytest.ev.two").returncode == 0
    seen: list[dict[str, Any]] = []
    for _ in range(100):
        seen = call(OBJ, "events", socket=str(ubusd.sock), libs=libs)["events"]
        if len([e for e in seen if e["type"] in ("pytest.ev.one", "pytest.ev.two")]) >= 2:
            break
        time.sleep(0.02)
    mine = [e for e in seen if e["type"] in ("pytest.ev.one", "pytest.ev.two", "pytest.other")]
    assert mine[-2:] == [
        {"type": "pytest.ev.one", "data": {"n": 1, "t": {"x": [1]}}},
        {"type": "pytest.ev.two", "data": {}},
    ]
    assert all(e["type"] != "pytest.other" for e in seen)


# --------------------------------------------------------------------------- invoking objects


def test_invoke_another_object(server: Any, ubusd: Ubusd, libs: UbusLibs) -> None:
    sock = str(ubusd.sock)
    # the server calls its own second object through ubusd, from inside a deferred method
    out = call(
        OBJ, "relay", {"object": TWO, "method": "hello", "args": {"a": [1]}}, socket=sock, libs=libs
    )
    assert out == {"from": "two", "args": {"a": [1]}}
    with pytest.raises(UbusError) as info:
        call(OBJ, "relay", {"object": "pytest.absent", "method": "x"}, socket=sock, libs=libs)
    assert info.value.status == UbusStatus.NOT_FOUND
    with pytest.raises(UbusError) as info:
        call(OBJ, "relay", {"object": TWO, "method": "nope"}, socket=sock, libs=libs)
    assert info.value.status == UbusStatus.METHOD_NOT_FOUND


def test_cross_process_both_ways(server: Any, ubusd: Ubusd, libs: UbusLibs) -> None:
    """Our own asyncio client: it serves an object the server calls back while we await."""

    async def main() -> None:
        calls: list[dict[str, Any]] = []

        async def local(name: str, args: dict[str, Any]) -> dict[str, Any]:
            calls.append(args)
            await asyncio.sleep(0.05)
            return {"local": args["v"] * 2}

        async with Ubus(str(ubusd.sock), libs=libs, reconnect=False) as bus:
            bus.add_object("pytest.local", [Method("double", local, {"v": T.INT64})])
            out = await bus.call(
                OBJ,
                "relay",
                {"object": "pytest.local", "method": "double", "args": {"v": 2**40}},
                timeout=5,
            )
            assert out == {"local": 2**41}
            assert calls == [{"v": 2**40}]
            # and our own object through ubusd, from the same connection
            assert await bus.call("pytest.local", "double", {"v": 1}) == {"local": 2}
            results = await asyncio.gather(
                *(bus.call(OBJ, "slow", {"delay": 0.3}) for _ in range(4))
            )
            assert results == [{"slept": 0.3, "method": "slow"}] * 4
            with pytest.raises(UbusError) as info:
                await bus.call(OBJ, "slow", {"delay": 2.0}, timeout=0.3)
            assert info.value.status == UbusStatus.TIMEOUT
            with pytest.raises(UbusError) as info:
                await bus.call("pytest.absent", "x")
            assert info.value.status == UbusStatus.NOT_FOUND
            task = asyncio.ensure_future(bus.call(OBJ, "slow", {"delay": 1.0}))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await bus.call(OBJ, "echo", {"after": "cancel"}) == {"after": "cancel"}
            assert not bus._requests
        assert cli(ubusd, "list").stdout.split() == sorted([OBJ, TWO])

    asyncio.run(main())


def test_sync_call_errors(server: Any, ubusd: Ubusd, libs: UbusLibs, tmp_path: Path) -> None:
    with pytest.raises(UbusError) as info:
        call(OBJ, "echo", socket=str(tmp_path / "none.sock"), libs=libs)
    assert info.value.status == UbusStatus.CONNECTION_FAILED
    with pytest.raises(UbusError) as info:
        call("pytest.absent", "echo", socket=str(ubusd.sock), libs=libs)
    assert info.value.status == UbusStatus.NOT_FOUND
    start = time.monotonic()
    with pytest.raises(UbusError) as info:
        call(OBJ, "slow", {"delay": 3.0}, socket=str(ubusd.sock), timeout=0.3, libs=libs)
    assert info.value.status == UbusStatus.TIMEOUT
    assert time.monotonic() - start < 2


# --------------------------------------------------------------------------- ubusd restarts


def test_ubusd_restart_brings_everything_back(server: Any, ubusd: Ubusd, libs: UbusLibs) -> None:
    sock = str(ubusd.sock)

    async def main() -> dict[str, float]:
        reconnected = asyncio.Event()
        async with Ubus(sock, libs=libs, max_backoff=0.2, on_reconnect=reconnected.set) as bus:
            bus.add_object("pytest.local2", [Method("ping", lambda n, a: {"pong": True})])
            heard: list[str] = []
            bus.subscribe("pytest.ev.*", lambda t, d: heard.append(t))
            pending = asyncio.ensure_future(bus.call(OBJ, "slow", {"delay": 1.0}))
            await asyncio.sleep(0.1)
            ubusd.kill()
            with pytest.raises(UbusError) as info:
                await asyncio.wait_for(pending, 3)
            assert info.value.status == UbusStatus.CONNECTION_FAILED
            assert not bus.connected
            await asyncio.sleep(0.3)  # ubusd stays away a moment
            ubusd.start()
            restarted = time.monotonic()
            await asyncio.wait_for(reconnected.wait(), 3)
            ours = time.monotonic() - restarted
            # the server process: its objects and event pattern come back by themselves
            server_back = None
            while time.monotonic() - restarted < 5:
                proc = await asyncio.create_subprocess_exec(
                    str(ubusd.prefix / "bin/ubus"),
                    "-s",
                    sock,
                    "list",
                    stdout=asyncio.subprocess.PIPE,
                    env=_env(ubusd.prefix),
                )
                listed = (await proc.communicate())[0].decode().split()
                if {OBJ, TWO} <= set(listed):
                    server_back = time.monotonic() - restarted
                    break
                await asyncio.sleep(0.02)
            assert server_back is not None, "server objects did not come back"
            assert {"pytest.local2"} <= set(listed)
            assert await bus.call(OBJ, "slow", {"delay": 0.05}) == {"slept": 0.05, "method": "slow"}
            assert await bus.call("pytest.local2", "ping") == {"pong": True}
            await bus.call(OBJ, "emit", {"event": "pytest.ev.back", "data": {}})
            proc = await asyncio.create_subprocess_exec(
                str(ubusd.prefix / "bin/ubus"),
                "-s",
                sock,
                "send",
                "pytest.ev.cli",
                env=_env(ubusd.prefix),
            )
            await proc.wait()
            for _ in range(100):
                events = (await bus.call(OBJ, "events"))["events"]
                if "pytest.ev.cli" in heard and any(e["type"] == "pytest.ev.cli" for e in events):
                    break
                await asyncio.sleep(0.02)
            assert "pytest.ev.cli" in heard, "our event handler was not re-registered"
            assert any(e["type"] == "pytest.ev.cli" for e in events), "server's neither"
            return {"client": ours, "server": server_back}

    took = asyncio.run(main())
    print(
        f"\nubusd restart: our client back after {took['client']:.3f} s, "
        f"server objects listed after {took['server']:.3f} s"
    )
    assert took["server"] < 2.0
    assert took["client"] < 2.0


# --------------------------------------------------------------------------- memory


def test_10000_calls_keep_memory_flat(server: Any, ubusd: Ubusd, libs: UbusLibs) -> None:
    payload = {"name": "wan1", "rtt": 12.5, "n": 2**40, "tags": ["a", "b"], "t": {"up": True}}

    async def main() -> dict[str, float]:
        async with Ubus(str(ubusd.sock), libs=libs, reconnect=False) as bus:

            async def batch(n: int) -> list[float]:
                lat = []
                for i in range(n):
                    t0 = time.perf_counter()
                    method = "echo" if i % 2 else "aecho"  # sync and deferred handlers
                    assert await bus.call(OBJ, method, dict(payload, i=i)) == dict(payload, i=i)
                    lat.append(time.perf_counter() - t0)
                    if i % 100 == 0:
                        await bus.call(OBJ, "emit", {"event": "pytest.mem", "data": payload})
                return lat

            await batch(2000)  # warm up: allocator arenas, caches
            srv0 = (await bus.call(OBJ, "rss"))["rss_kb"]
            me0 = rss_kb()
            start = time.perf_counter()
            lat = await batch(10_000)
            elapsed = time.perf_counter() - start
            srv1 = (await bus.call(OBJ, "rss"))["rss_kb"]
            me1 = rss_kb()
            lat.sort()
            return {
                "rate": 10_000 / elapsed,
                "p50": lat[len(lat) // 2] * 1000,
                "p99": lat[int(len(lat) * 0.99)] * 1000,
                "srv0": srv0,
                "srv1": srv1,
                "me0": me0,
                "me1": me1,
            }

    r = asyncio.run(main())
    print(
        f"\n10000 calls: {r['rate']:.0f} calls/s, p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms;"
        f" server RSS {r['srv0']} -> {r['srv1']} kB, client RSS {r['me0']} -> {r['me1']} kB"
    )
    assert r["srv1"] - r["srv0"] < 512, "server memory grows with calls"
    assert r["me1"] - r["me0"] < 512, "client memory grows with calls"


# --------------------------------------------------------------------------- lifecycle


def test_connect_waits_for_ubusd_then_objects_come_and_go(
    ubus_prefix: Path, libs: UbusLibs, tmp_path: Path
) -> None:
    daemon = Ubusd(ubus_prefix, tmp_path / "late.sock")
    sock = str(daemon.sock)

    def listed() -> list[str]:
        return cli(daemon, "list").stdout.split()

    async def main() -> None:
        with pytest.raises(UbusError) as info:
            await Ubus(sock, libs=libs).connect(timeout=0.3)
        assert info.value.status == UbusStatus.CONNECTION_FAILED

        bus = Ubus(sock, libs=libs, max_backoff=0.1)
        obj = bus.add_object("late.obj", [Method("m", lambda n, a: {"ok": True})])
        heard: list[str] = []
        sub = bus.subscribe("late.ev", lambda t, d: heard.append(t))
        connecting = asyncio.ensure_future(bus.connect(timeout=5))
        await asyncio.sleep(0.3)
        assert not connecting.done()
        await asyncio.to_thread(daemon.start)
        await asyncio.wait_for(connecting, 3)
        try:
            assert obj.registered
            assert await asyncio.to_thread(listed) == ["late.obj"]
            assert await bus.call("late.obj", "m") == {"ok": True}
            with pytest.raises(UbusError) as info:
                bus.add_object("late.obj", [Method("m", lambda n, a: None)])
            assert info.value.status != UbusStatus.OK  # the name is taken
            await asyncio.to_thread(cli, daemon, "send", "late.ev")
            for _ in range(100):
                if heard:
                    break
                await asyncio.sleep(0.01)
            assert heard == ["late.ev"]
            bus.unsubscribe(sub)
            bus.remove_object(obj)
            assert not obj.registered
            assert await asyncio.to_thread(listed) == []
            await asyncio.to_thread(cli, daemon, "send", "late.ev")
            await asyncio.sleep(0.2)
            assert heard == ["late.ev"]

            # close() from inside a method handler: the context is freed after libubus returns
            other = bus.add_object("late.quit", [Method("quit", lambda n, a: bus.close())])
            assert other.registered
            out = await asyncio.to_thread(cli, daemon, "call", "late.quit", "quit")
            assert out.returncode == 0, out.stderr
            await asyncio.sleep(0.05)
            assert not bus.connected
            with pytest.raises(UbusError) as info:
                await bus.call("late.obj", "m")
            assert info.value.status == UbusStatus.CONNECTION_FAILED
            assert await asyncio.to_thread(listed) == []
        finally:
            bus.close()

    try:
        asyncio.run(main())
    finally:
        daemon.kill()


def test_close_answers_every_caller_at_once(
    ubus_prefix: Path, libs: UbusLibs, tmp_path: Path
) -> None:
    """A service that stops (bondingd restarted by procd) must not leave a caller waiting for
    its timeout: a deferred call in progress and a call ubusd already forwarded but nobody
    read both get an answer (Not found) when close() runs, not 10 s later."""
    daemon = Ubusd(ubus_prefix, tmp_path / "close.sock")
    daemon.start()
    sock = str(daemon.sock)

    def caller(method: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(ubus_prefix / "bin/ubus"), "-s", sock, "-t", "10", "call", "close.obj", method],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(ubus_prefix),
        )  # fmt: skip

    async def main() -> list[tuple[int, str, float]]:
        bus = Ubus(sock, libs=libs)
        entered = asyncio.Event()

        async def hang(name: str, args: dict[str, Any]) -> None:
            entered.set()
            await asyncio.Event().wait()

        bus.add_object("close.obj", [Method("hang", hang), Method("echo", lambda n, a: a)])
        await bus.connect(timeout=5)
        callers = [caller("hang")]
        await asyncio.wait_for(entered.wait(), 5)
        # the loop is busy (here: blocked) while a second call comes: it waits in our socket
        callers.append(caller("echo"))
        fd = bus._c.sock.fd
        waiting = ctypes.c_int(0)
        deadline = time.monotonic() + 5
        while waiting.value == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
            fcntl.ioctl(fd, termios.FIONREAD, waiting)
        assert waiting.value > 0, "ubusd never forwarded the second call"
        t0 = time.monotonic()
        bus.close()
        out = []
        for p in callers:
            _, err = await asyncio.to_thread(p.communicate, timeout=15)
            out.append((p.returncode, err, time.monotonic() - t0))
        return out

    try:
        answers = asyncio.run(main())
    finally:
        daemon.kill()
    for rc, err, after in answers:
        assert rc != 0 and "Not found" in err, (rc, err)
        assert after < 3, f"a caller waited {after:.1f} s after close()"  # sanity limit


def test_repeated_ubusd_restarts_leak_nothing(
    ubus_prefix: Path, libs: UbusLibs, tmp_path: Path
) -> None:
    daemon = Ubusd(ubus_prefix, tmp_path / "flap.sock")
    daemon.start()

    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    async def main() -> list[float]:
        reconnected = asyncio.Event()
        took = []
        async with Ubus(
            str(daemon.sock), libs=libs, max_backoff=0.05, on_reconnect=reconnected.set
        ) as bus:
            bus.add_object("flap.obj", [Method("n", lambda n, a: {"n": a["n"]})])
            bus.subscribe("flap.*", lambda t, d: None)
            assert await bus.call("flap.obj", "n", {"n": 0}) == {"n": 0}
            before = fds()
            for i in range(1, 6):
                reconnected.clear()
                await asyncio.to_thread(daemon.kill)
                await asyncio.sleep(0.25)  # several failed reconnect attempts meanwhile
                assert not bus.connected
                await asyncio.to_thread(daemon.start)
                t0 = time.monotonic()
                await asyncio.wait_for(reconnected.wait(), 3)
                took.append(time.monotonic() - t0)
                assert await bus.call("flap.obj", "n", {"n": i}) == {"n": i}
            assert fds() == before, "file descriptors leak across reconnects"
        return took

    try:
        took = asyncio.run(main())
    finally:
        daemon.kill()
    print(f"\nreconnect after ubusd restart: {', '.join(f'{t * 1000:.0f}' for t in took)} ms")
    assert max(took) < 2.0
