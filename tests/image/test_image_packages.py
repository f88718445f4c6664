"""For each flag, the package list holds exactly the packages that flag needs.  The expectations
are written here, independently of the table in bonding/image/packages.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import generate

BASE = ["bonding", "luci-app-bonding", "sing-box"]

# flag → the packages it must add (checked against the release branches' Makefiles)
EXPECTED = {
    "--usb-modem": {"bonding-usb", "kmod-usb-net-cdc-ether", "kmod-usb-net-rndis",
                    "kmod-usb-net-cdc-ncm", "usb-modeswitch"},
    "--quectel": {"bonding-usb", "kmod-usb-net-cdc-mbim", "kmod-usb-serial-option", "umbim"},
    "--android-tethering": {"bonding-usb", "kmod-usb-net-rndis", "kmod-usb-net-cdc-ncm",
                            "kmod-usb-net-cdc-ether"},
    "--ios-tethering": {"bonding-usb", "kmod-usb-net-ipheth", "usbmuxd", "libimobiledevice"},
    "--usb-ethernet": {"bonding-usb", "kmod-usb-net-rtl8152", "kmod-usb-net-asix-ax88179",
                       "kmod-usb-net-cdc-ether"},
    "--diag-tools": {"tcpdump", "mtr-nojson", "ss", "kmod-inet-mptcp-diag", "ethtool", "curl",
                     "htop"},
    "--perf-tools": {"iperf3", "mptcpize"},
}
RELEASES = ["24.10", "25.12"]


@pytest.mark.parametrize("release", RELEASES)
def test_no_flag_gives_the_base(tmp_path: Path, release: str) -> None:
    g = generate(tmp_path, ["--release", release])
    assert g.rc == 0
    assert g.packages() == BASE


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("flag", sorted(EXPECTED))
def test_each_flag_adds_exactly_its_packages(tmp_path: Path, flag: str, release: str) -> None:
    g = generate(tmp_path, [flag, "--release", release])
    assert g.rc == 0
    pkgs = g.packages()
    assert len(pkgs) == len(set(pkgs)), "a package listed twice"
    assert pkgs[:3] == BASE
    assert set(pkgs) - set(BASE) == EXPECTED[flag]
    assert g.asu()["packages"] == pkgs  # ASU asks for the same list


@pytest.mark.parametrize("release", RELEASES)
def test_all_flags_together_is_the_union(tmp_path: Path, release: str) -> None:
    g = generate(tmp_path, [*EXPECTED, "--release", release])
    assert g.rc == 0
    pkgs = g.packages()
    assert len(pkgs) == len(set(pkgs))
    assert set(pkgs) == set(BASE).union(*EXPECTED.values())


@pytest.mark.parametrize("release", RELEASES)
def test_no_luci_removes_luci_and_leaves_out_the_app(tmp_path: Path, release: str) -> None:
    g = generate(tmp_path, ["--no-luci", "--release", release])
    assert g.rc == 0
    assert g.packages() == ["bonding", "sing-box", "-luci"]


def test_luci_lang(tmp_path: Path) -> None:
    g = generate(tmp_path, ["--luci-lang", "de"])
    assert g.rc == 0
    assert g.packages() == [*BASE, "luci-i18n-base-de"]


@pytest.mark.parametrize("release", RELEASES)
def test_proxy_sing_box(tmp_path: Path, release: str) -> None:
    g = generate(tmp_path, ["--proxy", "sing-box", "--release", release])
    assert g.rc == 0
    assert g.packages() == ["bonding", "luci-app-bonding", "sing-box"]
    assert "u set \"bonding.$g.proxy=\"'sing-box'" in g.script.read_text()


@pytest.mark.parametrize("release", RELEASES)
def test_proxy_shadowsocks_libev_has_no_openwrt_package(tmp_path: Path, release: str,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    g = generate(tmp_path, ["--proxy", "shadowsocks-libev", "--release", release],
                 capsys=capsys)
    assert g.rc == 2
    assert "shadowsocks-libev is not packaged for OpenWrt 24.10 or 25.12" in g.stderr
    assert not (tmp_path / "out").exists()
