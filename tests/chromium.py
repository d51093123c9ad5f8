"""Debian's Chromium as the browser tests and benchmarks start it: headless, loopback only."""

CHROMIUM = "/usr/lib/chromium/chromium"
# With these Chromium makes no outside lookups or connections (see gradio.md).
CHROMIUM_ARGS = ["--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                 "--component-updater=url-source=http://127.0.0.1:9/"]
