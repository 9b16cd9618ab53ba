"""Tests of the DevTools client in ``tests/browser.py``."""

from __future__ import annotations

from typing import Any

import pytest

from ..browser import Chromium, require_chromium

# -- tests of the client itself ------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Any:
    with Chromium(require_chromium()) as chromium:
        yield chromium


@pytest.mark.browser
def test_cdp_client_evaluates_javascript_in_a_page(browser: Chromium) -> None:
    browser.navigate("data:text/html,<title>t</title><p id=p>dcm</p>")
    assert browser.evaluate("document.getElementById('p').textContent") == "dcm"
    assert browser.evaluate("new Promise(r => setTimeout(() => r(6 * 7), 10))") == 42


@pytest.mark.browser
def test_browser_cannot_reach_beyond_loopback(browser: Chromium) -> None:
    # Both a host name and a literal public address must fail without traffic.
    outcome = browser.evaluate(
        """Promise.all(['http://example.org/', 'http://192.0.2.1/'].map(u =>
             fetch(u, {signal: AbortSignal.timeout(8000)})
               .then(() => 'reached', e => 'blocked')))"""
    )
    assert outcome == ["blocked", "blocked"]
