"""``/docs`` serves Swagger UI from this server: no CDN, in headless Chromium too."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from dcm.api import create_app
from dcm.settings import Settings

from .. import browser as cdp


@pytest.fixture(scope="module")
def base_url(
    serve: Callable[[Callable[[], FastAPI]], str], tmp_path_factory: pytest.TempPathFactory
) -> str:
    data_dir: Path = tmp_path_factory.mktemp("docs")
    return serve(lambda: create_app(Settings(data_dir=data_dir, secret="s")))


@pytest.fixture(scope="module")
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


def test_docs_page_names_only_files_of_this_server(http: httpx.Client) -> None:
    page = http.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(urls) == 3, urls  # script, stylesheet, icon
    for url in urls:
        assert url.startswith("/static/swagger/"), f"{url} is not served by dcm"
        asset = http.get(url)
        assert asset.status_code == 200 and len(asset.content) > 1000, url
    assert "cdn." not in page.text and "https://" not in page.text
    assert "'/openapi.json'" in page.text
    # ReDoc loads from a CDN only: it is off, the OpenAPI document stays.
    assert http.get("/redoc").status_code == 404
    assert http.get("/openapi.json").json()["info"]["title"].startswith("dcm")


@pytest.mark.parametrize("name", ["../app.py", "swagger-ui-bundle.js.map", "index.html"])
def test_only_known_swagger_files_are_served(http: httpx.Client, name: str) -> None:
    assert http.get(f"/static/swagger/{name}").status_code == 404


@pytest.mark.browser
def test_docs_render_the_api_in_chromium_without_leaving_loopback(base_url: str) -> None:
    with cdp.Chromium(cdp.require_chromium()) as browser:
        browser.navigate(f"{base_url}/docs")
        # Swagger UI has read the OpenAPI 3.1 document: operations are listed.
        title = browser.wait_js("document.querySelector('.swagger-ui .info .title')?.textContent")
        assert title.startswith("dcm")
        browser.wait_js("document.querySelectorAll('.opblock').length > 10")
        browser.idle()
        assert not browser.evaluate("document.querySelector('.swagger-ui .errors-wrapper')")
        for r in list(browser.requests.values()):
            if r.url.startswith("data:"):
                continue
            assert r.host == "127.0.0.1", f"request left loopback: {r}"
            assert r.failed is None and r.status == 200, r
