"""Pinning in the data plane (bonding.dataplane.pinning): what each rule does with the paths as
they are, the nft text of table inet bonding_rules, the policy rules of the plan, and what
status and bondingctl show."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bonding import ctl
from bonding.config import Config, Globals
from bonding.config.rules import Rule
from bonding.core.health import State
from bonding.core.plan import PathView, PinMarks, RuleWant, plan
from bonding.dataplane import domains, nft, pinning
from bonding.dataplane.pinning import Pinning, build, decide, paths_now

G = Globals(lan_devices=("lan0",))
TV = Rule(name="tv", src_mac=("aa:bb:cc:dd:ee:01",), action="path:wan2")


def view(i: int, state: State = State.UP, *, link_ok: bool = True,
         address: str | None = "auto") -> PathView:
    return PathView(name=f"wan{i + 1}", index=i, device=f"wan{i + 1}", ifindex=10 + i,
                    address=f"100.64.{i + 1}.2" if address == "auto" else address,
                    gateway=f"100.64.{i + 1}.1", state=state, link_ok=link_ok, backup=False)


UP = [view(0), view(1)]
WAN2_DOWN = [view(0), view(1, State.DOWN)]


def test_marks_sit_above_the_tproxy_mask_and_the_proxy_bit() -> None:
    m = PinMarks.above(0xB0)
    assert m.mask == 0x7E00  # bits 9-14: 0x100 is the proxy's own mark
    assert (m.path(0), m.path(1), m.path(31), m.any) == (0x200, 0x400, 0x4000, 0x7E00)
    assert not m.mask & (0xB0 | nft.proxy_mark(0xB0))


def test_decisions_follow_the_path_state() -> None:
    now = paths_now(UP)
    assert (decide(TV, now).effective, decide(TV, now).why) == ("path:wan2", "wan2 up")
    down = paths_now(WAN2_DOWN)
    for fallback, effective in (("bond", "bond"), ("any", "any"), ("drop", "drop")):
        d = decide(replace(TV, fallback=fallback), down)
        assert (d.effective, d.why) == (effective, f"wan2 down (down): fallback {fallback}")
    d = decide(TV, paths_now([view(0), view(1, link_ok=False)]))
    assert d.why == "wan2 down (no link): fallback bond"
    d = decide(TV, paths_now([view(0), view(1, address=None)]))
    assert d.why == "wan2 down (no IPv4 address): fallback bond"
    d = decide(replace(TV, action="path:wan9", fallback="any"), now)
    assert (d.effective, d.why) == ("any", "no path 'wan9': fallback any")
    assert decide(replace(TV, action="bypass"), down).effective == "any"
    assert decide(replace(TV, action="bond"), down).effective == "bond"
    # degraded is live: a slow WAN still carries what is pinned to it
    assert decide(TV, paths_now([view(0), view(1, State.DEGRADED)])).effective == "path:wan2"


def _chain(text: str, name: str) -> list[str]:
    lines = [ln.strip() for ln in text.splitlines()]
    lan = lines[lines.index(f"chain {name} {{") + 1:]
    return [ln for ln in lan[:lan.index("}")] if ln and not ln.startswith("#")]


def _lan(text: str) -> list[str]:
    return _chain(text, "lan")


def mark(value: int) -> str:
    """What a rule that marks ends with: the connection's mark, the packet's, accept."""
    keep = "0xffff81ff"
    return (f"ct mark set ct mark & {keep} | {value:#010x} "
            f"meta mark set meta mark & {keep} | {value:#010x} accept")


def cfg_with(*rules: Rule) -> Config:
    return Config(globals=G, rules=rules)


def test_text_of_a_pinned_device_up_and_down() -> None:
    rs, _ = build(cfg_with(replace(TV, block_quic=True)), UP)
    text = rs.render()
    # created if missing (never deleted: its sets keep what dnsmasq put in them), its chains
    # flushed and written again, in one transaction
    assert text.splitlines()[1:12] == [
        "table inet bonding_rules {",
        "\tchain prerouting { type filter hook prerouting priority mangle - 1; policy accept; }",
        "\tchain lan {}", "\tchain decided {}",
        "\tchain postrouting { type nat hook postrouting priority srcnat - 1; policy accept; }",
        "}",
        "flush chain inet bonding_rules prerouting", "flush chain inet bonding_rules lan",
        "flush chain inet bonding_rules decided", "flush chain inet bonding_rules postrouting",
        "table inet bonding_rules {"]
    assert 'iifname { "lan0" } jump lan' in text
    assert _lan(text) == [
        "ct direction reply return",
        "fib daddr type { local, broadcast, anycast, multicast } return",
        "ct state != new goto decided",  # a connection's first packet is judged
        "ether saddr { aa:bb:cc:dd:ee:01 } udp dport 443 reject",
        f"meta nfproto ipv4 ether saddr {{ aa:bb:cc:dd:ee:01 }} {mark(0x400)}",
        f"meta nfproto ipv6 ether saddr {{ aa:bb:cc:dd:ee:01 }} {mark(0x7E00)}",
    ]
    # its later packets get the mark it got, whatever the rules say by then
    assert _chain(text, "decided") == [
        f"ct mark & 0x00007e00 == {v} meta mark set meta mark & 0xffff81ff | {v} accept"
        for v in ("0x00000200", "0x00000400", "0x00007e00")]
    assert ("meta nfproto ipv4 meta mark & 0x00007e00 != 0 oifname { \"wan1\", \"wan2\" } "
            "masquerade") in text
    assert "# rule tv: path:wan2 (wan2 up)" in text
    for fallback, last in (("bond", "return"), ("drop", "drop"), ("any", mark(0x7E00))):
        rs, _ = build(cfg_with(replace(TV, fallback=fallback)), WAN2_DOWN)
        assert _lan(rs.render())[3:] == [f"ether saddr {{ aa:bb:cc:dd:ee:01 }} {last}"]


def test_text_of_address_port_and_protocol_matches() -> None:
    rules = (
        Rule(name="a", src_ip=("192.0.2.0/28", "192.0.2.20"), dest_ip=("198.51.100.10",),
             proto="tcp", dest_port=("443", "8000-8100"), action="path:wan1"),
        Rule(name="b", proto="udp", action="bypass"),
        Rule(name="c", dest_port=("5060",), action="bond", block_quic=True),
        Rule(name="d", dest_ip=("203.0.113.0/24",), action="path:wan2", fallback="drop"),
    )
    rs, _ = build(cfg_with(*rules), WAN2_DOWN)
    assert _lan(rs.render())[3:] == [
        "meta nfproto ipv4 ip saddr { 192.0.2.0/28, 192.0.2.20 } ip daddr { 198.51.100.10 } "
        f"tcp dport {{ 443, 8000-8100 }} {mark(0x200)}",
        f"meta l4proto udp {mark(0x7E00)}",
        "udp dport 443 reject",
        "meta l4proto { tcp, udp } th dport { 5060 } return",
        "meta nfproto ipv4 ip daddr { 203.0.113.0/24 } drop",
    ]


def test_text_of_a_domain_rule_and_its_dnsmasq_lines() -> None:
    rule = Rule(name="tv", dest_domain=("tv.example", "cdn.example"), proto="tcp",
                action="path:wan2", block_quic=True)
    rs, _ = build(cfg_with(rule), UP)
    text = rs.render()
    assert "\tset d4_tv { type ipv4_addr; flags timeout; timeout 1d; }" in text
    assert "\tset d6_tv { type ipv6_addr; flags timeout; timeout 1d; }" in text
    assert _lan(text)[3:] == [
        "meta nfproto ipv4 ip daddr @d4_tv udp dport 443 reject",
        f"meta nfproto ipv4 ip daddr @d4_tv meta l4proto tcp {mark(0x400)}",
        "meta nfproto ipv6 ip6 daddr @d6_tv udp dport 443 reject",
        f"meta nfproto ipv6 ip6 daddr @d6_tv meta l4proto tcp {mark(0x7E00)}",
    ]
    assert domains.nftset_lines((rule, Rule(name="x")), "inet", "bonding_rules") == (
        "# Generated by bondingd from the rule sections of /etc/config/bonding: do not edit.\n"
        "# rule tv\n"
        "nftset=/tv.example/cdn.example/4#inet#bonding_rules#d4_tv,"
        "6#inet#bonding_rules#d6_tv\n")
    assert domains.nftset_lines((Rule(name="x"),), "inet", "bonding_rules") == ""
    assert domains.set_names(Rule(name="@rule[3]")) == ("d4__rule_3_", "d6__rule_3_")


def test_the_dnsmasq_file_is_written_on_change_and_removed_when_unwanted(
        tmp_path: Path) -> None:
    restarts: list[int] = []
    conf = domains.DnsmasqConf(restart=lambda: restarts.append(1))
    path = tmp_path / "dnsmasq.d" / "bonding-rules.conf"
    conf.sync(str(path), "nftset=/a.example/4#inet#t#s\n")
    conf.sync(str(path), "nftset=/a.example/4#inet#t#s\n")
    assert path.read_text() == "nftset=/a.example/4#inet#t#s\n" and len(restarts) == 1
    conf.sync(str(path), "")
    assert not path.exists() and len(restarts) == 2
    conf.sync("", "")  # nothing of ours: nothing to do
    assert len(restarts) == 2
    other = tmp_path / "other.conf"
    other.write_text("someone else's")
    conf.sync(str(other), "")  # never removes a file it did not write
    assert other.exists() and len(restarts) == 2


def test_disabled_rules_are_left_out() -> None:
    rs, decisions = build(cfg_with(replace(TV, enabled=False), Rule(name="b")), UP)
    assert [d.rule.name for d in decisions] == ["b"]
    assert _lan(rs.render())[3:] == ["return"]


def test_the_bonding_table_leaves_pinned_packets_alone() -> None:
    rs = nft.build(G, ["203.0.113.10"], pin_mask=0x7E00)
    lan = _lan(rs.render())
    assert lan[:2] == ["ct direction reply return", "meta mark & 0x00007e00 != 0 return"]
    assert "meta mark & " not in "\n".join(_lan(nft.build(G, []).render())[:2])


def test_the_plan_routes_each_pin_mark_to_its_path_table() -> None:
    p = plan(UP, ["203.0.113.10"], route_table=200, path_table_base=210, rule_priority=1000,
             pins=PinMarks.above(0xB0))
    pins = [r for r in p.rules if r.fwmark is not None]
    assert pins == [RuleWant(1040, 210, fwmark=0x200, fwmask=0x7E00),
                    RuleWant(1041, 211, fwmark=0x400, fwmask=0x7E00)]
    # after the main table's specific routes (LAN to LAN stays), before route_table
    prios = {r.table: r.priority for r in p.rules if r.fwmark is None}
    assert prios[254] < 1040 and prios[200] > 1041
    without = plan(UP, [], route_table=200, path_table_base=210, rule_priority=1000)
    assert not [r for r in without.rules if r.fwmark is not None]


class FakeNft(nft.Nft):
    def __init__(self) -> None:
        super().__init__(nft="/nonexistent", remove_text=pinning.REMOVE)
        self.loaded: list[str] = []

    def _run(self, text: str) -> None:
        self.loaded.append(text)


def test_pinning_loads_on_change_only_and_removes_when_no_rule_is_left() -> None:
    fake = FakeNft()
    p = Pinning(fake)
    cfg = cfg_with(TV)
    assert p.marks(cfg) == PinMarks.above(0xB0)
    p.apply(cfg, UP)
    p.apply(cfg, UP)
    assert len(fake.loaded) == 1
    p.apply(cfg, WAN2_DOWN)
    assert len(fake.loaded) == 2 and "return" in _lan(fake.loaded[-1])[-1]
    assert p.status(proxy_running=True) == [{
        "name": "tv", "match": "src_mac aa:bb:cc:dd:ee:01", "action": "path:wan2",
        "fallback": "bond", "block_quic": False, "effective": "bond",
        "why": "wan2 down (down): fallback bond"}]
    assert p.status(proxy_running=False)[0]["why"].endswith(
        "the proxy is not running: it is routed natively by the default route until it is")
    p.apply(cfg_with(), UP)
    assert fake.loaded[-1] == pinning.REMOVE and p.status(True) == []
    assert p.marks(Config(globals=replace(G, enabled=False), rules=(TV,))) is None


def test_a_table_left_by_an_earlier_bondingd_is_removed_once() -> None:
    fake = FakeNft()
    p = Pinning(fake)
    p.apply(cfg_with(), UP)
    p.apply(cfg_with(), UP)
    assert fake.loaded == [pinning.REMOVE]


def test_nft_errors_reach_the_status_errors(tmp_path: Path) -> None:
    p = Pinning(nft.Nft(nft=str(tmp_path / "no-nft"), remove_text=pinning.REMOVE))
    p.apply(cfg_with(), UP)
    assert p.error == ""  # no rule: a router without nft is fine
    p.apply(cfg_with(TV), UP)
    assert p.error.startswith("rules: ") and "not found: install nftables" in p.error


def test_bondingctl_shows_each_rule_and_why() -> None:
    st = {"version": "x", "uptime": 1, "paths": {}, "rules": [
        {"name": "tv", "match": "src_mac aa:bb:cc:dd:ee:01", "action": "path:wan2",
         "fallback": "bond", "block_quic": True, "effective": "bond",
         "why": "wan2 down (down): fallback bond"}]}
    text = ctl.format_status(st, now=1.0)
    head, row = text.splitlines()[-2:]
    assert head.split() == ["RULE", "MATCH", "ACTION", "NOW", "WHY"]
    assert row.split(None, 1)[0] == "tv"
    assert "path:wan2 (fallback bond), no QUIC" in row
    assert row.rstrip().endswith("wan2 down (down): fallback bond")


def test_on_fw4_the_table_goes_to_its_include_too(tmp_path: Path) -> None:
    """fw4 flush deletes every table and fw4 start loads the ruleset-post includes: the
    include must hold the table as loaded, the removal once there are no rules, and nothing
    once bondingd stops."""
    fake = tmp_path / "nft"
    fake.write_text("#!/bin/sh\ncat > /dev/null\n")
    fake.chmod(0o755)
    p = Pinning.for_run_dir(tmp_path / "run", fw4=True)
    p.nft.nft = str(fake)
    inc = tmp_path / "run" / pinning.FW4_INCLUDE
    p.apply(cfg_with(TV), UP)
    assert inc.read_text() == p.nft.applied and "table inet bonding_rules" in inc.read_text()
    p.apply(cfg_with(TV), WAN2_DOWN)
    assert inc.read_text() == p.nft.applied and "wan2 down" in inc.read_text()
    p.apply(cfg_with(), UP)
    assert inc.read_text() == pinning.REMOVE
    p.forget_include()
    assert not inc.exists()
    without = Pinning.for_run_dir(tmp_path / "run2", fw4=False)
    without.nft.nft = str(fake)
    without.apply(cfg_with(TV), UP)
    assert not (tmp_path / "run2").exists()
