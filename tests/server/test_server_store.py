"""The state directory: atomic, 0600 records that a crash cannot leave half-written (no root)."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import stat
import time
from pathlib import Path

import pytest

from bonding.server import store as store_mod
from bonding.server.model import Client, ServerError, UsageError
from bonding.server.store import Store, atomic_write

OLD = Client(name="lab", port=65101, key="old-key-0123456789abcdef", rate_mbit=20.0, created=1.0)
NEW = Client(name="lab", port=65102, key="new-key-0123456789abcdef" * 40, rate_mbit=40.0,
             created=2.0)


def _crash_in_child(store: Store, client: Client, where: str) -> int:
    """Fork; the child writes ``client`` and dies (os._exit) at ``where``; returns its status."""
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery from here on, only os._exit
        try:
            if where == "before-rename":
                os.replace = lambda *a, **k: os._exit(9)  # type: ignore[assignment]
            elif where == "mid-write":
                real_write = os.write

                def half(fd: int, data: bytes | memoryview) -> int:
                    real_write(fd, bytes(data)[: len(data) // 2])
                    os._exit(9)
                os.write = half  # type: ignore[assignment]
            store.write(client)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.parametrize("where", ["mid-write", "before-rename"])
def test_crash_leaves_the_old_record_whole(tmp_path: Path, where: str) -> None:
    s = Store(tmp_path / "state")
    s.write(OLD)
    before = s.record_path("lab").read_bytes()
    assert _crash_in_child(s, NEW, where) == 9
    assert s.record_path("lab").read_bytes() == before  # byte for byte
    assert s.load("lab") == OLD
    leftovers = [p.name for p in s.clients_dir.iterdir() if p.name != "lab.json"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".tmp-lab.json.")
    assert s.names() == ["lab"]  # readers ignore the stray temporary file
    with s.lock():  # the next writer removes it (its writer is dead)
        pass
    assert sorted(p.name for p in s.clients_dir.iterdir()) == ["lab.json"]


def test_crash_on_first_write_leaves_no_record(tmp_path: Path) -> None:
    s = Store(tmp_path / "state")
    s.ensure_dirs()
    assert _crash_in_child(s, NEW, "before-rename") == 9
    assert s.names() == []
    with pytest.raises(UsageError, match="unknown client 'lab'"):
        s.load("lab")


def test_records_are_0600_in_0700_dirs_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        s = Store(tmp_path / "state")
        s.write(OLD)
    finally:
        os.umask(old)
    assert stat.S_IMODE(s.record_path("lab").stat().st_mode) == 0o600
    for d in (s.root, s.clients_dir, s.run_dir):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700


def test_write_replaces_whole_and_fsyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(store_mod.os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    s = Store(tmp_path / "state")
    s.write(OLD)
    s.write(NEW)
    assert s.load("lab") == NEW
    assert len(synced) >= 4  # the file and its directory, each time


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f.json"
    atomic_write(path, b"old")

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(store_mod.os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        atomic_write(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_damaged_record_is_named_with_what_to_do(tmp_path: Path) -> None:
    s = Store(tmp_path / "state")
    s.write(OLD)
    s.record_path("lab").write_text('{"name": "lab", "port": ')
    with pytest.raises(ServerError, match=r"lab.json is damaged .*remove-client lab") as e:
        s.clients()
    assert e.value.exit_code == 1
    s.record_path("lab").write_text(json.dumps({**OLD.to_json(), "name": "other"}))
    with pytest.raises(ServerError, match="names 'other', not 'lab'"):
        s.load("lab")


def test_only_record_files_are_clients(tmp_path: Path) -> None:
    s = Store(tmp_path / "state")
    s.write(OLD)
    for junk in ("notes.txt", "bad-name.json", ".hidden.json", "lab.json~"):
        (s.clients_dir / junk).write_text("x")
    assert s.names() == ["lab"]


def test_supervisor_pid_needs_a_live_lock_holder(tmp_path: Path) -> None:
    s = Store(tmp_path / "state")
    s.ensure_dirs()
    assert s.supervisor_pid() is None
    s.pid_file.write_text("12345\n")
    assert s.supervisor_pid() is None  # a stale file: nobody holds the lock
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # a stand-in supervisor: holds the lock until killed
        try:
            fd = os.open(s.pid_file, os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(ready_w, b"x")
            time.sleep(30)
        finally:
            os._exit(0)
    try:
        os.close(ready_w)
        assert os.read(ready_r, 1) == b"x"
        assert s.supervisor_pid() == 12345
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(ready_r)
    assert s.supervisor_pid() is None
