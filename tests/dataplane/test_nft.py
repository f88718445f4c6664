"""The nftables ruleset of the data plane, as data and as nft text (and, as root, as loaded)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bonding import config
from bonding.config import DEFAULT_BYPASS, Globals, Server
from bonding.dataplane import nft
from bonding.dataplane.nft import Nft, NftError, Ruleset, build, collapse, proxy_mark

from .nftns import nft_items, nft_load

LAB = Globals(lan_devices=("lan0",), bypass=("10.0.0.0/8", "192.0.2.0/24", "192.0.2.7"))


def test_build_takes_everything_from_the_config() -> None:
    rs = build(LAB, ["203.0.113.10", "198.51.100.2", "203.0.113.10"])
    assert rs == Ruleset(lan_devices=("lan0",), bypass=("10.0.0.0/8", "192.0.2.0/24"),
                         servers=("198.51.100.2", "203.0.113.10"), port=1100, mark=0xB0,
                         mask=0xB0, udp=True)
    g = replace(LAB, lan_devices=("br-lan", "wlan0"), tproxy_port=7777, tproxy_mark=0x100,
                tproxy_mask=0xFF00, proxy_udp=False)
    rs = build(g, [])
    assert (rs.lan_devices, rs.port, rs.mark, rs.mask, rs.udp, rs.servers) == (
        ("br-lan", "wlan0"), 7777, 0x100, 0xFF00, False, ())
    assert rs.protocols == ("tcp",)


def test_default_bypass_collapses_but_keeps_every_range() -> None:
    got = collapse(DEFAULT_BYPASS)
    assert "224.0.0.0/3" in got  # 224/4 + 240/4
    import ipaddress
    covered = [ipaddress.IPv4Network(n) for n in got]
    for n in DEFAULT_BYPASS:
        net = ipaddress.IPv4Network(n)
        assert any(net.subnet_of(c) for c in covered), n
    # nothing more than the list: the lab's and the internet's addresses are not in it
    for addr in ("1.1.1.1", "8.8.8.8", "100.128.0.1", "198.51.99.1", "203.0.114.1"):
        assert not any(ipaddress.IPv4Address(addr) in c for c in covered), addr


def test_rendered_text_in_order() -> None:
    text = build(LAB, ["203.0.113.10"]).render()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    # one transaction: create if missing, delete, define
    assert lines[:3] == ["table inet bonding {}", "delete table inet bonding",
                         "table inet bonding {"]
    assert "elements = { 10.0.0.0/8, 192.0.2.0/24 }" in lines
    assert "elements = { 203.0.113.10 }" in lines
    assert "type filter hook prerouting priority mangle; policy accept;" in lines
    assert 'iifname { "lan0" } meta nfproto ipv4 jump lan' in lines
    lan = lines[lines.index("chain lan {") + 1:]
    assert lan[:5] == [
        "ct direction reply return",
        "fib daddr type { local, broadcast, anycast, multicast } return",
        "ip daddr @bypass return",
        "ip daddr @servers return",
        "udp dport { 67, 68 } return",
    ]
    assert lan[5:7] == [
        "meta l4proto tcp tproxy ip to 127.0.0.1:1100 "
        "meta mark set meta mark & 0xffffff4f | 0x000000b0 accept",
        "meta l4proto udp tproxy ip to 127.0.0.1:1100 "
        "meta mark set meta mark & 0xffffff4f | 0x000000b0 accept",
    ]
    assert lan[7:] == ["}", "}"]


def test_no_udp_no_udp_tproxy_rule() -> None:
    text = build(replace(LAB, proxy_udp=False), []).render()
    assert "meta l4proto tcp tproxy" in text
    assert "meta l4proto udp tproxy" not in text
    assert "elements" not in text.split("set servers")[1].split("}")[0]  # empty set, no list


def test_empty_bypass_list_is_valid_text() -> None:
    text = build(replace(LAB, bypass=()), []).render()
    assert "elements" not in text


@pytest.mark.parametrize("mask", [0x1, 0xB0, 0xFF, 0xFF00, 0x3F00, 0x7FFF0000 >> 1])
def test_proxy_mark_never_matches_the_tproxy_rule(mask: int) -> None:
    out = proxy_mark(mask)
    assert out & mask == 0
    for mark in (mask, mask & -mask):  # whatever mark within the mask
        assert out & mask != mark
    assert out < 2**32


def test_device_names_are_quoted_and_checked() -> None:
    assert '"br-lan"' in build(replace(LAB, lan_devices=("br-lan",)), []).render()
    with pytest.raises(NftError, match="cannot be written in an nft string"):
        build(replace(LAB, lan_devices=('x"y',)), []).render()


# --- the Nft driver with a stand-in nft (no root) -----------------------------------------------

@pytest.fixture
def fake_nft(tmp_path: Path) -> Path:
    """An `nft` that appends what it is given to calls.log; fails when the text has FAIL."""
    prog = tmp_path / "nft"
    prog.write_text("#!/bin/sh\ncat >> \"$(dirname \"$0\")/calls.log\"\n"
                    "echo ---- >> \"$(dirname \"$0\")/calls.log\"\n"
                    "grep -q FAIL \"$(dirname \"$0\")/calls.log\" && "
                    "{ echo 'Error: No such file or directory' >&2; exit 1; }\nexit 0\n")
    prog.chmod(0o755)
    return prog


def calls(fake: Path) -> list[str]:
    log = fake.parent / "calls.log"
    return [c.strip() for c in log.read_text().split("----")[:-1]] if log.exists() else []


def test_apply_is_one_call_and_skips_an_unchanged_ruleset(fake_nft: Path,
                                                          tmp_path: Path) -> None:
    inc = tmp_path / "run" / "fw4.nft"
    n = Nft(nft=str(fake_nft), include=inc)
    rs = build(LAB, ["203.0.113.10"])
    assert n.apply(rs) is True
    assert n.apply(rs) is False
    assert calls(fake_nft) == [rs.render().strip()]
    assert inc.read_text() == rs.render()  # the fw4 include holds the same text
    n.remove()
    assert calls(fake_nft)[-1] == nft.REMOVE.strip()
    assert inc.read_text() == nft.REMOVE
    n.forget_include()
    assert not inc.exists()


def test_without_fw4_no_include_is_written(fake_nft: Path, tmp_path: Path) -> None:
    n = Nft(nft=str(fake_nft), include=None)
    n.apply(build(LAB, []))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calls.log", "nft"]


def test_nft_errors_are_clear(fake_nft: Path, tmp_path: Path) -> None:
    with pytest.raises(NftError, match="not found: install nftables"):
        Nft(nft=str(tmp_path / "nonexistent")).apply(build(LAB, []))
    (tmp_path / "calls.log").write_text("FAIL\n----\n")
    n = Nft(nft=str(fake_nft))
    with pytest.raises(NftError, match=r"nft -f failed: .*kmod-nft-tproxy"):
        n.apply(build(LAB, []))
    assert n.applied is None  # a failed load is not taken for loaded


# --- the real nft in a throwaway namespace (root) ----------------------------------------------

def test_the_kernel_takes_it_and_a_reload_replaces_it(netns: str) -> None:
    nft_load(netns, "table inet fw4 {\n\tchain input {\n\t\ttype filter hook input priority 0;"
                   "\n\t}\n}\n")  # someone else's table, never touched
    rs = build(replace(LAB, lan_devices=("lan0", "br-lan")), ["203.0.113.10"])
    nft_load(netns, rs.render())
    nft_load(netns, rs.render())  # loading it again is fine (delete + add in one go)
    items = nft_items(netns)
    tables = {(i["table"]["family"], i["table"]["name"]) for i in items if "table" in i}
    assert tables == {("inet", "fw4"), ("inet", "bonding")}
    sets = {i["set"]["name"]: i["set"] for i in items if "set" in i}
    assert [e["prefix"] for e in sets["bypass"]["elem"]] == [
        {"addr": "10.0.0.0", "len": 8}, {"addr": "192.0.2.0", "len": 24}]
    assert sets["servers"]["elem"] == ["203.0.113.10"]
    chains = {i["chain"]["name"]: i["chain"] for i in items
              if "chain" in i and i["chain"]["table"] == "bonding"}
    assert chains["prerouting"]["hook"] == "prerouting"
    assert chains["prerouting"]["prio"] == -150
    rules = [i["rule"] for i in items if "rule" in i and i["rule"]["chain"] == "lan"]
    tproxy = [r for r in rules if any("tproxy" in x for x in r["expr"])]
    assert len(tproxy) == 2
    for r in tproxy:
        tp = next(x["tproxy"] for x in r["expr"] if "tproxy" in x)
        assert (tp["family"], tp["addr"], tp["port"]) == ("ip", "127.0.0.1", 1100)
    # a new config replaces the table whole
    nft_load(netns, build(replace(LAB, proxy_udp=False, tproxy_port=1200), []).render())
    rules = [i["rule"] for i in nft_items(netns) if "rule" in i and i["rule"]["chain"] == "lan"]
    ports = [next(x["tproxy"]["port"] for x in r["expr"] if "tproxy" in x) for r in rules
             if any("tproxy" in x for x in r["expr"])]
    assert ports == [1200]
    # and removing it leaves the other table alone (also when ours is already gone)
    nft_load(netns, nft.REMOVE)
    nft_load(netns, nft.REMOVE)
    assert {i["table"]["name"] for i in nft_items(netns) if "table" in i} == {"fw4"}


# --- IPv6 -------------------------------------------------------------------------------------

LAB6 = replace(LAB, bypass6=("fd00::/8", "fe80::/10", "2001:db8:192::/64", "2001:db8:192::7"))


def test_without_ipv6_the_table_has_nothing_of_it() -> None:
    text = build(LAB6, ["203.0.113.10"], ["2001:db8:203::10"]).render()
    assert "ip6" not in text and "lan6" not in text and "ipv6_addr" not in text
    assert text == build(LAB, ["203.0.113.10"]).render()  # as before IPv6 came


def test_ipv6_build_and_text() -> None:
    rs = build(LAB6, ["203.0.113.10"], ["2001:db8:203::10", "2001:db8:203::9",
                                        "2001:db8:203::10"], ipv6=True)
    assert rs.bypass6 == ("2001:db8:192::/64", "fd00::/8", "fe80::/10")  # collapsed, sorted
    assert rs.servers6 == ("2001:db8:203::9", "2001:db8:203::10")
    lines = [ln.strip() for ln in rs.render().splitlines() if ln.strip()]
    assert 'iifname { "lan0" } meta nfproto ipv6 jump lan6' in lines
    assert "elements = { 2001:db8:192::/64, fd00::/8, fe80::/10 }" in lines
    assert "elements = { 2001:db8:203::9, 2001:db8:203::10 }" in lines
    lan6 = lines[lines.index("chain lan6 {") + 1:]
    assert lan6 == [
        "ct direction reply return",
        "fib daddr type { local, anycast, multicast } return",
        "ip6 daddr @bypass6 return",
        "ip6 daddr @servers6 return",
        "udp dport { 546, 547 } return",  # DHCPv6
        "meta l4proto tcp tproxy ip6 to [::1]:1100 "
        "meta mark set meta mark & 0xffffff4f | 0x000000b0 accept",
        "meta l4proto udp tproxy ip6 to [::1]:1100 "
        "meta mark set meta mark & 0xffffff4f | 0x000000b0 accept",
        "}", "}"]
    # the IPv4 chain is the same as without IPv6
    lan = lines[lines.index("chain lan {") + 1:lines.index("chain lan6 {")]
    base = [ln.strip() for ln in build(LAB6, ["203.0.113.10"]).render().splitlines()
            if ln.strip()]
    assert lan == base[base.index("chain lan {") + 1:-1]
    no_udp = build(replace(LAB6, proxy_udp=False), [], ipv6=True).render()
    assert "udp tproxy ip6" not in no_udp and "tcp tproxy ip6" in no_udp


@pytest.mark.parametrize(("g", "server", "reason"), [
    (Globals(), Server("vps", "203.0.113.10", address6="2001:db8::10"), ""),
    (Globals(), Server("vps", "2001:db8::10"), ""),
    (Globals(ipv6=False), Server("vps", "203.0.113.10", address6="2001:db8::10"),
     "option ipv6 is 0"),
    (Globals(), Server("vps", "203.0.113.10"), "server 'vps' has no IPv6 address (option "
     "address6): it could not reach IPv6 destinations"),
    (Globals(), None, "no enabled server"),
], ids=["address6", "address is IPv6", "ipv6 off", "IPv4-only server", "no server"])
def test_when_lan_ipv6_is_proxied(g: Globals, server: Server | None, reason: str) -> None:
    assert nft.lan_ipv6(g, server) == reason


def test_the_kernel_takes_the_ipv6nft_items(netns: str) -> None:
    rs = build(replace(LAB6, bypass6=config.DEFAULT_BYPASS6), ["203.0.113.10"],
               ["2001:db8:203::10"], ipv6=True)
    nft_load(netns, rs.render())
    items = nft_items(netns)
    sets = {i["set"]["name"]: i["set"] for i in items if "set" in i}
    assert sets["servers6"]["elem"] == ["2001:db8:203::10"]
    assert {"prefix": {"addr": "fe80::", "len": 10}} in sets["bypass6"]["elem"]
    rules = [i["rule"] for i in items if "rule" in i and i["rule"]["chain"] == "lan6"]
    tps = [next(x["tproxy"] for x in r["expr"] if "tproxy" in x) for r in rules
           if any("tproxy" in x for x in r["expr"])]
    assert [(t["family"], t["addr"], t["port"]) for t in tps] == [("ip6", "::1", 1100)] * 2
