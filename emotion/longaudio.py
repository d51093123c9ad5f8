"""Analysis of a file streamed in windows (emotion.audiostream.AudioStream), in memory independent of
its length: each window is normalised and run on its own as it comes, and only what each window
gave is kept (its mean embedding and scores; with frame granularity also its per-frame scores,
9 numbers per 20 ms, about 6 MB an hour), never the audio or the (T, D) frame embeddings.
Windows are emotion.audiostream.WINDOW_S (6 s) long, which bounds the model's own peak too.

The file's result: scores of the mean of all frames (as for a clip held whole), `windows` (one
Segment per window: start, end, emotion, confidence, scores), and as embedding the mean of all
frames for utterance granularity, the mean of each window's frames ((windows, D)) for frame
granularity.  Unlike a clip held whole, which is normalised over its whole length, each window
is normalised over its own 6 s, closer to the utterances the model was trained on and robust to
level changes over hours.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .audio import SAMPLE_RATE, Audio, is_silent, normalize
from .labels import label_keys
from .results import EmotionResult
from .timeline import Segment


@dataclass
class _Kept:
    """What is kept of one channel of a stream."""

    total: torch.Tensor | None = None  # sum of all frame embeddings, float64
    frames: int = 0
    silent: bool = True  # every window so far was silent
    windows: list[Segment] = field(default_factory=list)
    means: list[torch.Tensor] = field(default_factory=list)  # frame granularity: per-window mean embedding
    scores: list[np.ndarray] = field(default_factory=list)  # frame granularity: (T_w, C) per window
    starts: list[np.ndarray] = field(default_factory=list)


def _keep(rec, kept: _Kept, offset: int, clip: np.ndarray, frames: torch.Tensor, granularity: str) -> None:
    keys = label_keys(rec.model.labels)
    mean = frames.mean(dim=0)
    probs = rec._head(mean)
    best = int(torch.argmax(probs))
    kept.total = frames.double().sum(dim=0) + (0 if kept.total is None else kept.total)
    kept.frames += len(frames)
    kept.silent = kept.silent and is_silent(clip)
    kept.windows.append(Segment(round(offset / SAMPLE_RATE, 4), round((offset + len(clip)) / SAMPLE_RATE, 4),
                                keys[best], float(probs[best]), {k: float(p) for k, p in zip(keys, probs)}))
    if granularity == "frame":
        kept.means.append(mean)
        kept.scores.append(rec._head(frames).numpy())
        kept.starts.append((offset + np.arange(len(frames)) * rec.model.config.total_stride) / SAMPLE_RATE)


def analyse_stream(rec, stream, granularity: str = "utterance") -> list[EmotionResult]:
    """One EmotionResult per chosen channel of `stream`, analysed window by window by `rec` (a
    Recognizer)."""
    from .recognizer import GRANULARITIES

    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, not {granularity!r}")
    kept = [_Kept() for _ in stream.names]
    spent = 0.0
    for window in stream.windows():
        start = time.perf_counter()
        waves = [normalize(torch.from_numpy(clip)) for clip in window.clips]
        frames = []
        for i in range(0, len(waves), rec.batch_size):
            frames += rec._run_split(waves[i : i + rec.batch_size])
        for k, clip, f in zip(kept, window.clips, frames):
            _keep(rec, k, window.offset, clip, f, granularity)
        spent += (time.perf_counter() - start) * 1000
    results = []
    for name, k in zip(stream.names, kept):
        info = Audio(np.zeros(0, np.float32), stream.name, stream.source_rate, stream.channels, stream.sha256,
                     stream.warnings, stream.decode_ms, stream.resample_ms, channel=name)
        embedding = (k.total / k.frames).float()
        stored = embedding if granularity == "utterance" else torch.stack(k.means)
        result = rec._summary(info, stream.duration_s, embedding, stored, granularity, silent=k.silent)
        result.chunks, result.chunk_s, result.windows = len(k.windows), stream.window_s, k.windows
        result.timing["inference_ms"] = round(spent / len(kept), 2)
        if granularity == "frame":
            rec._add_frames(result, np.concatenate(k.scores), np.concatenate(k.starts), stream.duration_s)
        results.append(result)
    return results
