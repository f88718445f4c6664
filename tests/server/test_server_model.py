"""bonding-server's data: validation, ports and names, the client's UCI and JSON (no root)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from bonding import config
from bonding.server.model import (
    CIPHER,
    Client,
    ServerConfig,
    ServerError,
    UsageError,
    client_json,
    client_uci,
    default_name,
    new_client,
    new_key,
    pick_port,
    validate_address,
    validate_cipher,
    validate_name,
    validate_port,
    validate_proxy,
    validate_rate,
)

SERVER = ServerConfig(public_address="203.0.113.10", systemd=False, user="nobody",
                      proxy="shadowsocks-libev")
SB_SERVER = replace(SERVER, proxy="sing-box")
CLIENT = Client(name="home_1", port=65101, key="k3y-ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789abc",
                rate_mbit=20.0, created=1.0)
SB_KEY = base64.b64encode(bytes(range(16))).decode()
SB_CLIENT = Client(name="home_1", port=65101, key=SB_KEY, cipher="2022-blake3-aes-128-gcm",
                   created=1.0)


@pytest.mark.parametrize("name", ["a", "lab", "home_office", "X9", "_", "a" * 32])
def test_good_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "bad-name", "a b", "a.b", "é", "a" * 33, "x\n", "a/b",
                                  "../x"])
def test_bad_names_are_usage_errors(name: str) -> None:
    with pytest.raises(UsageError, match="bad client name") as e:
        validate_name(name)
    assert e.value.exit_code == 2
    assert "[A-Za-z0-9_]" in str(e.value) or "letters, digits or '_'" in str(e.value)


@pytest.mark.parametrize("text,rate", [("20", 20.0), ("2.5", 2.5), ("0.1", 0.1),
                                       ("100000", 100000.0), (" 40 ", 40.0), (12, 12.0)])
def test_good_rates(text: str | float, rate: float) -> None:
    assert validate_rate(text) == rate


@pytest.mark.parametrize("text", ["0", "-5", "fast", "", "nan", "inf", "1e9", "0.01", "20mbit"])
def test_bad_rates_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match=re.escape(f"bad rate {text!r}")) as e:
        validate_rate(text)
    assert e.value.exit_code == 2
    assert "Mbit/s" in str(e.value)


@pytest.mark.parametrize("text,port", [("1024", 1024), ("65101", 65101), ("65534", 65534),
                                       (65200, 65200)])
def test_good_ports(text: str | int, port: int) -> None:
    assert validate_port(text) == port


@pytest.mark.parametrize("text", ["80", "1023", "65535", "70000", "http", "-1", "", "6e4"])
def test_bad_ports_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="bad port") as e:
        validate_port(text)
    assert e.value.exit_code == 2


@pytest.mark.parametrize("text,want", [("203.0.113.10", "203.0.113.10"),
                                       ("2001:DB8::1", "2001:db8::1"),
                                       ("vps.Example.com", "vps.example.com"),
                                       ("vps.example.com.", "vps.example.com")])
def test_good_addresses(text: str, want: str) -> None:
    assert validate_address(text) == want


@pytest.mark.parametrize("text", ["", "vps", "a..b", "-x.example.com", "1.2.3", "256.1.1.1",
                                  "x_y.example.com", "a b.com"])
def test_bad_addresses(text: str) -> None:
    with pytest.raises(UsageError, match="bad public address"):
        validate_address(text)


def test_pick_port_skips_records_and_busy_ports() -> None:
    assert pick_port({65101: "a"}, lambda p: p != 65102) == 65103
    assert pick_port({}, lambda p: True) == 65101
    with pytest.raises(ServerError, match="no free port") as e:
        pick_port({}, lambda p: False)
    assert e.value.exit_code == 1


def test_default_names() -> None:
    assert default_name([]) == "client1"
    assert default_name(["client1", "client3"]) == "client2"


def test_keys_are_strong_and_distinct() -> None:
    keys = {new_key() for _ in range(50)}
    assert len(keys) == 50
    for k in keys:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", k)  # 256 bits, safe inside UCI quotes


@pytest.mark.parametrize(("cipher", "size"), [("2022-blake3-aes-128-gcm", 16),
                                              ("2022-blake3-aes-256-gcm", 32),
                                              ("2022-blake3-chacha20-poly1305", 32)])
def test_shadowsocks_2022_keys_are_random_bytes_of_the_cipher_size(cipher: str,
                                                                   size: int) -> None:
    keys = {new_key(cipher) for _ in range(50)}
    assert len(keys) == 50
    for k in keys:
        assert len(base64.b64decode(k, validate=True)) == size
        assert config.key_problem(cipher, k) is None  # what the router's bondingd checks
    c = new_client("x", 65101, None, cipher)
    assert c.cipher == cipher and config.key_problem(cipher, c.key) is None


def test_record_round_trip_and_damage() -> None:
    assert Client.from_json(CLIENT.to_json()) == CLIENT
    assert Client.from_json(SB_CLIENT.to_json()) == SB_CLIENT
    raw = CLIENT.to_json()
    sb = SB_CLIENT.to_json()
    for broken in ({**raw, "port": 80}, {**raw, "name": "a-b"}, {**raw, "key": "short"},
                   {**raw, "cipher": "rc4-md5"}, {**raw, "rate_mbit": -1},
                   {**sb, "key": base64.b64encode(bytes(32)).decode()},  # 32 bytes for AES-128
                   {**raw, "cipher": "2022-blake3-aes-128-gcm"}):  # not base64 of 16 bytes
        with pytest.raises((ValueError, UsageError)):
            Client.from_json(broken)
    assert "k3y" not in repr(CLIENT)  # the key never shows in a repr (logs, tracebacks)


def test_proxy_and_cipher_choices() -> None:
    assert validate_proxy("sing-box") == "sing-box"
    with pytest.raises(UsageError, match="bad proxy 'xray': use one of sing-box, "
                                         "shadowsocks-libev"):
        validate_proxy("xray")
    assert validate_cipher("2022-blake3-chacha20-poly1305", "sing-box")
    with pytest.raises(UsageError, match=r"shadowsocks-libev.*speaks chacha20-ietf-poly1305"):
        validate_cipher("2022-blake3-aes-128-gcm", "shadowsocks-libev")
    # settings written before sing-box existed are an ss-libev server's
    old = {k: v for k, v in SERVER.to_json().items() if k != "proxy"}
    assert ServerConfig.from_json(json.loads(json.dumps(old))).proxy == "shadowsocks-libev"
    assert ServerConfig.from_json(SB_SERVER.to_json()) == SB_SERVER


def test_client_json() -> None:
    assert client_json(CLIENT, SERVER) == {
        "name": "home_1", "address": "203.0.113.10", "address6": None, "port": 65101,
        "protocol": "shadowsocks", "cipher": "chacha20-ietf-poly1305", "key": CLIENT.key,
        "rate_mbit": 20.0, "udp_over_tcp": False}
    assert client_json(SB_CLIENT, SB_SERVER) == {
        "name": "home_1", "address": "203.0.113.10", "address6": None, "port": 65101,
        "protocol": "shadowsocks", "cipher": "2022-blake3-aes-128-gcm", "key": SB_KEY,
        "rate_mbit": None, "udp_over_tcp": True}


UCI = """\
# bonding client 'home_1' for server 203.0.113.10
config server 'home_1'
\toption address '203.0.113.10'
\toption port '65101'
\toption protocol 'shadowsocks'
\toption cipher 'chacha20-ietf-poly1305'

# /etc/config/bonding_secrets (mode 0600)
config server 'home_1'
\toption key 'k3y-ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789abc'

# or in one go:
touch /etc/config/bonding_secrets; chmod 600 /etc/config/bonding_secrets
uci batch <<'EOF'
set bonding.home_1=server
set bonding.home_1.address='203.0.113.10'
set bonding.home_1.port='65101'
set bonding.home_1.protocol='shadowsocks'
set bonding.home_1.cipher='chacha20-ietf-poly1305'
set bonding_secrets.home_1=server
set bonding_secrets.home_1.key='k3y-ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789abc'
commit bonding
commit bonding_secrets
EOF
"""


def test_client_uci_is_exactly_the_agreed_format() -> None:
    assert client_uci(CLIENT, SERVER) == UCI


def test_a_sing_box_server_tells_the_router_to_send_udp_inside_the_bonded_connection() -> None:
    text = client_uci(SB_CLIENT, SB_SERVER)
    assert "\toption cipher '2022-blake3-aes-128-gcm'\n\toption udp_over_tcp '1'\n" in text
    assert "set bonding.home_1.udp_over_tcp='1'\n" in text
    assert "udp_over_tcp" not in client_uci(CLIENT, SERVER)  # ss-server has none


def _parts(text: str) -> tuple[str, str, str]:
    bonding, rest = text.split("\n\n# /etc/config/bonding_secrets (mode 0600)\n", 1)
    secrets, batch = rest.split("\n\n# or in one go:\n", 1)
    return bonding + "\n", secrets + "\n", batch


@pytest.mark.parametrize(("client", "server", "cipher", "uot"), [
    (CLIENT, SERVER, CIPHER, False),
    (SB_CLIENT, SB_SERVER, "2022-blake3-aes-128-gcm", True),
])
def test_pasted_uci_is_what_the_router_reads(tmp_path: Path, client: Client,
                                             server: ServerConfig, cipher: str,
                                             uot: bool) -> None:
    """The two sections, pasted into the router's files, load with bonding.config."""
    bonding, secrets, _ = _parts(client_uci(client, server))
    (tmp_path / "bonding").write_text(bonding)
    (tmp_path / "bonding_secrets").write_text(secrets)
    os.chmod(tmp_path / "bonding_secrets", 0o600)
    cfg, problems = config.load(tmp_path)
    assert [p for p in problems if p.severity is config.Severity.ERROR] == []
    (srv,) = cfg.servers
    assert (srv.name, srv.address, srv.port, srv.protocol, srv.cipher, srv.enabled,
            srv.udp_over_tcp) == ("home_1", "203.0.113.10", 65101, "shadowsocks", cipher, True,
                                  uot)
    keys, problems = config.load_secrets(tmp_path)
    assert problems == []
    assert keys.key("home_1") == client.key
    assert config.key_problem(srv.cipher, client.key) is None  # bondingd takes the key


def test_uci_batch_with_real_uci(tmp_path: Path) -> None:
    """The `uci batch` part run by the real uci (OWRT_PREFIX) gives the same configuration."""
    prefix = os.environ.get("OWRT_PREFIX", "")
    uci_bin = Path(prefix, "bin", "uci") if prefix else None
    if uci_bin is None or not uci_bin.is_file() or shutil.which("sh") is None:
        pytest.skip("OWRT_PREFIX is not set or has no bin/uci: the batch is checked against "
                    "bonding.config only")
    _, _, batch = _parts(client_uci(CLIENT, SERVER))
    script = batch.replace("/etc/config", str(tmp_path)).replace(
        "uci batch", f"{uci_bin} -c {tmp_path} batch")
    (tmp_path / "bonding").write_text("config globals 'globals'\n")
    env = dict(os.environ, LD_LIBRARY_PATH=str(Path(prefix, "lib")))
    r = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env,
                       timeout=30, check=False)
    assert r.returncode == 0, r.stderr
    cfg, problems = config.load(tmp_path)
    assert [p for p in problems if p.severity is config.Severity.ERROR] == []
    assert [(s.name, s.address, s.port, s.cipher) for s in cfg.servers] == [
        ("home_1", "203.0.113.10", 65101, CIPHER)]
    assert oct(os.stat(tmp_path / "bonding_secrets").st_mode & 0o777) == "0o600"
    keys, _ = config.load_secrets(tmp_path)
    assert keys.key("home_1") == CLIENT.key
