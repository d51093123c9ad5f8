"""Every word the web page shows, in English and Chinese (the table is text.json beside this file).

Static labels go to the browser as a gr.I18n table (the browser's language picks; English
otherwise); text the server writes per request (results, errors, the processing log) is picked
here from the request's Accept-Language with lang_of().
"""

from __future__ import annotations

import json
import re
import string
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
    names the detail), the table's for its code in Chinese (emotion.errors.REASONS, or the web
    service's own codes: the entries reason_<code>)."""
    if lang == ZH and code in REASONS_ZH:
        return REASONS_ZH[code]
    if lang == ZH and f"reason_{code}" in TEXT:
        return t(f"reason_{code}", lang)
    return reason


def _pattern(template: str) -> re.Pattern:
    """A warn_* entry's English text as a pattern: its words literal, each {field} any text."""
    parts = [re.escape(literal) + (f"(?P<{field}>.+?)" if field else "")
             for literal, field, _, _ in string.Formatter().parse(template)]
    return re.compile("".join(parts))


# The warnings a result can carry (the library's text, in English, with figures), by kind: the
# entries warn_*, whose English is the library's wording with {fields} where the figures go.
WARNINGS = [(key, _pattern(en)) for key, (en, _) in TEXT.items() if key.startswith("warn_")]


def warning_text(warning: str, lang: str = EN) -> str:
    """A result's warning in the page's language: in Chinese the table's text for its kind, with
    the warning's own figures; English, or a warning of no known kind, as the library wrote it."""
    if lang != ZH:
        return warning
    text = " ".join(str(warning).split())
    for key, pattern in WARNINGS:
        found = pattern.fullmatch(text)
        if found:
            return t(key, lang, **found.groupdict())
    return warning


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
