"""A small Chrome DevTools Protocol client over ``--remote-debugging-pipe``.

The browser tests import it (``from .. import browser``) and ``benchmarks/map_weight.py``
loads it by path (:func:`load_cdp_module`); both drive Debian's headless ``chromium`` with it: no
chromedriver, no websocket library, no port to race for. Messages are JSON objects
separated by NUL bytes on file descriptors 3 (to the browser) and 4 (from it).

The browser is locked to loopback twice over: every host name but 127.0.0.1 resolves
to nothing, and every non-loopback request goes to a dead proxy.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest

#: Flags every run uses: headless, quiet, and unable to leave the machine.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    # Loopback bypasses a proxy by default; everything else meets a closed port.
    "--proxy-server=http://127.0.0.1:9",
)


class CDPError(RuntimeError):
    """The browser answered a command with an error, or did not answer in time."""


def find_chromium() -> str | None:
    """Path of the Chromium binary (``DCM_CHROMIUM`` or ``chromium`` on PATH), or None."""
    return os.environ.get("DCM_CHROMIUM") or shutil.which("chromium")


def require_chromium() -> str:
    """The Chromium binary, or skip the calling test with the reason."""
    binary = find_chromium()
    if binary is None:
        pytest.skip("headless Chromium is absent: run .ci/setup-chromium.sh (Debian 'chromium')")
    return binary


class Request:
    """One network request the page made, assembled from Network.* events."""

    def __init__(self, request_id: str, url: str, method: str) -> None:
        self.request_id = request_id
        self.url = url
        self.method = method
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.encoded_bytes = 0
        self.finished = False
        self.failed: str | None = None

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    def __repr__(self) -> str:
        state = self.failed or ("done" if self.finished else "pending")
        return f"<{self.method} {self.url} {self.status} {state} {self.encoded_bytes}B>"


class Chromium:
    """A headless Chromium process with one page, driven over the DevTools pipe."""

    def __init__(self, binary: str, *, width: int = 1280, height: int = 860) -> None:
        self._profile = tempfile.mkdtemp(prefix="dcm-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire_fds() -> None:  # runs in the child before exec
            # Copy both ends out of the way first: a pipe may already sit on fd 3 or 4,
            # and dup2 onto the same number would keep its close-on-exec flag.
            reader, writer = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(reader, 3)
            os.dup2(writer, 4)

        self._proc = subprocess.Popen(
            [
                binary,
                *CHROMIUM_FLAGS,
                "--remote-debugging-pipe",
                f"--user-data-dir={self._profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=False,
            preexec_fn=wire_fds,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._lock = threading.Lock()
        self._replies: dict[int, dict[str, Any]] = {}
        self._arrived = threading.Condition()
        self.events: list[dict[str, Any]] = []
        self.requests: dict[str, Request] = {}
        self.console: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Network", "Runtime"):
            self.send(f"{domain}.enable", session=self.session)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=self.session,
        )

    # -- protocol ---------------------------------------------------------------------

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_browser, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._arrived:
                    self._arrived.notify_all()
                return
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                self._dispatch(json.loads(raw))

    def _dispatch(self, message: dict[str, Any]) -> None:
        with self._arrived:
            if "id" in message:
                self._replies[message["id"]] = message
            else:
                self.events.append(message)
                self._track(message)
            self._arrived.notify_all()

    def _track(self, event: dict[str, Any]) -> None:
        method, params = event["method"], event.get("params", {})
        if method == "Network.requestWillBeSent":
            req = params["request"]
            self.requests[params["requestId"]] = Request(
                params["requestId"], req["url"], req["method"]
            )
            return
        request = self.requests.get(params.get("requestId", ""))
        if request is None:
            if method == "Runtime.consoleAPICalled":
                texts = [str(a.get("value", a.get("description", ""))) for a in params["args"]]
                self.console.append(f"{params['type']}: {' '.join(texts)}")
            elif method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                self.console.append(
                    f"exception: {details.get('exception', {}).get('description', details)}"
                )
            return
        if method == "Network.responseReceived":
            response = params["response"]
            request.status = response["status"]
            request.headers = {k.lower(): v for k, v in response.get("headers", {}).items()}
        elif method == "Network.loadingFinished":
            request.finished = True
            request.encoded_bytes = int(params.get("encodedDataLength", 0))
        elif method == "Network.loadingFailed":
            request.failed = params.get("errorText", "failed")

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Send one command and return its result; raise :class:`CDPError` on error."""
        with self._lock:
            self._next_id += 1
            ident = self._next_id
            message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
            if session:
                message["sessionId"] = session
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._arrived:
            while ident not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self._proc.poll() is not None:
                    raise CDPError(f"{method}: no answer from Chromium")
                self._arrived.wait(left)
            reply = self._replies.pop(ident)
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error'].get('message')}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    # -- page helpers -----------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], bool], *, timeout: float = 20.0) -> None:
        """Wait until ``predicate()`` is true, checking as events arrive."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CDPError(f"timed out after {timeout} s waiting for the page")
                self._arrived.wait(min(left, 0.1))

    def navigate(self, url: str, *, timeout: float = 30.0) -> None:
        """Open ``url`` and wait for its load event."""
        seen = len(self.events)
        self.send("Page.navigate", {"url": url}, session=self.session)
        self.wait_for(
            lambda: any(e["method"] == "Page.loadEventFired" for e in self.events[seen:]),
            timeout=timeout,
        )

    def evaluate(self, expression: str, *, timeout: float = 20.0) -> Any:
        """Evaluate JavaScript in the page (awaiting promises) and return its JSON value."""
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            session=self.session,
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise CDPError(details.get("exception", {}).get("description", str(details)))
        return result["result"].get("value")

    def wait_js(self, expression: str, *, timeout: float = 20.0) -> Any:
        """Poll a JavaScript expression until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise CDPError(f"timed out waiting for {expression!r}")
            time.sleep(0.1)

    def idle(self, *, quiet_s: float = 0.5, timeout: float = 20.0) -> None:
        """Wait until no request has been pending for ``quiet_s`` seconds."""
        deadline = time.monotonic() + timeout
        calm_since = time.monotonic()
        while time.monotonic() < deadline:
            pending = [r for r in list(self.requests.values()) if not (r.finished or r.failed)]
            if pending:
                calm_since = time.monotonic()
            elif time.monotonic() - calm_since >= quiet_s:
                return
            time.sleep(0.05)
        raise CDPError("network did not go idle")

    def screenshot(self, path: Path) -> Path:
        """Save a PNG of the page."""
        data = self.send("Page.captureScreenshot", {"format": "png"}, session=self.session)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    def print_pdf(self) -> bytes:
        """The page printed to PDF (A4 landscape), as the print stylesheet lays it out."""
        data = self.send(
            "Page.printToPDF",
            {
                "landscape": True,
                "paperWidth": 11.69,
                "paperHeight": 8.27,
                "printBackground": True,
                "preferCSSPageSize": True,
            },
            session=self.session,
            timeout=60,
        )
        return base64.b64decode(data["data"])

    def close(self) -> None:
        """Close the browser and remove its profile."""
        with contextlib.suppress(CDPError):
            self.send("Browser.close", timeout=5)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Files of a scenario folder and the dataset kind each is ingested as.
SAMPLE_FILES = (
    ("cells", "cells.csv.gz", "public"),
    ("baseline", "baseline.csv.gz", "restricted"),
    ("measurements", "event.csv.gz", "restricted"),
    ("population", "population.tif", "public"),
    ("areas", "areas.geojson", "public"),
    ("hazard", "hazard.geojson", "public"),
)


def load_sample_event(settings: Any, folder: Path, *, name: str = "stvincent") -> None:
    """Create event ``name`` in the store of ``settings`` from a simulator scenario folder
    (``sample_data/stvincent``), ingest its files and compute every window."""
    from dcm import live
    from dcm.store import Principal, open_store

    meta = json.loads((folder / "scenario.json").read_text(encoding="utf-8"))
    system = Principal.system()
    with open_store(settings) as store:
        store.create_event(name, start=meta["event_start"], end=meta["event_end"], principal=system)
        for kind, file, visibility in SAMPLE_FILES:
            live.ingest(
                store, name, folder / file, kind=kind, visibility=visibility, principal=system
            )
        live.update(store, name, principal=system, full=True)


def load_cdp_module() -> ModuleType:
    """This module, importable by path from tests and benchmarks."""
    import importlib.util
    import sys

    name = "dcm_test_browser"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
