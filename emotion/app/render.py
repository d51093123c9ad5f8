"""What the page shows of a result, as plain values (text, tables): no Gradio here, so the page
module only places them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..labels import display_name, label_keys
from ..results import AUDIO_FILE, EMBEDDING_FILE, RESULT_FILE, EmotionResult

MAX_PLOT_FRAMES = 600  # timeline points per emotion; longer clips are subsampled for the chart
SEGMENT_COLUMNS = ["start_s", "end_s", "emotion", "label", "confidence"]


def status_text(info: dict) -> str:
    """The status line: ready, model, device, dtype and memory (WebService.status())."""
    parts = [f"**Ready** · model {info['name']}", f"device {info['device']}", f"dtype {info['dtype']}"]
    if info.get("rss_mb") is not None:
        parts.append(f"RSS {info['rss_mb']:.0f} MB")
    if info.get("gpu_mb") is not None:
        parts.append(f"GPU {info['gpu_mb']:.0f} MB")
    return " · ".join(parts)


def headline(emoji: str, zh: str, key: str, confidence: float) -> str:
    return f"## {display_name(key, zh, emoji)} {confidence * 100:.1f}%"


def tendencies(top: list[dict]) -> str:
    """The runners-up of a result's `top` list, in one line."""
    rest = top[1:]
    if not rest:
        return ""
    items = ", ".join(f"{display_name(t['emotion'], t['label_zh'], t['emoji'])} {t['score'] * 100:.1f}%"
                      for t in rest)
    return f"Also: {items}"


def score_labels(res: EmotionResult) -> dict[str, float]:
    """Every unmasked class's score, keyed by its display name."""
    return {lb.display: float(res.scores[lb.key]) for lb in res.labels if not lb.masked}


def score_bars(res: EmotionResult) -> pd.DataFrame:
    return pd.DataFrame({"emotion": list(res.scores), "score": [float(v) for v in res.scores.values()]})


def timeline_points(res: EmotionResult) -> pd.DataFrame:
    """Per-frame scores in long format (time_s, score, emotion), at most MAX_PLOT_FRAMES times."""
    starts = np.asarray(res.frame_starts, dtype=np.float64)
    scores = np.asarray(res.frame_scores, dtype=np.float64)
    step = max(1, int(np.ceil(len(starts) / MAX_PLOT_FRAMES)))
    starts, scores = starts[::step], scores[::step]
    keys = label_keys(res.labels)
    rows = {"time_s": np.repeat(starts, len(keys)), "score": scores.reshape(-1),
            "emotion": np.tile(keys, len(starts))}
    return pd.DataFrame(rows)


def segment_table(res: EmotionResult) -> pd.DataFrame:
    labels = {lb.key: lb for lb in res.labels}
    rows = [{"start_s": round(s.start, 2), "end_s": round(s.end, 2), "emotion": s.emotion,
             "label": labels[s.emotion].display if s.emotion in labels else s.emotion,
             "confidence": round(float(s.confidence), 4)} for s in res.segments]
    return pd.DataFrame(rows, columns=SEGMENT_COLUMNS)


def process_log(res: EmotionResult, folder: Path, request_ms: float) -> str:
    t = res.timing
    lines = [f"file: {res.input.get('name')}  duration: {res.input.get('duration_s', 0):.2f} s  "
             f"source rate: {res.input.get('sample_rate')} Hz  channels: {res.input.get('channels')}",
             f"granularity: {res.granularity}  chunks: {res.chunks}",
             f"decode: {t.get('decode_ms', 0) - t.get('resample_ms', 0):.1f} ms  "
             f"resample: {t.get('resample_ms', 0):.1f} ms  inference: {t.get('inference_ms', 0):.1f} ms  "
             f"request: {request_ms:.1f} ms",
             f"saved: {folder.name}"]
    lines += [f"warning: {w}" for w in res.warnings]
    return "\n".join(lines)


def result_files(folder: Path) -> list[str]:
    """The downloadable files of a result folder that exist."""
    return [str(folder / n) for n in (RESULT_FILE, EMBEDDING_FILE, AUDIO_FILE) if (folder / n).is_file()]


def history_summary(data: dict) -> str:
    """A saved result.json's headline, tendencies and source, in Markdown."""
    summary = headline(data.get("emoji", ""), data.get("label_zh", ""), str(data.get("emotion", "")),
                       float(data.get("confidence", 0.0)))
    return (f"{summary}\n\n{tendencies(data.get('top', []))}\n\n"
            f"file: `{data.get('input', {}).get('name', '?')}` · {data.get('granularity', '?')} · "
            f"{data.get('timestamp', '?')}")
