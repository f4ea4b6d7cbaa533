"""The gateway as a process (``labspool web``) and headless Chromium driven over DevTools.

Both are started by the tests and ended by process id (Chromium's whole process group),
with Chromium's profile and home in the test's temporary folder.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from websockets.sync.client import ClientConnection, connect

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="headless Chromium (Debian's chromium package; CI installs it)",
)
WAIT_S = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def gateway(config: Path, *args: str, log: Path | None = None) -> Iterator[str]:
    """``labspool web`` on a free port of 127.0.0.1 for the tree of *config*; yields its URL
    once uvicorn listens, and ends it (SIGTERM, by its pid) afterwards. Its output goes to
    the file *log*, if given."""
    port = free_port()
    command = [sys.executable, "-m", "spooler.cli", "--config", str(config), "web"]
    web = subprocess.Popen(
        [*command, "--listen", f"127.0.0.1:{port}", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    drain: threading.Thread | None = None
    try:
        assert web.stdout is not None
        seen = []
        for line in web.stdout:  # uvicorn says when it listens
            seen.append(line)
            if b"Uvicorn running on" in line:
                break
        else:
            raise AssertionError(f"labspool web ended: {b''.join(seen)!r}")
        drain = threading.Thread(target=_drain, args=(web.stdout, log), daemon=True)
        drain.start()  # a full pipe would block the gateway
        yield f"http://127.0.0.1:{port}"
    finally:
        web.terminate()
        try:
            web.wait(30)
        finally:
            if web.poll() is None:
                web.kill()
                web.wait(10)
            if drain is not None:
                drain.join(10)
            if web.stdout is not None:
                web.stdout.close()


def _drain(output: IO[bytes], log: Path | None) -> None:
    with contextlib.ExitStack() as stack:
        sink = None if log is None else stack.enter_context(log.open("ab", buffering=0))
        for line in output:
            if sink is not None:
                sink.write(line)


class PageError(AssertionError):
    """The page did not come to show what was awaited, or its script failed."""


class Chromium:
    """One headless Chromium with one tab, driven over the DevTools protocol."""

    def __init__(self, folder: Path, *, width: int = 1280, height: int = 900) -> None:
        if CHROMIUM is None:
            raise RuntimeError("chromium is not installed (apt-get install chromium)")
        folder.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "HOME": str(folder)}  # nothing in the user's home folder
        self.process = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",  # root in CI
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-extensions",
                "--disable-sync",
                "--disable-component-update",
                "--no-first-run",
                "--no-default-browser-check",
                "--mute-audio",
                "--remote-debugging-port=0",
                f"--user-data-dir={folder / 'profile'}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,  # its helpers in its own group, ended together
        )
        self._closing = contextlib.ExitStack()
        self._messages: list[dict[str, Any]] = []
        self._next_id = 0
        self.errors: list[str] = []
        try:
            self.socket = self._attach()
            self.call("Page.enable")
            self.call("Runtime.enable")
            self.call(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            )
        except BaseException:
            self.close()
            raise

    def _attach(self) -> ClientConnection:
        assert self.process.stderr is not None
        for raw in self.process.stderr:  # "DevTools listening on ws://127.0.0.1:P/devtools/..."
            line = raw.decode(errors="replace")
            if "DevTools listening on" in line:
                port = line.split("ws://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
                break
        else:
            raise RuntimeError("chromium ended before it listened for DevTools")
        threading.Thread(target=self.process.stderr.read, daemon=True).start()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            targets = json.loads(answer.read())
        page = next(t for t in targets if t["type"] == "page")
        connection = connect(page["webSocketDebuggerUrl"], max_size=64 << 20, open_timeout=10)
        return self._closing.enter_context(connection)  # closed in close()

    # -- the protocol ---------------------------------------------------------------------

    def _receive(self, timeout_s: float) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(self.socket.recv(timeout=timeout_s))
        if message.get("method") == "Runtime.exceptionThrown":
            details = message["params"]["exceptionDetails"]
            self.errors.append(str(details.get("exception", {}).get("description", details)))
        elif (
            message.get("method") == "Runtime.consoleAPICalled"
            and message["params"]["type"] == "error"
        ):
            self.errors.append(json.dumps(message["params"]["args"])[:500])
        return message

    def call(
        self, method: str, params: dict[str, Any] | None = None, timeout_s: float = 30.0
    ) -> Any:
        self._next_id += 1
        ident = self._next_id
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params or {}}))
        while True:
            message = self._receive(timeout_s)
            if message.get("id") == ident:
                if "error" in message:
                    raise PageError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._messages.append(message)

    def _event(self, name: str, timeout_s: float) -> dict[str, Any]:
        for i, message in enumerate(self._messages):
            if message.get("method") == name:
                return self._messages.pop(i)
        while True:
            message = self._receive(timeout_s)
            if message.get("method") == name:
                return message
            self._messages.append(message)

    # -- what the tests do ----------------------------------------------------------------

    def open(self, url: str) -> None:
        """Go to *url* and wait for its load event."""
        self._messages = [m for m in self._messages if m.get("method") != "Page.loadEventFired"]
        self.call("Page.navigate", {"url": url})
        self._event("Page.loadEventFired", WAIT_S)

    def follow(self, selector: str) -> None:
        """Click the link *selector* and wait for the page it leads to to load (a check made
        while the old page is still being left would be lost with it)."""
        self._messages = [m for m in self._messages if m.get("method") != "Page.loadEventFired"]
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")
        self._event("Page.loadEventFired", WAIT_S)

    def evaluate(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            timeout_s=WAIT_S + 10,
        )
        if "exceptionDetails" in result:
            raise PageError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, condition: str, what: str, timeout_s: float = WAIT_S) -> Any:
        """Wait until the JavaScript expression *condition* is truthy on the page: checked
        at every change of the document (a MutationObserver), not on a timer."""
        script = f"""new Promise((resolve, reject) => {{
            const check = () => {{ try {{ const v = ({condition}); if (v) {{
                observer.disconnect(); clearTimeout(timer); resolve(v); }} }}
                catch (e) {{ }} }};
            const observer = new MutationObserver(check);
            observer.observe(document, {{subtree: true, childList: true, attributes: true,
                                          characterData: true}});
            const timer = setTimeout(() => {{ observer.disconnect();
                reject(new Error("timed out")); }}, {timeout_s * 1000:.0f});
            check();
        }})"""
        try:
            return self.evaluate(script)
        except PageError as exc:
            text = self.evaluate("document.body ? document.body.innerText : ''")
            raise PageError(f"the page never showed {what}; it shows:\n{text}") from exc

    def text(self, selector: str) -> str:
        return str(
            self.evaluate(
                f"(document.querySelector({json.dumps(selector)}) || {{}}).textContent || ''"
            )
        )

    def screenshot(self, path: Path) -> bytes:
        data = base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"})["data"])
        path.write_bytes(data)
        return data

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._closing.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        if self.process.stderr is not None:
            self.process.stderr.close()

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
