"""Round trip: bonding-server's client entry → bonding-image → the first-boot script run on a
scratch root → /etc/config/bonding, which bondingd's config loader accepts with no error and
which points at that server (with the key in bonding_secrets).

`bonding-server add-client` itself cannot run here: it needs a server set up by `init`, which
writes /etc/sysctl.d and installs firewall rules on the host.  The entry comes from the server's
real command line all the same: the records are made with its own store and model (no host
change) and `bonding-server show-client` prints the entry exactly as add-client does (both call
the same formatting).  The entry as interfaces.md documents it is tested too.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bonding import config, uci

from .conftest import FIREWALL, NETWORK_DSA, PYTHON_DIR, generate, make_root

# interfaces.md, "bonding-server (server helper)": the documented add-client output
DOCUMENTED = """\
# bonding client 'x' for server 203.0.113.10
config server 'x'
\toption address '203.0.113.10'
\toption port '65101'
\toption protocol 'shadowsocks'
\toption cipher 'chacha20-ietf-poly1305'

# /etc/config/bonding_secrets (mode 0600)
config server 'x'
\toption key 'SECRET'
"""


def _through_image(tmp: Path, entry: str, suffix: str) -> tuple[config.Config, uci.Package]:
    client_file = tmp / f"entry.{suffix}"
    client_file.write_text(entry)
    g = generate(tmp, ["--client", str(client_file), "--wan", "lan3", "--usb-modem"],
                 client_text=None)
    assert g.rc == 0
    root = make_root(tmp, "fake")
    root.write("network", NETWORK_DSA)
    root.write("firewall", FIREWALL)
    res = root.run(g.script)
    assert res.returncode == 0, res.stderr
    text = (root.conf / "bonding").read_text()
    cfg, problems = config.from_sections(uci.loads(text, "bonding").sections)
    assert [str(p) for p in problems] == []  # no error, and no warning either
    strict, _ = config.load_strict(root.conf)  # the loader bondingd calls
    assert strict == cfg
    secrets, problems = config.load_secrets(root.conf)  # and its secrets loader
    assert [str(p) for p in problems] == []
    assert secrets.names() == tuple(sorted(s.name for s in cfg.servers))
    return cfg, root.read("bonding_secrets")


def test_documented_entry(tmp_path: Path) -> None:
    cfg, secrets = _through_image(tmp_path, DOCUMENTED, "txt")
    (srv,) = cfg.servers
    assert (srv.name, srv.address, srv.port, srv.protocol, srv.cipher, srv.enabled) == (
        "x", "203.0.113.10", 65101, "shadowsocks", "chacha20-ietf-poly1305", True)
    assert cfg.targets_for(cfg.paths[0]) == ("203.0.113.10",)  # probes go to that server
    assert [(p.name, p.interface) for p in cfg.paths] == [("wan", "wan"), ("wan2", "wan2")]
    assert cfg.globals.enabled and cfg.globals.proxy == "sing-box"
    assert cfg.usb.auto_dhcp
    assert secrets.section("x") is not None
    assert secrets.section("x").options == {"key": "SECRET"}  # type: ignore[union-attr]


def _server_cli(state: Path, *args: str) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PYTHON_DIR)
    res = subprocess.run([sys.executable, "-m", "bonding.server", "--state-dir", str(state),
                          *args], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr + res.stdout
    return res.stdout


@pytest.fixture(params=[None, "2001:db8:203::10"], ids=["ipv4", "ipv6-too"])
def server_state(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Path, str, int]:
    if importlib.util.find_spec("bonding.server") is None:
        pytest.skip("python/bonding/server is not there yet")
    from bonding.server.model import ServerConfig, new_client
    from bonding.server.store import Store

    state = tmp_path / "server-state"
    store = Store(state)
    store.ensure_dirs()
    store.save_server(ServerConfig(public_address="203.0.113.10", systemd=False, user="nobody",
                                   proxy="sing-box", public_address6=request.param))
    client = new_client("x", 65107, None, "2022-blake3-aes-128-gcm")
    store.write(client)
    return state, client.key, client.port


@pytest.mark.parametrize("form", ["text", "json"])
def test_bonding_server_entry(tmp_path: Path, server_state: tuple[Path, str, int],
                              form: str) -> None:
    state, key, port = server_state
    args = ["show-client", "x"] if form == "text" else ["--json", "show-client", "x"]
    entry = _server_cli(state, *args)
    if form == "json":
        assert json.loads(entry)["key"] == key
    else:
        assert entry.startswith("# bonding client 'x' for server 203.0.113.10")
    cfg, secrets = _through_image(tmp_path, entry, form)
    (srv,) = cfg.servers
    assert (srv.name, srv.address, srv.port, srv.protocol) == (
        "x", "203.0.113.10", port, "shadowsocks")
    # its IPv6 address when `init --public-address6` gave it one: the LAN's IPv6 is proxied
    address6 = json.loads((state / "server.json").read_text())["public_address6"]
    assert srv.address6 == address6
    # a sing-box server: Shadowsocks-2022 and UDP inside the bonded connection
    assert (srv.cipher, srv.udp_over_tcp) == ("2022-blake3-aes-128-gcm", True)
    sec = secrets.section("x")
    assert sec is not None and sec.options == {"key": key}
