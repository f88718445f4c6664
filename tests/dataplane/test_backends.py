"""Proxy configs generated from UCI, checked field by field against each proxy's own definition.

Each generated key is checked against the struct that parses it (the JSON tag and the Go type),
as read in the proxies' sources; sing-box's configs are also checked by the real binary
(`sing-box check`, as installed by tools/install-deps.sh), which rejects unknown fields and bad
keys.  The sources read:

- Xray-core, commit 2323273e373f06b829b8c1cc0b4da149153e7358:
  infra/conf/xray.go (Config, InboundDetourConfig, OutboundDetourConfig, and the protocol
  names "dokodemo-door" and "shadowsocks" of inboundConfigLoader/outboundConfigLoader),
  infra/conf/dokodemo.go (DokodemoConfig), infra/conf/shadowsocks.go (ShadowsocksClientConfig,
  ShadowsocksServerTarget, cipherFromString), infra/conf/transport_internet.go (StreamConfig),
  infra/conf/transport_sockopt.go (SocketConfig: "tproxy" is "tproxy"|"redirect"|off, "mark"
  int32, "tcpMptcp" bool), infra/conf/common.go (NetworkList: "tcp,udp" or a list),
  infra/conf/log.go (LogConfig).
- sing-box, commit 7df171ff20cdcd5e79dd373198176811dabc7742:
  option/options.go (_Options, LogOptions), option/inbound.go (_Inbound, ListenOptions),
  option/redir.go (TProxyInboundOptions), option/outbound.go (_Outbound, DialerOptions:
  "routing_mark" FwMark, "tcp_multi_path" bool; ServerOptions), option/shadowsocks.go
  (ShadowsocksOutboundOptions), option/udp_over_tcp.go (UDPOverTCPOptions), option/route.go
  (RouteOptions: "final", "rules"), option/rule.go and rule_action.go (a rule without
  "action" routes to its "outbound"), option/types.go (NetworkList: "tcp" or "udp"),
  option/tun.go (FwMark: a number or a "0x…" string), constant/proxy.go (types "tproxy",
  "shadowsocks"); docs/configuration/inbound/tproxy.md, outbound/shadowsocks.md (methods),
  shared/dial.md.  sing-box rejects unknown fields.
- shadowsocks-libev 3.3.5: shadowsocks-libev(8), CONFIG FILE (the JSON keys of the options).
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bonding import config
from bonding.config import Config, Globals, Secrets, Server
from bonding.dataplane import backends
from bonding.dataplane.backends import BackendError, launch
from bonding.dataplane.nft import proxy_mark

ME = pwd.getpwuid(os.geteuid()).pw_name  # the proxy runs as who runs the test

KEY = "k3y-for-the-test"
SERVER = Server(name="vps1", address="203.0.113.10", port=65101)
CFG = Config(globals=Globals(proxy="xray", tproxy_port=1100, proxy_user=ME), servers=(SERVER,))
SECRETS = Secrets({"vps1": KEY})
KEY16 = base64.b64encode(bytes(range(16))).decode()  # a Shadowsocks-2022 key of 16 bytes
KEY32 = base64.b64encode(bytes(range(32))).decode()
SS2022_KEYS = {"2022-blake3-aes-128-gcm": KEY16, "2022-blake3-aes-256-gcm": KEY32,
               "2022-blake3-chacha20-poly1305": KEY32}


def key_for(cipher: str) -> str:
    return SS2022_KEYS.get(cipher, KEY)

# --- Go types, as JSON ---------------------------------------------------------------------------
STR, INT, BOOL, OBJ, LIST = str, int, bool, dict, list
ANY_JSON = object


def check(obj: dict[str, Any], fields: dict[str, Any], where: str) -> None:
    """Every key is a field of the struct and has its JSON type."""
    for k, v in obj.items():
        assert k in fields, f"{where}: '{k}' is not a field ({sorted(fields)})"
        want = fields[k]
        if want is ANY_JSON:
            continue
        if want is INT:
            assert isinstance(v, int) and not isinstance(v, bool), f"{where}.{k}={v!r}"
        else:
            assert isinstance(v, want), f"{where}.{k}={v!r} is not {want.__name__}"


# Xray-core infra/conf (JSON tags of the structs the generated file goes through)
XRAY_CONFIG = {"transport": OBJ, "env": OBJ, "log": OBJ, "routing": OBJ, "dns": OBJ,
               "inbounds": LIST, "outbounds": LIST, "policy": OBJ, "api": OBJ, "metrics": OBJ,
               "stats": OBJ, "reverse": OBJ, "fakeDns": OBJ, "observatory": OBJ,
               "burstObservatory": OBJ, "version": OBJ, "geodata": OBJ}
XRAY_LOG = {"access": STR, "error": STR, "loglevel": STR, "dnsLog": BOOL, "maskAddress": STR}
XRAY_INBOUND = {"protocol": STR, "port": ANY_JSON, "listen": STR, "settings": OBJ, "tag": STR,
                "streamSettings": OBJ, "sniffing": OBJ}
XRAY_OUTBOUND = {"protocol": STR, "sendThrough": STR, "tag": STR, "settings": OBJ,
                 "streamSettings": OBJ, "proxySettings": OBJ, "mux": OBJ,
                 "targetStrategy": STR}
XRAY_DOKODEMO = {"allowedNetwork": ANY_JSON, "rewriteAddress": STR, "rewritePort": INT,
                 "network": ANY_JSON, "address": STR, "port": INT, "portMap": OBJ,
                 "followRedirect": BOOL, "userLevel": INT}
XRAY_SS_CLIENT = {"address": STR, "port": INT, "level": INT, "email": STR, "method": STR,
                  "password": STR, "servers": LIST}
XRAY_SS_TARGET = {"address": STR, "port": INT, "level": INT, "email": STR, "method": STR,
                  "password": STR}
XRAY_STREAM = {"address": STR, "port": INT, "method": ANY_JSON, "network": ANY_JSON,
               "security": STR, "finalmask": OBJ, "tlsSettings": OBJ, "realitySettings": OBJ,
               "rawSettings": OBJ, "tcpSettings": OBJ, "xhttpSettings": OBJ,
               "splithttpSettings": OBJ, "kcpSettings": OBJ, "grpcSettings": OBJ,
               "wsSettings": OBJ, "httpupgradeSettings": OBJ, "hysteriaSettings": OBJ,
               "sockopt": OBJ}
XRAY_SOCKOPT = {"mark": INT, "tcpFastOpen": ANY_JSON, "tproxy": STR,
                "acceptProxyProtocol": BOOL, "domainStrategy": STR, "dialerProxy": STR,
                "tcpKeepAliveInterval": INT, "tcpKeepAliveIdle": INT, "tcpCongestion": STR,
                "tcpWindowClamp": INT, "tcpMaxSeg": INT, "penetrate": BOOL,
                "tcpUserTimeout": INT, "v6only": BOOL, "interface": STR, "tcpMptcp": BOOL,
                "customSockopt": LIST, "addressPortStrategy": STR, "happyEyeballs": OBJ,
                "trustedXForwardedFor": LIST}
XRAY_CIPHERS = {"aes-128-gcm", "aes-256-gcm", "chacha20-ietf-poly1305",
                "2022-blake3-aes-128-gcm", "2022-blake3-aes-256-gcm",
                "2022-blake3-chacha20-poly1305"}
XRAY_LOGLEVELS = {"debug", "info", "warning", "error", "none"}

# sing-box option/
SB_OPTIONS = {"$schema": STR, "log": OBJ, "dns": OBJ, "ntp": OBJ, "certificate": OBJ,
              "endpoints": LIST, "inbounds": LIST, "outbounds": LIST, "route": OBJ,
              "services": LIST, "experimental": OBJ}
SB_LOG = {"disabled": BOOL, "level": STR, "output": STR, "timestamp": BOOL}
SB_LISTEN = {"listen": STR, "listen_port": INT, "bind_interface": STR, "routing_mark": ANY_JSON,
             "reuse_addr": BOOL, "netns": STR, "disable_tcp_keep_alive": BOOL,
             "tcp_keep_alive": STR, "tcp_keep_alive_interval": STR, "tcp_fast_open": BOOL,
             "tcp_multi_path": BOOL, "udp_fragment": BOOL, "udp_timeout": ANY_JSON,
             "detour": STR, "sniff": BOOL, "sniff_override_destination": BOOL,
             "sniff_timeout": STR, "domain_strategy": STR,
             "udp_disable_domain_unmapping": BOOL}
SB_TPROXY_IN = {"type": STR, "tag": STR, **SB_LISTEN, "network": STR}
SB_UOT = {"enabled": BOOL, "version": INT}
SB_RULE = {"network": ANY_JSON, "port": ANY_JSON, "outbound": STR, "action": STR,
           "inbound": ANY_JSON, "protocol": ANY_JSON, "ip_cidr": ANY_JSON}
SB_DIAL = {"detour": STR, "bind_interface": STR, "inet4_bind_address": STR,
           "inet6_bind_address": STR, "bind_address_no_port": BOOL, "protect_path": STR,
           "routing_mark": INT, "reuse_addr": BOOL, "netns": STR, "connect_timeout": STR,
           "tcp_fast_open": BOOL, "tcp_multi_path": BOOL, "disable_tcp_keep_alive": BOOL,
           "tcp_keep_alive": STR, "tcp_keep_alive_interval": STR, "udp_fragment": BOOL,
           "domain_resolver": ANY_JSON, "network_strategy": ANY_JSON, "network_type": ANY_JSON,
           "fallback_network_type": ANY_JSON, "fallback_delay": STR, "domain_strategy": STR}
SB_SS_OUT = {"type": STR, "tag": STR, **SB_DIAL, "server": STR, "server_port": INT,
             "method": STR, "password": STR, "plugin": STR, "plugin_opts": STR,
             "network": STR, "udp_over_tcp": ANY_JSON, "multiplex": OBJ}
SB_ROUTE = {"geoip": OBJ, "geosite": OBJ, "rules": LIST, "rule_set": LIST, "final": STR,
            "find_process": BOOL, "find_neighbor": BOOL, "dhcp_lease_files": ANY_JSON,
            "auto_detect_interface": BOOL, "override_android_vpn": BOOL,
            "default_interface": STR, "default_mark": ANY_JSON,
            "default_domain_resolver": ANY_JSON, "default_network_strategy": ANY_JSON,
            "default_network_type": ANY_JSON, "default_fallback_network_type": ANY_JSON,
            "default_fallback_delay": STR}
SB_CIPHERS = {"2022-blake3-aes-128-gcm", "2022-blake3-aes-256-gcm",
              "2022-blake3-chacha20-poly1305", "aes-128-gcm", "aes-192-gcm", "aes-256-gcm",
              "chacha20-ietf-poly1305", "xchacha20-ietf-poly1305"}
SB_LEVELS = {"trace", "debug", "info", "warn", "error", "fatal", "panic"}

# shadowsocks-libev(8) CONFIG FILE keys (and -T as "tcp_tproxy")
SS_KEYS = {"server": STR, "server_port": INT, "local_address": STR, "local_port": INT,
           "password": STR, "key": STR, "method": STR, "timeout": INT, "user": STR,
           "fast_open": BOOL, "reuse_port": BOOL, "no_delay": BOOL, "mode": STR,
           "tcp_tproxy": BOOL, "mtu": INT, "mptcp": BOOL, "nofile": INT, "plugin": STR,
           "plugin_opts": STR, "ipv6_first": BOOL, "nameserver": STR, "acl": STR}


@pytest.fixture
def bins(tmp_path: Path) -> str:
    for name in ("ss-redir", "mptcpize", "xray", "sing-box"):
        f = tmp_path / name
        f.write_text("#!/bin/sh\nexit 0\n")
        f.chmod(0o755)
    return str(tmp_path)


def conf(cfg: Config, tmp_path: Path, bins: str,
         secrets: Secrets = SECRETS) -> tuple[backends.Launch, dict[str, Any]]:
    la = launch(cfg, secrets, tmp_path, bins)
    assert len(la.files) == 1
    (text,) = la.files.values()
    data: dict[str, Any] = json.loads(text)
    return la, data


# --- xray ----------------------------------------------------------------------------------------

def test_xray_config_field_by_field(tmp_path: Path, bins: str) -> None:
    la, c = conf(CFG, tmp_path, bins)
    assert la.argv == (f"{bins}/xray", "run", "-c", str(tmp_path / "xray.json"))
    check(c, XRAY_CONFIG, "config")
    check(c["log"], XRAY_LOG, "log")
    assert c["log"]["loglevel"] in XRAY_LOGLEVELS
    (inb,) = c["inbounds"]
    check(inb, XRAY_INBOUND, "inbound")
    assert inb["protocol"] == "dokodemo-door"  # inboundConfigLoader: DokodemoConfig
    assert (inb["listen"], inb["port"]) == ("127.0.0.1", 1100)
    check(inb["settings"], XRAY_DOKODEMO, "dokodemo")
    assert inb["settings"] == {"network": "tcp,udp", "followRedirect": True}
    check(inb["streamSettings"], XRAY_STREAM, "inbound.streamSettings")
    check(inb["streamSettings"]["sockopt"], XRAY_SOCKOPT, "inbound.sockopt")
    assert inb["streamSettings"]["sockopt"] == {"tproxy": "tproxy"}  # IP_TRANSPARENT
    (out,) = c["outbounds"]
    check(out, XRAY_OUTBOUND, "outbound")
    assert out["protocol"] == "shadowsocks"  # outboundConfigLoader: ShadowsocksClientConfig
    check(out["settings"], XRAY_SS_CLIENT, "shadowsocks")
    (srv,) = out["settings"]["servers"]  # "one and only one member"
    check(srv, XRAY_SS_TARGET, "shadowsocks.servers[0]")
    assert srv == {"address": "203.0.113.10", "port": 65101,
                   "method": "chacha20-ietf-poly1305", "password": KEY}
    assert srv["method"] in XRAY_CIPHERS
    check(out["streamSettings"], XRAY_STREAM, "outbound.streamSettings")
    so = out["streamSettings"]["sockopt"]
    check(so, XRAY_SOCKOPT, "outbound.sockopt")
    assert so == {"tcpMptcp": True, "mark": proxy_mark(0xB0)}
    assert -(2**31) <= so["mark"] < 2**31 and so["mark"] & 0xB0 == 0  # int32, not our mark


def test_xray_without_udp(tmp_path: Path, bins: str) -> None:
    cfg = replace(CFG, globals=replace(CFG.globals, proxy_udp=False))
    _, c = conf(cfg, tmp_path, bins)
    assert c["inbounds"][0]["settings"]["network"] == "tcp"


@pytest.mark.parametrize("cipher", sorted(XRAY_CIPHERS))
def test_xray_speaks_every_cipher_we_allow(tmp_path: Path, bins: str, cipher: str) -> None:
    cfg = replace(CFG, servers=(replace(SERVER, cipher=cipher),))
    _, c = conf(cfg, tmp_path, bins, Secrets({"vps1": key_for(cipher)}))
    assert c["outbounds"][0]["settings"]["servers"][0]["method"] == cipher


# --- sing-box ------------------------------------------------------------------------------------

SB_CFG = replace(CFG, globals=replace(CFG.globals, proxy="sing-box", log_level="notice"),
                 servers=(replace(SERVER, cipher="2022-blake3-aes-128-gcm", udp_over_tcp=True),))
SB_SECRETS = Secrets({"vps1": KEY16})


def test_sing_box_config_field_by_field(tmp_path: Path, bins: str) -> None:
    la, c = conf(SB_CFG, tmp_path, bins, SB_SECRETS)
    assert la.argv == (f"{bins}/sing-box", "run", "--disable-color", "-c",
                       str(tmp_path / "sing-box.json"))
    # Go would make the tproxy listener MPTCP too (upstream's builds are linked without it)
    assert la.env == {"GODEBUG": "multipathtcp=0"}
    check(c, SB_OPTIONS, "options")
    check(c["log"], SB_LOG, "log")
    assert c["log"]["level"] in SB_LEVELS
    (inb,) = c["inbounds"]
    check(inb, SB_TPROXY_IN, "tproxy inbound")
    assert inb == {"type": "tproxy", "tag": "tproxy-in", "listen": "127.0.0.1",
                   "listen_port": 1100, "udp_timeout": 60}  # no network: both TCP and UDP
    out, dns = c["outbounds"]
    check(out, SB_SS_OUT, "shadowsocks outbound")
    # UDP rides the bonded MPTCP connection (UDP over TCP v2): it survives a link's death
    assert out == {"type": "shadowsocks", "tag": "bonding", "server": "203.0.113.10",
                   "server_port": 65101, "method": "2022-blake3-aes-128-gcm",
                   "password": KEY16, "tcp_multi_path": True, "routing_mark": proxy_mark(0xB0),
                   "udp_over_tcp": {"enabled": True, "version": 2}}
    check(out["udp_over_tcp"], SB_UOT, "udp_over_tcp")
    assert out["method"] in SB_CIPHERS
    # DNS takes Shadowsocks UDP: a query is not worth an MPTCP connection of its own
    check(dns, SB_SS_OUT, "dns outbound")
    assert dns == {"type": "shadowsocks", "tag": "bonding-dns", "server": "203.0.113.10",
                   "server_port": 65101, "method": "2022-blake3-aes-128-gcm",
                   "password": KEY16, "routing_mark": proxy_mark(0xB0), "network": "udp"}
    check(c["route"], SB_ROUTE, "route")
    (rule,) = c["route"]["rules"]
    check(rule, SB_RULE, "route.rules[0]")
    assert rule == {"network": "udp", "port": 53, "outbound": "bonding-dns"}
    assert c["route"]["final"] == out["tag"]


def test_sing_box_without_udp_over_tcp_relays_udp_natively(tmp_path: Path, bins: str) -> None:
    cfg = replace(SB_CFG, servers=(replace(SB_CFG.servers[0], udp_over_tcp=False),))
    _, c = conf(cfg, tmp_path, bins, SB_SECRETS)
    (out,) = c["outbounds"]
    assert "udp_over_tcp" not in out and "network" not in out
    assert c["route"] == {"final": "bonding"}


def test_sing_box_without_udp(tmp_path: Path, bins: str) -> None:
    cfg = replace(SB_CFG, globals=replace(SB_CFG.globals, proxy_udp=False))
    _, c = conf(cfg, tmp_path, bins, SB_SECRETS)
    assert c["inbounds"][0]["network"] == "tcp"  # NetworkList: "tcp" | "udp"
    assert "udp_timeout" not in c["inbounds"][0]
    (out,) = c["outbounds"]
    assert out["network"] == "tcp" and "udp_over_tcp" not in out


def real_sing_box() -> str:
    """The sing-box make deps installs beside the venv's python, or one on $PATH."""
    here = Path(sys.executable).parent / "sing-box"
    found = str(here) if os.access(here, os.X_OK) else shutil.which("sing-box")
    if found is None:
        pytest.fail("sing-box is not installed: run `make deps` (tools/install-deps.sh puts it "
                    "in .venv/bin)")
    return found


@pytest.mark.parametrize("cipher", sorted(SB_CIPHERS & set(config.CIPHERS)))
@pytest.mark.parametrize(("udp", "uot"), [(True, True), (True, False), (False, False)])
def test_the_real_sing_box_accepts_every_config_we_generate(tmp_path: Path, cipher: str,
                                                            udp: bool, uot: bool) -> None:
    sb = real_sing_box()
    cfg = replace(SB_CFG, globals=replace(SB_CFG.globals, proxy_udp=udp),
                  servers=(replace(SB_CFG.servers[0], cipher=cipher, udp_over_tcp=uot),))
    la = launch(cfg, Secrets({"vps1": key_for(cipher)}), tmp_path, str(Path(sb).parent))
    for name, text in la.files.items():
        (tmp_path / name).write_text(text)
    r = subprocess.run([sb, "check", "-c", str(tmp_path / "sing-box.json")],
                       capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode == 0, r.stderr


def test_the_program_version(tmp_path: Path, bins: str) -> None:
    assert backends.program_version("sing-box", str(Path(real_sing_box()).parent)) == \
        "sing-box 1.14.4"  # the one tools/install-deps.sh pins
    (Path(bins) / "ss-redir").write_text("#!/bin/sh\necho\necho 'shadowsocks-libev 3.3.5'\n")
    assert backends.program_version("shadowsocks-libev", bins) == "shadowsocks-libev 3.3.5"
    with pytest.raises(BackendError, match="printed no version"):
        backends.program_version("xray", bins)  # the stand-in prints nothing


def test_the_real_sing_box_rejects_what_is_wrong(tmp_path: Path) -> None:
    """The check above is not an empty one: the same binary refuses a bad field and a bad key."""
    sb = real_sing_box()
    la = launch(SB_CFG, SB_SECRETS, tmp_path, str(Path(sb).parent))
    good = json.loads(la.files["sing-box.json"])
    for bad in ({**good, "inbounds": [{**good["inbounds"][0], "tproxy": True}]},
                {**good, "outbounds": [{**good["outbounds"][0], "password": KEY32},
                                       *good["outbounds"][1:]]}):
        f = tmp_path / "bad.json"
        f.write_text(json.dumps(bad))
        r = subprocess.run([sb, "check", "-c", str(f)], capture_output=True, text=True,
                           timeout=30, check=False)
        assert r.returncode != 0


def test_a_shadowsocks_2022_key_of_the_wrong_size_is_refused_before_starting(
        tmp_path: Path, bins: str) -> None:
    for proxy in ("sing-box", "xray"):
        cfg = replace(SB_CFG, globals=replace(SB_CFG.globals, proxy=proxy))
        with pytest.raises(BackendError, match="decodes to 32 bytes; cipher "
                                               "2022-blake3-aes-128-gcm needs exactly 16") as ei:
            launch(cfg, Secrets({"vps1": KEY32}), tmp_path, bins)
        assert KEY32 not in str(ei.value) and "bonding_secrets" in str(ei.value)


def test_sing_box_refuses_an_ipv6_server_address_it_would_not_bond(tmp_path: Path,
                                                                   bins: str) -> None:
    """sing-box dials an IPv6 address without Multipath TCP (one link): refused, saying what to
    do; the server's IPv6 in address6 (for LAN IPv6) is fine."""
    v6 = replace(SB_CFG, servers=(replace(SB_CFG.servers[0], address="2001:db8:203::10"),))
    with pytest.raises(BackendError, match=r"sing-box bonds .* only towards an IPv4 address") as e:
        launch(v6, Secrets({"vps1": KEY16}), tmp_path, bins)
    assert "option address6" in str(e.value) and "'xray' or 'shadowsocks-libev'" in str(e.value)
    both = replace(SB_CFG, servers=(replace(SB_CFG.servers[0], address6="2001:db8:203::10"),))
    ok = launch(both, Secrets({"vps1": KEY16}), tmp_path, bins)
    conf = json.loads(ok.files["sing-box.json"])
    assert conf["outbounds"][0]["server"] == SB_CFG.servers[0].address
    assert conf["outbounds"][0]["tcp_multi_path"] is True
    xray = replace(v6, globals=replace(v6.globals, proxy="xray"))
    assert launch(xray, Secrets({"vps1": KEY16}), tmp_path, bins).backend == "xray"


def test_the_server_to_use_can_be_given(tmp_path: Path, bins: str) -> None:
    other = Server(name="vps2", address="198.51.100.7", cipher="2022-blake3-aes-128-gcm")
    cfg = replace(SB_CFG, servers=(*SB_CFG.servers, other))
    la = launch(cfg, Secrets({"vps1": KEY16, "vps2": KEY16}), tmp_path, bins, server=other)
    assert la.server == "vps2"
    assert json.loads(la.files["sing-box.json"])["outbounds"][0]["server"] == "198.51.100.7"


# --- shadowsocks-libev ---------------------------------------------------------------------------

def test_ss_libev_config_and_command(tmp_path: Path, bins: str) -> None:
    cfg = replace(CFG, globals=replace(CFG.globals, proxy="shadowsocks-libev"))
    la, c = conf(cfg, tmp_path, bins)
    # mptcpize turns ss-redir's TCP sockets into MPTCP; -T tproxy for TCP, -u UDP relay
    assert la.argv == (f"{bins}/mptcpize", "run", f"{bins}/ss-redir", "-c",
                       str(tmp_path / "ss-redir.json"), "-T", "-u")
    assert la.program == "ss-redir"
    check(c, SS_KEYS, "ss-redir.json")
    assert c == {"server": "203.0.113.10", "server_port": 65101, "local_address": "127.0.0.1",
                 "local_port": 1100, "password": KEY, "method": "chacha20-ietf-poly1305",
                 "timeout": backends.SS_TIMEOUT_S, "mode": "tcp_and_udp", "tcp_tproxy": True,
                 "no_delay": True}
    udp_off = replace(cfg, globals=replace(cfg.globals, proxy_udp=False))
    la, c = conf(udp_off, tmp_path, bins)
    assert "-u" not in la.argv and c["mode"] == "tcp_only"


@pytest.mark.parametrize("cipher", ["2022-blake3-aes-128-gcm", "2022-blake3-chacha20-poly1305"])
def test_ss_libev_refuses_ciphers_it_does_not_speak(tmp_path: Path, bins: str,
                                                    cipher: str) -> None:
    cfg = Config(globals=Globals(proxy="shadowsocks-libev", proxy_user=ME),
                 servers=(replace(SERVER, cipher=cipher),))
    with pytest.raises(BackendError, match=f"shadowsocks-libev does not speak {cipher}"):
        launch(cfg, Secrets({"vps1": key_for(cipher)}), tmp_path, bins)


# --- common --------------------------------------------------------------------------------------

@pytest.mark.parametrize("proxy", ["shadowsocks-libev", "xray", "sing-box"])
def test_the_key_is_in_the_file_only(tmp_path: Path, bins: str, proxy: str) -> None:
    cfg = replace(CFG, globals=replace(CFG.globals, proxy=proxy))
    la = launch(cfg, SECRETS, tmp_path, bins)
    assert not any(KEY in a for a in la.argv)
    assert KEY not in repr(la.argv)
    assert sum(KEY in t for t in la.files.values()) == 1


@pytest.mark.parametrize(("proxy", "missing", "hint"), [
    ("shadowsocks-libev", "ss-redir", "shadowsocks-libev-ss-redir"),
    ("shadowsocks-libev", "mptcpize", "apt install mptcpize"),
    ("xray", "xray", "xray-core"),
    ("sing-box", "sing-box", "add sing-box"),
])
def test_a_missing_program_is_named_with_how_to_get_it(tmp_path: Path, bins: str, proxy: str,
                                                       missing: str, hint: str) -> None:
    (Path(bins) / missing).unlink()
    cfg = replace(CFG, globals=replace(CFG.globals, proxy=proxy))
    with pytest.raises(BackendError, match=f"{missing} not found") as ei:
        launch(cfg, SECRETS, tmp_path, bins)
    assert hint in str(ei.value)


def test_the_first_enabled_server_is_used(tmp_path: Path, bins: str) -> None:
    other = Server(name="vps0", address="198.51.100.7", enabled=False)
    cfg = replace(CFG, servers=(other, SERVER))
    la = launch(cfg, Secrets({"vps1": KEY}), tmp_path, bins)
    assert la.server == "vps1"


def test_the_preferred_server_is_used_without_a_choice(tmp_path: Path, bins: str) -> None:
    later = replace(SERVER, name="vps2", address="198.51.100.7", priority=5)
    cfg = replace(CFG, servers=(SERVER, later))
    la = launch(cfg, Secrets({"vps1": KEY, "vps2": KEY}), tmp_path, bins)
    assert la.server == "vps2"  # priority 5 before the default 10


@pytest.mark.parametrize("proxy", ["xray", "sing-box", "shadowsocks-libev"])
def test_the_server_asked_for_is_used(tmp_path: Path, bins: str, proxy: str) -> None:
    two = replace(SERVER, name="vps2", address="198.51.100.7", port=65102)
    cfg = replace(CFG, globals=replace(CFG.globals, proxy=proxy), servers=(SERVER, two))
    secrets = Secrets({"vps1": KEY, "vps2": KEY + "-2"})
    one = launch(cfg, secrets, tmp_path, bins, server=SERVER)
    other = launch(cfg, secrets, tmp_path, bins, server=two)
    assert (one.server, other.server) == ("vps1", "vps2")
    assert one.key() != other.key()  # a switch restarts the proxy
    (text,) = other.files.values()
    assert "198.51.100.7" in text and "65102" in text and KEY + "-2" in text
    assert "203.0.113.10" not in text
    assert launch(cfg, secrets, tmp_path, bins, server=SERVER).key() == one.key()


@pytest.mark.parametrize(("cfg", "secrets", "message"), [
    (replace(CFG, servers=()), SECRETS, "no enabled server"),
    (replace(CFG, servers=(replace(SERVER, enabled=False),)), SECRETS, "no enabled server"),
    (CFG, Secrets({}), "no key for server 'vps1'"),
    (replace(CFG, servers=(replace(SERVER, protocol="vless"),)), SECRETS,
     "protocol 'vless' is not supported"),
])
def test_what_cannot_start_says_why(tmp_path: Path, bins: str, cfg: Config, secrets: Secrets,
                                    message: str) -> None:
    with pytest.raises(BackendError, match=message) as ei:
        launch(cfg, secrets, tmp_path, bins)
    assert KEY not in str(ei.value)


# --- IPv6: a second listener on ::1 when the server has IPv6 -------------------------------------

SERVER6 = replace(SERVER, address6="2001:db8:203::10")


def with6(proxy: str, **g: Any) -> Config:
    return Config(globals=replace(CFG.globals, proxy=proxy, **g), servers=(SERVER6,))


@pytest.mark.parametrize("proxy", ["xray", "sing-box"])
def test_go_proxies_listen_on_both_loopbacks_when_lan_ipv6_is_proxied(
        tmp_path: Path, bins: str, proxy: str) -> None:
    _, c = conf(with6(proxy), tmp_path, bins)
    port = "port" if proxy == "xray" else "listen_port"
    got = [(i["tag"], i["listen"], i[port]) for i in c["inbounds"]]
    assert got == [("tproxy-in", "127.0.0.1", 1100), ("tproxy-in6", "::1", 1100)]
    fields = XRAY_INBOUND if proxy == "xray" else SB_TPROXY_IN
    for i, inb in enumerate(c["inbounds"]):
        check(inb, fields, f"inbound {i}")
    _, c = conf(with6(proxy, ipv6=False), tmp_path, bins)  # IPv6 off: one listener
    assert [i["listen"] for i in c["inbounds"]] == ["127.0.0.1"]
    _, c = conf(replace(with6(proxy), servers=(SERVER,)), tmp_path, bins)  # no IPv6 server
    assert [i["listen"] for i in c["inbounds"]] == ["127.0.0.1"]


def test_sing_box_without_udp_on_both_listeners(tmp_path: Path, bins: str) -> None:
    _, c = conf(with6("sing-box", proxy_udp=False), tmp_path, bins)
    assert [i.get("network") for i in c["inbounds"]] == ["tcp", "tcp"]


def test_ss_libev_runs_twice_under_twin_when_lan_ipv6_is_proxied(tmp_path: Path,
                                                                  bins: str) -> None:
    """ss-redir takes one listening address: one for IPv4 (127.0.0.1), one for IPv6 (::1), run
    as one process by bonding.dataplane.twin."""
    la = launch(with6("shadowsocks-libev"), SECRETS, tmp_path, bins)
    v4, v6 = tmp_path / "ss-redir.json", tmp_path / "ss-redir6.json"
    one = [f"{bins}/mptcpize", "run", f"{bins}/ss-redir", "-c"]
    me = pwd.getpwnam(ME)
    assert la.argv == (sys.executable, "-m", "bonding.dataplane.twin",
                       "--user", f"{me.pw_uid}:{me.pw_gid}", *one, str(v4), "-T", "-u",
                       "--", *one, str(v6), "-T", "-u")
    assert la.drops_itself  # the twin stays root and starts both as the proxy user
    assert la.program == "ss-redir"
    c4, c6 = (json.loads(la.files[f.name]) for f in (v4, v6))
    assert (c4["local_address"], c6["local_address"]) == ("127.0.0.1", "::1")
    assert {k: v for k, v in c4.items() if k != "local_address"} == {
        k: v for k, v in c6.items() if k != "local_address"}
    for c in (c4, c6):
        check(c, SS_KEYS, "ss-redir.json")
    # the bonded connection goes to the server's address as configured (IPv4 here)
    assert c6["server"] == "203.0.113.10"
    single = launch(replace(with6("shadowsocks-libev"), servers=(SERVER,)), SECRETS, tmp_path,
                    bins)
    assert single.argv[0] == f"{bins}/mptcpize" and list(single.files) == ["ss-redir.json"]


def test_mptcpize_refuses_a_program_with_file_capabilities_for_a_non_root_user(
        tmp_path: Path, bins: str) -> None:
    # the kernel ignores LD_PRELOAD then (secure execution): the proxy would be plain TCP
    assert os.geteuid() == 0, "setcap needs root"
    subprocess.run(["setcap", "cap_net_admin=ep", f"{bins}/ss-redir"], check=True)
    cfg = replace(with6("shadowsocks-libev"), servers=(SERVER,))
    with pytest.raises(BackendError, match=r"ss-redir has file capabilities .*setcap -r"):
        launch(replace(cfg, globals=replace(cfg.globals, proxy_user="nobody")), SECRETS,
               tmp_path, bins)
    assert launch(cfg, SECRETS, tmp_path, bins).user.uid == 0  # root: it works as before
