"""A real browser on the real page: Debian Chromium driven by Python Playwright (never `playwright install`).

Uploads the bundled example, runs a setting (trimmed to 1 s and capped at 256 px so tiny CPU models are
quick), waits, and checks that both videos play, the metrics table and token readouts are on the page,
and that a bad file gives a one-line message while the page keeps working. Screenshots at 1280x800 and
1920x1080 go to ``test-artifacts/browser/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _app_server import running_app

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("AVTOK_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "browser"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (bash scripts/test_tools.sh) to run this test")
    sync_api = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def app_url(tiny_diffusers_checkpoints, tmp_path_factory):
    with running_app(tiny_diffusers_checkpoints, tmp_path_factory.mktemp("runs")) as (url, _service):
        yield url


def _status(page) -> str:
    return page.inner_text("#avtok-status")


def _video_ready(page, elem_id: str) -> dict:
    """Wait until the <video> in ``elem_id`` has loaded metadata; return what the browser reports."""
    sel = f"#{elem_id} video"
    page.wait_for_selector(sel, state="attached", timeout=60_000)
    page.wait_for_function(
        f"() => {{ const v = document.querySelector('{sel}'); return v && v.readyState >= 1 && v.duration > 0; }}",
        timeout=60_000)
    return page.evaluate(
        f"() => {{ const v = document.querySelector('{sel}'); "
        "return {duration: v.duration, width: v.videoWidth, height: v.videoHeight, error: v.error && v.error.code}; }")


def _scroll_to(page, selector: str) -> None:
    page.evaluate(f"() => window.scrollTo(0, document.querySelector('{selector}').getBoundingClientRect().top"
                  " + window.scrollY - 8)")
    page.wait_for_timeout(500)


def test_upload_example_run_and_inspect(browser, app_url, tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(app_url)
    page.wait_for_selector("#avtok-run")

    # 1. the bundled example (uploaded like a user would), trimmed and capped for speed
    page.locator("#avtok-source input[type=file]").set_input_files(str(ROOT / "assets" / "bigbuckbunny.mp4"))
    page.wait_for_function("() => document.querySelector('#avtok-source-info').innerText.includes('1280×720')",
                           timeout=60_000)
    assert "aac 48 kHz, 6 ch" in page.inner_text("#avtok-source-info")
    page.fill("#avtok-duration input", "1")
    page.keyboard.press("Tab")
    page.fill("#avtok-cap input", "256")
    page.keyboard.press("Tab")
    # the family selector: another family shows its own setting, factors and licence (name + link)
    page.locator("#avtok-family").get_by_label("Wan 2.2").check()
    page.wait_for_function("() => document.querySelector('#avtok-backend').innerText.includes('Wan2.2-4x16x16')",
                           timeout=30_000)
    backend = page.inner_text("#avtok-backend")
    assert "48 latent channels" in backend and "Apache-2.0" in backend and "weights found" in backend
    assert page.locator("#avtok-backend a", has_text="Apache-2.0").get_attribute("href").startswith("https://")
    page.wait_for_function("() => document.querySelector('#avtok-estimate').innerText.includes('Wan2.2-4x16x16')",
                           timeout=30_000)
    page.locator("#avtok-family").get_by_label("Cosmos 0.1").check()
    page.locator("#avtok-setting").get_by_label("CV8x8x8").check()
    page.wait_for_function("() => document.querySelector('#avtok-estimate').innerText.includes('CV8x8x8')",
                           timeout=30_000)
    estimate = page.inner_text("#avtok-estimate")
    assert "tokens" in estimate and "256×144" in estimate

    page.click("#avtok-run")
    page.wait_for_function(
        "() => { const t = document.querySelector('#avtok-status').innerText; "
        "return t.includes('Done') || t.includes('⚠'); }", timeout=300_000)
    assert "Done: CV8x8x8" in _status(page), _status(page)

    # 2. both videos play, metrics with conventions and token readouts are on the page
    orig = _video_ready(page, "avtok-original")
    recon = _video_ready(page, "avtok-reconstruction")
    assert not orig["error"] and not recon["error"]
    assert (recon["width"], recon["height"]) == (256, 144) and abs(recon["duration"] - 1.0) < 0.1
    metrics = page.inner_text("#avtok-metrics")
    for word in ("PSNR", "SSIM", "LPIPS", "Audio SI-SDR", "pooled-MSE", "dB"):
        assert word in metrics, word
    readouts = page.inner_text("#avtok-readouts")
    assert "Visual tokens" in readouts and "Total tokens" in readouts
    assert "CV8x8x8" in page.inner_text("#avtok-result-head")
    for elem, suffix in (("avtok-dl-tokens", ".safetensors"), ("avtok-dl-video", "_reconstructed.mp4"),
                         ("avtok-dl-json", "_metrics.json")):
        with page.expect_download(timeout=30_000) as dl:
            page.click(f"#{elem}")
        assert dl.value.suggested_filename.endswith(suffix), dl.value.suggested_filename
        assert Path(dl.value.path()).stat().st_size > 0
    page.mouse.move(5, 5)
    page.evaluate("() => window.scrollTo(0, 0)")
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "top_1280x800.png"))
    _scroll_to(page, "#avtok-tabs")
    page.screenshot(path=str(ARTIFACTS / "result_1280x800.png"))
    page.screenshot(path=str(ARTIFACTS / "result_1280x800_full.png"), full_page=True)

    # 3. the frame inspector shows the worst frame
    page.get_by_role("tab", name="Frame inspector").click()
    page.wait_for_selector("#avtok-wipe img", timeout=30_000)
    page.wait_for_selector("#avtok-heatmap img", timeout=30_000)
    assert "re-decoded from the token file" in page.inner_text("#avtok-frame-info")
    _scroll_to(page, "#avtok-tabs")
    page.screenshot(path=str(ARTIFACTS / "inspector_1280x800.png"))
    for tab in ("Audio", "Compare runs"):
        page.get_by_role("tab", name=tab).click()
        page.wait_for_timeout(800)
        _scroll_to(page, "#avtok-tabs")
        page.screenshot(path=str(ARTIFACTS / f"{tab.split()[0].lower()}_1280x800.png"))
    assert "CV8x8x8" in page.inner_text("#avtok-compare")

    # 4. a sweep across families on the same clip: the table and the chart have one colour per family
    page.get_by_role("tab", name="Result").click()
    page.click("#avtok-sweep-box button")  # open the accordion
    boxes = page.locator("#avtok-sweep-settings input[type=checkbox]")
    for i in range(boxes.count()):
        boxes.nth(i).uncheck()
    for name in ("Wan2.1-4x8x8", "LTXVideo-8x32x32", "Cosmos1-CV8x8x8", "DV8x16x16"):
        page.locator("#avtok-sweep-settings").get_by_label(name, exact=True).check()
    page.click("#avtok-sweep")
    page.wait_for_function(
        "() => { const t = document.querySelector('#avtok-status').innerText; "
        "return t.includes('finished') || t.includes('⚠'); }", timeout=600_000)
    assert "Sweep: 4/4 done" in _status(page), _status(page)
    page.get_by_role("tab", name="Compare runs").click()
    page.wait_for_timeout(1500)
    table = page.inner_text("#avtok-compare")
    for word in ("family", "latent ch", "values/pixel", "bits/pixel", "Wan 2.1", "LTX-Video", "Cosmos 1.0"):
        assert word in table, word
    # five points in four colours (one per family), and the legend names the families in those colours
    page.wait_for_function("() => document.querySelectorAll('#avtok-rq .mark-symbol path').length === 5",
                           timeout=30_000)
    colours = page.evaluate("() => [...document.querySelectorAll('#avtok-rq .mark-symbol path')]"
                            ".map(p => p.getAttribute('stroke') || p.getAttribute('fill'))")
    assert len(set(colours)) == 4, colours
    legend = page.inner_text("#avtok-rq-legend")
    for fam in ("Cosmos 0.1", "Wan 2.1", "LTX-Video", "Cosmos 1.0"):
        assert fam in legend, (fam, legend)
    # the whole chart (x axis title included) is inside its box: nothing clipped
    box, axis = page.evaluate("() => [document.querySelector('#avtok-rq').getBoundingClientRect().bottom, "
                              "[...document.querySelectorAll('#avtok-rq text')].find(t => "
                              "t.textContent.includes('bits per source pixel')).getBoundingClientRect().bottom]")
    assert axis <= box, (axis, box)
    for size in ((1280, 800), (1920, 1080)):
        page.set_viewport_size({"width": size[0], "height": size[1]})
        page.wait_for_timeout(800)
        _scroll_to(page, "#avtok-tabs")
        page.screenshot(path=str(ARTIFACTS / f"compare_sweep_{size[0]}x{size[1]}.png"))
        _scroll_to(page, "#avtok-rq")
        page.screenshot(path=str(ARTIFACTS / f"chart_{size[0]}x{size[1]}.png"))
    page.set_viewport_size({"width": 1280, "height": 800})
    # the inspector: the last sweep run on the right, an earlier run of another backend on the left
    page.get_by_role("tab", name="Frame inspector").click()
    page.locator("#avtok-left input").click()
    page.get_by_role("option", name="#2 DV8x16x16", exact=False).click()
    page.wait_for_function("() => document.querySelector('#avtok-frame-info').innerText.includes('DV8x16x16:')",
                           timeout=60_000)
    info = page.inner_text("#avtok-frame-info")
    assert "Cosmos1-CV8x8x8:" in info and "between the two" in info, info
    _scroll_to(page, "#avtok-tabs")
    page.screenshot(path=str(ARTIFACTS / "inspector_two_runs_1280x800.png"))

    # 5. the same page at 1920x1080
    page.get_by_role("tab", name="Result").click()
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.evaluate("() => window.scrollTo(0, 0)")
    page.wait_for_timeout(800)
    page.screenshot(path=str(ARTIFACTS / "top_1920x1080.png"))
    _scroll_to(page, "#avtok-tabs")
    page.screenshot(path=str(ARTIFACTS / "result_1920x1080.png"))
    page.screenshot(path=str(ARTIFACTS / "result_1920x1080_full.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.evaluate("() => window.scrollTo(0, 0)")

    # 6. a bad file: one clear line, nothing else breaks
    page.locator("#avtok-source [aria-label='Clear']").click()
    page.wait_for_selector("#avtok-source input[type=file]", state="attached", timeout=30_000)
    bad = tmp_path / "not_a_video.mp4"
    bad.write_text("plain text pretending to be a video\n" * 50)
    page.locator("#avtok-source input[type=file]").set_input_files(str(bad))
    page.wait_for_function(
        "() => document.querySelector('#avtok-source-info').innerText.includes('not a readable video file')",
        timeout=60_000)
    assert "Traceback" not in page.inner_text("body") and "⚠" in _status(page)
    count = "() => document.body.innerText.split('not a readable video file').length"
    before = page.evaluate(count)
    page.click("#avtok-run")  # running on it anyway: the same one line again (a toast), the page keeps working
    page.wait_for_function(f"() => ({count})() > {before}", timeout=60_000)
    assert "Traceback" not in page.inner_text("body")
    assert not errors, errors
    page.close()
