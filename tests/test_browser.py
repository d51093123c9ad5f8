"""The web app in a real browser: Debian's chromium driven by Playwright, loopback only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/lib/chromium/chromium"
# With these Chromium makes no outside lookups or connections (see gradio.md).
CHROMIUM_ARGS = ["--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                 "--component-updater=url-source=http://127.0.0.1:9/"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

if not os.access(CHROMIUM, os.X_OK):
    if os.environ.get("EMOTION_REQUIRE_BROWSER") == "1":
        raise RuntimeError(f"chromium not found at {CHROMIUM}: tests/browser_setup.sh could not install it")
    pytest.skip(f"chromium not found at {CHROMIUM} (run tests/browser_setup.sh)", allow_module_level=True)
from playwright import sync_api  # noqa: E402

from emotion.app.page import build_app  # noqa: E402
from emotion.app.server import launch_kwargs  # noqa: E402
from emotion.app.service import WebService  # noqa: E402
from tests.ports import free_port  # noqa: E402
from tests.media import write_wav  # noqa: E402


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, tiny_recognizer, tiny_model):
    tmp = tmp_path_factory.mktemp("browser")
    old = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(tmp / "gradio-tmp")
    out = tmp / "outputs"
    demo = build_app(WebService(tiny_recognizer, out))
    demo.launch(prevent_thread_lock=True, quiet=True,
                **launch_kwargs(out, models_root=tiny_model.parent, host="127.0.0.1", port=free_port(), auth=""))
    yield demo.local_url
    demo.close()
    if old is None:
        os.environ.pop("GRADIO_TEMP_DIR", None)
    else:
        os.environ["GRADIO_TEMP_DIR"] = old


@pytest.fixture(scope="module")
def playwright():
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield b
    b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    context.close()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_wav(tmp_path_factory.mktemp("browser-audio") / "speech.wav", 3.0, 44100, seed=4)


def upload(page, path: Path) -> None:
    page.locator('#audio_in input[data-testid="file-upload"]').set_input_files(str(path))
    page.wait_for_selector('#audio_in a[data-testid="download-link"][href*="/gradio_api/file="]',
                           state="attached")


def analyse(page, tiny_recognizer, clip: Path, granularity: str):
    ref = tiny_recognizer.recognize(str(clip), granularity=granularity)
    if granularity == "frame":
        page.locator("#granularity label", has_text="frame").click()
    page.locator("#analyse_btn").click()
    page.wait_for_selector(f"#emotion_md :text('{ref.label.zh}')")
    assert f"{ref.confidence * 100:.1f}%" in page.locator("#emotion_md").inner_text()
    page.wait_for_function("document.querySelectorAll('#bar_plot svg.marks g.mark-rect path').length >= 9")
    links = page.locator('#downloads a[data-testid="download-link"]')
    links.first.wait_for()
    return ref, links


def test_utterance_in_browser(page, app_url, tiny_recognizer, clip):
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(app_url)
    page.wait_for_selector("#model_status :text('RSS')")
    upload(page, clip)
    ref, links = analyse(page, tiny_recognizer, clip, "utterance")
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    assert any("result.json" in h for h in hrefs) and any("processed_audio.wav" in h for h in hrefs)
    top = page.locator('#scores_label [data-testid="label-output-value"]').inner_text()
    assert top == ref.label.display
    assert not page.locator("#timeline_plot").is_visible()
    page.screenshot(path=str(ARTIFACTS / "app_utterance.png"), full_page=True)


def test_frame_in_browser(page, app_url, tiny_recognizer, clip):
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(app_url)
    upload(page, clip)
    page.locator("#want_embedding input").check()
    ref, links = analyse(page, tiny_recognizer, clip, "frame")
    page.wait_for_function("document.querySelectorAll('#timeline_plot svg.marks path').length >= 1")
    page.locator("#segments_df table").wait_for()
    assert ref.segments[0].emotion in page.locator("#segments_df").inner_text()
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    assert any("embedding.npy" in h for h in hrefs)
    page.screenshot(path=str(ARTIFACTS / "app_frame.png"), full_page=True)
    # the History tab lists the new result (refreshed after the analysis) and reopens it
    page.get_by_role("tab", name="History").click()
    page.locator("#history_open").click()
    page.wait_for_selector(f"#history_md :text('{ref.label.zh}')")
    page.locator('#history_files a[data-testid="download-link"]').first.wait_for()


def test_narrow_screen_stacks(page, app_url):
    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(app_url)
    audio_box = page.locator("#audio_in").bounding_box()
    result_box = page.locator("#emotion_md").bounding_box()
    assert audio_box and result_box and audio_box["width"] <= 390
    assert result_box["y"] > audio_box["y"] + audio_box["height"] - 1  # stacked, not side by side
    page.screenshot(path=str(ARTIFACTS / "app_phone.png"), full_page=True)


def test_example_button(page, app_url):
    page.goto(app_url)
    page.locator("#example_btn").click()
    page.wait_for_selector('#audio_in a[data-testid="download-link"][href*="example.wav"]', state="attached")


def test_microphone_recording(app_url, playwright):
    """Chromium's fake microphone (a beep) records through the page's own recorder, which the
    server then decodes and analyses like an upload."""
    b = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS + [
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"])
    try:
        page = b.new_context(permissions=["microphone"]).new_page()
        page.set_default_timeout(60_000)
        page.goto(app_url)
        page.locator('#audio_in button[aria-label="Record audio"]').click()
        page.locator("#audio_in button.record-button").click()
        page.wait_for_timeout(2000)
        page.locator("#audio_in button.stop-button").click()
        page.wait_for_selector('#audio_in a[data-testid="download-link"][href*="/gradio_api/file="]',
                               state="attached")
        page.locator("#analyse_btn").click()
        page.wait_for_selector("#emotion_md h2")
        text = page.locator("#emotion_md").inner_text()
        assert "%" in text and "⚠" not in text, text
        log_text = page.locator("#process_log textarea").input_value()
        seconds = float(log_text.split("duration:")[1].split("s")[0])
        assert 1.0 < seconds < 4.0, log_text  # about the two seconds recorded
    finally:
        b.close()
