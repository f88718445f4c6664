"""luci-app-bonding's ACL under the real rpcd and uhttpd, with LuCI's own ACL files, in a scratch
OpenWrt root (tests/owrt/router_root.py; root only).

luci-app-bonding is installed with the real opkg (it brings bonding and python3-bonding; bondingd
runs under procd), rpcd reads its acl.d file and those of luci-base, luci-mod-status and
luci-mod-system as upstream LuCI ships them (copied from the LuCI source in
/work/shared/owrt-src/luci.tar.gz), and /etc/config/rpcd has three logins whose passwords are
stored as rpcd reads them (`uhttpd -m`, MD5 crypt):

- `viewer`: the viewer login of the README, `list read` unauthenticated, luci-base and
  luci-app-bonding (what LuCI needs to log in and show the app);
- `reader`: `list read '*'`, the usual "read-only" recipe, which is no viewer login: it holds
  luci-mod-system's backup download;
- `admin`: `list read '*'` and `list write '*'`, as OpenWrt's root login.

Each asks through `ubus call session login` and the ubus_rpc_session it gets, and over HTTP
through uhttpd's JSON-RPC endpoint /ubus on 127.0.0.1, as LuCI does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bonding.lab.owrt import luci
from bonding.lab.topology import nsx

from .router_root import CONFIGURE, RouterRoot, booted

LUCI_SRC = Path("/work/shared/owrt-src/luci.tar.gz")
# LuCI's ACL files, as luci-base, luci-mod-status and luci-mod-system install them
LUCI_ACLS = ("luci/modules/luci-base/root/usr/share/rpcd/acl.d/luci-base.json",
             "luci/modules/luci-mod-status/root/usr/share/rpcd/acl.d/luci-mod-status.json",
             "luci/modules/luci-mod-status/root/usr/share/rpcd/acl.d/"
             "luci-mod-status-index.json",
             "luci/modules/luci-mod-system/root/usr/share/rpcd/acl.d/luci-mod-system.json")
SECRET = "c2VjcmV0LWtleS1vZi10aGUtc2VydmVyLXZwczE="
NEW_KEY = "bmV3LWtleS1vZi10aGUtc2VydmVyLXZwczEtLS0="
PASSWORDS = {"viewer": "look-only", "reader": "read-star", "admin": "change-all"}
LOGINS = {"viewer": ("list read 'unauthenticated'\n\tlist read 'luci-base'\n"
                     "\tlist read 'luci-app-bonding'"),
          "reader": "list read '*'",
          "admin": "list read '*'\n\tlist write '*'"}
HTTP = "127.0.0.1:8080"
SECRETS_FILE = "/etc/config/bonding_secrets"
READ_CALLS = [("bonding", "status", {}), ("bonding", "path", {"name": "wan"})]
WRITE_CALLS = [("bonding", "set_path", {"name": "wanb", "backup": False}),
               ("bonding", "probe", {"name": "wan"}), ("bonding", "reload", {})]
PERMISSION_DENIED = 6  # UBUS_STATUS_PERMISSION_DENIED


def start_rpcd(root: RouterRoot, users: Iterable[str]) -> dict[str, str]:
    """LuCI's ACL files and `users`' logins (LOGINS, passwords stored as `uhttpd -m` makes
    them) in the root, and rpcd started on its ubus; returns the stored password hashes."""
    for name, data in luci_acls().items():
        root.write(f"/usr/share/rpcd/acl.d/{name}", data)
    return luci.start_rpcd(root, {u: (PASSWORDS[u], LOGINS[u]) for u in users})


def luci_acls() -> dict[str, bytes]:
    """LuCI's ACL files by name, from the LuCI source tarball."""
    out = {}
    with tarfile.open(LUCI_SRC) as tar:
        names = {m.name.removeprefix("./"): m for m in tar.getmembers()}
        for rel in LUCI_ACLS:
            f = tar.extractfile(names[rel])
            assert f is not None, rel
            out[Path(rel).name] = f.read()
    return out


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
        hashes = start_rpcd(root, PASSWORDS)
        assert all(h.startswith("$1$") for h in hashes.values()), hashes
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


def test_the_viewer_login_is_what_luci_needs_and_no_more(rpc_root: RouterRoot) -> None:
    acls = login(rpc_root, "viewer")["acls"]
    assert acls["access-group"] == {"unauthenticated": ["read"], "luci-base": ["read"],
                                    "luci-app-bonding": ["read"]}
    assert acls["ubus"]["bonding"] == ["status", "path"]
    assert acls["ubus"]["session"] == ["access", "login"]
    assert acls["uci"] == {"system": ["read"], "luci": ["read"], "bonding": ["read"]}
    assert "cgi-io" not in acls and "bonding_secrets" not in json.dumps(acls)
    admin = login(rpc_root, "admin")["acls"]
    assert admin["ubus"]["bonding"] == ["status", "path", "set_path", "probe", "reload",
                                        "set_key"]
    for user in PASSWORDS:  # no login of any recipe is granted the secrets through uci or files
        assert "bonding_secrets" not in json.dumps(login(rpc_root, user)["acls"]), user


def test_rpcd_denies_the_viewer_what_only_the_admin_may(rpc_root: RouterRoot) -> None:
    v = login(rpc_root, "viewer")["ubus_rpc_session"]
    a = login(rpc_root, "admin")["ubus_rpc_session"]
    for obj, method, _ in READ_CALLS:
        assert access(rpc_root, v, "ubus", obj, method)
        assert access(rpc_root, a, "ubus", obj, method)
    for obj, method, _ in [*WRITE_CALLS, ("bonding", "set_key", {})]:
        assert not access(rpc_root, v, "ubus", obj, method), method
        assert access(rpc_root, a, "ubus", obj, method), method
    # nobody reaches the hotplug's method through rpcd
    assert not access(rpc_root, a, "ubus", "bonding", "iface")
    cfg = uci_call(rpc_root, v, "get", {"config": "bonding"})
    assert cfg["values"]["wanb"]["device"] == "wan2"
    assert uci_call(rpc_root, v, "set", {"config": "bonding", "section": "wan",
                                         "values": {"backup": "1"}}) == "denied"


@pytest.mark.parametrize("user", list(PASSWORDS))
def test_no_login_reads_a_key_through_uci_ubus_or_files(rpc_root: RouterRoot, user: str) -> None:
    """Whatever the recipe, not even root's: rpcd's uci, file and bonding objects."""
    sid = login(rpc_root, user)["ubus_rpc_session"]
    assert not access(rpc_root, sid, "uci", "bonding_secrets", "read")
    assert not access(rpc_root, sid, "file", SECRETS_FILE, "read")
    for method, args in (("get", {"config": "bonding_secrets"}),
                         ("get", {"config": "bonding_secrets", "section": "vps1",
                                  "option": "key"}),
                         ("state", {"config": "bonding_secrets"}),
                         ("changes", {"config": "bonding_secrets"})):
        assert uci_call(rpc_root, sid, method, args) == "denied", (method, args)
    assert SECRET not in json.dumps(uci_call(rpc_root, sid, "changes", {}))
    r = rpc_root.sh("ubus -t 5 call file read " + _q(json.dumps(
        {"ubus_rpc_session": sid, "path": SECRETS_FILE})), check=False)
    assert r.returncode != 0 and SECRET not in r.stdout, r
    rpc = JsonRpc(rpc_root)
    hsid = rpc.login(user)
    for obj, method, args in [("uci", "get", {"config": "bonding_secrets"}),
                              ("file", "read", {"path": SECRETS_FILE}),
                              ("bonding", "status", {}), ("bonding", "path", {"name": "wan"})]:
        out = rpc.call(hsid, obj, method, args)
        assert SECRET not in json.dumps(out), (obj, method)
        if obj != "bonding":
            assert denied(out), (obj, method, out)
    # and nobody stages a key through uci: the ACL grants no uci write on bonding_secrets
    out = rpc.call(hsid, "uci", "set", {"config": "bonding_secrets", "section": "vps1",
                                        "values": {"key": NEW_KEY}})
    assert denied(out), out
    assert "bonding_secrets" not in json.dumps(rpc.call(hsid, "uci", "changes", {}))


def test_read_star_is_no_viewer_login_it_holds_the_backup_download(
        rpc_root: RouterRoot) -> None:
    """`list read '*'` includes luci-mod-system-flash: cgi-io's backup (a tarball of /etc/config,
    keys and /etc/shadow included) and the raw flash.  What the README says; not a fix."""
    for user, granted in (("reader", True), ("admin", True), ("viewer", False)):
        sid = login(rpc_root, user)["ubus_rpc_session"]
        assert access(rpc_root, sid, "cgi-io", "backup", "read") is granted, user
        assert access(rpc_root, sid, "file", "/dev/mtdblock0", "read") is granted, user
    reader = login(rpc_root, "reader")["acls"]
    assert "luci-mod-system-flash" in reader["access-group"]
    assert not access(rpc_root, login(rpc_root, "reader")["ubus_rpc_session"], "ubus",
                      "bonding", "set_key")


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


def test_the_admin_sets_a_key_through_bondingd_and_nobody_reads_it_back(
        rpc_root: RouterRoot) -> None:
    rpc = JsonRpc(rpc_root)
    v, r, a = rpc.login("viewer"), rpc.login("reader"), rpc.login("admin")
    args = {"server": "vps1", "key": NEW_KEY}
    for sid in (v, r):
        out = rpc.call(sid, "bonding", "set_key", args)
        assert out.get("error", {}).get("code") == -32002, out
    assert rpc.call(a, "bonding", "set_key", {"server": "vps1", "key": "a b"})["result"] == [2]
    out = rpc.call(a, "bonding", "set_key", args)
    assert out["result"][0] == 0, out
    assert out["result"][1]["stored"] is True and NEW_KEY not in json.dumps(out)
    f = rpc_root.path(SECRETS_FILE)
    assert f.stat().st_mode & 0o777 == 0o600
    assert f"option key '{NEW_KEY}'" in f.read_text()
    assert SECRET not in f.read_text()
    for sid in (v, r, a):
        for obj, method, call_args in [("uci", "get", {"config": "bonding_secrets"}),
                                       ("file", "read", {"path": SECRETS_FILE}),
                                       ("uci", "changes", {}), ("bonding", "status", {})]:
            assert NEW_KEY not in json.dumps(rpc.call(sid, obj, method, call_args))
    assert NEW_KEY not in rpc_root.path("/tmp/log/messages").read_text()
    # back to the first key, for the other tests
    rpc.call(a, "bonding", "set_key", {"server": "vps1", "key": SECRET})
