"""Small helper processes for the scratch-root tests: a TCP echo server in one network
namespace (with `greet`, it first says whom it sees: "peer ADDRESS") and a client holding one
connection open in another (each bounded in time); and a client that keeps one connection busy
(an echo exchange every 20 ms) while the test does something to the router, saying on each
`report` how it went."""

from __future__ import annotations

import contextlib
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
def serve(c, peer):
    with c:
        if sys.argv[3:] == ["greet"]:
            c.sendall(("peer %s\n" % peer).encode())
        while data := c.recv(65536):
            c.sendall(data)
while True:
    try:
        c, peer = s.accept()
    except TimeoutError:
        break
    threading.Thread(target=serve, args=(c, peer[0]), daemon=True).start()
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

# One connection to ECHO_SERVER ... greet: its first line (who the server saw), then 1 KiB out
# and back every 20 ms.  A line on stdin: "ok ECHOES LONGEST_WAIT_MS" (since the last report), or
# "broken WHY" once the connection failed (it then ends).  Bounded: 300 s.
STREAM_CLIENT = r"""
import select, socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
f = c.makefile("rb")
print(f.readline().decode().strip(), flush=True)
chunk = b"x" * 1023 + b"\n"
n, longest, last, end = 0, 0.0, time.monotonic(), time.monotonic() + 300
while time.monotonic() < end:
    if select.select([sys.stdin], [], [], 0)[0]:
        if not sys.stdin.readline():
            break
        print("ok", n, round(longest * 1000), flush=True)
        n, longest = 0, 0.0
    try:
        c.sendall(chunk)
        got = f.readline()
    except OSError as e:
        print("broken", e, flush=True)
        sys.exit(1)
    if got != chunk:
        print("broken", "closed by the other end" if not got else "garbled", flush=True)
        sys.exit(1)
    now = time.monotonic()
    longest, last, n = max(longest, now - last), now, n + 1
    time.sleep(0.02)
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
                with contextlib.suppress(BrokenPipeError):  # a line it never read
                    f.close()
