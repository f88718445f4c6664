"""table inet bonding_rules as the kernel takes it (root: a throwaway network namespace)."""

from __future__ import annotations

from bonding.config import Config, Globals
from bonding.config.rules import Rule
from bonding.core.health import State
from bonding.core.plan import PathView
from bonding.dataplane import nft, pinning

from .nftns import nft_items, nft_load

G = Globals(lan_devices=("lan0", "br-lan"))
RULES = (
    Rule(name="tv", src_mac=("aa:bb:cc:dd:ee:01",), action="path:wan2", block_quic=True),
    Rule(name="cam", src_ip=("192.0.2.0/28",), dest_ip=("198.51.100.0/24",), proto="tcp",
         dest_port=("443", "8000-8100"), action="path:wan1", fallback="drop"),
    Rule(name="games", proto="udp", dest_port=("3074",), action="bypass"),
    Rule(name="rest", action="bond", block_quic=True),
    Rule(name="gone", action="path:wan2", fallback="any"),
)


def views(wan2: State) -> list[PathView]:
    return [PathView(name=f"wan{i + 1}", index=i, device=f"wan{i + 1}", ifindex=10 + i,
                     address=f"100.64.{i + 1}.2", gateway=f"100.64.{i + 1}.1",
                     state=State.UP if i == 0 else wan2, link_ok=True, backup=False)
            for i in range(2)]


def test_every_kind_of_rule_loads_next_to_the_bonding_table(netns: str) -> None:
    cfg = Config(globals=G, rules=RULES)
    for wan2 in (State.UP, State.DOWN):  # path verdicts, then fallbacks
        rs, _ = pinning.build(cfg, views(wan2))
        nft_load(netns, rs.render())
        nft_load(netns, rs.render())  # again: replaced whole
    nft_load(netns, nft.build(G, ["203.0.113.10"], pin_mask=rs.marks.mask).render())
    items = nft_items(netns)
    assert {i["table"]["name"] for i in items if "table" in i} == {"bonding", "bonding_rules"}
    chains = {i["chain"]["name"]: i["chain"] for i in items
              if "chain" in i and i["chain"]["table"] == "bonding_rules"}
    assert (chains["prerouting"]["hook"], chains["prerouting"]["prio"]) == ("prerouting", -151)
    assert (chains["postrouting"]["type"], chains["postrouting"]["prio"]) == ("nat", 99)
    lan = [i["rule"] for i in items if "rule" in i and i["rule"]["table"] == "bonding_rules"
           and i["rule"]["chain"] == "lan"]
    verdicts = [next(k for e in r["expr"] for k in e
                     if k in ("accept", "drop", "return", "reject", "goto")) for r in lan]
    # wan2 down: tv falls back to bond (return), cam keeps wan1 (IPv4 only: one line), games
    # bypasses, rest bonds, gone falls back to any
    assert verdicts == ["return", "return", "goto", "reject", "return", "accept", "accept",
                        "reject", "return", "accept"]
    decided = [i["rule"] for i in items if "rule" in i and i["rule"]["chain"] == "decided"]
    assert len(decided) == 3  # wan1's mark, wan2's, and the default route's
    nft_load(netns, pinning.REMOVE)
    nft_load(netns, pinning.REMOVE)  # also when it is gone
    assert {i["table"]["name"] for i in nft_items(netns) if "table" in i} == {"bonding"}


def test_a_reload_keeps_what_dnsmasq_put_in_a_domain_set(netns: str) -> None:
    rule = Rule(name="tv", dest_domain=("tv.example",), action="path:wan2")
    cfg = Config(globals=G, rules=(rule,))
    rs, _ = pinning.build(cfg, views(State.UP))
    nft_load(netns, rs.render())
    # what dnsmasq does when it answers tv.example
    nft_load(netns, "add element inet bonding_rules d4_tv { 198.51.100.10 }\n"
                 "add element inet bonding_rules d6_tv { 2001:db8:198::10 }\n")
    rs, _ = pinning.build(cfg, views(State.DOWN))  # wan2 died: the rules change
    nft_load(netns, rs.render())
    sets = {i["set"]["name"]: i["set"] for i in nft_items(netns) if "set" in i}
    assert [e["elem"]["val"] for e in sets["d4_tv"]["elem"]] == ["198.51.100.10"]
    assert [e["elem"]["val"] for e in sets["d6_tv"]["elem"]] == ["2001:db8:198::10"]
    lan = [i["rule"] for i in nft_items(netns) if "rule" in i and i["rule"]["chain"] == "lan"]
    assert len(lan) == 5  # reply, local, decided, and the rule's IPv4 and IPv6 (not doubled)
