"""report.html in a real browser (headless Chromium): no console error, nothing fetched from
anywhere, every picture decoded, a heatmap cell's value under the pointer; a screenshot is
written."""

import re
import shutil

import pytest

import repcompare
from tests.support.checkpoints import seeded_torchvision_resnet18

pytestmark = pytest.mark.slow

BROWSER_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("Chromium is not installed (Debian package chromium; .ci/run installs it)")
    return found


def test_the_report_opens_from_disk_without_errors(tmp_path):
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    specs = [seeded_torchvision_resnet18(tmp_path / f"net{seed}.pth", seed) for seed in (0, 1)]
    out = tmp_path / "study"
    repcompare.study(
        *specs,
        out=out,
        data="builtin:48:32",
        image_size=32,
        batch_size=12,
        bootstrap=10,
        augment="flip",
        workers=0,
    )
    page_file = out / "report.html"
    problems, requests = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=BROWSER_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(page_file.as_uri(), wait_until="load")
            widths = page.eval_on_selector_all("img", "images => images.map(i => i.naturalWidth)")
            title = page.inner_text("h1")
            cell = page.locator(".cells rect").nth(17)  # a cell of the first heatmap
            cell.scroll_into_view_if_needed()
            box = cell.bounding_box()
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(x, y)
            hovered = page.evaluate(
                "([x, y]) => { const e = document.elementFromPoint(x, y);"
                " return [e.tagName, e.querySelector('title').textContent]; }",
                [x, y],
            )
            page.screenshot(path=str(tmp_path / "report.png"))
        finally:
            browser.close()
    assert problems == []
    assert [u for u in requests if not u.startswith(("data:", page_file.as_uri()))] == []
    assert len(widths) >= 10 and min(widths) > 0
    assert title.startswith("Study: ")
    tag, text = hovered  # the cell under the pointer names its layers and its value
    assert tag == "rect" and re.fullmatch(r"\S+ \u00d7 \S+: (\d\.\d{3}|undefined)", text)
    assert (tmp_path / "report.png").stat().st_size > 10_000
