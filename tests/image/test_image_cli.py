"""bonding-image's command line: help, version, errors (exit 2 naming what is wrong), the ASU
request's fields, the imagebuilder script and command line."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from bonding import __version__

from .conftest import CLIENT_TEXT, IMAGE_ARGS, generate, run_cli

# ASU's BuildRequest (openwrt/asu, asu/build_request.py): every field it defines, and patterns
ASU_FIELDS = {"distro", "version", "version_code", "target", "profile", "packages",
              "packages_versions", "diff_packages", "defaults", "rootfs_size_mb", "filesystem",
              "repositories", "repositories_mode", "repository_keys", "client"}
ASU_REQUIRED = {"version", "target", "profile"}
STRING_PATTERN = re.compile(r"^[\w.,-]*$")
TARGET_PATTERN = re.compile(r"^[\w]*/[\w]*$")
REPO_URL_PATTERN = re.compile(r"^https?://\S+$")
ASU_MAX_DEFAULTS = 20480

USIGN_PUB = ("untrusted comment: public key 5a7cd6ff1c2c7ad0\n"
             "RWRafNb/HCx60A9zxT2YxDcjpRVHD4jNcWsCsJ4Rh84hLzQfNvbtB1Fv\n")
PEM_PUB = ("-----BEGIN PUBLIC KEY-----\n"
           "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQ0nJ1c2Z2h0a2V5a2V5a2V5a2V5\n"
           "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U=\n"
           "-----END PUBLIC KEY-----\n")


def test_version() -> None:
    res = run_cli(["--version"])
    assert res.returncode == 0
    assert res.stdout.strip() == f"bonding-image {__version__}"


def test_help_explains_every_flag() -> None:
    res = run_cli(["--help"])
    assert res.returncode == 0
    flags = ["--client", "--server", "--port", "--key", "--key-file", "--cipher", "--name",
             "--usb-modem", "--quectel", "--android-tethering", "--ios-tethering",
             "--usb-ethernet", "--diag-tools", "--perf-tools", "--no-luci", "--luci-lang",
             "--proxy", "--wan", "--lan-ip", "--release", "--target", "--profile",
             "--feed-url", "--feed-key", "--output", "--version"]
    text = res.stdout
    for flag in flags:
        m = re.search(rf"^\s+{re.escape(flag)}\b[^\n]*\n((?:\s{{10,}}\S[^\n]*\n)*)", text, re.M)
        assert m is not None, f"{flag} not in --help"
        assert len(m.group(0).split()) > 3, f"{flag} has no explanation"
    assert "WAN ports:" in text and "LAN address changes only with --lan-ip" in text


def _err(tmp_path: Path, args: list[str], capsys: pytest.CaptureFixture[str],
         client_text: str | None = CLIENT_TEXT) -> str:
    g = generate(tmp_path, args, client_text=client_text, capsys=capsys)
    assert g.rc == 2, g.stderr
    assert not (tmp_path / "out").exists(), "nothing is written on an error"
    return g.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--usb-modm"], "unrecognized arguments: --usb-modm"),
    (["--usb"], "unrecognized arguments: --usb"),  # no abbreviations
    (["--proxy", "xray", "--proxy", "sing-box"], "--proxy given twice"),
    (["--proxy", "v2ray"], "invalid choice: 'v2ray'"),
    (["--quectel", "--quectel"], "--quectel given twice"),
    (["--no-luci", "--luci-lang", "de"], "--no-luci and --luci-lang do not go together"),
    (["--luci-lang", "German!"], "--luci-lang 'German!'"),
    (["--luci-lang", "en"], "LuCI is in English already"),
    (["--server", "203.0.113.10"], "--client and --server do not go together"),
    (["--wan", "lan4", "--wan", "lan4"], "--wan lan4 given twice"),
    (["--wan", "br-lan"], "a port, not a bridge"),
    (["--wan", "lan 4"], "--wan 'lan 4': a network device name"),
    (["--wan", "averyverylongport0"], "a network device name"),
    (["--lan-ip", "192.168.4.1"], "give the prefix too"),
    (["--lan-ip", "192.168.4.0/24"], "not a usable router address"),
    (["--lan-ip", "192.168.400.1/24"], "not an IPv4 address"),
    (["--release", "23.05"], "--release '23.05': use 24.10 or 25.12"),
    (["--feed-key", "k.pub"], "--feed-key goes with --feed-url"),
])
def test_bad_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                   message: str) -> None:
    assert message in _err(tmp_path, args, capsys)


@pytest.mark.parametrize(("image_args", "message"), [
    (["--profile", "p"], "--target is required"),
    (["--target", "x86/64"], "--profile is required"),
    (["--target", "x86", "--profile", "generic"], "--target 'x86': write target/subtarget"),
    (["--target", "x86/64", "--profile", "a b"], "--profile 'a b'"),
])
def test_bad_image_args(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                        image_args: list[str], message: str) -> None:
    g = generate(tmp_path, [], image_args=image_args, capsys=capsys)
    assert g.rc == 2
    assert message in g.stderr


def test_output_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    res = run_cli(["--server", "203.0.113.10", "--port", "1", "--key", "k", *IMAGE_ARGS])
    assert res.returncode == 2
    assert "--output is required" in res.stderr


def _entry(address: str = "203.0.113.10", port: str = "65101", key: str | None = "k",
           cipher: str = "chacha20-ietf-poly1305", name: str = "home") -> str:
    text = (f"config server '{name}'\n\toption address '{address}'\n\toption port '{port}'\n"
            f"\toption protocol 'shadowsocks'\n\toption cipher '{cipher}'\n")
    if key is not None:
        text += f"\n# /etc/config/bonding_secrets (mode 0600)\nconfig server '{name}'\n" \
                f"\toption key '{key}'\n"
    return text


@pytest.mark.parametrize(("client_text", "message"), [
    (_entry(key=None), "server 'home' has no key"),
    (_entry(port="70000"), "port '70000': out of range: use 1–65535"),
    (_entry(port="http"), "port 'http': not a whole number"),
    (_entry(address="203.0.113.300"), "address '203.0.113.300': not an IP address or host"),
    (_entry(address="bad host"), "address 'bad host'"),
    (_entry(cipher="rc4-md5"), "cipher 'rc4-md5': not one of"),
    (_entry(cipher="2022-blake3-aes-128-gcm", key="short"), "key is not base64"),
    (_entry(cipher="2022-blake3-aes-128-gcm", key="c2hvcnQ="), "decodes to 5 bytes"),
    (_entry(key=""), "server 'home' has no key"),  # libuci ignores an empty option
    ('{"name": "x", "address": "203.0.113.10", "port": 1, "key": ""}', "key is empty"),
    (_entry(name="wan"), "server name 'wan' is also a path name"),
    (_entry(name="globals"), "server name 'globals' is also a section name"),
    ("config server 'home'\n\toption port '65101'\n", "server 'home' has no address"),
    ("config server 'home'\n\toption address 'x\n", "unterminated"),
    ("config path 'wan'\n\toption interface 'wan'\n", "unexpected 'config path' section"),
    ("hello\nconfig server 'a'\n", "client.txt:1: not a client entry line: 'hello'"),
    ("", "no 'config server' section found"),
    (_entry() + "\nuci batch <<'EOF'\nset bonding.home.port='65102'\nEOF\n",
     "the sections say port='65101' but the uci batch says '65102'"),
    (_entry() + "\nuci batch <<'EOF'\nset bonding.home.port='1'\n",
     "heredoc has no closing EOF"),
    (_entry() + "\nuci batch <<'EOF'\nset bonding.home.key='k'\nEOF\n",
     "the key belongs in bonding_secrets"),
    ('{"name": "x", "address": "203.0.113.10", "port": 65101}', "JSON client entry has no 'key'"),
    ('{"name": "x", "address": "203.0.113.10", "port": "a", "key": "k"}', "port 'a'"),
    ('{"name": "x", "address": "203.0.113.10", "port": true, "key": "k"}', "'port' is True"),
    ('{"name": "x-y", "address": "203.0.113.10", "port": 1, "key": "k"}', "name 'x-y'"),
    ('{"name": "x", "address": "203.0.113.10", "port": 1, "key": "k"', "malformed JSON"),
    ('[]', "an empty JSON list"),
    ('{"name": "x", "address": "203.0.113.10", "port": 1, "key": "a\\nb"}',
     "key: must be 1–256 printable characters without spaces (value not shown)"),
    ('{"name": "x", "address": "203.0.113.10", "port": 1, "key": "two words"}',
     "key: must be 1–256 printable characters without spaces"),
    ('{"name": "x", "address": "203.0.113.10", "port": 1, "key": "' + "k" * 257 + '"}',
     "key: must be 1–256 printable characters"),
])
def test_malformed_client_entries(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  client_text: str, message: str) -> None:
    assert message in _err(tmp_path, [], capsys, client_text=client_text)


def test_two_entries_with_one_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    second = tmp_path / "second.txt"
    second.write_text(CLIENT_TEXT)
    assert "two servers are named 'home'" in _err(tmp_path, ["--client", str(second)], capsys)


@pytest.mark.parametrize(("args", "message"), [
    (["--server", "203.0.113.10", "--key", "k"], "--server needs --port"),
    (["--server", "203.0.113.10", "--port", "1"], "--server needs --key or --key-file"),
    (["--server", "203.0.113.10", "--port", "0", "--key", "k"], "port '0': out of range"),
    (["--server", "203.0.113.10", "--port", "1", "--key", "k", "--key-file", "f"],
     "--key and --key-file do not go together"),
    (["--port", "1", "--key", "k"], "--server needs --server"),
    ([], "no server: give --client FILE"),
])
def test_direct_server_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              args: list[str], message: str) -> None:
    assert message in _err(tmp_path, args, capsys, client_text=None)


def test_client_from_stdin_as_json() -> None:
    entry = json.dumps({"name": "x", "address": "vpn.example.net", "port": 65110,
                        "protocol": "shadowsocks", "cipher": "aes-256-gcm", "key": "k3",
                        "rate_mbit": None})
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        res = run_cli(["--client", "-", *IMAGE_ARGS, "--output", d], stdin=entry)
        assert res.returncode == 0, res.stderr
        script = (Path(d) / "99-bonding-setup").read_text()
    assert "u set bonding.x.address='vpn.example.net'" in script
    assert "u set bonding.x.port='65110'" in script
    assert "u set bonding_secrets.x.key='k3'" in script


def test_outputs_and_their_modes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    g = generate(tmp_path, ["--wan", "lan4"], capsys=capsys)
    assert g.rc == 0
    modes = {p.relative_to(g.out).as_posix(): stat.S_IMODE(p.stat().st_mode)
             for p in g.out.rglob("*") if p.is_file()}
    assert modes == {"99-bonding-setup": 0o600,
                     "files/etc/uci-defaults/99-bonding-setup": 0o600,
                     "asu-request.json": 0o600, "packages.txt": 0o644,
                     "imagebuilder.sh": 0o755}
    assert (g.out / "files/etc/uci-defaults/99-bonding-setup").read_text() == \
        g.script.read_text()
    files = (g.out / "files").resolve()
    assert (f"make image PROFILE='glinet_gl-mt6000' PACKAGES='bonding luci-app-bonding "
            f"sing-box' FILES='{files}'") in g.stdout
    # the key is in the private files only, and the user is told what sending the ASU request
    # does with it
    assert "asu-request.json holds the server key: an ASU server you send it to gets the key" \
        in g.stderr
    assert "Zm9vYmFyYmF6cXV4MTIzNA" not in g.stdout + g.stderr
    assert "Zm9vYmFyYmF6cXV4MTIzNA" not in (g.out / "imagebuilder.sh").read_text()


@pytest.mark.parametrize(("release", "version"), [("24.10", "24.10.6"), ("25.12", "25.12.2"),
                                                  ("24.10.3", "24.10.3"),
                                                  ("25.12.0-rc1", "25.12.0-rc1")])
def test_asu_request_has_asus_fields(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     release: str, version: str) -> None:
    g = generate(tmp_path, ["--release", release, "--usb-modem", "--no-luci"], capsys=capsys)
    assert g.rc == 0
    req = g.asu()
    assert set(req) <= ASU_FIELDS
    assert set(req) >= ASU_REQUIRED
    assert req["version"] == version
    assert req["target"] == "mediatek/filogic"
    assert req["profile"] == "glinet_gl-mt6000"
    assert req["diff_packages"] is False  # additional packages, the device's defaults stay
    assert req["packages"] == g.packages()
    assert "-luci" in g.packages()
    assert req["defaults"] == g.script.read_text()
    assert req["client"] == f"bonding-image/{__version__}"
    assert "repositories" not in req
    assert isinstance(req["version"], str) and STRING_PATTERN.match(req["version"])
    assert TARGET_PATTERN.match(str(req["target"]))
    assert STRING_PATTERN.match(str(req["profile"]))
    assert all(STRING_PATTERN.match(p) for p in g.packages())
    assert len(str(req["defaults"]).encode()) <= ASU_MAX_DEFAULTS
    assert "--feed-url" in g.stderr


@pytest.mark.parametrize(("release", "url", "key", "want_key"), [
    ("24.10", "https://feed.example.org/bonding/24.10", USIGN_PUB,
     "RWRafNb/HCx60A9zxT2YxDcjpRVHD4jNcWsCsJ4Rh84hLzQfNvbtB1Fv"),
    ("25.12", "https://feed.example.org/bonding/25.12/packages.adb", PEM_PUB, PEM_PUB),
])
def test_asu_request_with_feed(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               release: str, url: str, key: str, want_key: str) -> None:
    kf = tmp_path / "feed.key"
    kf.write_text(key)
    g = generate(tmp_path, ["--release", release, "--feed-url", url, "--feed-key", str(kf)],
                 capsys=capsys)
    assert g.rc == 0, g.stderr
    req = g.asu()
    assert set(req) <= ASU_FIELDS
    assert req["repositories"] == {"bonding": url}
    assert REPO_URL_PATTERN.match(url)
    assert req["repositories_mode"] == "append"  # keep OpenWrt's own feeds
    assert req["repository_keys"] == [want_key]


@pytest.mark.parametrize(("release", "url", "key", "message"), [
    ("25.12", "https://f.example.org/b", None, "the URL of the feed's packages.adb index"),
    ("24.10", "https://f.example.org/b/packages.adb", None, "the folder that holds"),
    ("24.10", "ftp://f.example.org/b", None, "an http(s) URL"),
    ("24.10", "https://f.example.org/b", PEM_PUB, "a PEM key is for apk (25.12)"),
    ("25.12", "https://f.example.org/packages.adb", USIGN_PUB, "need a PEM public key"),
    ("24.10", "https://f.example.org/b", "not a key", "not a usign public key"),
])
def test_feed_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], release: str,
                     url: str, key: str | None, message: str) -> None:
    args = ["--release", release, "--feed-url", url]
    if key is not None:
        kf = tmp_path / "feed.key"
        kf.write_text(key)
        args += ["--feed-key", str(kf)]
    assert message in _err(tmp_path, args, capsys)


def test_defaults_over_asus_limit_is_an_error(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    big = tmp_path / "big.json"
    big.write_text(json.dumps([{"name": f"s{i}", "address": "203.0.113.10", "port": 65101 + i,
                                "key": "k" * 256} for i in range(60)]))
    g = generate(tmp_path, ["--client", str(big)], capsys=capsys)
    assert g.rc == 2
    assert "ASU takes at most 20480" in g.stderr


def _fake_imagebuilder(base: Path, repo_file: str, board: str) -> Path:
    ib = base / "ib"
    (ib / "packages").mkdir(parents=True)
    (ib / repo_file).write_text("src imagebuilder file:packages\n")
    (ib / ".config").write_text(f'CONFIG_TARGET_BOARD="{board}"\n')
    # records what `make image` was given
    (ib / "Makefile").write_text(
        "image:\n"
        "\t@printf '%s\\n' \"$(PROFILE)\" \"$(PACKAGES)\" \"$(FILES)\" > made.txt\n")
    return ib


def test_imagebuilder_script_runs_make_image(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    g = generate(tmp_path, ["--diag-tools"], capsys=capsys)
    assert g.rc == 0
    ib = _fake_imagebuilder(tmp_path, "repositories.conf", "mediatek")
    pkgs = tmp_path / "feed"
    pkgs.mkdir()
    for n in ("bonding_0.1.0-r1_all.ipk", "python3-bonding_0.1.0-r1_all.ipk"):
        (pkgs / n).write_text("x")
    res = subprocess.run(["sh", str(g.out / "imagebuilder.sh"), str(ib), str(pkgs)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    profile, packages, files = (ib / "made.txt").read_text().splitlines()
    assert profile == "glinet_gl-mt6000"
    assert packages.split() == g.packages()
    assert Path(files) == (g.out / "files").resolve()
    assert sorted(p.name for p in (ib / "packages").iterdir()) == [
        "bonding_0.1.0-r1_all.ipk", "python3-bonding_0.1.0-r1_all.ipk"]


@pytest.mark.parametrize(("repo_file", "board", "feed_files", "message"), [
    ("repositories", "mediatek", ["bonding.ipk"], "has no repositories.conf"),
    ("repositories.conf", "x86", ["bonding.ipk"], "is not for target mediatek/filogic"),
    ("repositories.conf", "mediatek", ["bonding.apk"], "no *.ipk in"),
])
def test_imagebuilder_script_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     repo_file: str, board: str, feed_files: list[str],
                                     message: str) -> None:
    g = generate(tmp_path, [], capsys=capsys)
    ib = _fake_imagebuilder(tmp_path, repo_file, board)
    pkgs = tmp_path / "feed"
    pkgs.mkdir()
    for n in feed_files:
        (pkgs / n).write_text("x")
    res = subprocess.run(["sh", str(g.out / "imagebuilder.sh"), str(ib), str(pkgs)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert message in res.stderr
    assert not (ib / "made.txt").exists()


def test_apk_release_imagebuilder_script(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    g = generate(tmp_path, ["--release", "25.12"], capsys=capsys)
    ib = _fake_imagebuilder(tmp_path, "repositories", "mediatek")
    pkgs = tmp_path / "feed"
    pkgs.mkdir()
    (pkgs / "bonding-0.1.0-r1.apk").write_text("x")
    res = subprocess.run(["sh", str(g.out / "imagebuilder.sh"), str(ib), str(pkgs)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert (ib / "packages" / "bonding-0.1.0-r1.apk").exists()


def test_server_name_of_a_wan_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = _entry(name="wan3")
    (tmp_path / "a").mkdir()
    assert generate(tmp_path / "a", ["--wan", "lan1"], client_text=text).rc == 0
    (tmp_path / "b").mkdir()
    assert "server name 'wan3' is also a path name" in _err(
        tmp_path / "b", ["--wan", "lan1", "--wan", "lan2"], capsys, client_text=text)


KEY = "Zm9vYmFyYmF6cXV4MTIzNA"  # the key of conftest's CLIENT_TEXT


def test_planted_temp_symlinks_are_never_followed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # whoever could write the output earlier planted links at every temp name we once used
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    (out / "files/etc/uci-defaults").mkdir(parents=True)
    for d, name in ((out, "99-bonding-setup"), (out, "asu-request.json"),
                    (out, "packages.txt"), (out, "imagebuilder.sh"),
                    (out / "files/etc/uci-defaults", "99-bonding-setup")):
        (d / f".{name}.tmp").symlink_to(victim)
    g = generate(tmp_path, ["--wan", "lan4"], capsys=capsys)
    assert g.rc == 0, g.stderr
    assert victim.read_text() == "precious\n"
    assert KEY in (out / "99-bonding-setup").read_text()
    assert not (out / "99-bonding-setup").is_symlink()


def test_a_symlinked_output_subdirectory_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "files").symlink_to(elsewhere)
    g = generate(tmp_path, ["--wan", "lan4"], capsys=capsys)
    assert g.rc == 1
    assert "out/files: not a directory of its own" in g.stderr
    assert list(elsewhere.rglob("*")) == []


@pytest.mark.parametrize("how", ["world-writable", "group-writable", "another user's"])
def test_an_output_directory_others_can_change_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str) -> None:
    # they could swap the first-boot script (which the image runs as root) after it is written
    out = tmp_path / "out"
    out.mkdir()
    if how == "world-writable":
        out.chmod(0o1777)
    elif how == "group-writable":
        out.chmod(0o775)
    else:
        assert os.geteuid() == 0, "this test changes a directory's owner: run it as root"
        os.chown(out, 65534, 65534)
    g = generate(tmp_path, ["--wan", "lan4"], capsys=capsys)
    assert g.rc == 1
    assert ("writable by others" in g.stderr) == (how != "another user's"), g.stderr
    assert ("belongs to uid 65534" in g.stderr) == (how == "another user's"), g.stderr
    assert list(out.iterdir()) == []
