"""bonding_secrets held against /etc/config/bonding (bonding.config.secretsfile), `bondingd
--check-config` on both files, and pruning the keys of removed servers."""

from __future__ import annotations

import base64
import fcntl
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from bonding import config, daemon, uci
from bonding.config import Config, Globals, Secrets, Server, Severity, secretsfile

ERROR, WARNING = Severity.ERROR, Severity.WARNING
K16 = base64.b64encode(bytes(range(16))).decode()
K32 = base64.b64encode(bytes(range(32))).decode()
PASSWORD = "a-long-enough-password"


def cfg(*servers: Server, proxy: str = "xray") -> Config:
    return Config(globals=Globals(proxy=proxy), servers=servers)


def srv(name: str, cipher: str = "chacha20-ietf-poly1305", enabled: bool = True) -> Server:
    return Server(name=name, address="203.0.113.10", cipher=cipher, enabled=enabled)


# (id, config, keys, [(severity, section, start of the message)])
CHECK_CASES: list[tuple[str, Config, dict[str, str], list[tuple[Severity, str, str]]]] = [
    ("all good", cfg(srv("a"), srv("b", "2022-blake3-aes-128-gcm"),
                     srv("c", "2022-blake3-chacha20-poly1305")),
     {"a": PASSWORD, "b": K16, "c": K32}, []),
    ("missing key, with a proxy: error", cfg(srv("a"), srv("b")), {"a": PASSWORD},
     [(ERROR, "b", "missing: enabled server 'b' has no key")]),
    ("missing key, no proxy: warning", cfg(srv("a"), proxy="none"), {},
     [(WARNING, "a", "missing: enabled server 'a' has no key")]),
    ("missing key of a disabled server: fine", cfg(srv("a"), srv("b", enabled=False)),
     {"a": PASSWORD}, []),
    ("ss2022 key of the wrong size", cfg(srv("a", "2022-blake3-aes-256-gcm")), {"a": K16},
     [(ERROR, "a", "the key decodes to 16 bytes; cipher 2022-blake3-aes-256-gcm needs "
                   "exactly 32")]),
    ("ss2022 key not base64", cfg(srv("a", "2022-blake3-aes-128-gcm")), {"a": PASSWORD},
     [(ERROR, "a", "the key is not base64, which cipher 2022-blake3-aes-128-gcm needs")]),
    ("short password", cfg(srv("a")), {"a": "hunter2"},
     [(WARNING, "a", "shorter than 16 characters")]),
    ("key without a server", cfg(srv("a")), {"a": PASSWORD, "old": PASSWORD},
     [(WARNING, "old", "no server section 'old'")]),
]


@pytest.mark.parametrize(("c", "keys", "want"), [x[1:] for x in CHECK_CASES],
                         ids=[x[0] for x in CHECK_CASES])
def test_check(c: Config, keys: dict[str, str], want: list[tuple[Severity, str, str]]) -> None:
    problems = secretsfile.check(c, Secrets(keys))
    assert [(p.severity, p.section) for p in problems] == [(s, n) for s, n, _ in want]
    for p, (_, _, msg) in zip(problems, want, strict=True):
        assert p.message.startswith(msg), p.message
        assert p.package == "bonding_secrets"
        for k in keys.values():
            assert k not in str(p)


def write(d: Path, name: str, text: str, mode: int = 0o600) -> Path:
    f = d / name
    f.write_text(text)
    f.chmod(mode)
    return f


BONDING = """
config globals 'globals'
\toption proxy 'shadowsocks-libev'

config server 'vps1'
\toption address '203.0.113.10'

config server 'vps2'
\toption address '203.0.113.20'
\toption cipher '2022-blake3-aes-256-gcm'
"""


def check_config(d: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = daemon.main(["--check-config", "--config-dir", str(d)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_check_config_reports_the_secrets_problems(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "bonding", BONDING)
    write(tmp_path, "bonding_secrets", f"config server 'vps2'\n\toption key '{K16}'\n"
          f"config server 'gone'\n\toption key '{PASSWORD}'\n", 0o644)
    rc, out, err = check_config(tmp_path, capsys)
    assert rc == 1
    lines = out.splitlines()
    assert any(line.startswith("error: bonding_secrets.(file): ") and "mode 0644: every user"
               in line for line in lines), out
    assert "error: bonding_secrets.vps1.key: missing: enabled server 'vps1' has no key" in out
    assert ("error: bonding_secrets.vps2.key: the key decodes to 16 bytes; cipher "
            "2022-blake3-aes-256-gcm needs exactly 32") in out
    assert "warning: bonding_secrets.gone: no server section 'gone'" in out
    assert K16 not in out and PASSWORD not in out and K16 not in err
    assert "bonding_secrets" in err and "error(s)" in err


def test_check_config_good_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "bonding", BONDING)
    write(tmp_path, "bonding_secrets", f"config server 'vps1'\n\toption key '{PASSWORD}'\n"
          f"config server 'vps2'\n\toption key '{K32}'\n")
    rc, out, _ = check_config(tmp_path, capsys)
    assert rc == 0
    assert out.strip() == f"{tmp_path}/bonding: OK"


def test_check_config_unreadable_secrets_say_so_once(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "bonding", BONDING)
    write(tmp_path, "bonding_secrets", f"config server 'vps1'\n\toption key '{PASSWORD}\n")
    rc, out, _ = check_config(tmp_path, capsys)
    assert rc == 1
    assert "is not a valid UCI file" in out
    assert "missing" not in out  # not one error per server on top of it
    assert PASSWORD not in out


def test_check_config_without_a_secrets_file(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "bonding", BONDING)
    rc, out, _ = check_config(tmp_path, capsys)
    assert rc == 1
    assert "bonding_secrets does not exist" in out
    assert "bonding_secrets.vps1.key: missing" in out and "bonding_secrets.vps2.key" in out


# --- pruning ----------------------------------------------------------------------------------

SECRETS = (f"config server 'vps1'\n\toption key '{PASSWORD}'\n\n"
           f"config server 'vps2'\n\toption key '{K32}'\n\n"
           f"config server 'vps3'\n\toption key 'third-{PASSWORD}'\n")


def test_prune_removes_only_the_named_servers(tmp_path: Path) -> None:
    f = write(tmp_path, "bonding_secrets", "# a comment\n" + SECRETS, 0o600)
    inode = f.stat().st_ino
    assert secretsfile.prune(tmp_path, {"vps2", "nosuch"}) == ["vps2"]
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert f.stat().st_ino != inode  # replaced by rename, not rewritten in place
    secrets, problems = config.load_secrets(tmp_path)
    assert problems == []
    assert secrets.names() == ("vps1", "vps3")
    assert secrets.key("vps1") == PASSWORD and secrets.key("vps3") == f"third-{PASSWORD}"
    assert [p.name for p in tmp_path.iterdir()] == ["bonding_secrets"]  # no temporary left


def test_prune_of_a_symlinked_file_rewrites_its_target(tmp_path: Path) -> None:
    # /etc/config/bonding_secrets -> /etc/keys/bonding_secrets: libuci writes through the link,
    # and so does the pruning, or the removed key would stay in the real file
    keys = tmp_path / "keys"
    keys.mkdir()
    real = write(keys, "bonding_secrets", SECRETS, 0o600)
    conf = tmp_path / "config"
    conf.mkdir()
    (conf / "bonding_secrets").symlink_to(real)
    assert secretsfile.prune(conf, {"vps2"}) == ["vps2"]
    assert (conf / "bonding_secrets").is_symlink()
    assert K32 not in real.read_text() and PASSWORD in real.read_text()
    assert sorted(p.name for p in keys.iterdir()) == ["bonding_secrets"]  # no temporary left


def test_prune_keeps_mode_0600_even_from_a_looser_file(tmp_path: Path) -> None:
    f = write(tmp_path, "bonding_secrets", SECRETS, 0o644)
    assert secretsfile.prune(tmp_path, {"vps1"}) == ["vps1"]
    assert stat.S_IMODE(f.stat().st_mode) == 0o600


def test_prune_nothing_to_do_leaves_the_file(tmp_path: Path) -> None:
    f = write(tmp_path, "bonding_secrets", SECRETS)
    before = (f.stat().st_ino, f.read_text())
    assert secretsfile.prune(tmp_path, {"other"}) == []
    assert (f.stat().st_ino, f.read_text()) == before
    assert secretsfile.prune(tmp_path / "missing", {"vps1"}) == []


def test_prune_refuses_an_unparsable_file_without_quoting_it(tmp_path: Path) -> None:
    f = write(tmp_path, "bonding_secrets", SECRETS + f"option key '{PASSWORD}\n")
    with pytest.raises(secretsfile.SecretsFileError) as ei:
        secretsfile.prune(tmp_path, {"vps1"})
    assert PASSWORD not in str(ei.value)
    assert f.read_text().startswith(SECRETS)


def test_prune_keeps_other_sections_and_anonymous_ones(tmp_path: Path) -> None:
    write(tmp_path, "bonding_secrets", SECRETS + "\nconfig note\n\toption text 'kept'\n")
    secretsfile.prune(tmp_path, {"vps1"})
    pkg = uci.loads((tmp_path / "bonding_secrets").read_text(), "bonding_secrets")
    assert [(s.type, s.name) for s in pkg.sections] == [("server", "vps2"), ("server", "vps3"),
                                                        ("note", None)]


def test_prune_waits_for_the_lock_uci_holds(tmp_path: Path) -> None:
    """libuci's commit holds an exclusive flock on the file: prune waits, then re-reads it."""
    f = write(tmp_path, "bonding_secrets", SECRETS)
    fd = os.open(f, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    done: list[list[str]] = []
    t = threading.Thread(target=lambda: done.append(secretsfile.prune(tmp_path, {"vps1"})))
    t.start()
    time.sleep(0.2)
    assert not done  # blocked on the lock
    # "uci commit" adds a server meanwhile (written in place: we hold the lock)
    os.write(fd, (SECRETS + f"\nconfig server 'vps4'\n\toption key '{PASSWORD}'\n").encode())
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    t.join(5)
    assert done == [["vps1"]]
    assert config.load_secrets(tmp_path)[0].names() == ("vps2", "vps3", "vps4")


# --- set_key (bondingd's ubus method for LuCI) --------------------------------------

def test_set_key_creates_the_file_0600_and_reads_back_as_bondingd_reads_it(
        tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        secretsfile.set_key(tmp_path, "vps1", PASSWORD)
    finally:
        os.umask(old)
    f = tmp_path / "bonding_secrets"
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    secrets, problems = config.load_secrets(tmp_path)
    assert problems == [] and secrets.key("vps1") == PASSWORD
    assert [p.name for p in tmp_path.iterdir()] == ["bonding_secrets"]  # no temporary left


def test_set_key_replaces_one_key_and_keeps_the_rest(tmp_path: Path) -> None:
    f = write(tmp_path, "bonding_secrets", "# a comment\n" + SECRETS
              + "\nconfig note\n\toption text 'kept'\n", 0o644)
    inode = f.stat().st_ino
    secretsfile.set_key(tmp_path, "vps2", K16, "2022-blake3-aes-128-gcm")
    assert f.stat().st_ino != inode and stat.S_IMODE(f.stat().st_mode) == 0o600
    secretsfile.set_key(tmp_path, "vps9", f"new-{PASSWORD}")
    pkg = uci.loads(f.read_text(), "bonding_secrets")
    assert [(s.type, s.name) for s in pkg.sections] == [
        ("server", "vps1"), ("server", "vps2"), ("server", "vps3"), ("note", None),
        ("server", "vps9")]
    keys = config.load_secrets(tmp_path)[0]
    assert (keys.key("vps1"), keys.key("vps2"), keys.key("vps9")) == \
        (PASSWORD, K16, f"new-{PASSWORD}")


@pytest.mark.parametrize(("server", "key", "cipher", "why"), [
    ("vps 1", PASSWORD, None, "server name"),
    ("", PASSWORD, None, "server name"),
    ("vps1", "has a space", None, "printable ASCII"),
    ("vps1", "", None, "printable ASCII"),
    ("vps1", "x" * 257, None, "printable ASCII"),
    ("vps1", "ключ-" + PASSWORD, None, "printable ASCII"),
    ("vps1", K32, "2022-blake3-aes-128-gcm", "needs exactly 16"),
])
def test_set_key_refuses_bad_input_without_quoting_the_key(
        tmp_path: Path, server: str, key: str, cipher: str | None, why: str) -> None:
    f = write(tmp_path, "bonding_secrets", SECRETS)
    with pytest.raises(secretsfile.SecretsFileError) as ei:
        secretsfile.set_key(tmp_path, server, key, cipher)
    assert why in str(ei.value)
    assert not key or key not in str(ei.value)
    assert f.read_text() == SECRETS


def test_set_key_refuses_a_section_of_another_type_and_an_unparsable_file(
        tmp_path: Path) -> None:
    f = write(tmp_path, "bonding_secrets", "config note 'vps1'\n\toption key 'x'\n")
    with pytest.raises(secretsfile.SecretsFileError, match="not a server"):
        secretsfile.set_key(tmp_path, "vps1", PASSWORD)
    broken = SECRETS + f"option key '{PASSWORD}\n"
    f.write_text(broken)
    with pytest.raises(secretsfile.SecretsFileError) as ei:
        secretsfile.set_key(tmp_path, "vps1", "another-" + PASSWORD)
    assert PASSWORD not in str(ei.value) and f.read_text() == broken
