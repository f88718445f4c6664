"""Fixtures for tests that use the OpenWrt userland (uci, ubusd, libubus, pyuci; and, in a
scratch OpenWrt root built by router_root.py, procd, rpcd, uhttpd and opkg).

That userland is not packaged for Debian and never goes into this repo: build it outside (for
example into /opt/owrt, see DESIGN.md §5) and point OWRT_PREFIX at the prefix:

    OWRT_PREFIX=/opt/owrt pytest tests/owrt

Expected layout: bin/uci, bin/ubus, bin/ubusd (or sbin/ubusd), lib/ (libuci, libubox, libubus,
libblobmsg_json) and optionally venv/bin/python with pyuci (``import uci``).  Without it, the
tests here skip and say why.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

_said: set[str] = set()


def _skip(request: pytest.FixtureRequest, reason: str) -> None:
    """Skip, and print the reason once on the terminal (not only in the -rs summary)."""
    if reason not in _said:
        _said.add(reason)
        tr = request.config.pluginmanager.get_plugin("terminalreporter")
        cm = request.config.pluginmanager.get_plugin("capturemanager")
        if tr is not None and cm is not None:
            with cm.global_and_fixture_disabled():
                tr.write_line(f"\n[tests/owrt] skipping: {reason}", yellow=True)
    pytest.skip(reason)


def say(config: pytest.Config, line: str) -> None:
    """Print a line on the terminal, also under -q and output capture (timings)."""
    tr = config.pluginmanager.get_plugin("terminalreporter")
    cm = config.pluginmanager.get_plugin("capturemanager")
    if tr is not None and cm is not None:
        with cm.global_and_fixture_disabled():
            tr.write_line(f"\n[tests/owrt] {line}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """Each phase's report on its item (item.rep_setup, .rep_call): for fixtures that print
    what a scratch router's daemons said when a test failed."""
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


@pytest.fixture(scope="session")
def owrt_prefix(request: pytest.FixtureRequest) -> Path:
    """The OpenWrt userland prefix from OWRT_PREFIX (skips when unset or without bin/uci)."""
    raw = os.environ.get("OWRT_PREFIX", "")
    if not raw:
        _skip(request, "OWRT_PREFIX is not set: build uci/ubus/libubox outside the repo and set "
                       "OWRT_PREFIX to that prefix (e.g. /opt/owrt)")
    prefix = Path(raw)
    if not (prefix / "bin" / "uci").is_file():
        _skip(request, f"OWRT_PREFIX={raw} has no bin/uci")
    return prefix


@pytest.fixture(scope="session")
def owrt_env(owrt_prefix: Path) -> dict[str, str]:
    """The environment for running the prefix's programs (LD_LIBRARY_PATH with its lib/)."""
    env = dict(os.environ)
    lib = str(owrt_prefix / "lib")
    env["LD_LIBRARY_PATH"] = lib + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH")
                                    else "")
    return env


@pytest.fixture(scope="session")
def owrt_python(request: pytest.FixtureRequest, owrt_prefix: Path,
                owrt_env: dict[str, str]) -> Path:
    """A Python interpreter that can `import uci` (pyuci): $OWRT_PREFIX/venv/bin/python."""
    py = owrt_prefix / "venv" / "bin" / "python"
    if not py.is_file():
        _skip(request, f"no pyuci: {py} does not exist (python3 -m venv there, pip install pyuci "
                       "against $OWRT_PREFIX/include and lib)")
    r = subprocess.run([str(py), "-c", "import uci; uci.Uci"], env=owrt_env,
                       capture_output=True, text=True, timeout=30, check=False)
    if r.returncode != 0:
        _skip(request, f"no pyuci: {py} cannot import uci: {r.stderr.strip()[-200:]}")
    return py


# --- a scratch OpenWrt root with the real procd, rpcd, opkg (tests/owrt/router_root.py) ---------

@pytest.fixture(scope="session")
def worker_tag() -> str:
    """A prefix for this run's network namespaces and links (another run may be going on)."""
    return f"ow{os.getpid() % 100000}"


@pytest.fixture(scope="session")
def owrt_feed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Our feed, as `make feed` builds it, for the host's Python (the scratch root runs it)."""
    import sys

    from .router_root import pyver

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
    import feed

    out = tmp_path_factory.mktemp("owrt-feed")
    keys = tmp_path_factory.mktemp("owrt-feed-key")
    assert feed.main(["build", "--output", str(out), "--python", pyver(), "--key-dir",
                      str(keys)]) == 0
    return out


@pytest.fixture(scope="session")
def router_prereqs(owrt_prefix: Path) -> Path:
    """Root, the tools the scratch root is made of, and the prefix's procd/rpcd/opkg."""
    import shutil

    if os.geteuid() != 0:
        pytest.skip("the scratch OpenWrt root needs root (namespaces, mounts)")
    for tool in ("busybox", "nsenter", "unshare", "ip"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (make deps installs it)")
    for rel in ("sbin/procd", "sbin/rpcd", "bin/uhttpd", "bin/opkg-cl", "openwrt/etc/rc.common"):
        if not (owrt_prefix / rel).exists():
            pytest.fail(f"{owrt_prefix}/{rel} is missing: rebuild the prefix with "
                        "tools/owrt-userland.sh")
    return owrt_prefix
