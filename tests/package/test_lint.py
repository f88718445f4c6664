"""Every shell file of the feed passes shellcheck (busybox dialect when this shellcheck has it,
else POSIX sh) and `shfmt -sr -s -d`."""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

from .conftest import REPO


def shell_files() -> list[Path]:
    out = [REPO / "sdk-build.sh"]
    for p in sorted((REPO / "package").rglob("*")):
        if p.is_file() and p.read_bytes()[:9] == b"#!/bin/sh":
            out.append(p)
    return out


FILES = shell_files()
IDS = [p.relative_to(REPO).as_posix() for p in FILES]


def test_the_shell_files_are_found() -> None:
    names = set(IDS)
    for f in ("package/bonding/files/bonding.init", "package/bonding/files/bonding.iface",
              "package/bonding/files/bonding.defaults", "package/bonding-usb/files/bonding-usb.net",
              "package/bonding-usb/files/bonding-usb.usb", "package/bonding/files/hook.example",
              "sdk-build.sh"):
        assert f in names


@cache
def shellcheck_dialect() -> str:
    """busybox when this shellcheck knows it (0.10+), else sh."""
    r = subprocess.run(["shellcheck", "-s", "busybox", "-"], input="true\n", text=True,
                       capture_output=True, timeout=30)
    return "busybox" if r.returncode == 0 else "sh"


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_shellcheck(path: Path) -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (Debian: apt-get install shellcheck)")
    r = subprocess.run(["shellcheck", "-s", shellcheck_dialect(), str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_shfmt(path: Path) -> None:
    if shutil.which("shfmt") is None:
        pytest.skip("shfmt is not installed (Debian: apt-get install shfmt)")
    r = subprocess.run(["shfmt", "-sr", "-s", "-d", str(path)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
