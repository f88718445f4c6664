"""tools/owrt-userland.sh: the build of the OpenWrt userland the tests run against.

The build itself runs in `make deps` (every `make test`); these tests hold its interface: clear
errors for missing sources, --check on an incomplete prefix, and the pinned commits agreeing
with the manifest of the source tarballs when it is there.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "owrt-userland.sh"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=60, check=False, env=env)


def pinned() -> dict[str, tuple[str, str]]:
    """name → (repo, commit) as the script pins them."""
    text = SCRIPT.read_text()
    block = re.search(r'^COMPONENTS="(.*?)"$', text, re.S | re.M)
    assert block, "COMPONENTS not found in the script"
    out = {}
    for line in block.group(1).splitlines():
        name, repo, commit = line.split()
        out[name] = (repo, commit)
    return out


def test_help_names_every_option() -> None:
    r = run("--help")
    assert r.returncode == 0
    for opt in ("--prefix", "--src", "--git", "--check", "--force"):
        assert opt in r.stdout


def test_unknown_argument_is_a_usage_error() -> None:
    r = run("--frobnicate")
    assert r.returncode == 2
    assert "unknown argument '--frobnicate'" in r.stderr


def test_check_on_an_empty_prefix_says_what_to_run(tmp_path: Path) -> None:
    r = run("--check", "--prefix", str(tmp_path / "none"))
    assert r.returncode == 1
    assert "missing or out of date" in r.stdout and "--prefix" in r.stdout


def test_a_source_dir_without_the_tarballs_is_named(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the build installs its Debian build packages first: needs root")
    src = tmp_path / "src"
    src.mkdir()
    r = run("--src", str(src), "--prefix", str(tmp_path / "prefix"))
    assert r.returncode == 1
    assert f"{src}/libubox.tar.gz is missing" in r.stderr
    assert "1aa36ee774c8db4d7a396903e0d2e1fb79ee8bf1" in r.stderr  # which commit it wants


def test_a_missing_source_dir_is_named(tmp_path: Path) -> None:
    r = run("--src", str(tmp_path / "nowhere"), "--prefix", str(tmp_path / "p"))
    assert r.returncode == 1
    assert "is not a directory" in r.stderr


def test_pinned_commits_match_the_manifest() -> None:
    """The commits built with --git are those of the tarballs (shared/owrt-src/MANIFEST.md)."""
    cands = [os.environ.get("OWRT_SRC", ""), str(ROOT.parent / "shared" / "owrt-src"),
             "/work/shared/owrt-src"]
    manifest = next((Path(c) / "MANIFEST.md" for c in cands
                     if c and (Path(c) / "MANIFEST.md").is_file()), None)
    if manifest is None:
        pytest.skip("no MANIFEST.md of the OpenWrt sources here (OWRT_SRC)")
    rows = {}
    for line in manifest.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].endswith(".tar.gz"):
            continue
        # | name.tar.gz | owner/repo [words] | commit |,
        # or | name.tar.gz | words | commit (owner/repo) |
        commit = re.match(r"([0-9a-f]{40})(?: \((\S+)\))?$", cells[2])
        assert commit, f"manifest row without a commit: {line}"
        repo = re.match(r"[\w.-]+/[\w.-]+", cells[1])
        rows[cells[0].removesuffix(".tar.gz")] = (commit.group(2) or (repo.group(0) if repo else
                                                                       cells[1]), commit.group(1))
    assert len(rows) >= 10, f"manifest rows not understood: {rows}"
    pins = pinned()
    # Every component the script builds is a tarball of the manifest, at the manifest's commit.
    assert set(pins) <= set(rows), f"components with no tarball: {set(pins) - set(rows)}"
    # ... and every tarball of the manifest is built.
    assert set(rows) <= set(pins), f"tarballs the script does not build: {set(rows) - set(pins)}"
    for name in pins:
        repo, commit = rows[name]
        assert pins[name][1] == commit, f"{name}: script pins {pins[name][1]}, manifest {commit}"
        assert pins[name][0] == repo, f"{name}: script clones {pins[name][0]}, manifest {repo}"
