"""What the page shows of a result, as plain values (text, tables) in the page's language; no
Gradio here. Everything renders from the result's JSON (EmotionResult.to_dict(), or a saved
result.json), so a reopened result looks exactly like a fresh one."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from ..labels import CHINESE, display_name
from ..results import AUDIO_FILE, EMBEDDING_FILE, RESULT_FILE
from .text import EN, TEXT, ZH, t, warning_text

MAX_PLOT_FRAMES = 600  # timeline points per emotion; longer clips are subsampled for the chart
TIMELINE_CLASSES = 4  # the chart draws the strongest few (all scores stay in result.json): readable on a phone
SILENT_PREFIX = "silent"  # a warning that starts so: the clip holds no speech to judge


def status_text(info: dict, lang: str = EN) -> str:
    """The status line: ready, model, device, dtype and memory (WebService.status())."""
    model = info["summary"] if info.get("head") == "adapted" else info["name"]  # which head, when it is not the released
    parts = [f"🟢 **{t('ready', lang)}**", f"{t('model', lang)} {model}",
             f"{t('device', lang)} {info['device']}", f"{t('dtype', lang)} {info['dtype']}"]
    if info.get("rss_mb") is not None:
        parts.append(f"{t('memory', lang)} {info['rss_mb']:.0f} MB")
    if info.get("gpu_mb") is not None:
        parts.append(f"GPU {info['gpu_mb']:.0f} MB")
    return " · ".join(parts)


def is_silent(data: dict) -> bool:
    """Nothing to judge: the headline says so instead of showing the model's guess."""
    return bool(data.get("silent")) or any(str(w).startswith(SILENT_PREFIX) for w in data.get("warnings", []))


def channel_name(data: dict, lang: str = EN) -> str | None:
    """The channel a result heard, in the page's language ("left", "右", "channel 3"), or None
    for the mix or a mono file's only channel."""
    channel = data.get("input", {}).get("channel")
    if not channel or channel in ("mix", "mono"):
        return None
    return t(channel, lang) if channel in TEXT else str(channel)


def headline(data: dict, lang: str = EN) -> str:
    """The one main-emotion display: emoji, Chinese and English name, confidence; the file, and
    the channel heard when it was not the mix."""
    name = data.get("input", {}).get("name", "?")
    channel = channel_name(data, lang)
    heard = t("channel_heard", lang, channel=channel) if channel else ""
    if is_silent(data):
        return f"## {t('silent', lang, name=name)}" + (f"\n{heard}" if heard else "")
    emotion = str(data.get("emotion", ""))
    label = display_name(emotion, data.get("label_zh"), data.get("emoji"))
    return (f"## {label} {float(data.get('confidence', 0.0)) * 100:.1f}%\n"
            f"{t('confidence', 'zh')} / {t('confidence', 'en')} · `{name}`" + (f" · **{heard}**" if heard else ""))


def tendencies(data: dict, lang: str = EN) -> str:
    """The runners-up, in one line."""
    rest = [] if is_silent(data) else data.get("top", [])[1:]
    if not rest:
        return ""
    items = ", ".join(f"{display_name(x['emotion'], x.get('label_zh'), x.get('emoji'))} {x['score'] * 100:.1f}%"
                      for x in rest)
    return f"{t('also', lang)}: {items}"


def score_labels(data: dict) -> dict[str, float]:
    """Every class the model can predict, keyed by its display name."""
    masked = set(data.get("masked", []))
    return {display_name(k): float(v) for k, v in data.get("scores", {}).items() if k not in masked}


def timeline_points(data: dict, lang: str = EN) -> pd.DataFrame | None:
    """Per-frame scores of the TIMELINE_CLASSES strongest emotions (by mean over the clip) in
    long format (time, score, emotion), at most MAX_PLOT_FRAMES times."""
    frames = data.get("frames")
    if not frames:
        return None
    starts = np.asarray(frames["start_s"], dtype=np.float64)
    scores = np.asarray(frames["scores"], dtype=np.float64)
    strongest = np.sort(np.argsort(-scores.mean(axis=0))[:TIMELINE_CLASSES])
    step = max(1, int(np.ceil(len(starts) / MAX_PLOT_FRAMES)))
    starts, scores = starts[::step], scores[::step, strongest]
    # short names in the page's language: the legend fits a phone
    keys = [CHINESE.get(frames["labels"][i].lower(), frames["labels"][i]) if lang == ZH else frames["labels"][i]
            for i in strongest]
    return pd.DataFrame({t("col_time", lang): np.repeat(starts, len(keys)), t("col_score", lang): scores.reshape(-1),
                         t("col_emotion", lang): np.tile(keys, len(starts))})


def html_table(caption: str, columns: list[str], rows: list[list], numeric: tuple[int, ...] = ()) -> str:
    """A plain table for reading (the page's CSS `.reading-table`): as wide as its box and never
    wider, long cells wrapped, headers broken only between words; `numeric` columns right-aligned."""
    def cell(tag: str, i: int, value) -> str:
        css = ' class="num"' if i in numeric else ""
        return f"<{tag}{css}>{html.escape('' if value is None else str(value))}</{tag}>"

    def header(i: int, name: str) -> str:  # each word kept whole ("开始（秒）" too), lines break between words
        words = " ".join(f"<span>{html.escape(w)}</span>" for w in name.split())
        return f"<th{' class=num' if i in numeric else ''}>{words}</th>"

    head = "".join(header(i, c) for i, c in enumerate(columns))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows)
    return (f'<div class="reading-table"><table><caption>{html.escape(caption)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def segment_table(data: dict, lang: str = EN) -> str | None:
    """The frame result's segments (start, end, emotion, confidence) as an html_table."""
    if "timeline" not in data:
        return None
    rows = [[f"{s['start']:.2f}", f"{s['end']:.2f}", display_name(s["emotion"]), f"{100 * float(s['confidence']):.1f}"]
            for s in data["timeline"]]
    return html_table(t("segments", lang), [t(c, lang) for c in ("col_start", "col_end", "col_emotion",
                                                                  "col_confidence")], rows, numeric=(0, 1, 3))


def process_log(data: dict, folder: Path | None, request_ms: float | None, lang: str = EN) -> str:
    """Where the clip came from, how long each step took, where the result was saved."""
    src, timing = data.get("input", {}), data.get("timing", {})
    lines = [t("log_file", lang, name=src.get("name"), duration=src.get("duration_s", 0), rate=src.get("sample_rate"),
               channels=src.get("channels")),
             t("log_granularity", lang, granularity=t(data.get("granularity", "utterance"), lang),
               chunks=data.get("chunks", 1))]
    if channel_name(data, lang):
        lines.append(t("log_channel", lang, channel=channel_name(data, lang)))
    if request_ms is not None:
        lines.append(t("log_times", lang, decode=timing.get("decode_ms", 0) - timing.get("resample_ms", 0),
                       resample=timing.get("resample_ms", 0), inference=timing.get("inference_ms", 0),
                       request=request_ms))
    if folder is not None:
        lines.append(t("log_saved", lang, path=folder))
    lines += [t("log_warning", lang, warning=warning_text(w, lang)) for w in data.get("warnings", [])]
    return "\n".join(lines)


def result_files(folder: Path | None) -> dict[str, str | None]:
    """The result folder's downloadable files by name (None where absent)."""
    names = (RESULT_FILE, EMBEDDING_FILE, AUDIO_FILE)
    return {n: str(folder / n) if folder is not None and (folder / n).is_file() else None for n in names}


def history_label(data: dict, lang: str = EN) -> str:
    """One entry of the history list: emotion, confidence, file name and time."""
    emotion = display_name(str(data.get("emotion", "")), data.get("label_zh"), data.get("emoji"))
    time = str(data.get("timestamp", "")).replace("T", " ")[:16]
    name = data.get("input", {}).get("name", "?")
    channel = channel_name(data, lang)
    if channel:
        name += f" ({t('channel_heard', lang, channel=channel)})"
    return t("history_item", lang, emotion=emotion, confidence=100 * float(data.get("confidence", 0.0)),
             name=name, time=time)


def download_label(file_name: str, data: dict, lang: str = EN) -> str:
    """A download button's text: the file's name, with the channel it belongs to when not the mix."""
    channel = channel_name(data, lang)
    return f"{channel} · {file_name}" if channel else file_name
