"""The lab's faults: the nftables rules and scripts, and where each is sent (a fake `nft` and
`ip` in place of the namespaces: no root)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from bonding.lab import faults
from bonding.lab.build import plan_state
from bonding.lab.model import LabError, parse_links


@pytest.mark.parametrize(("family", "rule"), [
    (None, "drop"), (4, "meta nfproto ipv4 drop"), (6, "meta nfproto ipv6 drop")])
def test_blackhole_rule(family: int | None, rule: str) -> None:
    assert faults.blackhole_rule(family) == rule


def test_bad_faults_say_what_to_use() -> None:
    with pytest.raises(LabError, match="family 5: use 4 or 6"):
        faults.blackhole_rule(5)
    for pct in (0, 100):
        with pytest.raises(LabError, match=f"loss {pct}%: use 1–99"):
            faults.loss_rule(pct)
    assert faults.loss_rule(5) == "numgen random mod 100 < 5 drop"


def test_scripts() -> None:
    assert faults.fault_script(None) == "flush chain inet lab fault\n"
    assert faults.fault_script("drop") == ("flush chain inet lab fault\n"
                                           "add rule inet lab fault drop\n")
    off = faults.server_blackhole_script(False)
    assert off == "table inet labfault {}\ndelete table inet labfault\n"  # idempotent
    on = faults.server_blackhole_script(True)
    assert on.startswith(off) and "type filter hook input priority 0; policy drop;" in on


class Recorder:
    def __init__(self) -> None:
        self.nft: list[tuple[str, str]] = []
        self.cmds: list[list[str]] = []

    def fake_nft(self, ns: str, script: str) -> None:
        self.nft.append((ns, script))

    def fake_run(self, cmd: Sequence[str], **_: object) -> None:
        self.cmds.append(list(cmd))


@pytest.fixture
def lab(monkeypatch: pytest.MonkeyPatch) -> tuple[faults.Faults, Recorder]:
    rec = Recorder()
    monkeypatch.setattr(faults, "nft", rec.fake_nft)
    monkeypatch.setattr(faults, "run", rec.fake_run)
    lab = faults.Faults("bx", state_root=Path("/nonexistent"))
    lab.state = plan_state("bx", parse_links("50,30"), 2, Path("/nonexistent/bx"))
    return lab, rec


def test_each_fault_goes_to_its_namespace(lab: tuple[faults.Faults, Recorder]) -> None:
    f, rec = lab
    f.blackhole("wan2", 6)
    f.loss("wan1", 3)
    f.clear("wan2")
    f.server_blackhole("server2")
    assert rec.nft == [
        ("bx-isp2", faults.fault_script("meta nfproto ipv6 drop")),
        ("bx-isp1", faults.fault_script("numgen random mod 100 < 3 drop")),
        ("bx-isp2", faults.fault_script(None)),
        ("bx-server2", faults.server_blackhole_script(True)),
    ]
    f.carrier("wan1", False)
    f.carrier("wan1", True)
    assert rec.cmds == [["ip", "-n", "bx-isp1", "link", "set", "cpe", "down"],
                        ["ip", "-n", "bx-isp1", "link", "set", "cpe", "up"]]
    with pytest.raises(LabError, match="no link 'wan9'"):
        f.blackhole("wan9")
