"""/etc/uci-defaults/90-bonding under busybox ash: what it makes, that a second run changes
nothing, and that it leaves the proxy to bondingd (option proxy unset is 'auto'): it always ends
0, so OpenWrt deletes it after one run."""

from __future__ import annotations

import pytest

from bonding import config, uci

from .conftest import PKG, SHIPPED_CONFIG, Sandbox, make_executable

SCRIPT = PKG / "bonding" / "files" / "bonding.defaults"


def run(sb: Sandbox) -> None:
    """Run it: it ends 0 (done: OpenWrt deletes it) and prints nothing."""
    r = sb.run(SCRIPT)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""


def install_sing_box(sb: Sandbox) -> None:
    f = sb.root / "usr" / "bin" / "sing-box"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text("#!/bin/sh\n")
    make_executable(f)


def snapshot(sb: Sandbox) -> dict[str, tuple[str, int]]:
    return {p.name: (p.read_text(), p.stat().st_mode & 0o7777)
            for p in sorted(sb.confdir.iterdir())}


def test_a_missing_config_is_made_with_the_named_sections(sandbox: Sandbox) -> None:
    run(sandbox)
    pkg = uci.loads(sandbox.config("bonding"), "bonding")
    assert [(s.type, s.name) for s in pkg] == [("globals", "globals"), ("usb", "usb")]
    secrets = sandbox.confdir / "bonding_secrets"
    assert secrets.exists() and secrets.stat().st_mode & 0o777 == 0o600
    cfg, problems = config.load(sandbox.confdir)
    assert problems == [] and cfg.usb.auto_dhcp


@pytest.mark.parametrize("sing_box", [False, True])
def test_the_shipped_config_is_left_as_it_is(sandbox: Sandbox, sing_box: bool) -> None:
    sandbox.write_config("bonding", SHIPPED_CONFIG.read_text())
    (sandbox.confdir / "bonding_secrets").write_text("")
    (sandbox.confdir / "bonding_secrets").chmod(0o644)
    if sing_box:
        install_sing_box(sandbox)
    run(sandbox)
    assert sandbox.config("bonding") == SHIPPED_CONFIG.read_text()
    assert sandbox.uci_writes() == []
    cfg, problems = config.load(sandbox.confdir)
    assert [p for p in problems if p.severity is config.Severity.ERROR] == []
    assert cfg.globals.proxy == "auto"  # bondingd picks what is installed, now or later
    # but the secrets are made private
    assert (sandbox.confdir / "bonding_secrets").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("chosen", ["none", "xray", "shadowsocks-libev"])
def test_a_chosen_proxy_is_never_changed(sandbox: Sandbox, chosen: str) -> None:
    sandbox.write_config("bonding", f"config globals 'globals'\n\toption proxy '{chosen}'\n\n"
                                    "config usb 'usb'\n")
    install_sing_box(sandbox)
    run(sandbox)
    assert config.load(sandbox.confdir)[0].globals.proxy == chosen
    assert sandbox.uci_writes() == []


def test_a_config_without_usb_section_gets_one(sandbox: Sandbox) -> None:
    sandbox.write_config("bonding", "config globals 'globals'\n\toption log_level 'debug'\n\n"
                         "config path 'wan'\n\toption interface 'wan'\n")
    run(sandbox)
    pkg = uci.loads(sandbox.config("bonding"), "bonding")
    assert [(s.type, s.name) for s in pkg] == [("globals", "globals"), ("path", "wan"),
                                               ("usb", "usb")]
    assert pkg.section("globals") is not None
    assert pkg.section("globals").options == {"log_level": "debug"}  # type: ignore[union-attr]
    assert sandbox.uci_writes() == [["set", "bonding.usb=usb"], ["commit", "bonding"]]


@pytest.mark.parametrize("sing_box", [False, True])
@pytest.mark.parametrize("start", ["missing", "shipped", "partial"])
def test_a_second_run_changes_nothing(sandbox: Sandbox, start: str, sing_box: bool) -> None:
    if sing_box:
        install_sing_box(sandbox)
    if start == "shipped":
        sandbox.write_config("bonding", SHIPPED_CONFIG.read_text())
    elif start == "partial":
        sandbox.write_config("bonding", "config path 'wan'\n\toption interface 'wan'\n")
    run(sandbox)
    first = snapshot(sandbox)
    sandbox.reset_logs()
    run(sandbox)
    assert snapshot(sandbox) == first
    assert sandbox.uci_writes() == []


def test_it_never_touches_ucitrack_or_other_packages(sandbox: Sandbox) -> None:
    run(sandbox)
    touched = {a.split(".")[0].split("=")[0] for call in sandbox.uci_calls()
               for a in [x for x in call if not x.startswith("-")][1:]}
    assert touched == {"bonding"}
    assert sorted(p.name for p in sandbox.confdir.iterdir()) == ["bonding", "bonding_secrets"]
