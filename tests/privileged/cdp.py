"""Headless Chromium driven over the DevTools protocol (aiohttp's websocket client).

The browser is Debian's ``chromium``; it gets a private profile directory,
no background networking and a resolver that resolves nothing, so the only
place it can talk to is the loopback UI under test. ``close`` kills its whole
process group and removes the profile.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

FLAGS = [
    "--headless=new",
    "--no-sandbox",  # we are root
    "--disable-gpu",
    "--remote-debugging-port=0",
    "--remote-debugging-address=127.0.0.1",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-breakpad",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--window-size=1400,1000",
]


class Browser:
    def __init__(self) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="axt-chromium-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)

    def _launch(self, url: str) -> subprocess.Popen[bytes]:
        binary = shutil.which("chromium")
        assert binary, "chromium is not installed (scripts/install-deps.sh installs it)"
        return subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self.profile}", url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # one group: close() ends every chromium process
        )

    async def open(self, url: str, timeout: float = 30) -> None:
        self.proc = self._launch(url)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            assert self.proc.poll() is None, f"chromium exited with {self.proc.returncode}"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        self.session = aiohttp.ClientSession()
        page: dict[str, Any] | None = None
        while page is None:
            async with self.session.get(f"http://127.0.0.1:{port}/json/list") as resp:
                targets = await resp.json()
            page = next((t for t in targets if t.get("type") == "page"), None)
            if page is None:
                assert time.monotonic() < deadline, "chromium has no page target"
                await asyncio.sleep(0.1)
        self.ws = await self.session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        await self.wait_for("the page to load", "document.readyState === 'complete'", timeout)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        assert self.ws is not None
        ident = next(self._ids)
        await self.ws.send_str(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            msg = json.loads(await self.ws.receive_str())
            if msg.get("id") == ident:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                result: dict[str, Any] = msg["result"]
                return result

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page."""
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, what: str, expression: str, timeout: float = 30) -> Any:
        """The expression's first truthy value; errors count as "not yet" (page loading)."""
        deadline = time.monotonic() + timeout
        value: Any = None
        while time.monotonic() < deadline:
            try:
                value = await self.evaluate(expression)
            except AssertionError as exc:
                value = exc
            if value and not isinstance(value, AssertionError):
                return value
            await asyncio.sleep(0.25)
        raise AssertionError(f"timed out waiting in the browser for {what}; last: {value!r}")

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # Children outlive a killed parent briefly; the group must be empty before we go.
        if self.proc is not None:
            for _ in range(50):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    break
                await asyncio.sleep(0.1)
        shutil.rmtree(self.profile, ignore_errors=True)
