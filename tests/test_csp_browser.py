"""In Chromium, the strict CSP (no 'unsafe-inline') lets the pages' own inline blocks run.

Inline scripts and styles are allowed by hash only; an injected script is refused.
"""

from __future__ import annotations

import pytest


def _violations(page) -> list[str]:  # noqa: ANN001
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    return messages


@pytest.mark.parametrize("path", ["/conditions/all/map", "/embed/conditions/all/map"])
def test_map_pages_run_under_a_csp_without_unsafe_inline(live_server, page, path) -> None:
    messages = _violations(page)
    response = page.goto(f"{live_server.url}{path}")
    policy = response.headers["content-security-policy"]
    assert "unsafe-inline" not in policy and "'sha256-" in policy
    page.wait_for_selector(".geomap-count", timeout=45_000)
    refused = [m for m in messages if "Content Security Policy" in m or "Refused" in m]
    assert refused == []


def test_an_injected_inline_script_is_refused(live_server, page) -> None:
    messages = _violations(page)
    page.goto(f"{live_server.url}/conditions/all/map")
    page.wait_for_selector(".geomap-count", timeout=45_000)
    page.evaluate("""() => {
        const s = document.createElement('script');
        s.textContent = 'window.injected = true';
        document.body.appendChild(s);
    }""")
    assert page.evaluate("window.injected === undefined")
    assert any("Content Security Policy" in m for m in messages)


def test_the_api_reference_page_renders_the_document(live_server, page) -> None:
    messages = _violations(page)
    page.goto(f"{live_server.url}/api/v1/docs")
    page.wait_for_selector(".opblock", timeout=45_000)
    assert "/api/v1/conditions/{slug}/cells" in page.inner_text("#api-reference")
    assert not [m for m in messages if "Content Security Policy" in m]
