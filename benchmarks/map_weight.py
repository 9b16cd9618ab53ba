"""Bytes a responder's browser transfers to open the web map of the St Vincent sample.

Loads ``sample_data/stvincent`` into a temporary store, serves ``dcm.api.create_app`` on
loopback, opens ``/events/stvincent/map`` in headless Chromium (Debian's ``chromium``,
no internet) and adds up the bytes that arrived on the wire for every request the page
made until the network went quiet: Chromium's ``encodedDataLength``, i.e. compressed
bodies plus response headers, as a poor link would carry them. A cold cache, like a
first visit.

Two figures: the page as it opens (outages, offline cells, areas, hazard of the latest
window) against the 1 MB budget, and the heaviest view (every cell and grid state on).

    python benchmarks/map_weight.py                     # build, serve, measure
    python benchmarks/map_weight.py --url http://127.0.0.1:8000/events/stvincent/map

Exit status 1 when the opening view is over budget.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
BUDGET = 1_000_000


def harness() -> Any:
    """The DevTools client and sample loader shared with the browser tests."""
    name = "dcm_test_browser"
    if name not in sys.modules:
        path = ROOT / "tests" / "browser.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec and spec.loader
        sys.modules[name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[name]


@contextlib.contextmanager
def serve_sample(folder: Path, event: str) -> Iterator[tuple[str, str]]:
    """The sample event in a temporary store, served on a free loopback port: the map's
    URL and an admin key."""
    import uvicorn

    from dcm.api import create_app
    from dcm.settings import Settings

    with tempfile.TemporaryDirectory(prefix="dcm-map-weight-") as tmp:
        settings = Settings(data_dir=Path(tmp), map_refresh_s=3600)
        started = time.perf_counter()
        harness().load_sample_event(settings, folder, name=event)
        print(f"loaded {folder.name} into a store in {time.perf_counter() - started:.1f} s")
        from dcm.store import Principal, open_store

        with open_store(settings) as store:  # a key that sees every hexagon and measurement
            _, token = store.create_key("map-weight", role="admin", principal=Principal.system())
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(create_app(settings), log_level="warning", access_log=False)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the API server did not start")
            time.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}/events/{event}/map", token
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            sock.close()


#: JavaScript that ticks every layer shown: the heaviest view of a window.
ALL_LAYERS_ON = """
[...document.querySelectorAll('#panel input[type=checkbox]')]
  .filter(i => !i.checked && !i.closest('[hidden]')).forEach(i => i.click());
"""


def measure(url: str, *, all_layers: bool) -> list[Any]:
    """Open ``url`` in a fresh headless Chromium; the requests it made until idle."""
    cdp = harness()
    binary = cdp.find_chromium()
    if binary is None:
        raise SystemExit("chromium is absent: run .ci/setup-chromium.sh")
    with cdp.Chromium(binary) as browser:
        # The map's service worker (offline copy) would answer the page's later requests
        # itself, out of this page's sight: let every request show on the wire.
        browser.send("Network.setBypassServiceWorker", {"bypass": True}, session=browser.session)
        browser.navigate(url)
        browser.wait_js("window.dcm && window.dcm.ready", timeout=60)
        browser.idle(timeout=60)
        if all_layers:
            browser.evaluate(ALL_LAYERS_ON)
            time.sleep(0.2)
            browser.idle(timeout=60)
        errors = browser.evaluate("dcm.errors")
        if errors:
            print("page errors:", errors)
        return list(browser.requests.values())


def report(title: str, requests: list[Any]) -> int:
    """Print one line per request and the total; return the total bytes."""
    print(f"\n{title}")
    print(f"{'bytes':>9}  {'status':>6}  {'encoding':8}  request")
    total = 0
    for r in sorted(requests, key=lambda r: -r.encoded_bytes):
        if r.url.startswith("data:"):
            continue
        parts = urlsplit(r.url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        encoding = r.headers.get("content-encoding", "-")
        print(f"{r.encoded_bytes:9d}  {r.status!s:>6}  {encoding:8}  {path[:110]}")
        total += r.encoded_bytes
        if parts.hostname != "127.0.0.1" or r.failed:
            print(f"           ^ {'left loopback' if r.failed is None else r.failed}")
    print(f"{total:9d}  bytes in {len(requests)} requests")
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="measure this map URL instead of serving the sample")
    parser.add_argument("--sample", type=Path, default=ROOT / "sample_data" / "stvincent")
    parser.add_argument("--event", default="stvincent")
    parser.add_argument("--key", help="with --url: an API key for the keyed measurement")
    parser.add_argument("--budget", type=int, default=BUDGET, help="bytes (default 1 MB)")
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        if args.url:
            url, key = args.url, args.key
        else:
            url, key = stack.enter_context(serve_sample(args.sample, args.event))
        opening = report("map as it opens (cold cache)", measure(url, all_layers=False))
        heaviest = report("every layer on, public view", measure(url, all_layers=True))
        keyed = None
        if key:
            keyed = report(
                "every layer on, admin key (all hexagons, measurements)",
                measure(f"{url}#key={key}", all_layers=True),
            )
    share = 100 * opening / args.budget
    print(
        f"\nopening view: {opening / 1e6:.3f} MB transferred ({share:.0f} % of the "
        f"{args.budget / 1e6:.1f} MB budget); every layer on: {heaviest / 1e6:.3f} MB"
        + (f"; with an admin key: {keyed / 1e6:.3f} MB" if keyed is not None else "")
    )
    return 0 if opening <= args.budget else 1


if __name__ == "__main__":
    sys.exit(main())
