"""Every word the web page shows, in English and Chinese (the table is text.json beside this file).

Static labels go to the browser as a gr.I18n table (the browser's language picks; English
otherwise); text the server writes per request (results, errors, the processing log) is picked
here from the request's Accept-Language with lang_of().
"""

from __future__ import annotations

import json
from pathlib import Path

EN, ZH = "en", "zh"

_TABLE = json.loads((Path(__file__).with_name("text.json")).read_text(encoding="utf-8"))
TEXT: dict[str, tuple[str, str]] = {key: (en, zh) for key, (en, zh) in _TABLE["text"].items()}
# Why a file was refused (emotion.audio.REASONS), in Chinese; the English reason follows in brackets.
REASONS_ZH: dict[str, str] = _TABLE["reasons_zh"]


def lang_of(accept_language: str | None) -> str:
    """The page's language for a request: Chinese when the browser puts Chinese first."""
    first = (accept_language or "").split(",")[0].strip().lower()
    return ZH if first.startswith("zh") else EN


def t(key: str, lang: str = EN, **values) -> str:
    """The text for `key` in `lang`, with its {placeholders} filled."""
    en, zh = TEXT[key]
    return (zh if lang == ZH else en).format(**values)


def reason_text(reason: str, code: str | None, lang: str = EN) -> str:
    """Why a file was refused, in the page's language: the library's own reason in English (it
    names the detail), the table's for its code (emotion.errors.REASONS) in Chinese."""
    return REASONS_ZH[code] if lang == ZH and code in REASONS_ZH else reason


def translations(**values) -> dict[str, dict[str, str]]:
    """TEXT as gr.I18n wants it (locale -> key -> text): every entry whose placeholders `values`
    fill, the rest being per-request text."""
    table: dict[str, dict[str, str]] = {EN: {}, ZH: {}}
    for key in TEXT:
        try:
            table[EN][key], table[ZH][key] = t(key, EN, **values), t(key, ZH, **values)
        except (KeyError, ValueError, IndexError):
            continue
    return {"en": table[EN], "zh-CN": table[ZH], "zh": table[ZH]}
