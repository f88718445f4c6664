"""The lab as a pytest fixture: real namespaces, real bondingd, real kernel MPTCP (root)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from bonding.lab.topology import Lab, parse_links
from bonding.lab.traffic import wait_all_up

LINKS = "50/10ms,30/20ms,20/40ms"
TOOLS = {"iperf3": "iperf3", "mptcpize": "mptcpize", "nft": "nftables", "tc": "iproute2",
         "ethtool": "ethtool"}


def lab_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, nftables, tc)"
    missing = [f"{t} ({p})" for t, p in TOOLS.items() if shutil.which(t) is None]
    if missing:
        return "missing tools for the lab: " + ", ".join(missing)
    return None


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    lab = Lab(f"t{os.getpid() % 100000}")
    try:
        lab.up(parse_links(LINKS))
        assert wait_all_up(lab, 20), f"paths not up: {lab.status().get('paths')}"
        yield lab
    finally:
        lab.down()


@pytest.fixture
def fresh(lab: Lab) -> Iterator[Lab]:
    """The lab with every fault cleared and every path up, before and after the test."""
    _reset(lab)
    yield lab
    _reset(lab)


def _reset(lab: Lab) -> None:
    st = lab.load()
    for link in st.links:
        lab.clear(link.name)
        lab.carrier(link.name, True)
    assert wait_all_up(lab, 20), f"paths not up: {lab.status().get('paths')}"
