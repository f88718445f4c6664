"""The first-boot script, run under busybox ash in a scratch root with a `uci` on PATH: the
resulting config is what the flags ask for, and a second run changes nothing."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from bonding import config, uci

from .conftest import (
    FIREWALL,
    NETWORK_DSA,
    NETWORK_X86,
    Root,
    generate,
    make_root,
    sections,
)

KEY = "Zm9vYmFyYmF6cXV4MTIzNA"
LAN_UNCHANGED = ("interface", {"device": "br-lan", "proto": "static", "ipaddr": "192.168.1.1",
                               "netmask": "255.255.255.0", "ip6assign": "60"})


def _setup(root: Root, tmp: Path, args: list[str], network: str | None = NETWORK_DSA,
           firewall: str | None = FIREWALL, bonding: str | None = None,
           client_text: str | None = None) -> subprocess.CompletedProcess[str]:
    if network is not None:
        root.write("network", network)
    if firewall is not None:
        root.write("firewall", firewall)
    if bonding is not None:
        root.write("bonding", bonding)
    kw = {} if client_text is None else {"client_text": client_text}
    g = generate(tmp, args, **kw)  # type: ignore[arg-type]
    assert g.rc == 0
    res = root.run(g.script)
    assert res.returncode == 0, res.stderr
    return res


def _bonding_config(root: Root) -> config.Config:
    cfg, problems = config.from_sections(root.read("bonding").sections)
    errors = [str(p) for p in problems if p.severity is config.Severity.ERROR]
    assert errors == []
    return cfg


def _rerun_changes_nothing(root: Root, tmp: Path) -> None:
    before = root.snapshot()
    res = root.run(tmp / "out" / "99-bonding-setup")
    assert res.returncode == 0, res.stderr
    assert root.snapshot() == before


def test_dsa_router_one_more_wan_and_usb(any_root: Root, tmp_path: Path) -> None:
    root = any_root
    _setup(root, tmp_path, ["--wan", "lan4", "--usb-modem"])

    net = sections(root.read("network"))
    assert net["@device[0]"] == ("device", {"name": "br-lan", "type": "bridge",
                                            "ports": ("lan1", "lan2", "lan3")})
    assert net["lan"] == LAN_UNCHANGED
    assert net["wan"] == ("interface", {"device": "wan", "proto": "dhcp"})
    assert net["wan6"] == ("interface", {"device": "wan", "proto": "dhcpv6"})
    assert net["wan2"] == ("interface", {"device": "lan4", "proto": "dhcp", "metric": "2"})
    assert list(net) == ["loopback", "globals", "@device[0]", "lan", "wan", "wan6", "wan2"]

    fw = root.read("firewall")
    zones = {s.options["name"]: s.options for s in fw.of_type("zone")}
    assert zones["wan"]["network"] == ("wan", "wan6", "wan2")
    assert zones["lan"]["network"] == ("lan",)
    assert len(fw.sections) == 5  # nothing added or lost

    b = sections(root.read("bonding"))
    assert b == {
        "globals": ("globals", {"enabled": "1", "proxy": "sing-box"}),
        "home": ("server", {"address": "203.0.113.10", "port": "65101",
                            "protocol": "shadowsocks", "cipher": "chacha20-ietf-poly1305",
                            "udp_over_tcp": "0", "enabled": "1"}),
        "usb": ("usb", {"auto_dhcp": "1", "modem_mbim": "0"}),
        "wan": ("path", {"interface": "wan"}),
        "wan2": ("path", {"interface": "wan2"}),
    }
    cfg = _bonding_config(root)
    assert [(s.name, s.address, s.port) for s in cfg.servers] == [("home", "203.0.113.10", 65101)]
    assert [p.interface for p in cfg.paths] == ["wan", "wan2"]

    secrets = root.conf / "bonding_secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert sections(root.read("bonding_secrets")) == {"home": ("server", {"key": KEY})}

    _rerun_changes_nothing(root, tmp_path)


def test_no_wan_flag_keeps_openwrts_wan_and_touches_no_port(any_root: Root,
                                                            tmp_path: Path) -> None:
    root = any_root
    _setup(root, tmp_path, [])
    assert sections(root.read("network")) == sections(_parse("network", NETWORK_DSA))
    assert sections(root.read("firewall")) == sections(_parse("firewall", FIREWALL))
    cfg = _bonding_config(root)
    assert [(p.name, p.interface) for p in cfg.paths] == [("wan", "wan")]
    assert (cfg.usb.auto_dhcp, cfg.usb.modem_mbim) == (False, False)
    _rerun_changes_nothing(root, tmp_path)


def _parse(pkg: str, text: str) -> uci.Package:
    return uci.loads(text, pkg)


def test_wan_flag_naming_the_boards_wan_port_adds_nothing(root: Root, tmp_path: Path) -> None:
    _setup(root, tmp_path, ["--wan", "wan", "--wan", "lan3"])
    net = sections(root.read("network"))
    # 'wan' is the wan interface's device already; lan3 (second --wan) is wan3
    assert "wan2" not in net
    assert net["wan3"] == ("interface", {"device": "lan3", "proto": "dhcp", "metric": "3"})
    assert net["@device[0]"][1]["ports"] == ("lan1", "lan2", "lan4")
    assert [p.name for p in _bonding_config(root).paths] == ["wan", "wan3"]


def test_last_bridge_port_is_not_taken_from_the_lan(root: Root, tmp_path: Path) -> None:
    one_port = NETWORK_DSA.replace("\tlist ports 'lan2'\n\tlist ports 'lan3'\n"
                                   "\tlist ports 'lan4'\n", "")
    res = _setup(root, tmp_path, ["--wan", "lan1"], network=one_port)
    assert "lan1 not made a WAN: it is the last port of br-lan" in res.stderr
    assert sections(root.read("network")) == sections(_parse("network", one_port))
    assert [p.name for p in _bonding_config(root).paths] == ["wan"]
    zones = {s.options["name"]: s.options for s in root.read("firewall").of_type("zone")}
    assert zones["wan"]["network"] == ("wan", "wan6")
    _rerun_changes_nothing(root, tmp_path)


def test_lan_device_without_bridge_is_not_taken(root: Root, tmp_path: Path) -> None:
    plain = NETWORK_DSA.replace("option device 'br-lan'", "option device 'eth0'")
    res = _setup(root, tmp_path, ["--wan", "eth0"], network=plain)
    assert "eth0 not made a WAN: it is the LAN's own device" in res.stderr
    assert sections(root.read("network")) == sections(_parse("network", plain))


def test_x86_unassigned_nic_becomes_wan(root: Root, tmp_path: Path) -> None:
    res = _setup(root, tmp_path, ["--wan", "eth2", "--wan", "eth0"], network=NETWORK_X86)
    net = sections(root.read("network"))
    assert net["wan2"] == ("interface", {"device": "eth2", "proto": "dhcp", "metric": "2"})
    assert "wan3" not in net  # eth0 is the only LAN port
    assert "eth0 not made a WAN: it is the last port of br-lan" in res.stderr
    assert net["@device[0]"][1]["ports"] == ("eth0",)
    assert net["wan"] == ("interface", {"device": "eth1", "proto": "dhcp"})
    assert [p.name for p in _bonding_config(root).paths] == ["wan", "wan2"]


def test_board_without_wan_interface(root: Root, tmp_path: Path) -> None:
    no_wan = NETWORK_DSA.split("config interface 'wan'")[0]
    _setup(root, tmp_path, [], network=no_wan)
    assert _bonding_config(root).paths == ()
    assert sections(root.read("firewall")) == sections(_parse("firewall", FIREWALL))


def test_missing_wan_zone_is_made(root: Root, tmp_path: Path) -> None:
    fw = FIREWALL.replace("\toption name 'wan'\n", "\toption name 'outside'\n")
    _setup(root, tmp_path, ["--wan", "lan2"], firewall=fw)
    zones = [s.options for s in root.read("firewall").of_type("zone")]
    assert zones[-1] == {"name": "wan", "input": "REJECT", "output": "ACCEPT",
                         "forward": "REJECT", "masq": "1", "mtu_fix": "1",
                         "network": ("wan", "wan2")}
    assert len(zones) == 3  # lan, outside, the new wan
    _rerun_changes_nothing(root, tmp_path)


def test_lan_ip_only_when_asked(root: Root, tmp_path: Path) -> None:
    _setup(root, tmp_path, ["--lan-ip", "192.168.4.1/24"])
    lan = sections(root.read("network"))["lan"][1]
    assert (lan["ipaddr"], lan["netmask"]) == ("192.168.4.1", "255.255.255.0")


def test_existing_bonding_config_is_brought_to_the_entry(root: Root, tmp_path: Path) -> None:
    old = """
config globals
\toption log_level 'debug'
\toption proxy 'sing-box'

config server 'vps1'
\toption address '198.51.100.7'

config path 'wan'
\toption device 'eth1'

config usb 'usb'
\toption metric_base '60'
"""
    root.write("bonding_secrets", "config server 'vps1'\n\toption key 'old'\n")
    (root.conf / "bonding_secrets").chmod(0o644)
    res = _setup(root, tmp_path, ["--quectel", "--proxy", "sing-box"], bonding=old)
    assert "removed server 'vps1' from bonding" in res.stderr
    b = sections(root.read("bonding"))
    assert b["@globals[0]"] == ("globals", {"log_level": "debug", "proxy": "sing-box",
                                            "enabled": "1"})
    assert "vps1" not in b
    assert b["wan"] == ("path", {"interface": "wan"})
    assert b["usb"] == ("usb", {"metric_base": "60", "auto_dhcp": "1", "modem_mbim": "1"})
    assert sections(root.read("bonding_secrets")) == {"home": ("server", {"key": KEY})}
    assert stat.S_IMODE((root.conf / "bonding_secrets").stat().st_mode) == 0o600
    cfg = _bonding_config(root)
    assert [s.name for s in cfg.servers] == ["home"]
    assert cfg.globals.proxy == "sing-box"
    _rerun_changes_nothing(root, tmp_path)


def test_key_with_shell_characters_survives(any_root: Root, tmp_path: Path) -> None:
    key = "it's$key`with`\"quotes\"\\and;|&*?~#"
    g = generate(tmp_path, ["--server", "203.0.113.10", "--port", "8388", "--key", key,
                            "--cipher", "aes-256-gcm", "--name", "vps_a"], client_text=None)
    assert g.rc == 0
    any_root.write("network", NETWORK_DSA)
    any_root.write("firewall", FIREWALL)
    res = any_root.run(g.script)
    assert res.returncode == 0, res.stderr
    assert sections(any_root.read("bonding_secrets")) == {"vps_a": ("server", {"key": key})}
    srv = _bonding_config(any_root).servers[0]
    assert (srv.address, srv.port, srv.cipher) == ("203.0.113.10", 8388, "aes-256-gcm")


def test_two_servers_from_two_entries(root: Root, tmp_path: Path) -> None:
    other = tmp_path / "second.json"
    other.write_text('{"name": "backup", "address": "198.51.100.20", "port": 65102, '
                     '"protocol": "shadowsocks", "cipher": "aes-128-gcm", "key": "k2", '
                     '"rate_mbit": 100}')
    _setup(root, tmp_path, ["--client", str(other)])
    cfg = _bonding_config(root)
    assert [(s.name, s.address, s.port, s.cipher) for s in cfg.servers] == [
        ("home", "203.0.113.10", 65101, "chacha20-ietf-poly1305"),
        ("backup", "198.51.100.20", 65102, "aes-128-gcm")]
    assert sections(root.read("bonding_secrets")) == {
        "home": ("server", {"key": KEY}), "backup": ("server", {"key": "k2"})}


def test_script_commits_what_it_sets(root: Root, tmp_path: Path) -> None:
    """Every package the script changes is committed: nothing is left in the save dir."""
    _setup(root, tmp_path, ["--wan", "lan4"])
    assert list((root.path / "tmp" / ".uci").iterdir()) == []
    calls = root.calls()
    assert ["-q", "-c", str(root.conf), "commit", "bonding_secrets"] in calls
    # the script only uses uci for the config files (and chmod for the secrets)
    assert all(c[:3] == ["-q", "-c", str(root.conf)] for c in calls)


def test_real_uci_and_stand_in_agree(tmp_path: Path) -> None:
    results = []
    for kind in ("fake", "real"):
        base = tmp_path / kind
        base.mkdir()
        root = make_root(base, kind)
        _setup(root, base, ["--wan", "lan4", "--wan", "lan2", "--quectel"])
        results.append({p: sections(root.read(p)) for p in
                        ("network", "firewall", "bonding", "bonding_secrets")})
    assert results[0] == results[1]


def test_shellcheck_clean(tmp_path: Path) -> None:
    sc = shutil.which("shellcheck")
    if sc is None:
        pytest.skip("shellcheck is not installed")
    g = generate(tmp_path, ["--wan", "lan4", "--lan-ip", "10.4.0.1/16"])
    assert g.rc == 0
    for f in (g.script, g.out / "imagebuilder.sh"):
        res = subprocess.run([sc, "-s", "sh", str(f)], capture_output=True, text=True,
                             timeout=60)
        assert res.returncode == 0, res.stdout


def test_first_boot_sources_it_and_deletes_it(any_root: Root, tmp_path: Path) -> None:
    any_root.write("network", NETWORK_DSA)
    any_root.write("firewall", FIREWALL)
    g = generate(tmp_path, ["--wan", "lan4"])
    res = any_root.first_boot(g.script)
    assert res.returncode == 0, res.stderr
    assert not (any_root.path / "etc" / "uci-defaults" / "99-bonding-setup").exists()
    net = sections(any_root.read("network"))
    assert net["wan2"] == ("interface", {"device": "lan4", "proto": "dhcp", "metric": "2"})
    assert [s.name for s in _bonding_config(any_root).servers] == ["home"]


PACKAGE_FILES = Path(__file__).resolve().parents[2] / "package" / "bonding" / "files"


def test_first_boot_over_the_bonding_packages_own_config(any_root: Root, tmp_path: Path) -> None:
    """In the image, the bonding package's conffiles are there before this script runs."""
    conf, sec = PACKAGE_FILES / "bonding.config", PACKAGE_FILES / "bonding_secrets.config"
    if not conf.is_file() or not sec.is_file():
        pytest.skip(f"{PACKAGE_FILES} has no bonding.config / bonding_secrets.config yet")
    any_root.write("bonding", conf.read_text())
    any_root.write("bonding_secrets", sec.read_text())
    shipped = config.from_sections(any_root.read("bonding").sections)[0]
    _setup(any_root, tmp_path, ["--wan", "lan4", "--usb-modem"], bonding=None)

    cfg = _bonding_config(any_root)
    assert [(s.name, s.address, s.port) for s in cfg.servers] == [("home", "203.0.113.10", 65101)]
    assert cfg.globals.enabled and cfg.globals.proxy == "sing-box"
    # what the package ships and the flags do not ask about stays as shipped
    assert cfg.globals.probe_targets == shipped.globals.probe_targets
    assert cfg.globals.probe_interval_ms == shipped.globals.probe_interval_ms
    wan = cfg.path("wan")
    assert wan is not None and wan.interface == "wan"
    assert (wan.enabled, wan.backup) == (shipped.path("wan").enabled,  # type: ignore[union-attr]
                                         shipped.path("wan").backup)  # type: ignore[union-attr]
    assert [p.name for p in cfg.paths] == ["wan", "wan2"]
    assert (cfg.usb.auto_dhcp, cfg.usb.modem_mbim) == (True, False)

    secrets, problems = config.load_secrets(any_root.conf)
    assert [str(p) for p in problems] == []  # no error, and no warning about the file's mode
    assert secrets.names() == ("home",) and secrets.key("home") == KEY
    _rerun_changes_nothing(any_root, tmp_path)


def test_nothing_is_downloaded(tmp_path: Path) -> None:
    """The script only runs uci, sed, logger and chmod (the tests give it nothing else on PATH)
    and names no download tool or URL."""
    g = generate(tmp_path, ["--usb-modem", "--quectel", "--ios-tethering", "--diag-tools",
                            "--wan", "lan4", "--lan-ip", "192.168.4.1/24"])
    assert g.rc == 0
    text = "\n".join(line for line in g.script.read_text().lower().splitlines()
                     if not line.lstrip().startswith("#"))
    for word in ("wget", "curl", "uclient-fetch", "http://", "https://", "opkg", "apk ",
                 "base64 -d"):
        assert word not in text
