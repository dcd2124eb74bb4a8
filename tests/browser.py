"""Drive a real headless Chromium over the DevTools protocol, for tests of the HTML report.

The protocol runs over ``--remote-debugging-pipe`` (Chromium reads commands on fd 3 and writes replies and
events on fd 4, each a JSON message ended by a NUL byte), so no port, no websocket library and no network
are involved. :func:`load_page` opens one file and reports what a person would worry about: console
errors, uncaught exceptions, JavaScript dialogs (``alert``) and every request the page made.

    page = load_page(Path("report.html"), evaluate={"imgs": "document.images.length"})
    assert not page.console_errors and not page.dialogs
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Flags for a quiet, reproducible, offline headless browser (no sandbox: tests may run as root in CI).
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--no-default-browser-check",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
    "--disable-default-apps", "--disable-dev-shm-usage", "--mute-audio", "--hide-scrollbars",
    "--remote-debugging-pipe",
)


def chromium_executable() -> str | None:
    """The Chromium (or Chrome) binary on PATH, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _above(fd: int, lowest: int) -> int:
    """A duplicate of *fd* numbered at least *lowest* (the original is closed)."""
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, lowest)
    os.close(fd)
    return new


class BrowserError(RuntimeError):
    """The browser did not start, answered with an error, or did not answer in time."""


@dataclass
class PageReport:
    """What happened while a page loaded: console errors, exceptions, dialogs, requested URLs, evaluations."""

    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    screenshot: bytes | None = None


class Chromium:
    """A headless Chromium process spoken to over the DevTools pipe. Use as a context manager."""

    def __init__(self, executable: str | None = None, *, timeout: float = 60.0) -> None:
        self.executable = executable or chromium_executable()
        if not self.executable:
            raise BrowserError("no chromium on PATH")
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="clipgauge-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # The browser expects its command pipe on fd 3 and its reply pipe on fd 4: a tiny Python trampoline
        # puts them there and execs it. Its ends are first moved above fd 9, so neither is itself fd 3 or 4.
        to_browser_r, from_browser_w = (_above(fd, 10) for fd in (to_browser_r, from_browser_w))
        args = [self.executable, *FLAGS, f"--user-data-dir={self._profile}", "about:blank"]
        trampoline = (f"import os, sys; os.dup2({to_browser_r}, 3); os.dup2({from_browser_w}, 4); "
                      "os.execv(sys.argv[1], sys.argv[1:])")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", trampoline, *args],
            pass_fds=(to_browser_r, from_browser_w),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._replies: dict[int, queue.Queue] = {}
        self._lock = threading.Lock()
        self.events: queue.Queue = queue.Queue()
        self._stderr: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    # ------------------------------------------------------------ transport
    def _read(self) -> None:
        buf = b""
        with open(self._from_browser, "rb", buffering=0) as fh:
            while True:
                chunk = fh.read(1 << 16)
                if not chunk:
                    break
                buf += chunk
                while b"\0" in buf:
                    raw, buf = buf.split(b"\0", 1)
                    msg = json.loads(raw)
                    if "id" in msg:
                        with self._lock:
                            q = self._replies.get(msg["id"])
                        if q is not None:
                            q.put(msg)
                    else:
                        self.events.put(msg)
        self.events.put({"method": "__closed__"})

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        """Send one command and wait for its result; :class:`BrowserError` on an error reply or timeout."""
        with self._lock:
            self._next_id += 1
            mid = self._next_id
            q: queue.Queue = queue.Queue()
            self._replies[mid] = q
        msg: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        try:
            os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        except OSError as exc:
            raise BrowserError(f"browser gone: {exc}; stderr: {self.stderr_tail()}") from None
        try:
            reply = q.get(timeout=self.timeout)
        except queue.Empty:
            raise BrowserError(f"no reply to {method} in {self.timeout}s; stderr: {self.stderr_tail()}") from None
        finally:
            with self._lock:
                self._replies.pop(mid, None)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def stderr_tail(self) -> str:
        return b"".join(self._stderr[-20:]).decode("utf-8", "replace")

    # ------------------------------------------------------------ lifecycle
    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                with contextlib.suppress(BrowserError):
                    self.send("Browser.close")
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
        finally:
            os.close(self._to_browser)
            shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_page(path: Path, *, evaluate: dict[str, str] | None = None, screenshot: bool = False,
              width: int = 1280, height: int = 900, timeout: float = 60.0) -> PageReport:
    """Open *path* in a fresh headless Chromium, wait for the load event, evaluate each JavaScript
    expression of *evaluate* (results by value, under the same names), optionally take a full-page PNG
    screenshot, and report console errors, exceptions, dialogs and requests."""
    report = PageReport()
    with Chromium(timeout=timeout) as browser:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Emulation.setDeviceMetricsOverride",
                     {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
        browser.send("Page.navigate", {"url": path.resolve().as_uri()}, session=session)
        _wait_for_load(browser, session, report, timeout)
        for name, expression in (evaluate or {}).items():
            res = browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                               session=session)
            if "exceptionDetails" in res:
                raise BrowserError(f"evaluating {name}: {res['exceptionDetails'].get('text')}")
            report.values[name] = res["result"].get("value")
        if screenshot:
            shot = browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                                session=session)
            report.screenshot = base64.b64decode(shot["data"])
        _collect(browser, session, report, until=None, deadline=time.monotonic() + 0.5)
    return report


def _wait_for_load(browser: Chromium, session: str, report: PageReport, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    if not _collect(browser, session, report, until="Page.loadEventFired", deadline=deadline):
        raise BrowserError(f"page did not load in {timeout}s")
    # events logged right after load (late console errors) arrive within a moment
    _collect(browser, session, report, until=None, deadline=time.monotonic() + 0.5)


def _collect(browser: Chromium, session: str, report: PageReport, *, until: str | None, deadline: float) -> bool:
    """Record events until *until* arrives (True) or *deadline* passes (False)."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        try:
            ev = browser.events.get(timeout=left)
        except queue.Empty:
            return False
        method, params = ev.get("method"), ev.get("params", {})
        if method == "__closed__":
            raise BrowserError(f"browser closed the pipe; stderr: {browser.stderr_tail()}")
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            report.console_errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                                  for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            report.exceptions.append(details.get("exception", {}).get("description") or details.get("text", ""))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            report.console_errors.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}".strip())
        elif method == "Page.javascriptDialogOpening":
            report.dialogs.append(f"{params.get('type')}: {params.get('message')}")
            browser.send("Page.handleJavaScriptDialog", {"accept": True}, session=session)
        elif method == "Network.requestWillBeSent":
            report.requests.append(params.get("request", {}).get("url", ""))
        if until is not None and method == until:
            return True
