"""From per-frame scores to a timeline of emotion segments.

Frame scores are smoothed with a centred moving average over SMOOTHING_S, each frame takes its
best class, runs of equal classes become segments, and segments shorter than MIN_SEGMENT_S are
merged into a neighbour (the shortest first), so the timeline shows stretches a listener would
hear, not 20 ms flickers.  A segment's confidence is the mean smoothed score of its emotion over
its frames.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

SMOOTHING_S = 0.5  # seconds, moving-average window over frame scores
MIN_SEGMENT_S = 0.3  # seconds, shorter segments are merged into a neighbour


@dataclass
class Segment:
    """A stretch of audio and its emotion; the one schema for timelines and segment rows."""

    start: float  # seconds from the start of the file
    end: float
    emotion: str
    confidence: float
    scores: dict[str, float] | None = None  # every class, when the segment was scored on its own

    def to_dict(self) -> dict:
        """start, end, emotion, confidence (rounded to 4 places), and scores when present."""
        out = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}
        if self.scores is None:
            del out["scores"]
        return out


def smooth(scores: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over frames (T, C); edges average over the frames that exist."""
    if window <= 1 or len(scores) < 2:
        return scores.astype(np.float64)
    kernel = np.ones(window)
    pad = window // 2
    summed = np.stack([np.convolve(np.pad(scores[:, c], (pad, window - 1 - pad)), kernel, "valid")
                       for c in range(scores.shape[1])], axis=1)
    counts = np.convolve(np.pad(np.ones(len(scores)), (pad, window - 1 - pad)), kernel, "valid")
    return summed / counts[:, None]


def segments(frame_scores: np.ndarray, frame_starts: np.ndarray, hop_s: float, labels: list[str],
             duration_s: float, smoothing_s: float = SMOOTHING_S,
             min_segment_s: float = MIN_SEGMENT_S) -> list[Segment]:
    """Segments from per-frame scores (T, C) whose frames start at `frame_starts` seconds."""
    if len(frame_scores) == 0:
        return []
    smoothed = smooth(frame_scores, max(1, round(smoothing_s / hop_s)))
    best = smoothed.argmax(axis=1)
    # runs as [first_frame, last_frame_exclusive, class]
    runs = []
    for i, c in enumerate(best):
        if runs and runs[-1][2] == c:
            runs[-1][1] = i + 1
        else:
            runs.append([i, i + 1, int(c)])
    min_frames = max(1, round(min_segment_s / hop_s))
    while len(runs) > 1:
        shortest = min(range(len(runs)), key=lambda r: runs[r][1] - runs[r][0])
        if runs[shortest][1] - runs[shortest][0] >= min_frames:
            break
        left = runs[shortest - 1] if shortest > 0 else None
        right = runs[shortest + 1] if shortest + 1 < len(runs) else None
        target = left if right is None or (left is not None and left[1] - left[0] >= right[1] - right[0]) else right
        target[0], target[1] = min(target[0], runs[shortest][0]), max(target[1], runs[shortest][1])
        del runs[shortest]
        merged = []  # neighbours may now share a class
        for run in runs:
            if merged and merged[-1][2] == run[2]:
                merged[-1][1] = run[1]
            else:
                merged.append(run)
        runs = merged
    out = []
    for first, last, c in runs:
        start = float(frame_starts[first])
        end = min(float(frame_starts[last - 1]) + hop_s, duration_s) if last < len(best) else duration_s
        out.append(Segment(start, end, labels[c], float(smoothed[first:last, c].mean())))
    if out:
        out[0].start = 0.0
    return out
