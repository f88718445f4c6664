"""APKv3 packages (OpenWrt 25.12) and their signed index packages.adb, made by the real apk.

OpenWrt 25.12 builds a package with include/package-pack.mk's apk branch; this does the same
with the same inputs (package/files.list and the package Makefiles):

- the package's files, plus what OpenWrt adds under /lib/apk/packages/: ``<pkg>.list`` (every
  file and link of the package, sorted; default_postinst and default_prerm read it),
  ``<pkg>.conffiles`` (the Makefile's conffiles: sysupgrade keeps them) with
  ``<pkg>.conffiles_static`` (each present one with its SHA-256), and ``<pkg>.rusers`` (USERID:
  add_group_and_user makes them);
- the install scripts package-pack.mk writes: post-install (add_group_and_user, default_postinst,
  then the Makefile's postinst), post-upgrade (the same with PKG_UPGRADE=1), pre-deinstall
  (default_prerm, then the Makefile's prerm), pre-install/pre-upgrade from a preinst and
  post-deinstall from a postrm;
- ``apk mkpkg`` with name, version (``X.Y.Z-rN``: apk's grammar for PKG_VERSION-PKG_RELEASE),
  description (whitespace folded, as make's $(strip) does), ``noarch`` for PKGARCH all, license,
  origin, url, maintainer and depends (libc first, as OpenWrt adds it);
- ``apk mkndx --sign KEY`` over them: packages.adb signed with an ECDSA P-256 PEM key (OpenWrt's
  private-key.pem; ed25519 fails on the openssl backend apk is built with).  The packages are not
  signed each (OpenWrt signs them only with SIGN_EACH_PACKAGE): the signed index holds every
  package's hash.

apk has no conffile notion of its own: ``apk del`` keeps a file under a protected path (/etc by
default) that differs from the packaged one, and removes the rest.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from feedlib.common import REPO, FeedError
from feedlib.files import Item, install
from feedlib.makefile import Meta

DEFAULT_APK_PYTHON: Final = "3.13"  # OpenWrt 25.12's python3
SECRET_NAME: Final = "private-key.pem"  # OpenWrt's BUILD_KEY_APK_SEC / _PUB names
PUBLIC_NAME: Final = "public-key.pem"
INDEX: Final = "packages.adb"
PKG_DIR: Final = "/lib/apk/packages"


def apk_version(meta: Meta) -> str:
    """PKG_VERSION-rPKG_RELEASE: OpenWrt's VERSION when it builds for apk."""
    return f"{meta.version}-r{meta.release}"


def apk_name(meta: Meta) -> str:
    """The file name apk fetches for it from an index URL: ${name}-${version}.apk."""
    return f"{meta.name}-{apk_version(meta)}.apk"


# --- the files OpenWrt adds under /lib/apk/packages/ ------------------------------------------


def meta_files(meta: Meta, items: Sequence[Item]) -> dict[str, bytes]:
    """/lib/apk/packages/<pkg>.{rusers,list,conffiles,conffiles_static}: path -> contents."""
    out: dict[str, bytes] = {}
    base = f"{PKG_DIR}/{meta.name}"
    if meta.userid:
        out[base + ".rusers"] = (meta.userid + "\n").encode()
    listed = {i.path for i in items if i.kind in ("file", "link")} | set(out)
    out[base + ".list"] = "".join(p + "\n" for p in sorted(listed)).encode()
    sources = {i.path: i.source for i in items if i.kind == "file"}
    if meta.conffiles:
        out[base + ".conffiles"] = "".join(c + "\n" for c in meta.conffiles).encode()
        static = []
        for c in meta.conffiles:
            src = sources.get(c)
            if src is not None:
                static.append(f"{c} {hashlib.sha256(src.read_bytes()).hexdigest()}\n")
        if static:
            out[base + ".conffiles_static"] = "".join(static).encode()
    return out


# --- the install scripts ----------------------------------------------------------------------

_HEAD: Final = """#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
"""
_RM_HEAD: Final = """#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
"""
_UPGRADE: Final = "#!/bin/sh\nexport PKG_UPGRADE=1\n"


def _no_shebang(script: str) -> str:
    """sed '/^\\s*#!/d': every shebang line out, to splice a script into another."""
    return "".join(x for x in script.splitlines(keepends=True) if not re.match(r"\s*#!", x))


def scripts(meta: Meta) -> dict[str, str]:
    """apk script type -> body, as package-pack.mk writes them for `apk mkpkg --script`."""
    who = f'export root="${{IPKG_INSTROOT}}"\nexport pkgname="{meta.name}"\n'
    post = (_HEAD + who + "add_group_and_user\ndefault_postinst\n"
            + _no_shebang(meta.scripts.get("postinst", "")))
    out = {"post-install": post, "post-upgrade": _UPGRADE + _no_shebang(post),
           "pre-deinstall": _RM_HEAD + who + "default_prerm\n"
           + _no_shebang(meta.scripts.get("prerm", ""))}
    if "preinst" in meta.scripts:
        out["pre-install"] = meta.scripts["preinst"]
        out["pre-upgrade"] = _UPGRADE + _no_shebang(meta.scripts["preinst"])
    if "postrm" in meta.scripts:
        out["post-deinstall"] = re.sub(r"^\s*#!", "#!", meta.scripts["postrm"])
    return out


# --- apk itself -------------------------------------------------------------------------------


def find_apk(explicit: Path | None = None) -> Path:
    """The apk-tools 3 program: --apk, else $APK, else $OWRT_PREFIX/bin/apk (what
    tools/owrt-userland.sh builds), else apk on PATH."""
    cands: list[str] = []
    if explicit is not None:
        cands = [str(explicit)]
    elif os.environ.get("APK"):
        cands = [os.environ["APK"]]
    else:
        cands = [os.path.join(os.environ.get("OWRT_PREFIX", "/opt/owrt"), "bin", "apk"), "apk"]
    for c in cands:
        found = shutil.which(c)
        if found is None:
            continue
        r = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=30,
                           check=False)
        if r.returncode == 0 and r.stdout.startswith("apk-tools 3."):
            return Path(found)
        raise FeedError(f"{found} is not apk-tools 3 ({(r.stdout or r.stderr).strip()!r}): "
                        "give --apk PATH to apk 3 (tools/owrt-userland.sh builds it)")
    raise FeedError(f"no apk-tools 3 program (looked for {', '.join(cands)}): build it with "
                    "tools/owrt-userland.sh (make deps) or give --apk PATH")


def _run(argv: Sequence[str], what: str, cwd: Path | None = None) -> None:
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=300, check=False,
                       cwd=cwd)
    if r.returncode != 0:
        raise FeedError(f"{what}: `{' '.join(argv)}` exited {r.returncode}: "
                        f"{(r.stderr or r.stdout).strip()}")


def _as_root(argv: list[str]) -> list[str]:
    """apk mkpkg records each file's owner: files we own must read as root's, as OpenWrt's
    fakeroot makes them (fakeroot cannot wrap the static apk; a user namespace can)."""
    if os.geteuid() == 0:
        return argv
    unshare = shutil.which("unshare")
    if unshare is None:
        raise FeedError("building apk packages as a user needs unshare (util-linux) to own the "
                        "files as root; or run as root")
    return [unshare, "--map-root-user", *argv]


def _stamp(top: Path, mtime: int) -> None:
    for dirpath, dirnames, filenames in os.walk(top, topdown=False):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), (mtime, mtime), follow_symlinks=False)
    os.utime(top, (mtime, mtime))


def mkpkg_argv(apk: Path, meta: Meta, files: Path, script_dir: Path, out: Path) -> list[str]:
    info = {"name": meta.name, "version": apk_version(meta),
            "description": " ".join((meta.description or meta.title).split()),
            "arch": "noarch" if meta.pkgarch == "all" else meta.pkgarch,
            "license": meta.license,
            "origin": meta.makefile.parent.relative_to(REPO).as_posix()
            if meta.makefile.is_relative_to(REPO) else meta.makefile.parent.name,
            "url": meta.url, "maintainer": meta.maintainer,
            "depends": " ".join(("libc", *meta.depends))}
    argv = [str(apk), "mkpkg"]
    for k, v in info.items():
        if v:
            argv += ["--info", f"{k}:{v}"]
    for kind in sorted(scripts(meta)):
        argv += ["--script", f"{kind}:{script_dir / kind}"]
    return [*argv, "--files", str(files), "--output", str(out)]


def build_apk(meta: Meta, items: Sequence[Item], outdir: Path, mtime: int, apk: Path) -> Path:
    """One .apk into outdir, built by `apk mkpkg` from a staged tree."""
    if meta.pkgarch != "all":
        raise FeedError(f"{meta.name}: PKGARCH {meta.pkgarch or 'unset'}: only arch-all "
                        "packages are built here")
    out = outdir / apk_name(meta)
    with tempfile.TemporaryDirectory(prefix=f"apk-{meta.name}-") as tmp:
        stage, sdir = Path(tmp) / "files", Path(tmp) / "scripts"
        stage.mkdir()
        sdir.mkdir()
        install(items, stage)
        for path, data in meta_files(meta, items).items():
            target = stage / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            target.chmod(0o644)
        for kind, body in scripts(meta).items():
            (sdir / kind).write_text(body)
            (sdir / kind).chmod(0o755)
        _stamp(stage, mtime)
        out.unlink(missing_ok=True)
        _run(_as_root(mkpkg_argv(apk, meta, stage, sdir, out)), f"{meta.name}: apk mkpkg")
    return out


def write_index(feed: Path, apk: Path, key: Path | None) -> Path:
    """packages.adb of every .apk in the folder, signed with `key` (unsigned when None)."""
    pkgs = sorted(p.name for p in feed.glob("*.apk"))
    if not pkgs:
        raise FeedError(f"{feed}: no .apk to index")
    index = feed / INDEX
    index.unlink(missing_ok=True)
    argv = [str(apk), "mkndx", "--allow-untrusted", "--output", INDEX]
    if key is not None:
        argv += ["--sign", str(key.resolve())]
    _run(argv + pkgs, "apk mkndx", cwd=feed)
    return index


# --- the ECDSA P-256 key ------------------------------------------------------------------------


def generate_key(secret: Path) -> Path:
    """A new P-256 key pair as OpenWrt's build makes it (openssl ecparam -genkey): the secret
    PEM (mode 0600) and public-key.pem beside it; returns the public one."""
    public = secret.with_name(PUBLIC_NAME)
    openssl = shutil.which("openssl")
    if openssl is None:
        raise FeedError("making the apk signing key needs openssl (apt-get install openssl)")
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        _run([openssl, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out",
              str(secret)], "making the apk signing key")
        write_public(secret, public)
    except BaseException:
        secret.unlink(missing_ok=True)
        raise
    return public


def write_public(secret: Path, public: Path) -> None:
    """The public PEM of an EC secret key (what goes into the router's /etc/apk/keys/)."""
    r = subprocess.run(["openssl", "ec", "-in", str(secret), "-pubout"], capture_output=True,
                       text=True, timeout=30, check=False)
    if r.returncode != 0 or "BEGIN PUBLIC KEY" not in r.stdout:
        raise FeedError(f"{secret} is not an EC secret key in PEM form (openssl ecparam -name "
                        f"prime256v1 -genkey -noout -out {secret} makes one): "
                        f"{r.stderr.strip()}")
    public.write_text(r.stdout)


def public_of(secret: Path) -> str:
    """The public PEM text of a P-256 secret key; an error for any other key (apk's openssl
    backend signs with EC and RSA keys, OpenWrt with P-256; ed25519 fails there)."""
    r = subprocess.run(["openssl", "pkey", "-in", str(secret), "-noout", "-text"],
                       capture_output=True, text=True, timeout=30, check=False)
    if r.returncode != 0 or ("prime256v1" not in r.stdout and "P-256" not in r.stdout):
        raise FeedError(f"{secret}: not an ECDSA P-256 secret key in PEM form (apk mkndx --sign "
                        "needs one; openssl ecparam -name prime256v1 -genkey -noout -out FILE)")
    with tempfile.TemporaryDirectory() as tmp:
        pub = Path(tmp) / PUBLIC_NAME
        write_public(secret, pub)
        return pub.read_text()
