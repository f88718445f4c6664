"""The apk repository for OpenWrt 25.12 (`feed.py apk`, tools/feedlib/apk.py), read back with
the real apk (OWRT_PREFIX/bin/apk, apk-tools 3): every package says what its opkg twin's
control file says (name, version, depends, description, licence, origin, maintainer, arch),
carries OpenWrt's /lib/apk/packages/<pkg>.{list,conffiles,conffiles_static,rusers} and
package-pack.mk's install scripts, and packages.adb is signed by the P-256 key made beside the
usign one, outside the repository.  Installing them is tests/owrt/test_router_apk.py."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import bonding

from .conftest import REPO

sys.path.insert(0, str(REPO / "tools"))
import feed

ALL = ("python3-bonding", "bonding", "bonding-usb", "bonding-server", "luci-app-bonding")
VERSION = f"{bonding.__version__}-r1"
PY = "3.13"


@pytest.fixture(scope="module")
def apk() -> Path:
    prefix = Path(os.environ.get("OWRT_PREFIX") or "/opt/owrt")
    exe = prefix / "bin" / "apk"
    if not os.access(exe, os.X_OK):
        pytest.fail(f"no {exe}: build the OpenWrt userland with tools/owrt-userland.sh "
                    "(make deps)")
    return exe


@pytest.fixture(scope="module")
def built(apk: Path, feed_key_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("apk-feed")
    assert feed.main(["apk", "--output", str(out), "--apk", str(apk), "--python", PY]) == 0
    return out


@pytest.fixture(scope="module")
def ipks(tmp_path_factory: pytest.TempPathFactory, feed_key_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("ipk-feed")
    assert feed.main(["build", "--output", str(out), "--python", PY, "--key-dir",
                      str(feed_key_dir)]) == 0
    return out


def dump(apk: Path, f: Path, keys: Path | None = None) -> str:
    argv = [str(apk), *(["--keys-dir", str(keys)] if keys else []), "adbdump", str(f)]
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout


def info(apk: Path, f: Path) -> dict[str, str | list[str]]:
    """The `info:` section of `apk adbdump` (scalars, and lists such as depends)."""
    out: dict[str, str | list[str]] = {}
    lines = dump(apk, f).splitlines()
    i = lines.index("info:") + 1
    key = ""
    while i < len(lines) and lines[i].startswith("  "):
        line = lines[i]
        if line.startswith("    - "):
            lst = out[key]
            assert isinstance(lst, list)
            lst.append(line[6:])
        elif line.startswith("    "):  # a folded description
            out[key] = (str(out[key]) + " " + line.strip()).strip()
        else:
            key, _, value = line.strip().partition(":")
            value = value.strip()
            out[key] = [] if value.startswith("#") else ("" if value == "|" else value)
        i += 1
    return out


def scripts_of(apk: Path, f: Path) -> dict[str, str]:
    lines = dump(apk, f).splitlines()
    i = lines.index("scripts:") + 1
    out: dict[str, str] = {}
    key = ""
    while i < len(lines) and (lines[i].startswith("  ") or not lines[i]):
        if lines[i].startswith("    ") or not lines[i]:
            out[key] += lines[i][4:] + "\n"
        else:
            key = lines[i].strip().rstrip(":|").strip().rstrip(":")
            out[key] = ""
        i += 1
    return out


def extract(apk: Path, f: Path, dest: Path) -> Path:
    dest.mkdir()
    subprocess.run([str(apk), "extract", "--allow-untrusted", "--destination", str(dest),
                    str(f)], check=True, capture_output=True, timeout=60)
    return dest


def control(ipks: Path, name: str) -> dict[str, str]:
    text = feed.read_control(ipks / f"{name}_{bonding.__version__}-1_all.ipk")
    out: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if line.startswith(" "):
            out[key] += " " + line.strip()
        else:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def test_every_package_says_what_its_opkg_twin_says(apk: Path, built: Path,
                                                    ipks: Path) -> None:
    assert sorted(p.name for p in built.glob("*.apk")) == sorted(f"{n}-{VERSION}.apk"
                                                                 for n in ALL)
    for name in ALL:
        a, c = info(apk, built / f"{name}-{VERSION}.apk"), control(ipks, name)
        assert a["name"] == c["Package"] == name
        # apk's grammar for OpenWrt's PKG_VERSION-PKG_RELEASE: X.Y.Z-rN for opkg's X.Y.Z-N
        assert a["version"] == VERSION and c["Version"] == f"{bonding.__version__}-1"
        assert sorted(a["depends"]) == sorted(c["Depends"].split(", ")), name
        assert a["description"] == " ".join(c["Description"].split()), name
        assert a["arch"] == "noarch" and c["Architecture"] == "all"
        assert a["origin"] == c["Source"], name
        for k, ck in (("license", "License"), ("maintainer", "Maintainer"), ("url", "URL")):
            assert a.get(k, "") == c.get(ck, ""), (name, k)


def test_openwrt_lists_conffiles_files_and_users_under_lib_apk_packages(
        apk: Path, built: Path, tmp_path: Path) -> None:
    items = feed.load_items(REPO, PY)
    for name in ALL:
        root = extract(apk, built / f"{name}-{VERSION}.apk", tmp_path / name)
        pkgs = root / "lib/apk/packages"
        ours = {i.path for i in items[name] if i.kind in ("file", "link")}
        extra = {f"/lib/apk/packages/{name}.rusers"} if name == "bonding" else set()
        listed = (pkgs / f"{name}.list").read_text().splitlines()
        assert listed == sorted(ours | extra), name
        # every file of the list and nothing more, with its mode (and the lists themselves)
        got = {"/" + p.relative_to(root).as_posix() for p in root.rglob("*")
               if p.is_file() or p.is_symlink()}
        assert got - ours == {f"/lib/apk/packages/{name}.{x}" for x in
                              (["list", "rusers", "conffiles", "conffiles_static"]
                               if name == "bonding" else ["list"])}, name
        for i in items[name]:
            if i.kind == "file":
                assert i.source is not None
                p = root / i.path.lstrip("/")
                assert p.stat().st_mode & 0o7777 == i.mode, i.path
                assert p.read_bytes() == i.source.read_bytes(), i.path
            elif i.kind == "link":
                assert str((root / i.path.lstrip("/")).readlink()) == i.target, i.path
    pkgs = tmp_path / "bonding/lib/apk/packages"
    conffiles = ["/etc/config/bonding", "/etc/config/bonding_secrets",
                 "/etc/sysctl.d/60-bonding.conf"]
    assert (pkgs / "bonding.conffiles").read_text().splitlines() == conffiles
    static = [x.split() for x in (pkgs / "bonding.conffiles_static").read_text().splitlines()]
    assert [s[0] for s in static] == conffiles
    for path, digest in static:
        data = (tmp_path / "bonding" / path.lstrip("/")).read_bytes()
        assert digest == hashlib.sha256(data).hexdigest(), path
    assert (pkgs / "bonding.rusers").read_text() == "bonding:bonding\n"


def test_install_scripts_are_package_pack_mks(apk: Path, built: Path) -> None:
    for name in ALL:
        s = scripts_of(apk, built / f"{name}-{VERSION}.apk")
        assert set(s) >= {"post-install", "post-upgrade", "pre-deinstall"}, (name, set(s))
        who = f'export root="${{IPKG_INSTROOT}}"\nexport pkgname="{name}"\n'
        assert s["post-install"].startswith(
            '#!/bin/sh\n[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0\n'
            "[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0\n"
            ". ${IPKG_INSTROOT}/lib/functions.sh\n" + who
            + "add_group_and_user\ndefault_postinst\n"), name
        assert s["post-upgrade"] == "#!/bin/sh\nexport PKG_UPGRADE=1\n" + \
            s["post-install"].removeprefix("#!/bin/sh\n"), name
        assert s["pre-deinstall"].startswith(
            "#!/bin/sh\n[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0\n"
            ". ${IPKG_INSTROOT}/lib/functions.sh\n" + who + "default_prerm\n"), name
        assert s["post-install"].count("#!") == 1, name
    # python3-bonding's own postinst runs after default_postinst; its postrm is post-deinstall
    mk = (REPO / "package/python3-bonding/Makefile").read_text()
    s = scripts_of(apk, built / f"python3-bonding-{VERSION}.apk")
    assert s["post-install"].endswith(
        "default_postinst\n[ -n \"${IPKG_INSTROOT}\" ] && exit 0\n"
        "for d in /usr/lib/python3*/site-packages/bonding; do\n"
        '\t[ -d "$d" ] && python3 -m compileall -q --invalidation-mode checked-hash "$d" '
        ">/dev/null 2>&1\ndone\nexit 0\n")
    assert s["post-deinstall"].startswith("#!/bin/sh\n")
    assert "find \"$d\" -depth -name __pycache__" in s["post-deinstall"]
    assert "define Package/python3-bonding/postrm" in mk


def test_the_index_is_signed_by_the_key_made_outside_the_repository(
        apk: Path, built: Path, feed_key_dir: Path, tmp_path: Path) -> None:
    secret, pub = feed_key_dir / feed.SECRET_NAME, feed_key_dir / feed.PUBLIC_NAME
    assert secret.stat().st_mode & 0o777 == 0o600
    text = subprocess.run(["openssl", "pkey", "-in", str(secret), "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    assert "prime256v1" in text
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    (trusted / "bonding-feed.pem").write_text(pub.read_text())
    index = dump(apk, built / "packages.adb", trusted)
    sig = [x for x in index.splitlines() if x.startswith("# sig ")]
    assert len(sig) == 1 and sig[0].endswith(": OK"), sig
    for name in ALL:
        assert f"  - name: {name}\n    version: {VERSION}\n" in index, name
    # another key's public half: apk does not trust the index with it
    other = tmp_path / "other"
    other.mkdir()
    feed.generate_key(other / feed.SECRET_NAME)
    (other / feed.SECRET_NAME).unlink()
    sig = [x for x in dump(apk, built / "packages.adb", other).splitlines()
           if x.startswith("# sig ")]
    assert len(sig) == 1 and sig[0].endswith("UNTRUSTED signature"), sig


def test_unsigned_is_only_on_request_and_says_apk_refuses_it(
        apk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "unsigned"
    assert feed.main(["apk", "--output", str(out), "--apk", str(apk), "--unsigned",
                      "bonding"]) == 0
    assert "apk refuses this index" in capsys.readouterr().err
    assert not [x for x in dump(apk, out / "packages.adb").splitlines() if x.startswith("# sig")]


def test_the_key_is_reused_and_never_inside_the_repository(
        apk: Path, built: Path, feed_key_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    before = (feed_key_dir / feed.SECRET_NAME).read_bytes()
    out = tmp_path / "again"
    assert feed.main(["apk", "--output", str(out), "--apk", str(apk), "--python", PY,
                      "bonding"]) == 0
    said = capsys.readouterr().out
    assert (feed_key_dir / feed.SECRET_NAME).read_bytes() == before
    assert f"Signed with {feed_key_dir / feed.SECRET_NAME}" in said
    assert (feed_key_dir / feed.PUBLIC_NAME).read_text() in said  # the key step for the router
    assert "/etc/apk/keys/" in said and "/etc/apk/repositories.d/" in said
    assert feed.main(["apk", "--output", str(tmp_path / "x"), "--apk", str(apk),
                      "--key-dir", str(REPO / "keys")]) == 1
    assert "inside the repository" in capsys.readouterr().err
    assert not (REPO / "keys").exists()


def test_a_key_apk_cannot_sign_with_or_no_apk_is_a_clear_error(
        apk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ed = tmp_path / "ed25519.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(ed)], check=True,
                   capture_output=True)
    assert feed.main(["apk", "--output", str(tmp_path / "o"), "--apk", str(apk), "--key",
                      str(ed)]) == 1
    assert "not an ECDSA P-256 secret key" in capsys.readouterr().err
    assert feed.main(["apk", "--output", str(tmp_path / "o"), "--apk",
                      str(tmp_path / "no-apk"), "--key-dir", str(tmp_path / "k")]) == 1
    err = capsys.readouterr().err
    assert "no apk-tools 3 program" in err and "tools/owrt-userland.sh" in err


def test_a_user_builds_packages_whose_files_are_roots(apk: Path) -> None:
    """apk mkpkg records each file's owner; built by a user (here `nobody` when the tests run as
    root), the files still belong to root on the router, as OpenWrt's fakeroot build makes
    them."""
    work = Path(tempfile.mkdtemp(prefix="apk-user-"))
    try:
        work.chmod(0o777)
        # the user reads a copy of the tree: the checkout may sit in a directory only root enters
        tree = work / "tree"
        for d in ("tools", "package", "python", "luci-app-bonding"):
            shutil.copytree(REPO / d, tree / d, ignore=shutil.ignore_patterns("__pycache__"))
        for p in [tree, *tree.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o755 if p.is_dir() else p.stat().st_mode | 0o644)
        python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable  # as make's
        argv = [python, str(tree / "tools/feed.py"), "apk", "--output",
                str(work / "out"), "--key-dir", str(work / "keys"), "--apk", str(apk), "bonding"]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "nobody", "--", *argv]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "HOME": str(work)}, check=False)
        assert r.returncode == 0, r.stderr
        owners = [x.split(":")[1].strip() for x in dump(apk, work / f"out/bonding-{VERSION}.apk")
                  .splitlines() if x.strip().startswith(("user:", "group:"))]
        assert owners and set(owners) == {"root"}, sorted(set(owners))
    finally:
        shutil.rmtree(work, ignore_errors=True)
