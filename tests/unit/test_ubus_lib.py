"""Library lookup, struct mirrors and status codes of the ubus binding (no OpenWrt needed)."""

from __future__ import annotations

import ctypes
import ctypes.util
from pathlib import Path

import pytest

from bonding.ubus import UbusError, UbusLibraryError, UbusStatus, _lib
from bonding.ubus._lib import candidate_paths


def test_candidates_cover_openwrt_places_and_prefix(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "libubus.so.20250102").write_bytes(b"")
    (lib / "libubus.so.20230605").write_bytes(b"")
    paths = candidate_paths("libubus.so", environ={"OWRT_PREFIX": str(tmp_path)})
    # $OWRT_PREFIX/lib first, the plain name then versioned names (newest ABI first)
    assert paths[:3] == [
        str(lib / "libubus.so"),
        str(lib / "libubus.so.20250102"),
        str(lib / "libubus.so.20230605"),
    ]
    assert "/lib/libubus.so" in paths
    assert "/usr/lib/libubus.so" in paths
    assert paths.index("/lib/libubus.so") < paths.index("/usr/lib/libubus.so")


def test_explicit_path_is_the_only_candidate(tmp_path: Path) -> None:
    f = tmp_path / "libubus.so.1"
    assert candidate_paths("libubus.so", str(f), environ={"OWRT_PREFIX": "/x"}) == [str(f)]
    env = {"BONDING_LIBUBUS": str(tmp_path)}
    assert candidate_paths("libubus.so", None, "BONDING_LIBUBUS", environ=env) == [
        str(tmp_path / "libubus.so")
    ]


def test_missing_library_error_names_every_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_lib, "SYSTEM_DIRS", ())
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    monkeypatch.setenv("OWRT_PREFIX", str(tmp_path / "nowhere"))
    bogus = tmp_path / "libubox.so"
    bogus.write_bytes(b"not an ELF file")
    monkeypatch.setenv("BONDING_LIBUBOX", str(bogus))
    with pytest.raises(UbusLibraryError) as info:
        _lib.load("/nonexistent/libubus.so.7")
    msg = str(info.value)
    assert "libubox" in msg
    assert str(bogus) in msg  # tried, and why it failed
    assert "find_library('ubox')" in msg
    assert isinstance(info.value, OSError)


def test_missing_libubus_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    monkeypatch.setenv("BONDING_LIBUBOX", "/nonexistent/libubox.so")
    with pytest.raises(UbusLibraryError, match=r"/nonexistent/libubox.so \(absent\)"):
        _lib.load(str(tmp_path / "libubus.so"))


def test_struct_mirrors_follow_the_platform() -> None:
    p = ctypes.sizeof(ctypes.c_void_p)
    # list_head = 2 pointers; ubus_method: name, handler, 2 longs, policy, int (+ padding)
    assert ctypes.sizeof(_lib.ListHead) == 2 * p
    assert ctypes.sizeof(_lib.UbusMethod) == 6 * p
    assert ctypes.sizeof(_lib.BlobmsgPolicy) == 2 * p
    assert _lib.UbusMsghdr.peer.offset == 4 and ctypes.sizeof(_lib.UbusMsghdr) == 8
    assert _lib.UbusEventHandler.cb.offset == ctypes.sizeof(_lib.UbusObject)
    ctx = _lib.context_layouts()[0]
    assert ctx.sock.offset == ctypes.sizeof(_lib.ListHead) * 2 + ctypes.sizeof(_lib.AvlTree)
    if p == 8:
        assert _lib.context_layouts() == (_lib.UbusContext64,)
    else:
        assert len(_lib.context_layouts()) == 2


def test_status_codes_and_error() -> None:
    assert {s.name: int(s) for s in UbusStatus} == {
        "OK": 0,
        "INVALID_COMMAND": 1,
        "INVALID_ARGUMENT": 2,
        "METHOD_NOT_FOUND": 3,
        "NOT_FOUND": 4,
        "NO_DATA": 5,
        "PERMISSION_DENIED": 6,
        "TIMEOUT": 7,
        "NOT_SUPPORTED": 8,
        "UNKNOWN_ERROR": 9,
        "CONNECTION_FAILED": 10,
        "NO_MEMORY": 11,
        "PARSE_ERROR": 12,
        "SYSTEM_ERROR": 13,
    }
    err = UbusError(2, "name: unknown path")
    assert err.status is UbusStatus.INVALID_ARGUMENT
    assert str(err) == "name: unknown path: Invalid argument"
    assert str(UbusError(UbusStatus.TIMEOUT)) == "Request timed out"
    odd = UbusError(77)
    assert odd.status == 77 and "77" in str(odd)
