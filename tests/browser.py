"""Open a page in headless Chromium and report what a person would see, and what went wrong.

Drives Debian's ``chromium`` over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: fd 3 carries commands in, fd 4 answers out, each
message JSON ended by a NUL byte), so nothing listens on a port and no
package beyond the browser is needed. Collected while the page loads:
uncaught exceptions, ``console.error``/``console.assert`` calls and the
browser's own error log (a refused fetch, a CSP violation, a bad image).

    page = render(Path("report.html"), screenshot=Path("shot.png"))
    page.errors          # [] when the page is clean
    page.eval("document.querySelectorAll('g.lane').length")
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = [
    "--headless",
    "--no-sandbox",  # root in CI
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-pipe",
]


def chromium() -> str | None:
    """The browser's path, or None when none is installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class Page:
    """A page as loaded.

    Attributes:
        load_s: Seconds from navigation to the load event.
        errors: Exceptions, console errors and browser errors, as text.
        console: Every console message (``type: text``).
    """

    browser: Browser
    session: str
    load_s: float
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def eval(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression evaluated in the page."""
        res = self.browser.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            self.session,
        )
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression!r} raised: {res['exceptionDetails']}")
        return res["result"].get("value")

    def screenshot(self, path: Path, width: int = 1300) -> None:
        """A PNG of the whole page, ``width`` CSS pixels wide."""
        height = int(self.eval("Math.ceil(document.documentElement.scrollHeight)"))
        self.browser.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            self.session,
        )
        import base64

        res = self.browser.call(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, self.session
        )
        path.write_bytes(base64.b64decode(res["data"]))


class Browser:
    """One headless Chromium, driven over the DevTools pipe."""

    def __init__(self, timeout: float = 60.0) -> None:
        exe = chromium()
        if exe is None:
            raise RuntimeError("no chromium on PATH (apt-get install chromium)")
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="qshpc-chromium-")
        cmd_r, cmd_w = os.pipe()  # we write commands, the browser reads fd 3
        out_r, out_w = os.pipe()  # the browser writes fd 4, we read answers
        # high numbers, so the dup2 onto 3 and 4 in the child cannot clobber them
        child_in = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 100)
        child_out = fcntl.fcntl(out_w, fcntl.F_DUPFD, 100)

        def setup() -> None:
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        self.proc = subprocess.Popen(
            [exe, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=setup,
            # not close_fds: it would close 3 and 4 after setup() put the pipes there (and
            # pass_fds=(3, 4) needs them open in this process already); Python's own fds
            # are close-on-exec anyway
            close_fds=False,
        )
        for fd in (cmd_r, out_w, child_in, child_out):
            os.close(fd)
        self._w = os.fdopen(cmd_w, "wb", buffering=0)
        self._r = os.fdopen(out_r, "rb", buffering=0)
        self._next = 0
        self._lock = threading.Lock()
        self._answers: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition(self._lock)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buf = b""
        while True:
            chunk = self._r.read(1 << 16)
            if not chunk:
                with self._cond:
                    self._cond.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                with self._cond:
                    if "id" in msg:
                        self._answers[msg["id"]] = msg
                    else:
                        self.events.append(msg)
                    self._cond.notify_all()

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> dict[str, Any]:  # fmt: skip
        """Send one command; return its result (raise on a protocol error or timeout)."""
        with self._lock:
            self._next += 1
            mid = self._next
        msg: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self._w.write(json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while mid not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise TimeoutError(f"chromium did not answer {method} within {self.timeout} s")
                self._cond.wait(left)
            answer = self._answers.pop(mid)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    def wait_event(self, method: str, session: str, after: int) -> dict[str, Any]:
        """The first event ``method`` of ``session`` at index ``after`` or later."""
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while True:
                for ev in self.events[after:]:
                    if ev.get("method") == method and ev.get("sessionId") == session:
                        return ev
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise TimeoutError(f"no {method} within {self.timeout} s")
                self._cond.wait(left)

    def open(self, url: str, width: int = 1300, height: int = 900) -> Page:
        """Load ``url`` in a new tab; collect what went wrong while it loaded."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", {}, session)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session,
        )
        with self._lock:
            mark = len(self.events)
        began = time.perf_counter()
        nav = self.call("Page.navigate", {"url": url}, session)
        if nav.get("errorText"):
            raise RuntimeError(f"cannot open {url}: {nav['errorText']}")
        self.wait_event("Page.loadEventFired", session, mark)
        load_s = time.perf_counter() - began
        # one frame later, so errors raised by the first paint are in
        self.call("Runtime.evaluate", {"expression": "new Promise(r => requestAnimationFrame(() => setTimeout(r, 50)))", "awaitPromise": True}, session)  # fmt: skip
        page = Page(self, session, load_s)
        with self._lock:
            events = [e for e in self.events[mark:] if e.get("sessionId") == session]
        for ev in events:
            p = ev.get("params", {})
            if ev["method"] == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                text = d.get("exception", {}).get("description") or d.get("text", "")
                page.errors.append(f"exception: {text}")
            elif ev["method"] == "Runtime.consoleAPICalled":
                text = " ".join(
                    str(a.get("value", a.get("description", ""))) for a in p.get("args", [])
                )
                page.console.append(f"{p.get('type')}: {text}")
                if p.get("type") in ("error", "assert"):
                    page.errors.append(f"console.{p.get('type')}: {text}")
            elif ev["method"] == "Log.entryAdded":
                entry = p.get("entry", {})
                if entry.get("level") == "error":
                    page.errors.append(
                        f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}"
                    )
        return page

    def close(self) -> None:
        """Close the browser and remove its profile."""
        try:
            self.call("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for f in (self._w, self._r):
            try:
                f.close()
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def render(
    path: Path, screenshot: Path | None = None, timeout: float = 60.0
) -> tuple[Page, Browser]:
    """Open ``path`` in a fresh browser (close it with ``browser.close()``)."""
    browser = Browser(timeout)
    try:
        page = browser.open(path.resolve().as_uri())
        if screenshot is not None:
            page.screenshot(screenshot)
    except BaseException:
        browser.close()
        raise
    return page, browser


if (
    __name__ == "__main__"
):  # python -m tests.browser PAGE.html SHOT.png: check a page, keep a picture
    import sys

    shown, b = render(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None)
    print(f"loaded in {shown.load_s:.2f} s; errors: {shown.errors or 'none'}")
    b.close()
