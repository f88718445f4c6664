"""Realtime traffic in the lab (root), with real traffic: the full path (sing-box on both ends,
3 links of 50/30/20 Mbit/s at 20/40/80 ms RTT) and option realtime in the router's config,
with the voice stream's port as a realtime port.

The stream (50 pps of 160 B to the target's udp-echo, which answers with the address it saw)
leaves natively through wan1, the live path with the lowest RTT, so the target sees wan1's
address; when wan1 is blackholed the same flow moves to wan2 (the next lowest) within about a
second."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import _full_path

from bonding.lab.topology import TARGET_ADDR, Lab
from bonding.lab.traffic import (
    Service,
    Stream,
    longest_silence,
    path_state,
    wait_all_up,
    wait_for,
)

pytestmark = pytest.mark.lab

PORT = 7017
WAN = {"wan1": "100.64.1.2", "wan2": "100.64.2.2", "wan3": "100.64.3.2"}


@pytest.fixture(scope="module", params=("sing-box",))
def rt_lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    yield from _full_path(request, "r", options={"realtime": "1", "realtime_port": str(PORT)})


def _realtime(lab: Lab) -> dict[str, Any]:
    return lab.status().get("realtime") or {}


def test_realtime_takes_the_lowest_rtt_path_and_moves_when_it_dies(rt_lab: Lab) -> None:
    lab = rt_lab
    assert wait_for(lambda: _realtime(lab).get("path") == "wan1", 10), lab.status()
    with Service(lab, "target", "udp-echo", PORT):
        s = Stream(lab, "lan", TARGET_ADDR, PORT, 8.0)
        try:
            time.sleep(3.0)
            t0 = time.time()
            lab.blackhole("wan1")
            assert wait_for(lambda: path_state(lab, "wan1") == "down", 5) is not None
            report = s.result()
        finally:
            s.stop()
            lab.clear("wan1")
    seen = [addr for _, addr in report["via"]]
    # one flow: natively by wan1 (its address), then by wan2, never through the server
    assert seen == [WAN["wan1"], WAN["wan2"]], report["via"]
    gap = longest_silence(report, start=t0)
    print(f"realtime: moved wan1 → wan2, longest silence {gap:.2f} s, "
          f"lost {report['lost']} of {report['sent']}")
    assert gap <= 1.5, gap
    assert _realtime(lab).get("path") == "wan2"
    assert wait_all_up(lab, 20)
    assert wait_for(lambda: _realtime(lab).get("path") == "wan1", 5), lab.status()
