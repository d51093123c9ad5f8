"""The queue message in a real browser (issue 23, item 4): after a double-click on Analyse, no
request of any browser may be told that one is "ahead" when nothing is queued (a stale place
used to stay for 10 minutes)."""

from __future__ import annotations

from tests.chromium import upload
from tests.test_browser import analyse, app_url, browser, media, open_page, playwright  # noqa: F401 (fixtures)

WATCH = """() => { window.seen = []; const e = document.querySelector('#emotion_md');
    new MutationObserver(() => window.seen.push(e.innerText)).observe(
        e, {subtree: true, childList: true, characterData: true}); }"""


def test_a_double_click_leaves_no_one_ahead(browser, app_url, media):  # noqa: F811
    context, page = open_page(browser, app_url)
    upload(page, media["speech"])
    page.locator("#emotion_md").evaluate("e => e.dataset.before = e.innerText")
    page.locator("#analyse_btn").dblclick()
    page.wait_for_function("""() => { const e = document.querySelector('#emotion_md');
        const t = e.innerText; return t !== e.dataset.before && !t.includes('⏳') && /[%⚠🔇]/u.test(t); }""")
    page.wait_for_timeout(1500)  # whatever the second click set off has ended
    other, page2 = open_page(browser, app_url)  # another browser, later: nothing is queued
    for p in (page2, page):
        upload(p, media["webm"])
        p.evaluate(WATCH)
        analyse(p)
        seen = p.evaluate("window.seen")
        assert seen and not any("ahead" in s for s in seen), seen
    other.close()
    context.close()
