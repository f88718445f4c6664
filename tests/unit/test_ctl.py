"""bondingctl: table and JSON output, the status.json fallback, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bonding import ctl

NOW = 1_800_000_000.0
STATUS = {
    "version": "0.1.0", "uptime": 3700.0, "enabled": True, "fail_open": False,
    "servers": [{"name": "vps1", "address": "203.0.113.10", "port": 65101,
                 "protocol": "shadowsocks", "enabled": True, "priority": 10, "state": "down",
                 "active": False, "since": NOW - 30, "rtt_ms": None,
                 "reason": "no answer through any live path: wan connection refused "
                           "(3 rounds in a row)"},
                {"name": "vps2", "address": "198.51.100.20", "port": 65102,
                 "protocol": "shadowsocks", "enabled": True, "priority": 10,
                 "state": "active", "active": True, "since": NOW - 29, "rtt_ms": 31.25,
                 "reason": "vps1 stopped answering"},
                {"name": "old", "address": "192.0.2.99", "port": 1, "protocol": "shadowsocks",
                 "enabled": False, "priority": 10, "state": "disabled", "active": False,
                 "since": NOW - 900, "rtt_ms": None, "reason": "disabled in the config"}],
    "active_server": {"name": "vps2", "reason": "vps1 stopped answering", "since": NOW - 29,
                      "failback": "return", "hold_s": 60},
    "proxy": {"backend": "shadowsocks-libev", "state": "running", "pid": 12, "restarts": 0,
              "since": NOW - 50, "error": ""},
    "paths": {
        "wan": {"state": "up", "reason": "", "since": NOW - 125, "backup": False,
                "device": "eth1", "rtt_ms": 21.34, "jitter_ms": 0.4, "loss_pct": 0.0,
                "rx_bps": 48_200_000, "tx_bps": 2_100_000, "subflows": 3},
        "lte": {"state": "degraded", "reason": "loss 25% over the last 20 rounds",
                "since": NOW - 7300, "backup": True, "device": "wwan0", "rtt_ms": 88.0,
                "jitter_ms": 9.5, "loss_pct": 25.0, "rx_bps": 900, "tx_bps": 0,
                "subflows": 0},
        "dsl": {"state": "down", "reason": "carrier lost on eth2", "since": NOW - 5,
                "backup": False, "device": "eth2", "rtt_ms": None, "jitter_ms": None,
                "loss_pct": None, "rx_bps": 0, "tx_bps": 0, "subflows": None},
    },
    "config_problems": ["warning: bonding.x: unknown section type 'foo'"],
    "errors": [],
}


def test_table_shows_every_path_with_reason_and_units() -> None:
    text = ctl.format_status(STATUS, now=NOW)
    lines = text.splitlines()
    assert "proxy shadowsocks-libev: running" in lines[0]
    assert "3 paths (2 carrying traffic)" in lines[0]
    rows = {ln.split()[0]: ln for ln in lines if ln.split() and ln.split()[0] in STATUS["paths"]}
    assert rows["wan"].split()[1:10] == ["up", "eth1", "21.3ms", "0.4", "0%", "48.2M", "2.1M",
                                         "3", "2m05s"]
    assert "loss 25% over the last 20 rounds" in rows["lte"]
    assert rows["lte"].split()[1] == "degraded" and "2h01m" in rows["lte"]
    assert rows["dsl"].split()[1:4] == ["down", "eth2", "-"]
    assert rows["dsl"].endswith("carrier lost on eth2")
    assert lines[-1] == "config: warning: bonding.x: unknown section type 'foo'"


def test_table_shows_every_server_and_which_is_active() -> None:
    lines = ctl.format_status(STATUS, now=NOW).splitlines()
    assert lines[1] == ("active server: vps2 (vps1 stopped answering); failback return, "
                        "hold 60 s")
    assert lines[2].split() == ["SERVER", "STATE", "ADDRESS", "PROTOCOL", "RTT", "SINCE",
                                "REASON"]
    rows = {ln.split()[0]: ln for ln in lines[3:6]}
    assert rows["vps1"].split()[1:6] == ["down", "203.0.113.10:65101", "shadowsocks", "-",
                                        "30s"]
    assert rows["vps1"].endswith("wan connection refused (3 rounds in a row)")
    assert rows["vps2"].split()[1:6] == ["active", "198.51.100.20:65102", "shadowsocks",
                                        "31.2ms", "29s"]
    assert rows["old"].split()[1] == "disabled"


def test_an_older_status_without_server_states() -> None:
    old = {**STATUS, "servers": [{"name": "vps1", "address": "203.0.113.10", "port": 65101,
                                  "protocol": "shadowsocks", "enabled": False}]}
    del old["active_server"]
    lines = ctl.format_status(old, now=NOW).splitlines()
    assert lines[1].split() == ["SERVER", "STATE", "ADDRESS", "PROTOCOL", "RTT", "SINCE",
                                "REASON"]
    assert lines[2].split() == ["vps1", "disabled", "203.0.113.10:65101", "shadowsocks", "-",
                                "-"]


def write_snapshot(tmp_path: Path) -> Path:
    (tmp_path / "status.json").write_text(json.dumps(STATUS))
    return tmp_path


def test_without_ubus_status_and_path_come_from_the_snapshot(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_snapshot(tmp_path)
    assert ctl.main(["--no-ubus", "--run-dir", str(run), "--json", "status"]) == 0
    assert json.loads(capsys.readouterr().out) == STATUS
    assert ctl.main(["--no-ubus", "--run-dir", str(run), "--json", "path", "lte"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["name"] == "lte" and out["reason"] == STATUS["paths"]["lte"]["reason"]
    assert ctl.main(["--no-ubus", "--run-dir", str(run), "status"]) == 0
    assert "not reachable over ubus" in capsys.readouterr().out


def test_missing_library_falls_back_to_the_snapshot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    run = write_snapshot(tmp_path)
    monkeypatch.setenv("BONDING_LIBUBUS", str(tmp_path / "no-such-libubus.so"))
    assert ctl.main(["--run-dir", str(run), "--json", "status"]) == 0
    assert json.loads(capsys.readouterr().out)["paths"].keys() == STATUS["paths"].keys()


def test_errors_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_snapshot(tmp_path)
    assert ctl.main(["--no-ubus", "--run-dir", str(run), "path", "nope"]) == 1
    assert "no path named 'nope'" in capsys.readouterr().err
    assert ctl.main(["--no-ubus", "--run-dir", str(run), "reload"]) == 1
    assert "needs bondingd over ubus" in capsys.readouterr().err
    assert ctl.main(["--no-ubus", "--run-dir", str(tmp_path / "empty"), "status"]) == 1
    assert "is bondingd running?" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        ctl.main(["set-path", "wan"])
    assert e.value.code == 2


def test_path_detail_shows_each_family_with_its_targets() -> None:
    fam4 = {"state": "up", "reason": "", "probed": True, "carrying": True,
            "address": "100.64.1.2", "gateway": "100.64.1.1", "endpoint_id": 1, "subflows": 2,
            "rtt_ms": 21.04, "loss_pct": 0.0,
            "targets": [{"address": "203.0.113.10", "sent": 10, "received": 10}]}
    fam6 = {"state": "down", "reason": "3 of the last 5 probe rounds got no reply",
            "probed": True, "carrying": False, "address": "2001:db8:64:1::2",
            "gateway": "fe80::1", "endpoint_id": None, "subflows": 0, "rtt_ms": 22.5,
            "loss_pct": 60.0, "targets": [{"address": "2001:db8:203::10", "sent": 10,
                                           "received": 4}]}
    text = ctl.format_path({"name": "wan1", "state": "up", "families": {"ipv4": fam4,
                                                                         "ipv6": fam6}})
    lines = text.splitlines()
    assert lines[:2] == ["name: wan1", "state: up"]
    assert lines[2] == ("ipv4: up, 100.64.1.2 via 100.64.1.1, RTT 21.0ms, loss 0%, endpoint 1, "
                        "subflows 2, carrying traffic")
    assert lines[3] == "  target address=203.0.113.10, sent=10, received=10"
    assert lines[4] == ("ipv6: down (3 of the last 5 probe rounds got no reply), "
                        "2001:db8:64:1::2 via fe80::1, RTT 22.5ms, loss 60%, endpoint -, "
                        "subflows 0, not carrying traffic")
    assert lines[5] == "  target address=2001:db8:203::10, sent=10, received=4"
    none6 = ctl.format_path({"name": "wan2", "families": {"ipv6": {"address": None}}})
    assert none6.splitlines()[-1] == "ipv6: no address"


def test_the_head_line_says_what_becomes_of_lan_ipv6() -> None:
    st = {**STATUS, "proxy": {**STATUS["proxy"], "ipv6": {
        "lan": "routed natively", "reason": "server 'vps1' has no IPv6 address"}}}
    head = ctl.format_status(st, now=NOW).splitlines()[0]
    assert "LAN IPv6 routed natively (server 'vps1' has no IPv6 address)" in head
    st["proxy"]["ipv6"] = {"lan": "proxied", "reason": ""}
    assert ctl.format_status(st, now=NOW).splitlines()[0].endswith("LAN IPv6 proxied")


def test_table_shows_a_backup_path_standing_by_and_why() -> None:
    st = json.loads(json.dumps(STATUS))
    st["paths"]["lte"] = {"state": "up", "reason": "", "since": NOW - 60, "backup": False,
                          "device": "wwan0", "rtt_ms": 60.0, "jitter_ms": 3.0,
                          "loss_pct": 0.0, "rx_bps": 10, "tx_bps": 10, "subflows": 0,
                          "role": "backup", "standby": True,
                          "standby_reason": "standing by: bond path wan is up",
                          "probe_interval_ms": 30000, "probe_cadence": "standing by"}
    rows = {ln.split()[0]: ln for ln in ctl.format_status(st, now=NOW).splitlines()
            if ln.split()}
    assert rows["lte"].split()[1] == "up/standby"
    assert rows["lte"].endswith("backup: standing by: bond path wan is up")
    st["paths"]["lte"].update(standby=False, standby_reason="in use: no bond path is up")
    rows = {ln.split()[0]: ln for ln in ctl.format_status(st, now=NOW).splitlines()
            if ln.split()}
    assert rows["lte"].split()[1] == "up" and rows["lte"].endswith("backup: in use: no bond "
                                                                     "path is up")


def test_a_path_whose_isp_blocks_mptcp_is_marked_with_its_reason() -> None:
    reason = ("mptcp-blocked: the ISP drops MP_JOIN (no subflow joins over this link): a "
              "connection lived 20 s with no subflow over it while joins over other links worked")
    st = json.loads(json.dumps(STATUS))
    st["paths"]["wan"].update(reason=reason, mptcp={"blocked": True, "kind": "join-dropped",
                                                    "reason": reason})
    rows = {ln.split()[0]: ln for ln in ctl.format_status(st, now=NOW).splitlines()
            if ln.split()}
    assert rows["wan"].split()[1] == "up/no-mptcp" and rows["wan"].endswith(reason)
    assert rows["lte"].split()[1] == "degraded"
