"""Proxy supervision and the data plane as bondingd drives it, with stand-in programs (no root).

The stand-in `ss-redir` prints a line and sleeps; with a file `crash` next to it, it prints an
error and exits 1.  The stand-in `mptcpize run PROG ARGS` runs PROG ARGS.  The stand-in `nft`
appends what it is given to nft.log.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from bonding.config import Config, Globals, PathConfig, Server
from bonding.dataplane import DataPlane, State, privdrop, proxyproc
from bonding.dataplane import supervisor as sup
from bonding.dataplane.backends import Launch, launch
from bonding.dataplane.supervisor import Supervisor

ME = pwd.getpwuid(os.geteuid()).pw_name  # the proxy runs as who runs the test

KEY = "the-key-0123"
CFG = Config(globals=Globals(proxy="shadowsocks-libev", lan_devices=("lan0",), proxy_user=ME),
             servers=(Server(name="vps1", address="203.0.113.10"),))
STATUS_KEYS = {"backend", "state", "pid", "restarts", "since", "error"}  # + server, configured


def write(path: Path, text: str, mode: int = 0o755) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    d = tmp_path / "bin"
    d.mkdir()
    write(d / "mptcpize", '#!/bin/sh\n[ "$1" = run ] || exit 2\nshift\nexec "$@"\n')
    write(d / "ss-redir", '#!/bin/sh\nd=$(dirname "$0")\n'
          'if [ -e "$d/crash" ]; then echo "ERROR: bind: Address already in use"; exit 1; fi\n'
          'echo "INFO: listening at 127.0.0.1:1100"\nsleep 600 & wait $!\n')
    write(d / "nft", '#!/bin/sh\ncat >> "$(dirname "$0")/nft.log"\n'
          'echo ==== >> "$(dirname "$0")/nft.log"\n')
    return d


@pytest.fixture
def conf_dir(tmp_path: Path) -> Path:
    d = tmp_path / "etc"
    d.mkdir()
    write(d / "bonding_secrets", f"config server 'vps1'\n\toption key '{KEY}'\n", 0o600)
    return d


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "run"
    d.mkdir()
    return d


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sup, "BACKOFF_S", (0.1, 0.2, 0.4))
    monkeypatch.setattr(sup, "HEALTHY_S", 1.0)
    monkeypatch.setattr(sup, "RETRY_S", 0.5)


async def until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.02)


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 30))


# --- the supervisor ------------------------------------------------------------------------------

def test_started_killed_restarted_reported(bin_dir: Path, run_dir: Path) -> None:
    async def body() -> None:
        changes: list[str] = []
        s = Supervisor(run_dir, on_change=lambda: changes.append(s.state))
        from bonding.config import Secrets
        s.set(launch(CFG, Secrets({"vps1": KEY}), run_dir, str(bin_dir)))
        await until(lambda: s.state is State.RUNNING and s.pid is not None)
        first = s.pid
        assert first is not None and alive(first)
        rec = proxyproc.Record.read(run_dir)
        assert rec is not None and rec.pid == first and rec.files == ("ss-redir.json",)
        assert stat.S_IMODE((run_dir / sup.PID_FILE).stat().st_mode) == 0o600
        conf = run_dir / "ss-redir.json"
        assert stat.S_IMODE(conf.stat().st_mode) == 0o600  # it holds the key
        os.kill(first, signal.SIGKILL)
        await until(lambda: s.restarts == 1 and s.state is State.RUNNING and s.pid != first)
        st = s.status()
        assert set(st) == STATUS_KEYS
        assert st["backend"] == "shadowsocks-libev" and st["restarts"] == 1
        assert st["error"].startswith("restarted after: ss-redir killed by signal 9")
        assert "stopped" in changes  # it was reported between death and restart
        second = s.pid
        await s.close()
        assert not alive(second)
        assert not (run_dir / sup.PID_FILE).exists()
        assert s.status()["state"] == "stopped" and s.status()["pid"] is None
    run(body)


def test_an_unchanged_launch_keeps_the_process(bin_dir: Path, run_dir: Path) -> None:
    async def body() -> None:
        from bonding.config import Secrets
        s = Supervisor(run_dir)
        s.set(launch(CFG, Secrets({"vps1": KEY}), run_dir, str(bin_dir)))
        await until(lambda: s.pid is not None)
        pid = s.pid
        s.set(launch(CFG, Secrets({"vps1": KEY}), run_dir, str(bin_dir)))
        await asyncio.sleep(0.3)
        assert s.pid == pid and s.restarts == 0
        # a new key is a new process (the old one is stopped first: it holds the port)
        s.set(launch(CFG, Secrets({"vps1": "another-key"}), run_dir, str(bin_dir)))
        await until(lambda: s.pid is not None and s.pid != pid)
        assert not alive(pid)
        assert "another-key" in (run_dir / "ss-redir.json").read_text()
        await s.close()
    run(body)


@pytest.mark.parametrize("second", ["another launch", "a failure", "nothing"])
def test_two_changes_at_once_leave_no_proxy_running(bin_dir: Path, run_dir: Path,
                                                    second: str) -> None:
    """A change that comes before the last one's task ran still stops the process that ran
    (it was handed to the cancelled task and ran on, holding the port and the key)."""
    async def body() -> None:
        s = Supervisor(run_dir)
        s.set(the_launch(run_dir, bin_dir))
        await until(lambda: s.state is State.RUNNING and s.pid is not None)
        first = s.pid
        s.fail("shadowsocks-libev", "no key for server 'vps3'")  # no await in between
        if second == "another launch":
            s.set(the_launch(run_dir, bin_dir, key="another-key"))
            await until(lambda: s.pid not in (None, first))
        elif second == "a failure":
            s.fail("shadowsocks-libev", "server 'ghost' is not an enabled server section")
        else:
            s.set(None)
        await until(lambda: not alive(first))
        await s.close()
    run(body)


def test_crash_loop_is_failed_with_the_proxy_s_words(bin_dir: Path, run_dir: Path) -> None:
    async def body() -> None:
        from bonding.config import Secrets
        (bin_dir / "crash").touch()
        s = Supervisor(run_dir)
        s.set(launch(CFG, Secrets({"vps1": KEY}), run_dir, str(bin_dir)))
        await until(lambda: s.state is State.FAILED, 10)
        st = s.status()
        assert st["restarts"] >= sup.CRASH_LOOP
        assert "keeps dying" in st["error"]
        assert "exited with status 1" in st["error"]
        assert "Address already in use" in st["error"]
        # fixed meanwhile: the retry starts it, and once it survives it is running again
        (bin_dir / "crash").unlink()
        await until(lambda: s.state is State.RUNNING, 10)
        assert alive(s.pid)
        await s.close()
    run(body)


def test_orphan_from_a_dead_bondingd_is_stopped_first(bin_dir: Path, run_dir: Path) -> None:
    async def body() -> None:
        from bonding.config import Secrets
        la = launch(CFG, Secrets({"vps1": KEY}), run_dir, str(bin_dir))
        orphan = await asyncio.create_subprocess_exec(*la.argv, start_new_session=True,
                                                      stdout=asyncio.subprocess.DEVNULL)
        (run_dir / sup.PID_FILE).write_text(f"{orphan.pid}\n")
        s = Supervisor(run_dir)
        s.set(la)
        await until(lambda: s.pid is not None and s.pid != orphan.pid)
        await asyncio.wait_for(orphan.wait(), 5)
        assert orphan.returncode == -signal.SIGKILL
        await s.close()
    run(body)


# --- a restart, a crash: the proxy left running ------------------------------------------------
# The stand-in proxy of these tests writes a line every 50 ms, also while no bondingd reads.
TICKER = 'i=0\nwhile :; do i=$((i + 1)); echo "INFO: tick $i"; sleep 0.05; done\n'


def ticking(bin_dir: Path) -> None:
    write(bin_dir / "ss-redir", "#!/bin/sh\n" + TICKER)


def the_launch(run_dir: Path, bin_dir: Path, key: str = KEY) -> Launch:
    from bonding.config import Secrets
    return launch(CFG, Secrets({"vps1": key}), run_dir, str(bin_dir))


async def left_running(run_dir: Path, la: Launch) -> int:
    """A bondingd that started `la` and ended for a restart: the proxy's pid."""
    s = Supervisor(run_dir)
    s.set(la)
    await until(lambda: s.state is State.RUNNING and s.pid is not None)
    pid = s.pid
    assert pid is not None
    await s.detach()
    return pid


def test_a_proxy_left_by_a_restart_is_adopted_and_its_output_read(bin_dir: Path,
                                                                  run_dir: Path) -> None:
    async def body() -> None:
        ticking(bin_dir)
        la = the_launch(run_dir, bin_dir)
        pid = await left_running(run_dir, la)
        await asyncio.sleep(0.5)  # no bondingd: it writes on (no SIGPIPE, no block)
        assert alive(pid)
        assert (run_dir / "ss-redir.json").exists() and (run_dir / sup.PID_FILE).exists()
        changes: list[State] = []
        s = Supervisor(run_dir, on_change=lambda: changes.append(s.state))
        s.set(la)
        # at once (the nftables table is kept loaded, not removed until a start)
        assert (s.state, s.pid, changes) == (State.RUNNING, pid, [State.RUNNING])
        await asyncio.sleep(0.3)
        os.kill(pid, signal.SIGKILL)  # its end is seen (not our child), its last words read
        await until(lambda: s.restarts == 1 and s.state is State.RUNNING and s.pid != pid)
        err = s.status()["error"]
        assert "ss-redir ended (adopted from a previous bondingd" in err, err
        assert "INFO: tick" in err
        await s.close()
    run(body)


def test_a_proxy_whose_bondingd_never_returns_is_not_stalled_by_its_log(
        bin_dir: Path, run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the FIFO is full its writes fail (lines lost) instead of blocking the proxy."""
    monkeypatch.setattr(proxyproc, "PIPE_BYTES", 4096)
    pad = "x" * 1000  # 1 KiB a line: the pipe is full after four
    write(bin_dir / "ss-redir", f'#!/bin/sh\nd=$(dirname "$0")\ni=0\nwhile :; do\n'
          '  i=$((i + 1)); echo "$i" > "$d/count.tmp" && mv "$d/count.tmp" "$d/count"\n'
          f'  echo "INFO: $i {pad}" 2> /dev/null\ndone\n')

    def count() -> int:
        return int((bin_dir / "count").read_text())

    async def body() -> None:
        await left_running(run_dir, the_launch(run_dir, bin_dir))
        await asyncio.sleep(0.3)  # far more than 4 KiB written with no reader
        first = count()
        await asyncio.sleep(0.3)
        assert count() > first + 10, "the proxy stalled on its log"
        s = Supervisor(run_dir)
        s.set(the_launch(run_dir, bin_dir))
        await s.close()
    run(body)


def test_an_adopted_proxy_is_stopped_by_close_and_its_files_removed(bin_dir: Path,
                                                                    run_dir: Path) -> None:
    async def body() -> None:
        la = the_launch(run_dir, bin_dir)
        pid = await left_running(run_dir, la)
        s = Supervisor(run_dir)
        s.set(la)
        assert s.pid == pid
        await s.close()
        assert not alive(pid)
        assert sorted(p.name for p in run_dir.iterdir()) == []  # the key, the record, the FIFO
    run(body)


@pytest.mark.parametrize("change", ["key", "disabled", "failed"])
def test_a_proxy_left_running_another_launch_is_stopped_and_its_files_removed(
        bin_dir: Path, run_dir: Path, change: str) -> None:
    async def body() -> None:
        pid = await left_running(run_dir, the_launch(run_dir, bin_dir))
        s = Supervisor(run_dir)
        if change == "key":
            s.set(the_launch(run_dir, bin_dir, key="another-key-456"))
            await until(lambda: s.state is State.RUNNING and s.pid is not None)
            assert s.pid != pid
            assert "another-key-456" in (run_dir / "ss-redir.json").read_text()
        elif change == "disabled":
            s.set(None)
        else:
            s.fail("shadowsocks-libev", "no key")
        assert not alive(pid)
        if change != "key":
            assert sorted(p.name for p in run_dir.iterdir()) == []
        await s.close()
    run(body)


def test_a_record_whose_pid_now_names_another_process_is_left_alone(bin_dir: Path,
                                                                    run_dir: Path) -> None:
    async def body() -> None:
        la = the_launch(run_dir, bin_dir)
        # a process with our run directory in its command line, but started at another time
        # than the record says: the proxy's pid, reused
        other = await asyncio.create_subprocess_exec("sh", "-c", "sleep 60", str(run_dir))
        ticks = proxyproc.start_ticks(other.pid)
        assert ticks is not None
        proxyproc.Record(other.pid, ticks - 1, 0.0, proxyproc.identity(la),
                         ("ss-redir.json",)).write(run_dir)
        (run_dir / "ss-redir.json").write_text(la.files["ss-redir.json"])
        s = Supervisor(run_dir)
        s.set(la)
        await until(lambda: s.state is State.RUNNING and s.pid is not None)
        assert s.pid != other.pid and alive(other.pid)
        await s.close()
        other.kill()
        await other.wait()
    run(body)


def test_a_restart_keeps_the_table_and_the_next_data_plane_adopts_the_proxy(
        bin_dir: Path, run_dir: Path, conf_dir: Path) -> None:
    async def body() -> None:
        d = dp(run_dir, bin_dir)
        d.configure(CFG, conf_dir)
        await until(lambda: d.status()["state"] == "running")
        pid = d.status()["pid"]
        loads = nft_calls(bin_dir)
        await d.detach()
        assert nft_calls(bin_dir) == loads  # the table stays
        assert alive(pid)
        d2 = dp(run_dir, bin_dir)
        d2.configure(CFG, conf_dir)
        st = d2.status()
        assert (st["state"], st["pid"]) == ("running", pid)
        # the table is loaded again at once, in one transaction: never removed on the way
        after = nft_calls(bin_dir)[len(loads):]
        assert len(after) == 1 and "tproxy ip to 127.0.0.1:1100" in after[0], after
        await d2.close()
        assert not alive(pid)
        assert "tproxy" not in nft_calls(bin_dir)[-1]
    run(body)


def test_a_go_proxy_left_alone_lives_on_and_its_output_waits_for_the_next_bondingd(
        run_dir: Path) -> None:
    """The real sing-box (a Go program: it dies of SIGPIPE writing its log to a pipe nobody
    reads) logs every connection while no bondingd runs; the next one reads those lines."""
    from .test_backends import real_sing_box

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conf = json.dumps({"log": {"level": "info"}, "outbounds": [{"type": "direct"}],
                       "inbounds": [{"type": "mixed", "listen": "127.0.0.1",
                                     "listen_port": port}]})
    me = privdrop.Identity(ME, os.geteuid(), os.getegid())
    la = Launch("sing-box", "sing-box", (real_sing_box(), "run", "--disable-color", "-c",
                                         str(run_dir / "sing-box.json")),
                {"sing-box.json": conf}, user=me)

    async def connect() -> bool:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        w.close()
        return True

    async def body() -> None:
        first = Supervisor(run_dir)
        first.set(la)
        end = time.monotonic() + 5
        while not await connect():  # listening
            assert time.monotonic() < end, "sing-box does not listen"
            await asyncio.sleep(0.05)
        pid = first.pid
        await first.detach()
        for _ in range(3):  # each connection is a log line, with no reader
            assert await connect()
            await asyncio.sleep(0.2)
        assert alive(pid)
        s = Supervisor(run_dir)
        s.set(la)
        assert s.pid == pid
        await asyncio.sleep(0.5)
        os.kill(pid, signal.SIGKILL)
        await until(lambda: s.restarts == 1)
        assert "inbound connection" in s.status()["error"], s.status()["error"]
        await s.close()
    run(body)


# --- the data plane ------------------------------------------------------------------------------

def dp(run_dir: Path, bin_dir: Path, changes: list[int] | None = None,
       cc: tuple[str, ...] = ("reno", "cubic", "bbr")) -> DataPlane:
    return DataPlane(run_dir, path=str(bin_dir), nft_cmd=str(bin_dir / "nft"), fw4=False,
                     on_change=(lambda: changes.append(1)) if changes is not None else None,
                     cc_available=lambda: cc)


async def running(run_dir: Path, bin_dir: Path, cfg: Config, conf_dir: Path) -> DataPlane:
    """A data plane configured with `cfg`, once its proxy runs."""
    d = dp(run_dir, bin_dir)
    d.configure(cfg, conf_dir)
    await until(lambda: d.status()["state"] == "running")
    return d


def nft_calls(bin_dir: Path) -> list[str]:
    f = bin_dir / "nft.log"
    return [c.strip() for c in f.read_text().split("====")[:-1]] if f.exists() else []


def test_data_plane_runs_the_proxy_and_loads_the_table(bin_dir: Path, run_dir: Path,
                                                       conf_dir: Path) -> None:
    async def body() -> None:
        d = dp(run_dir, bin_dir)
        assert d.configure(CFG, conf_dir) == []
        await until(lambda: d.status()["state"] == "running")
        st = d.status()
        assert set(st) == STATUS_KEYS | {"server", "configured", "ipv6"}
        assert (st["backend"], st["error"], st["restarts"]) == ("shadowsocks-libev", "", 0)
        assert st["server"] == "vps1"
        # the server has no IPv6 address: LAN IPv6 is not proxied, and status says why
        assert st["ipv6"] == {"lan": "routed natively", "reason": "server 'vps1' has no IPv6 "
                              "address (option address6): it could not reach IPv6 destinations"}
        assert alive(st["pid"])
        assert KEY not in repr(st)
        calls = nft_calls(bin_dir)
        assert len(calls) >= 1 and "tproxy ip to 127.0.0.1:1100" in calls[-1]
        assert 'iifname { "lan0" }' in calls[-1]
        tp = d.tproxy()
        assert tp is not None and (tp.mark, tp.mask, tp.table) == (0xB0, 0xB0, 199)
        assert d.congctl() == "bbr"
        await d.close()
        assert not alive(st["pid"])
        assert "delete table inet bonding" in nft_calls(bin_dir)[-1]
        assert "tproxy" not in nft_calls(bin_dir)[-1]
    run(body)


def test_missing_program_fails_clearly_and_removes_the_table(bin_dir: Path, run_dir: Path,
                                                             conf_dir: Path) -> None:
    async def body() -> None:
        (bin_dir / "ss-redir").unlink()
        d = dp(run_dir, bin_dir)
        d.configure(CFG, conf_dir)
        st = d.status()
        assert (st["state"], st["pid"]) == ("failed", None)
        assert "ss-redir not found" in st["error"] and "shadowsocks-libev" in st["error"]
        assert d.tproxy() is not None  # routing is kept (it is harmless without marks)
        assert all("tproxy" not in c for c in nft_calls(bin_dir))  # LAN traffic not diverted
        # installed meanwhile: picked up by the retry, without a reload
        write(bin_dir / "ss-redir", "#!/bin/sh\nexec sleep 600\n")
        await until(lambda: d.status()["state"] == "running", 5)
        assert "tproxy" in nft_calls(bin_dir)[-1]
        await d.close()
    run(body)


def test_set_server_restarts_the_proxy_only_when_the_server_changes(
        bin_dir: Path, run_dir: Path, conf_dir: Path) -> None:
    two = Config(globals=CFG.globals,
                 servers=(Server(name="vps1", address="203.0.113.10"),
                          Server(name="vps2", address="203.0.113.20", port=65102),
                          Server(name="vps3", address="203.0.113.30")))
    write(conf_dir / "bonding_secrets", f"config server 'vps1'\n\toption key '{KEY}'\n"
          f"config server 'vps2'\n\toption key '{KEY}-2'\n", 0o600)

    def conf() -> dict[str, object]:
        import json
        data: dict[str, object] = json.loads((run_dir / "ss-redir.json").read_text())
        return data

    async def body() -> None:
        d = dp(run_dir, bin_dir)
        assert d.configure(two, conf_dir, server="vps1") == []
        await until(lambda: d.status()["state"] == "running")
        first = d.status()["pid"]
        assert conf()["server"] == "203.0.113.10" and d.status()["server"] == "vps1"
        calls = len(nft_calls(bin_dir))
        d.set_server("vps1")  # no change: the process and its connections are kept
        await asyncio.sleep(0.3)
        assert d.status()["pid"] == first
        d.set_server("vps2")
        await until(lambda: d.status()["pid"] not in (None, first)
                    and d.status()["state"] == "running")
        assert not alive(first)
        assert (conf()["server"], conf()["server_port"], conf()["password"]) == \
            ("203.0.113.20", 65102, f"{KEY}-2")
        assert d.status()["server"] == "vps2"
        # the nftables table is the same for every server: not reloaded
        assert len(nft_calls(bin_dir)) == calls
        # a reload that keeps the active server keeps the process
        second = d.status()["pid"]
        assert d.configure(two, conf_dir, server="vps2") == []
        await asyncio.sleep(0.3)
        assert d.status()["pid"] == second
        # a server without a key: failed, saying which
        d.set_server("vps3")
        await until(lambda: d.status()["state"] == "failed")
        assert "no key for server 'vps3'" in d.status()["error"]
        d.set_server("ghost")
        await until(lambda: "server 'ghost' is not an enabled server section"
                    in d.status()["error"])
        await d.close()
    run(body)


def test_lan_ipv6_follows_the_server_in_use(bin_dir: Path, run_dir: Path,
                                           conf_dir: Path) -> None:
    """A failover to a server without IPv6 sends LAN IPv6 back to native routing (and back to
    the proxy when the IPv6 server is in use again), without restarting more than the proxy."""
    two = Config(globals=CFG.globals,
                 servers=(Server(name="vps1", address="203.0.113.10",
                                 address6="2001:db8:203::10"),
                          Server(name="vps2", address="203.0.113.20")))
    write(conf_dir / "bonding_secrets", f"config server 'vps1'\n\toption key '{KEY}'\n"
          f"config server 'vps2'\n\toption key '{KEY}-2'\n", 0o600)

    async def body() -> None:
        changes: list[int] = []
        d = dp(run_dir, bin_dir, changes)
        assert d.configure(two, conf_dir, server="vps1") == []
        await until(lambda: d.status()["state"] == "running")
        tp = d.tproxy()
        assert tp is not None and tp.ipv6
        assert "tproxy ip6 to" in nft_calls(bin_dir)[-1]
        assert d.status()["ipv6"]["lan"] == "proxied"
        before = len(changes)
        d.set_server("vps2")
        tp = d.tproxy()
        assert tp is not None and not tp.ipv6
        assert len(changes) > before  # bondingd re-plans routing (the IPv6 tproxy rule goes)
        await until(lambda: d.status()["server"] == "vps2" and d.status()["state"] == "running")
        assert "tproxy ip6" not in nft_calls(bin_dir)[-1]
        assert "tproxy ip to" in nft_calls(bin_dir)[-1]  # IPv4 still proxied
        assert "vps2" in d.status()["ipv6"]["reason"]
        d.set_server("vps1")
        await until(lambda: d.status()["server"] == "vps1" and d.status()["state"] == "running")
        assert "tproxy ip6 to" in nft_calls(bin_dir)[-1]
        await d.close()
    run(body)


def test_no_key_is_failed_and_names_the_file(bin_dir: Path, run_dir: Path,
                                             tmp_path: Path) -> None:
    async def body() -> None:
        empty = tmp_path / "empty"
        empty.mkdir()
        d = dp(run_dir, bin_dir)
        problems = d.configure(CFG, empty)
        assert [p.package for p in problems] == ["bonding_secrets"]
        st = d.status()
        assert st["state"] == "failed"
        assert "no key for server 'vps1'" in st["error"]
        assert "/etc/config/bonding_secrets" in st["error"]
        await d.close()
    run(body)


def test_proxy_none_is_disabled(bin_dir: Path, run_dir: Path, conf_dir: Path) -> None:
    async def body() -> None:
        d = await running(run_dir, bin_dir, CFG, conf_dir)
        pid = d.status()["pid"]
        cfg = Config(globals=Globals(proxy="none"), servers=CFG.servers)
        assert d.configure(cfg, conf_dir) == []
        await until(lambda: not alive(pid))
        st = d.status()
        assert (st["backend"], st["state"], st["pid"]) == ("none", "disabled", None)
        assert d.tproxy() is None
        assert "tproxy" not in nft_calls(bin_dir)[-1]
        await d.close()
    run(body)


class AnchorRecorder:
    """Stands for the route sing-box needs (the real one is tested in test_anchor.py)."""

    def __init__(self) -> None:
        self.wanted: list[bool] = []

    def set(self, want: bool) -> None:
        self.wanted.append(want)


def test_proxy_auto_takes_up_a_proxy_installed_later(bin_dir: Path, run_dir: Path,
                                                     conf_dir: Path) -> None:
    """option proxy 'auto' (the shipped default): nothing installed is a clear failure with the
    LAN routed natively; a sing-box installed meanwhile runs without a reload."""
    async def body() -> None:
        anchor = AnchorRecorder()
        d = DataPlane(run_dir, path=str(bin_dir), nft_cmd=str(bin_dir / "nft"), fw4=False,
                      cc_available=lambda: ("cubic", "bbr"),
                      anchor=anchor)  # type: ignore[arg-type]
        auto = Config(globals=Globals(lan_devices=("lan0",), proxy_user=ME), servers=CFG.servers)
        assert auto.globals.proxy == "auto"
        d.configure(auto, conf_dir)
        st = d.status()
        assert (st["state"], st["configured"], st["pid"]) == ("failed", "auto", None)
        assert "sing-box is not installed" in st["error"]
        assert "opkg install sing-box" in st["error"]
        assert all("tproxy" not in c for c in nft_calls(bin_dir))  # LAN traffic not diverted
        assert anchor.wanted == [False]
        write(bin_dir / "sing-box", "#!/bin/sh\nexec sleep 600\n")
        await until(lambda: d.status()["state"] == "running", 5)
        st = d.status()
        assert (st["backend"], st["configured"]) == ("sing-box", "auto")
        assert anchor.wanted[-1] is True  # before sing-box started
        assert "tproxy" in nft_calls(bin_dir)[-1]
        assert KEY in (run_dir / "sing-box.json").read_text()
        await d.close()
        assert not alive(st["pid"])
    run(body)


def test_proxy_auto_takes_only_a_tested_backend(bin_dir: Path) -> None:
    """xray has never been run by these tests: 'auto' does not pick it, even alone."""
    from bonding.dataplane.backends import resolve
    assert resolve("auto", str(bin_dir)) == "none"
    write(bin_dir / "xray", "#!/bin/sh\n")
    assert resolve("auto", str(bin_dir)) == "none"
    assert resolve("xray", str(bin_dir)) == "xray"  # named: as it is
    write(bin_dir / "sing-box", "#!/bin/sh\n")
    assert resolve("auto", str(bin_dir)) == "sing-box"
    assert resolve("shadowsocks-libev", str(bin_dir)) == "shadowsocks-libev"  # chosen: as it is


def test_a_backend_no_test_runs_is_logged_when_chosen(bin_dir: Path, run_dir: Path,
                                                     conf_dir: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """option proxy 'xray' is taken as asked, with a warning that no test of this project has
    run xray; the tested backends start without one."""
    async def body() -> None:
        write(bin_dir / "xray", "#!/bin/sh\nexec sleep 600\n")
        d = dp(run_dir, bin_dir)
        xray = Config(globals=replace(CFG.globals, proxy="xray"), servers=CFG.servers)
        d.configure(xray, conf_dir)
        await until(lambda: d.status()["state"] == "running")
        assert d.status()["backend"] == "xray"
        warned = [r.getMessage() for r in caplog.records if "not run by bonding's tests" in
                  r.getMessage()]
        assert warned == ["option proxy 'xray': xray is not run by bonding's tests (its config "
                          "is checked against xray's struct tags only): sing-box is the tested "
                          "choice"], warned
        await d.close()
        caplog.clear()
        d = await running(run_dir, bin_dir, CFG, conf_dir)  # shadowsocks-libev
        assert not [r for r in caplog.records if "not run by" in r.getMessage()]
        await d.close()
    with caplog.at_level("WARNING", logger="bondingd.dataplane"):
        run(body)


def test_congestion_control_that_the_kernel_lacks(bin_dir: Path, run_dir: Path,
                                                  conf_dir: Path) -> None:
    async def body() -> None:
        d = dp(run_dir, bin_dir, cc=("reno", "cubic"))
        d.configure(CFG, conf_dir)
        assert d.congctl() is None
        (err,) = d.errors()
        assert "congestion control 'bbr' (globals) is not available" in err
        assert "kmod-tcp-bbr" in err
        cubic = Config(globals=Globals(proxy="none", congestion_control="cubic"))
        d.configure(cubic, conf_dir)
        assert d.congctl() == "cubic" and d.errors() == []
        d.configure(Config(globals=Globals(proxy="none", congestion_control="")), conf_dir)
        assert d.congctl() is None and d.errors() == []
        # a path's own: taken when the kernel has it, else the global one with an error
        paths = (PathConfig(name="fibre", device="eth1", congestion_control="cubic"),
                 PathConfig(name="lte", device="wwan0", congestion_control="bbr"),
                 PathConfig(name="dsl", device="eth2"))
        d.configure(Config(globals=Globals(proxy="none", congestion_control="cubic"),
                           paths=paths), conf_dir)
        assert d.congctl() == "cubic"
        assert [d.path_congctl(n) for n in ("fibre", "lte", "dsl")] == ["cubic", None, None]
        (err,) = d.errors()
        assert "'bbr' (path lte) is not available" in err and "use the global one" in err
        await d.close()
    run(body)


def test_state_changes_are_told(bin_dir: Path, run_dir: Path, conf_dir: Path) -> None:
    async def body() -> None:
        changes: list[int] = []
        d = dp(run_dir, bin_dir, changes)
        d.configure(CFG, conf_dir)
        await until(lambda: d.status()["state"] == "running")
        n = len(changes)
        os.kill(d.status()["pid"], signal.SIGTERM)
        await until(lambda: d.status()["restarts"] == 1 and d.status()["state"] == "running")
        assert len(changes) >= n + 2  # stopped, running again
        await d.close()
    run(body)


def test_a_good_config_after_a_failed_one_runs_at_once(bin_dir: Path, run_dir: Path,
                                                       conf_dir: Path, tmp_path: Path) -> None:
    async def body() -> None:
        empty = tmp_path / "nokeys"
        empty.mkdir()
        d = dp(run_dir, bin_dir)
        d.configure(CFG, empty)
        assert d.status()["state"] == "failed"
        t0 = time.monotonic()
        d.configure(CFG, conf_dir)
        await until(lambda: d.status()["state"] == "running", 5)
        assert time.monotonic() - t0 < sup.HEALTHY_S  # not held back like a crash loop
        assert d.status()["error"] == ""
        await d.close()
    run(body)


def test_repeated_proxy_lines_are_logged_once(run_dir: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    from bonding.dataplane.backends import Launch

    async def body() -> None:
        script = ("echo '2026-01-01 00:00:01 ERROR: setting ipv6 dscp failed: 95'; "
                  "echo '2026-01-01 00:00:02 ERROR: setting ipv6 dscp failed: 95'; "
                  "echo 'INFO: something else'; sleep 600 & wait $!")
        s = Supervisor(run_dir)
        s.set(Launch("test", "sh", ("/bin/sh", "-c", script)))
        await until(lambda: any("something else" in r.message for r in caplog.records))
        await s.close()

    with caplog.at_level("INFO", logger="bondingd.proxy"):
        run(body)
    infos = [r.message for r in caplog.records if r.levelname == "INFO"]
    assert sum("dscp" in m for m in infos) == 1


def test_nothing_of_the_proxy_stays_in_the_run_dir_after_close(bin_dir: Path, run_dir: Path,
                                                               conf_dir: Path) -> None:
    async def body() -> None:
        d = await running(run_dir, bin_dir, CFG, conf_dir)
        assert any(KEY in p.read_text() for p in run_dir.iterdir() if p.is_file())
        await d.close()
        left = {p.name: p.read_text() for p in run_dir.iterdir() if p.is_file()}
        assert not [n for n, text in left.items() if KEY in text], left
    run(body)


def test_a_device_name_nft_cannot_hold_is_an_error_in_status(bin_dir: Path, run_dir: Path,
                                                              conf_dir: Path) -> None:
    # the config's validator refuses it; were one to get through, status must not say all is well
    bad = Config(globals=Globals(proxy="shadowsocks-libev", lan_devices=('la"n',), proxy_user=ME),
                 servers=CFG.servers)

    async def body() -> None:
        d = dp(run_dir, bin_dir)
        d.configure(bad, conf_dir)
        await until(lambda: d.status()["state"] == "running")
        assert "cannot be written in an nft string" in d.status()["error"]
        assert any("cannot be written in an nft string" in e for e in d.errors())
        await d.close()
        assert "delete table inet bonding" in nft_calls(bin_dir)[-1]
    run(body)


def test_stopping_goes_on_after_a_step_fails(bin_dir: Path, run_dir: Path,
                                             conf_dir: Path) -> None:
    async def body() -> None:
        d = await running(run_dir, bin_dir, CFG, conf_dir)
        pid = d.status()["pid"]
        real_close = d.supervisor.close

        async def broken() -> None:
            await real_close()
            raise RuntimeError("a bug while stopping the proxy")
        d.supervisor.close = broken  # type: ignore[method-assign]
        await d.close()
        assert not alive(pid)
        assert "delete table inet bonding" in nft_calls(bin_dir)[-1]
    run(body)


def test_the_proxy_runs_as_its_user_with_three_capabilities_and_a_clean_environment(
        bin_dir: Path, conf_dir: Path, monkeypatch: pytest.MonkeyPatch,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    # (root: it drops to 'nobody' as on the router it drops to 'bonding'), in a tree 'nobody'
    # can walk, as /usr/bin and /var/run/bonding are
    assert os.geteuid() == 0, "this test drops privileges: run it as root"
    top = Path(tempfile.mkdtemp(prefix="bonding-privdrop-"))
    try:
        top.chmod(0o755)
        shutil.copytree(bin_dir, top / "bin")
        bin_dir, run_dir, seen = top / "bin", top / "run", top / "seen"
        run_dir.mkdir()
        seen.mkdir()
        seen.chmod(0o777)
        _proxy_as_nobody(bin_dir, run_dir, conf_dir, seen, monkeypatch)
    finally:
        shutil.rmtree(top)


def _proxy_as_nobody(bin_dir: Path, run_dir: Path, conf_dir: Path, seen: Path,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    write(bin_dir / "ss-redir",
          f'#!/bin/sh\ngrep -E "^(Uid|Gid|Groups|CapEff|CapPrm|CapAmb|NoNewPrivs):" '
          f'/proc/self/status > {seen}/status\ntr "\\0" "\\n" < /proc/self/environ > {seen}/env\n'
          'while [ "$1" != -c ]; do shift; done\n'
          f'cat "$2" > {seen}/config.new 2>&1 || echo unreadable > {seen}/config.new\n'
          f'mv {seen}/config.new {seen}/config\n'
          'exec sleep 600\n')
    monkeypatch.setenv("BONDINGD_CANARY", "root's environment")
    nobody = Config(globals=Globals(proxy="shadowsocks-libev", lan_devices=("lan0",),
                                    proxy_user="nobody"), servers=CFG.servers)

    async def body() -> None:
        d = dp(run_dir, bin_dir)
        d.configure(nobody, conf_dir)
        try:
            await until(lambda: (seen / "config").exists() and (seen / "env").exists())
        except AssertionError:
            raise AssertionError(d.status()) from None
        await asyncio.sleep(0.2)
        await d.close()
    run(body)
    status = dict(line.split(":", 1) for line in (seen / "status").read_text().splitlines())
    assert status["Uid"].split() == ["65534"] * 4 and status["Gid"].split()[0] == "65534"
    assert status["Groups"].strip() == ""
    caps = (1 << 10) | (1 << 12) | (1 << 13)  # NET_BIND_SERVICE, NET_ADMIN, NET_RAW
    for field in ("CapEff", "CapPrm", "CapAmb"):
        assert int(status[field], 16) == caps, (field, status[field])
    assert status["NoNewPrivs"].strip() == "1"
    env = (seen / "env").read_text().split()
    assert not [v for v in env if v.startswith("BONDINGD_CANARY")], env
    assert KEY in (seen / "config").read_text()  # its own config it can read, as that user
