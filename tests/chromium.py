"""Headless Chromium driven through the Chrome DevTools Protocol (no downloaded browser).

Uses the Debian `chromium` binary and the `websockets` client already in the stack.
`Chromium` starts one browser with a throw-away profile; `Page` sends CDP commands and
evaluates JavaScript in a page or in one of its frames (through an isolated world, so
cross-origin frames can be inspected without weakening them).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import requests
from websockets.sync.client import connect

BINARY = shutil.which("chromium") or shutil.which("chromium-browser") or ""
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--no-proxy-server",
    "--host-resolver-rules=MAP *.localhost 127.0.0.1",
    "--remote-debugging-port=0",
]


class Chromium:
    """One headless browser process; `stop()` ends it."""

    def __init__(self, profile: Path) -> None:
        if not BINARY:
            raise RuntimeError("Chromium is not installed: run bin/system-packages chromium")
        profile.mkdir(parents=True, exist_ok=True)
        self.log = open(profile.parent / "chromium.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [BINARY, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=self.log,
            stderr=self.log,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("Chromium did not start (see chromium.log)")
            time.sleep(0.05)
        self.port = int(port_file.read_text().split()[0])

    def new_page(self) -> Page:
        response = requests.put(f"http://127.0.0.1:{self.port}/json/new?about:blank", timeout=10)
        response.raise_for_status()
        return Page(response.json()["webSocketDebuggerUrl"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Page:
    """A CDP session on one page target."""

    def __init__(self, ws_url: str) -> None:
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(connect(ws_url, max_size=None, open_timeout=10))
        self._ids = itertools.count(1)
        self.send("Page.enable")
        self.send("Runtime.enable")

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        self.ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv(timeout=30))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'")

    def screenshot(self, path: Path, *, width: int = 1280, height: int = 800) -> Path:
        """Save a PNG of the page at ``width`` x ``height`` CSS pixels."""
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def evaluate(self, expression: str, context_id: int | None = None) -> Any:
        params: dict[str, Any] = {
            "expression": expression,
            "returnByValue": True,
            "awaitPromise": True,  # a promise's value, once it settles
        }
        if context_id is not None:
            params["contextId"] = context_id
        result = self.send("Runtime.evaluate", **params)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 15, context_id: int | None = None) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(expression, context_id)
            except RuntimeError:
                value = None  # navigation in progress: the context changes under us
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for: {expression}")
            time.sleep(0.1)

    def wait_for_value(self, probe: Any, timeout: float = 15) -> Any:
        """Poll a Python callable (which may send CDP commands) until it returns a value."""
        deadline = time.monotonic() + timeout
        while not (value := probe()):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {probe.__name__}")
            time.sleep(0.1)
        return value

    def frames(self) -> list[dict[str, Any]]:
        """Every frame of the page: `{id, url, securityOrigin, ...}`."""
        tree = self.send("Page.getFrameTree")["frameTree"]
        found, pending = [], [tree]
        while pending:
            node = pending.pop()
            found.append(node["frame"])
            pending.extend(node.get("childFrames", []))
        return found

    def frame_context(self, frame_id: str) -> int:
        """An isolated JavaScript world in a frame: reads its DOM, not its script's variables."""
        world = self.send("Page.createIsolatedWorld", frameId=frame_id, worldName="enclave-test")
        return world["executionContextId"]

    def close(self) -> None:
        self._stack.close()
