"""The lab as a pytest fixture: real namespaces, real bondingd, real kernel MPTCP (root)."""

from __future__ import annotations

import itertools
import os
import shutil
import string
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bonding.lab.lifetime import up_then_down
from bonding.lab.topology import TARGET_ADDR6, Lab, missing_proxy_tools, parse_links
from bonding.lab.traffic import (
    Service,
    try_ask_from,
    wait_all_up,
    wait_family_up,
    wait_for,
    wait_proxy_running,
)

LINKS = "50/10ms,30/20ms,20/40ms"
READY_PORT = 8079  # the fixtures' own whoami on the target (the tests' services use 8080-8094)
TOOLS = {"iperf3": "iperf3", "mptcpize": "mptcpize", "nft": "nftables", "tc": "iproute2",
         "ethtool": "ethtool"}
BACKENDS = ("sing-box", "shadowsocks-libev")  # the default on both ends, and the fallback
_LABS = itertools.count()


def lab_prefix(letter: str, tail: str = "") -> str:
    """A prefix no other lab of this run has: the module-scoped fixtures build a lab per module,
    and a lab built under an earlier one's prefix would remove its logs (kept when it failed)."""
    n = next(_LABS) % 36
    return f"{letter}{os.getpid() % 100000}{tail}{(string.digits + string.ascii_lowercase)[n]}"


def lab_skip_reason(proxy: str | None = None) -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, nftables, tc)"
    missing = [f"{t} ({p})" for t, p in TOOLS.items() if shutil.which(t) is None]
    if missing:
        return "missing tools for the lab: " + ", ".join(missing)
    if proxy is not None and missing_proxy_tools(proxy):
        # not a skip: make deps installs every proxy the lab runs
        pytest.fail(f"{proxy} for the lab: missing " + ", ".join(missing_proxy_tools(proxy)))
    return None


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """bondingd alone: the router's own MPTCP traffic (no data plane)."""
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    lab = Lab(lab_prefix("t"))

    def up() -> None:
        lab.up(parse_links(LINKS), proxy=False)
        assert wait_all_up(lab, 20), f"paths not up: {lab.status().get('paths')}"

    yield from _kept(request, lab, up)


def _kept(request: pytest.FixtureRequest, lab: Lab, up: Callable[[], None]) -> Iterator[Lab]:
    """The lab built by `up()` for the fixture's tests, then down; its logs kept under
    /run/bonding-lab when the build or one of its tests failed."""
    failed = request.session.testsfailed
    with up_then_down(up, lambda purge: lab.down(purge=purge),
                      lambda: request.session.testsfailed == failed):
        yield lab


def _full_path(request: pytest.FixtureRequest, letter: str,
               before_daemon: Callable[[Lab], tuple[str, ...]] | None = None,
               **up: Any) -> Iterator[Lab]:
    """A full-path lab with the proxy of `request.param`, every path up and the proxy running.

    `before_daemon(lab)`: set-up once the lab is built, before bondingd starts; it returns
    bondingd's extra arguments."""
    backend: str = request.param
    reason = lab_skip_reason(proxy=backend)
    if reason:
        pytest.skip(reason)
    lab = Lab(lab_prefix(letter, backend[1]))

    def build() -> None:
        lab.up(parse_links(LINKS), proxy=True, backend=backend,
               daemon=before_daemon is None, **up)
        if before_daemon is not None:
            lab.start_daemon(*before_daemon(lab))
        assert wait_all_up(lab, 20), f"paths not up: {lab.status().get('paths')}"
        assert wait_proxy_running(lab, 10), f"proxy not running: {lab.status().get('proxy')}"

    yield from _kept(request, lab, build)


@pytest.fixture(scope="module", params=BACKENDS)
def full_lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """The full path: LAN host → router (data plane) → links → bonding-server → target, with
    sing-box on both ends, then with ss-redir/ss-server under mptcpize."""
    yield from _full_path(request, "f")


def _hook(lab: Lab, name: str, line: str) -> tuple[str, ...]:
    """bondingd's arguments for a hooks dir <state_dir>/hooks with one script `name` of one
    `line` of sh, in which {hooks} stands for that dir."""
    hooks = Path(lab.load().state_dir) / "hooks"
    hooks.mkdir()
    script = hooks / name
    script.write_text("#!/bin/sh\n" + line.format(hooks=hooks) + "\n")
    script.chmod(0o755)
    return ("--hooks-dir", str(hooks))


def _hook_logger(lab: Lab) -> tuple[str, ...]:
    """A hook that logs every server action to <state_dir>/hooks/events.log."""
    return _hook(lab, "50-log", 'echo "$ACTION $SERVER_NAME $PREVIOUS>$STATE '
                 'active=$ACTIVE_SERVER" >> {hooks}/events.log')


@pytest.fixture(scope="module", params=BACKENDS)
def two(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """The full path with two aggregation servers ('lab' preferred, 'lab2'), failback 'return'
    after 4 s, and a hook that logs every server action to <state_dir>/hooks/events.log; with
    sing-box on both ends, then with ss-redir/ss-server under mptcpize."""
    yield from _full_path(request, "s", _hook_logger, servers=2,
                          options={"server_hold_s": "4", "server_failback": "return"})


@pytest.fixture
def fresh(lab: Lab) -> Iterator[Lab]:
    """The lab with every fault cleared and every path up, before and after the test."""
    _reset(lab)
    yield lab
    _reset(lab)


def _reset(lab: Lab) -> None:
    st = lab.load()
    for link in st.links:
        lab.clear(link.name)
        lab.carrier(link.name, True)
    assert wait_all_up(lab, 20), f"paths not up: {lab.status().get('paths')}"


@pytest.fixture(scope="module", params=BACKENDS[1:])
def full6_lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """The full path over the links' IPv6: the router's proxy reaches the server by its IPv6
    address, the MPTCP subflows run on IPv6 (LAN traffic of both families inside).

    shadowsocks-libev: sing-box bonds only towards an IPv4 server address (it refuses an IPv6
    one, saying so: tests/dataplane/test_backends.py)."""
    yield from _full_path(request, "v", tunnel6=True)


@pytest.fixture
def full6(full6_lab: Lab) -> Iterator[Lab]:
    """The IPv6 full path, faults cleared, both families of every path up, proxy running."""
    _ready(full6_lab)
    yield full6_lab
    _reset(full6_lab)


@pytest.fixture
def full(full_lab: Lab) -> Iterator[Lab]:
    """The full-path lab with every fault cleared, both families of every path up (a fresh
    lab's first IPv6 probe rounds can be slow: empty neighbour caches) and the proxy running."""
    _ready(full_lab)
    yield full_lab
    _reset(full_lab)


def _ready(lab: Lab) -> None:
    """A full path's faults cleared, both families of every path up, the proxy running and the
    LAN host's IPv6 reaching the target through it."""
    _reset(lab)
    assert wait_family_up(lab, 6, 20), lab.status().get("paths")
    assert wait_proxy_running(lab, 10), lab.status().get("proxy")
    assert _lan_reaches_target6(lab), lab.status()


def _lan_reaches_target6(lab: Lab, timeout: float = 20.0) -> bool:
    """A new IPv6 connection from the LAN host gets the target's answer through the proxy: the
    full path carries IPv6 (its families being up in bondingd's status is not yet that: one
    fresh lab reset the first connection ~2 s after they were)."""
    with Service(lab, "target", "whoami", READY_PORT):
        return wait_for(lambda: try_ask_from(lab, "lan", "whoami", TARGET_ADDR6, READY_PORT,
                                             timeout=1.0) is not None, timeout) is not None


def _mptcp_hook_logger(lab: Lab) -> tuple[str, ...]:
    """A hook that logs every mptcp action to <state_dir>/hooks/mptcp.log."""
    return _hook(lab, "50-mptcp", 'case "$ACTION" in mptcp-*) echo "$ACTION $PATH_NAME $KIND" '
                 '>> {hooks}/mptcp.log;; esac')


MPTCP_CHECK_OPTIONS = {"mptcp_check_interval_s": "2", "mptcp_join_timeout_s": "6"}


@pytest.fixture(scope="module", params=BACKENDS[:1])
def mptcp_lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """The full path (sing-box) with MPTCP checks every 2 s, a join timeout of 6 s and a hook
    that logs every mptcp action to <state_dir>/hooks/mptcp.log."""
    yield from _full_path(request, "m", _mptcp_hook_logger, options=MPTCP_CHECK_OPTIONS)
