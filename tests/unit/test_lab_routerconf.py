"""The lab router's bondingd config as the lab writes and edits it, read back by bondingd's own
config loader (no root)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bonding import config, uci
from bonding.lab.build import plan_state
from bonding.lab.model import (
    LAB_BYPASS,
    SERVER2_ADDR,
    SERVER_ADDR,
    SERVER_ADDR6,
    WIRED_PATH,
    LabState,
    parse_links,
)
from bonding.lab.routerconf import edit_options, render_config


def state(**kw: Any) -> LabState:
    st = plan_state("bx", parse_links("50/10ms,30/20ms"), kw.pop("servers", 1), Path("/s"))
    for k, v in kw.items():
        setattr(st, k, v)
    return st


def loaded(text: str) -> config.Config:
    cfg, problems = config.from_sections(uci.loads(text, "bonding").sections)
    assert [p for p in problems if p.severity is config.Severity.ERROR] == []
    return cfg


CLIENTS = [
    {"address": SERVER_ADDR, "address6": SERVER_ADDR6, "port": 40001, "protocol": "shadowsocks",
     "cipher": "2022-blake3-aes-128-gcm", "key": "k1", "udp_over_tcp": True},
    {"address": SERVER2_ADDR, "port": 40002, "protocol": "shadowsocks",
     "cipher": "2022-blake3-aes-128-gcm", "key": "k2"},
]


def test_bondingd_alone() -> None:
    text, secrets = render_config(state(), "# extra\n", None, {}, WIRED_PATH)
    assert secrets is None
    assert text.endswith("# extra\n")
    cfg = loaded(text)
    assert cfg.globals.proxy == "none"
    assert [(s.name, s.address, s.address6) for s in cfg.servers] == [
        ("lab", SERVER_ADDR, SERVER_ADDR6)]
    wan2 = cfg.path("wan2")
    assert wan2 is not None
    assert (wan2.device, wan2.gateway, wan2.congestion_control) == ("wan2", "100.64.2.1",
                                                                     "cubic")


def test_full_path_two_servers_and_their_keys() -> None:
    text, secrets = render_config(state(servers=2, backend="shadowsocks-libev"), "",
                                  CLIENTS, {"server_hold_s": "4"}, {})
    cfg = loaded(text)
    assert cfg.globals.proxy == "shadowsocks-libev"
    assert cfg.globals.lan_devices == ("lan0",)
    assert tuple(cfg.globals.bypass) == LAB_BYPASS
    assert cfg.globals.server_hold_s == 4
    assert [(s.name, s.address, s.port, s.udp_over_tcp) for s in cfg.servers] == [
        ("lab", SERVER_ADDR, 40001, True), ("lab2", SERVER2_ADDR, 40002, False)]
    assert "k1" not in text
    assert secrets is not None
    keys, problems = config.secrets_from_sections(
        uci.loads(secrets, config.SECRETS_PACKAGE).sections)
    assert problems == []
    assert keys.names() == ("lab", "lab2")


def test_tunnel6_puts_the_ipv6_address_first() -> None:
    text, _ = render_config(state(tunnel6=True), "", CLIENTS[:1], {}, {})
    assert loaded(text).servers[0].address == SERVER_ADDR6


def test_edit_options_sets_and_removes() -> None:
    text, _ = render_config(state(), "", None, {"congestion_control": "bbr"}, WIRED_PATH)
    edited = edit_options(text, {"globals": {"congestion_control": "cubic"},
                                 "wan1": {"congestion_control": None, "backup": "1"}})
    cfg = loaded(edited)
    assert cfg.globals.congestion_control == "cubic"
    wan1, wan2 = cfg.path("wan1"), cfg.path("wan2")
    assert wan1 is not None and wan2 is not None
    assert (wan1.congestion_control, wan1.backup) == (None, True)
    assert wan2.congestion_control == "cubic"  # untouched


def test_on_the_openwrt_router_no_path_sections_ipv4_only_options_in_globals() -> None:
    text, secrets = render_config(state(openwrt=True), "", CLIENTS[:1], {}, WIRED_PATH)
    cfg = loaded(text)
    assert cfg.paths == ()  # bondingd bonds the WANs netifd has
    assert cfg.globals.congestion_control == "cubic"  # WIRED_PATH, for every discovered path
    assert all(":" not in str(t) for t in cfg.globals.probe_targets)
    assert [(s.name, s.address, s.address6) for s in cfg.servers] == [("lab", SERVER_ADDR, None)]
    assert secrets is not None and "k1" in secrets
