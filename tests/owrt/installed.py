"""What a package manager left in the scratch root, checked against what the feed lists."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from .router_root import REPO, RouterRoot, pyver

sys.path.insert(0, str(REPO / "tools"))
import feed


def assert_installed_as_listed(root: RouterRoot, names: Iterable[str]) -> None:
    """Every file of `names` in the root as the feed's file lists say (links, directories,
    modes); uci-defaults scripts gone (default_postinst ran and deleted them)."""
    items = feed.load_items(REPO, pyver())
    for name in names:
        for i in items[name]:
            p = root.path(i.path)
            if i.kind == "link":
                assert p.is_symlink() and str(p.readlink()) == i.target, i.path
            elif i.kind == "dir":
                assert p.is_dir(), i.path
            elif i.path.startswith("/etc/uci-defaults/"):
                assert not p.exists(), f"{i.path}: default_postinst runs it, then deletes it"
            else:
                assert p.is_file() and p.stat().st_mode & 0o7777 == i.mode, i.path
