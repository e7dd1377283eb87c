"""The comparison report opened in a real browser (Debian's chromium, installed by `make browser`)."""

from __future__ import annotations

import shutil

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]  # no calls home on a machine without internet


def test_report_renders_in_headless_chromium(report_html, tmp_path):
    report = report_html
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: run `make browser` (Debian's chromium package)")
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on(
            "console",
            lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None,
        )
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
        page.on(
            "request",
            lambda r: problems.append(f"request: {r.url}") if not r.url.startswith(("file:", "data:")) else None,
        )
        page.goto(report.as_uri(), wait_until="load")
        images = page.evaluate(
            "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt])"
        )
        headings = page.evaluate("Array.from(document.querySelectorAll('h2')).map(h => h.textContent)")
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert problems == []
    assert len(images) >= 10
    assert all(complete and width > 100 and height > 50 and alt for complete, width, height, alt in images), images
    assert "Scorecards: reduces or emerges?" in headings and "Where these numbers come from" in headings
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[0] > 2000 and pixels.std() > 0.05  # a long page with content, not a blank one
