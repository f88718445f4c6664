"""The shaping plan as the kernel takes it (root: a throwaway network namespace with a veth
pair): htb or cake on the WAN's egress, its ingress redirected to an ifb shaped the same way,
and all of it gone after remove()."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from bonding.config import Config, Globals, PathConfig
from bonding.core.health import State
from bonding.core.plan import PathView
from bonding.dataplane.shaping import Commands, Shaper


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0 or shutil.which("tc") is None:
        pytest.skip("needs root and tc")
    name = f"bsh-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "add", "wan1", "type", "veth", "peer", "name",
                        "isp1"], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "wan1", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


class InNetns(Commands):
    """The real runner, its commands run in the test's namespace."""

    def __init__(self, ns: str) -> None:
        self.ns = ns

    def run(self, argv: tuple[str, ...]) -> None:
        super().run(("ip", "netns", "exec", self.ns, *argv))


def _qdiscs(ns: str, dev: str) -> list[str]:
    r = subprocess.run(["ip", "netns", "exec", ns, "tc", "-j", "qdisc", "show", "dev", dev],
                       capture_output=True, text=True, check=True)
    return sorted(q["kind"] for q in json.loads(r.stdout))


def test_each_way_is_shaped_and_removed(netns: str) -> None:
    cfg = Config(globals=Globals(shaping=True),
                 paths=(PathConfig("wan1", device="wan1", upload_kbit=50000,
                                   download_kbit=50000),))
    view = PathView(name="wan1", index=0, device="wan1", ifindex=2, address="100.64.1.2",
                    gateway=None, state=State.UP, link_ok=True, backup=False)
    s = Shaper(InNetns(netns))
    s.apply(cfg, [view], 0x8000)
    st = s.status()["wan1"]
    assert st["error"] == "" and st["upload_kbit"] == 47500, st
    kind = st["qdisc"]  # this kernel: htb (no cake)
    want = ["cake"] if kind == "cake" else ["htb", "pfifo", "pfifo"]
    assert _qdiscs(netns, "wan1") == sorted([*want, "ingress"])
    assert _qdiscs(netns, "bifb0") == want
    s.apply(cfg, [view], 0x8000)  # again: unchanged
    s.remove()
    assert "htb" not in _qdiscs(netns, "wan1") and "ingress" not in _qdiscs(netns, "wan1")
    r = subprocess.run(["ip", "-n", netns, "link", "show", "bifb0"], capture_output=True,
                       check=False)
    assert r.returncode != 0  # the ifb is gone
