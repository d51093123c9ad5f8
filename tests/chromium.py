"""Debian's Chromium as the browser tests and benchmarks start it: headless, loopback only; and
what they do on the page alike."""

from pathlib import Path

CHROMIUM = "/usr/lib/chromium/chromium"
# With these Chromium makes no outside lookups or connections (see gradio.md).
CHROMIUM_ARGS = ["--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                 "--component-updater=url-source=http://127.0.0.1:9/"]


def upload(page, path: Path) -> None:
    """Into the file picker, replacing what is there (as a user clears it first)."""
    clear = page.locator("#file_in button.icon-button")
    if clear.count():
        clear.first.click()
        page.wait_for_selector("#file_in button.icon-button", state="detached")
    page.locator('#file_in input[type="file"]').set_input_files(str(path))
    shows(page, "#file_in", path.name)


def shows(page, selector: str, name: str) -> None:
    """Wait until the component shows a file name (the picker splits it into stem and extension)."""
    page.wait_for_function("([s, n]) => document.querySelector(s).innerText.replace(/\\s/g, '').includes(n)",
                           arg=[selector, name.replace(" ", "")])
