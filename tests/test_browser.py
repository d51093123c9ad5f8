"""The web app in a real browser: Debian's chromium driven by Playwright, loopback only.

Screenshots land in test-artifacts/ (phone and desktop, after a result and after an error, a
frame-granularity result, Chinese, batch, history): look at them after a change to the page."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.chromium import CHROMIUM, CHROMIUM_ARGS, shows, upload

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

if not os.access(CHROMIUM, os.X_OK):
    if os.environ.get("EMOTION_REQUIRE_BROWSER") == "1":
        raise RuntimeError(f"chromium not found at {CHROMIUM}: tests/browser_setup.sh could not install it")
    pytest.skip(f"chromium not found at {CHROMIUM} (run tests/browser_setup.sh)", allow_module_level=True)
from playwright import sync_api  # noqa: E402

from emotion.app.page import build_app  # noqa: E402
from emotion.app.server import launch, launch_kwargs  # noqa: E402
from emotion.app.service import WebService  # noqa: E402
from tests.media import encode, write_wav  # noqa: E402
from tests.ports import free_port  # noqa: E402


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, tiny_recognizer, tiny_model):
    tmp = tmp_path_factory.mktemp("browser")
    old = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(tmp / "gradio-tmp")
    out = tmp / "outputs"
    demo = build_app(WebService(tiny_recognizer, out), owner_secret="test-secret")
    launch(demo,
           **launch_kwargs(out, models_root=tiny_model.parent, host="127.0.0.1", port=free_port()))
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


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("browser-audio")
    bad = d / "notes.wav"
    bad.write_text("this is not audio at all " * 20)
    return {"speech": write_wav(d / "speech.wav", 3.0, 44100, seed=4),
            "webm": encode(d / "voice memo.webm", 2.0, 48000, "libopus", "webm", seed=15),
            "bad": bad}


def open_page(browser, url, viewport=DESKTOP, locale="en-US"):
    context = browser.new_context(viewport=viewport, locale=locale)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.wait_for_selector("#model_status :text('tiny')")
    return context, page


HEADLINE = "#emotion_md [data-testid=markdown]"  # its own text: not the progress timer Gradio draws over it


def analyse(page) -> str:
    """Click Analyse and wait for the result (or the failure) to replace what was shown."""
    page.locator(HEADLINE).evaluate("e => e.dataset.before = e.innerText")
    page.locator("#analyse_btn").click()
    page.wait_for_function("""(s) => { const e = document.querySelector(s);
        const t = e.innerText; return t !== e.dataset.before && !t.includes('⏳') && /[%⚠🔇]/u.test(t); }""",
                           arg=HEADLINE)
    return page.locator(HEADLINE).inner_text()


def no_wider_than_the_screen(page, viewport) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= viewport["width"], f"the page is {width} px wide on a {viewport['width']} px screen"


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_result_then_failure(browser, app_url, tiny_recognizer, media, size):
    """A result, then a broken file: the failure replaces the result in place and in the log, no
    error marks on the outputs, nothing wider than the screen, nothing moving sideways."""
    viewport = PHONE if size == "phone" else DESKTOP
    context, page = open_page(browser, app_url, viewport)
    ARTIFACTS.mkdir(exist_ok=True)
    no_wider_than_the_screen(page, viewport)
    button_before = page.locator("#analyse_btn").bounding_box()
    assert "will appear here" in page.locator("#emotion_md").inner_text()  # the result's place, reserved
    assert not page.locator("#result_json_box").is_visible()  # no empty result.json before a result
    upload(page, media["speech"])
    ref = tiny_recognizer.recognize(str(media["speech"]))
    text = analyse(page)
    assert ref.label.zh in text and f"{ref.confidence * 100:.1f}%" in text and "置信度 / confidence" in text
    assert page.locator('#scores_label [data-testid="label-output-value"]').count() == 0  # one main display
    assert page.locator("#scores_label").inner_text().count("%") == 9
    for button in ("#dl_json", "#dl_audio", "#result_json_box"):
        page.locator(button).wait_for(state="visible")
    no_wider_than_the_screen(page, viewport)
    button_after = page.locator("#analyse_btn").bounding_box()
    assert abs(button_after["x"] - button_before["x"]) < 1 and abs(button_after["width"] - button_before["width"]) < 1
    page.screenshot(path=str(ARTIFACTS / f"{size}_result.png"), full_page=True)
    upload(page, media["bad"])
    text = analyse(page)
    assert "notes.wav" in text and "not a readable audio file" in text and ref.label.zh not in text
    assert "not a readable audio file" in page.locator("#process_log textarea").input_value()
    page.locator("#scores_label").wait_for(state="hidden")
    page.locator("#dl_json").wait_for(state="hidden")
    page.locator("#result_json_box").wait_for(state="hidden")  # nothing of the last result left over
    assert page.locator("#result_column .error, .toast-body.error").count() == 0  # no per-output error pills
    no_wider_than_the_screen(page, viewport)
    page.screenshot(path=str(ARTIFACTS / f"{size}_error.png"), full_page=True)
    context.close()


def test_frame_result_webm_and_history_in_two_browsers(browser, app_url, media):
    """webm (a browser calls it video/webm) is accepted; the frame view has its timeline; History
    reopens the same view; a second browser sees none of the first one's results."""
    context, page = open_page(browser, app_url, PHONE)
    upload(page, media["webm"])
    page.locator("#granularity label").nth(1).click()
    page.locator("#want_embedding input").check()
    text = analyse(page)
    assert "voice memo.webm" in text and "%" in text
    page.wait_for_function("document.querySelectorAll('#timeline_plot svg.marks path').length >= 1")
    page.locator("#segments_df table").wait_for()
    page.locator("#dl_embedding").wait_for(state="visible")
    no_wider_than_the_screen(page, PHONE)
    page.screenshot(path=str(ARTIFACTS / "phone_frame.png"), full_page=True)
    page.get_by_role("tab", name="History").click()
    page.wait_for_function("document.querySelector('#history_dd input').value.includes('voice memo.webm')")
    page.locator("#history_open").click()
    page.wait_for_function("document.querySelector('#history_emotion_md').innerText.includes('voice memo.webm')")
    page.wait_for_function("document.querySelectorAll('#history_timeline_plot svg.marks path').length >= 1")
    page.wait_for_timeout(500)  # the list's own change event reopens the same entry
    words = [" ".join(page.locator(f"#{p}emotion_md [data-testid=markdown]").text_content().split())
             for p in ("history_", "")]
    assert words[0] == words[1] and "%" in words[0]  # the same view as the original result
    page.screenshot(path=str(ARTIFACTS / "phone_history.png"), full_page=True)
    other_context, other = open_page(browser, app_url, DESKTOP)
    other.get_by_role("tab", name="History").click()
    other.locator("#history_refresh").click()
    other.wait_for_timeout(1500)
    assert other.locator("#history_dd input").input_value() == ""
    other.locator("#history_dd input").click()  # the list of choices: none of the first browser's
    other.wait_for_timeout(500)
    assert "voice memo" not in other.locator("#history_dd").inner_text()
    other.locator("#history_open").click()
    other.wait_for_function("document.querySelector('#history_emotion_md').innerText.includes('choose a result')")
    other_context.close()
    context.close()


def test_chinese_browser_gets_a_chinese_page(browser, app_url, media):
    context, page = open_page(browser, app_url, PHONE, locale="zh-CN")
    assert page.get_by_role("tab", name="分析").count() and "开始分析" in page.locator("#analyse_btn").inner_text()
    assert "就绪" in page.locator("#model_status").inner_text()
    upload(page, media["speech"])
    text = analyse(page)
    assert "置信度" in text
    log = page.locator("#process_log textarea").input_value()
    assert "时长" in log and "保存于" in log
    upload(page, media["bad"])
    assert "不是可读的音频文件" in analyse(page)
    page.screenshot(path=str(ARTIFACTS / "phone_zh_error.png"), full_page=True)
    context.close()


def test_batch_progress_table_and_downloads(browser, app_url, media, audio_dir):
    context, page = open_page(browser, app_url, DESKTOP)
    page.get_by_role("tab", name="Batch").click()
    files = [media["speech"], media["webm"], media["bad"], audio_dir / "clip.mp3"]
    page.locator('#batch_files input[type="file"]').set_input_files([str(p) for p in files])
    shows(page, "#batch_files", "clip.mp3")
    page.locator("#batch_btn").click()
    page.wait_for_function("document.querySelector('#batch_summary').innerText.includes('analysed')")
    summary = page.locator("#batch_summary").inner_text()
    assert "3 analysed, 1 failed" in summary and "notes.wav" in summary and "batch_results.csv" in summary
    table = page.locator("#batch_table").inner_text()
    assert "⚠️" in table and "not a readable audio file" in table and "voice memo.webm" in table
    page.locator("#batch_csv").wait_for(state="visible")
    page.screenshot(path=str(ARTIFACTS / "desktop_batch.png"), full_page=True)
    context.close()


def test_example_button_and_clearing(browser, app_url):
    context, page = open_page(browser, app_url, DESKTOP)
    page.locator("#example_btn").click()
    shows(page, "#file_in", "example.wav")
    assert "%" in analyse(page)
    page.locator("#file_in button.icon-button").first.click()  # clearing the audio clears the result
    page.wait_for_function("document.querySelector('#emotion_md').innerText.includes('will appear here')")
    page.locator("#scores_label").wait_for(state="hidden")
    context.close()
