"""The lab's long-running processes: ubusd and bondingd on the router, `bonding-server` (and
its proxies) on the aggregation servers; starting, stopping and driving them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bonding.lab.base import LabBase
from bonding.lab.commands import kill_netns, kill_wait, listening, nsx
from bonding.lab.delay import python_env
from bonding.lab.model import (
    CLIENT_NAME,
    SERVER2_ADDR,
    SERVER_ADDR,
    SERVER_ADDR6,
    LabError,
    find_ubusd,
)


class Processes(LabBase):
    """ubusd, bondingd and the servers' `bonding-server run`."""

    def start_ubusd(self) -> str | None:
        """Run a real ubusd in the router namespace when the OpenWrt userland is there."""
        st = self.state or self.load()
        ubusd = find_ubusd()
        if ubusd is None:
            return None
        sock = Path(st.state_dir) / "ubus.sock"
        log = open(Path(st.state_dir) / "ubusd.log", "ab")  # noqa: SIM115
        try:
            proc = subprocess.Popen(nsx(st.namespaces["router"], str(ubusd), "-s", str(sock)),
                                    stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + 5
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise LabError(f"{ubusd} did not create {sock}; see {st.state_dir}/ubusd.log")
            time.sleep(0.02)
        st.pids["ubusd"] = proc.pid
        st.ubus_socket = str(sock)
        self.save()
        return st.ubus_socket

    def start_daemon(self, *args: str) -> int:
        st = self.state or self.load()
        if st.openwrt:
            raise LabError("the OpenWrt router's bondingd runs under procd: "
                           "/etc/init.d/bonding start in the router (Lab.owrt_root().sh)")
        if st.ubus_socket and "--ubus-socket" not in args:
            args = ("--ubus-socket", st.ubus_socket, *args)
        log = open(st.daemon_log, "ab")  # noqa: SIM115
        try:
            proc = subprocess.Popen(
                nsx(st.namespaces["router"], sys.executable, "-m", "bonding.daemon",
                    "--config-dir", st.config_dir, "--run-dir", st.run_dir, *args),
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=python_env(),
                start_new_session=True)
        finally:
            log.close()
        st.daemon_pid = proc.pid
        self.save()
        return proc.pid

    def stop_daemon(self, timeout: float = 5.0) -> None:
        st = self.state or self.load()
        if st.daemon_pid is None:
            return
        kill_wait(st.daemon_pid, timeout)
        st.daemon_pid = None
        self.save()


    # --- the aggregation servers -------------------------------------------------------------
    def _server_dir(self, role: str) -> str:
        st = self.state or self.load()
        assert st.server_state_dir is not None
        return st.server_state_dir if role == "server" else str(Path(st.state_dir) / role)

    def server_cli(self, *args: str, timeout: float = 60,
                   role: str = "server") -> subprocess.CompletedProcess[str]:
        """`bonding-server --state-dir <lab>/server ARGS` in the server namespace (`role`)."""
        st = self.state or self.load()
        cmd = nsx(st.namespaces[role], sys.executable, "-m", "bonding.server.cli",
                  "--state-dir", self._server_dir(role), *args)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           env=python_env(), check=False)
        if r.returncode != 0:
            raise LabError(f"bonding-server {' '.join(args)} failed ({r.returncode}): "
                           f"{(r.stderr or r.stdout).strip()}")
        return r

    def _setup_server(self, role: str = "server") -> dict[str, Any]:
        """bonding-server as on a VPS: init, add-client (its UCI and key), run."""
        st = self.state
        assert st is not None
        st.proxy = True
        st.server_state_dir = str(Path(st.state_dir) / "server")
        self.save()
        address = ["--public-address", SERVER_ADDR, "--public-address6", SERVER_ADDR6] \
            if role == "server" else ["--public-address", SERVER2_ADDR]
        self.server_cli("init", "--no-systemd", *address, "--proxy",
                        st.backend, role=role)
        client: dict[str, Any] = json.loads(
            self.server_cli("add-client", "--name", CLIENT_NAME, "--json", role=role).stdout)
        st.client_ports[role] = int(client["port"])
        if role == "server":
            st.client_port = int(client["port"])
        self.start_server(role)
        return client

    def start_server(self, role: str = "server") -> int:
        """`bonding-server run` (its proxies) in a server namespace; waits until it listens."""
        st = self.state or self.load()
        port = st.client_ports[role]
        log = open(Path(st.state_dir) / f"bonding-{role}.log", "ab")  # noqa: SIM115
        try:
            proc = subprocess.Popen(
                nsx(st.namespaces[role], sys.executable, "-m", "bonding.server.cli",
                    "--state-dir", self._server_dir(role), "run"),
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=python_env(),
                start_new_session=True)
        finally:
            log.close()
        st.pids[f"bonding-{role}"] = proc.pid
        self.save()
        deadline = time.monotonic() + 10
        while not listening(st.namespaces[role], port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise LabError(f"bonding-server run did not listen on port {port}; "
                               f"see {st.state_dir}/bonding-{role}.log")
            time.sleep(0.05)
        return proc.pid

    def stop_server(self, role: str = "server", timeout: float = 5.0) -> None:
        """Kill every process of a server namespace at once (`bonding-server run` and its
        proxies, SIGKILL): the server's proxy is gone, as in a crash."""
        st = self.state or self.load()
        ns = st.namespaces[role]
        st.pids.pop(f"bonding-{role}", None)
        self.save()
        if not kill_netns(ns, (signal.SIGKILL,), timeout):
            raise LabError(f"processes of {ns} still alive after SIGKILL")

