"""The feed built without the SDK (tools/feed.py, `make feed`): every package holds exactly the
files of package/files.list with their modes, valid control data, the agreed dependencies and
conffiles, and the index lists them with their sizes and hashes.  Also: the file list itself,
the one version, and `feed.py install` (what the package Makefiles run)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import bonding

from .conftest import REPO

sys.path.insert(0, str(REPO / "tools"))
import feed

CORE = ("python3-bonding", "bonding", "bonding-usb", "bonding-server")

# docs: /work/helpers/interfaces.md, "OpenWrt package names" (OpenWrt adds libc to every package)
DEPENDS = {
    "python3-bonding": ["libc", "python3-light", "python3-asyncio", "python3-logging",
                        "python3-ctypes", "python3-uci", "libubus"],
    "bonding": ["libc", "python3-bonding", "ip-full", "kmod-nft-tproxy", "kmod-tcp-bbr"],
    "bonding-usb": ["libc", "bonding", "kmod-usb-net-cdc-ether", "kmod-usb-net-rndis",
                    "kmod-usb-net-ipheth", "kmod-usb-net-rtl8152", "kmod-usb-net-cdc-ncm",
                    "kmod-usb-net-cdc-mbim", "kmod-usb-net-qmi-wwan", "kmod-usb-serial-option",
                    "umbim"],
    "bonding-server": ["libc", "python3-bonding"],
}
CONFFILES = {
    "bonding": ["/etc/config/bonding", "/etc/config/bonding_secrets",
                "/etc/sysctl.d/60-bonding.conf"],
}
PY = "/usr/lib/python3.11/site-packages"

pytestmark = pytest.mark.usefixtures("feed_key_dir")  # every build signs with a scratch key

@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("feed")
    rc = feed.main(["build", "--output", str(out), *CORE])
    assert rc == 0
    return out


def ipk_of(out: Path, name: str) -> Path:
    version = f"{bonding.__version__}-1"
    p = out / f"{name}_{version}_all.ipk"
    assert p.is_file(), sorted(x.name for x in out.iterdir())
    return p


@dataclass
class Ipk:
    names: list[str]  # the outer archive's members
    data: list[tarfile.TarInfo]  # data.tar's members, in order
    contents: dict[str, bytes]  # data.tar's regular files
    control: dict[str, tuple[int, str]]  # control.tar's files: mode, text
    data_tar: bytes  # data.tar, uncompressed

    def member(self, name: str) -> tarfile.TarInfo:
        return next(m for m in self.data if m.name == name)


def _members(blob: bytes) -> tuple[list[tarfile.TarInfo], dict[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as tf:
        members = tf.getmembers()
        contents = {}
        for m in members:
            if m.isfile():
                f = tf.extractfile(m)
                assert f is not None
                contents[m.name] = f.read()
    return members, contents


def open_ipk(path: Path) -> Ipk:
    outer, blobs = _members(path.read_bytes())
    assert blobs["./debian-binary"] == b"2.0\n"
    data, contents = _members(blobs["./data.tar.gz"])
    control, ctl = _members(blobs["./control.tar.gz"])
    modes = {m.name: m.mode for m in control}
    return Ipk([m.name for m in outer], data, contents,
               {n: (modes[n], b.decode()) for n, b in ctl.items()},
               gzip.decompress(blobs["./data.tar.gz"]))


def control_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if line.startswith(" "):
            fields[key] += "\n" + line[1:]
        else:
            key, _, value = line.partition(": ")
            assert key and key not in fields, line
            fields[key] = value
    return fields


@pytest.mark.parametrize("name", CORE)
def test_each_package_holds_exactly_its_files_with_their_modes(built: Path, name: str) -> None:
    items = feed.load_items(REPO, "3.11")[name]
    ipk = open_ipk(ipk_of(built, name))
    assert ipk.names == ["./debian-binary", "./data.tar.gz", "./control.tar.gz"]
    got = {m.name.rstrip("/") or ".": m for m in ipk.data}
    for m in got.values():
        assert m.uid == 0 and m.gid == 0
    want_files = {"." + i.path: i for i in items if i.kind != "dir"}
    have_files = {n: m for n, m in got.items() if not m.isdir()}
    assert set(have_files) == set(want_files)
    for n, item in want_files.items():
        m = have_files[n]
        if item.kind == "link":
            assert m.issym() and m.linkname == item.target
        else:
            assert m.isfile() and m.mode == item.mode, n
            assert item.source is not None
            assert ipk.contents[m.name] == item.source.read_bytes(), n
    # directories: the listed ones and every parent, nothing else
    parents = {"."} | {"." + "/".join(i.path.split("/")[:k])
                       for i in items for k in range(2, i.path.count("/") + 1)}
    parents |= {"." + i.path for i in items if i.kind == "dir"}
    assert {n for n, m in got.items() if m.isdir()} == parents
    # in ipkg-build's order: each directory before what is in it
    seen: set[str] = set()
    for m in ipk.data:
        n = m.name.rstrip("/")
        if n != ".":
            assert n.rsplit("/", 1)[0] in seen, n
        seen.add(n)


@pytest.mark.parametrize("name", CORE)
def test_control_data(built: Path, name: str) -> None:
    ipk = open_ipk(ipk_of(built, name))
    fields = control_fields(ipk.control["./control"][1])
    assert fields["Package"] == name
    assert fields["Version"] == f"{bonding.__version__}-1"
    assert fields["Architecture"] == "all"
    assert fields["Depends"].split(", ") == DEPENDS[name]
    assert fields["Installed-Size"] == str(len(ipk.data_tar))
    assert fields["License"] == "GPL-2.0-only"
    assert fields["Description"].strip()
    conffiles = CONFFILES.get(name)
    if conffiles:
        assert ipk.control["./conffiles"] == (0o644, "".join(c + "\n" for c in sorted(conffiles)))
    else:
        assert "./conffiles" not in ipk.control
    # the scripts package-pack.mk writes: default_postinst/_prerm do the standard work
    assert ipk.control["./postinst"][0] == 0o755 and ipk.control["./prerm"][0] == 0o755
    assert "default_postinst $0 $@" in ipk.control["./postinst"][1]
    assert "default_prerm $0 $@" in ipk.control["./prerm"][1]


def test_python3_bonding_has_its_own_postinst_and_postrm(built: Path) -> None:
    ipk = open_ipk(ipk_of(built, "python3-bonding"))
    mode, pkg = ipk.control["./postinst-pkg"]
    assert mode == 0o755 and pkg.startswith("#!/bin/sh\n")
    assert "compileall" in pkg and "checked-hash" in pkg and "$$" not in pkg
    assert "__pycache__" in ipk.control["./postrm"][1]


def test_the_index_lists_every_package_with_size_and_hash(built: Path) -> None:
    text = (built / "Packages").read_text()
    assert gzip.decompress((built / "Packages.gz").read_bytes()).decode() == text
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    assert len(paragraphs) == len(CORE)
    seen = set()
    for para in paragraphs:
        fields = control_fields(para)
        ipk = built / fields["Filename"]
        data = ipk.read_bytes()
        assert fields["Size"] == str(len(data))
        assert fields["SHA256sum"] == hashlib.sha256(data).hexdigest()
        # the rest is the package's control file, Filename/Size/SHA256sum before Description
        own = control_fields(open_ipk(ipk).control["./control"][1])
        assert {k: v for k, v in fields.items()
                if k not in ("Filename", "Size", "SHA256sum")} == own
        keys = list(fields)
        assert keys.index("SHA256sum") + 1 == keys.index("Description")
        seen.add(fields["Package"])
    assert seen == set(CORE)


def test_builds_are_reproducible(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert feed.main(["build", "--output", str(a), "bonding"]) == 0
    assert feed.main(["build", "--output", str(b), "bonding"]) == 0
    assert (a / "Packages").read_text() == (b / "Packages").read_text()


def test_a_rebuild_replaces_the_old_package(tmp_path: Path) -> None:
    stale = tmp_path / "bonding_0.0.1-1_all.ipk"
    tmp_path.joinpath("Packages").write_text("junk")
    assert feed.main(["build", "--output", str(tmp_path), "bonding"]) == 0
    shutil.copy(ipk_of(tmp_path, "bonding"), stale)
    assert feed.main(["build", "--output", str(tmp_path), "bonding"]) == 0
    assert not stale.exists()
    assert (tmp_path / "Packages").read_text().count("Package: bonding\n") == 1


# --- the file list ---------------------------------------------------------------------------


def test_every_python_file_is_in_exactly_one_package_or_stays_on_the_host() -> None:
    items = feed.load_items(REPO, "3.11")
    packaged: dict[str, str] = {}
    for pkg, its in items.items():
        for i in its:
            if i.source is not None and i.source.suffix == ".py":
                rel = i.source.relative_to(REPO).as_posix()
                assert rel not in packaged, (rel, pkg, packaged.get(rel))
                packaged[rel] = pkg
                # it lands where Python imports it from
                assert i.path == f"{PY}/{rel.removeprefix('python/')}"
    host_only = ("python/bonding/lab/", "python/bonding/image/")
    for src in sorted((REPO / "python" / "bonding").rglob("*.py")):
        if "__pycache__" in src.parts:
            continue
        rel = src.relative_to(REPO).as_posix()
        if rel.startswith(host_only):
            assert rel not in packaged
        else:
            assert rel in packaged, f"{rel} is in no package: add it to package/files.list"
    assert packaged["python/bonding/__init__.py"] == "python3-bonding"
    assert packaged["python/bonding/daemon.py"] == "python3-bonding"


def test_every_wrapper_imports_a_module_of_its_package_or_a_dependency() -> None:
    items = feed.load_items(REPO, "3.11")
    metas, _ = feed.load_metas(CORE, REPO)
    for pkg in CORE:
        for i in items[pkg]:
            if i.kind != "file" or not i.path.startswith(("/usr/sbin/", "/usr/bin/")):
                continue
            assert i.source is not None and i.mode == 0o755
            text = i.source.read_text()
            assert text.startswith("#!/usr/bin/python3\n")
            m = re.search(r"^from (bonding[\w.]*) import main$", text, re.M)
            assert m, i.path
            module = "/" + m.group(1).replace(".", "/")
            providers = {pkg, *metas[pkg].depends}
            found = [p for p in providers for j in items.get(p, ())
                     if j.path in (f"{PY}{module}.py", f"{PY}{module}/__init__.py")]
            assert found, f"{i.path} imports {m.group(1)}, which none of {providers} ships"


@pytest.mark.parametrize("wrapper,module", [
    ("package/bonding/files/bondingd", "bonding.daemon"),
    ("package/bonding/files/bondingctl", "bonding.ctl"),
    ("package/bonding-server/files/bonding-server", "bonding.server.cli"),
])
def test_the_wrappers_run(wrapper: str, module: str) -> None:
    if not (REPO / "python" / (module.replace(".", "/") + ".py")).exists():
        pytest.skip(f"{module} is not in the tree yet")
    r = subprocess.run([sys.executable, str(REPO / wrapper), "--version"], capture_output=True,
                       text=True, timeout=30,
                       env={**os.environ, "PYTHONPATH": str(REPO / "python")})
    assert r.returncode == 0, r.stderr
    assert bonding.__version__ in r.stdout


def test_the_list_is_strict(tmp_path: Path) -> None:
    def bad(line: str, match: str) -> None:
        with pytest.raises(feed.FeedError, match=match):
            feed.resolve(feed.read_rules(line), REPO, "3.11")

    bad("bonding 0644 /etc/x", "needs a source")
    bad("bonding 0644 etc/x package/bonding/files/bonding.init", "absolute path")
    bad("bonding 0649 /etc/x package/bonding/files/bonding.init", "octal mode")
    bad("bonding 0644 /etc/x package/bonding/files/nope", "no such file")
    bad("bonding 0644 /etc/x/ python/nope/**/*.py", "matches no file")
    bad("bonding 0644 /etc/x package/*.mk", "the only pattern")
    bad("bonding 0644 /etc/a package/bonding/files/bonding.init\n"
        "bonding-usb 0644 /etc/a package/bonding/files/bonding.init", "already in bonding")
    bad("bonding dir /etc/x package/bonding/files/bonding.init", "takes no source")
    with pytest.raises(feed.FeedError, match="--python"):
        feed.resolve(feed.read_rules("x 0644 {pysite}/x/ python/bonding/**/*.py"), REPO, None)
    # optional sources may match nothing
    assert feed.resolve(feed.read_rules("x keep /www/ ?nope/**/*"), REPO, None) == {}


# --- versions and Makefiles ------------------------------------------------------------------


def test_the_version_is_valid_for_apk_and_opkg() -> None:
    v = feed.project_version(REPO)
    assert v == bonding.__version__
    assert re.fullmatch(r"[0-9]+(\.[0-9]+)+", v)


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_make_reads_the_same_version() -> None:
    r = subprocess.run(["make", "-s", "-f", "-"], input="include package/bonding-version.mk\n"
                       "all: ; @echo $(PKG_VERSION) $(BONDING_ROOT)\n", cwd=REPO,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [bonding.__version__, str(REPO)]


def test_every_makefile_of_the_feed_takes_the_project_version() -> None:
    """Each package Makefile (and the LuCI app's) includes bonding-version.mk, sets no
    PKG_VERSION of its own and an integer PKG_RELEASE."""
    makefiles = sorted(REPO.glob("package/*/Makefile")) + sorted(REPO.glob("luci-app-*/Makefile"))
    assert len(makefiles) >= len(CORE)
    for mk in makefiles:
        for meta in feed.parse_makefile(mk, "9.9.9"):
            assert meta.version == "9.9.9"
            assert meta.release.isdigit()
            assert meta.pkgarch == "all", mk


def test_makefile_parsing_refuses_what_it_cannot_evaluate(tmp_path: Path) -> None:
    mk = tmp_path / "Makefile"
    base = ("include $(TOPDIR)/rules.mk\nPKG_NAME:=x\nPKG_RELEASE:=1\n"
            "include ../bonding-version.mk\n")
    mk.write_text(base + "define Package/x\n  DEPENDS:=+y $(if $(CONFIG_Z),+z)\nendef\n"
                  "$(eval $(call BuildPackage,x))\n")
    with pytest.raises(feed.FeedError, match="cannot"):
        feed.parse_makefile(mk, "1.0")
    mk.write_text(base.replace("PKG_RELEASE:=1\n", "PKG_RELEASE:=1\nPKG_VERSION:=2.0\n")
                  + "define Package/x\nendef\n$(eval $(call BuildPackage,x))\n")
    with pytest.raises(feed.FeedError, match=r"bonding-version\.mk"):
        feed.parse_makefile(mk, "1.0")
    mk.write_text(base.replace("PKG_RELEASE:=1", "PKG_RELEASE:=r1")
                  + "define Package/x\nendef\n$(eval $(call BuildPackage,x))\n")
    with pytest.raises(feed.FeedError, match="integer"):
        feed.parse_makefile(mk, "1.0")


# --- what the Makefiles' install sections do --------------------------------------------------


@pytest.mark.parametrize("name", CORE)
def test_install_puts_the_same_files_in_a_directory(tmp_path: Path, name: str) -> None:
    r = subprocess.run([sys.executable, str(REPO / "tools" / "feed.py"), "install",
                        "--python", "3.13", name, str(tmp_path)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    items = feed.load_items(REPO, "3.13")[name]
    want = {i.path: i for i in items}
    have = {"/" + p.relative_to(tmp_path).as_posix(): p for p in tmp_path.rglob("*")}
    for path, item in want.items():
        p = have[path]
        if item.kind == "link":
            assert p.is_symlink() and os.readlink(p) == item.target
        elif item.kind == "dir":
            assert p.is_dir() and not p.is_symlink()
        else:
            assert p.stat().st_mode & 0o7777 == item.mode, path
    files = {k for k, p in have.items() if p.is_symlink() or p.is_file()}
    assert files == {k for k, i in want.items() if i.kind != "dir"}
    if name == "python3-bonding":
        assert (tmp_path / "usr/lib/python3.13/site-packages/bonding/__init__.py").is_file()


def test_install_of_a_python_package_needs_the_python_version(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, str(REPO / "tools" / "feed.py"), "install",
                        "python3-bonding", str(tmp_path)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "--python" in r.stderr
    assert list(tmp_path.iterdir()) == []


# --- the real opkg, when there is one ---------------------------------------------------------


def _opkg() -> str | None:
    cand = [os.environ.get("OPKG", "")]
    prefix = os.environ.get("OWRT_PREFIX", "")
    if prefix:
        cand += [f"{prefix}/bin/opkg", f"{prefix}/bin/opkg-cl"]
    return next((c for c in cand if c and os.access(c, os.X_OK)), None)


def test_opkg_installs_and_removes_them(built: Path, tmp_path: Path) -> None:
    opkg = _opkg()
    if opkg is None:
        pytest.skip("no opkg: set OPKG to an opkg-lede binary (or put opkg-cl in "
                    "OWRT_PREFIX/bin) to install the feed with the real thing")
    root = tmp_path / "root"
    (root / "usr/lib/opkg/info").mkdir(parents=True)
    (root / "var/lock").mkdir(parents=True)
    status = []
    deps = {d for ds in DEPENDS.values() for d in ds} - set(CORE)
    for d in sorted(deps):
        status.append(f"Package: {d}\nVersion: 1\nStatus: install user installed\n"
                      "Architecture: x86_64\nInstalled-Time: 1\n")
        (root / f"usr/lib/opkg/info/{d}.list").write_text("")
    (root / "usr/lib/opkg/status").write_text("\n".join(status) + "\n")
    conf = tmp_path / "opkg.conf"
    conf.write_text(f"dest root /\nlists_dir ext /var/opkg-lists\narch all 1\narch x86_64 10\n"
                    f"src/gz bonding file://{built}\n")

    def opkg_run(*args: str) -> str:
        r = subprocess.run([opkg, "-f", str(conf), "-o", str(root), *args], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    opkg_run("update")
    out = opkg_run("install", "bonding-usb")
    for name in ("python3-bonding", "bonding", "bonding-usb"):
        assert f"Installing {name} ({bonding.__version__}-1)" in out
    items = feed.load_items(REPO, "3.11")
    for name in ("python3-bonding", "bonding", "bonding-usb"):
        for i in items[name]:
            p = root / i.path.lstrip("/")
            if i.kind == "link":
                assert os.readlink(p) == i.target
            elif i.kind == "file":
                assert p.stat().st_mode & 0o7777 == i.mode, i.path
    assert (root / "usr/lib/opkg/info/bonding.conffiles").read_text().split() == \
        CONFFILES["bonding"]
    assert (root / "usr/lib/opkg/info/python3-bonding.postinst-pkg").exists()
    opkg_run("remove", "bonding-usb")
    assert not (root / "etc/hotplug.d/net/30-bonding-usb").exists()


def test_a_luci_mk_app_is_packaged_as_luci_mk_lays_it_out(tmp_path: Path) -> None:
    app = tmp_path / "luci-app-demo"
    (app / "htdocs/luci-static/resources/view/demo").mkdir(parents=True)
    (app / "htdocs/luci-static/resources/view/demo/status.js").write_text("'use strict';\n")
    (app / "root/usr/share/rpcd/acl.d").mkdir(parents=True)
    (app / "root/usr/share/rpcd/acl.d/luci-app-demo.json").write_text("{}\n")
    (app / "root/usr/libexec/rpcd").mkdir(parents=True)
    (app / "root/usr/libexec/rpcd/demo").write_text("#!/bin/sh\n")
    (app / "root/usr/libexec/rpcd/demo").chmod(0o755)
    (app / "Makefile").write_text(
        "include $(TOPDIR)/rules.mk\n\nLUCI_TITLE:=Demo app\n"
        "LUCI_DESCRIPTION:=Shows a demo \\\n\tover two lines.\nLUCI_DEPENDS:=+luci-base +bonding\n"
        "LUCI_PKGARCH:=all\nPKG_RELEASE:=3\nPKG_LICENSE:=GPL-2.0-only\n\n"
        "include ../package/bonding-version.mk\ninclude $(TOPDIR)/feeds/luci/luci.mk\n\n"
        "# call BuildPackage - OpenWrt buildroot signature\n")
    (meta,) = feed.parse_makefile(app / "Makefile", "1.2.3")
    assert (meta.name, meta.full_version, meta.depends, meta.pkgarch) == (
        "luci-app-demo", "1.2.3-3", ("luci-base", "bonding"), "all")
    assert meta.description == "Shows a demo over two lines."
    rules = feed.read_rules(
        "luci-app-demo keep /www/ luci-app-demo/htdocs/**/*\n"
        "luci-app-demo keep / ?luci-app-demo/root/**/*\n"
        "luci-app-demo keep /usr/share/ucode/luci/ ?luci-app-demo/ucode/**/*\n")
    items = feed.resolve(rules, tmp_path)["luci-app-demo"]
    assert {(i.path, i.mode) for i in items} == {
        ("/www/luci-static/resources/view/demo/status.js", 0o644),
        ("/usr/share/rpcd/acl.d/luci-app-demo.json", 0o644),
        ("/usr/libexec/rpcd/demo", 0o755)}
    ipk = open_ipk(feed.build_ipk(meta, items, tmp_path, 0))
    fields = control_fields(ipk.control["./control"][1])
    assert fields["Depends"] == "libc, luci-base, bonding"
    assert fields["Section"] == "luci"
    assert ipk.member("./usr/libexec/rpcd/demo").mode == 0o755


# --- the index's signature (usign's format, tools/feedlib/usign.py) --------------------------

RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUB = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIG = bytes.fromhex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
                            "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")


def test_ed25519_is_rfc_8032s() -> None:
    from feedlib import usign

    assert usign.public_of(RFC8032_SEED) == RFC8032_PUB
    assert usign.ed25519_sign(RFC8032_SEED, b"") == RFC8032_SIG
    assert usign.ed25519_verify(RFC8032_PUB, b"", RFC8032_SIG)
    assert not usign.ed25519_verify(RFC8032_PUB, b"x", RFC8032_SIG)


def _openssl_verifies(pub_file: Path, msg: Path, sig_file: Path, tmp: Path) -> bool:
    """OpenSSL's Ed25519, not ours: the raw key in a SubjectPublicKeyInfo, the raw signature."""
    pub = base64.b64decode(pub_file.read_text().splitlines()[1])
    sig = base64.b64decode(sig_file.read_text().splitlines()[1])
    assert pub[:2] == sig[:2] == b"Ed" and pub[2:10] == sig[2:10]  # the same fingerprint
    (tmp / "pub.der").write_bytes(bytes.fromhex("302a300506032b6570032100") + pub[10:])
    (tmp / "sig.bin").write_bytes(sig[10:])
    r = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey",
                        str(tmp / "pub.der"), "-rawin", "-in", str(msg), "-sigfile",
                        str(tmp / "sig.bin")], capture_output=True, text=True, timeout=30,
                       check=False)
    return r.returncode == 0


def test_the_feed_is_signed_by_default_with_a_key_made_outside_the_repo(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "keys"
    monkeypatch.setenv("BONDING_FEED_KEY_DIR", str(keys))
    out = tmp_path / "feed"
    assert feed.main(["build", "--output", str(out), "bonding"]) == 0
    said = capsys.readouterr().out
    secret, public = keys / "key-build", keys / "key-build.pub"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    fp = public.read_text().splitlines()[0].split()[-1]
    assert re.fullmatch(r"[0-9a-f]{16}", fp)
    assert f"A new signing key: {secret} (key {fp})" in said
    assert public.read_text() in said and "opkg-key add /tmp/bonding-feed.pub" in said
    assert f"/etc/opkg/keys/{fp}" in said and "check_signature" in said
    assert _openssl_verifies(public, out / "Packages", out / "Packages.sig", tmp_path)
    # the next build signs with the same key; a changed index no longer verifies
    assert feed.main(["build", "--output", str(out), "bonding", "bonding-usb"]) == 0
    assert f"Signed with {secret} (key {fp})" in capsys.readouterr().out
    assert _openssl_verifies(public, out / "Packages", out / "Packages.sig", tmp_path)
    (out / "Packages").write_text((out / "Packages").read_text() + "\n")
    assert not _openssl_verifies(public, out / "Packages", out / "Packages.sig", tmp_path)


def test_a_given_key_signs_and_a_key_in_the_repo_or_a_bad_one_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from feedlib import usign

    key = usign.generate(tmp_path / "mine", tmp_path / "mine.pub")
    out = tmp_path / "feed"
    assert feed.main(["build", "--output", str(out), "--key", str(tmp_path / "mine"),
                      "bonding"]) == 0
    assert f"key {key.hex}" in capsys.readouterr().out
    assert (out / "Packages.sig").read_text().startswith(f"untrusted comment: signed by key "
                                                         f"{key.hex}\n")
    assert _openssl_verifies(tmp_path / "mine.pub", out / "Packages", out / "Packages.sig",
                             tmp_path)
    inside = REPO / "tests" / "no-keys-here"
    assert feed.main(["build", "--output", str(out), "--key-dir", str(inside), "bonding"]) == 1
    assert "inside the repository" in capsys.readouterr().err and not inside.exists()
    assert feed.main(["build", "--output", str(out), "--key", str(tmp_path / "nokey"),
                      "bonding"]) == 1
    assert "no such usign secret key" in capsys.readouterr().err
    (tmp_path / "bad").write_text("untrusted comment: x\nRWQ=\n")
    assert feed.main(["build", "--output", str(out), "--key", str(tmp_path / "bad"),
                      "bonding"]) == 1
    assert "not a usign secret key" in capsys.readouterr().err


def test_unsigned_only_when_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "feed"
    assert feed.main(["build", "--output", str(out), "bonding"]) == 0
    assert (out / "Packages.sig").is_file()
    assert feed.main(["build", "--output", str(out), "--unsigned", "bonding"]) == 0
    assert not (out / "Packages.sig").exists()  # no stale signature of another index
    assert "opkg update refuses this feed" in capsys.readouterr().err


STUB_PACKAGE_MK = """all:
define BuildPackage
  $(eval $(Package/$(1)))
  $(info PKG $(1) $(PKG_VERSION) $(PKG_RELEASE) $(PKGARCH) $(strip $(DEPENDS)))
  all: install-$(1)
  install-$(1):
\t$(call Package/$(1)/install,$(DESTDIR))
endef
"""


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
@pytest.mark.parametrize("name", CORE)
def test_the_makefile_evaluates_and_installs_the_list(tmp_path: Path, name: str) -> None:
    """The package Makefile under GNU make with a stub buildroot (rules.mk, package.mk that
    runs the install section, python3-version.mk): the metadata make sees is what feed.py
    reads, and its install section puts exactly the list's files in place."""
    top = tmp_path / "top"
    (top / "include").mkdir(parents=True)
    (top / "rules.mk").write_text("INCLUDE_DIR:=$(TOPDIR)/include\n")
    (top / "include" / "package.mk").write_text(STUB_PACKAGE_MK)
    pydir = top / "feeds/packages/lang/python"
    pydir.mkdir(parents=True)
    (pydir / "python3-version.mk").write_text("PYTHON3_VERSION:=3.13\n")
    dest = tmp_path / "dest"
    r = subprocess.run(["make", "-s", f"TOPDIR={top}", f"DESTDIR={dest}"],
                       cwd=REPO / "package" / name, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    (line,) = [x for x in r.stdout.splitlines() if x.startswith("PKG ")]
    _, pkg, version, release, arch, *deps = line.split()
    (meta,) = feed.parse_makefile(REPO / "package" / name / "Makefile", bonding.__version__)
    assert (pkg, version, release, arch) == (name, meta.version, meta.release, meta.pkgarch)
    assert [d.lstrip("+") for d in deps] == list(meta.depends)
    items = feed.load_items(REPO, "3.13")[name]
    installed = {"/" + p.relative_to(dest).as_posix() for p in dest.rglob("*")
                 if p.is_file() or p.is_symlink()}
    assert installed == {i.path for i in items if i.kind != "dir"}


def test_the_rules_page_and_the_rules_include_are_packaged(built: Path, tmp_path: Path) -> None:
    """Pinning's parts in the packages: the LuCI rules view, its validators and its menu entry;
    fw4's link to the rules table bondingd writes."""
    app = "luci-app-bonding"
    assert feed.main(["build", "--output", str(tmp_path), app]) == 0
    ipk = open_ipk(ipk_of(tmp_path, app))
    www = "./www/luci-static/resources/"
    for rel in ("view/bonding/rules.js", "bonding/rulevalidators.js"):
        assert ipk.contents[www + rel] == (REPO / app / "htdocs/luci-static/resources" /
                                           rel).read_bytes(), rel
    menu = json.loads(ipk.contents["./usr/share/luci/menu.d/luci-app-bonding.json"])
    assert menu["admin/services/bonding/rules"]["action"] == {"type": "view",
                                                              "path": "bonding/rules"}
    link = open_ipk(ipk_of(built, "bonding")).member(
        "./usr/share/nftables.d/ruleset-post/31-bonding-rules.nft")
    assert link.issym() and link.linkname == "/var/run/bonding/fw4-rules.nft"
