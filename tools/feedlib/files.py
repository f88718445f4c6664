"""package/files.list: its rules, the files they select and installing them; the version."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from feedlib.common import (
    _APK_VERSION,
    _MODE,
    _PKG_NAME,
    _PYTHON,
    FILE_LIST,
    REPO,
    VERSION_FILE,
    FeedError,
    Kind,
)

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

