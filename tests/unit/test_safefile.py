"""bonding.safefile: whole-file replacement that follows no planted link (no root needed)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bonding import safefile


def test_write_at_replaces_with_the_mode_and_leaves_no_temp(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("old")
    fd = safefile.open_dir(tmp_path)
    try:
        safefile.write_at(fd, "f", b"new", 0o600)
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_text() == "new"
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_a_link_at_the_target_name_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    d = tmp_path / "d"
    d.mkdir()
    (d / "f").symlink_to(victim)
    fd = safefile.open_dir(d)
    try:
        safefile.write_at(fd, "f", b"key", 0o600)
    finally:
        os.close(fd)
    assert victim.read_text() == "precious" and not (d / "f").is_symlink()


def test_replace_keeps_a_symlink_and_rewrites_its_target(tmp_path: Path) -> None:
    # as libuci's commit does: /etc/config/x -> /elsewhere/x stays a link
    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / "secrets"
    real.write_text("a")
    link = tmp_path / "secrets"
    link.symlink_to(real)
    safefile.replace(link, b"b", 0o600)
    assert link.is_symlink() and real.read_text() == "b"
    assert stat.S_IMODE(real.stat().st_mode) == 0o600


def test_open_dir_refuses_a_symlink_and_a_directory_others_can_write(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "l").symlink_to(tmp_path / "d")
    with pytest.raises(safefile.UnsafeDirError, match="is a symlink"):
        safefile.open_dir(tmp_path / "l")
    (tmp_path / "d").chmod(0o777)
    with pytest.raises(safefile.UnsafeDirError, match=r"writable by others \(mode 0777\)"):
        safefile.open_dir(tmp_path / "d")


def test_subdir_is_made_and_a_link_in_its_place_refused(tmp_path: Path) -> None:
    fd = safefile.open_dir(tmp_path / "out", create=True)
    try:
        os.close(safefile.subdir(fd, "files", "out/files"))
        assert (tmp_path / "out" / "files").is_dir()
        (tmp_path / "out" / "l").symlink_to(tmp_path)
        with pytest.raises(safefile.UnsafeDirError, match="out/l: not a directory of its own"):
            safefile.subdir(fd, "l", "out/l")
    finally:
        os.close(fd)
