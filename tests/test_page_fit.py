"""The page as a user meets it, in Chromium at phone (390x844) and desktop (1366x900) sizes and in
both languages: everything fits the screen (batch and frame results), each channel has its own
full view, every text is in the page's language, an upload over the size limit says why in the
result's place, the layout does not jump, the speakers of a two-voice conversation (lanes,
summary, turns, "no speech", a stereo call's sides), and the small things (example hint, history
shown at once). One server for the module; screenshots in test-artifacts/ (fit_*.png)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tests.test_browser import (ARTIFACTS, PHONE, analyse, app_url, browser, media,  # noqa: F401
                                no_wider_than_the_screen, open_page, playwright)
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # after test_browser, which skips without it
from tests.chromium import shows, upload
from tests.media import speechlike

DESKTOP = {"width": 1366, "height": 900}
SIZES = {"phone": PHONE, "desktop": DESKTOP}
LOCALES = {"en": "en-US", "zh": "zh-CN"}

# The lines a text node takes, per word: a word broken across lines takes more lines than words.
LINES_PER_WORD = """el => { const r = document.createRange(); r.selectNodeContents(el);
    const tops = new Set([...r.getClientRects()].filter(x => x.width > 0).map(x => Math.round(x.top)));
    return [tops.size, el.innerText.trim().split(/\\s+/).length, el.innerText.trim()]; }"""


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"fit_{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def stereo(tmp_path_factory):
    """A call with a different voice on each side."""
    path = tmp_path_factory.mktemp("fit-audio") / "call.wav"
    sf.write(path, np.concatenate([speechlike(2.0, 16000, seed=1), 0.3 * speechlike(2.0, 16000, seed=2, pitch=300)],
                                  1), 16000)
    return path


def headers_unbroken(page, selector: str) -> None:
    """No table header is broken inside a word ("St/ar/t/(s/)")."""
    headers = page.locator(f"{selector} thead th").evaluate_all(f"els => els.map({LINES_PER_WORD})")
    assert headers, f"no table in {selector}"
    for lines, words, label in headers:
        assert lines <= words, f"the header {label!r} takes {lines} lines for {words} word(s)"


@pytest.mark.parametrize("size,lang", [("phone", "en"), ("desktop", "zh")])
def test_batch_results_fit_and_read(browser, app_url, media, size, lang):  # noqa: F811
    """After a batch with a failed file the page is no wider than the screen; the table reads
    emotion, confidence, file; a failure's reason wraps in its cell, in the page's language; the
    progress line shows next to the button."""
    viewport = SIZES[size]
    context, page = open_page(browser, app_url, viewport, LOCALES[lang])
    page.get_by_role("tab", name="Batch" if lang == "en" else "批量").click()
    files = [media["speech"], media["webm"], media["bad"]]
    page.locator('#batch_files input[type="file"]').set_input_files([str(p) for p in files])
    shows(page, "#batch_files", "notes.wav")
    page.evaluate("""() => { window.__progress = null; new MutationObserver(() => {
        const p = document.querySelector('#batch_progress .progress-text, #batch_progress .meta-text');
        if (p && !window.__progress) { const r = p.getBoundingClientRect();
            window.__progress = {top: r.top, bottom: r.bottom, left: r.left}; } })
        .observe(document.body, {subtree: true, childList: true}); }""")
    page.locator("#batch_btn").click()
    try:
        page.wait_for_function("document.querySelector('#batch_summary').innerText.includes('notes.wav')")
    except PlaywrightTimeout:  # once, under load, in a CI run (2026-12-03): keep what the page showed
        page.screenshot(path=str(ARTIFACTS / f"fit_batch_timeout_{size}_{lang}.png"), full_page=True)
        raise AssertionError("no batch summary within 60 s; the page said: "
                             + page.locator("body").inner_text()[:3000]) from None
    button = page.locator("#batch_btn").bounding_box()
    progress = page.evaluate("window.__progress")
    assert progress, "no progress line under the Batch button"
    assert 0 <= progress["top"] and progress["bottom"] <= viewport["height"], progress  # in view
    assert abs(progress["top"] - (button["y"] + button["height"])) < 120, (progress, button)  # beside the button
    page.locator("#batch_table table").wait_for()
    no_wider_than_the_screen(page, viewport)
    summary, table = page.locator("#batch_summary").inner_text(), page.locator("#batch_table").inner_text()
    reason = "not a readable audio file" if lang == "en" else "不是可读的音频文件"
    assert reason in summary and reason in table, (summary, table)
    if lang == "zh":
        assert "not a readable" not in summary + table
    headers = page.locator("#batch_table thead th").all_inner_texts()
    assert [h.strip() for h in headers] == (["Emotion · confidence", "File", "Details"] if lang == "en"
                                            else ["情感 · 置信度", "文件", "详情"]), headers
    first = page.locator("#batch_table tbody tr").first.inner_text()
    emoji = "😠🤢😨😊😐❓😢😲🤔"
    assert "%" in first and "speech.wav" in first and any(e in first for e in emoji), first
    box = page.locator("#batch_table").bounding_box()
    widths = page.locator("#batch_table table").evaluate("t => [t.scrollWidth, t.parentElement.clientWidth]")
    assert widths[0] <= box["width"] + 1, f"table content {widths[0]} px in a {box['width']} px box"
    header_height = page.locator("#batch_table thead tr").first.bounding_box()["height"]
    assert header_height < 80, f"the header row is {header_height} px tall"
    cell = page.locator("#batch_table tbody td", has_text=reason).first.bounding_box()
    assert cell["width"] < 0.6 * box["width"], f"the reason's cell is {cell['width']} px of {box['width']}"
    headers_unbroken(page, "#batch_table")
    shot(page, f"batch_{size}_{lang}")
    context.close()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_frame_result_fits_a_phone(browser, app_url, media, lang):  # noqa: F811
    """Timeline and segment table inside a 390 px screen; no header broken mid-word; the chart's
    legend in the page's language."""
    context, page = open_page(browser, app_url, PHONE, LOCALES[lang])
    upload(page, media["speech"])
    page.locator("#granularity label").nth(1).click()
    analyse(page)
    page.wait_for_function("document.querySelectorAll('#timeline_plot svg.marks path').length >= 1")
    page.locator("#segments_df table").wait_for()
    page.wait_for_timeout(300)
    no_wider_than_the_screen(page, PHONE)
    for box in ("#timeline_plot", "#segments_df"):
        right = page.locator(box).bounding_box()
        assert right["x"] + right["width"] <= PHONE["width"], (box, right)
    headers_unbroken(page, "#segments_df")
    legend = page.locator("#timeline_plot").inner_text()
    if lang == "zh":
        assert "情感" in legend, legend
        assert not any(k in legend for k in ("happy", "neutral", "angry", "sad", "other")), legend
    shot(page, f"frame_phone_{lang}")
    context.close()


# The most lines `label` takes in a textarea at any width from 150 px to its own (so that the
# path after it, whatever its length, cannot decide): its text laid out in a hidden copy with the
# textarea's own computed styles (a textarea's lines cannot be measured directly).
LABEL_LINES = """(ta, label) => { const cs = getComputedStyle(ta); const d = document.createElement('div');
    for (const p of ['fontFamily', 'fontSize', 'fontWeight', 'lineHeight', 'letterSpacing', 'wordSpacing', 'wordBreak',
                     'overflowWrap', 'lineBreak', 'whiteSpace', 'paddingLeft', 'paddingRight', 'boxSizing',
                     'hyphens', 'textTransform']) d.style[p] = cs[p];
    Object.assign(d.style, {position: 'absolute', visibility: 'hidden', top: '0', left: '0'});
    d.textContent = ta.value; ta.parentElement.appendChild(d);
    const at = ta.value.indexOf(label); const r = document.createRange();
    r.setStart(d.firstChild, at); r.setEnd(d.firstChild, at + label.length);
    let most = 0;
    for (let w = 150; w <= ta.getBoundingClientRect().width; w += 3) {
        d.style.width = w + 'px';
        const tops = new Set([...r.getClientRects()].filter(x => x.width > 0).map(x => Math.round(x.top)));
        most = Math.max(most, tops.size); }
    d.remove(); return at < 0 ? -1 : most; }"""


@pytest.mark.parametrize("size,lang", [("phone", "zh"), ("desktop", "en")])
def test_every_text_in_the_page_language(browser, app_url, media, size, lang):  # noqa: F811
    """The Live tab's panel, meter and timeline, an error (once, in the page's language), and the
    log's "saved in" label kept on one line."""
    viewport = SIZES[size]
    context, page = open_page(browser, app_url, viewport, LOCALES[lang])
    upload(page, media["bad"])
    text = analyse(page)
    log = page.locator("#process_log textarea").input_value()
    english, chinese = "not a readable audio file", "不是可读的音频文件"
    if lang == "zh":
        assert chinese in text and english not in text and "Invalid data" not in text, text
        assert chinese in log and english not in log, log
    else:
        assert english in text and chinese not in text, text
    upload(page, media["speech"])
    analyse(page)
    label = "保存于：" if lang == "zh" else "saved in:"
    log_box = page.locator("#process_log textarea")
    assert label in log_box.input_value()
    assert log_box.evaluate(LABEL_LINES, label) == 1, f"the log breaks {label!r} across lines"
    page.get_by_role("tab", name="实时" if lang == "zh" else "Live").click()
    expected = (["聆听中", "尚无声音", "现在", "等待麦克风"] if lang == "zh"
                else ["Listening", "no sound yet", "now", "waiting for the microphone"])
    page.wait_for_function("([w]) => document.querySelector('#live_now').innerText.includes(w)", arg=[expected[0]])
    live = " ".join(page.locator(s).inner_text() for s in ("#live_now", "#live_meter", "#live_timeline"))
    live += " " + page.locator("#live_log textarea").input_value()
    for word in expected:
        assert word in live, (word, live)
    if lang == "zh":
        for word in ("Listening", "no sound", "now", "waiting"):
            assert word not in live, (word, live)
    shot(page, f"text_{size}_{lang}")
    context.close()


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_the_layout_does_not_jump(browser, app_url, media, size):  # noqa: F811
    """Loading a file and its first result move neither the Analyse button nor, by more than the
    headline's height, the processing log."""
    viewport = SIZES[size]
    context, page = open_page(browser, app_url, viewport)

    def where(selector: str) -> float:  # on the page, not the screen: scrolling does not count
        return page.locator(selector).bounding_box()["y"] + page.evaluate("scrollY")

    button, log = where("#analyse_btn"), where("#process_log")
    upload(page, media["speech"])
    assert abs(where("#analyse_btn") - button) < 2, "the Analyse button moved when a file was loaded"
    analyse(page)
    page.locator("#scores_label").wait_for(state="visible")
    assert abs(where("#analyse_btn") - button) < 2, "the Analyse button moved with the result"
    assert abs(where("#process_log") - log) < 100, f"the log moved from y {log:.0f} to {where('#process_log'):.0f}"
    shot(page, f"jump_{size}")
    context.close()


@pytest.mark.parametrize("size,lang", [("phone", "zh"), ("desktop", "en")])
def test_example_hint_and_history_shown_at_once(browser, app_url, size, lang):  # noqa: F811
    """The example button says what to press next; History shows the newest result without Open."""
    viewport = SIZES[size]
    context, page = open_page(browser, app_url, viewport, LOCALES[lang])
    page.locator("#example_btn").click()
    shows(page, "#file_in", "example.wav")
    hint = "press Analyse" if lang == "en" else "开始分析"
    page.wait_for_function("([h]) => document.querySelector('#emotion_md').innerText.includes(h)", arg=[hint])
    analyse(page)
    text = page.locator("#emotion_md [data-testid=markdown]").inner_text()
    page.get_by_role("tab", name="History" if lang == "en" else "历史").click()
    page.wait_for_function("document.querySelector('#history_dd input').value.includes('example.wav')")
    page.wait_for_function("document.querySelector('#history_emotion_md').innerText.includes('example.wav')")
    shown = page.locator("#history_emotion_md [data-testid=markdown]").inner_text()
    assert shown.split()[:4] == text.split()[:4]  # the newest result, shown without pressing Open
    shot(page, f"history_{size}_{lang}")
    context.close()


@pytest.fixture(scope="module")
def too_large(tmp_path_factory):
    """A file over the 100 MB upload limit (sparse: it costs no disk)."""
    path = tmp_path_factory.mktemp("fit-large") / "long call.wav"
    with open(path, "wb") as fh:
        fh.truncate(101 * 2**20)
    return path


@pytest.mark.parametrize("size,lang", [("phone", "zh"), ("desktop", "en")])
def test_an_upload_over_the_limit_says_why_in_place(browser, app_url, media, too_large, size, lang):  # noqa: F811
    """The reason in the result's place and the log, in the page's language, as for any bad file;
    no passing pop-up, no error pill."""
    viewport = SIZES[size]
    context, page = open_page(browser, app_url, viewport, LOCALES[lang])
    upload(page, media["speech"])
    analyse(page)
    page.locator("#file_in button.icon-button").first.click()  # as a user replaces a file
    page.wait_for_selector("#file_in button.icon-button", state="detached")
    page.locator('#file_in input[type="file"]').set_input_files(str(too_large))
    reason = "over the 100 MB limit" if lang == "en" else "超过单个文件 100 MB 的上限"
    page.wait_for_function("([r]) => document.querySelector('#emotion_md').innerText.includes(r)", arg=[reason])
    headline = page.locator("#emotion_md").inner_text()
    assert "long call.wav" in headline and "⚠️" in headline, headline
    assert reason in page.locator("#process_log textarea").input_value()
    page.locator("#scores_label").wait_for(state="hidden")
    assert page.locator("#file_in .error, #result_column .error, .toast-body.error").count() == 0
    no_wider_than_the_screen(page, viewport)
    shot(page, f"too_large_{size}_{lang}")
    context.close()


@pytest.mark.parametrize("size,lang", [("phone", "zh"), ("desktop", "en")])
def test_a_batch_file_over_the_limit_says_why(browser, app_url, media, too_large, size, lang):  # noqa: F811
    """Batch: a file over the limit is named with its reason in the summary, in the page's
    language (no passing pop-up, no error pill); the others chosen with it are uploaded and
    analysed, and the summary names the refused file again beside their result."""
    viewport = SIZES[size]
    context, page = open_page(browser, app_url, viewport, LOCALES[lang])
    page.get_by_role("tab", name="Batch" if lang == "en" else "批量").click()
    page.locator('#batch_files input[type="file"]').set_input_files([str(media["speech"]), str(too_large)])
    reason = "over the 100 MB limit" if lang == "en" else "超过单个文件 100 MB 的上限"
    page.wait_for_function("([r]) => document.querySelector('#batch_summary').innerText.includes(r)", arg=[reason])
    summary = page.locator("#batch_summary").inner_text()
    assert "long call.wav" in summary and "⚠️" in summary, summary
    assert ("not added" if lang == "en" else "未加入") in summary, summary
    shows(page, "#batch_files", "speech.wav")
    assert "long call" not in page.locator("#batch_files").inner_text()
    assert page.locator("#batch_files .error, .toast-body.error").count() == 0
    no_wider_than_the_screen(page, viewport)
    shot(page, f"batch_too_large_{size}_{lang}")
    page.locator("#batch_btn").click()
    page.locator("#batch_table table").wait_for()
    summary = page.locator("#batch_summary").inner_text()
    assert reason in summary and "long call.wav" in summary, summary  # named again with the result
    table = page.locator("#batch_table").inner_text()
    assert "speech.wav" in table and "long call" not in table, table
    if lang == "zh":
        assert "over the" not in summary and "not added" not in summary, summary
    assert page.locator(".toast-body.error").count() == 0
    shot(page, f"batch_too_large_done_{size}_{lang}")
    page.locator('#batch_files input[type="file"]').set_input_files([str(media["webm"])])  # a new choice
    shows(page, "#batch_files", media["webm"].name)
    # the refusal is forgotten (its server round trip) before the next run
    page.wait_for_function("!document.querySelector('#batch_summary').innerText.includes('long call')")
    summary = page.locator("#batch_summary").inner_text()
    page.locator("#batch_btn").click()
    page.wait_for_function("([s]) => document.querySelector('#batch_summary').innerText !== s", arg=[summary])
    page.locator("#batch_table table").wait_for()
    assert "long call" not in page.locator("#batch_summary").inner_text()  # forgotten with the new choice
    context.close()


@pytest.mark.parametrize("size,lang", [("desktop", "en"), ("phone", "zh")])
def test_each_channel_has_its_own_view(browser, app_url, stereo, size, lang):  # noqa: F811
    """channels="each": a whole view per channel, side by side on a desktop, each saying its
    channel, with its own downloads; History names the channel; "left" says what was heard."""
    viewport = SIZES[size]
    left, right = ("left channel", "right channel") if lang == "en" else ("左声道", "右声道")
    context, page = open_page(browser, app_url, viewport, LOCALES[lang])
    upload(page, stereo)
    page.locator("#channels label").nth(3).click()  # each
    analyse(page)
    page.locator("#second_channel").wait_for(state="visible")
    page.wait_for_function("document.querySelector('#ch2_emotion_md').innerText.includes('%')")
    assert left in page.locator("#emotion_md").inner_text() and right in page.locator("#ch2_emotion_md").inner_text()
    for prefix, side in (("", left), ("ch2_", right)):
        for button in ("dl_json", "dl_audio"):
            page.locator(f"#{prefix}{button}").wait_for(state="visible")
        assert page.locator(f"#{prefix}dl_json").inner_text().startswith(side.split()[0].replace("声道", "")), side
        assert page.locator(f"#{prefix}scores_label").inner_text().count("%") == 9
        assert side.split()[0].replace("声道", "") in page.locator(f"#{prefix}process_log textarea").input_value()
    if size == "desktop":  # side by side
        a, b = page.locator("#emotion_md").bounding_box(), page.locator("#ch2_emotion_md").bounding_box()
        assert abs(a["y"] - b["y"]) < 5 and b["x"] > a["x"] + a["width"] - 1, (a, b)
    no_wider_than_the_screen(page, viewport)
    shot(page, f"each_{size}_{lang}")
    page.locator("#channels label").nth(1).click()  # left
    page.locator("#analyse_btn").click()
    page.locator("#second_channel").wait_for(state="hidden")
    page.wait_for_function("""([side]) => { const t = document.querySelector('#emotion_md').innerText;
        return t.includes(side) && t.includes('%') && !t.includes('⏳'); }""", arg=[left])
    assert "left" in page.locator("#process_log textarea").input_value() or "左" in page.locator(
        "#process_log textarea").input_value()
    page.get_by_role("tab", name="History" if lang == "en" else "历史").click()
    page.locator("#history_dd input").click()
    page.wait_for_timeout(500)
    entries = page.locator("#history_dd").inner_text() + " ".join(page.locator("ul[role=listbox] li").all_inner_texts())
    assert left in entries and right in entries, entries
    context.close()


@pytest.fixture(scope="module")
def calls(tmp_path_factory, lines):
    """A stereo call of the two voices (one a side) and 3 s of silence, beside the conftest's
    two-voice `conversation`."""
    from emotion.audio import SAMPLE_RATE
    from tests.voices import join

    folder = tmp_path_factory.mktemp("fit-speakers")
    left, _ = join([lines[0], np.zeros_like(lines[1]), lines[2], np.zeros_like(lines[3])])
    right, _ = join([np.zeros_like(lines[0]), lines[1], np.zeros_like(lines[2]), lines[3]])
    sf.write(folder / "stereo call.wav", np.stack([left, right], axis=1), SAMPLE_RATE)
    sf.write(folder / "silence.wav", np.zeros(3 * SAMPLE_RATE, np.float32), SAMPLE_RATE)
    return {"stereo": folder / "stereo call.wav", "silence": folder / "silence.wav"}


def choose_speakers(page, label: str) -> None:
    """Pick an entry of the Analyse tab's speakers list."""
    page.locator("#speakers input").click()
    page.get_by_role("option", name=label, exact=True).click()
    page.wait_for_function("([l]) => document.querySelector('#speakers input').value === l", arg=[label])


def speakers_fit(page, viewport) -> None:
    """The speakers block inside the screen: the lanes' bars inside their tracks, each table as
    wide as its box and never wider, headers never broken inside a word."""
    no_wider_than_the_screen(page, viewport)
    block = page.locator("#speakers_html").bounding_box()
    assert block["x"] >= 0 and block["x"] + block["width"] <= viewport["width"], block
    for box, inner in page.locator("#speakers_html table").evaluate_all(
            "ts => ts.map(t => [t.parentElement.clientWidth, t.scrollWidth])"):
        assert inner <= box + 1, f"a speakers table is {inner} px wide in a {box} px box"
    outside = page.locator("#speakers_html .lane-track").evaluate_all("""ts => ts.flatMap(t => {
        const r = t.getBoundingClientRect();
        return [...t.querySelectorAll('.turn')].map(b => b.getBoundingClientRect())
            .filter(b => b.left < r.left - 1 || b.right > r.right + 1 || b.width < 1); })""")
    assert not outside, f"turn bars outside their lane: {outside}"
    ticks = page.locator("#speakers_html .lane-ticks").evaluate("""a => { const r = a.getBoundingClientRect();
        return [...a.children].map(s => s.getBoundingClientRect())
            .filter(s => s.left < r.left - 1 || s.right > r.right + 1 || s.height > 20).length; }""")
    assert ticks == 0, "a time label of the lanes' axis is outside the axis or broken across lines"
    headers_unbroken(page, "#speakers_html")


@pytest.mark.parametrize("size,lang", [("phone", "en"), ("phone", "zh"), ("desktop", "zh")])
def test_speakers_who_felt_what(browser, app_url, conversation, calls, size, lang):  # noqa: F811
    """Speakers "auto" on two espeak-ng voices: two lanes with the four turns in order, a summary
    row per speaker and a row per turn, in the page's language, inside a phone's screen as a
    desktop's (both languages on the phone, where the tables are tightest). Then on a phone
    silence says "no speech" in place; on a desktop a stereo call with channels "each" has the two
    sides as its speakers (no second view)."""
    viewport = SIZES[size]
    zh = lang == "zh"
    context, page = open_page(browser, app_url, viewport, LOCALES[lang])
    path, where = conversation
    upload(page, path)
    choose_speakers(page, "自动" if zh else "auto")
    text = analyse(page)
    assert ("2 位说话人" if zh else "2 speakers") in text, text
    page.locator("#speakers_html .speaker-lanes").wait_for()
    lanes = page.locator("#speakers_html .lane[data-speaker]")
    assert lanes.count() == 2 and lanes.locator(".turn").count() == 4
    assert [lanes.nth(i).locator(".turn").count() for i in range(2)] == [2, 2]
    # the bars lie where the turns are: A-B-A-B along the time axis
    bars = sorted((b["x"], name) for i, name in enumerate(("S1", "S2"))
                  for b in (t.bounding_box() for t in lanes.nth(i).locator(".turn").all()))
    assert [name for _, name in bars] == ["S1", "S2", "S1", "S2"], bars
    tables = page.locator("#speakers_html table")
    assert tables.count() == 2
    summary = [r.split("\t")[0].strip() for r in tables.nth(0).locator("tbody tr").all_inner_texts()]
    assert summary == ["S1", "S2"], summary
    turns = [r.split("\t") for r in tables.nth(1).locator("tbody tr").all_inner_texts()]
    assert [r[2].strip() for r in turns] == ["S1", "S2", "S1", "S2"], turns
    for row, (start, _) in zip(turns, where):
        assert abs(float(row[0]) - start) < 0.5, (row, start)
    block = page.locator("#speakers_html").inner_text()
    words = {"en": ("Who felt what", "Turns", "Speaker"), "zh": ("谁有什么情感", "发言轮次", "说话人")}
    ours, theirs = words[lang], words["en" if zh else "zh"]
    assert all(w in block for w in ours) and not any(w in block for w in theirs), block
    speakers_fit(page, viewport)
    shot(page, f"speakers_{size}_{lang}")
    if size == "phone":
        upload(page, calls["silence"])
        text = analyse(page)
        reason = "没有语音：语音活动检测在 silence.wav" if zh else "no speech: the voice activity detector found none"
        page.wait_for_function("([r]) => document.querySelector('#speakers_html').innerText.includes(r)",
                               arg=[reason])
        assert ("静音" if zh else "silent") in text, text  # the whole clip's headline says so too
        assert page.locator("#speakers_html table, #speakers_html .lane").count() == 0
        no_wider_than_the_screen(page, viewport)
        shot(page, f"speakers_none_{size}_{lang}")
    else:
        upload(page, calls["stereo"])
        page.locator("#channels label").nth(3).click()  # each
        text = analyse(page)
        assert ("2 位说话人" if zh else "2 speakers") in text and "stereo call.wav" in text, text
        sides = ["左", "右"] if zh else ["left", "right"]
        page.wait_for_function("([s]) => [...document.querySelectorAll('#speakers_html .lane-name')]"
                               ".map(e => e.innerText.trim()).join(',').startsWith(s)", arg=[",".join(sides)])
        assert page.locator("#speakers_html .lane[data-speaker]").count() == 2
        assert not page.locator("#second_channel").is_visible()  # the sides are speakers, not two results
        log = page.locator("#process_log textarea").input_value()
        assert ("每个声道一位说话人" if zh else "one speaker per channel") in log, log
        speakers_fit(page, viewport)
        shot(page, f"speakers_each_{size}_{lang}")
    context.close()
