"""Debian's headless Chromium, driven over the DevTools protocol on a pipe, for tests.

Chromium runs with ``--remote-debugging-pipe``: it reads protocol commands on its fd 3 and
writes answers and events on its fd 4, NUL-separated JSON.  No port is opened, so the browser can
live in a test's network namespace (started under ``nsenter --net``) while the test talks to it
from outside.  No browser is downloaded: this is the system's ``chromium`` (Debian package).

:class:`Browser` starts it and attaches to its page (one flattened session); :meth:`Browser.call`
sends a command and waits for its answer; everything the page reports is kept:
``exceptions`` (Runtime.exceptionThrown), ``console_errors`` (console.error and Log entries of
level error) and ``requests`` (the network log: every request with its method, URL, post data,
HTTP status and whether it failed; the answers of JSON-RPC requests are read as they arrive).
:meth:`Browser.rpc_calls` gives every ubus call of a page with its answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "chromium")


class BrowserError(Exception):
    """Chromium did not start, a command failed, or a wait timed out."""


@dataclass
class Request:
    """One entry of the network log."""

    request_id: str
    method: str
    url: str
    post_data: str | None
    status: int | None = None
    failed: str | None = None  # Network.loadingFailed's errorText
    finished: bool = False
    loader: str = ""  # the document it belongs to (its loaderId)
    left: bool = False  # still going when its document was left: not part of any page
    body: str | None = None  # read as soon as it finished (JSON-RPC requests only)
    read: threading.Event = field(default_factory=threading.Event)


@dataclass
class RpcCall:
    """One ubus call of a JSON-RPC request to /ubus (a batch gives several)."""

    obj: str
    method: str
    args: dict[str, Any]
    reply: dict[str, Any] | None  # the JSON-RPC answer to this call
    http_status: int | None
    failed: str | None

    def ok(self) -> bool:
        """Answered, with ubus status 0 (rpc's `expect` of LuCI reads [0, data])."""
        if self.failed or self.http_status != 200 or self.reply is None:
            return False
        if "error" in self.reply:
            return False
        result = self.reply.get("result")
        return isinstance(result, list) and bool(result) and result[0] == 0


@dataclass
class Page:
    exceptions: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    requests: dict[str, Request] = field(default_factory=dict)
    loader: str = ""  # the loaderId of its newest document


def chromium() -> str:
    for c in CHROMIUM_CANDIDATES:
        path = shutil.which(c) or (c if Path(c).is_file() else None)
        if path:
            return path
    raise BrowserError("chromium is not installed: `make deps` installs Debian's chromium")


class Browser:
    def __init__(self, profile: Path, netns: str | None = None,
                 window: tuple[int, int] = (1280, 900)) -> None:
        self.profile = profile
        self.netns = netns
        self.window = window
        self.proc: subprocess.Popen[bytes] | None = None
        self._to_chrome: int | None = None
        self._from_chrome: int | None = None
        self._n = 0
        self._lock = threading.Lock()
        self._answers: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None
        self._dead: str | None = None
        self.session = ""
        self.page = Page()
        self._bodies: queue.Queue[Request | None] = queue.Queue()
        self._body_reader: threading.Thread | None = None
        self.rpc_path = "/ubus"

    # --- process -------------------------------------------------------------------------------
    def start(self) -> Browser:
        self.profile.mkdir(parents=True, exist_ok=True)
        argv = [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                "--remote-debugging-pipe", f"--user-data-dir={self.profile}",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-sync", "--disable-dev-shm-usage",
                "--disable-features=Translate,MediaRouter,OptimizationHints",
                "--password-store=basic", "--use-mock-keychain",
                f"--window-size={self.window[0]},{self.window[1]}", "about:blank"]
        if self.netns:
            argv = ["nsenter", f"--net=/var/run/netns/{self.netns}", *argv]
        c_in_r, c_in_w = os.pipe()   # we write, chromium reads (its fd 3)
        c_out_r, c_out_w = os.pipe()  # chromium writes (its fd 4), we read

        def fds() -> None:
            os.dup2(c_in_r, 3)
            os.dup2(c_out_w, 4)

        log = open(self.profile / "chromium.log", "wb")  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         preexec_fn=fds, pass_fds=(3, 4), start_new_session=True)
        finally:
            log.close()
            os.close(c_in_r)
            os.close(c_out_w)
        self._to_chrome, self._from_chrome = c_in_w, c_out_r
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._body_reader = threading.Thread(target=self._read_bodies, daemon=True)
        self._body_reader.start()
        try:
            self._attach()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        self._bodies.put(None)
        if self.proc is not None:
            with contextlib.suppress(Exception):
                self._send("Browser.close", {}, session=False)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, 9)
                self.proc.wait(timeout=5)
            self.proc = None
        for fd in (self._to_chrome, self._from_chrome):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._to_chrome = self._from_chrome = None

    def __enter__(self) -> Browser:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- protocol ------------------------------------------------------------------------------
    def _read(self) -> None:
        buf = b""
        assert self._from_chrome is not None
        fd = self._from_chrome
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError as e:
                chunk, self._dead = b"", str(e)
            if not chunk:
                with self._cond:
                    self._dead = self._dead or "chromium closed its pipe"
                    self._cond.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cond:
                        self._answers[msg["id"]] = msg
                        self._cond.notify_all()
                else:
                    self._event(msg)

    def _send(self, method: str, params: dict[str, Any], session: bool = True) -> int:
        with self._lock:
            self._n += 1
            n = self._n
            msg: dict[str, Any] = {"id": n, "method": method, "params": params}
            if session and self.session:
                msg["sessionId"] = self.session
            assert self._to_chrome is not None
            os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        return n

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: bool = True,
             timeout: float = 20) -> dict[str, Any]:
        n = self._send(method, params or {}, session)
        deadline = time.monotonic() + timeout
        with self._cond:
            while n not in self._answers:
                if self._dead:
                    raise BrowserError(f"{method}: {self._dead}; {self._log_tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BrowserError(f"{method}: no answer in {timeout} s")
                self._cond.wait(left)
            msg = self._answers.pop(n)
        if "error" in msg:
            raise BrowserError(f"{method}: {msg['error']}")
        return msg.get("result", {})  # type: ignore[no-any-return]

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.profile / "chromium.log").read_text(errors="replace")[-2000:]
        return ""

    def _attach(self) -> None:
        deadline = time.monotonic() + 20
        page = None
        while page is None:
            targets = self.call("Target.getTargets", session=False)["targetInfos"]
            page = next((t for t in targets if t["type"] == "page"), None)
            if page is None:
                if time.monotonic() > deadline:
                    raise BrowserError("chromium opened no page")
                time.sleep(0.1)
        self.session = self.call("Target.attachToTarget", {"targetId": page["targetId"],
                                                            "flatten": True},
                                 session=False)["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.call(f"{domain}.enable")
        # typed text goes to the focused field, as in a window that has the focus
        self.call("Emulation.setFocusEmulationEnabled", {"enabled": True})

    def _event(self, msg: dict[str, Any]) -> None:
        method, p = msg.get("method", ""), msg.get("params", {})
        page = self.page
        if method == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            text = d.get("exception", {}).get("description") or d.get("text", "")
            page.exceptions.append(f"{text} at {d.get('url', '')}:{d.get('lineNumber', '')}")
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            page.console_errors.append(" ".join(
                str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
            e = p["entry"]
            page.console_errors.append(f"{e.get('source')}: {e.get('text')} {e.get('url', '')}")
        elif method == "Network.requestWillBeSent":
            r = p["request"]
            loader = p.get("loaderId", "")
            if p.get("type") == "Document":
                # a new document: what the old one still had going dies with it
                for old in page.requests.values():
                    if old.loader != loader and not (old.finished or old.failed):
                        old.left = True
                        old.read.set()
                page.loader = loader
            new = Request(p["requestId"], r["method"], r["url"], r.get("postData"), loader=loader)
            # a request of the document being left, sent after the new one started
            new.left = bool(page.loader) and loader != page.loader
            page.requests[p["requestId"]] = new
        elif method == "Network.responseReceived":
            req = page.requests.get(p["requestId"])
            if req is not None:
                req.status = int(p["response"]["status"])
        elif method == "Network.loadingFinished":
            req = page.requests.get(p["requestId"])
            if req is not None:
                req.finished = True
                if req.method == "POST" and self.rpc_path in req.url:
                    self._bodies.put(req)  # read it now: a page that goes away takes it along
                else:
                    req.read.set()
        elif method == "Network.loadingFailed":
            req = page.requests.get(p["requestId"])
            if req is not None:
                req.failed = p.get("errorText", "failed")
                req.read.set()

    def _read_bodies(self) -> None:
        while (req := self._bodies.get()) is not None:
            with contextlib.suppress(BrowserError, KeyError):
                req.body = self.call("Network.getResponseBody",
                                     {"requestId": req.request_id})["body"]
            req.read.set()

    # --- pages ---------------------------------------------------------------------------------
    def new_log(self) -> Page:
        """Start a fresh page log (exceptions, console errors, requests); the old one returned."""
        old, self.page = self.page, Page()
        return old

    def goto(self, url: str, timeout: float = 60) -> None:
        self.call("Page.navigate", {"url": url}, timeout=timeout)
        self.wait_js("document.readyState === 'complete'", timeout, f"{url} loaded")

    def js(self, expression: str, timeout: float = 20) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        out = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                             "awaitPromise": True}, timeout=timeout)
        if "exceptionDetails" in out:
            d = out["exceptionDetails"]
            raise BrowserError(f"{expression[:80]}: "
                               f"{d.get('exception', {}).get('description') or d.get('text')}")
        return out.get("result", {}).get("value")

    def wait_js(self, expression: str, timeout: float, what: str, step: float = 0.05) -> float:
        """Seconds until the expression is truthy in the page; BrowserError after `timeout`."""
        t0 = time.monotonic()
        last: Any = None
        while True:
            with contextlib.suppress(BrowserError):
                last = self.js(f"!!({expression})")
                if last:
                    return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise BrowserError(f"timed out after {timeout} s waiting for {what} "
                                   f"(last: {last!r}); {self.where()}")
            time.sleep(step)

    def where(self) -> str:
        """The page's address, text, and what went wrong in it: for error messages."""
        try:
            text = self.js("location.href + '\\n' + (document.body ? document.body.innerText : '')")
        except BrowserError as e:
            text = str(e)
        return (f"page: {str(text)[:1500]!r}; exceptions: {self.page.exceptions}; "
                f"console: {self.page.console_errors}")

    def wait(self, pred: Callable[[], Any], timeout: float, what: str) -> float:
        t0 = time.monotonic()
        while not pred():
            if time.monotonic() - t0 > timeout:
                raise BrowserError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.05)
        return time.monotonic() - t0

    def click(self, selector: str) -> None:
        """A real mouse click (pressed and released) in the middle of the element."""
        box = self.js(f"""(() => {{
            const el = document.querySelector({json.dumps(selector)});
            if (!el) return null;
            el.scrollIntoView({{block: 'center'}});
            const r = el.getBoundingClientRect();
            return [r.left + r.width / 2, r.top + r.height / 2];
        }})()""")
        if not box:
            raise BrowserError(f"no element {selector}")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1],
                                                   "button": "left", "clickCount": 1})

    def type_into(self, selector: str, text: str) -> None:
        self.js(f"document.querySelector({json.dumps(selector)}).focus()")
        self.call("Input.insertText", {"text": text})

    def screen(self, width: int, height: int, mobile: bool = False) -> None:
        self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                          "deviceScaleFactor": 1,
                                                          "mobile": mobile})

    def rpc_calls(self, page: Page | None = None, path: str = "/ubus") -> list[RpcCall]:
        """Every ubus call the page made through JSON-RPC, with its answer (each response body
        is read from the browser as soon as it has arrived)."""
        page = page or self.page
        out: list[RpcCall] = []
        for req in list(page.requests.values()):
            if req.method != "POST" or path not in req.url or not req.post_data or req.left:
                continue
            req.read.wait(10)  # a poll in flight: its answer is part of the page
            body: Any = None
            if req.body is not None:
                with contextlib.suppress(ValueError):
                    body = json.loads(req.body)
            sent = json.loads(req.post_data)
            batch = sent if isinstance(sent, list) else [sent]
            answers = body if isinstance(body, list) else [body] * len(batch)
            by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
            for call in batch:
                params: Sequence[Any] = call.get("params") or []
                if call.get("method") != "call" or len(params) < 4:
                    continue
                out.append(RpcCall(params[1], params[2], params[3], by_id.get(call.get("id")),
                                   req.status, req.failed))
        return out

    def screenshot(self, path: Path) -> Path:
        import base64

        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        path.write_bytes(base64.b64decode(data))
        return path
