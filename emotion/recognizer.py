"""The engine: clips in, EmotionResults out.

Semantics follow the reference (funasr's Emotion2vec.inference): the whole clip is layer-
normalised, the utterance embedding is the mean of its frames and the scores are
softmax(head(mean)); "unuse" classes get a logit of -inf.  Beyond the reference:
- per-frame scores (the head on each frame) and a smoothed timeline at frame granularity;
- clips of different lengths batched with padding masks, same results as one at a time;
- clips longer than chunk_s analysed in equal windows of at most chunk_s, so memory stays
  bounded; the result says how many.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from .audio import SAMPLE_RATE, Audio, AudioError, load_audio, normalize, prepare
from .errors import EmotionError
from .labels import label_keys
from .model import LoadedModel, load_model
from .resample import resample
from .results import EmotionResult
from .timeline import MIN_SEGMENT_S, SMOOTHING_S, segments

log = logging.getLogger(__name__)

GRANULARITIES = ("utterance", "frame")
CHUNK_S = 30.0  # seconds: longer clips are analysed in windows of at most this length
MAX_PADDING = 1.25  # a batch's longest clip is at most this many times its shortest
CPU_BATCH = 1  # on this kind of CPU padded batches do not pay (see BENCHMARKS.md)
GPU_BATCH = 32
WARMUP_CPU_S = (1.0,)  # seconds of audio run at start-up (see Recognizer.warmup)
WARMUP_GPU_S = (1.0, 5.0, 30.0)
COMMON_RATES = (8000, 22050, 44100, 48000)  # source rates whose resampling filter is built at start-up
BUSY_MESSAGE = "busy: not enough GPU memory, try again"
BATCH_SAMPLES = 32 * 30 * SAMPLE_RATE  # upper bound on padded samples in one batch



class BusyError(EmotionError, RuntimeError):
    """The device ran out of memory even for one clip at a time; the request may be retried."""

    def __init__(self, message: str = BUSY_MESSAGE):
        super().__init__(message)


class FairLock:
    """A lock granted in the order it was asked for. A caller that asks again at once (a live
    stream's worker, window after window) cannot overtake one already waiting (an upload), so
    each waits at most for the passes queued before it. `waited_s`: the calling thread's last wait."""

    def __init__(self):
        self._cond = threading.Condition()
        self._queue: deque = deque()
        self._held = False
        self._local = threading.local()

    def __enter__(self):
        me, began = object(), time.perf_counter()
        with self._cond:
            self._queue.append(me)
            try:
                while self._held or self._queue[0] is not me:
                    self._cond.wait()
            except BaseException:  # interrupted while waiting: give up the place in the queue
                self._queue.remove(me)
                self._cond.notify_all()
                raise
            self._queue.popleft()
            self._held = True
        self._local.waited = time.perf_counter() - began
        return self

    def __exit__(self, *exc) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()

    @property
    def waited_s(self) -> float:
        return getattr(self._local, "waited", 0.0)


class Recognizer:
    """Holds a loaded model; thread-safe (one forward pass at a time, in the order asked for).

    `loader` turns a path into an Audio: load_audio by default (functools.partial of it for other
    caps), or IsolatedDecoder(...).load to decode in worker processes."""

    def __init__(self, model: LoadedModel, chunk_s: float = CHUNK_S, batch_size: int | None = None,
                 smoothing_s: float = SMOOTHING_S, min_segment_s: float = MIN_SEGMENT_S,
                 max_padding: float = MAX_PADDING, loader: Callable[[str | os.PathLike], Audio] = load_audio):
        self.model = model
        self.loader = loader
        self.chunk_s = chunk_s
        self.batch_size = batch_size or (GPU_BATCH if model.device.type == "cuda" else CPU_BATCH)
        self.smoothing_s = smoothing_s
        self.min_segment_s = min_segment_s
        self.max_padding = max_padding
        self._lock = FairLock()
        masked = [lb.masked for lb in model.labels]
        self._logit_mask = torch.tensor([float("-inf") if m else 0.0 for m in masked])

    @classmethod
    def load(cls, model: str | os.PathLike | None = None, device: str | None = "auto",
             dtype: str | None = "auto", warmup: bool = True, **kwargs) -> "Recognizer":
        """The one way to get a recognizer: load a model folder or known name (None: models/
        emotion2vec_plus_large) and warm it up. Keyword arguments go to Recognizer(), e.g.
        loader=IsolatedDecoder().load."""
        rec = cls(load_model(model, device, dtype), **kwargs)
        if warmup:
            rec.warmup()
        return rec

    @property
    def lock_wait_s(self) -> float:
        """Seconds the calling thread last waited for the model (other callers' passes)."""
        return self._lock.waited_s

    @property
    def hop_s(self) -> float:
        return self.model.config.total_stride / SAMPLE_RATE

    def model_info(self) -> dict:
        """Which model and head answer, for people (status lines) and for results' `model`: name
        (the folder), dtype, device, base (the folder whose weights run), head ("released" or
        "adapted"), classes (the head's, in order) and summary (all of it in one line)."""
        m = self.model
        return {"name": m.name, "dtype": m.dtype_name, "device": str(m.device), "base": m.base_name,
                "head": "adapted" if m.adapter else "released",
                "classes": [lb.key for lb in m.labels if not lb.masked], "summary": m.describe()}

    def warmup(self, seconds: Sequence[float] | None = None) -> None:
        """Run the shapes a first request meets so its kernels and allocations are warm.

        On a CPU one short pass is enough (measured: the first 5 s or 7.3 s request after it is as
        fast as the tenth; a 5 s pass would add 1.4 s to start-up for nothing); on a GPU the
        lengths of typical requests are run too. The resampling filters of the common rates are
        built as well."""
        start = time.perf_counter()
        if seconds is None:
            seconds = WARMUP_GPU_S if self.model.device.type == "cuda" else WARMUP_CPU_S
        gen = torch.Generator().manual_seed(0)
        for s in seconds:
            wave = 0.1 * torch.randn(int(s * SAMPLE_RATE), generator=gen)
            self._run([normalize(wave)])
        for rate in COMMON_RATES:
            resample(torch.zeros(rate // 10), rate, SAMPLE_RATE)
        log.info("warm-up took %.2f s", time.perf_counter() - start)

    # -- inference ---------------------------------------------------------------------------

    def _run(self, waves: list[torch.Tensor]) -> list[torch.Tensor]:
        """Frame embeddings (T_i, D) float32 for normalised 16 kHz waves, in one padded batch."""
        dev, dt = self.model.device, self.model.dtype
        lengths = [len(w) for w in waves]
        batch = torch.zeros(len(waves), max(lengths), dtype=dt)
        for i, w in enumerate(waves):
            batch[i, : len(w)] = w
        with self._lock, torch.inference_mode():
            batch = batch.to(dev, non_blocking=True)
            padded = len(set(lengths)) > 1
            frames, valid = self.model.network(batch, torch.tensor(lengths, device=dev) if padded else None)
            frames = frames.float()
            out = []
            for i in range(len(waves)):
                t = int(valid[i].sum()) if valid is not None else frames.shape[1]
                out.append(frames[i, :t].cpu())
        return out

    def _run_split(self, waves: list[torch.Tensor]) -> list[torch.Tensor]:
        """_run, halving the batch on device out-of-memory down to one wave, then BusyError."""
        try:
            return self._run(waves)
        except torch.OutOfMemoryError:
            log.warning("out of memory on a batch of %d; %s", len(waves),
                        "splitting it" if len(waves) > 1 else "giving up")
        # retried here, outside the except block, so the failed attempt's tensors are released
        if self.model.device.type == "cuda":
            torch.cuda.empty_cache()
        if len(waves) == 1:
            raise BusyError()
        half = len(waves) // 2
        return self._run_split(waves[:half]) + self._run_split(waves[half:])

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities for embeddings (..., D), unused classes masked."""
        proj = self.model.network.proj
        with torch.inference_mode():
            logits = proj(x.to(self.model.device, proj.weight.dtype)).float().cpu()
        return torch.softmax(logits + self._logit_mask, dim=-1)

    def head_scores(self, embeddings: np.ndarray) -> np.ndarray:
        """Class probabilities (N, C) of this model's head for utterance embeddings (N, D), as
        analyse() computes them (e.g. for embeddings saved by a batch run or a cache)."""
        return self._head(torch.as_tensor(np.asarray(embeddings, dtype=np.float32))).numpy()

    def _windows(self, wave: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
        """(offset, piece) windows of a normalised wave: the whole wave unless it is longer than
        chunk_s, else equal windows of at most chunk_s."""
        limit = int(self.chunk_s * SAMPLE_RATE)
        if len(wave) <= limit:
            return [(0, wave)]
        n = math.ceil(len(wave) / limit)
        size = math.ceil(len(wave) / n)
        return [(o, wave[o : o + size]) for o in range(0, len(wave), size)]

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        """Indices grouped by length so that padding stays small."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        batches: list[list[int]] = []
        for i in order:
            cur = batches[-1] if batches else None
            if (cur and len(cur) < self.batch_size and lengths[i] <= self.max_padding * lengths[cur[0]]
                    and lengths[i] * (len(cur) + 1) <= BATCH_SAMPLES):
                cur.append(i)
            else:
                batches.append([i])
        return batches

    def analyse(self, clips: list[Audio], granularity: str = "utterance") -> list[EmotionResult]:
        """Results for decoded clips, batched by length."""
        if granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {GRANULARITIES}, not {granularity!r}")
        pieces = []  # (clip index, offset, normalised window)
        for ci, clip in enumerate(clips):
            for offset, piece in self._windows(normalize(torch.from_numpy(clip.samples))):
                pieces.append((ci, offset, piece))
        frames: list[torch.Tensor | None] = [None] * len(pieces)
        cost = [0.0] * len(clips)
        for batch in self._batches([len(p[2]) for p in pieces]):
            start = time.perf_counter()
            outs = self._run_split([pieces[i][2] for i in batch])
            elapsed = (time.perf_counter() - start) * 1000
            total = sum(len(pieces[i][2]) for i in batch)
            for i, out in zip(batch, outs):
                frames[i] = out
                cost[pieces[i][0]] += elapsed * len(pieces[i][2]) / total
        results = []
        for ci, clip in enumerate(clips):
            start = time.perf_counter()
            mine = [(pieces[i][1], frames[i]) for i in range(len(pieces)) if pieces[i][0] == ci]
            results.append(self._result(clip, mine, granularity))
            results[-1].timing["inference_ms"] = round(cost[ci] + (time.perf_counter() - start) * 1000, 2)
        return results

    def _result(self, clip: Audio, windows: list[tuple[int, torch.Tensor]], granularity: str) -> EmotionResult:
        labels = self.model.labels
        all_frames = torch.cat([f for _, f in windows])
        embedding = all_frames.mean(dim=0)
        probs = self._head(embedding)
        keys = label_keys(labels)
        scores = {k: float(p) for k, p in zip(keys, probs)}
        best = int(torch.argmax(probs))
        result = EmotionResult(
            emotion=keys[best], confidence=float(probs[best]), scores=scores, labels=labels,
            granularity=granularity,
            embedding=(embedding if granularity == "utterance" else all_frames).numpy(),
            input={"name": clip.name, "sha256": clip.sha256, "duration_s": round(clip.duration_s, 4),
                   "sample_rate": clip.source_rate, "channels": clip.channels},
            model=self.model_info(), timing={"decode_ms": round(clip.decode_ms, 2),
                                              "resample_ms": round(clip.resample_ms, 2)},
            chunks=len(windows), chunk_s=self.chunk_s if len(windows) > 1 else None,
            warnings=list(clip.warnings), audio=clip.samples,
        )
        if granularity == "frame":
            stride = self.model.config.total_stride
            result.frame_starts = np.concatenate(
                [(offset + np.arange(len(f)) * stride) / SAMPLE_RATE for offset, f in windows])
            result.frame_scores = self._head(all_frames).numpy()
            result.segments = segments(result.frame_scores, result.frame_starts, self.hop_s, keys,
                                       clip.duration_s, self.smoothing_s, self.min_segment_s)
        return result

    # -- public entry points ----------------------------------------------------------------

    def recognize(self, source, sample_rate: int | None = None, granularity: str = "utterance",
                  name: str | None = None) -> EmotionResult:
        """One clip: a file path, an Audio, or samples (1-D, or (n, channels)) with sample_rate."""
        return self.analyse([self._as_audio(source, sample_rate, name)], granularity)[0]

    def recognize_many(self, sources: Iterable, granularity: str = "utterance",
                       on_result: Callable[[int, "EmotionResult | AudioError"], None] | None = None,
                       group: int | None = None) -> list["EmotionResult | AudioError"]:
        """Many files: decoded, grouped by length, analysed; a bad file gives its AudioError in
        its place instead of stopping the rest. Files are taken `group` at a time (default: one
        model batch, so on_result reports each file as soon as it is done on a CPU)."""
        sources = list(sources)
        group = group or self.batch_size
        out: list = [None] * len(sources)
        for g in range(0, len(sources), group):
            clips, where = [], []
            for i in range(g, min(g + group, len(sources))):
                try:
                    clips.append(self._as_audio(sources[i], None, None))
                    where.append(i)
                except AudioError as exc:
                    out[i] = exc
                    if on_result:
                        on_result(i, exc)
            for i, res in zip(where, self.analyse(clips, granularity) if clips else []):
                out[i] = res
                if on_result:
                    on_result(i, res)
        return out

    def _as_audio(self, source, sample_rate: int | None, name: str | None) -> Audio:
        if isinstance(source, Audio):
            return source
        if isinstance(source, (str, os.PathLike)):
            return self.loader(source)
        if sample_rate is None:
            raise ValueError("samples need a sample_rate")
        return prepare(np.asarray(source, dtype=np.float32), int(sample_rate), name or "samples")
