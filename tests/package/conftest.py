"""Fixtures for the OpenWrt package tests: the shell scripts run under Debian's busybox ash in a
scratch root, with recording stand-ins for uci, ubus, logger and the init scripts.

PATH holds only the stand-ins and busybox's applets (as on OpenWrt).  `uci` is a stand-in
(tests/package/fakes/uci: libuci's file format through bonding.uci, changes staged until
commit) and, when OWRT_PREFIX has a real uci, the same tests run once more with the real one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import uciconf

REPO = Path(__file__).resolve().parents[2]
FAKES = Path(__file__).resolve().parent / "fakes"
PKG = REPO / "package"
SHIPPED_CONFIG = PKG / "bonding" / "files" / "bonding.config"

STAND_INS = ("ubus", "logger")  # plus uci; the init scripts live in ROOT/etc/init.d


@pytest.fixture(scope="module")
def feed_key_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The signing key the feed builds make goes here, never to ~/.config."""
    d = tmp_path_factory.mktemp("feed-key")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BONDING_FEED_KEY_DIR", str(d))
        yield d


def _busybox() -> str | None:
    return shutil.which("busybox")


def _uci_backends() -> list[str]:
    backends = ["stand-in"]
    prefix = os.environ.get("OWRT_PREFIX", "")
    if prefix and (Path(prefix) / "bin" / "uci").is_file():
        backends.append("real")
    return backends


@pytest.fixture(scope="session")
def busybox() -> str:
    bb = _busybox()
    if bb is None:
        pytest.skip("busybox is not installed (Debian: apt-get install busybox): the scripts run "
                    "under busybox ash as on OpenWrt")
    return bb


@pytest.fixture(scope="session")
def applets(busybox: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of busybox applet links (awk, sed, stty ...), none of the host's tools."""
    d = tmp_path_factory.mktemp("busybox-bin")
    names = subprocess.run([busybox, "--list"], capture_output=True, text=True,
                           check=True).stdout.split()
    for name in names:
        if name not in STAND_INS and name != "uci" and "/" not in name:
            (d / name).symlink_to(busybox)
    return d


def _wrapper(path: Path, script: Path, *args: str) -> None:
    pre = "".join(f" {a}" for a in args)
    path.write_text(f"#!/bin/sh\nexec {sys.executable} -S {script}{pre} \"$@\"\n")
    path.chmod(0o755)


@dataclass
class Sandbox:
    """A scratch root (ROOT), a config dir (ROOT/etc/config) and the stand-ins' logs."""

    root: Path
    bin: Path
    applets: Path
    busybox: str
    uci_backend: str
    rec_log: Path
    uci_log: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def confdir(self) -> Path:
        return self.root / "etc" / "config"

    def write_config(self, package: str, text: str) -> None:
        (self.confdir / package).write_text(text)

    def config(self, package: str) -> str:
        p = self.confdir / package
        return p.read_text() if p.exists() else ""

    def configs(self) -> dict[str, str]:
        return {p.name: p.read_text() for p in sorted(self.confdir.iterdir()) if p.is_file()}

    def run(self, script: Path, env: Mapping[str, str] | None = None,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a hotplug/uci-defaults script the way hotplug-call does: sourced by ash, here
        `busybox ash SCRIPT` with the event's environment only."""
        full = dict(self.env)
        full.update(env or {})
        return subprocess.run([self.busybox, "ash", str(script)], env=full, capture_output=True,
                              text=True, timeout=timeout, cwd=self.root, start_new_session=True)

    def records(self, name: str | None = None) -> list[list[str]]:
        if not self.rec_log.exists():
            return []
        rows = [json.loads(x) for x in self.rec_log.read_text().splitlines()]
        return [r for r in rows if name is None or r[0] == name]

    def uci_calls(self) -> list[list[str]]:
        if not self.uci_log.exists():
            return []
        return [json.loads(x) for x in self.uci_log.read_text().splitlines()]

    def uci_writes(self) -> list[list[str]]:
        """The calls that change something (set, add_list, del_list, delete, commit), -q left
        out."""
        out = []
        for call in self.uci_calls():
            args = [a for a in call if a != "-q"]
            if args and args[0] in ("set", "add_list", "del_list", "delete", "commit"):
                out.append(args)
        return out

    def reset_logs(self) -> None:
        for p in (self.rec_log, self.uci_log):
            if p.exists():
                p.unlink()

    def logs(self) -> list[str]:
        """What went to logger -t bonding: 'priority message'."""
        out = []
        for r in self.records("logger"):
            args = r[1:]
            prio = args[args.index("-p") + 1] if "-p" in args else ""
            out.append(f"{prio} {args[-1]}")
        return out


@pytest.fixture(params=_uci_backends())
def sandbox(request: pytest.FixtureRequest, tmp_path: Path, applets: Path,
            busybox: str) -> Iterator[Sandbox]:
    root = tmp_path / "root"
    for d in ("etc/config", "etc/init.d", "var/run", "sys", "dev"):
        (root / d).mkdir(parents=True)
    fakebin = tmp_path / "bin"
    fakebin.mkdir()
    uci_script = FAKES / ("uci" if request.param == "stand-in" else "uci-real")
    _wrapper(fakebin / "uci", uci_script)
    for name in STAND_INS:
        _wrapper(fakebin / name, FAKES / "record", "--as", name)
    for svc in ("network", "firewall", "bonding"):
        _wrapper(root / "etc" / "init.d" / svc, FAKES / "record", "--as", f"init.d/{svc}")
    sb = Sandbox(root=root, bin=fakebin, applets=applets, busybox=busybox,
                 uci_backend=request.param, rec_log=tmp_path / "rec.log",
                 uci_log=tmp_path / "uci.log")
    sb.env = {
        "PATH": f"{fakebin}:{applets}",
        "BONDING_ROOT": str(root),
        "REC_LOG": str(sb.rec_log),
        "FAKE_UCI_LOG": str(sb.uci_log),
        "FAKE_UCI_CONFDIR": str(sb.confdir),
        "FAKE_UCI_SAVEDIR": str(tmp_path / "uci-save"),
        "PYTHONPATH": str(REPO / "python"),
        "OWRT_PREFIX": os.environ.get("OWRT_PREFIX", ""),
        "LD_LIBRARY_PATH": os.environ.get("LD_LIBRARY_PATH", ""),
    }
    try:
        yield sb
    finally:
        # the modem script leaves background jobs: end any process still in a session we made
        _kill_leftovers(root)


def _kill_leftovers(root: Path) -> None:
    """End the processes still running with BONDING_ROOT=root (ours only, by their id)."""
    mine = f"BONDING_ROOT={root}".encode()
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            env = (p / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if mine in env:
            with contextlib.suppress(OSError):
                os.kill(int(p.name), signal.SIGKILL)


def make_executable(path: Path) -> None:
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


# --- UCI config texts -----------------------------------------------------------------------

NETWORK = uciconf.LOOPBACK + """
config interface 'lan'
	option device 'br-lan'
	option proto 'static'
	option ipaddr '192.0.2.1'
	option netmask '255.255.255.0'

config interface 'wan'
	option device 'eth1'
	option proto 'dhcp'
	option metric '10'

config interface 'wanb'
	option device 'eth2'
	option proto 'dhcp'
	option metric '40'
"""

FIREWALL = uciconf.DEFAULTS + uciconf.LAN_ZONE + uciconf.wan_zone(["wan", "wan6"])
