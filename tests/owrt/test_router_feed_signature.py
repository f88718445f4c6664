"""The signed feed under the real opkg with `option check_signature`, in a scratch OpenWrt root
(tests/owrt/router_root.py; root only).

`make feed` signs Packages (tools/feedlib/usign.py); opkg update fetches Packages.sig and runs
/usr/sbin/opkg-key verify SIG LIST, which runs `usign -V -P /etc/opkg/keys -q -x SIG -m -` on
the unpacked list.  So this needs, in OWRT_PREFIX (tools/owrt-userland.sh builds it): opkg-cl
built with usign support (-DENABLE_USIGN=ON), and bin/usign and openwrt/usr/sbin/opkg-key.
usign's and opkg-key's sources are not among the upstream tarballs, so those two are this repo's
tools/signify-frontend/: an opkg-key that behaves as OpenWrt's, and a verify-only usign whose
cryptography is OpenBSD's signify (Debian's signify-openbsd, on the host and so in the root): an
implementation independent of tools/feedlib/usign.py, which signed the feed.

opkg installs from the feed once our public key is where `opkg-key add` puts it, and refuses
the feed without it, with a tampered index, or signed by another key.
"""
from __future__ import annotations

import gzip
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .router_root import RouterRoot, booted, pyver

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import feed

FEED = "/tmp/bonding-feed"


def _needs(prefix: Path) -> None:
    missing = []
    if b"Signature check passed" not in (prefix / "bin/opkg-cl").read_bytes():
        missing.append("bin/opkg-cl built with -DENABLE_USIGN=ON (it checks no signature)")
    if not os.access(prefix / "bin/usign", os.X_OK):
        missing.append("bin/usign (tools/signify-frontend/usign)")
    if not (prefix / "openwrt/usr/sbin/opkg-key").is_file():
        missing.append("openwrt/usr/sbin/opkg-key (tools/signify-frontend/opkg-key)")
    if missing:
        pytest.fail(f"{prefix} lacks what opkg's signature check runs: {'; '.join(missing)}: "
                    "rebuild the prefix with tools/owrt-userland.sh")
    if shutil.which("signify-openbsd") is None:
        pytest.fail("no signify-openbsd, which the usign front end verifies with: "
                    "apt-get install signify-openbsd (tools/install-deps.sh does)")


@dataclass
class Signed:
    root: RouterRoot
    feed: Path  # the signed feed on the host
    pub: Path  # its public key
    other: Path  # the same feed signed by another key


@pytest.fixture(scope="module")
def signed(router_prereqs: Path, tmp_path_factory: pytest.TempPathFactory,
           worker_tag: str) -> Iterator[Signed]:
    _needs(router_prereqs)
    out, other = tmp_path_factory.mktemp("signed-feed"), tmp_path_factory.mktemp("other-feed")
    keys, other_keys = tmp_path_factory.mktemp("key"), tmp_path_factory.mktemp("other-key")
    for d, k in ((out, keys), (other, other_keys)):
        assert feed.main(["build", "--output", str(d), "--python", pyver(), "--key-dir",
                          str(k), "python3-bonding"]) == 0
    with booted(router_prereqs, out, tmp_path_factory.mktemp("sig-root"),
                f"{worker_tag}s") as root:
        root.copy(router_prereqs / "bin/usign", "/usr/bin/usign")
        root.path("/usr/bin/usign").chmod(0o755)
        conf = root.path("/etc/opkg.conf")
        conf.write_text(conf.read_text() + "option check_signature 1\n")
        yield Signed(root, out, keys / "key-build.pub", other)


def _serve(s: Signed, src: Path) -> None:
    s.root.sh(f"rm -rf {FEED} /var/opkg-lists/*", check=False)
    s.root.add_feed(src)


def _update_and_install(s: Signed) -> tuple[str, int]:
    up = s.root.sh("opkg update", check=False)
    inst = s.root.sh("opkg install python3-bonding", check=False)
    return up.stdout + up.stderr, inst.returncode


def test_without_our_key_opkg_refuses_the_feed(signed: Signed) -> None:
    _serve(signed, signed.feed)
    said, rc = _update_and_install(signed)
    assert "Signature check failed" in said, said
    assert rc != 0
    assert not signed.root.path("/usr/lib/opkg/info/python3-bonding.control").exists()


def test_with_our_key_added_opkg_installs_and_refuses_a_tampered_or_foreign_index(
        signed: Signed) -> None:
    root = signed.root
    root.write("/tmp/bonding-feed.pub", signed.pub.read_text())
    root.sh("opkg-key add /tmp/bonding-feed.pub")
    fp = signed.pub.read_text().splitlines()[0].split()[-1]
    assert root.path(f"/etc/opkg/keys/{fp}").read_text() == signed.pub.read_text()
    # tampered: the index changed after signing (both copies, as someone on the path would)
    bad = signed.feed.parent / "tampered-feed"
    bad.mkdir(exist_ok=True)
    for f in signed.feed.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    text = (bad / "Packages").read_text().replace("Depends: libc,", "Depends: libc, evil,")
    assert text != (bad / "Packages").read_text()
    (bad / "Packages").write_text(text)
    (bad / "Packages.gz").write_bytes(gzip.compress(text.encode()))
    for src in (bad, signed.other):
        _serve(signed, src)
        said, rc = _update_and_install(signed)
        assert "Signature check failed" in said, (src, said)
        assert rc != 0, src
        assert not root.path("/usr/lib/opkg/info/python3-bonding.control").exists()
    _serve(signed, signed.feed)
    said, rc = _update_and_install(signed)
    assert "Signature check passed" in said, said
    assert rc == 0
    assert root.path("/usr/lib/opkg/info/python3-bonding.control").exists()
