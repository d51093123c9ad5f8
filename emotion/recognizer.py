"""The pipeline: sources of audio in windows -> an engine -> scores -> EmotionResults.

    rec = Recognizer.load("models/emotion2vec_plus_large")   # the engine the folder asks for, warm
    result = rec.recognize("clip.wav")                       # one EmotionResult
    results = rec.recognize_many(paths, on_result=print)     # decoded ahead, batched, in order

Semantics follow the reference (funasr's Emotion2vec.inference): a clip is layer-normalised,
the utterance embedding is the mean of its frames and the scores are softmax(head(mean));
"unuse" classes get a logit of -inf.  Beyond the reference:
- any length, in windows (emotion.sources: one windowing for clips held whole and files streamed,
  each window normalised on its own; a clip of up to 30 s is one window, exactly the reference);
- per-frame scores (the head on each frame) and a smoothed timeline at frame granularity;
- clips of different lengths batched with padding masks, the same results as one at a time;
- one channel, or each channel apart, besides the reference's mix;
- silence flagged (result.silent), not given an emotion of its own.

The public building blocks, for every path that needs them (batch, live, speakers): embed()
(normalised waves -> frame embeddings, batched by length), scores() (embeddings -> class
probabilities), analyse() (sources or clips -> results) and the scheduler behind recognize_many.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from .audio import SAMPLE_RATE, SILENT_WARNING, Audio, is_silent, normalize, prepare_channels
from .defaults import GRANULARITIES  # utterance, frame
from .engine import BusyError, Engine, ModelInfo  # noqa: F401 (BusyError: what a pass may raise)
from .errors import EmotionError, SettingsError
from .labels import Label, label_keys
from .results import EmotionResult, InputInfo, Timing
from .scheduler import schedule
from .sources import AudioOpener, ClipSource, Source
from .timeline import MIN_SEGMENT_S, SMOOTHING_S, Segment, segments

log = logging.getLogger(__name__)

MAX_PADDING = 1.25  # a batch's longest wave is at most this many times its shortest


def check_granularity(granularity: str) -> None:
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, not {granularity!r}")


@dataclass
class Tally:
    """What is kept of one channel of a source as its windows are scored (Recognizer.tallies,
    score_windows, result): the sum of its frame embeddings and what each window gave, never the
    audio; the frame embeddings themselves only for a source held whole at frame granularity."""

    source: Source
    channel: str
    granularity: str
    keep_frames: bool
    total: np.ndarray | None = None  # sum of all frame embeddings, float64
    frames: int = 0
    silent: bool = True
    windows: list[Segment] = field(default_factory=list)
    means: list[np.ndarray] = field(default_factory=list)  # per window (a streamed source's frame embedding)
    held: list[np.ndarray] = field(default_factory=list)  # (T_w, D) per window, when keep_frames
    scores: list[np.ndarray] = field(default_factory=list)  # (T_w, C) per window, frame granularity
    starts: list[np.ndarray] = field(default_factory=list)
    model_ms: float = 0.0


class Recognizer:
    """An engine and the pipeline around it; thread-safe (the engine runs one pass at a time).

    opener turns a path into a Source (emotion.sources.AudioOpener: its caps, whole or streamed,
    and its loader, e.g. IsolatedDecoder(...).load_channels to decode in worker processes)."""

    def __init__(self, engine: Engine, opener: AudioOpener | None = None, smoothing_s: float = SMOOTHING_S,
                 min_segment_s: float = MIN_SEGMENT_S, max_padding: float = MAX_PADDING):
        self.engine = engine
        self.opener = opener or AudioOpener()
        self.smoothing_s, self.min_segment_s, self.max_padding = smoothing_s, min_segment_s, max_padding
        self.labels: list[Label] = engine.labels
        self._mask = np.array([-np.inf if lb.masked else 0.0 for lb in self.labels], dtype=np.float32)

    @classmethod
    def load(cls, model: str | os.PathLike | None = None, device: str | None = "auto",
             dtype: str | None = "auto", warmup: bool = True, opener: AudioOpener | None = None,
             **engine_options) -> "Recognizer":
        """Load a model folder or known name (None: models/emotion2vec_plus_large) on the engine
        it asks for (a folder written by `emotion export` runs on ONNX Runtime, any other on
        PyTorch) and warm it up.  engine_options go to the engine (TorchEngine: ladder, graphs,
        max_batch_memory, batch_size; OnnxEngine: threads, providers, arena)."""
        from .export import is_exported

        if model is not None and is_exported(Path(model)):
            from .onnx_engine import OnnxEngine

            if device not in (None, "auto", "cpu") or dtype not in (None, "auto"):
                raise SettingsError(f"{model} is an exported ONNX model: it runs on the CPU in the precision it "
                                    "was exported in (leave --device and --dtype unset)")
            engine = OnnxEngine.load(model, **{k: v for k, v in engine_options.items()
                                               if k in ("threads", "providers", "arena")})
        else:
            from .torch_engine import TorchEngine

            engine = TorchEngine.load(model, device, dtype, **engine_options)
        rec = cls(engine, opener)
        if warmup:
            rec.warmup()
        return rec

    def warmup(self) -> None:
        """Run the shapes a first request meets, so that it is as fast as the rest."""
        log.info("warm-up took %.2f s", self.engine.warmup())

    # -- what the model is ---------------------------------------------------------------------

    @property
    def hop_s(self) -> float:
        return self.engine.hop / SAMPLE_RATE

    @property
    def batch_size(self) -> int:
        return self.engine.batch_size

    @property
    def lock_wait_s(self) -> float:
        """Seconds the calling thread last waited for the model (other callers' passes)."""
        return self.engine.lock_wait_s

    def model_info(self) -> ModelInfo:
        """Which model, head, precision, device and engine answer (see engine.ModelInfo)."""
        return self.engine.info()

    # -- building blocks -------------------------------------------------------------------------

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        """Indices grouped by length so that padding stays small."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        batches: list[list[int]] = []
        for i in order:
            cur = batches[-1] if batches else None
            if (cur and len(cur) < self.engine.batch_size and lengths[i] <= self.max_padding * lengths[cur[0]]
                    and lengths[i] * (len(cur) + 1) <= self.engine.batch_samples):
                cur.append(i)
            else:
                batches.append([i])
        return batches

    def embed(self, waves: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[float]]:
        """Frame embeddings (T_i, D) of normalised 16 kHz waves, batched by length, and each
        wave's share of the model time in milliseconds."""
        frames: list[np.ndarray | None] = [None] * len(waves)
        spent = [0.0] * len(waves)
        for batch in self._batches([len(w) for w in waves]):
            start = time.perf_counter()
            outs = self.engine.embed([waves[i] for i in batch])
            elapsed = (time.perf_counter() - start) * 1000
            total = sum(len(waves[i]) for i in batch)
            for i, out in zip(batch, outs):
                frames[i], spent[i] = out, elapsed * len(waves[i]) / total
        return frames, spent

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """Class probabilities (..., C) of this model's head for embeddings (..., D), unused
        classes masked (e.g. for embeddings saved by a batch run or a cache)."""
        x = np.asarray(embeddings, dtype=np.float32)
        logits = self.engine.logits(x.reshape(-1, x.shape[-1])) + self._mask
        logits = logits - logits.max(axis=-1, keepdims=True)
        e = np.exp(logits)
        return (e / e.sum(axis=-1, keepdims=True)).reshape(*x.shape[:-1], -1).astype(np.float32)

    # -- sources to results --------------------------------------------------------------------

    def analyse(self, clips: Sequence[Audio], granularity: str = "utterance") -> list[EmotionResult]:
        """One result per decoded clip, all batched by length."""
        return [r for [r] in self.analyse_sources([ClipSource([c], self.opener.window_s) for c in clips], granularity)]

    def tallies(self, source: Source, granularity: str = "utterance") -> list[Tally]:
        """Empty tallies for a source's channels, to be filled by score_windows."""
        check_granularity(granularity)
        return [Tally(source, name, granularity, granularity == "frame" and not source.streamed)
                for name in source.names]

    def analyse_sources(self, sources: Sequence[Source], granularity: str = "utterance") -> list[list[EmotionResult]]:
        """Per source, one result per chosen channel: windows of sources held whole are batched
        together; a streamed source's windows are run batch by batch as they are decoded."""
        kept = [self.tallies(s, granularity) for s in sources]
        whole: list[tuple[Tally, int, np.ndarray]] = []
        try:
            for source, channels in zip(sources, kept):
                if not source.streamed:
                    whole += [(k, w.offset, clip) for w in source.windows() for k, clip in zip(channels, w.clips)]
                    continue
                group: list[tuple[Tally, int, np.ndarray]] = []
                for w in source.windows():
                    group += [(k, w.offset, clip) for k, clip in zip(channels, w.clips)]
                    if len(group) >= self.engine.batch_size:
                        self.score_windows(group)
                        group = []
                self.score_windows(group)
            self.score_windows(whole)
        finally:
            for source in sources:
                source.close()
        return [[self.result(k) for k in channels] for channels in kept]

    def score_windows(self, items: Sequence[tuple[Tally, int, np.ndarray]]) -> None:
        """Run windows (tally, offset in 16 kHz samples, raw 16 kHz clip), each normalised on
        its own, batched by length, and add what each gave to its tally."""
        if not items:
            return
        waves = [normalize(torch.from_numpy(np.ascontiguousarray(clip))).numpy() for _, _, clip in items]
        frames, spent = self.embed(waves)
        keys = label_keys(self.labels)
        means = np.stack([f.mean(axis=0) for f in frames])
        probs = self.scores(means)  # the head once for every window
        for (k, offset, clip), f, mean, p, ms in zip(items, frames, means, probs, spent):
            k.total = f.sum(axis=0, dtype=np.float64) + (0 if k.total is None else k.total)
            k.frames += len(f)
            k.silent = k.silent and is_silent(clip)
            best = int(np.argmax(p))
            k.windows.append(Segment(round(offset / SAMPLE_RATE, 4), round((offset + len(clip)) / SAMPLE_RATE, 4),
                                     keys[best], float(p[best]), {c: float(v) for c, v in zip(keys, p)}))
            k.means.append(mean)
            k.model_ms += ms
            if k.keep_frames:
                k.held.append(f)
            if k.granularity == "frame":
                k.scores.append(self.scores(f))
                k.starts.append((offset + np.arange(len(f)) * self.engine.hop) / SAMPLE_RATE)

    def result(self, k: Tally) -> EmotionResult:
        """The result of a tally whose windows have all been scored (its source's duration,
        warnings and timings complete)."""
        start = time.perf_counter()
        s = k.source
        embedding = (k.total / k.frames).astype(np.float32)
        probs = self.scores(embedding)
        keys = label_keys(self.labels)
        best = int(np.argmax(probs))
        if k.granularity == "utterance":
            stored = embedding
        else:  # the frames (T, D); a streamed source keeps each window's mean instead
            stored = np.concatenate(k.held) if k.keep_frames else np.stack(k.means)
        audio = s.audio
        result = EmotionResult(
            emotion=keys[best], confidence=float(probs[best]), scores={c: float(p) for c, p in zip(keys, probs)},
            labels=self.labels, granularity=k.granularity, embedding=stored,
            input=InputInfo(s.name, s.sha256, round(s.duration_s, 4), s.source_rate, s.channels, k.channel, s.path),
            model=self.model_info(), timing=Timing(round(s.decode_ms, 2), round(s.resample_ms, 2)),
            warnings=list(s.warnings) + ([SILENT_WARNING] if k.silent else []), silent=k.silent,
            chunks=len(k.windows), chunk_s=s.window_s if len(k.windows) > 1 else None,
            windows=k.windows if len(k.windows) > 1 else None,
            audio=None if audio is None else audio[s.names.index(k.channel)])
        if k.granularity == "frame":
            result.frame_starts, result.frame_scores = np.concatenate(k.starts), np.concatenate(k.scores)
            result.segments = segments(result.frame_scores, result.frame_starts, self.hop_s, keys, s.duration_s,
                                       self.smoothing_s, self.min_segment_s)
        result.timing.inference_ms = round(k.model_ms + (time.perf_counter() - start) * 1000, 2)
        return result

    # -- entry points ------------------------------------------------------------------------

    def source(self, source, sample_rate: int | None = None, name: str | None = None,
               channels: str = "mix") -> Source:
        """A Source for a path (self.opener: whole or streamed), an Audio, or samples (1-D, or
        (n, channels)) at sample_rate."""
        if isinstance(source, Source):
            return source
        if isinstance(source, Audio):
            return ClipSource([source], self.opener.window_s)
        if isinstance(source, (str, os.PathLike)):
            return self.opener(source, channels)
        if sample_rate is None:
            raise ValueError("samples need a sample_rate")
        return ClipSource(prepare_channels(source, int(sample_rate), name or "samples", channels), self.opener.window_s)

    def recognize(self, source, sample_rate: int | None = None, granularity: str = "utterance",
                  name: str | None = None, channels: str = "mix") -> EmotionResult:
        """One clip's result: a file path, an Audio, or samples (1-D, or (n, channels)) with
        sample_rate. channels: "mix" (the reference's average), "left" or "right"; for a result
        per channel, recognize_channels."""
        if channels == "each":
            raise ValueError('channels="each" gives a result per channel: use recognize_channels')
        return self.recognize_channels(source, sample_rate, granularity, name, channels)[0]

    def recognize_channels(self, source, sample_rate: int | None = None, granularity: str = "utterance",
                           name: str | None = None, channels: str = "each") -> list[EmotionResult]:
        """A result per chosen channel (all of them by default: "each"), e.g. the two sides of
        a call; a mono file gives one."""
        check_granularity(granularity)
        return self.analyse_sources([self.source(source, sample_rate, name, channels)], granularity)[0]

    def recognize_many(self, sources: Iterable, granularity: str = "utterance",
                       on_result: Callable[[int, "EmotionResult | list[EmotionResult] | EmotionError"], None]
                       | None = None, group: int | None = None, channels: str = "mix") -> list:
        """Many files (or Audio): each an EmotionResult (a list of them, one per channel, with
        channels="each"), or the EmotionError it met (an AudioError for a bad file) in its place
        instead of stopping the rest.  Files are taken `group` at a time (default: one model
        batch, so on_result reports each file as soon as it is done on a CPU), the next group
        decoded while this one is analysed (emotion.scheduler)."""
        check_granularity(granularity)
        sources = list(sources)
        out: list = [None] * len(sources)

        def work(loaded: list[Source]) -> list[list[EmotionResult]]:
            return self.analyse_sources(loaded, granularity)

        for i, outcome in schedule(sources, lambda s: self.source(s, channels=channels), work,
                                   group or self.engine.batch_size):
            if not isinstance(outcome, EmotionError) and channels != "each":
                outcome = outcome[0]
            out[i] = outcome
            if on_result:
                on_result(i, outcome)
        return out
