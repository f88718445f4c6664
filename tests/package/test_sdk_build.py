"""sdk-build.sh without a docker daemon: its arguments, the image it picks, its messages when
docker is missing or down, and the run it does (a stand-in docker that plays the SDK)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO

SCRIPT = REPO / "sdk-build.sh"

FAKE_DOCKER = r"""#!/bin/sh
echo "$*" >> "$DOCKER_LOG"
case "$1" in
info) exit "${DOCKER_INFO_RC:-0}" ;;
run)
	out=
	while [ $# -gt 0 ]; do
		case "$1" in -v) case "$2" in *:/out) out=${2%:/out} ;; esac; shift ;; esac
		shift
	done
	echo pkg > "$out/bonding_0.1.0-1_all.ipk"
	echo idx > "$out/Packages"
	;;
esac
"""


def run(*args: str, path: str, env: dict[str, str] | None = None,
        cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    full = {"PATH": path, "HOME": os.environ.get("HOME", "/tmp"), **(env or {})}
    return subprocess.run(["sh", str(SCRIPT), *args], env=full, capture_output=True, text=True,
                          timeout=60, cwd=cwd)


SYS = "/usr/bin:/bin"


@pytest.fixture
def docker(tmp_path: Path) -> tuple[str, Path]:
    d = tmp_path / "bin"
    d.mkdir()
    (d / "docker").write_text(FAKE_DOCKER)
    (d / "docker").chmod(0o755)
    return f"{d}:{SYS}", tmp_path / "docker.log"


def test_help() -> None:
    r = run("--help", path=SYS)
    assert r.returncode == 0
    for word in ("--release", "--target", "--output", "24.10", "25.12"):
        assert word in r.stdout


@pytest.mark.parametrize("args,msg", [
    (["--release", "23"], "--release '23'"),
    (["--target", "ath79"], "TARGET/SUBTARGET"),
    (["--target", "../x/y"], "TARGET/SUBTARGET"),
    (["--packages", "bonding;rm"], "not a package name"),
    (["--frobnicate"], "unknown argument"),
    (["--output"], "needs a value"),
])
def test_bad_arguments(args: list[str], msg: str) -> None:
    r = run(*args, path=SYS)
    assert r.returncode == 2
    assert msg in r.stderr


@pytest.mark.parametrize("release,target,image", [
    ("24.10", "ath79/generic", "openwrt/sdk:ath79-generic-openwrt-24.10"),
    ("25.12", "mediatek/filogic", "openwrt/sdk:mediatek-filogic-openwrt-25.12"),
    ("24.10.4", "x86/64", "openwrt/sdk:x86-64-24.10.4"),
    ("snapshot", "ramips/mt7621", "openwrt/sdk:ramips-mt7621-SNAPSHOT"),
])
def test_the_image_follows_release_and_target(release: str, target: str, image: str) -> None:
    r = run("--release", release, "--target", target, "--dry-run", path=SYS)
    assert r.returncode == 0, r.stderr
    assert f" {image} " in r.stdout
    assert "src-link bonding /feed" in r.stdout
    assert "./scripts/feeds install -a -p bonding" in r.stdout


def test_docker_missing_says_so_and_what_else_to_do(tmp_path: Path, applets: Path,
                                                     busybox: str) -> None:
    # only busybox's applets on PATH: no docker there
    r = subprocess.run([busybox, "sh", str(SCRIPT), "--output", str(tmp_path / "out")],
                       env={"PATH": str(applets)}, capture_output=True, text=True, timeout=60,
                       cwd=REPO)
    assert r.returncode == 2
    assert "docker is not installed" in r.stderr and "make feed" in r.stderr
    assert not (tmp_path / "out").exists()


def test_docker_daemon_down_says_so(docker: tuple[str, Path], tmp_path: Path) -> None:
    path, log = docker
    r = run("--output", str(tmp_path / "out"), path=path,
            env={"DOCKER_LOG": str(log), "DOCKER_INFO_RC": "1"})
    assert r.returncode == 2
    assert "daemon does not answer" in r.stderr
    assert log.read_text().splitlines() == ["info"]


def test_a_run_mounts_the_feed_read_only_and_collects_the_packages(
        docker: tuple[str, Path], tmp_path: Path) -> None:
    path, log = docker
    out = tmp_path / "out"
    r = run("--release", "25.12", "--target", "ath79/generic", "--output", str(out),
            "--packages", "bonding python3-bonding", path=path,
            env={"DOCKER_LOG": str(log), "TMPDIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == "info"
    run_call = calls[1]
    assert run_call.startswith("run --rm ")
    assert f"-v {REPO}:/feed:ro" in run_call
    assert "-e BONDING_PACKAGES=bonding python3-bonding" in run_call
    assert "openwrt/sdk:ath79-generic-openwrt-25.12 sh -c" in run_call
    assert sorted(p.name for p in out.iterdir()) == ["Packages", "bonding_0.1.0-1_all.ipk"]
    # the staging dir is gone
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("bonding-sdk.")] == []
