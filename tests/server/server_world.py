"""The bonding-server tests' world: a few network namespaces around the server (root).

    client ──eth0 192.0.2.20──────── 192.0.2.1 ─┐
           ──eth1 100.64.77.2─────── 100.64.77.1 ┤ inet ── 198.51.100.1 ── target 198.51.100.10
                                                 └ 203.0.113.1 ── wan 203.0.113.10 server
                                                                   priv 10.77.0.1 ── private
                                                                                     10.77.0.2

The client has two links (two MPTCP subflows per connection, the second by an MPTCP endpoint
with its own routing table), the server one public link (its default route: the egress device
the rate limits apply to) and a private network.  Namespaces are named ``bst<pid>-<role>``; the
fixture kills every process in them and deletes them at the end, also when a test fails.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import bonding
from bonding.lab.delay import tool_path

PYTHONPATH = str(Path(bonding.__file__).resolve().parents[1])
NETPEER = str(Path(__file__).with_name("netpeer.py"))
SERVER_ADDR = "203.0.113.10"
TARGET_ADDR = "198.51.100.10"
PRIVATE_ADDR = "10.77.0.2"
SERVER_PRIVATE_ADDR = "10.77.0.1"
ECHO_PORT = 7
ATTACK_SOURCES = ("192.0.2.31", "192.0.2.32", "192.0.2.33")  # a flood's, beside the client
ATTACK_HOLD_S = 25.0
TOOLS = {"ss-server": "shadowsocks-libev", "ss-tunnel": "shadowsocks-libev",
         "mptcpize": "mptcpize", "iperf3": "iperf3", "nft": "nftables", "tc": "iproute2",
         "ip": "iproute2", "ss": "iproute2", "sing-box": "make deps"}

# The servers' $PATH is bonding.lab.delay.tool_path(): sing-box as tools/install-deps.sh installs
# it, or the lab's copy the proxies' user can run when the checkout is private (asked when a
# test runs, not at import: making that copy is work for root).


def root_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, nftables, tc)"
    missing = [f"{t} ({p})" for t, p in TOOLS.items() if shutil.which(t, path=tool_path()) is None]
    if missing:
        return "missing tools: " + ", ".join(missing)
    return None


def tcp_memory_pressure() -> str | None:
    """Why throughput cannot be measured here (the kernel's TCP memory is under pressure)."""
    try:
        lines = Path("/proc/net/protocols").read_text().splitlines()
        limits = Path("/proc/sys/net/ipv4/tcp_mem").read_text().split()
    except OSError:
        return None
    head = lines[0].split()
    for line in lines[1:]:
        cols = dict(zip(head, line.split(), strict=False))
        if cols.get("protocol") == "TCP" and cols.get("press") == "yes":
            return (f"the host's TCP memory is under pressure ({cols.get('memory')} pages in use, "
                    f"tcp_mem {' '.join(limits)}): every socket is squeezed, rates measured now "
                    "mean nothing (a kernel leak? see dmesg; reboot the machine)")
    return None


def run(cmd: Sequence[str], *, check: bool = True, timeout: float = 30,
        **kw: Any) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False,
                       **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"`{' '.join(cmd)}` failed ({r.returncode}): {r.stderr.strip()}")
    return r


def env(pythonpath: str = PYTHONPATH) -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, e.get("PYTHONPATH")) if p)
    e["PATH"] = tool_path()
    return e


_public: list[str] = []


def public_pythonpath() -> str:
    """A copy of the package that any user can read, for the runs as another user.

    The checkout may sit in a directory only root can enter (`mktemp -d` makes them 0700), and
    then an unprivileged `python -m bonding.server` could not import it.  Removed at exit.
    """
    if not _public:
        top = tempfile.mkdtemp(prefix="bonding-public-")
        os.chmod(top, 0o755)
        shutil.copytree(Path(PYTHONPATH) / "bonding", Path(top) / "bonding",
                        ignore=shutil.ignore_patterns("__pycache__"))
        atexit.register(shutil.rmtree, top, True)
        _public.append(top)
    return _public[0]


def wait_for(pred: Any, timeout: float, what: str, step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


class World:
    def __init__(self, prefix: str, state_dir: Path, proxy: str = "sing-box") -> None:
        self.prefix = prefix
        self.state_dir = state_dir
        self.proxy = proxy  # the server's (bonding-server init --proxy); the clients' likewise
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs = state_dir.parent / f"{prefix}-logs"
        self.supervisor: subprocess.Popen[bytes] | None = None

    def ns(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    @property
    def roles(self) -> list[str]:
        return ["client", "inet", "server", "target", "private"]

    # --- building -------------------------------------------------------------------------------
    def build(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        for r in self.roles:
            run(["ip", "netns", "add", self.ns(r)])
            run(["ip", "-n", self.ns(r), "link", "set", "lo", "up"])
        links = [  # (ns a, dev a, addr a, ns b, dev b, addr b)
            ("client", "eth0", "192.0.2.20/24", "inet", "c0", "192.0.2.1/24"),
            ("client", "eth1", "100.64.77.2/24", "inet", "c1", "100.64.77.1/24"),
            ("server", "wan", f"{SERVER_ADDR}/24", "inet", "s0", "203.0.113.1/24"),
            ("target", "eth0", f"{TARGET_ADDR}/24", "inet", "t0", "198.51.100.1/24"),
            ("server", "priv", f"{SERVER_PRIVATE_ADDR}/24", "private", "eth0",
             f"{PRIVATE_ADDR}/24"),
        ]
        for a, da, aa, b, db, ab in links:
            run(["ip", "link", "add", da, "netns", self.ns(a), "type", "veth", "peer", "name", db,
                 "netns", self.ns(b)])
            for ns, dev, addr in ((a, da, aa), (b, db, ab)):
                run(["ip", "-n", self.ns(ns), "addr", "add", addr, "dev", dev])
                run(["ip", "-n", self.ns(ns), "link", "set", dev, "up"])
        run(["ip", "netns", "exec", self.ns("inet"), "sysctl", "-q", "-w",
             "net.ipv4.ip_forward=1"])
        for ns, gw in (("client", "192.0.2.1"), ("server", "203.0.113.1"),
                       ("target", "198.51.100.1")):
            run(["ip", "-n", self.ns(ns), "route", "add", "default", "via", gw])
        c = ["ip", "-n", self.ns("client")]
        run([*c, "route", "add", "default", "via", "100.64.77.1", "dev", "eth1", "table", "100"])
        run([*c, "rule", "add", "from", "100.64.77.2", "table", "100", "priority", "100"])
        run([*c, "mptcp", "limits", "set", "subflows", "2", "add_addr_accepted", "0"])
        run([*c, "mptcp", "endpoint", "add", "100.64.77.2", "dev", "eth1", "subflow"])
        # The target: iperf3 servers and an echo; the private host and the server: echoes.
        for port in (5201, 5202, 5203):
            self.spawn("target", ["iperf3", "-s", "-p", str(port)], f"iperf3-{port}")
        self.echo("target", "0.0.0.0", ECHO_PORT)
        self.echo("private", "0.0.0.0", ECHO_PORT)
        self.echo("server", "0.0.0.0", 7007)

    def echo(self, role: str, bind: str, port: int) -> None:
        log = self.peer_log(role, port)
        log.write_text("")
        self.spawn(role, [sys.executable, NETPEER, "serve", "--bind", bind, "--port", str(port),
                          "--log", str(log)], f"echo-{role}-{port}")
        wait_for(lambda: "ready" in log.read_text(), 10, f"echo server in {role}")

    def peer_log(self, role: str, port: int) -> Path:
        return self.logs / f"peers-{role}-{port}.log"

    def peers(self, role: str, port: int) -> list[str]:
        return [x for x in self.peer_log(role, port).read_text().splitlines() if x != "ready"]

    def spawn(self, role: str, cmd: Sequence[str], name: str,
              extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        out = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
        p = subprocess.Popen(["ip", "netns", "exec", self.ns(role), *cmd], stdout=out,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env={**env(), **(extra_env or {})})
        out.close()
        self.procs.append(p)
        return p

    # --- bonding-server -------------------------------------------------------------------------
    def cli(self, *args: str, user: int | None = None, check: bool = False,
            timeout: float = 60,
            extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        cmd = ["ip", "netns", "exec", self.ns("server"), sys.executable, "-m", "bonding.server",
               "--state-dir", str(self.state_dir), *args]
        kw: dict[str, Any] = {}
        if user is not None:  # drop root after entering the namespace
            cmd = ["ip", "netns", "exec", self.ns("server"), "setpriv", f"--reuid={user}",
                   f"--regid={user}", "--clear-groups", sys.executable, "-m", "bonding.server",
                   "--state-dir", str(self.state_dir), *args]
            kw["cwd"] = "/"
            return run(cmd, check=check, timeout=timeout, env=env(public_pythonpath()), **kw)
        return run(cmd, check=check, timeout=timeout, env={**env(), **(extra_env or {})}, **kw)

    def cli_json(self, *args: str) -> Any:
        r = self.cli("--json", *args)
        assert r.returncode == 0, f"bonding-server {' '.join(args)}: {r.stderr}"
        return json.loads(r.stdout)

    def start_supervisor(self, extra_env: dict[str, str] | None = None) -> None:
        self.supervisor = self.spawn("server", [sys.executable, "-m", "bonding.server",
                                                "--state-dir", str(self.state_dir), "run"],
                                     "supervisor", extra_env)

    def wait_running(self, names: Sequence[str], timeout: float = 15) -> dict[str, Any]:
        def ok() -> bool:
            st = self.cli_json("status")
            rows = {r["name"]: r for r in st["clients"]}
            return all(rows.get(n, {}).get("running") and rows[n]["listening"] for n in names)
        wait_for(ok, timeout, f"proxies {', '.join(names)} running")
        status: dict[str, Any] = self.cli_json("status")
        return status

    # --- the client side ------------------------------------------------------------------------
    @contextlib.contextmanager
    def tunnel(self, client: dict[str, Any], local_port: int, dest: str, *,
               key: str | None = None, udp_over_tcp: bool = False) -> Iterator[None]:
        """A tunnel (MPTCP, TCP and UDP) in the client: 127.0.0.1:local_port → dest, through
        the client's proxy on the server (``key`` instead of the client's own, to try a wrong
        one; an IPv6 ``dest`` as ``[ADDR]:PORT``).  sing-box speaks every cipher (UDP over TCP
        too), ss-tunnel the older ones."""
        key = client["key"] if key is None else key
        if client["cipher"].startswith("2022-") or udp_over_tcp:
            host, port = dest.rsplit(":", 1)
            host = host.strip("[]")
            conf = self.logs / f"tunnel-{local_port}.json"
            conf.write_text(json.dumps({
                "log": {"level": "warn"},
                "inbounds": [{"type": "direct", "listen": "127.0.0.1",
                              "listen_port": local_port, "override_address": host,
                              "override_port": int(port)}],
                "outbounds": [{"type": "shadowsocks", "server": SERVER_ADDR,
                               "server_port": client["port"], "method": client["cipher"],
                               "password": key, "tcp_multi_path": True,
                               **({"udp_over_tcp": {"enabled": True, "version": 2}}
                                  if udp_over_tcp else {})}]}))
            cmd = ["env", "GODEBUG=multipathtcp=0", shutil.which("sing-box", path=tool_path()) or
                   "sing-box", "run", "--disable-color", "-c", str(conf)]
        else:
            cmd = ["mptcpize", "run", "ss-tunnel", "-s", SERVER_ADDR, "-p",
                   str(client["port"]), "-k", key, "-m", client["cipher"], "-b", "127.0.0.1",
                   "-l", str(local_port), "-L", dest, "-u", "-t", "30"]
        p = self.spawn("client", cmd, f"tunnel-{local_port}")
        try:
            # both listeners: TCP first says nothing of UDP (a datagram sent before the UDP
            # socket is bound is lost without a word; seen once with sing-box)
            wait_for(lambda: len(run(["ip", "netns", "exec", self.ns("client"), "ss", "-Hltun",
                                      f"sport = :{local_port}"]).stdout.splitlines()) >= 2,
                     10, f"tunnel on {local_port} (TCP and UDP)")
            yield
        finally:
            _stop(p)
            self.procs.remove(p)

    def probe(self, local_port: int, udp: bool = False, timeout: float = 3,
              role: str = "client", host: str = "127.0.0.1") -> dict[str, Any]:
        """Send a token to host:local_port from ``role`` (the client: into a tunnel)."""
        cmd = ["ip", "netns", "exec", self.ns(role), sys.executable, NETPEER, "probe",
               "--host", host, "--port", str(local_port), "--timeout", str(timeout)]
        result: dict[str, Any] = json.loads(run([*cmd, *(["--udp"] if udp else [])],
                                                timeout=timeout + 10).stdout)
        return result

    def iperf(self, local_port: int, *, reverse: bool, seconds: int = 6, omit: int = 2,
              bitrate: str | None = None) -> subprocess.Popen[str]:
        cmd = ["ip", "netns", "exec", self.ns("client"), "iperf3", "-c", "127.0.0.1", "-p",
               str(local_port), "-t", str(seconds), "-O", str(omit), "-J",
               *(["-R"] if reverse else []), *(["-b", bitrate] if bitrate else [])]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    @contextlib.contextmanager
    def attack(self, port: int, count: int,
               hold: float = ATTACK_HOLD_S) -> Iterator[Callable[[float], dict[str, Any]]]:
        """``count`` silent connections to the server's ``port`` from each of ATTACK_SOURCES
        (addresses of the client namespace, its link to the internet; one netpeer.py flood
        per source, each within this host's descriptor limit), held ``hold`` seconds; they
        stop by themselves.  Yields a function that waits for them and returns their figures
        per source."""
        for a in ATTACK_SOURCES:
            run(["ip", "-n", self.ns("client"), "addr", "add", f"{a}/24", "dev", "eth0"])
        procs = [subprocess.Popen(
            ["ip", "netns", "exec", self.ns("client"), sys.executable, NETPEER, "flood",
             "--host", SERVER_ADDR, "--port", str(port), "--source", a, "--count", str(count),
             "--hold", str(hold)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for a in ATTACK_SOURCES]

        def results(timeout: float) -> dict[str, Any]:
            stats: dict[str, Any] = {}
            for p in procs:
                out, err = p.communicate(timeout=timeout)
                if p.returncode != 0:
                    raise AssertionError(f"flood failed ({p.returncode}): {err[-2000:]}")
                stats.update(json.loads(out))
            return stats
        try:
            yield results
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                p.wait(30)
            for a in ATTACK_SOURCES:
                run(["ip", "-n", self.ns("client"), "addr", "del", f"{a}/24", "dev", "eth0"],
                    check=False)

    def ttfb(self, local_port: int, count: int, timeout: float = 5) -> list[float | None]:
        """Seconds to the first byte of the reply, per connection into the tunnel."""
        out: list[float | None] = json.loads(run(
            ["ip", "netns", "exec", self.ns("client"), sys.executable, NETPEER, "ttfb",
             "--port", str(local_port), "--count", str(count), "--timeout", str(timeout)],
            timeout=count * (timeout + 1) + 10).stdout)
        return out

    # --- teardown -------------------------------------------------------------------------------
    def down(self) -> None:
        if self.supervisor is not None and self.supervisor.poll() is None:
            self.supervisor.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.supervisor.wait(10)
        for p in self.procs:
            _stop(p)
        existing = run(["ip", "netns", "list"], check=False).stdout.split()
        for r in self.roles:
            ns = self.ns(r)
            if ns not in existing:
                continue
            for _ in range(3):  # bounded: processes started inside the namespaces by others
                pids = run(["ip", "netns", "pids", ns], check=False).stdout.split()
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.kill(int(pid), signal.SIGKILL)
                time.sleep(0.2)
            run(["ip", "netns", "del", ns], check=False)


def _stop(p: subprocess.Popen[Any]) -> None:
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
