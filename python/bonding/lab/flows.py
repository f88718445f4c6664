"""Traffic run inside the lab's namespaces by a process of this package (``python3 -m
bonding.lab.traffic …``): a service, a request, a loop of new connections timed from a fault,
and the voice stream."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from bonding.lab.commands import nsx
from bonding.lab.delay import python_env
from bonding.lab.model import LabError
from bonding.lab.topology import Lab
from bonding.lab.voice import VOICE_PPS


class NewConnections:
    """`until_answer` run in a lab namespace, started beforehand so that no process start-up
    is timed: `go(t0)` right after the fault, then `result()`."""

    def __init__(self, lab: Lab, role: str, kind: str, host: str, port: int, expect: str,
                 limit: float = 15.0) -> None:
        st = lab.state or lab.load()
        self.limit = limit
        self.proc = subprocess.Popen(
            nsx(st.namespaces[role], sys.executable, "-m", "bonding.lab.traffic", "until", kind,
                host, str(port), expect, "--limit", str(limit)),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=python_env())
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            self.close()
            raise LabError(f"the connection loop did not start in {role}")

    def go(self, t0: float) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{t0!r}\n")
        self.proc.stdin.flush()

    def result(self) -> float | None:
        """Seconds from t0 to the first expected answer, None when none came in time."""
        out, _ = self.proc.communicate(timeout=self.limit + 10)
        return None if out.strip() in ("", "none") else float(out)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class Stream:
    """stream() run in a lab namespace (a background process); result() waits for its report."""

    def __init__(self, lab: Lab, role: str, host: str, port: int, seconds: float,
                 pps: float = VOICE_PPS) -> None:
        st = lab.state or lab.load()
        self.seconds = seconds
        self.proc = subprocess.Popen(
            nsx(st.namespaces[role], sys.executable, "-m", "bonding.lab.traffic", "stream", host,
                str(port), "--pps", f"{pps:g}", "--seconds", f"{seconds:g}"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=python_env())

    def result(self) -> dict[str, Any]:
        try:
            out, err = self.proc.communicate(timeout=self.seconds + 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise LabError("the UDP stream did not end") from None
        if self.proc.returncode != 0:
            raise LabError(f"the UDP stream failed: {err.strip()[-300:]}")
        data: dict[str, Any] = json.loads(out)
        return data

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


class Service:
    """A service of this module running in a lab namespace (a context manager)."""

    def __init__(self, lab: Lab, role: str, kind: str, port: int) -> None:
        st = lab.state or lab.load()
        self.proc = subprocess.Popen(
            nsx(st.namespaces[role], sys.executable, "-m", "bonding.lab.traffic", "serve", kind,
                "--port", str(port)),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=python_env())
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.close()
            raise LabError(f"service {kind} did not start in {role}: {line.strip()}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _client_in(lab: Lab, role: str, args: Sequence[str], timeout: float,
               what: str) -> str:
    """A Python client (`python3 ARGS…`) run in a lab namespace: its output, or LabError."""
    st = lab.state or lab.load()
    try:
        r = subprocess.run(nsx(st.namespaces[role], sys.executable, *args),
                           capture_output=True, text=True, timeout=timeout, env=python_env(),
                           check=False)
    except subprocess.TimeoutExpired:  # a loaded host: the client itself never finished
        raise LabError(f"{what} from {role}: no answer within {timeout:g} s") from None
    if r.returncode != 0:
        raise LabError(f"{what} from {role}: {r.stderr.strip()[-300:]}")
    return r.stdout.strip()


def ask_from(lab: Lab, role: str, kind: str, host: str, port: int,
             timeout: float = 3.0) -> str:
    """ask() run in a lab namespace; raises LabError when no answer came."""
    return _client_in(lab, role, ["-m", "bonding.lab.traffic", "ask", kind, host, str(port),
                                  "--timeout", str(timeout)], timeout + 10,
                      f"{kind} {host}:{port}")


def first_answer_from(lab: Lab, role: str, host: str, port: int) -> tuple[str, float]:
    """services.first_answer() run in a lab namespace: (answer | 'refused' | 'timeout', ms)."""
    script = ("import sys; from bonding.lab.services import first_answer as f; "
              "a, ms = f(sys.argv[1], int(sys.argv[2])); print(f'{a}|{ms:.2f}')")
    out = _client_in(lab, role, ["-c", script, host, str(port)], 15, f"UDP {host}:{port}")
    answer, ms = out.rsplit("|", 1)
    return answer, float(ms)


def try_ask_from(lab: Lab, role: str, kind: str, host: str, port: int,
                 timeout: float = 3.0) -> str | None:
    """ask_from(), or None when no answer came."""
    try:
        return ask_from(lab, role, kind, host, port, timeout)
    except LabError:
        return None


