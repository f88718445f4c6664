"""Package metadata from the OpenWrt package Makefiles (plain and luci.mk), read, not run."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from feedlib.common import (
    _PKG_NAME,
    REPO,
    FeedError,
)
from feedlib.files import project_version


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
    userid: str = ""  # USERID: the users and groups its postinst creates (Require-User)
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
    sc = _scan(path.read_text().splitlines(), where)
    top, blocks, names, includes = sc.top, sc.blocks, sc.names, sc.includes
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
    return [_package_meta(name, blocks, env, path, where, version, release)
            for name in names]


@dataclass
class _Scan:
    """A Makefile's top-level assignments, define blocks, BuildPackage names and includes."""

    top: dict[str, str] = field(default_factory=dict)
    blocks: dict[str, list[str]] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    includes: list[str] = field(default_factory=list)


def _scan(lines: list[str], where: str) -> _Scan:
    sc = _Scan()
    top, blocks, names, includes = sc.top, sc.blocks, sc.names, sc.includes
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
    return sc


def _package_meta(name: str, blocks: dict[str, list[str]], env: dict[str, str],
                  path: Path, where: str, version: str, release: str) -> Meta:
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
        url=attrs.get("URL", env.get("PKG_URL", "")), userid=attrs.get("USERID", ""))
    desc = blocks.get(f"Package/{name}/description")
    meta.description = (_expand("\n".join(desc), env, where).strip("\n") if desc
                        else meta.title)
    conf = blocks.get(f"Package/{name}/conffiles", [])
    meta.conffiles = tuple(x.strip() for x in conf if x.strip())
    for script in _SCRIPTS:
        lines_ = blocks.get(f"Package/{name}/{script}")
        if lines_ is not None:
            meta.scripts[script] = _expand("\n".join(lines_), env, where).strip("\n") + "\n"
    return meta


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


