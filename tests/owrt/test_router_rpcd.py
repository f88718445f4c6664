"""luci-app-bonding's ACL under the real rpcd and uhttpd, in a scratch OpenWrt root
(tests/owrt/router_root.py; root only).

luci-app-bonding is installed with the real opkg (it brings bonding and python3-bonding; bondingd
runs under procd), rpcd reads its acl.d file, and /etc/config/rpcd has two logins whose
passwords are stored as rpcd reads them (`uhttpd -m`, MD5 crypt): `viewer` with the ACL's read
part, `admin` with its read and write parts.  Both also get the `uci` object's ubus methods (as
luci-base's luci-access gives them, but without its `uci: *`): what configs they reach is then
up to our ACL alone.  Each asks through `ubus call session login` and the ubus_rpc_session it
gets, and over HTTP through uhttpd's JSON-RPC endpoint /ubus on 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bonding.lab.topology import nsx

from .router_root import CONFIGURE, RouterRoot, booted

ACL = Path(__file__).resolve().parents[2] / "luci-app-bonding/root/usr/share/rpcd/acl.d"
SECRET = "c2VjcmV0LWtleS1vZi10aGUtc2VydmVyLXZwczE="
PASSWORDS = {"viewer": "look-only", "admin": "change-all"}
HTTP = "127.0.0.1:8080"
# the `uci` object's methods, as luci-base's ACL group luci-access grants them (without its
# uci: ["*"], which would open every config to every LuCI user)
UCI_METHODS = {
    "uci-methods": {
        "description": "The uci object's methods (luci-base's), no config",
        "read": {"ubus": {"uci": ["changes", "get"]}},
        "write": {"ubus": {"uci": ["add", "apply", "confirm", "delete", "order", "set",
                                   "rename", "commit"]}},
    }
}
READ_CALLS = [("bonding", "status", {}), ("bonding", "path", {"name": "wan"})]
WRITE_CALLS = [("bonding", "set_path", {"name": "wanb", "backup": False}),
               ("bonding", "probe", {"name": "wan"}), ("bonding", "reload", {})]
PERMISSION_DENIED = 6  # UBUS_STATUS_PERMISSION_DENIED


@pytest.fixture(scope="module")
def rpc_root(router_prereqs: Path, owrt_feed: Path, tmp_path_factory: pytest.TempPathFactory,
             worker_tag: str) -> Iterator[RouterRoot]:
    with booted(router_prereqs, owrt_feed, tmp_path_factory.mktemp("rpcd-root"),
                f"{worker_tag}a") as root:
        root.sh("opkg update && opkg install luci-app-bonding", timeout=180)
        assert root.path("/usr/share/rpcd/acl.d/luci-app-bonding.json").is_file()
        root.sh(CONFIGURE)
        root.sh("uci set bonding_secrets.vps1=server; "
                f"uci set bonding_secrets.vps1.key='{SECRET}'; uci commit bonding_secrets")
        root.sh("/etc/init.d/bonding start")
        root.write("/usr/share/rpcd/acl.d/uci-methods.json", json.dumps(UCI_METHODS))
        hashes = {u: root.sh(f"uhttpd -m '{p}'").stdout.strip() for u, p in PASSWORDS.items()}
        assert all(h.startswith("$1$") for h in hashes.values()), hashes
        root.write("/etc/config/rpcd", f"""
config rpcd
	option socket /var/run/ubus/ubus.sock
	option timeout 30

config login
	option username 'viewer'
	option password '{hashes["viewer"]}'
	list read 'luci-app-bonding'
	list read 'uci-methods'

config login
	option username 'admin'
	option password '{hashes["admin"]}'
	list read 'luci-app-bonding'
	list write 'luci-app-bonding'
	list read 'uci-methods'
	list write 'uci-methods'
""")
        root.spawn("rpcd", ["/sbin/rpcd", "-s", "/var/run/ubus/ubus.sock", "-t", "30"])
        root.wait(lambda: root.sh("ubus -t 1 list session", check=False).returncode == 0, 5,
                  "rpcd's session object")
        root.path("/www").mkdir(exist_ok=True)
        root.spawn("uhttpd", ["/usr/sbin/uhttpd", "-f", "-h", "/www", "-p", HTTP, "-u", "/ubus",
                              "-U", "/var/run/ubus/ubus.sock", "-t", "10"])
        root.wait(lambda: all_paths(root), 20, "bondingd with both paths")
        yield root


def all_paths(root: RouterRoot) -> bool:
    st = root.ubus("call", "bonding", "status")
    return isinstance(st, dict) and set(st["paths"]) == {"wan", "wanb"}


def login(root: RouterRoot, user: str) -> dict[str, Any]:
    out = root.ubus("call", "session", "login",
                    json.dumps({"username": user, "password": PASSWORDS[user]}))
    assert isinstance(out, dict) and len(out["ubus_rpc_session"]) == 32, out
    return out


def access(root: RouterRoot, sid: str, scope: str, obj: str, function: str) -> bool:
    out = root.ubus("call", "session", "access", json.dumps(
        {"ubus_rpc_session": sid, "scope": scope, "object": obj, "function": function}))
    assert isinstance(out, dict)
    return bool(out["access"])


def uci_call(root: RouterRoot, sid: str, method: str, args: dict[str, Any]) -> Any:
    """rpcd's `uci` object with a session: the answer, or "denied" (Permission denied)."""
    r = root.sh(f"ubus -t 5 call uci {method} " + _q(json.dumps(
        {"ubus_rpc_session": sid, **args})), check=False)
    if r.returncode != 0:
        assert "Permission denied" in r.stderr, r
        return "denied"
    return json.loads(r.stdout) if r.stdout.strip() else {}


def _q(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def test_a_wrong_password_gets_no_session(rpc_root: RouterRoot) -> None:
    r = rpc_root.sh("ubus -t 5 call session login "
                    + _q(json.dumps({"username": "viewer", "password": "guess"})), check=False)
    assert r.returncode != 0 and "Permission denied" in r.stderr, r


def test_the_logins_get_exactly_the_acl(rpc_root: RouterRoot) -> None:
    viewer = login(rpc_root, "viewer")["acls"]
    assert viewer == {"access-group": {"luci-app-bonding": ["read"], "uci-methods": ["read"]},
                      "ubus": {"bonding": ["status", "path"], "uci": ["changes", "get"]},
                      "uci": {"bonding": ["read"]}}
    admin = login(rpc_root, "admin")["acls"]
    assert admin["access-group"] == {"luci-app-bonding": ["read", "write"],
                                     "uci-methods": ["read", "write"]}
    assert admin["ubus"]["bonding"] == ["status", "path", "set_path", "probe", "reload"]
    assert admin["uci"] == {"bonding": ["read", "write"], "bonding_secrets": ["write"]}


def test_rpcd_denies_the_viewer_what_only_the_admin_may(rpc_root: RouterRoot) -> None:
    v = login(rpc_root, "viewer")["ubus_rpc_session"]
    a = login(rpc_root, "admin")["ubus_rpc_session"]
    for obj, method, _ in READ_CALLS:
        assert access(rpc_root, v, "ubus", obj, method)
        assert access(rpc_root, a, "ubus", obj, method)
    for obj, method, _ in WRITE_CALLS:
        assert not access(rpc_root, v, "ubus", obj, method), method
        assert access(rpc_root, a, "ubus", obj, method), method
    # nobody reaches the hotplug's method through rpcd
    assert not access(rpc_root, a, "ubus", "bonding", "iface")
    # uci through rpcd's own plugin: bonding readable, the secrets never read back
    for sid in (v, a):
        cfg = uci_call(rpc_root, sid, "get", {"config": "bonding"})
        assert cfg["values"]["wanb"]["device"] == "wan2"
        assert uci_call(rpc_root, sid, "get", {"config": "bonding_secrets"}) == "denied"
        assert uci_call(rpc_root, sid, "get", {"config": "bonding_secrets", "section": "vps1",
                                               "option": "key"}) == "denied"
        assert uci_call(rpc_root, sid, "state", {"config": "bonding_secrets"}) == "denied"
        changes = uci_call(rpc_root, sid, "changes", {})
        assert "bonding_secrets" not in json.dumps(changes)
    # only the admin writes: to bonding and (write-only) to the secrets
    setkey = {"config": "bonding_secrets", "section": "vps1", "values": {"key": SECRET + "x"}}
    assert uci_call(rpc_root, v, "set", setkey) == "denied"
    assert uci_call(rpc_root, v, "set", {"config": "bonding", "section": "wan",
                                         "values": {"backup": "1"}}) == "denied"
    assert uci_call(rpc_root, a, "set", setkey) == {}
    # a staged key is not read back either (rpcd's `changes`)
    assert uci_call(rpc_root, a, "changes", {"config": "bonding_secrets"}) == "denied"
    assert SECRET not in json.dumps(uci_call(rpc_root, a, "changes", {}))
    assert uci_call(rpc_root, a, "revert", {"config": "bonding_secrets"}) == {}


class JsonRpc:
    """uhttpd's /ubus endpoint, asked from inside the router's network namespace."""

    CODE = r"""
import json, sys, urllib.request
req = urllib.request.Request("http://%s/ubus" % sys.argv[1], data=sys.stdin.buffer.read(),
                             headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=20) as r:
    sys.stdout.write(r.read().decode())
"""

    def __init__(self, root: RouterRoot) -> None:
        self.root = root
        self.n = 0

    def call(self, sid: str, obj: str, method: str, args: dict[str, Any]) -> dict[str, Any]:
        self.n += 1
        body = {"jsonrpc": "2.0", "id": self.n, "method": "call",
                "params": [sid, obj, method, args]}
        r = subprocess.run(nsx(self.root.ns, sys.executable, "-S", "-c", self.CODE, HTTP),
                           input=json.dumps(body), capture_output=True, text=True, timeout=30,
                           check=False)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["id"] == self.n
        return out  # type: ignore[no-any-return]

    def login(self, user: str) -> str:
        out = self.call("0" * 32, "session", "login",
                        {"username": user, "password": PASSWORDS[user]})
        status, data = out["result"]
        assert status == 0, out
        return data["ubus_rpc_session"]  # type: ignore[no-any-return]


def denied(out: dict[str, Any]) -> bool:
    """uhttpd refused the call itself (rpcd's session said no), or rpcd's plugin did."""
    return out.get("error", {}).get("code") == -32002 or \
        out.get("result", [None])[0] == PERMISSION_DENIED


def test_over_http_the_viewer_reads_and_the_admin_also_writes(rpc_root: RouterRoot) -> None:
    rpc = JsonRpc(rpc_root)
    anon = rpc.call("0" * 32, "bonding", "status", {})
    assert anon["error"]["code"] == -32002, anon  # no session: access denied
    bad = rpc.call("0" * 32, "session", "login", {"username": "admin", "password": "nope"})
    assert bad["result"][0] == PERMISSION_DENIED
    v, a = rpc.login("viewer"), rpc.login("admin")
    for sid in (v, a):
        status, st = rpc.call(sid, "bonding", "status", {})["result"]
        assert status == 0 and set(st["paths"]) == {"wan", "wanb"}
        status, p = rpc.call(sid, "bonding", "path", {"name": "wan"})["result"]
        assert status == 0 and p["name"] == "wan" and "targets" in p
        status, cfg = rpc.call(sid, "uci", "get", {"config": "bonding"})["result"]
        assert status == 0 and cfg["values"]["globals"][".type"] == "globals"
        out = rpc.call(sid, "uci", "get", {"config": "bonding_secrets"})
        assert denied(out), out
        assert SECRET not in json.dumps(out)
        out = rpc.call(sid, "uci", "get", {"config": "bonding_secrets", "section": "vps1",
                                           "option": "key"})
        assert denied(out) and SECRET not in json.dumps(out), out
        assert SECRET not in json.dumps(st)
    for obj, method, args in WRITE_CALLS:
        out = rpc.call(v, obj, method, args)
        assert out.get("error", {}).get("code") == -32002, (method, out)
        out = rpc.call(a, obj, method, args)
        assert out.get("result", [None])[0] == 0, (method, out)
    assert rpc.call(a, "bonding", "iface", {"interface": "wanb", "action": "ifdown"})[
        "error"]["code"] == -32002
    # the admin's write reaches bondingd: wanb forced to backup, then back
    assert rpc.call(a, "bonding", "set_path", {"name": "wanb", "backup": True})["result"] == \
        [0, {"name": "wanb", "enabled": True, "backup": True}]
    assert rpc.call(v, "bonding", "path", {"name": "wanb"})["result"][1]["forced_backup"] is True
    rpc.call(a, "bonding", "set_path", {"name": "wanb", "backup": False})
