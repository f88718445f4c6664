"""table inet bonding_realtime as the kernel takes it (root: a throwaway network namespace), and
ctnetlink's flush by mark forgetting exactly the realtime flows."""

from __future__ import annotations

import os
import subprocess

import pytest

from bonding.config import Config, Globals
from bonding.core.health import State
from bonding.core.plan import PathView
from bonding.dataplane import nft, pinning, realtime

from .nftns import nft_items, nft_load

G = Globals(lan_devices=("lan0", "br-lan"), realtime=True,
            realtime_devices=("aa:bb:cc:dd:ee:01", "192.168.1.0/28"))


def views(wan2: State) -> list[PathView]:
    return [PathView(name=f"wan{i + 1}", index=i, device=f"wan{i + 1}", ifindex=10 + i,
                     address=f"100.64.{i + 1}.2", gateway=f"100.64.{i + 1}.1",
                     state=State.UP if i == 0 else wan2, link_ok=True, backup=False,
                     rtt_ms=40.0 - 20 * i)
            for i in range(2)]


def test_the_table_loads_beside_the_bonding_and_rules_tables(netns: str) -> None:
    cfg = Config(globals=G)
    for wan2 in (State.UP, State.DOWN, State.DISABLED):
        rs = realtime.build(cfg, realtime.choose(views(wan2)))
        nft_load(netns, rs.render())
        nft_load(netns, rs.render())  # again: replaced whole
    pins, _ = pinning.build(cfg, views(State.UP))
    nft_load(netns, pins.render())
    nft_load(netns, nft.build(G, ["203.0.113.10"], pin_mask=pins.marks.mask).render())
    nft_load(netns, realtime.build(cfg, realtime.choose(views(State.UP))).render())
    items = nft_items(netns)
    assert {i["table"]["name"] for i in items if "table" in i} == {
        "bonding", "bonding_rules", "bonding_realtime"}
    chains = {i["chain"]["name"]: i["chain"] for i in items
              if "chain" in i and i["chain"]["table"] == "bonding_realtime"}
    assert (chains["prerouting"]["hook"], chains["prerouting"]["prio"]) == ("prerouting", -152)
    steer = [i["rule"] for i in items if "rule" in i
             and i["rule"]["table"] == "bonding_realtime" and i["rule"]["chain"] == "steer"]
    assert len(steer) == 1 and "accept" in steer[0]["expr"][-1]
    nft_load(netns, realtime.REMOVE)
    nft_load(netns, realtime.REMOVE)  # also when it is gone
    assert "bonding_realtime" not in {i["table"]["name"] for i in nft_items(netns) if "table" in i}


_CT_PROBE = """
table inet ctprobe {
	counter new9999 {}
	counter new9998 {}
	chain output {
		type filter hook output priority 0; policy accept;
		udp dport 9999 ct mark & 0x8000 == 0 counter name new9999
		udp dport 9998 ct mark & 0x4000 == 0 counter name new9998
		udp dport 9999 ct mark set ct mark | 0x8000
		udp dport 9998 ct mark set ct mark | 0x4000
	}
}
"""

_SEND = """
import socket, sys
from bonding.netlink.conntrack import Conntrack
sinks = []
for port in (9999, 9998):
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    r.bind(("127.0.0.1", port))
    sinks.append(r)
def send():
    for port in (9999, 9998):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 40000 + port % 10))
        s.sendto(b"x", ("127.0.0.1", port))
        s.close()
send(); send()
if sys.argv[1] == "flush":
    with Conntrack() as ct:
        ct.flush_mark(0x8000, 0x8000)
send()
"""


def _counters(ns: str) -> dict[str, int]:
    return {i["counter"]["name"]: i["counter"]["packets"] for i in nft_items(ns) if "counter" in i}


@pytest.mark.parametrize(("how", "new9999"), [("flush", 2), ("keep", 1)])
def test_the_flush_forgets_the_marked_flows_only(netns: str, how: str, new9999: int) -> None:
    subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
    nft_load(netns, _CT_PROBE)
    env = {**os.environ, "PYTHONPATH": os.path.join(os.path.dirname(__file__), "..", "..",
                                                    "python")}
    import sys
    subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", _SEND, how],
                   check=True, env=env, timeout=20)
    # (a flow's first packet finds its ct mark clear) the realtime flow was tracked anew after
    # the flush; the other one kept its entry
    assert _counters(netns) == {"new9999": new9999, "new9998": 1}
