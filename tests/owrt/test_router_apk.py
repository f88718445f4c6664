"""Our apk repository (OpenWrt 25.12: `make feed-apk`, tools/feedlib/apk.py) under the real apk
in a scratch OpenWrt root (tests/owrt/router_root.py with its `apk` part: apk-tools 3.0.5 as
/usr/bin/apk; root only).

The repository is listed in /etc/apk/repositories.d/ and its key put in /etc/apk/keys/, as the
README tells a 25.12 user.  apk refuses it while it trusts only another key, refuses a tampered
index and a tampered package, installs it with our key (the packages' post-install scripts run:
the service user, uci-defaults, enable and start by procd), and `apk del` leaves only the
conffiles the user changed.

What the packages depend on beyond ours (libc, python3-light, ip-full, ...) is the root's own
(the host's python3, OpenWrt's userland of the prefix): one package made here with the real
`apk mkpkg`, installed first, provides those names, as the opkg flavour declares them installed
in opkg's status.  The tests run in order on one root.
"""

from __future__ import annotations

import shutil
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import bonding
from bonding.lab.owrt.feeds import apk_base_package

from .conftest import say
from .installed import assert_installed_as_listed
from .router_root import RouterRoot, pyver

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import feed  # noqa: E402

SERVED = "/tmp/bonding-apk"  # where the root reads the repository (file://)
LIST = "/etc/apk/repositories.d/customfeeds.list"
KEY = "/etc/apk/keys/bonding-feed.pem"
VERSION = f"{bonding.__version__}-r1"


@dataclass
class Apk:
    root: RouterRoot
    repo: Path  # the signed repository on the host
    pub: Path  # its public key
    other_pub: Path  # another P-256 key's public half
    files_before: dict[str, str]
    key: Path  # the secret key (to build a second release)


@pytest.fixture(scope="module")
def setup(router_prereqs: Path, tmp_path_factory: pytest.TempPathFactory, worker_tag: str,
          request: pytest.FixtureRequest) -> Iterator[Apk]:
    apk = router_prereqs / "bin" / "apk"
    repo, keys = tmp_path_factory.mktemp("apk-repo"), tmp_path_factory.mktemp("apk-key")
    other_keys = tmp_path_factory.mktemp("apk-other-key")
    t0 = time.monotonic()
    assert feed.main(["apk", "--output", str(repo), "--python", pyver(), "--apk", str(apk),
                      "--key-dir", str(keys)]) == 0
    say(request.config, f"feed.py apk (5 packages, signed packages.adb): "
        f"{time.monotonic() - t0:.1f} s")
    feed.generate_key(other_keys / feed.SECRET_NAME)
    base = apk_base_package(apk, repo, tmp_path_factory.mktemp("apk-base"))
    root = RouterRoot(router_prereqs, tmp_path_factory.mktemp("apk-root") / "stage",
                      f"{worker_tag}a", parts=("apk",))
    root.start()
    try:
        root.copy(base, "/tmp/scratch-root-base.apk")
        root.sh("apk add --initdb --allow-untrusted /tmp/scratch-root-base.apk && "
                "rm /tmp/scratch-root-base.apk")
        root.write(LIST, f"file://{SERVED}/packages.adb\n")
        yield Apk(root, repo, keys / feed.PUBLIC_NAME, other_keys / feed.PUBLIC_NAME,
                  root.files(), keys / feed.SECRET_NAME)
    finally:
        root.close()


def _serve(s: Apk, src: Path) -> None:
    """The repository the root reads is now a copy of `src`; apk's cached index is dropped."""
    s.root.sh(f"rm -rf {SERVED} /var/cache/apk /etc/apk/cache", check=False)
    for f in src.iterdir():
        s.root.copy(f, f"{SERVED}/{f.name}")


def _trust(s: Apk, pub: Path | None) -> None:
    s.root.sh("rm -f /etc/apk/keys/*", check=False)
    if pub is not None:
        s.root.write(KEY, pub.read_text())


def _add(s: Apk, *names: str) -> tuple[str, int]:
    up = s.root.sh("apk update", check=False)
    add = s.root.sh("apk add " + " ".join(names), check=False, timeout=180)
    return up.stdout + up.stderr + add.stdout + add.stderr, add.returncode


def _installed(s: Apk, name: str) -> bool:
    return s.root.path(f"/lib/apk/packages/{name}.list").exists() or \
        s.root.sh(f"apk info -e {name}", check=False).returncode == 0


def _copy(src: Path, dst: Path) -> Path:
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    return dst


def _retouch(path: Path, old: bytes, new: bytes) -> None:
    """Change bytes inside an ADB file (apk's 'ADBd' + raw deflate), keeping its framing: what
    someone between the repository and the router could do."""
    data = path.read_bytes()
    assert data[:4] == b"ADBd", data[:4]
    inner = zlib.decompress(data[4:], -15)
    assert inner.count(old) >= 1, (path, old)
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    path.write_bytes(b"ADBd" + z.compress(inner.replace(old, new, 1)) + z.flush())


def test_apk_refuses_the_repository_while_it_trusts_only_another_key(setup: Apk) -> None:
    _serve(setup, setup.repo)
    for pub in (None, setup.other_pub):
        _trust(setup, pub)
        said, rc = _add(setup, "bonding")
        assert "UNTRUSTED signature" in said, said
        assert rc != 0, said
        assert not _installed(setup, "bonding"), said


def test_apk_refuses_a_tampered_index_and_a_tampered_package(setup: Apk,
                                                             tmp_path: Path) -> None:
    _trust(setup, setup.pub)
    # the index: one word of a description changed after signing
    bad_index = _copy(setup.repo, tmp_path / "bad-index")
    _retouch(bad_index / "packages.adb", b"bondingd probes", b"bondingd probez")
    # a package (the first one apk installs): a file's contents changed, the package's own
    # metadata and the signed index left as they were
    bad_pkg = _copy(setup.repo, tmp_path / "bad-package")
    v = bonding.__version__.encode()
    _retouch(bad_pkg / f"python3-bonding-{VERSION}.apk", b'__version__ = "' + v + b'"',
             b'__version__ = "' + b"6" * len(v) + b'"')
    cases = ((bad_index, "bonding", "UNTRUSTED signature"),
             (bad_pkg, "python3-bonding", f"python3-bonding-{VERSION}: file integrity error"))
    for src, name, said_what in cases:
        _serve(setup, src)
        said, rc = _add(setup, name)
        assert said_what in said, (src.name, said)
        assert rc != 0, (src.name, said)
        for pkg in ("python3-bonding", "bonding"):
            assert not _installed(setup, pkg), (src.name, said)
        assert not setup.root.path("/usr/sbin/bondingd").exists(), src.name
        assert not setup.root.path(f"/usr/lib/python{pyver()}/site-packages/bonding").exists()


def test_apk_installs_with_our_key_and_the_post_install_scripts_run(
        setup: Apk, request: pytest.FixtureRequest) -> None:
    root = setup.root
    _trust(setup, setup.pub)
    _serve(setup, setup.repo)
    t0 = time.monotonic()
    said, rc = _add(setup, "bonding")
    say(request.config, f"apk update + add bonding (post-install included): "
        f"{time.monotonic() - t0:.1f} s")
    assert rc == 0, said
    for name in ("python3-bonding", "bonding"):
        assert f"Installing {name} ({VERSION})" in said, said
    assert "luci-app-bonding" not in said and "bonding-usb" not in said
    assert_installed_as_listed(root, ("python3-bonding", "bonding"))
    # OpenWrt's own lists, where sysupgrade and default_prerm look for them
    conf = root.path("/lib/apk/packages/bonding.conffiles").read_text().split()
    assert conf == ["/etc/config/bonding", "/etc/config/bonding_secrets",
                    "/etc/sysctl.d/60-bonding.conf"]
    listed = root.path("/lib/apk/packages/bonding.list").read_text().split()
    assert "/etc/init.d/bonding" in listed and "/usr/sbin/bondingd" in listed
    # post-install: add_group_and_user (USERID), uci-defaults, enable and start by procd
    users = {u.split(":")[0]: u.split(":") for u in
             root.path("/etc/passwd").read_text().splitlines()}
    assert "bonding" in users and int(users["bonding"][2]) > 0, users.get("bonding")
    assert root.sh("uci get bonding.globals; uci get bonding.usb").stdout.split() == \
        ["globals", "usb"]
    assert root.path("/etc/rc.d/S95bonding").is_symlink()
    root.wait(lambda: '"running": true' in root.sh(
        "ubus call service list '{\"name\":\"bonding\"}'").stdout, 10,
        "bondingd started by the post-install script")
    # python3-bonding's postinst compiled the byte code, checked against the sources' hashes
    # (flags 3 in the .pyc header; an import would have written a timestamp one, flags 0)
    pyc = root.path(f"/usr/lib/python{pyver()}/site-packages/bonding/__pycache__")
    daemon = sorted(pyc.glob("daemon.*.pyc"))
    assert daemon and int.from_bytes(daemon[0].read_bytes()[4:8], "little") == 3, daemon
    assert f"Executing python3-bonding-{VERSION}.post-install" in said
    # nothing was trusted beyond the key: apk checked the index with it
    assert "UNTRUSTED" not in said


def test_apk_del_leaves_only_the_changed_conffiles(setup: Apk) -> None:
    root = setup.root
    assert _installed(setup, "bonding"), "nothing to remove: the install test failed"
    root.sh("uci set bonding.globals.log_level=debug && uci commit bonding")
    changed = root.path("/etc/config/bonding").read_text()
    said = root.sh("apk del bonding python3-bonding", timeout=120)
    assert said.returncode == 0, said.stdout + said.stderr
    conffiles = ["/etc/config/bonding", "/etc/config/bonding_secrets",
                 "/etc/sysctl.d/60-bonding.conf"]
    left = {p for p in root.files() if p not in setup.files_before
            and not p.startswith(("/lib/apk/db/", "/usr/lib/apk/db/", "/etc/apk/"))}
    # OpenWrt never deletes a package's users (USERID): the user 'bonding' stays, alone
    accounts = {"/etc/passwd", "/etc/group", "/etc/shadow"}
    assert left - accounts <= set(conffiles), sorted(left)
    assert root.path("/etc/config/bonding").read_text() == changed  # the user's change stays
    # a conffile as packaged goes with the package (as with opkg)
    assert not root.path("/etc/sysctl.d/60-bonding.conf").exists()
    assert not root.path("/etc/rc.d/S95bonding").is_symlink()  # pre-deinstall disabled it
    assert not root.path("/usr/sbin/bondingd").exists()
    assert not root.path("/lib/apk/packages/bonding.list").exists()
    assert not root.path(f"/usr/lib/python{pyver()}/site-packages/bonding").exists()
    assert not _installed(setup, "bonding") and not _installed(setup, "python3-bonding")


def test_apk_add_again_keeps_the_changed_conffile_and_sets_its_own_aside(setup: Apk) -> None:
    root = setup.root
    assert not _installed(setup, "bonding"), "the remove test failed"
    changed = root.path("/etc/config/bonding").read_text()
    said, rc = _add(setup, "bonding")
    assert rc == 0, said
    assert root.path("/etc/config/bonding").read_text() == changed
    shipped = (REPO / "package/bonding/files/bonding.config").read_text()
    assert root.path("/etc/config/bonding.apk-new").read_text() == shipped
    assert root.path("/etc/rc.d/S95bonding").is_symlink()


def test_apk_upgrade_runs_the_post_upgrade_script(setup: Apk, tmp_path: Path,
                                                   request: pytest.FixtureRequest) -> None:
    """Release 2 of bonding, from a copy of the tree: `apk upgrade` installs it with its
    post-upgrade script (PKG_UPGRADE=1: started, not enabled again), the user's config kept."""
    root = setup.root
    tree = tmp_path / "tree"
    for d in ("package", "python/bonding", "luci-app-bonding"):
        shutil.copytree(REPO / d, tree / d, ignore=shutil.ignore_patterns("__pycache__"))
    mk = tree / "package/bonding/Makefile"
    mk.write_text(mk.read_text().replace("PKG_RELEASE:=1\n", "PKG_RELEASE:=2\n"))
    repo2 = _copy(setup.repo, tmp_path / "repo2")
    apk = setup.root.prefix / "bin" / "apk"
    feed.build_apk_feed(repo2, apk, setup.key, ["bonding"], pyver(), root=tree, mtime=1)
    assert sorted(p.name for p in repo2.glob("bonding-*.apk"))[0] == \
        f"bonding-{bonding.__version__}-r2.apk"
    changed = root.path("/etc/config/bonding").read_text()
    _serve(setup, repo2)
    t0 = time.monotonic()
    up = root.sh("apk update && apk upgrade", check=False, timeout=180)
    say(request.config, f"apk upgrade to bonding r2: {time.monotonic() - t0:.1f} s")
    said = up.stdout + up.stderr
    assert up.returncode == 0, said
    assert f"Upgrading bonding ({VERSION} -> {bonding.__version__}-r2)" in said, said
    assert f"Executing bonding-{bonding.__version__}-r2.post-upgrade" in said, said
    assert root.path("/etc/config/bonding").read_text() == changed
    assert root.path("/etc/rc.d/S95bonding").is_symlink()
    root.wait(lambda: '"running": true' in root.sh(
        "ubus call service list '{\"name\":\"bonding\"}'").stdout, 10,
        "bondingd running after the upgrade")
