"""The lab's pure parts: link specs, the planned state, its state file, shaping (no root)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bonding.lab.base import LabBase
from bonding.lab.build import fault_chain_script, plan_state, tbf_args
from bonding.lab.model import (
    LAN_HOST,
    MAX_LINKS,
    SERVER2_ADDR,
    LabError,
    LinkSpec,
    find_ubusd,
    missing_proxy_tools,
    parse_links,
)


def test_parse_links_rates_and_delays() -> None:
    assert parse_links("50/10ms, 30/20 ,20") == [LinkSpec(50, 10), LinkSpec(30, 20),
                                                  LinkSpec(20, 0)]
    assert str(LinkSpec(12.5, 7)) == "12.5/7ms"


@pytest.mark.parametrize(("text", "says"), [
    ("50/10ms,fast", "link 2: 'fast' is not RATE or RATE/DELAYms"),
    ("0.01", "rate 0.01 Mbit/s out of range"),
    ("50/2001", "delay 2001 ms out of range"),
    (",".join(["10"] * (MAX_LINKS + 1)), f"{MAX_LINKS + 1} links: the lab builds 1–{MAX_LINKS}"),
])
def test_parse_links_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(LabError, match=says):
        parse_links(text)


def test_missing_proxy_tools_names_the_unknown_backend() -> None:
    with pytest.raises(LabError, match="proxy 'xray': the lab runs sing-box or shadowsocks"):
        missing_proxy_tools("xray")


def test_find_ubusd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BONDING_UBUSD", raising=False)
    monkeypatch.setenv("OWRT_PREFIX", str(tmp_path))
    assert find_ubusd() is None
    (tmp_path / "bin").mkdir()
    ubusd = tmp_path / "bin" / "ubusd"
    ubusd.write_text("#!/bin/sh\n")
    ubusd.chmod(0o755)
    assert find_ubusd() == ubusd
    monkeypatch.setenv("BONDING_UBUSD", str(tmp_path / "nowhere"))
    assert find_ubusd() is None  # the explicit one wins, even when it is not there


def test_tbf_args_one_ms_burst_and_50_ms_queue() -> None:
    # 100 Mbit/s: 12500 B a ms; the queue 50 ms of it plus the burst
    assert tbf_args(100) == ["tbf", "rate", "100mbit", "burst", "12500", "limit", "637500"]
    # 1 Mbit/s: the burst is at least 4 frames
    assert tbf_args(1)[4] == str(4 * 1514)


def test_plan_state_names_and_addresses() -> None:
    st = plan_state("bx", parse_links("50/10ms,30"), 2, Path("/s/bx"))
    assert st.namespaces == {r: f"bx-{r}" for r in (
        "lan", "router", "inet", "server", "target", "server2", "isp1", "isp2")}
    wan2 = st.links[1]
    assert (wan2.name, wan2.isp_ns, wan2.router_addr, wan2.isp_addr, wan2.router_addr6,
            wan2.isp_addr6) == ("wan2", "bx-isp2", "100.64.2.2", "100.64.2.1",
                                "2001:db8:64:2::2", "2001:db8:64:2::1")
    assert st.addresses["lan"][0] == LAN_HOST
    assert st.addresses["server2"] == [SERVER2_ADDR]
    assert "100.64.1.2" in st.addresses["router"] and "2001:db8:64:2::2" in st.addresses["router"]
    assert (st.config_dir, st.run_dir, st.daemon_log) == ("/s/bx/etc", "/s/bx/run",
                                                          "/s/bx/bondingd.log")
    assert "server2" not in plan_state("bx", parse_links("10"), 1, Path("/s")).namespaces


def test_fault_chain_jumps_from_both_sides_of_the_isp() -> None:
    link = plan_state("bx", parse_links("10"), 1, Path("/s")).links[0]
    script = fault_chain_script(link)
    assert 'iifname { "cpe", "net" } jump fault' in script
    assert "add chain inet lab fault\n" in script


def test_state_file_round_trip(tmp_path: Path) -> None:
    lab = LabBase("bx", state_root=tmp_path)
    lab.state_dir.mkdir()
    with pytest.raises(LabError, match=r"no lab 'bx' is up \(.*lab.json is missing\)"):
        lab.load()
    lab.state = plan_state("bx", parse_links("50/10ms,30"), 1, lab.state_dir)
    lab.state.pids["ubusd"] = 42
    lab.save()
    assert json.loads(lab.state_file.read_text())["pids"] == {"ubusd": 42}
    again = LabBase("bx", state_root=tmp_path)
    assert again.load() == lab.state
    assert again.link("wan2").rate_mbit == 30
    assert again.server_roles() == ["server"]
    with pytest.raises(LabError, match="no link 'wan3': the lab has wan1, wan2"):
        again.link("wan3")


@pytest.mark.parametrize("prefix", ["", "1ab", "Lab", "abcdefghi", "a-b"])
def test_prefix_is_checked(prefix: str) -> None:
    with pytest.raises(LabError, match="1–8 lowercase letters/digits"):
        LabBase(prefix)
