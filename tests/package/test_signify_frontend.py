"""tools/signify-frontend/: the usign (verify-only, over signify-openbsd) and opkg-key the userland
prefix gets in place of OpenWrt's, checked against keys and signatures of tools/feedlib/usign.py.

These hold what the opkg test (tests/owrt/test_router_feed_signature.py) does not reach: usign's
exit codes and key lookup, -F on each kind of file, and a signature whose key number is that of
a trusted key but made with another key (signify's Ed25519 check, not the file lookup, refuses
it).
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FRONT = ROOT / "tools" / "signify-frontend"
sys.path.insert(0, str(ROOT / "tools"))
from feedlib import usign  # noqa: E402

MSG = b"Package: python3-bonding\nVersion: 1\n"


def _run(*args: str, stdin: bytes = b"",
         keys: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, PATH=f"{FRONT}:{os.environ['PATH']}")
    if keys is not None:
        env["OPKG_KEYS"] = str(keys)
    return subprocess.run(list(args), input=stdin, capture_output=True, env=env, timeout=30,
                          check=False)


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, usign.SecretKey]:
    if shutil.which("signify-openbsd") is None:
        pytest.fail("no signify-openbsd: apt-get install signify-openbsd (tools/install-deps.sh)")
    key = usign.generate(tmp_path / "key-build", tmp_path / "key-build.pub")
    (tmp_path / "Packages").write_bytes(MSG)
    (tmp_path / "Packages.sig").write_text(usign.sign(MSG, key))
    return tmp_path, key


def test_fingerprint_of_each_kind_of_file(signed: tuple[Path, usign.SecretKey]) -> None:
    d, key = signed
    for opt, f in (("-p", "key-build.pub"), ("-s", "key-build"), ("-x", "Packages.sig")):
        r = _run("usign", "-F", opt, str(d / f))
        assert (r.returncode, r.stdout.decode()) == (0, key.hex + "\n"), (opt, r)
    r = _run("usign", "-F", "-p", str(d / "Packages"))
    assert r.returncode == 1


def test_opkg_key_add_then_verify_plain_and_gzip(signed: tuple[Path, usign.SecretKey]) -> None:
    d, key = signed
    keys = d / "keys"
    assert _run("opkg-key", "add", str(d / "key-build.pub"), keys=keys).returncode == 0
    assert (keys / key.hex).read_bytes() == (d / "key-build.pub").read_bytes()
    (d / "Packages.gz").write_bytes(gzip.compress(MSG))
    for lst in ("Packages", "Packages.gz"):
        r = _run("opkg-key", "verify", str(d / "Packages.sig"), str(d / lst), keys=keys)
        assert r.returncode == 0, (lst, r)
    r = _run("usign", "-V", "-P", str(keys), "-m", str(d / "Packages"))
    assert (r.returncode, r.stderr) == (0, b"OK\n")
    assert _run("opkg-key", "remove", str(d / "key-build.pub"), keys=keys).returncode == 0
    assert not (keys / key.hex).exists()
    r = _run("opkg-key", "verify", str(d / "Packages.sig"), str(d / "Packages"), keys=keys)
    assert r.returncode == 1


def test_tampered_message_and_impostor_key_are_refused(
        signed: tuple[Path, usign.SecretKey]) -> None:
    d, key = signed
    keys = d / "keys"
    keys.mkdir()
    shutil.copy(d / "key-build.pub", keys / key.hex)
    sig = str(d / "Packages.sig")
    r = _run("usign", "-V", "-P", str(keys), "-q", "-x", sig, "-m", "-", stdin=MSG + b"evil\n")
    assert (r.returncode, r.stderr) == (1, b"")
    r = _run("usign", "-V", "-P", str(keys), "-x", sig, "-m", "-", stdin=MSG + b"evil\n")
    assert r.returncode == 1 and b"verification failed" in r.stderr
    # another secret key under the trusted key's number: the lookup finds our key, the check fails
    impostor = usign.SecretKey(key.fingerprint, os.urandom(32))
    (d / "impostor.sig").write_text(usign.sign(MSG, impostor))
    r = _run("usign", "-V", "-P", str(keys), "-q", "-x", str(d / "impostor.sig"), "-m", "-",
             stdin=MSG)
    assert r.returncode == 1
    r = _run("usign", "-V", "-P", str(d / "empty"), "-q", "-x", sig, "-m", "-", stdin=MSG)
    assert r.returncode == 1  # no key of that number


def test_signing_is_not_pretended(signed: tuple[Path, usign.SecretKey]) -> None:
    d, _key = signed
    r = _run("usign", "-S", "-s", str(d / "key-build"), "-m", str(d / "Packages"))
    assert r.returncode == 1 and b"only verifies" in r.stderr
