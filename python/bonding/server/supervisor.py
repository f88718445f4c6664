"""`bonding-server run`: the foreground supervisor where there is no systemd (the lab, CI).

One proxy per client, each as a system user of its own (PREFIX-PORT, model.proxy_user), with
only PATH (and the proxy's own variables) in its environment: ``sing-box run -c stdin`` started
as that user with its config (STATE/run/NAME.sing-box.json, root's) on its standard input, or
``mptcpize run ss-server -c STATE/run/NAME.ss.json -a USER``, which reads its config and binds
as root, then drops to the user.  Either way what the proxy opens towards the internet belongs
to the client's user, whose connections the firewall filters; no proxy can ptrace another or
read its memory, environment or key.  A proxy that dies is restarted after 1 s, then 2, 4 … up to
30 s while it keeps dying; the back-off resets once it has run 30 s.  SIGHUP re-reads the
records and the settings (re-applying the firewall and shaping, starting new clients, stopping
removed ones, restarting changed ones); SIGTERM or SIGINT stops every proxy and exits.  Between
times it runs the handshake guard (bonding.server.guard) over its proxies.  The
supervisor holds a flock on STATE/run/supervisor.pid while it lives and writes its view to
STATE/run/supervisor.json.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import pwd
import resource
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from bonding.server import congestion, plan, reconcile
from bonding.server.guard import Guard
from bonding.server.model import Client, ServerConfig, ServerError, proxy_user
from bonding.server.store import Store, atomic_write
from bonding.server.system import HostAPI

log = logging.getLogger("bonding-server")

TICK_S = 0.2
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
STABLE_S = 30.0
STOP_GRACE_S = 5.0


@dataclass
class Proxy:
    client: Client
    run: plan.ProxyRun
    config: bytes  # what the proxy read: a change (e.g. IPv6 appearing) restarts it
    config_path: Path
    proc: subprocess.Popen[bytes] | None = None
    state: str = "starting"  # running, restarting
    restarts: int = 0
    since: float = 0.0
    next_start: float = 0.0
    backoff: float = BACKOFF_FIRST_S
    last_exit: int | None = None
    started_mono: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.proc.pid if self.proc else None, "state": self.state,
                "restarts": self.restarts, "since": self.since, "port": self.client.port,
                "last_exit": self.last_exit}


# The proxies' whole environment (with ProxyRun.env): none of the supervisor's variables.
PROXY_ENV: dict[str, str] = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


def _set_nofile() -> None:
    """Give the proxies (who inherit it) plan.NOFILE descriptors, soft and hard alike (as root
    the hard limit may be raised; sing-box raises its soft limit to the hard one).  The
    firewall's per-source limit (plan.LIMIT_CONNS) stays far below it."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    for limits in ((plan.NOFILE, plan.NOFILE), (min(hard, plan.NOFILE), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
            return
        except (ValueError, OSError):
            continue


class Supervisor:
    def __init__(self, store: Store, host: HostAPI) -> None:
        self.store = store
        self.host = host
        self.proxies: dict[str, Proxy] = {}
        self.stopping = False
        self.reload_wanted = False
        self.generation = 0
        self.started = time.time()
        self._pid_fd: int | None = None
        self._dirty = True
        self.guard = Guard()
        # what reload() last applied: the congestion step runs again from it every REFRESH_S
        self._applied: tuple[ServerConfig, list[Client], plan.Facts] | None = None
        self._cc_next = 0.0

    # --- signals -------------------------------------------------------------------------------
    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self.reload_wanted = True

    # --- lifetime ------------------------------------------------------------------------------
    def _claim(self) -> None:
        self.store.ensure_dirs()
        fd = os.open(self.store.pid_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            pid = self.store.supervisor_pid()
            raise ServerError(f"a supervisor runs already (pid {pid}) for {self.store.root}: "
                              "`bonding-server stop` stops it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._pid_fd = fd

    def run(self) -> int:
        cfg = self.store.require_server()
        if cfg.systemd:
            raise ServerError("this server uses systemd: its proxies run as "
                              "bonding-server@NAME units (`bonding-server start`/`stop`); "
                              "`run` is for `init --no-systemd`")
        self._claim()
        _set_nofile()
        old = {s: signal.signal(s, self._on_stop) for s in (signal.SIGTERM, signal.SIGINT)}
        old[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_hup)
        try:
            log.info("supervisor %d for %s", os.getpid(), self.store.root)
            self.reload()
            while not self.stopping:
                if self.reload_wanted:
                    self.reload_wanted = False
                    self.reload()
                self.tick()
                if self._dirty:
                    self.write_status()
                time.sleep(TICK_S)
        finally:
            self.stop_all()
            for s, h in old.items():
                signal.signal(s, h)
            with contextlib.suppress(OSError):
                self.store.supervisor_file.unlink()
            if self._pid_fd is not None:
                with contextlib.suppress(OSError):
                    self.store.pid_file.unlink()
                os.close(self._pid_fd)
        log.info("supervisor stopped")
        return 0

    # --- work ----------------------------------------------------------------------------------
    def reload(self) -> None:
        """Re-read settings and records, re-apply the kernel state, match the processes."""
        try:
            with self.store.lock():
                cfg = self.store.require_server()
                clients = self.store.clients()
                facts = reconcile.gather_facts(self.host, self.store, cfg)
                steps = reconcile.reconcile(self.host, self.store, cfg, clients, facts)
        except ServerError as e:
            log.error("reload failed, keeping the proxies as they are: %s", e)
            self.generation += 1
            self._dirty = True
            return
        for s in steps:
            if s.changed:
                log.info("applied %s: %s", s.what, s.detail)
        self._applied = (cfg, clients, facts)
        self._cc_next = time.monotonic() + congestion.REFRESH_S
        wanted = {c.name: self._proxy(cfg, c, facts) for c in clients}
        for name in list(self.proxies):
            p, w = self.proxies[name], wanted.get(name)
            if w is None or (w.client, w.run, w.config) != (p.client, p.run, p.config):
                log.info("client %s: %s", name, "removed" if w is None else "changed")
                self._terminate([p])
                del self.proxies[name]
        for name, w in wanted.items():
            if name not in self.proxies:
                self.proxies[name] = w
                self._spawn(w)
        self.generation += 1
        self._dirty = True

    def _proxy(self, cfg: ServerConfig, c: Client, facts: plan.Facts) -> Proxy:
        path = self.store.proxy_config_path(c.name, plan.config_suffix(cfg.proxy))
        return Proxy(c, plan.proxy_run(cfg.proxy, facts, str(path), proxy_user(cfg.user, c)),
                     plan.proxy_config(cfg.proxy, c, facts.ipv6), path)

    def _spawn(self, p: Proxy) -> None:
        r = p.run
        try:
            ids: dict[str, Any] = {}
            if r.user is not None:
                pw = pwd.getpwnam(r.user)
                ids = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
            with (open(p.config_path, "rb") if r.config_on_stdin
                  else open(os.devnull, "rb")) as stdin:
                p.proc = subprocess.Popen(r.argv, stdin=stdin, start_new_session=True,
                                          env={**PROXY_ENV, **r.env}, **ids)
        except (OSError, KeyError) as e:
            log.error("client %s: cannot start %s: %s", p.client.name, r.argv[0], e)
            p.proc = None
            self._schedule_restart(p, time.monotonic())
            return
        p.state = "running"
        p.since = time.time()
        p.started_mono = time.monotonic()
        log.info("client %s: %s on port %d (pid %d)", p.client.name, r.program, p.client.port,
                 p.proc.pid)
        self._dirty = True

    def _schedule_restart(self, p: Proxy, now: float) -> None:
        p.state = "restarting"
        p.next_start = now + p.backoff
        p.backoff = min(p.backoff * 2, BACKOFF_MAX_S)
        self._dirty = True

    def tick(self) -> None:
        now = time.monotonic()
        for p in self.proxies.values():
            if p.state == "running" and p.proc is not None:
                code = p.proc.poll()
                if code is None:
                    if now - p.started_mono > STABLE_S:
                        p.backoff = BACKOFF_FIRST_S
                    continue
                p.last_exit = code
                log.warning("client %s: proxy (pid %d) exited with %d; restart in %g s",
                            p.client.name, p.proc.pid, code, p.backoff)
                p.proc = None
                self._schedule_restart(p, now)
            elif p.state == "restarting" and now >= p.next_start:
                p.restarts += 1
                self._spawn(p)
        self.guard.tick({p.client.port: p.proc.pid for p in self.proxies.values()
                         if p.state == "running" and p.proc is not None})
        if self._applied is not None and now >= self._cc_next:
            self._cc_next = now + congestion.REFRESH_S
            self._refresh_routes(*self._applied)

    def _refresh_routes(self, cfg: ServerConfig, clients: list[Client],
                        facts: plan.Facts) -> None:
        """Copy the main table's routes again when they changed (a DHCP lease, an admin)."""
        try:
            step = reconcile.congestion_step(self.host, cfg, clients, facts)
        except ServerError as e:
            log.error("%s", e)
            return
        if step.changed:
            log.info("applied %s: %s", step.what, step.detail)

    def _terminate(self, procs: list[Proxy]) -> None:
        live = [p.proc for p in procs if p.proc is not None and p.proc.poll() is None]
        for proc in live:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in live:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for p in procs:
            p.proc = None
            p.state = "stopped"

    def stop_all(self) -> None:
        self._terminate(list(self.proxies.values()))
        self._dirty = True

    def write_status(self) -> None:
        data = {"pid": os.getpid(), "started": self.started, "generation": self.generation,
                "clients": {n: p.to_json() for n, p in sorted(self.proxies.items())}}
        atomic_write(self.store.supervisor_file,
                     (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
        self._dirty = False
