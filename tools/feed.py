#!/usr/bin/env python3
"""The bonding packages, from the one file list, for every packaging path.

    feed.py build --output DIR [--python X.Y] [PACKAGE ...]
        an opkg feed folder without the SDK: one .ipk per arch-all package, Packages and
        Packages.gz (what `make feed FEED_DIR=DIR` runs)
    feed.py install [--python X.Y] PACKAGE DESTDIR
        put PACKAGE's files into DESTDIR (what the package Makefiles' install sections run in the
        OpenWrt SDK or buildroot)
    feed.py list [--python X.Y] [PACKAGE ...]
        every file with its mode, destination and source
    feed.py version
        the project version (python/bonding/__init__.py)

Where files go is package/files.list; what a package is called, depends on and keeps as
conffiles is in its Makefile (package/NAME/Makefile, or NAME/Makefile for the LuCI app), which
this reads.  The .ipk files are built as OpenWrt's scripts/ipkg-build builds them: a gzipped tar
of ./debian-binary, ./data.tar.gz and ./control.tar.gz (opkg-lede reads no other outer format),
with the postinst/prerm that include/package-pack.mk writes (default_postinst runs the
uci-defaults, restarts sysctl and enables and starts the init scripts).  Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import gzip
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

REPO: Final = Path(__file__).resolve().parent.parent
FILE_LIST: Final = Path("package/files.list")
VERSION_FILE: Final = Path("python/bonding/__init__.py")
DEFAULT_PYTHON: Final = "3.11"  # OpenWrt 24.10, the last release with opkg (25.12 has 3.13, apk)

Kind = Literal["file", "dir", "link"]

# apk's version grammar (OpenWrt 25.12 refuses anything else): 1.2.3, 1.2.3a, 1.2.3_rc1 ...
_APK_VERSION: Final = re.compile(
    r"^[0-9]+(\.[0-9]+)*[a-z]?(_(alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]*)*$")
_PKG_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
_PYTHON: Final = re.compile(r"^3\.[0-9]+$")
_MODE: Final = re.compile(r"^0[0-7]{3}$")


class FeedError(Exception):
    """Something in the list, a Makefile or the tree that stops packaging, said plainly."""


# --- the file list ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One line of package/files.list."""

    package: str
    mode: str  # "0644" ..., "keep", "dir" or "link"
    dest: str
    source: str | None
    optional: bool
    excludes: tuple[str, ...]
    line: int


@dataclass(frozen=True)
class Item:
    """One thing in a package: a file, a directory or a symbolic link at `path` on the router."""

    path: str
    kind: Kind
    mode: int
    source: Path | None = None  # files
    target: str | None = None  # links


def read_rules(text: str, where: str = str(FILE_LIST)) -> list[Rule]:
    rules: list[Rule] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if len(words) < 3:
            raise FeedError(f"{where}:{n}: want PACKAGE MODE DESTINATION [SOURCE], got {raw!r}")
        package, mode, dest, *rest = words
        if not _PKG_NAME.match(package):
            raise FeedError(f"{where}:{n}: {package!r} is not a package name")
        if mode not in ("keep", "dir", "link") and not _MODE.match(mode):
            raise FeedError(f"{where}:{n}: mode {mode!r}: use an octal mode like 0644, or keep, "
                            "dir, link")
        if not dest.startswith(("/", "{pysite}/")) or "/../" in dest + "/" or "/./" in dest + "/":
            raise FeedError(f"{where}:{n}: destination {dest!r} must be an absolute path")
        source: str | None = None
        excludes: list[str] = []
        if rest:
            source, *more = rest
            for x in more:
                if not x.startswith("-") or "/" in x or len(x) < 2:
                    raise FeedError(f"{where}:{n}: {x!r}: after the source only -SUBDIR")
                excludes.append(x[1:])
        if mode == "dir":
            if source is not None:
                raise FeedError(f"{where}:{n}: a dir takes no source")
        elif source is None:
            raise FeedError(f"{where}:{n}: {mode} needs a source")
        optional = source is not None and source.startswith("?")
        if source is not None and optional:
            source = source[1:]
        if excludes and (source is None or "/**/" not in source):
            raise FeedError(f"{where}:{n}: -SUBDIR only after a DIR/**/PATTERN source")
        rules.append(Rule(package, mode, dest, source, optional, tuple(excludes), n))
    return rules


def pysite(python: str | None) -> str:
    if python is None:
        raise FeedError("this needs the target's Python version (--python 3.11 for OpenWrt 24.10, "
                        "3.13 for 25.12)")
    if not _PYTHON.match(python):
        raise FeedError(f"--python {python!r}: give the major.minor version, like 3.11")
    return f"/usr/lib/python{python}/site-packages"


def _file_mode(rule: Rule, source: Path) -> int:
    if rule.mode == "keep":
        return 0o755 if source.stat().st_mode & 0o111 else 0o644
    return int(rule.mode, 8)


def _walk(top: Path, pattern: str, excludes: tuple[str, ...]) -> Iterator[Path]:
    """Files under `top` whose name matches `pattern`, sorted, skipping excluded first-level dirs,
    __pycache__ and dot entries."""
    for dirpath, dirnames, filenames in os.walk(top):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames
            if not d.startswith(".") and d != "__pycache__"
            and not (here == top and d in excludes))
        for f in sorted(filenames):
            if not f.startswith(".") and fnmatch.fnmatchcase(f, pattern):
                yield here / f


def resolve(rules: Sequence[Rule], root: Path = REPO, python: str | None = None,
            where: str = str(FILE_LIST)) -> dict[str, list[Item]]:
    """The list's rules → the items of each package, checked against the tree."""
    out: dict[str, list[Item]] = {}
    owner: dict[str, str] = {}

    def add(rule: Rule, item: Item) -> None:
        if item.path in owner:
            raise FeedError(f"{where}:{rule.line}: {item.path} is already in "
                            f"{owner[item.path]}")
        owner[item.path] = rule.package
        out.setdefault(rule.package, []).append(item)

    for rule in rules:
        dest = rule.dest.replace("{pysite}", pysite(python)) if "{pysite}" in rule.dest \
            else rule.dest
        if "{" in dest:
            raise FeedError(f"{where}:{rule.line}: unknown placeholder in {rule.dest!r}")
        if rule.mode == "dir":
            add(rule, Item(dest.rstrip("/") or "/", "dir", 0o755))
            continue
        assert rule.source is not None
        if rule.mode == "link":
            add(rule, Item(dest.rstrip("/"), "link", 0o777, target=rule.source))
            continue
        if "/**/" in rule.source:
            top_s, pattern = rule.source.split("/**/", 1)
            if not dest.endswith("/"):
                raise FeedError(f"{where}:{rule.line}: a tree goes into a directory: end "
                                f"{rule.dest!r} with /")
            top = root / top_s
            found = list(_walk(top, pattern, rule.excludes)) if top.is_dir() else []
            for x in rule.excludes:
                if not (top / x).is_dir():
                    raise FeedError(f"{where}:{rule.line}: excluded {top_s}/{x} is not a "
                                    "directory")
            if not found and not rule.optional:
                raise FeedError(f"{where}:{rule.line}: {rule.source} matches no file")
            for src in found:
                rel = src.relative_to(top).as_posix()
                add(rule, Item(dest + rel, "file", _file_mode(rule, src), source=src))
            continue
        if any(c in rule.source for c in "*?["):
            raise FeedError(f"{where}:{rule.line}: {rule.source!r}: the only pattern is "
                            "DIR/**/PATTERN")
        src = root / rule.source
        if not src.is_file():
            if rule.optional:
                continue
            raise FeedError(f"{where}:{rule.line}: {rule.source}: no such file")
        path = dest + src.name if dest.endswith("/") else dest
        add(rule, Item(path, "file", _file_mode(rule, src), source=src))
    return out


def load_items(root: Path = REPO, python: str | None = None) -> dict[str, list[Item]]:
    path = root / FILE_LIST
    try:
        text = path.read_text()
    except OSError as e:
        raise FeedError(f"{path}: {e.strerror}") from None
    return resolve(read_rules(text, str(FILE_LIST)), root, python)


# --- the version -----------------------------------------------------------------------------


def project_version(root: Path = REPO) -> str:
    text = (root / VERSION_FILE).read_text()
    m = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']\s*$', text, re.MULTILINE)
    if m is None:
        raise FeedError(f"{VERSION_FILE}: no __version__ = \"X.Y.Z\" line")
    v = m.group(1)
    if not _APK_VERSION.match(v):
        raise FeedError(f"{VERSION_FILE}: version {v!r} is not valid for apk (OpenWrt 25.12): use "
                        "dotted numbers like 0.1.0")
    return v


# --- package metadata from the Makefiles -----------------------------------------------------


@dataclass
class Meta:
    """What an OpenWrt package Makefile says about one package."""

    name: str
    version: str
    release: str
    makefile: Path
    title: str = ""
    depends: tuple[str, ...] = ()
    description: str = ""
    conffiles: tuple[str, ...] = ()
    section: str = ""
    pkgarch: str = ""
    license: str = ""
    maintainer: str = ""
    url: str = ""
    scripts: dict[str, str] = field(default_factory=dict)  # preinst postinst prerm postrm

    @property
    def full_version(self) -> str:
        return f"{self.version}-{self.release}"


_ASSIGN: Final = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(:=|\?=|\+=|=)\s*(.*?)\s*$")
_VAR: Final = re.compile(r"\$\(([A-Za-z0-9_]+)\)")
_BUILD: Final = re.compile(r"^\s*\$\(eval \$\(call BuildPackage,([^)]+)\)\)\s*$")
_SCRIPTS: Final = ("preinst", "postinst", "prerm", "postrm")


def _expand(value: str, env: dict[str, str], where: str) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in env:
            raise FeedError(f"{where}: feed.py cannot expand $({m.group(1)}): write the value")
        return env[m.group(1)]

    out = _VAR.sub(sub, value)
    if re.search(r"(?<!\$)\$\(", out.replace("$$", "")):
        raise FeedError(f"{where}: feed.py cannot evaluate {value!r}: write the value")
    return out.replace("$$", "$")


def _logical_lines(lines: list[str]) -> Iterator[tuple[int, str]]:
    buf, start = "", 0
    for n, line in enumerate(lines, 1):
        if not buf:
            start = n
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        yield start, buf + line
        buf = ""
    if buf:
        yield start, buf


def parse_makefile(path: Path, version: str) -> list[Meta]:
    """The packages a package Makefile builds, with what feed.py needs to know of them.

    Understands the plain OpenWrt idiom (PKG_* assignments, `define Package/NAME` blocks with
    SECTION/TITLE/DEPENDS/PKGARCH, description/conffiles/scripts blocks, BuildPackage) and the
    luci.mk one (LUCI_TITLE, LUCI_DEPENDS, LUCI_DESCRIPTION, LUCI_PKGARCH).  Anything it cannot
    evaluate is an error rather than a guess.
    """
    where = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
    lines = path.read_text().splitlines()
    top: dict[str, str] = {}
    blocks: dict[str, list[str]] = {}
    names: list[str] = []
    includes: list[str] = []
    i = 0
    while i < len(lines):
        m = re.match(r"^\s*define\s+(\S+)\s*$", lines[i])
        if m:
            body: list[str] = []
            i += 1
            while i < len(lines) and not re.match(r"^\s*endef\s*$", lines[i]):
                body.append(lines[i])
                i += 1
            if i == len(lines):
                raise FeedError(f"{where}: define {m.group(1)} has no endef")
            blocks[m.group(1)] = body
            i += 1
            continue
        start = i
        while i < len(lines) and lines[i].endswith("\\"):
            i += 1
        logical = " ".join(x.rstrip("\\").strip() for x in lines[start:i + 1])
        i += 1
        if not logical or logical.startswith("#"):
            if "call BuildPackage" in logical:
                names.append("")  # luci.mk's "buildroot signature": the package is LUCI_NAME
            continue
        if logical.startswith(("include ", "-include ")):
            includes.append(logical.split(None, 1)[1])
            continue
        b = _BUILD.match(logical)
        if b:
            names.append(b.group(1).strip())
            continue
        a = _ASSIGN.match(logical)
        if a:
            key, op, value = a.groups()
            if op == "+=":
                top[key] = (top.get(key, "") + " " + value).strip()
            elif op != "?=" or key not in top:
                top[key] = value
            continue
        if logical.startswith(("ifeq", "ifneq", "ifdef", "ifndef", "else", "endif")):
            raise FeedError(f"{where}: conditionals are not for feed.py: {logical!r}")
    if "PKG_VERSION" in top:
        raise FeedError(f"{where}: PKG_VERSION comes from bonding-version.mk (the project "
                        "version); do not set it here")
    if not any(inc.endswith("bonding-version.mk") for inc in includes):
        raise FeedError(f"{where}: include ../bonding-version.mk (the one project version)")
    luci = any(inc.endswith("/luci.mk") for inc in includes)
    env = {"PKG_VERSION": version, "BONDING_VERSION": version}
    for k, v in top.items():
        env[k] = _expand(v, env, where) if "$" in v else v
    release = env.get("PKG_RELEASE", "1" if luci else "")
    if not re.fullmatch(r"[0-9]+", release):
        raise FeedError(f"{where}: PKG_RELEASE:={release!r}: an integer (apk needs it)")
    if luci:
        return [_luci_meta(path, where, env, version, release, names)]
    if not names:
        raise FeedError(f"{where}: no $(eval $(call BuildPackage,NAME))")
    metas = []
    for name in names:
        block = blocks.get(f"Package/{name}")
        if block is None:
            raise FeedError(f"{where}: BuildPackage,{name} without define Package/{name}")
        attrs: dict[str, str] = {}
        for n, logical in _logical_lines(block):
            if not logical.strip():
                continue
            a = _ASSIGN.match(logical)
            if a is None:
                raise FeedError(f"{where}: in Package/{name} (line {n} of the block): "
                                f"{logical.strip()!r} is not NAME:=VALUE")
            attrs[a.group(1)] = _expand(a.group(3), env, where)
        meta = Meta(
            name=name, version=version, release=release, makefile=path,
            title=attrs.get("TITLE", ""),
            depends=_depends(attrs.get("DEPENDS", ""), where),
            section=attrs.get("SECTION", ""), pkgarch=attrs.get("PKGARCH", ""),
            license=env.get("PKG_LICENSE", ""),
            maintainer=attrs.get("MAINTAINER", env.get("PKG_MAINTAINER", "")),
            url=attrs.get("URL", env.get("PKG_URL", "")))
        desc = blocks.get(f"Package/{name}/description")
        meta.description = (_expand("\n".join(desc), env, where).strip("\n") if desc
                            else meta.title)
        conf = blocks.get(f"Package/{name}/conffiles", [])
        meta.conffiles = tuple(x.strip() for x in conf if x.strip())
        for script in _SCRIPTS:
            lines_ = blocks.get(f"Package/{name}/{script}")
            if lines_ is not None:
                meta.scripts[script] = _expand("\n".join(lines_), env, where).strip("\n") + "\n"
        metas.append(meta)
    return metas


def _luci_meta(path: Path, where: str, env: dict[str, str], version: str, release: str,
               names: list[str]) -> Meta:
    if not names:
        raise FeedError(f"{where}: luci.mk Makefiles end with the line "
                        "'# call BuildPackage - OpenWrt buildroot signature'")
    name = env.get("LUCI_NAME", path.parent.name)
    title = env.get("LUCI_TITLE", f"LuCI {name}")
    desc = env.get("LUCI_DESCRIPTION", "")
    return Meta(name=name, version=version, release=release, makefile=path, title=title,
                depends=_depends(env.get("LUCI_DEPENDS", ""), where), section="luci",
                pkgarch=env.get("LUCI_PKGARCH", "all"), license=env.get("PKG_LICENSE", ""),
                maintainer=env.get("PKG_MAINTAINER", ""), description=desc.strip() or title)


def _depends(value: str, where: str) -> tuple[str, ...]:
    out = []
    for word in value.split():
        name = word[1:] if word.startswith("+") else word
        if not _PKG_NAME.match(name):
            raise FeedError(f"{where}: dependency {word!r}: feed.py takes plain +package names")
        out.append(name)
    return tuple(out)


def makefile_for(package: str, root: Path = REPO) -> Path | None:
    for candidate in (root / "package" / package / "Makefile", root / package / "Makefile"):
        if candidate.is_file():
            return candidate
    return None


def load_metas(packages: Iterable[str], root: Path = REPO) -> tuple[dict[str, Meta], list[str]]:
    """Metadata of the listed packages, and the names with no Makefile (skipped)."""
    version = project_version(root)
    metas: dict[str, Meta] = {}
    missing: list[str] = []
    for pkg in packages:
        mk = makefile_for(pkg, root)
        if mk is None:
            missing.append(pkg)
            continue
        for meta in parse_makefile(mk, version):
            metas[meta.name] = meta
    return metas, missing


# --- installing into a directory -------------------------------------------------------------


def install(items: Sequence[Item], destdir: Path) -> None:
    """Put the items under `destdir` (the package Makefiles' $(1)), with their modes."""
    for item in items:
        target = destdir / item.path.lstrip("/")
        if item.kind == "dir":
            target.mkdir(parents=True, exist_ok=True)
            target.chmod(item.mode)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            target.unlink()
        if item.kind == "link":
            assert item.target is not None
            target.symlink_to(item.target)
        else:
            assert item.source is not None
            shutil.copyfile(item.source, target)
            target.chmod(item.mode)


# --- .ipk files and the index ----------------------------------------------------------------


def _info(name: str, kind: bytes, mode: int, mtime: int, size: int = 0,
          link: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    ti.mtime = mtime
    ti.size = size
    ti.linkname = link
    return ti


def _tar(members: Sequence[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return raw.getvalue()


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


def _sort_key(path: str) -> list[str]:
    return path.strip("/").split("/") if path.strip("/") else []


def data_members(items: Sequence[Item], mtime: int) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """data.tar's members: every parent directory, then the items, in ipkg-build's order."""
    dirs: dict[str, int] = {"/": 0o755}
    for item in items:
        parts = item.path.strip("/").split("/")
        for k in range(1, len(parts)):
            dirs.setdefault("/" + "/".join(parts[:k]), 0o755)
        if item.kind == "dir":
            dirs[item.path] = item.mode
    entries: list[tuple[str, tarfile.TarInfo, bytes | None]] = []
    for d, mode in dirs.items():
        entries.append((d, _info("." + (d if d != "/" else "/"), tarfile.DIRTYPE, mode, mtime),
                        None))
    for item in items:
        name = "." + item.path
        if item.kind == "link":
            assert item.target is not None
            entries.append((item.path, _info(name, tarfile.SYMTYPE, 0o777, mtime,
                                             link=item.target), None))
        elif item.kind == "file":
            assert item.source is not None
            data = item.source.read_bytes()
            entries.append((item.path, _info(name, tarfile.REGTYPE, item.mode, mtime,
                                             size=len(data)), data))
    entries.sort(key=lambda e: _sort_key(e[0]))
    return [(ti, data) for _, ti, data in entries]


def control_text(meta: Meta, installed_size: int) -> str:
    """The control file, field by field as include/package-pack.mk writes it."""
    depends = ", ".join(("libc", *meta.depends))
    fields = [("Package", meta.name), ("Version", meta.full_version), ("Depends", depends),
              ("Source", meta.makefile.parent.relative_to(REPO).as_posix()
               if meta.makefile.is_relative_to(REPO) else meta.makefile.parent.name),
              ("SourceName", meta.name), ("License", meta.license), ("Section", meta.section),
              ("URL", meta.url), ("Maintainer", meta.maintainer),
              ("Architecture", meta.pkgarch), ("Installed-Size", str(installed_size))]
    text = "".join(f"{k}: {v}\n" for k, v in fields if v)
    lines = (meta.description or meta.title).splitlines() or [meta.name]
    return text + "Description: " + "\n".join(" " + x.lstrip() for x in lines) + "\n"


_POSTINST: Final = """#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_postinst $0 $@
"""
_PRERM: Final = """#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_prerm $0 $@
"""


def control_members(meta: Meta, items: Sequence[Item], installed_size: int,
                    mtime: int) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    files: dict[str, tuple[bytes, int]] = {
        "control": (control_text(meta, installed_size).encode(), 0o644),
        "postinst": (_POSTINST.encode(), 0o755),
        "prerm": (_PRERM.encode(), 0o755),
    }
    regular = {i.path for i in items if i.kind == "file"}
    conffiles = sorted(c for c in meta.conffiles if c in regular)
    if conffiles:
        files["conffiles"] = ("".join(c + "\n" for c in conffiles).encode(), 0o644)
    for script, body in meta.scripts.items():
        # package-pack.mk: postinst and prerm of the Makefile run from default_postinst/_prerm
        name = script + "-pkg" if script in ("postinst", "prerm") else script
        files[name] = (body.encode(), 0o755)
    out: list[tuple[tarfile.TarInfo, bytes | None]] = [
        (_info("./", tarfile.DIRTYPE, 0o755, mtime), None)]
    for name in sorted(files):
        data, mode = files[name]
        out.append((_info("./" + name, tarfile.REGTYPE, mode, mtime, size=len(data)), data))
    return out


def build_ipk(meta: Meta, items: Sequence[Item], outdir: Path, mtime: int) -> Path:
    data_tar = _tar(data_members(items, mtime))
    control_tar = _tar(control_members(meta, items, len(data_tar), mtime))
    data_gz, control_gz = _gz(data_tar), _gz(control_tar)
    outer = _tar([
        (_info("./debian-binary", tarfile.REGTYPE, 0o644, mtime, size=4), b"2.0\n"),
        (_info("./data.tar.gz", tarfile.REGTYPE, 0o644, mtime, size=len(data_gz)), data_gz),
        (_info("./control.tar.gz", tarfile.REGTYPE, 0o644, mtime, size=len(control_gz)),
         control_gz),
    ])
    path = outdir / f"{meta.name}_{meta.full_version}_{meta.pkgarch}.ipk"
    path.write_bytes(_gz(outer))
    return path


def read_control(ipk: Path) -> str:
    """The control file inside an .ipk (as opkg-make-index reads it)."""
    with tarfile.open(ipk, "r:gz") as outer:
        member = outer.extractfile("./control.tar.gz")
        if member is None:
            raise FeedError(f"{ipk}: no ./control.tar.gz")
        with tarfile.open(fileobj=io.BytesIO(member.read()), mode="r:gz") as ctl:
            f = ctl.extractfile("./control")
            if f is None:
                raise FeedError(f"{ipk}: no ./control in control.tar.gz")
            return f.read().decode()


def index_entry(ipk: Path, feed: Path) -> str:
    """One Packages paragraph: the control file with Filename, Size and SHA256sum before the
    Description, as scripts/ipkg-make-index.sh writes it."""
    data = ipk.read_bytes()
    extra = (f"Filename: {ipk.relative_to(feed).as_posix()}\nSize: {len(data)}\n"
             f"SHA256sum: {hashlib.sha256(data).hexdigest()}\n")
    control = read_control(ipk)
    if "\nDescription:" not in "\n" + control:
        raise FeedError(f"{ipk}: control has no Description")
    head, sep, tail = ("\n" + control).partition("\nDescription:")
    return (head[1:] + "\n" if head[1:] else "") + extra + sep[1:] + tail


def write_index(feed: Path) -> Path:
    ipks = sorted(feed.rglob("*.ipk"))
    text = "".join(index_entry(p, feed).rstrip("\n") + "\n\n" for p in ipks)
    (feed / "Packages").write_text(text)
    (feed / "Packages.gz").write_bytes(_gz(text.encode()))
    return feed / "Packages"


def sign_index(feed: Path, key: Path) -> Path:
    """Packages.sig, as OpenWrt's `make package/index` makes it (usign -S)."""
    usign = shutil.which("usign")
    if usign is None:
        raise FeedError("--sign needs usign (OpenWrt's staging_dir/host/bin/usign) on PATH")
    if not key.is_file():
        raise FeedError(f"--sign {key}: no such key file")
    r = subprocess.run([usign, "-S", "-m", str(feed / "Packages"), "-s", str(key)],
                       capture_output=True, text=True, timeout=30, check=False)
    if r.returncode != 0:
        raise FeedError(f"usign -S failed: {r.stderr.strip() or r.returncode}")
    return feed / "Packages.sig"


def source_epoch(root: Path = REPO) -> int:
    """SOURCE_DATE_EPOCH, else the last commit's time, else now: the files' mtime."""
    raw = os.environ.get("SOURCE_DATE_EPOCH", "")
    if raw.isdigit():
        return int(raw)
    with contextlib.suppress(OSError, subprocess.SubprocessError, ValueError):
        r = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%ct"],
                           capture_output=True, text=True, timeout=10, check=True)
        return int(r.stdout.strip())
    return int(time.time())


def build_feed(outdir: Path, only: Sequence[str] = (), python: str = DEFAULT_PYTHON,
               root: Path = REPO, mtime: int | None = None) -> list[tuple[Meta, Path, int]]:
    """Build the .ipk files and the index into `outdir`; returns (meta, ipk, file count)."""
    items = load_items(root, python)
    wanted = list(only) or list(items)
    unknown = [p for p in wanted if p not in items]
    if unknown:
        raise FeedError(f"not in {FILE_LIST}: {', '.join(unknown)}")
    metas, missing = load_metas(wanted, root)
    for pkg in missing:
        if only:
            raise FeedError(f"{pkg}: no package/{pkg}/Makefile or {pkg}/Makefile")
        print(f"feed: skipping {pkg}: no package/{pkg}/Makefile or {pkg}/Makefile",
              file=sys.stderr)
    problems = []
    for name, meta in metas.items():
        if name not in items:
            problems.append(f"{meta.makefile.relative_to(root)} builds {name}, which "
                            f"{FILE_LIST} does not list")
        if meta.pkgarch != "all":
            problems.append(f"{name}: PKGARCH is {meta.pkgarch or 'unset'}: only arch-all "
                            "packages go into this feed (build the others with sdk-build.sh)")
        files = {i.path for i in items.get(name, ()) if i.kind == "file"}
        for c in meta.conffiles:
            if c not in files:
                problems.append(f"{name}: conffile {c} is not a file of the package")
    if problems:
        raise FeedError("; ".join(problems))
    outdir.mkdir(parents=True, exist_ok=True)
    epoch = source_epoch(root) if mtime is None else mtime
    built = []
    for name in wanted:
        if name not in metas:
            continue
        meta = metas[name]
        for old in outdir.glob(f"{name}_*.ipk"):
            old.unlink()
        ipk = build_ipk(meta, items[name], outdir, epoch)
        built.append((meta, ipk, len(items[name])))
    write_index(outdir)
    return built


# --- command line ----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="feed.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"%(prog)s {project_version()}")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="an installable opkg feed folder of the arch-all packages")
    b.add_argument("--output", "-o", type=Path, required=True, help="the feed folder")
    b.add_argument("--python", default=DEFAULT_PYTHON,
                   help="the router's Python major.minor (default %(default)s: OpenWrt 24.10)")
    b.add_argument("--sign", metavar="KEY", type=Path, default=None,
                   help="sign Packages with this usign secret key (Packages.sig; needs usign)")
    b.add_argument("packages", nargs="*", help="only these (default: all in the list)")
    i = sub.add_parser("install", help="put a package's files into a directory (Makefiles)")
    i.add_argument("--python", default=None, help="the router's Python major.minor")
    i.add_argument("package")
    i.add_argument("destdir", type=Path)
    ls = sub.add_parser("list", help="every packaged file: mode, destination, source")
    ls.add_argument("--python", default=DEFAULT_PYTHON)
    ls.add_argument("packages", nargs="*")
    sub.add_parser("version", help="print the project version")
    return p


def _show(item: Item) -> str:
    if item.kind == "dir":
        return f"{item.mode:04o}  {item.path}/"
    if item.kind == "link":
        return f"link  {item.path} -> {item.target}"
    assert item.source is not None
    src = item.source.relative_to(REPO) if item.source.is_relative_to(REPO) else item.source
    return f"{item.mode:04o}  {item.path}  ({src})"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "version":
            print(project_version())
        elif args.cmd == "install":
            rules = [r for r in read_rules((REPO / FILE_LIST).read_text())
                     if r.package == args.package]
            if not rules:
                raise FeedError(f"{args.package}: not in {FILE_LIST}")
            install(resolve(rules, REPO, args.python).get(args.package, []), args.destdir)
        elif args.cmd == "list":
            items = load_items(REPO, args.python)
            for pkg in args.packages or list(items):
                if pkg not in items:
                    raise FeedError(f"{pkg}: not in {FILE_LIST}")
                print(f"{pkg}:")
                for item in items[pkg]:
                    print("  " + _show(item))
        else:
            built = build_feed(args.output, args.packages, args.python)
            if args.sign is not None:
                sign_index(args.output, args.sign)
            for meta, ipk, n in built:
                print(f"{ipk.name}: {ipk.stat().st_size} bytes, {n} entries, "
                      f"depends on {', '.join(meta.depends) or 'nothing'}")
            print(f"{args.output / 'Packages'}: {len(built)} packages.  On the router: "
                  f"src/gz bonding file://{args.output.resolve()} in "
                  "/etc/opkg/customfeeds.conf" + ("" if args.sign else
                                                   " (unsigned: see feeds.conf.snippet)")
                  + ", or opkg install the .ipk files directly")
    except FeedError as e:
        print(f"feed.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
