#!/usr/bin/env bash
# Debian's chromium and fonts for tests/test_browser.py (Playwright drives it; never `playwright
# install`), and espeak-ng for tests/test_speakers.py. Idempotent and quiet. Where it cannot install, those tests are skipped, unless
# EMOTION_REQUIRE_BROWSER=1 (as in CI), where it fails.
set -u
need=()
[ -x /usr/lib/chromium/chromium ] || need+=(chromium)
# Chinese labels and emoji in the page (and the screenshots) need these fonts.
[ -e /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ] || need+=(fonts-wqy-zenhei)
[ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || need+=(fonts-noto-color-emoji)
# Two synthetic voices for tests/test_speakers.py (who spoke when).
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
if [ ${#need[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
    ($SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}") \
        >/dev/null 2>&1 || echo "browser_setup: could not install ${need[*]}" >&2
fi
exit 0
