"""/etc/config/bonding validation (bonding.config): typed values, and precise problems."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bonding import config, uci
from bonding.config import Config, Globals, PathConfig, Problem, Server, Severity, Usb

Opts = dict[str, str | tuple[str, ...]]
ERROR, WARNING = Severity.ERROR, Severity.WARNING


def sections(*specs: tuple[str, str | None, Opts]) -> tuple[uci.Section, ...]:
    """Sections numbered as a loaded package numbers them (for '@type[i]' labels)."""
    return uci.Package("bonding", tuple(uci.Section(t, n, o) for t, n, o in specs)).sections


def parse(*specs: tuple[str, str | None, Opts]) -> tuple[Config, list[Problem]]:
    return config.from_sections(sections(*specs))


def parse_text(text: str) -> tuple[Config, list[Problem]]:
    return config.from_sections(uci.loads(text, "bonding").sections)


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity is ERROR]


def where(problems: list[Problem]) -> list[tuple[Severity, str, str | None, str | None]]:
    return [(p.severity, p.section, p.option, p.value) for p in problems]


# Each section type with the least it needs, and how to get its typed object back.
BASE: dict[str, tuple[str | None, Opts]] = {
    "globals": ("globals", {}),
    "server": ("vps", {"address": "203.0.113.1"}),
    "path": ("wan1", {"device": "eth1"}),
    "usb": ("usb", {}),
    "rule": ("tv", {}),
}


def obj(cfg: Config, stype: str) -> Any:
    if stype == "server":
        return cfg.servers[0]
    if stype == "path":
        return cfg.paths[0]
    if stype == "rule":
        return cfg.rules[0]
    return cfg.usb if stype == "usb" else cfg.globals


def one(stype: str, option: str, raw: str | tuple[str, ...]) -> tuple[Config, list[Problem]]:
    name, base = BASE[stype]
    return parse((stype, name, {**base, option: raw}))


# --- defaults -------------------------------------------------------------------------------------

def test_empty_config_is_the_defaults() -> None:
    cfg, problems = config.from_sections([])
    assert problems == []
    assert cfg == Config()
    g = cfg.globals
    assert (g.enabled, g.log_level, g.proxy) == (True, "info", "auto")
    assert (g.probe_interval_ms, g.probe_timeout_min_ms, g.probe_timeout_ms) == (150, 250, 1000)
    assert (g.down_count, g.down_window, g.up_count) == (3, 5, 5)
    assert (g.degraded_loss_pct, g.degraded_rtt_factor, g.degraded_rtt_ms, g.loss_window) == (
        20, 3.0, 150, 20)
    assert (g.route_table, g.path_table_base, g.rule_priority) == (200, 210, 1000)
    assert (g.mptcp_subflows, g.mptcp_add_addr_accepted, g.probe_targets) == (8, 0, ())
    assert g.manage_default_route is True
    assert (cfg.servers, cfg.paths) == ((), ())
    assert cfg.usb == Usb(auto_dhcp=True, modem_mbim=True, metric_base=40)


def test_empty_sections_are_the_defaults() -> None:
    cfg, problems = parse(("globals", "globals", {}), ("usb", "usb", {}))
    assert problems == []
    assert cfg == Config()


def test_section_defaults() -> None:
    cfg, problems = parse(("server", "vps", {"address": "203.0.113.1"}),
                          ("path", "wan1", {"interface": "wan"}))
    assert problems == []
    assert cfg.servers == (Server(name="vps", address="203.0.113.1", port=65101,
                                  protocol="shadowsocks", cipher="chacha20-ietf-poly1305",
                                  enabled=True, priority=10),)
    assert cfg.paths == (PathConfig(name="wan1", interface="wan", device=None, gateway=None,
                                    enabled=True, backup=False, download_kbit=None,
                                    upload_kbit=None, probe_targets=()),)


# --- good values ----------------------------------------------------------------------------------

# (section type, option, raw value, field, parsed value)
GOOD: list[tuple[str, str, str | tuple[str, ...], str, object]] = [
    ("globals", "enabled", "0", "enabled", False),
    ("globals", "enabled", "1", "enabled", True),
    ("globals", "enabled", "off", "enabled", False),
    ("globals", "enabled", "Yes", "enabled", True),
    ("globals", "enabled", "disabled", "enabled", False),
    ("globals", "enabled", "true", "enabled", True),
    ("globals", "log_level", "debug", "log_level", "debug"),
    ("globals", "log_level", "error", "log_level", "error"),
    ("globals", "proxy", "xray", "proxy", "xray"),
    ("globals", "proxy", "shadowsocks-libev", "proxy", "shadowsocks-libev"),
    ("globals", "proxy", "sing-box", "proxy", "sing-box"),
    ("globals", "proxy_user", "root", "proxy_user", "root"),
    ("globals", "probe_interval_ms", "20", "probe_interval_ms", 20),
    ("globals", "probe_interval_ms", "60000", "probe_interval_ms", 60000),
    ("globals", "probe_interval_ms", " 500 ", "probe_interval_ms", 500),
    ("globals", "probe_timeout_min_ms", "10", "probe_timeout_min_ms", 10),
    ("globals", "probe_timeout_ms", "2000", "probe_timeout_ms", 2000),
    ("globals", "down_count", "1", "down_count", 1),
    ("globals", "down_window", "100", "down_window", 100),
    ("globals", "up_count", "3", "up_count", 3),
    ("globals", "degraded_loss_pct", "100", "degraded_loss_pct", 100),
    ("globals", "degraded_rtt_factor", "2.5", "degraded_rtt_factor", 2.5),
    ("globals", "degraded_rtt_factor", "1", "degraded_rtt_factor", 1.0),
    ("globals", "degraded_rtt_ms", "0", "degraded_rtt_ms", 0),
    ("globals", "loss_window", "2", "loss_window", 2),
    ("globals", "loss_window", "1000", "loss_window", 1000),
    ("globals", "probe_target", "192.0.2.1", "probe_targets", ("192.0.2.1",)),
    ("globals", "probe_target", ("192.0.2.1", "198.51.100.1"), "probe_targets",
     ("192.0.2.1", "198.51.100.1")),
    ("globals", "probe_target", ("192.0.2.1", "2001:DB8:0:0::10"), "probe_targets",
     ("192.0.2.1", "2001:db8::10")),
    ("globals", "ipv6", "0", "ipv6", False),
    ("globals", "bypass6", ("fd00::/8", "2001:db8:0:0::7", "2001:db8::/128"), "bypass6",
     ("fd00::/8", "2001:db8::7", "2001:db8::")),
    ("globals", "mptcp_subflows", "0", "mptcp_subflows", 0),
    ("globals", "mptcp_subflows", "8", "mptcp_subflows", 8),
    ("globals", "mptcp_add_addr_accepted", "2", "mptcp_add_addr_accepted", 2),
    ("globals", "route_table", "100", "route_table", 100),
    ("globals", "route_table", "1", "route_table", 1),
    ("globals", "path_table_base", "300", "path_table_base", 300),
    ("globals", "rule_priority", "32000", "rule_priority", 32000),
    ("globals", "manage_default_route", "0", "manage_default_route", False),
    ("globals", "lan_device", "br-lan", "lan_devices", ("br-lan",)),
    ("globals", "lan_device", ("lan0", "wlan0"), "lan_devices", ("lan0", "wlan0")),
    ("globals", "tproxy_port", "12345", "tproxy_port", 12345),
    ("globals", "tproxy_mark", "0x10", "tproxy_mark", 0x10),
    ("globals", "tproxy_mark", "0x10/0xff", "tproxy_mark", 0x10),
    ("globals", "tproxy_mark", "176", "tproxy_mark", 0xB0),
    ("globals", "tproxy_table", "100", "tproxy_table", 100),
    ("globals", "bypass", ("10.0.0.0/8", "192.0.2.7", "192.0.2.0/32"), "bypass",
     ("10.0.0.0/8", "192.0.2.7", "192.0.2.0")),
    ("globals", "proxy_udp", "0", "proxy_udp", False),
    ("globals", "congestion_control", "cubic", "congestion_control", "cubic"),
    ("globals", "congestion_control", "", "congestion_control", ""),
    ("path", "congestion_control", "cubic", "congestion_control", "cubic"),
    ("globals", "server_probe_interval_ms", "100", "server_probe_interval_ms", 100),
    ("globals", "server_probe_interval_ms", "60000", "server_probe_interval_ms", 60000),
    ("globals", "server_down_count", "1", "server_down_count", 1),
    ("globals", "server_up_count", "100", "server_up_count", 100),
    ("globals", "server_failback", "stay", "server_failback", "stay"),
    ("globals", "server_failback", "return", "server_failback", "return"),
    ("globals", "server_hold_s", "0", "server_hold_s", 0),
    ("globals", "server_hold_s", "86400", "server_hold_s", 86400),
    ("globals", "mptcp_check_interval_s", "0", "mptcp_check_interval_s", 0),
    ("globals", "mptcp_check_interval_s", "2", "mptcp_check_interval_s", 2),
    ("globals", "mptcp_join_timeout_s", "0", "mptcp_join_timeout_s", 0),
    ("globals", "mptcp_join_timeout_s", "30", "mptcp_join_timeout_s", 30),
    ("globals", "mptcp_retest_s", "10", "mptcp_retest_s", 10),
    ("globals", "mptcp_blocked_native", "0", "mptcp_blocked_native", False),
    ("server", "priority", "0", "priority", 0),
    ("server", "priority", "1000", "priority", 1000),
    ("server", "cipher", "chacha20-ietf-poly1305", "cipher", "chacha20-ietf-poly1305"),
    ("server", "address", "203.0.113.5", "address", "203.0.113.5"),
    ("server", "address", "vps.example.com", "address", "vps.example.com"),
    ("server", "address", "2001:db8::1", "address", "2001:db8::1"),
    ("server", "address", " 198.51.100.9 ", "address", "198.51.100.9"),
    ("server", "port", "1", "port", 1),
    ("server", "port", "65535", "port", 65535),
    ("server", "protocol", "vless", "protocol", "vless"),
    ("server", "cipher", "aes-256-gcm", "cipher", "aes-256-gcm"),
    ("server", "cipher", "2022-blake3-chacha20-poly1305", "cipher",
     "2022-blake3-chacha20-poly1305"),
    ("server", "enabled", "0", "enabled", False),
    ("server", "udp_over_tcp", "1", "udp_over_tcp", True),
    ("server", "address6", "2001:DB8:203:0::10", "address6", "2001:db8:203::10"),
    ("path", "interface", "wan_6", "interface", "wan_6"),
    ("path", "device", "wwan0.1", "device", "wwan0.1"),
    ("path", "device", "x" * 15, "device", "x" * 15),
    ("path", "gateway", "100.64.0.1", "gateway", "100.64.0.1"),
    ("path", "gateway6", "fe80::1", "gateway6", "fe80::1"),
    ("path", "gateway6", "2001:db8:100:1:0::1", "gateway6", "2001:db8:100:1::1"),
    ("path", "enabled", "no", "enabled", False),
    ("path", "backup", "1", "backup", True),
    ("path", "role", "backup", "role", "backup"),
    ("path", "role", "bond", "role", "bond"),
    ("globals", "standby_probe_interval_ms", "1000", "standby_probe_interval_ms", 1000),
    ("globals", "standby_probe_interval_ms", "3600000", "standby_probe_interval_ms", 3_600_000),
    ("path", "download_kbit", "50000", "download_kbit", 50000),
    ("path", "upload_kbit", "1", "upload_kbit", 1),
    ("path", "upload_kbit", "100000000", "upload_kbit", 100_000_000),
    ("path", "probe_target", ("192.0.2.7", "192.0.2.8"), "probe_targets",
     ("192.0.2.7", "192.0.2.8")),
    ("path", "probe_target", "2606:4700:4700::1111", "probe_targets",
     ("2606:4700:4700::1111",)),
    ("usb", "auto_dhcp", "0", "auto_dhcp", False),
    ("usb", "modem_mbim", "false", "modem_mbim", False),
    ("usb", "metric_base", "1000", "metric_base", 1000),
    ("usb", "apn", "internet.v6-op.example", "apn", "internet.v6-op.example"),
    ("globals", "dnsmasq_nftset", "/var/etc/dnsmasq.d/x.conf", "dnsmasq_nftset",
     "/var/etc/dnsmasq.d/x.conf"),
    ("globals", "dnsmasq_nftset", "", "dnsmasq_nftset", ""),
    ("globals", "realtime", "1", "realtime", True),
    ("globals", "realtime_dscp", ("EF", "34"), "realtime_dscp", ("ef", "34")),
    ("globals", "realtime_port", ("5060", "7078-7109"), "realtime_ports", ("5060", "7078-7109")),
    ("globals", "realtime_device", "AA-BB-cc-dd-ee-f0", "realtime_devices",
     ("aa:bb:cc:dd:ee:f0",)),
    ("globals", "shaping", "1", "shaping", True),
    ("globals", "shaping_pct", "90", "shaping_pct", 90),
    ("rule", "name", "tvbox", "name", "tvbox"),
    ("rule", "dest_domain", ("Example.COM.", "tv.isp-1.example"), "dest_domain",
     ("example.com", "tv.isp-1.example")),
    ("rule", "enabled", "0", "enabled", False),
    ("rule", "src_mac", "AA-BB-cc-dd-ee-f0", "src_mac", ("aa:bb:cc:dd:ee:f0",)),
    ("rule", "src_ip", ("192.168.1.20", "192.168.2.0/24"), "src_ip",
     ("192.168.1.20", "192.168.2.0/24")),
    ("rule", "dest_ip", "198.51.100.0/24", "dest_ip", ("198.51.100.0/24",)),
    ("rule", "proto", "udp", "proto", "udp"),
    ("rule", "dest_port", ("443", "8000-8100", "5060-5060"), "dest_port",
     ("443", "8000-8100", "5060")),
    ("rule", "action", "bypass", "action", "bypass"),
    ("rule", "action", "path:wan2", "action", "path:wan2"),
    ("rule", "path", "wan2", "action", "path:wan2"),
    ("rule", "fallback", "drop", "fallback", "drop"),
    ("rule", "block_quic", "1", "block_quic", True),
]


@pytest.mark.parametrize(("stype", "option", "raw", "fname", "value"), GOOD,
                         ids=[f"{c[0]}.{c[1]}={c[2]!r}" for c in GOOD])
def test_good_values(stype: str, option: str, raw: str | tuple[str, ...], fname: str,
                     value: object) -> None:
    cfg, problems = one(stype, option, raw)
    assert problems == []
    got = getattr(obj(cfg, stype), fname)
    assert got == value
    assert type(got) is type(value)


def test_every_option_is_covered_by_the_good_table() -> None:
    """A new option must be added to the tables above."""
    covered = {(c[0], c[1]) for c in GOOD}
    for stype, spec in config._SECTIONS.items():
        for option in spec:
            assert (stype, option) in covered, f"{stype}.{option} has no good-value case"


# --- bad values -----------------------------------------------------------------------------------

# (section type, option, raw value, start of the message)
BAD: list[tuple[str, str, str, str]] = [
    ("globals", "enabled", "maybe", "not a boolean: use 1 or 0"),
    ("globals", "enabled", "", "not a boolean"),
    ("globals", "log_level", "verbose", "not one of: debug, info, notice, warning, error"),
    ("globals", "log_level", "INFO", "not one of:"),
    ("globals", "proxy", "openvpn", "not one of: auto, none, shadowsocks-libev, xray, sing-box"),
    ("globals", "proxy_user", "Bonding User", "not a user name"),
    ("globals", "probe_interval_ms", "abc", "not a whole number ms: use 20–60000"),
    ("globals", "probe_interval_ms", "1.5", "not a whole number ms"),
    ("globals", "probe_interval_ms", "150ms", "not a whole number ms"),
    ("globals", "probe_interval_ms", "19", "out of range: use 20–60000 ms"),
    ("globals", "probe_interval_ms", "60001", "out of range: use 20–60000 ms"),
    ("globals", "probe_timeout_min_ms", "9", "out of range"),
    ("globals", "standby_probe_interval_ms", "999", "out of range: use 1000–3600000 ms"),
    ("path", "role", "spill", "role 'spill' is not supported yet: use 'bond' (always used) or "
     "'backup' (used only while no bond path is up)"),
    ("path", "role", "standby", "not one of: bond, backup ('backup': used only while no bond "
     "path is up)"),
    ("globals", "probe_timeout_ms", "0x10", "not a whole number ms"),
    ("globals", "down_count", "0", "out of range: use 1–100"),
    ("globals", "down_window", "101", "out of range: use 1–100"),
    ("globals", "up_count", "-1", "out of range: use 1–100"),
    ("globals", "degraded_loss_pct", "0", "out of range: use 1–100 %"),
    ("globals", "degraded_loss_pct", "20%", "not a whole number %"),
    ("globals", "degraded_rtt_factor", "fast", "not a number: use 1–100"),
    ("globals", "degraded_rtt_factor", "0.5", "out of range: use 1–100"),
    ("globals", "degraded_rtt_factor", "nan", "out of range"),
    ("globals", "degraded_rtt_factor", "inf", "out of range"),
    ("globals", "degraded_rtt_ms", "-1", "out of range: use 0–60000 ms"),
    ("globals", "loss_window", "1", "out of range: use 2–1000 rounds"),
    ("globals", "probe_target", "300.1.1.1",
     "not an IPv4 or IPv6 address (like 192.0.2.1 or 2001:db8::1)"),
    ("globals", "probe_target", "dns.google", "not an IPv4 or IPv6 address"),
    ("globals", "probe_target", "192.0.2.1/24", "not an IPv4 or IPv6 address"),
    ("globals", "probe_target", "2001:db8::/64", "not an IPv4 or IPv6 address"),
    ("globals", "probe_target", "fe80::1",
     "a link-local address (fe80::/10) is not reachable beyond its link: use a global address"),
    ("globals", "probe_target", "fd00::1",
     "a unique local address (fc00::/7) is not reachable over the internet"),
    ("globals", "probe_target", "ff02::1", "not a unicast address of another host"),
    ("globals", "probe_target", "::1", "not a unicast address of another host"),
    ("globals", "probe_target", "::ffff:192.0.2.1",
     "an IPv4-mapped address: write 192.0.2.1 as IPv4 (probe targets may be IPv4 addresses "
     "too)"),
    ("globals", "mptcp_subflows", "9", "out of range: use 0–8"),
    ("globals", "mptcp_add_addr_accepted", "-1", "out of range: use 0–8"),
    ("globals", "route_table", "0", "out of range"),
    ("globals", "route_table", "main", "not a whole number"),
    ("globals", "path_table_base", "x", "not a whole number"),
    ("globals", "rule_priority", "32001", "out of range: use 1–32000"),
    ("globals", "manage_default_route", "2", "not a boolean"),
    ("server", "address", "not a host!", "not an IP address or host name"),
    ("server", "address", "999.1.1.1", "not an IP address or host name"),
    ("server", "address", "-vps.example.com", "not an IP address or host name"),
    ("server", "address", "vps..example.com", "not an IP address or host name"),
    ("server", "port", "0", "out of range: use 1–65535"),
    ("server", "port", "65536", "out of range: use 1–65535"),
    ("server", "port", "http", "not a whole number"),
    ("server", "protocol", "wireguard", "not one of: shadowsocks, vless"),
    ("server", "cipher", "rc4-md5", "not one of: chacha20-ietf-poly1305, aes-256-gcm"),
    ("server", "cipher", "none", "unencrypted transport is refused"),
    ("server", "cipher", "plain", "unencrypted transport is refused"),
    ("globals", "lan_device", "br lan", "not a network device name"),
    ("globals", "tproxy_port", "0", "out of range: use 1–65535"),
    ("globals", "tproxy_port", "70000", "out of range: use 1–65535"),
    ("globals", "tproxy_mark", "0", "out of range"),
    ("globals", "tproxy_mark", "mark", "not a firewall mark"),
    ("globals", "tproxy_mark", "0x1ff/0xff", "the mark 0x1ff has bits outside the mask 0xff"),
    ("globals", "tproxy_mark", "0x80000000", "out of range"),
    ("globals", "tproxy_table", "0", "out of range: use 1–2147483647"),
    ("globals", "bypass", "10.0.0.1/8", "has host bits set: did you mean 10.0.0.0/8?"),
    ("globals", "bypass", "10.0.0.0/33", "not an IPv4 network"),
    ("globals", "bypass", "2001:db8::/32", "an IPv6 network: it goes in list bypass6"),
    ("globals", "bypass6", "10.0.0.0/8", "an IPv4 network: it goes in list bypass"),
    ("globals", "bypass6", "2001:db8::1/32", "has host bits set: did you mean 2001:db8::/32?"),
    ("globals", "bypass6", "2001:db8::/129", "not an IPv6 network (like fd00::/8 or "
     "2001:db8::7)"),
    ("globals", "bypass6", "lan", "not an IPv6 network"),
    ("globals", "ipv6", "auto", "not a boolean"),
    ("server", "address6", "203.0.113.1",
     "an IPv4 address: the server's IPv4 address goes in option address"),
    ("server", "address6", "vps.example.com", "not an IPv6 address (like 2001:db8::10)"),
    ("server", "address6", "fe80::10", "a link-local address (fe80::/10) is not reachable"),
    ("server", "address6", "fd12:3456::10", "a unique local address (fc00::/7)"),
    ("server", "address6", "::", "not a unicast address of another host (multicast, :: or ::1)"),
    ("server", "address6", "ff05::2", "not a unicast address"),
    ("path", "gateway6", "100.64.0.1", "an IPv4 address: an IPv4 gateway goes in option gateway"),
    ("path", "gateway6", "fe80::1/64", "not an IPv6 address"),
    ("path", "gateway6", "ff02::2", "not a unicast address"),
    ("path", "gateway6", "fe80::1%wan1", "a zone index (%…) has no place here: the path says "
     "which link"),
    ("globals", "proxy_udp", "udp", "not a boolean"),
    ("globals", "congestion_control", "BBR!", "not a congestion control name"),
    ("path", "congestion_control", "tcp bbr", "not a congestion control name"),
    ("globals", "server_probe_interval_ms", "99", "out of range: use 100–60000 ms"),
    ("globals", "server_down_count", "0", "out of range: use 1–100"),
    ("globals", "server_up_count", "many", "not a whole number: use 1–100"),
    ("globals", "server_failback", "back", "not one of: return, stay"),
    ("globals", "server_hold_s", "-1", "out of range: use 0–86400 s"),
    ("globals", "mptcp_check_interval_s", "1m", "not a whole number s: use 0–86400"),
    ("globals", "mptcp_join_timeout_s", "-3", "out of range: use 0–86400 s"),
    ("globals", "mptcp_retest_s", "5", "out of range: use 10–604800 s"),
    ("globals", "mptcp_blocked_native", "maybe", "not a boolean"),
    ("server", "priority", "1001", "out of range: use 0–1000"),
    ("server", "priority", "first", "not a whole number: use 0–1000"),
    ("server", "enabled", "maybe", "not a boolean"),
    ("server", "udp_over_tcp", "yes please", "not a boolean"),
    ("path", "interface", "wan-2", "not a netifd interface name"),
    ("path", "interface", "a" * 16, "not a netifd interface name"),
    ("path", "device", "eth/0", "not a network device name"),
    ("path", "device", "eth:0", "not a network device name"),
    ("path", "device", "eth 0", "not a network device name"),
    ("path", "device", "x" * 16, "not a network device name"),
    ("path", "device", "..", "not a network device name"),
    ("path", "gateway", "192.0.2.256", "not an IPv4 address"),
    ("path", "gateway", "fe80::1", "an IPv6 address: an IPv6 gateway goes in option gateway6"),
    ("path", "enabled", "maybe", "not a boolean"),
    ("path", "backup", "y", "not a boolean"),
    ("path", "download_kbit", "0", "out of range: use 1–100000000 kbit/s"),
    ("path", "download_kbit", "fast", "not a whole number kbit/s"),
    ("path", "upload_kbit", "100000001", "out of range"),
    ("path", "probe_target", "abc", "not an IPv4 or IPv6 address"),
    ("path", "probe_target", "fe80::1%wan", "a zone index (%…) has no place here"),
    ("path", "probe_target", "fe80::1", "a link-local address"),
    ("usb", "auto_dhcp", "maybe", "not a boolean"),
    ("usb", "modem_mbim", "2", "not a boolean"),
    ("usb", "metric_base", "0", "out of range: use 1–1000"),
    ("usb", "metric_base", "1001", "out of range: use 1–1000"),
    ("usb", "apn", "my apn", "not an APN"),
    ("usb", "apn", "x" * 101, "not an APN"),
    ("rule", "name", "tv box", "not a path name"),
    ("rule", "enabled", "sometimes", "not a boolean"),
    ("rule", "src_mac", "aa:bb:cc:dd:ee", "not a MAC address"),
    ("rule", "src_mac", "01:00:5e:00:00:01", "a multicast MAC address"),
    ("rule", "src_ip", "2001:db8::1", "an IPv6 address: rules match IPv4"),
    ("rule", "src_ip", "192.168.1.1/24", "has host bits set: did you mean 192.168.1.0/24?"),
    ("rule", "dest_ip", "example.com", "not an IPv4 network"),
    ("rule", "dest_domain", "localhost", "not a domain name"),
    ("rule", "dest_domain", "-a.example", "not a domain name"),
    ("rule", "dest_domain", "198.51.100.7", "not a domain name"),
    ("globals", "dnsmasq_nftset", "dnsmasq.conf", "not an absolute file path"),
    ("globals", "dnsmasq_nftset", "/tmp/../etc/passwd", "not an absolute file path"),
    ("globals", "realtime", "maybe", "not a boolean"),
    ("globals", "realtime_dscp", "voice", "not a DSCP class"),
    ("globals", "realtime_port", "sip", "not a UDP port or a range"),
    ("globals", "realtime_device", "phone", "not a MAC or IPv4 address"),
    ("globals", "shaping", "2", "not a boolean"),
    ("globals", "shaping_pct", "101", "out of range"),
    ("rule", "proto", "icmp", "not one of: any, tcp, udp"),
    ("rule", "dest_port", "0", "out of range: ports are 1–65535"),
    ("rule", "dest_port", "100-90", "out of range"),
    ("rule", "dest_port", "https", "not a port or a range"),
    ("rule", "action", "wan2", "not one of: bond, bypass, path:<name>"),
    ("rule", "action", "path:wan-2", "'wan-2' is not a path name"),
    ("rule", "path", "wan 2", "not a path name"),
    ("rule", "fallback", "wan1", "not one of: bond, any, drop"),
    ("rule", "block_quic", "yes please", "not a boolean"),
]


@pytest.mark.parametrize(("stype", "option", "raw", "msg"), BAD,
                         ids=[f"{c[0]}.{c[1]}={c[2]!r}" for c in BAD])
def test_bad_values_are_errors_naming_section_option_value(stype: str, option: str, raw: str,
                                                          msg: str) -> None:
    name, _ = BASE[stype]
    _, problems = one(stype, option, raw)
    assert where(problems) == [(ERROR, name, option, raw)]
    assert problems[0].message.startswith(msg)
    assert str(problems[0]).startswith(f"error: bonding.{name}.{option}={raw!r}: {msg}")


def test_every_option_is_covered_by_the_bad_table() -> None:
    covered = {(c[0], c[1]) for c in BAD}
    for stype, spec in config._SECTIONS.items():
        for option in spec:
            assert (stype, option) in covered, f"{stype}.{option} has no bad-value case"


def test_one_bad_item_of_a_list_is_named() -> None:
    _, problems = one("globals", "probe_target", ("192.0.2.1", "192.0.2.300", "192.0.2.3"))
    assert where(problems) == [(ERROR, "globals", "probe_target", "192.0.2.300")]


def test_several_problems_are_all_reported() -> None:
    _, problems = parse(("globals", "globals", {"down_count": "x", "up_count": "0"}),
                        ("server", "vps", {"address": "203.0.113.1", "port": "99999"}),
                        ("path", "wan1", {"device": "eth1", "backup": "maybe"}))
    assert where(problems) == [(ERROR, "globals", "down_count", "x"),
                               (ERROR, "globals", "up_count", "0"),
                               (ERROR, "vps", "port", "99999"),
                               (ERROR, "wan1", "backup", "maybe")]


@pytest.mark.parametrize(("stype", "option"), [
    ("globals", "route_table"), ("server", "port"), ("path", "device"), ("usb", "auto_dhcp")])
def test_list_for_a_single_option_is_an_error(stype: str, option: str) -> None:
    name, _ = BASE[stype]
    _, problems = one(stype, option, ("1", "2"))
    assert where(errors(problems)) == [(ERROR, name, option, "1 2")]
    assert f"'{option}' takes one value: write 'option {option}', not 'list'" in \
        problems[0].message


def test_list_for_a_single_option_from_a_file() -> None:
    _, problems = parse_text("config server 'vps'\n\toption address '203.0.113.1'\n"
                             "\tlist port '80'\n")
    assert where(problems) == [(ERROR, "vps", "port", "80")]


# --- unknown things are warnings ------------------------------------------------------------------

@pytest.mark.parametrize(("stype", "option", "raw"), [
    ("globals", "probe_intervall_ms", "100"),
    ("server", "password", "hunter2"),
    ("path", "mtu", "1500"),
    ("path", "probe_interval_ms", "abc"),
    ("usb", "metric", "5"),
    ("path", "probe_targets", ("192.0.2.1", "192.0.2.2")),
])
def test_unknown_option_is_a_warning(stype: str, option: str, raw: str | tuple[str, ...]) -> None:
    name, _ = BASE[stype]
    cfg, problems = one(stype, option, raw)
    shown = raw if isinstance(raw, str) else " ".join(raw)
    assert where(problems) == [(WARNING, name, option, shown)]
    assert problems[0].message.startswith(f"unknown option of a '{stype}' section, ignored; "
                                          "known: ")
    assert sorted(config._SECTIONS[stype])[0] in problems[0].message
    base_cfg, _ = parse((stype, name, BASE[stype][1]))
    assert cfg == base_cfg  # the rest is used


@pytest.mark.parametrize(("stype", "name", "label"), [
    ("interface", "wan", "wan"),
    ("mwan3", None, "@mwan3[0]"),
    ("paths", "wan1", "wan1"),
], ids=["named", "anonymous", "typo"])
def test_unknown_section_type_is_a_warning(stype: str, name: str | None, label: str) -> None:
    cfg, problems = parse((stype, name, {"device": "eth1"}), ("path", "wan2", {"device": "eth2"}))
    assert where(problems) == [(WARNING, label, None, None)]
    assert problems[0].message == (f"unknown section type '{stype}', ignored; known: "
                                   "globals, server, path, usb, rule")
    assert [p.name for p in cfg.paths] == ["wan2"]


# --- section-level errors -------------------------------------------------------------------------

# (id, sections, problems as (severity, section, option, value), start of the first message)
SECTION_CASES: list[tuple[str, list[tuple[str, str | None, Opts]],
                          list[tuple[Severity, str, str | None, str | None]], str]] = [
    ("duplicate path name", [("path", "wan1", {"device": "eth1"}),
                             ("path", "wan1", {"device": "eth2"})],
     [(ERROR, "wan1", None, None)], "duplicate path 'wan1': each name once"),
    ("duplicate server name", [("server", "vps", {"address": "203.0.113.1"}),
                               ("server", "vps", {"address": "203.0.113.2"})],
     [(ERROR, "vps", None, None)], "duplicate server 'vps'"),
    ("two paths on one device", [("path", "wan1", {"device": "eth1"}),
                                 ("path", "wan2", {"device": "eth1"})],
     [(ERROR, "wan2", "device", "eth1")],
     "already used by path 'wan1': one path per link"),
    ("two paths on one netifd interface", [("path", "wan1", {"interface": "wan"}),
                                           ("path", "wan2", {"interface": "wan"})],
     [(ERROR, "wan2", "interface", "wan")], "already used by path 'wan1'"),
    ("device wins over interface for the link", [
        ("path", "wan1", {"interface": "wan", "device": "eth1"}),
        ("path", "wan2", {"device": "eth1"})],
     [(ERROR, "wan2", "device", "eth1")], "already used by path 'wan1'"),
    ("path without interface or device", [("path", "wan1", {"backup": "1"})],
     [(ERROR, "wan1", None, None)],
     "needs 'option interface' (netifd name) or 'option device'"),
    ("path with only a bad device: one error", [("path", "wan1", {"device": "a/b"})],
     [(ERROR, "wan1", "device", "a/b")], "not a network device name"),
    ("server without address", [("server", "vps", {"port": "443"})],
     [(ERROR, "vps", "address", None)], "missing: the server's IP address or host name"),
    ("server with a bad address: one error", [("server", "vps", {"address": "a b"})],
     [(ERROR, "vps", "address", "a b")], "not an IP address or host name"),
    ("anonymous path", [("path", None, {"device": "eth1"})],
     [(ERROR, "@path[0]", None, None)],
     "a 'path' section needs a name of letters, digits and '_' (config path 'wan1')"),
    ("second anonymous path", [("path", "wan1", {"device": "eth1"}),
                               ("path", None, {"device": "eth2"})],
     [(ERROR, "@path[1]", None, None)], "a 'path' section needs a name"),
    ("anonymous server", [("server", None, {"address": "203.0.113.1"})],
     [(ERROR, "@server[0]", None, None)], "a 'server' section needs a name"),
    ("a second globals section", [("globals", "globals", {}), ("globals", "more", {})],
     [(ERROR, "more", None, None)], "a second 'globals' section: merge it into the first"),
    ("down_count > down_window", [("globals", "globals", {"down_count": "6"})],
     [(ERROR, "globals", "down_count", "6")],
     "larger than down_window (5): a path could never go down"),
    ("down_count > a smaller down_window", [("globals", "globals",
                                             {"down_count": "3", "down_window": "2"})],
     [(ERROR, "globals", "down_count", "3")], "larger than down_window (2)"),
    ("probe_timeout_min_ms > probe_timeout_ms", [("globals", "globals",
                                                  {"probe_timeout_ms": "200"})],
     [(ERROR, "globals", "probe_timeout_min_ms", "250")],
     "larger than probe_timeout_ms (200)"),
]


@pytest.mark.parametrize(("specs", "want", "msg"), [c[1:] for c in SECTION_CASES],
                         ids=[c[0] for c in SECTION_CASES])
def test_section_errors(specs: list[tuple[str, str | None, Opts]],
                        want: list[tuple[Severity, str, str | None, str | None]],
                        msg: str) -> None:
    _, problems = parse(*specs)
    assert where(problems) == want
    assert problems[0].message.startswith(msg)


def test_anonymous_globals_and_usb_are_fine() -> None:
    cfg, problems = parse_text("config globals\n\toption up_count '7'\n"
                               "config usb\n\toption metric_base '9'\n")
    assert problems == []
    assert (cfg.globals.up_count, cfg.usb.metric_base) == (7, 9)


def test_anonymous_section_label_from_a_file() -> None:
    _, problems = parse_text("config path 'wan1'\n\toption device 'eth1'\n"
                             "config path\n\toption device 'eth2'\n"
                             "config path\n\toption device 'eth3'\n\toption backup 'maybe'\n")
    assert where(problems) == [(ERROR, "@path[1]", None, None),
                               (ERROR, "@path[2]", "backup", "maybe"),
                               (ERROR, "@path[2]", None, None)]
    assert str(problems[1]) == "error: bonding.@path[2].backup='maybe': not a boolean: use 1 or 0"


def test_bad_section_name() -> None:
    _, problems = parse(("path", "wan-1", {"device": "eth1"}))
    assert where(problems) == [(ERROR, "wan-1", None, None)]


def test_equal_counts_and_names_across_types_are_fine() -> None:
    cfg, problems = parse(("globals", "globals", {"down_count": "5", "down_window": "5"}),
                          ("server", "wan1", {"address": "203.0.113.1"}),
                          ("path", "wan1", {"interface": "eth1"}),
                          ("path", "wan2", {"device": "eth1"}),  # a netifd name ≠ a device
                          ("path", "wan3", {"interface": "wan"}))
    assert problems == []
    assert [p.name for p in cfg.paths] == ["wan1", "wan2", "wan3"]


def test_at_most_32_paths() -> None:
    specs = [("path", f"wan{i}", {"device": f"eth{i}"}) for i in range(33)]
    cfg, problems = parse(*specs)  # type: ignore[arg-type]
    assert where(problems) == [(ERROR, "wan32", None, None)]
    assert problems[0].message == "more than 32 paths"
    assert len(cfg.paths) == 32


# --- routing tables -------------------------------------------------------------------------------

# (id, globals options, problems as (option, value))
TABLE_CASES: list[tuple[str, Opts, list[tuple[str, str]]]] = [
    ("defaults", {}, []),
    ("route table just under the path tables", {"route_table": "209"}, []),
    ("route table just over the path tables", {"route_table": "242"}, []),
    ("route table = first path table", {"route_table": "210"}, [("route_table", "210")]),
    ("route table = last path table", {"route_table": "241"}, [("route_table", "241")]),
    ("route table = path_table_base elsewhere", {"route_table": "100", "path_table_base": "90"},
     [("route_table", "100")]),
    ("route table = default (253)", {"route_table": "253"}, [("route_table", "253")]),
    ("route table = main (254)", {"route_table": "254"}, [("route_table", "254")]),
    ("route table = local (255)", {"route_table": "255"}, [("route_table", "255")]),
    ("path tables end at 253", {"path_table_base": "222"}, [("path_table_base", "222")]),
    ("path tables end at 252", {"path_table_base": "221"}, []),
    ("path tables start at 255", {"path_table_base": "255"}, [("path_table_base", "255")]),
    ("path tables start at 256", {"path_table_base": "256"}, []),
    ("path tables across 253–255", {"path_table_base": "240"}, [("path_table_base", "240")]),
    ("both wrong", {"route_table": "254", "path_table_base": "250"},
     [("route_table", "254"), ("route_table", "254"), ("path_table_base", "250")]),
]


@pytest.mark.parametrize(("opts", "want"), [c[1:] for c in TABLE_CASES],
                         ids=[c[0] for c in TABLE_CASES])
def test_route_tables(opts: Opts, want: list[tuple[str, str]]) -> None:
    _, problems = parse(("globals", "globals", opts))
    assert where(problems) == [(ERROR, "globals", o, v) for o, v in want]


def test_route_table_messages() -> None:
    _, problems = parse(("globals", "globals", {"route_table": "215"}))
    assert problems[0].message == "inside the path tables 210–241: move one"
    _, problems = parse(("globals", "globals", {"route_table": "254"}))
    assert problems[0].message == "253–255 are the kernel's default, main and local tables"
    _, problems = parse(("globals", "globals", {"path_table_base": "230"}))
    assert problems[0].message.startswith("the path tables (230–261) must not include 253–255")


# --- probe targets --------------------------------------------------------------------------------

# (id, path's list, global list, servers as (address, enabled), targets of that path,
#  targets of another path without a list of its own)
TARGET_CASES: list[tuple[str, tuple[str, ...], tuple[str, ...], list[tuple[str, str]],
                         tuple[str, ...], tuple[str, ...]]] = [
    ("path list wins", ("192.0.2.1",), ("192.0.2.9",), [("203.0.113.1", "1")], ("192.0.2.1",),
     ("192.0.2.9",)),
    ("path list wins over servers", ("192.0.2.1",), (), [("203.0.113.1", "1")], ("192.0.2.1",),
     ("203.0.113.1",)),
    ("then the global list", (), ("192.0.2.9", "192.0.2.8"), [("203.0.113.1", "1")],
     ("192.0.2.9", "192.0.2.8"), ("192.0.2.9", "192.0.2.8")),
    ("then the servers' IPv4 addresses", (), (),
     [("203.0.113.1", "1"), ("vps.example.com", "1"), ("2001:db8::1", "1"),
      ("198.51.100.2", "1")], ("203.0.113.1", "198.51.100.2"), ("203.0.113.1", "198.51.100.2")),
    ("disabled servers are not targets", (), (),
     [("203.0.113.1", "0"), ("198.51.100.2", "1")], ("198.51.100.2",), ("198.51.100.2",)),
    ("nothing at all", (), (), [], (), ()),
    ("only a host-name server", (), (), [("vps.example.com", "1")], (), ()),
]


@pytest.mark.parametrize(("own", "glob", "servers", "targets", "other"),
                         [c[1:] for c in TARGET_CASES], ids=[c[0] for c in TARGET_CASES])
def test_targets_for(own: tuple[str, ...], glob: tuple[str, ...], servers: list[tuple[str, str]],
                     targets: tuple[str, ...], other: tuple[str, ...]) -> None:
    specs: list[tuple[str, str | None, Opts]] = []
    if glob:
        specs.append(("globals", "globals", {"probe_target": glob}))
    specs += [("server", f"s{i}", {"address": a, "enabled": e})
              for i, (a, e) in enumerate(servers)]
    path_opts: Opts = {"device": "eth1"}
    if own:
        path_opts["probe_target"] = own
    specs.append(("path", "wan1", path_opts))
    specs.append(("path", "wan2", {"device": "eth2"}))
    cfg, problems = parse(*specs)
    assert problems == []
    p1, p2 = cfg.paths
    assert cfg.targets_for(p1) == targets
    assert cfg.targets_for(p2) == other


def test_path_lookup() -> None:
    cfg, _ = parse(("path", "wan1", {"device": "eth1"}), ("path", "lte", {"interface": "lte"}))
    lte = cfg.path("lte")
    assert lte is not None and lte.interface == "lte"
    assert cfg.path("wan9") is None


# --- Problem text ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("problem", "text"), [
    (Problem(ERROR, "wan1", "probe_interval_ms", "abc", "not a whole number"),
     "error: bonding.wan1.probe_interval_ms='abc': not a whole number"),
    (Problem(WARNING, "wan1", "mtu", None, "unknown"), "warning: bonding.wan1.mtu: unknown"),
    (Problem(ERROR, "@path[0]", None, None, "needs a name"),
     "error: bonding.@path[0]: needs a name"),
    (Problem(ERROR, "vps", "address", "it's", "bad"), 'error: bonding.vps.address="it\'s": bad'),
], ids=["full", "no value", "section only", "quote in value"])
def test_problem_str(problem: Problem, text: str) -> None:
    assert str(problem) == text


def test_problem_str_from_parsing() -> None:
    _, problems = parse(("globals", "globals", {"probe_interval_ms": "abc"}),
                        ("path", "wan1", {"device": "eth1", "probe_interval_ms": "abc"}))
    assert [str(p) for p in problems] == [
        "error: bonding.globals.probe_interval_ms='abc': not a whole number ms: use 20–60000",
        "warning: bonding.wan1.probe_interval_ms='abc': unknown option of a 'path' section, "
        "ignored; known: backup, congestion_control, device, download_kbit, enabled, gateway, "
        "gateway6, interface, probe_target, role, upload_kbit",
    ]


def test_config_error_lists_problems() -> None:
    p1 = Problem(ERROR, "wan1", "device", "a/b", "bad")
    p2 = Problem(WARNING, "wan1", "mtu", "9000", "unknown")
    e = config.ConfigError([p1, p2])
    assert e.problems == (p1, p2)
    assert str(e) == ("error: bonding.wan1.device='a/b': bad; "
                      "warning: bonding.wan1.mtu='9000': unknown")


# --- load() ---------------------------------------------------------------------------------------

GOOD_FILE = """\
# a typical router
config globals 'globals'
\toption probe_interval_ms '200'
\tlist probe_target '192.0.2.1'
\tlist probe_target '198.51.100.1'

config server 'vps'
\toption address '203.0.113.1'
\toption port '443'

config path 'wan1'
\toption interface 'wan'
\toption upload_kbit '20000'

config path 'lte'
\toption device 'wwan0'
\toption backup '1'
"""


def test_load_a_good_file(tmp_path: Path) -> None:
    (tmp_path / "bonding").write_text(GOOD_FILE)
    cfg, problems = config.load(tmp_path)
    assert problems == []
    assert cfg.globals.probe_interval_ms == 200
    assert cfg.globals.probe_targets == ("192.0.2.1", "198.51.100.1")
    assert cfg.servers == (Server(name="vps", address="203.0.113.1", port=443),)
    assert cfg.paths == (PathConfig(name="wan1", interface="wan", upload_kbit=20000),
                         PathConfig(name="lte", device="wwan0", backup=True))
    assert config.load_strict(tmp_path) == (cfg, [])


def test_load_missing_dir_gives_defaults_and_a_warning(tmp_path: Path) -> None:
    d = tmp_path / "nowhere"
    cfg, problems = config.load(d)
    assert cfg == Config()
    assert where(problems) == [(WARNING, "(file)", None, None)]
    assert problems[0].message == f"{d / 'bonding'} does not exist: using the defaults"
    assert config.load_strict(d) == (cfg, problems)  # a warning is not an error


def test_load_missing_file_gives_defaults(tmp_path: Path) -> None:
    cfg, problems = config.load(tmp_path)
    assert cfg == Config()
    assert [p.severity for p in problems] == [WARNING]


@pytest.mark.parametrize(("text", "line", "reason"), [
    ("config path 'wan1'\n\toption device eth1\n\tbogus line\n", 3, "invalid command"),
    ("config globals 'globals'\n\toption down_count '3' '4'\n", 2, "too many arguments"),
    ("option device eth1\n", 1, "option/list command found before the first section"),
    ("config path 'wan1'\n\toption device 'eth1\n", 2, "EOF with unterminated '"),
    ("\n\nconfig path 'wan-1'\n", 3, "invalid character in name field"),
], ids=["invalid command", "too many arguments", "before a section", "unterminated quote",
        "bad section name"])
def test_load_syntax_error_names_the_line(tmp_path: Path, text: str, line: int,
                                          reason: str) -> None:
    (tmp_path / "bonding").write_text(text)
    cfg, problems = config.load(tmp_path)
    assert cfg == Config()
    assert where(problems) == [(ERROR, "(file)", None, None)]
    assert problems[0].message.startswith(f"{tmp_path / 'bonding'}:{line}:")
    assert reason in problems[0].message
    with pytest.raises(config.ConfigError) as ei:
        config.load_strict(tmp_path)
    assert ei.value.problems == tuple(problems)


def test_load_strict_raises_on_value_errors(tmp_path: Path) -> None:
    (tmp_path / "bonding").write_text("config path 'wan1'\n\toption device 'eth1'\n"
                                      "\toption backup 'maybe'\n\toption mtu '1500'\n")
    with pytest.raises(config.ConfigError) as ei:
        config.load_strict(tmp_path)
    assert where(list(ei.value.problems)) == [(ERROR, "wan1", "backup", "maybe"),
                                              (WARNING, "wan1", "mtu", "1500")]
    assert "bonding.wan1.backup='maybe'" in str(ei.value)


def test_as_dict_is_plain_data() -> None:
    cfg, _ = parse_text(GOOD_FILE)
    d = config.as_dict(cfg)
    assert d["globals"]["probe_targets"] == ("192.0.2.1", "198.51.100.1")
    assert d["servers"] == [{"name": "vps", "address": "203.0.113.1", "port": 443,
                             "protocol": "shadowsocks", "cipher": "chacha20-ietf-poly1305",
                             "enabled": True, "priority": 10, "udp_over_tcp": False,
                             "address6": None}]
    assert [p["name"] for p in d["paths"]] == ["wan1", "lte"]
    assert d["usb"] == {"auto_dhcp": True, "modem_mbim": True, "metric_base": 40, "apn": None}
    assert d["rules"] == []
    assert set(d["globals"]) == {f for f in Globals.__dataclass_fields__}


# --- regressions ---------------------------------------------------------------------

@pytest.mark.parametrize("option", ["device", "interface"])
def test_name_with_a_trailing_newline_is_rejected(option: str) -> None:
    # a quoted UCI value may span lines: this is a file libuci accepts
    _, problems = parse_text(f"config path 'wan1'\n\toption {option} 'eth1\n'\n")
    assert where(problems) == [(ERROR, "wan1", option, "eth1\n")]


# --- the data plane options (issue 4) -------------------------------------------------------

def test_data_plane_defaults() -> None:
    g = Globals()
    assert g.lan_devices == ("br-lan",)
    assert (g.tproxy_port, g.tproxy_mark, g.tproxy_mask, g.tproxy_table) == (1100, 0xB0, 0xB0, 199)
    assert g.proxy_udp is True
    assert g.congestion_control == "bbr"
    # the built-in bypass list: local, private and reserved ranges
    assert g.bypass == config.DEFAULT_BYPASS
    assert set(g.bypass) == {
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
        "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4"}


def test_bypass_list_replaces_the_built_in_one() -> None:
    cfg, problems = one("globals", "bypass", ("10.0.0.0/8", "192.168.0.0/16"))
    assert problems == []
    assert cfg.globals.bypass == ("10.0.0.0/8", "192.168.0.0/16")
    assert "198.51.100.0/24" not in cfg.globals.bypass


def test_tproxy_mark_with_a_mask() -> None:
    cfg, problems = one("globals", "tproxy_mark", "0x100/0xff00")
    assert problems == []
    assert (cfg.globals.tproxy_mark, cfg.globals.tproxy_mask) == (0x100, 0xFF00)


@pytest.mark.parametrize(("opts", "option", "message"), [
    ({"tproxy_table": "200"}, "tproxy_table", "already used: route_table is 200"),
    ({"tproxy_table": "215"}, "tproxy_table", "already used"),
    ({"tproxy_table": "254"}, "tproxy_table", "253–255 are the kernel's"),
    ({"lan_device": ("lan0", "lan0")}, "lan_device", "a device is listed twice"),
    ({"tproxy_mark": "0x40000000"}, "tproxy_mark", "the mask must leave bit 31 free"),
])
def test_data_plane_cross_checks(opts: Opts, option: str, message: str) -> None:
    _, problems = parse(("globals", "globals", opts))
    errs = errors(problems)
    assert [(p.option) for p in errs] == [option], problems
    assert message in errs[0].message


# --- IPv6 (issue 12) -------------------------------------------------------------------------

def test_ipv6_defaults() -> None:
    g = Globals()
    assert g.ipv6 is True
    assert g.bypass6 == config.DEFAULT_BYPASS6
    import ipaddress
    nets = [ipaddress.IPv6Network(n) for n in g.bypass6]
    # local, link-local, unique local, multicast, documentation and NAT64 never go to the proxy
    for addr in ("::1", "fe80::1", "fd12::1", "ff02::1", "2001:db8::1", "64:ff9b::192.0.2.1",
                 "::ffff:192.0.2.1", "3fff::1"):
        assert any(ipaddress.IPv6Address(addr) in n for n in nets), addr
    # the internet does
    for addr in ("2001:4860:4860::8888", "2606:4700::1111", "2a00:1450::1", "2001::1"):
        assert not any(ipaddress.IPv6Address(addr) in n for n in nets), addr


# (id, server options, its IPv6 addresses)
SERVER6_CASES: list[tuple[str, Opts, tuple[str, ...]]] = [
    ("IPv4 only", {"address": "203.0.113.1"}, ()),
    ("with address6", {"address": "203.0.113.1", "address6": "2001:db8:203::10"},
     ("2001:db8:203::10",)),
    ("address is IPv6", {"address": "2001:db8:203::10"}, ("2001:db8:203::10",)),
    ("both, the same", {"address": "2001:db8:203::10", "address6": "2001:db8:203:0::10"},
     ("2001:db8:203::10",)),
    ("both, different", {"address": "2001:db8:203::10", "address6": "2001:db8:203::11"},
     ("2001:db8:203::10", "2001:db8:203::11")),
    ("a host name and address6", {"address": "vps.example.com", "address6": "2001:db8::10"},
     ("2001:db8::10",)),
]


@pytest.mark.parametrize(("opts", "want"), [c[1:] for c in SERVER6_CASES],
                         ids=[c[0] for c in SERVER6_CASES])
def test_server_ipv6_addresses(opts: Opts, want: tuple[str, ...]) -> None:
    cfg, problems = parse(("server", "vps", opts), ("server", "off", {
        "address": "203.0.113.2", "address6": "2001:db8::99", "enabled": "0"}))
    assert problems == []
    assert cfg.servers[0].addresses6() == want
    assert cfg.server_addresses6() == want  # the disabled server's are not there
    assert all(":" not in a for a in cfg.server_addresses())


# (id, the path's list, the global list, IPv4 targets, IPv6 targets) — servers: 203.0.113.1
# and 2001:db8:203::10
TARGET6_CASES: list[tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...],
                          tuple[str, ...]]] = [
    ("nothing: the servers, per family", (), (), ("203.0.113.1",), ("2001:db8:203::10",)),
    ("a global mixed list, split", (), ("192.0.2.9", "2001:db8::9"), ("192.0.2.9",),
     ("2001:db8::9",)),
    ("global IPv4 only: IPv6 falls back to the servers", (), ("192.0.2.9",), ("192.0.2.9",),
     ("2001:db8:203::10",)),
    ("the path's IPv6 list wins in IPv6 only", ("2001:db8::1",), ("192.0.2.9", "2001:db8::9"),
     ("192.0.2.9",), ("2001:db8::1",)),
    ("the path's IPv4 list leaves IPv6 to the global one", ("192.0.2.1",),
     ("2001:db8::9",), ("192.0.2.1",), ("2001:db8::9",)),
]


@pytest.mark.parametrize(("own", "glob", "want4", "want6"), [c[1:] for c in TARGET6_CASES],
                         ids=[c[0] for c in TARGET6_CASES])
def test_targets_for_each_family(own: tuple[str, ...], glob: tuple[str, ...],
                                 want4: tuple[str, ...], want6: tuple[str, ...]) -> None:
    specs: list[tuple[str, str | None, Opts]] = [
        ("server", "vps", {"address": "203.0.113.1", "address6": "2001:db8:203::10"})]
    if glob:
        specs.append(("globals", "globals", {"probe_target": glob}))
    path: Opts = {"device": "eth1"}
    if own:
        path["probe_target"] = own
    specs.append(("path", "wan1", path))
    cfg, problems = parse(*specs)
    assert problems == []
    assert cfg.targets_for(cfg.paths[0]) == cfg.targets_for(cfg.paths[0], 4) == want4
    assert cfg.targets_for(cfg.paths[0], 6) == want6


def test_a_v6_gateway_in_the_v4_option_says_where_it_goes() -> None:
    _, problems = parse_text("config path 'wan1'\n\toption device 'eth1'\n"
                             "\toption gateway 'fe80::1'\n")
    assert [str(p) for p in problems] == [
        "error: bonding.wan1.gateway='fe80::1': an IPv6 address: an IPv6 gateway goes in "
        "option gateway6"]


def test_ipv6_options_with_ipv6_off_are_warnings_that_say_so() -> None:
    cfg, problems = parse(
        ("globals", "globals", {"ipv6": "0", "probe_target": ("192.0.2.1", "2001:db8::1")}),
        ("server", "v6only", {"address": "2001:db8:203::10"}),
        ("server", "both", {"address": "203.0.113.1", "address6": "2001:db8:203::11"}),
        ("path", "wan1", {"device": "eth1", "gateway6": "fe80::1",
                          "probe_target": "2001:db8::2"}))
    assert errors(problems) == []  # the config is used
    assert where(problems) == [
        (WARNING, "v6only", "address", "2001:db8:203::10"),
        (WARNING, "globals", "probe_target", "2001:db8::1"),
        (WARNING, "wan1", "probe_target", "2001:db8::2"),
        (WARNING, "wan1", "gateway6", "fe80::1"),
    ]
    assert "its connection is not bonded" in problems[0].message
    assert all("option ipv6 is 0" in p.message for p in problems)
    assert cfg.globals.ipv6 is False
    _, on = parse(("globals", "globals", {"probe_target": "2001:db8::1"}),
                  ("server", "v6only", {"address": "2001:db8:203::10"}))
    assert on == []
