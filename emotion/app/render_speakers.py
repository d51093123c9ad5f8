"""What the page shows of a result's `speakers` section (emotion.speakers: who spoke when and
what each felt), as plain text and html in the page's language; no Gradio here.

One block (speakers_html) holds a lane per speaker on the recording's time axis, each turn a bar
coloured by its emotion; a summary per speaker (speaking time, share, emotion and confidence, the
emotion of the first and the last third); and the turns table. A recording with no speech shows
the reason in the block's place. Everything renders from the result's JSON, so a reopened
result (History) looks like a fresh one.
"""

from __future__ import annotations

import html

from ..labels import CHINESE, EMOJI
from .render import html_table
from .text import ZH, t

# A colour per emotion (the released head's classes), readable on white and told apart in a row.
EMOTION_COLOURS = {"angry": "#dc2626", "disgusted": "#65a30d", "fearful": "#7c3aed", "happy": "#f59e0b",
                   "neutral": "#94a3b8", "other": "#0d9488", "sad": "#2563eb", "surprised": "#db2777",
                   "unknown": "#78716c"}
SILENT_COLOUR = "#e5e7eb"  # a turn whose span holds nothing to judge
OTHER_COLOURS = ("#0891b2", "#9333ea", "#ea580c", "#4d7c0f", "#be123c")  # an adapted head's own classes
AXIS_TICKS = 4  # spaces between the time axis's labels


def section(data: dict) -> dict | None:
    """The result's speakers section, or None when speakers were not asked for."""
    found = data.get("speakers")
    return found if isinstance(found, dict) else None


def speaker_name(speaker: str, lang: str) -> str:
    """A speaker as the page names it: "S1", or the side of a call ("left", "左")."""
    return t(speaker, lang) if speaker in ("left", "right") else speaker


def emotion_short(key: str | None, lang: str) -> str:
    """An emotion in few characters for a phone's table: emoji and the name in the page's language."""
    if key is None:
        return f"🔇 {t('silence', lang)}"
    name = CHINESE.get(key.lower(), key) if lang == ZH else key
    return f"{EMOJI.get(key.lower(), '')} {name}".strip()


def colour(key: str | None) -> str:
    if key is None:
        return SILENT_COLOUR
    return EMOTION_COLOURS.get(key.lower()) or OTHER_COLOURS[sum(map(ord, key)) % len(OTHER_COLOURS)]


def count_text(data: dict, lang: str) -> str | None:
    """"2 speakers", "1 speaker" or "no speech" for the headline and the history list; None when
    speakers were not asked for."""
    found = section(data)
    if found is None:
        return None
    n = int(found.get("count", 0))
    if n == 0:
        return t("no_speech_short", lang)
    return t("speaker_one", lang) if n == 1 else t("speaker_many", lang, n=n)


def no_speech_text(data: dict, lang: str) -> str:
    """Why there are no speakers, in the page's language."""
    src = data.get("input", {})
    return t("no_speech", lang, name=src.get("name", "?"), duration=float(src.get("duration_s", 0.0)))


def log_line(data: dict, lang: str) -> str | None:
    """The processing log's line: what was asked, how the speakers were found, how many."""
    found = section(data)
    if found is None:
        return None
    asked = found.get("requested")
    asked = t("speakers_auto", lang, max=found.get("max_speakers")) if asked == "auto" else \
        t("each", lang) if asked == "channels" else str(asked)
    how = t("speakers_by_channel" if found.get("method") == "channels" else "speakers_by_voice", lang)
    return t("log_speakers", lang, found=count_text(data, lang), asked=asked, method=how)


def _lanes(found: dict, duration: float, lang: str) -> str:
    """A lane per speaker on one time axis; a turn is a bar coloured by its emotion."""
    span = max(duration, max((float(x["end"]) for x in found["turns"]), default=0.0), 1e-6)
    rows = []
    for s in found["speakers"]:
        who = s["speaker"]
        bars = []
        for turn in (x for x in found["turns"] if x["speaker"] == who):
            left, width = 100 * float(turn["start"]) / span, 100 * (float(turn["end"]) - float(turn["start"])) / span
            tip = f"{speaker_name(who, lang)} {float(turn['start']):.1f}-{float(turn['end']):.1f} s · " \
                  f"{emotion_short(turn['emotion'], lang)}"
            bars.append(f'<span class="turn" data-emotion="{html.escape(str(turn["emotion"] or ""))}" '
                        f'style="left:{left:.3f}%;width:{width:.3f}%;background:{colour(turn["emotion"])}" '
                        f'title="{html.escape(tip)}"></span>')
        rows.append(f'<div class="lane" data-speaker="{html.escape(who)}"><span class="lane-name">'
                    f'{html.escape(speaker_name(who, lang))}</span><div class="lane-track">{"".join(bars)}</div></div>')
    ticks = "".join(f'<span style="left:{100 * i / AXIS_TICKS:g}%">{span * i / AXIS_TICKS:.0f}</span>'
                    for i in range(AXIS_TICKS + 1))
    rows.append(f'<div class="lane lane-axis"><span class="lane-name">{html.escape(t("seconds_short", lang))}'
                f'</span><div class="lane-ticks">{ticks}</div></div>')
    heard = dict.fromkeys(x["emotion"] for x in found["turns"])
    legend = "".join(f'<span><i style="background:{colour(k)}"></i>{html.escape(emotion_short(k, lang))}</span>'
                     for k in heard)
    return (f'<div class="speaker-lanes"><div class="lanes-caption">{html.escape(t("speaker_lanes", lang))}</div>'
            f'{"".join(rows)}<div class="lane-legend">{legend}</div></div>')


def summary_table(found: dict, lang: str) -> str:
    """A row per speaker: who, speaking time and share, emotion and confidence, first → last third."""
    rows = []
    for s in found["speakers"]:
        felt = emotion_short(s["emotion"], lang)
        if s.get("confidence") is not None:
            felt += f" · {100 * float(s['confidence']):.1f}%"
        change = s.get("change") or {}
        first, last = change.get("first_third"), change.get("last_third")
        moved = " → ".join(emotion_short(k, lang) if k else "–" for k in (first, last))
        speaking = t("speaking", lang, seconds=float(s["speaking_s"]), share=100 * float(s["share"]))
        rows.append([speaker_name(s["speaker"], lang), speaking, felt, moved])
    # four columns, speaking time and share in one: the table fits a 390 px phone
    columns = [t(c, lang) for c in ("col_speaker", "col_speaking", "col_result", "col_change")]
    return html_table(t("speaker_summary", lang), columns, rows)


def turns_table(found: dict, lang: str) -> str:
    """A row per turn: start, end, speaker, emotion and confidence (one column, as in the batch
    table: five columns do not fit a 390 px phone)."""
    rows = [[f"{float(x['start']):.2f}", f"{float(x['end']):.2f}", speaker_name(x["speaker"], lang),
             emotion_short(x["emotion"], lang)
             + ("" if x.get("confidence") is None else f" · {100 * float(x['confidence']):.1f}%")]
            for x in found["turns"]]
    columns = [t(c, lang) for c in ("col_start", "col_end", "col_speaker", "col_result")]
    return html_table(t("speaker_turns", lang), columns, rows, numeric=(0, 1))


def speakers_html(data: dict, lang: str) -> str | None:
    """The speakers block: lanes, summary and turns; the reason in their place when there was no
    speech; None when speakers were not asked for."""
    found = section(data)
    if found is None:
        return None
    if not found.get("speakers"):
        reason = html.escape(no_speech_text(data, lang))
        return f'<div class="speakers-block"><p class="speakers-none">{reason}</p></div>'
    duration = float(data.get("input", {}).get("duration_s", 0.0))
    note = ""
    if len(found["speakers"]) == 1:
        note = f'<p class="speakers-note">{html.escape(t("speaker_only_one", lang))}</p>'
    return (f'<div class="speakers-block">{note}{_lanes(found, duration, lang)}{summary_table(found, lang)}'
            f'{turns_table(found, lang)}</div>')

