"""The operations behind the commands: init, apply, add/remove a client, start/stop, status.

They take a :class:`~bonding.server.store.Store` and a host (:class:`~bonding.server.system.Host`
or a fake) and return data; bonding.server.cli turns that into text or JSON.  Every input is
validated before anything is written; the commands that change state hold the store's lock.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bonding.server import plan
from bonding.server.model import (
    CIPHERS,
    DEFAULT_CIPHER,
    DEFAULT_CONGESTION,
    Client,
    ServerConfig,
    ServerError,
    UsageError,
    default_name,
    new_client,
    pick_port,
    validate_address,
    validate_address6,
    validate_cipher,
    validate_congestion,
    validate_interface,
    validate_name,
    validate_network,
    validate_port,
    validate_proxy,
    validate_rate,
    validate_user,
)
from bonding.server.reconcile import (
    KERNEL_TOOLS,
    PROXY_TOOLS,
    Outcome,
    Step,
    gather_facts,
    reconcile,
    require_tools,
    user_dropin_path,
)
from bonding.server.store import Store, process_alive, read_json
from bonding.server.system import HostAPI

DEFAULT_USER = "bonding-server"  # the prefix: client PORT's proxy runs as bonding-server-PORT

READY_TIMEOUT_S = 10.0


# --- commands -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InitOptions:
    public_address: str | None = None
    public_address6: str | None = None  # None: keep the stored one; "": forget it
    systemd: bool | None = None  # None: keep the stored choice; a fresh init asks the host
    user: str | None = None
    interface: str | None = None
    allow: tuple[str, ...] | None = None
    proxy: str | None = None  # None: keep the stored choice; a fresh init: sing-box if there
    congestion_control: str | None = None  # None: keep the stored choice ("": host default)


def init(host: HostAPI, store: Store, opts: InitOptions) -> Outcome:
    # Syntax first: a bad value is reported before anything is looked at or written.
    address = validate_address(opts.public_address) if opts.public_address else None
    address6 = (validate_address6(opts.public_address6) if opts.public_address6
                else opts.public_address6)
    user = validate_user(opts.user) if opts.user else None
    interface = validate_interface(opts.interface) if opts.interface else None
    allow = None if opts.allow is None else tuple(validate_network(a) for a in opts.allow)
    proxy = validate_proxy(opts.proxy) if opts.proxy else None
    cc = (None if opts.congestion_control is None
          else validate_congestion(opts.congestion_control))
    out = Outcome()
    with store.lock():
        old = store.load_server()
        if proxy is None:
            proxy = old.proxy if old else (
                "sing-box" if host.which("sing-box") else "shadowsocks-libev")
            if not old:
                out.notes.append(f"proxy {proxy} (" + (
                    "installed" if proxy == "sing-box" else "sing-box is not installed") +
                    "; choose with --proxy)")
        require_tools(host, (*PROXY_TOOLS[proxy], *KERNEL_TOOLS))
        unspoken = [c for c in store.clients() if c.cipher not in CIPHERS[proxy]]
        if unspoken:
            raise UsageError(f"{proxy} does not speak the cipher of client(s) " + ", ".join(
                f"{c.name} ({c.cipher})" for c in unspoken) + ": keep --proxy "
                f"{old.proxy if old else 'sing-box'}, or remove and add these clients again")
        systemd = opts.systemd if opts.systemd is not None else (
            old.systemd if old else host.systemd_running())
        if systemd and not host.systemd_running():
            raise ServerError("systemd is not running here: run `bonding-server init "
                              "--no-systemd` and start the proxies with `bonding-server run`")
        if address is None:
            address = old.public_address if old else host.public_address()
            if address is None:
                raise ServerError("cannot tell this server's public address (no route to the "
                                  "internet): pass --public-address ADDR")
            if not old:
                out.notes.append(f"public address {address} (from the routing table; pass "
                                 "--public-address if the clients see another one)")
        user = user or (old.user if old else DEFAULT_USER)
        if interface is not None and not host.link_exists(interface):
            raise UsageError(f"interface {interface!r} does not exist here: `ip link` lists "
                             "the devices")
        if address6 is None:
            address6 = old.public_address6 if old else None
        cfg = ServerConfig(public_address=address, public_address6=address6 or None,
                           systemd=systemd, user=user,
                           interface=interface or (old.interface if old else None),
                           allow=allow if allow is not None else (old.allow if old else ()),
                           proxy=proxy,
                           congestion_control=cc if cc is not None else (
                               old.congestion_control if old else DEFAULT_CONGESTION))
        if cfg != old:
            store.save_server(cfg)
        out.steps.append(Step("settings", cfg != old, _describe(cfg)))
        clients = store.clients()
        out.steps += reconcile(host, store, cfg, clients, gather_facts(host, store, cfg))
    # Running proxies take new settings: systemd restarts a unit only when its command or its
    # config changed; the supervisor, told always, restarts only those proxies itself.
    proxy_steps = {"proxy configs", f"file {plan.UNIT_DIR}/{plan.TEMPLATE}"}
    if cfg.systemd and clients and any(s.changed and s.what in proxy_steps for s in out.steps):
        host.systemctl("try-restart", *(plan.unit_name(c.name) for c in clients))
    elif not cfg.systemd and out.changed and store.supervisor_pid() is not None:
        out.notes += _tell_supervisor(host, store, {})
    return out


def _describe(cfg: ServerConfig) -> str:
    mode = "systemd" if cfg.systemd else "no systemd (`bonding-server run` supervises)"
    allow = f", allow {' '.join(cfg.allow)}" if cfg.allow else ""
    address6 = f", IPv6 address {cfg.public_address6}" if cfg.public_address6 else ""
    return (f"proxy {cfg.proxy}, address {cfg.public_address}{address6}, {mode}, "
            f"proxy users {cfg.user}-PORT, "
            f"interface {cfg.interface or 'of the default route'}{allow}, "
            f"congestion control {cfg.congestion_control or 'of the host'}")


def apply(host: HostAPI, store: Store) -> Outcome:
    with store.lock():
        cfg = store.require_server()
        clients = store.clients()
        facts = gather_facts(host, store, cfg, need_proxy_tools=bool(clients))
        return Outcome(reconcile(host, store, cfg, clients, facts))


@dataclass(frozen=True)
class AddOptions:
    name: str | None = None
    rate_mbit: str | None = None
    port: str | None = None
    cipher: str | None = None  # None: the proxy's DEFAULT_CIPHER


def add_client(host: HostAPI, store: Store, opts: AddOptions) -> tuple[Client, ServerConfig,
                                                                        list[str]]:
    name = validate_name(opts.name) if opts.name is not None else None
    rate = validate_rate(opts.rate_mbit) if opts.rate_mbit is not None else None
    port = validate_port(opts.port) if opts.port is not None else None
    notes: list[str] = []
    with store.lock():
        cfg = store.require_server()
        cipher = validate_cipher(opts.cipher or DEFAULT_CIPHER[cfg.proxy], cfg.proxy)
        facts = gather_facts(host, store, cfg)
        require_tools(host, KERNEL_TOOLS)
        clients = store.clients()
        names = {c.name for c in clients}
        if name is None:
            name = default_name(names)
        elif name in names:
            raise UsageError(f"client {name!r} exists already: choose another --name, or "
                             f"`bonding-server remove-client {name}` first")
        ports = {c.port: c.name for c in clients}
        if port is None:
            port = pick_port(ports, host.port_free)
        elif port in ports:
            raise UsageError(f"port {port} belongs to client {ports[port]!r}: choose another "
                             "--port or leave it out to take a free one")
        elif not host.port_free(port):
            raise UsageError(f"port {port} is in use by another program (`ss -tulpn sport = "
                             f":{port}` shows it): choose another --port or leave it out")
        client = new_client(name, port, rate, cipher)
        store.write(client)
        try:
            reconcile(host, store, cfg, [*clients, client], facts)
            if cfg.systemd:
                host.systemctl("enable", "--now", plan.unit_name(client.name))
        except (ServerError, OSError) as e:
            store.delete(client.name)
            with contextlib.suppress(Exception):  # best effort: the error below matters
                reconcile(host, store, cfg, clients, facts)
            raise ServerError(f"client {client.name!r} not added, nothing kept: {e}") from e
    if not cfg.systemd:
        notes += _tell_supervisor(host, store, {client.name: client.port})
    return client, cfg, notes


def remove_client(host: HostAPI, store: Store, name: str) -> list[str]:
    validate_name(name)
    notes: list[str] = []
    with store.lock():
        cfg = store.require_server()
        if not store.exists(name):
            raise UsageError(f"unknown client {name!r}: `bonding-server list` shows the clients")
        if cfg.systemd:
            host.systemctl("disable", "--now", plan.unit_name(name))
            host.remove_file(user_dropin_path(name))
        store.delete(name)
        clients = store.clients()
        reconcile(host, store, cfg, clients,
                  gather_facts(host, store, cfg, need_proxy_tools=bool(clients)))
    if not cfg.systemd:
        notes += _tell_supervisor(host, store, {})
    return notes


def list_clients(store: Store) -> list[dict[str, Any]]:
    store.require_server()
    return [{"name": c.name, "port": c.port, "rate_mbit": c.rate_mbit, "cipher": c.cipher,
             "created": c.created} for c in store.clients()]


def show_client(store: Store, name: str) -> tuple[Client, ServerConfig]:
    validate_name(name)
    cfg = store.require_server()
    return store.load(name), cfg


# --- the no-systemd supervisor, seen from the other commands -------------------------------------
def supervisor_state(store: Store) -> dict[str, Any] | None:
    pid = store.supervisor_pid()
    if pid is None:
        return None
    try:
        raw = read_json(store.supervisor_file)
    except (ValueError, OSError):
        raw = None
    state: dict[str, Any] = raw if isinstance(raw, dict) and raw.get("pid") == pid else {}
    state.setdefault("pid", pid)
    state.setdefault("clients", {})
    return state


def _tell_supervisor(host: HostAPI, store: Store, expect: dict[str, int]) -> list[str]:
    """SIGHUP the running supervisor and wait until it runs exactly the recorded clients."""
    pid = store.supervisor_pid()
    if pid is None:
        return ["no supervisor is running: `bonding-server run` (foreground) or "
                "`bonding-server start` runs the proxies"]
    before = (supervisor_state(store) or {}).get("generation", 0)
    os.kill(pid, signal.SIGHUP)
    names = set(store.names())
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        st = supervisor_state(store)
        if st is None:
            return [f"the supervisor (pid {pid}) went away"]
        running = {n for n, c in st["clients"].items() if c.get("state") == "running"}
        if (st.get("generation", 0) > before and set(st["clients"]) == names
                and all(n in running and not host.port_free(p) for n, p in expect.items())):
            return []
        time.sleep(0.1)
    return [f"the supervisor (pid {pid}) has not picked up the change within "
            f"{READY_TIMEOUT_S:g} s: see its log"]


# What the background supervisor gets of the caller's environment: where the tools are, the
# language of its log; nothing else of root's (credentials, agents, tokens) reaches it.
SUPERVISOR_ENV = ("PATH", "LANG", "LC_ALL", "TZ")


def _python_env() -> dict[str, str]:
    env = {k: v for k in SUPERVISOR_ENV if (v := os.environ.get(k))}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return env


def start(host: HostAPI, store: Store) -> Outcome:
    out = apply(host, store)
    cfg = store.require_server()
    clients = store.clients()
    if cfg.systemd:
        for c in clients:
            host.systemctl("enable", "--now", plan.unit_name(c.name))
        out.notes.append(f"started {len(clients)} proxy unit(s)")
        return out
    pid = store.supervisor_pid()
    if pid is not None:
        out.notes += _tell_supervisor(host, store, {c.name: c.port for c in clients})
        out.notes.append(f"the supervisor runs already (pid {pid})")
        return out
    log = store.run_dir / "supervisor.log"
    with open(log, "ab") as f:
        os.chmod(log, 0o600)
        subprocess.Popen(
            [sys.executable, "-m", "bonding.server", "--state-dir", str(store.root), "run"],
            stdin=subprocess.DEVNULL, stdout=f, stderr=f, start_new_session=True,
            env=_python_env())
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        st = supervisor_state(store)
        if st is not None and all(
                st["clients"].get(c.name, {}).get("state") == "running" for c in clients):
            out.notes.append(f"supervisor started (pid {st['pid']}), log {log}")
            return out
        time.sleep(0.1)
    raise ServerError(f"the supervisor did not come up within {READY_TIMEOUT_S:g} s: see {log}")


def stop(host: HostAPI, store: Store) -> list[str]:
    cfg = store.require_server()
    if cfg.systemd:
        names = store.names()
        for n in names:
            host.systemctl("stop", plan.unit_name(n))
        return [f"stopped {len(names)} proxy unit(s)"]
    pid = store.supervisor_pid()
    if pid is None:
        return ["no supervisor is running"]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if store.supervisor_pid() is None and not process_alive(pid):
            return [f"supervisor (pid {pid}) stopped"]
        time.sleep(0.1)
    raise ServerError(f"the supervisor (pid {pid}) did not stop within 15 s: kill it "
                      f"(kill {pid}) and its proxy processes")


# --- status ---------------------------------------------------------------------------------------
def status(host: HostAPI, store: Store,
           sockets: Callable[[], tuple[dict[int, int], dict[int, int]]]) -> dict[str, Any]:
    cfg = store.require_server()
    clients = store.clients()
    counters = host.nft_counters()
    mptcp, tcp = sockets()
    sup = None if cfg.systemd else supervisor_state(store)
    rows = []
    for c in clients:
        row: dict[str, Any] = {"name": c.name, "port": c.port, "rate_mbit": c.rate_mbit}
        if cfg.systemd:
            show = _systemd_show(host, plan.unit_name(c.name))
            state = show.get("ActiveState", "unknown")
            pid = int(show.get("MainPID", "0") or 0)
            restarts = show.get("NRestarts", "")
            row.update(running=state == "active", state=state, pid=pid or None,
                       restarts=int(restarts) if restarts.isdigit() else None)
        else:
            info = (sup or {}).get("clients", {}).get(c.name, {})
            pid = info.get("pid")
            alive = bool(pid) and process_alive(int(pid))
            row.update(running=info.get("state") == "running" and alive,
                       state=info.get("state", "stopped") if sup else "no supervisor",
                       pid=pid if alive else None, restarts=info.get("restarts"))
        row.update(
            listening=not host.port_free(c.port), connections=mptcp.get(c.port, 0),
            subflows=tcp.get(c.port, 0),
            bytes_in=counters.get(plan.counter_name(c.name, "in"), (0, None))[1],
            bytes_out=counters.get(plan.counter_name(c.name, "out"), (0, None))[1])
        rows.append(row)
    return {"address": cfg.public_address, "address6": cfg.public_address6,
            "proxy": cfg.proxy,
            "mode": "systemd" if cfg.systemd else "supervisor",
            "supervisor_pid": None if cfg.systemd else (sup or {}).get("pid"),
            "refused_packets": counters.get("refused", (None, 0))[0], "clients": rows}


def _systemd_show(host: HostAPI, unit: str) -> dict[str, str]:
    text = host.systemctl("show", "-p", "ActiveState,MainPID,NRestarts", unit, check=False)
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def socket_counts() -> tuple[dict[int, int], dict[int, int]]:
    """Established MPTCP connections and TCP subflows per local port (from `ss`)."""
    def count(args: list[str]) -> dict[int, int]:
        from bonding.server.system import run

        out: dict[int, int] = {}
        for line in run(["ss", "-H", "-n", *args, "state", "established"],
                        check=False).stdout.splitlines():
            words = line.split()
            local = next((w for w in words if ":" in w), None)
            port = local.rsplit(":", 1)[1] if local else ""
            if port.isdigit():
                out[int(port)] = out.get(int(port), 0) + 1
        return out
    return count(["-M"]), count(["-t"])

