"""Shared helpers for the bonding-image tests: generate outputs, run the first-boot script in a
scratch root under busybox ash with a `uci` on PATH (the recording stand-in, or the real one from
OWRT_PREFIX), and read the resulting config back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from bonding import uci
from bonding.image import cli
from bonding.server.model import Client, ServerConfig, client_uci

HERE = Path(__file__).resolve().parent
PYTHON_DIR = HERE.parent.parent / "python"
BUSYBOX = shutil.which("busybox")
# the commands the script may use besides shell builtins; each is busybox's applet
APPLETS = ("logger", "sed", "chmod")
# and those of OpenWrt's boot that runs it (first_boot)
BOOT_APPLETS = ("ls", "rm")

# OpenWrt 24.10's first-boot network config of a DSA router with four LAN ports and a WAN port
# (config_generate from board.json), and the firewall4 default config (rules trimmed).
NETWORK_DSA = """
config interface 'loopback'
\toption device 'lo'
\toption proto 'static'
\toption ipaddr '127.0.0.1'
\toption netmask '255.0.0.0'

config globals 'globals'
\toption ula_prefix 'fd12:3456:789a::/48'
\toption packet_steering '1'

config device
\toption name 'br-lan'
\toption type 'bridge'
\tlist ports 'lan1'
\tlist ports 'lan2'
\tlist ports 'lan3'
\tlist ports 'lan4'

config interface 'lan'
\toption device 'br-lan'
\toption proto 'static'
\toption ipaddr '192.168.1.1'
\toption netmask '255.255.255.0'
\toption ip6assign '60'

config interface 'wan'
\toption device 'wan'
\toption proto 'dhcp'

config interface 'wan6'
\toption device 'wan'
\toption proto 'dhcpv6'
"""

# x86/64: eth0 is the LAN (in br-lan), eth1 the WAN, further NICs unassigned.
NETWORK_X86 = NETWORK_DSA.replace("\tlist ports 'lan1'\n\tlist ports 'lan2'\n"
                                  "\tlist ports 'lan3'\n\tlist ports 'lan4'\n",
                                  "\tlist ports 'eth0'\n").replace("'wan'\n\toption proto",
                                                                   "'eth1'\n\toption proto")

FIREWALL = """
config defaults
\toption syn_flood '1'
\toption input 'REJECT'
\toption output 'ACCEPT'
\toption forward 'REJECT'

config zone
\toption name 'lan'
\tlist network 'lan'
\toption input 'ACCEPT'
\toption output 'ACCEPT'
\toption forward 'ACCEPT'

config zone
\toption name 'wan'
\tlist network 'wan'
\tlist network 'wan6'
\toption input 'REJECT'
\toption output 'ACCEPT'
\toption forward 'REJECT'
\toption masq '1'
\toption mtu_fix '1'

config forwarding
\toption src 'lan'
\toption dest 'wan'

config rule
\toption name 'Allow-DHCP-Renew'
\toption src 'wan'
\toption proto 'udp'
\toption dest_port '68'
\toption target 'ACCEPT'
\toption family 'ipv4'
"""

# what `bonding-server add-client home` prints (bonding.server.model.client_uci, as the CLI
# does) for a shadowsocks-libev server at 203.0.113.10
CLIENT_TEXT = client_uci(
    Client(name="home", port=65101, key="Zm9vYmFyYmF6cXV4MTIzNA", created=0.0),
    ServerConfig(public_address="203.0.113.10", systemd=False, user="nobody",
                 proxy="shadowsocks-libev"))

IMAGE_ARGS = ["--target", "mediatek/filogic", "--profile", "glinet_gl-mt6000"]


@dataclass
class Generated:
    out: Path
    rc: int
    stdout: str
    stderr: str

    @property
    def script(self) -> Path:
        return self.out / "99-bonding-setup"

    def packages(self) -> list[str]:
        return (self.out / "packages.txt").read_text().split()

    def asu(self) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.out / "asu-request.json").read_text())
        return data


def generate(tmp: Path, args: Sequence[str], *, client_text: str | None = CLIENT_TEXT,
             image_args: Sequence[str] = IMAGE_ARGS,
             capsys: pytest.CaptureFixture[str] | None = None) -> Generated:
    """Run bonding-image in-process (main()) with --client from `client_text` (when given)."""
    out = tmp / "out"
    argv = list(args) + list(image_args) + ["--output", str(out)]
    if client_text is not None:
        cf = tmp / "client.txt"
        cf.write_text(client_text)
        argv = ["--client", str(cf), *argv]
    try:
        rc = cli.main(argv)
    except SystemExit as e:
        rc = int(e.code) if isinstance(e.code, int) else 1
    so, se = ("", "")
    if capsys is not None:
        so, se = capsys.readouterr()
    return Generated(out, rc, so, se)


def run_cli(args: Sequence[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """bonding-image as a separate process (what a user runs)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PYTHON_DIR) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "bonding.image.cli", *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=60)


@dataclass
class Root:
    """A scratch root: <root>/etc/config holds the router's config files."""

    path: Path
    bin: Path
    uci_kind: str  # "fake" or "real"
    log: Path

    @property
    def conf(self) -> Path:
        return self.path / "etc" / "config"

    def write(self, package: str, text: str) -> None:
        (self.conf / package).write_text(text)

    def read(self, package: str) -> uci.Package:
        return uci.loads((self.conf / package).read_bytes(), package)

    def snapshot(self) -> dict[str, tuple[bytes, int]]:
        return {p.name: (p.read_bytes(), p.stat().st_mode & 0o7777)
                for p in sorted(self.conf.iterdir()) if p.is_file()}

    def run(self, script: Path) -> subprocess.CompletedProcess[str]:
        env = {"PATH": str(self.bin), "IPKG_INSTROOT": str(self.path),
               "FAKE_UCI_SAVEDIR": str(self.path / "tmp" / ".uci"),
               "FAKE_UCI_LOG": str(self.log), "LANG": "C"}
        assert BUSYBOX is not None
        return subprocess.run([BUSYBOX, "ash", str(script)], cwd=self.path, env=env,
                              capture_output=True, text=True, timeout=120)

    def first_boot(self, script: Path) -> subprocess.CompletedProcess[str]:
        """Run it as OpenWrt's boot does (uci_apply_defaults in /lib/functions/system.sh):
        sourced in a subshell from /etc/uci-defaults, and deleted when it returns 0."""
        d = self.path / "etc" / "uci-defaults"
        d.mkdir(exist_ok=True)
        boot_bin = self.path.parent / "boot-bin"
        if not boot_bin.exists():
            boot_bin.mkdir()
            for applet in BOOT_APPLETS:
                (boot_bin / applet).symlink_to(BUSYBOX or "busybox")
        shutil.copy(script, d / script.name)
        env = {"PATH": f"{self.bin}:{boot_bin}", "IPKG_INSTROOT": str(self.path),
               "FAKE_UCI_SAVEDIR": str(self.path / "tmp" / ".uci"),
               "FAKE_UCI_LOG": str(self.log), "LANG": "C"}
        assert BUSYBOX is not None
        boot = ('cd "$1" || exit 1\n'
                'for file in $(ls); do ( . "./$file" ) && rm -f "$file"; done\n')
        return subprocess.run([BUSYBOX, "ash", "-c", boot, "boot", str(d)], cwd=self.path,
                              env=env, capture_output=True, text=True, timeout=120)

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line)["argv"] for line in self.log.read_text().splitlines()]


def make_root(base: Path, uci_kind: str = "fake") -> Root:
    if BUSYBOX is None:
        pytest.skip("busybox is not installed (Debian: apt-get install busybox)")
    root = base / "root"
    (root / "etc" / "config").mkdir(parents=True)
    (root / "tmp" / ".uci").mkdir(parents=True)
    bindir = base / "bin"
    bindir.mkdir()
    for applet in APPLETS:
        (bindir / applet).symlink_to(BUSYBOX)
    wrapper = bindir / "uci"
    if uci_kind == "fake":
        wrapper.write_text(
            "#!/bin/sh\n"
            f"PYTHONPATH='{PYTHON_DIR}' exec '{sys.executable}' '{HERE / 'fake_uci.py'}' \"$@\"\n")
    else:
        real = owrt_uci()
        wrapper.write_text(f"#!/bin/sh\nexec '{real}' -C '' -t '{root}/tmp/.uci' \"$@\"\n")
    wrapper.chmod(0o755)
    return Root(root, bindir, uci_kind, base / "uci.log")


def owrt_uci() -> Path:
    """The real uci from OWRT_PREFIX, or skip saying why."""
    raw = os.environ.get("OWRT_PREFIX", "")
    if not raw:
        pytest.skip("OWRT_PREFIX is not set: the real uci is not available, so the script ran "
                    "with the stand-in only (build uci outside the repo, e.g. /opt/owrt)")
    real = Path(raw) / "bin" / "uci"
    if not real.is_file():
        pytest.skip(f"OWRT_PREFIX={raw} has no bin/uci")
    for pkg in ("network", "firewall", "bonding", "bonding_secrets"):
        delta = Path("/tmp/.uci") / pkg
        if delta.is_file() and delta.stat().st_size > 0:
            pytest.skip(f"{delta} holds uncommitted changes, which libuci would apply")
    return real


@pytest.fixture(params=["fake", "real"])
def any_root(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Root]:
    """A scratch root with the stand-in uci, and again with the real one (OWRT_PREFIX)."""
    yield make_root(tmp_path, request.param)


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Root]:
    yield make_root(tmp_path, "fake")


def sections(pkg: uci.Package) -> dict[str, tuple[str, dict[str, uci.OptionValue]]]:
    """name (or @type[i]) → (type, options): a package as comparable data."""
    return {s.ref: (s.type, dict(s.options)) for s in pkg.sections}
