"""The OpenWrt packages tools/owrt-userland.sh builds beyond the base, each run for real.

netifd (under procd, from /etc/init.d/network) in a scratch root answers
`network.interface dump` with the static WAN it brought up, and network.sh (through
jsonfilter) reads it back; fw4 renders a ruleset from a minimal /etc/config/firewall that nft
accepts (and loads, in the root's own network namespace); apk 3 builds, indexes, signs, verifies
and installs a package; and uhttpd's ucode handler runs LuCI's dispatcher with rpcd's luci
plugins loaded: GET /cgi-bin/luci answers the login form, and a login gets the status page.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import uciconf

from .router_root import RootError, RouterRoot, part_files

UBUS = "/var/run/ubus/ubus.sock"
HTTP = "127.0.0.1:8080"
PASSWORD = "luci-parts-test"

NETWORK = uciconf.LOOPBACK + """
config interface 'wan'
	option device 'wan1'
	option proto 'static'
	option ipaddr '100.64.1.2'
	option netmask '255.255.255.0'
	option gateway '100.64.1.1'
"""

FIREWALL = uciconf.DEFAULTS + uciconf.wan_zone(["wan"]) + uciconf.ALLOW_PING

LUCI_PARTS = ("luci-base", "luci-mod-status", "luci-mod-system", "luci-theme-bootstrap",
              "rpcd-mod-luci")


def started(prefix: Path, workdir: Path, tag: str, parts: tuple[str, ...]) -> RouterRoot:
    root = RouterRoot(prefix, workdir / "stage", tag, parts)
    root.start()
    return root


@pytest.fixture(scope="module")
def net_root(router_prereqs: Path, tmp_path_factory: pytest.TempPathFactory,
             worker_tag: str) -> Iterator[RouterRoot]:
    """A root with netifd, jsonfilter and firewall4; the network started as OpenWrt does."""
    root = started(router_prereqs, tmp_path_factory.mktemp("parts-net"), f"{worker_tag}n",
                   ("netifd", "jsonfilter", "firewall4"))
    try:
        root.write("/etc/config/network", NETWORK)
        root.write("/etc/config/firewall", FIREWALL)
        root.sh("/etc/init.d/network start")
        yield root
    finally:
        root.close()


def wan_status(root: RouterRoot) -> dict[str, Any]:
    dump = root.ubus("call", "network.interface", "dump")
    assert isinstance(dump, dict), dump
    return next(i for i in dump["interface"] if i["interface"] == "wan")


def test_netifd_answers_the_interface_dump(net_root: RouterRoot) -> None:
    net_root.wait(lambda: wan_status(net_root)["up"], 15, "netifd's wan up")
    wan = wan_status(net_root)
    assert wan["proto"] == "static" and wan["l3_device"] == "wan1"
    assert wan["ipv4-address"] == [{"address": "100.64.1.2", "mask": 24}]
    routes = net_root.sh("ip route show default").stdout
    assert "default via 100.64.1.1 dev wan1" in routes  # netifd set the gateway's route
    # network.sh, which OpenWrt's scripts read netifd's state with, through jsonfilter
    out = net_root.sh(". /lib/functions/network.sh; network_get_ipaddr ip wan; "
                      "network_get_device dev wan; echo \"$ip $dev\"").stdout
    assert out.strip() == "100.64.1.2 wan1"


def test_fw4_print_is_a_ruleset_nft_accepts(net_root: RouterRoot) -> None:
    net_root.wait(lambda: wan_status(net_root)["up"], 15, "netifd's wan up")
    net_root.sh("fw4 print > /tmp/fw4.nft")
    ruleset = net_root.path("/tmp/fw4.nft").read_text()
    assert ruleset.startswith("table inet fw4\nflush table inet fw4\n")
    assert 'define wan_devices = { "wan1" }' in ruleset  # the zone's device, from netifd
    assert 'comment "!fw4: Allow-Ping"' in ruleset
    assert "masquerade" in ruleset
    check = net_root.sh("nft -c -f /tmp/fw4.nft", check=False)
    assert check.returncode == 0, check.stderr
    # and loaded for real, in the root's own network namespace
    net_root.sh("fw4 -q start")
    chains = net_root.sh("nft list table inet fw4").stdout
    assert "chain input_wan" in chains and "chain srcnat_wan" in chains


def test_a_root_gets_only_the_packages_it_asks_for(net_root: RouterRoot,
                                                  owrt_prefix: Path) -> None:
    assert net_root.path("/sbin/netifd").is_file() and net_root.path("/sbin/fw4").is_file()
    # LuCI's files (which rpcd would load) and apk are not in this root
    for absent in ("/usr/share/rpcd/ucode/luci", "/usr/lib/rpcd/luci.so", "/www/luci-static",
                   "/usr/share/ucode/luci/uhttpd.uc", "/usr/bin/apk"):
        assert not net_root.path(absent).exists(), absent
    assert "luci" not in net_root.sh("ubus list").stdout.split()
    with pytest.raises(RootError, match=r"has no package luci-app-nope .*tools/owrt-userland\.sh"):
        part_files(owrt_prefix, ["netifd", "luci-app-nope"])


def test_jsonfilter_parses_json(owrt_prefix: Path, owrt_env: dict[str, str]) -> None:
    doc = json.dumps({"a": {"b": [1, {"c": "x"}]}, "n": [{"v": 1}, {"v": 2}, {"v": 3}]})

    def jf(*args: str) -> list[str]:
        r = subprocess.run([str(owrt_prefix / "bin" / "jsonfilter"), *args], input=doc,
                           env=owrt_env, capture_output=True, text=True, timeout=10, check=True)
        return r.stdout.splitlines()

    # from stdin (what upstream's next commit breaks), a path, a filter, shell exports
    assert jf("-e", "@.a.b[1].c") == ["x"]
    assert jf("-e", "@.n[@.v>1].v") == ["2", "3"]
    assert jf("-e", "C=@.a.b[1].c", "-e", "N=@.n[0].v") == ["export C='x'; export N=1; "]
    missing = subprocess.run([str(owrt_prefix / "bin" / "jsonfilter"), "-e", "@.nope"],
                             input=doc, env=owrt_env, capture_output=True, text=True,
                             timeout=10, check=False)
    assert missing.returncode == 1 and missing.stdout == ""


def test_apk_builds_signs_verifies_and_installs(owrt_prefix: Path, owrt_env: dict[str, str],
                                                 tmp_path: Path) -> None:
    apk = str(owrt_prefix / "bin" / "apk")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(args, env=owrt_env, capture_output=True, text=True, timeout=60,
                           check=False)
        assert not check or r.returncode == 0, f"{args}: {r.stdout}{r.stderr}"
        return r

    assert run(apk, "--version").stdout.startswith("apk-tools 3.0.5")
    # OpenWrt's signing key: ECDSA P-256, the public half in /etc/apk/keys
    keys, other = tmp_path / "keys", tmp_path / "other"
    for d in (keys, other):
        d.mkdir()
        run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout",
            "-out", str(d / "key.pem"))
        run("openssl", "ec", "-in", str(d / "key.pem"), "-pubout", "-out", str(d / "pub.pem"))
        (d / "key.pem").rename(tmp_path / f"{d.name}.key")
    files, repo = tmp_path / "files", tmp_path / "repo"
    (files / "usr/share/demo").mkdir(parents=True)
    (files / "usr/share/demo/hello").write_text("hi\n")
    repo.mkdir()
    pkg = repo / "demo-1.0-r1.apk"
    # paths absolute: apk takes relative ones under its --root
    run(apk, "mkpkg", "-I", "name:demo", "-I", "version:1.0-r1", "-I", "arch:noarch",
        "-I", "description:parts test", "-F", str(files), "-o", str(pkg))
    index = repo / "packages.adb"
    run(apk, "mkndx", "--allow-untrusted", "--sign-key", str(tmp_path / "keys.key"),
        "--output", str(index), str(pkg))
    assert "OK" in run(apk, "verify", "--keys-dir", str(keys), str(index)).stdout
    wrong = run(apk, "verify", "--keys-dir", str(other), str(index), check=False)
    assert wrong.returncode != 0 and "UNTRUSTED" in wrong.stdout + wrong.stderr
    # a package signed on its own (SIGN_EACH_PACKAGE) with adbsign
    signed = tmp_path / "signed.apk"
    signed.write_bytes(pkg.read_bytes())
    run(apk, "adbsign", "--allow-untrusted", "--sign-key", str(tmp_path / "keys.key"),
        str(signed))
    assert "OK" in run(apk, "verify", "--keys-dir", str(keys), str(signed)).stdout
    # installed into a root that trusts the key, from the signed index
    root = tmp_path / "root"
    (root / "etc/apk/keys").mkdir(parents=True)
    (root / "etc/apk/keys/test.pem").write_bytes((keys / "pub.pem").read_bytes())
    run(apk, "--root", str(root), "--initdb", "--repository", str(index), "add", "demo")
    assert (root / "usr/share/demo/hello").read_text() == "hi\n"
    assert run(apk, "--root", str(root), "info", "-v").stdout.split() == ["demo-1.0-r1"]


# --- LuCI through uhttpd's ucode handler and rpcd's luci plugins ----------------------------------

@pytest.fixture(scope="module")
def luci_root(router_prereqs: Path, tmp_path_factory: pytest.TempPathFactory,
              worker_tag: str) -> Iterator[RouterRoot]:
    root = started(router_prereqs, tmp_path_factory.mktemp("parts-luci"), f"{worker_tag}l",
                   LUCI_PARTS)
    try:
        # first boot: the theme's uci-defaults
        root.sh("for f in /etc/uci-defaults/*; do ( . \"$f\" ) && rm -f \"$f\"; done")
        hashed = root.sh(f"uhttpd -m '{PASSWORD}'").stdout.strip()
        root.write("/etc/config/rpcd", f"""
config rpcd
	option socket {UBUS}
	option timeout 30

config login
	option username 'root'
	option password '{hashed}'
	list read '*'
	list write '*'
""")
        root.spawn("rpcd", ["/sbin/rpcd", "-s", UBUS, "-t", "30"])
        root.wait(lambda: root.sh("ubus -t 1 list luci-rpc", check=False).returncode == 0, 10,
                  "rpcd's luci-rpc object")
        root.spawn("uhttpd", ["/usr/sbin/uhttpd", "-f", "-h", "/www", "-p", HTTP, "-x",
                              "/cgi-bin", "-o", "/cgi-bin/luci", "-O",
                              "/usr/share/ucode/luci/uhttpd.uc", "-u", "/ubus", "-U", UBUS,
                              "-t", "30"])
        root.wait(lambda: http(root, "/")["status"] == 200, 10, "uhttpd")
        yield root
    finally:
        root.close()


FETCH = """
import json, sys, urllib.error, urllib.request
url, data, cookie = sys.argv[1], sys.argv[2], sys.argv[3]
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a): return None
req = urllib.request.Request(url, data=data.encode() if data else None)
if cookie: req.add_header("Cookie", cookie)
try:
    r = urllib.request.build_opener(NoRedirect).open(req, timeout=20)
except urllib.error.HTTPError as e:
    r = e
print(json.dumps({"status": r.status, "headers": r.headers.get_all("Set-Cookie") or [],
                  "location": r.headers.get("Location"), "body": r.read().decode()}))
"""


def http(root: RouterRoot, path: str, data: str = "", cookie: str = "") -> dict[str, Any]:
    """A request to uhttpd from inside the root (its own network namespace)."""
    r = root.sh(f"python3 -c \"$FETCH\" 'http://{HTTP}{path}' '{data}' '{cookie}'",
                env={"FETCH": FETCH})
    out: dict[str, Any] = json.loads(r.stdout)
    return out


def test_rpcd_loads_lucis_plugins(luci_root: RouterRoot) -> None:
    objects = luci_root.sh("ubus list").stdout.split()
    assert "luci" in objects  # luci-base's script, through rpcd's ucode plugin
    assert "luci-rpc" in objects  # rpcd-mod-luci, the C plugin
    version = luci_root.ubus("call", "luci", "getVersion")
    assert version == {"revision": "git-459941fb", "branch": "master"}
    devices = luci_root.ubus("call", "luci-rpc", "getNetworkDevices")
    assert "wan1" in devices and devices["wan1"]["up"] is True


def test_luci_serves_the_login_form_and_logs_in(luci_root: RouterRoot) -> None:
    page = http(luci_root, "/cgi-bin/luci/")
    # LuCI answers an unauthenticated request with 403 and its login form
    assert page["status"] == 403
    body = page["body"]
    assert '<form method="post"' in body
    assert 'name="luci_username"' in body and 'name="luci_password"' in body
    assert "/luci-static/bootstrap/cascade.css" in body  # the bootstrap theme renders it
    bad = http(luci_root, "/cgi-bin/luci/", "luci_username=root&luci_password=wrong")
    assert bad["status"] == 403 and "Invalid username and/or password" in bad["body"]
    # a login (rpcd's session, the luci-base and unauthenticated ACL groups) gets the status page
    login = http(luci_root, "/cgi-bin/luci/", f"luci_username=root&luci_password={PASSWORD}")
    assert login["status"] == 302, login
    cookie = next(c for c in login["headers"] if c.startswith("sysauth_http="))
    status = http(luci_root, "/cgi-bin/luci/admin/status/overview",
                  cookie=cookie.split(";")[0])
    assert status["status"] == 200
    assert 'data-page="admin-status-overview"' in status["body"]
    assert "luci_password" not in status["body"]
