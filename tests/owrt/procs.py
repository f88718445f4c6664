"""Small helper processes for the scratch-root tests: a TCP echo server in one network
namespace and a client holding one connection open in another (each bounded in time)."""

from __future__ import annotations

import subprocess
import sys

from bonding.lab.topology import nsx

ECHO_SERVER = r"""
import socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(4)
s.settimeout(300)
print("listening", flush=True)
def serve(c):
    with c:
        while data := c.recv(65536):
            c.sendall(data)
while True:
    try:
        c, _ = s.accept()
    except TimeoutError:
        break
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

CLIENT = r"""
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
print("connected", c.getsockname()[0], flush=True)
for line in sys.stdin:
    c.sendall(line.encode())
    got = b""
    while not got.endswith(b"\n"):
        more = c.recv(4096)
        if not more:
            print("closed", flush=True)
            sys.exit(1)
        got += more
    print(got.decode().strip(), flush=True)
"""


class Helper:
    """A Python one-file program in a network namespace, spoken to line by line."""

    def __init__(self, ns: str, code: str, *args: str) -> None:
        self.proc = subprocess.Popen(nsx(ns, sys.executable, "-S", "-c", code, *args),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def readline(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def ask(self, line: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.readline()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                f.close()
