"""The engine: clips in, EmotionResults out.

Semantics follow the reference (funasr's Emotion2vec.inference): the whole clip is layer-
normalised, the utterance embedding is the mean of its frames and the scores are
softmax(head(mean)); "unuse" classes get a logit of -inf.  Beyond the reference:
- per-frame scores (the head on each frame) and a smoothed timeline at frame granularity;
- clips of different lengths batched with padding masks, same results as one at a time;
- clips longer than chunk_s analysed in equal windows of at most chunk_s, so memory stays
  bounded; the result says how many;
- files longer than the loader takes analysed as a stream (emotion.audiostream), window by window,
  in memory independent of their length, when the recognizer is given a `streamer`;
- one channel, or each channel apart (`channels`), besides the reference's mix;
- silence flagged (result.silent), not given an emotion of its own.
"""

from __future__ import annotations

import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from .audio import (SAMPLE_RATE, SILENT_WARNING, Audio, AudioError, is_silent, load_channels, load_clips, normalize,
                    prepare_channels)
from .defaults import GRANULARITIES  # utterance, frame
from .errors import TOO_LONG, EmotionError
from .labels import label_keys
from .model import LoadedModel, load_model
from .results import EmotionResult
from .runner import FairLock, Runner, ShapeLadder, batch_samples_budget
from .timeline import MIN_SEGMENT_S, SMOOTHING_S, segments

log = logging.getLogger(__name__)

CHUNK_S = 30.0  # seconds: longer clips are analysed in windows of at most this length
MAX_PADDING = 1.25  # a batch's longest clip is at most this many times its shortest
CPU_BATCH = 1  # on this kind of CPU padded batches do not pay (see BENCHMARKS.md)
GPU_BATCH = 32
WARMUP_CPU_S = (1.0,)  # seconds of audio run at start-up (see Recognizer.warmup)
WARMUP_GPU_S = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 30.0)  # each a CUDA graph of its own
BUSY_MESSAGE = "busy: not enough GPU memory, try again"
BATCH_SAMPLES = 32 * 30 * SAMPLE_RATE  # upper bound on padded samples in one batch
DECODE_THREADS = 4  # files of a group decoded at once by recognize_many (the loader bounds it too)



class BusyError(EmotionError, RuntimeError):
    """The device ran out of memory even for one clip at a time; the request may be retried."""

    def __init__(self, message: str = BUSY_MESSAGE):
        super().__init__(message)


class Recognizer:
    """Holds a loaded model; thread-safe (one forward pass at a time, in the order asked for).

    `loader` turns a path into clips: load_channels by default (functools.partial of it for other
    caps), or IsolatedDecoder(...).load_channels to decode in worker processes.  It is called as
    loader(path) for the default mix and loader(path, channels=...) otherwise, and may return an
    Audio or a list of them (one per channel).  `streamer`, if given (functools.partial of
    emotion.audiostream.AudioStream), analyses the files the loader refuses as too long as a stream:
    streamer(path, channels=..., sha256=...).  `ladder` and `graphs` shape the model passes (emotion.runner):
    "auto" pads batches to recurring shapes on CUDA only; graphs (None: on CUDA) replays captured
    CUDA graphs for small buckets; max_batch_memory (bytes) caps a CUDA batch's activations."""

    def __init__(self, model: LoadedModel, chunk_s: float = CHUNK_S, batch_size: int | None = None,
                 smoothing_s: float = SMOOTHING_S, min_segment_s: float = MIN_SEGMENT_S,
                 max_padding: float = MAX_PADDING, loader: Callable[..., Audio | list[Audio]] = load_channels,
                 streamer: Callable | None = None, ladder: ShapeLadder | None | str = "auto",
                 graphs: bool | None = None, max_batch_memory: float | None = None):
        self.model = model
        self.batch_samples = BATCH_SAMPLES  # on CUDA, sized from the device's memory at warm-up
        self.max_batch_memory = max_batch_memory
        cuda = model.device.type == "cuda"
        ladder = (ShapeLadder() if cuda else None) if ladder == "auto" else ladder
        self.runner = Runner(model.network, model.device, model.dtype, ladder,
                             graphs=cuda if graphs is None else graphs)
        self.loader = loader
        self.streamer = streamer
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
        lengths of typical requests are run too.  Resampling kernels are built where decoding
        happens (emotion.resample.warm_kernels), not here."""
        start = time.perf_counter()
        if seconds is None:
            seconds = WARMUP_GPU_S if self.model.device.type == "cuda" else WARMUP_CPU_S
        gen = torch.Generator().manual_seed(0)
        for s in seconds:
            wave = normalize(0.1 * torch.randn(int(s * SAMPLE_RATE), generator=gen))
            self._run([wave])
        if self.model.device.type == "cuda" and seconds:  # memory measured on the last warm-up length (30 s)
            with self._lock, torch.inference_mode():
                self.batch_samples = min(BATCH_SAMPLES, batch_samples_budget(self.runner, wave, self.max_batch_memory))
        log.info("warm-up took %.2f s", time.perf_counter() - start)

    # -- inference ---------------------------------------------------------------------------

    def _run(self, waves: list[torch.Tensor]) -> list[torch.Tensor]:
        """Frame embeddings (T_i, D) float32 for normalised 16 kHz waves, in one padded batch."""
        with self._lock, torch.inference_mode():
            return self.runner(waves)

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
                    and lengths[i] * (len(cur) + 1) <= self.batch_samples):
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
        if not clips:
            return []
        start = time.perf_counter()
        mine: list[list[tuple[int, torch.Tensor]]] = [[] for _ in clips]  # (offset, frames) per clip
        for (ci, offset, _), f in zip(pieces, frames):
            mine[ci].append((offset, f))
        merged = [torch.cat([f for _, f in windows]) for windows in mine]
        means = [m.mean(dim=0) for m in merged]  # the utterance embeddings
        probs = self._head(torch.stack(means))  # the head once for all clips
        frame_probs = self._head(torch.cat(merged)).split([len(m) for m in merged]) if granularity == "frame" else None
        shared = (time.perf_counter() - start) * 1000 / len(clips)
        results = []
        for ci, clip in enumerate(clips):
            start = time.perf_counter()
            results.append(self._result(clip, mine[ci], merged[ci], means[ci], granularity, probs[ci],
                                        None if frame_probs is None else frame_probs[ci]))
            results[-1].timing["inference_ms"] = round(cost[ci] + shared + (time.perf_counter() - start) * 1000, 2)
        return results

    def _result(self, clip: Audio, windows: list[tuple[int, torch.Tensor]], all_frames: torch.Tensor,
                embedding: torch.Tensor, granularity: str, probs: torch.Tensor,
                frame_probs: torch.Tensor | None) -> EmotionResult:
        stored = embedding if granularity == "utterance" else all_frames
        result = self._summary(clip, clip.duration_s, embedding, stored, granularity, silent=is_silent(clip.samples),
                               probs=probs)
        result.chunks, result.chunk_s = len(windows), self.chunk_s if len(windows) > 1 else None
        result.audio = clip.samples
        if frame_probs is not None:
            stride = self.model.config.total_stride
            starts = np.concatenate([(offset + np.arange(len(f)) * stride) / SAMPLE_RATE for offset, f in windows])
            self._add_frames(result, frame_probs.numpy(), starts, clip.duration_s)
        return result

    def _summary(self, clip: Audio, duration_s: float, embedding: torch.Tensor, stored: torch.Tensor,
                 granularity: str, silent: bool, probs: torch.Tensor | None = None) -> EmotionResult:
        """The result of a clip whose mean frame embedding is `embedding` (`stored` is what the
        result keeps as its embedding; `probs` the head's scores for it, when already computed)."""
        keys = label_keys(self.model.labels)
        probs = self._head(embedding) if probs is None else probs
        best = int(torch.argmax(probs))
        return EmotionResult(
            emotion=keys[best], confidence=float(probs[best]), scores={k: float(p) for k, p in zip(keys, probs)},
            labels=self.model.labels, granularity=granularity, embedding=stored.numpy(),
            input={"name": clip.name, "sha256": clip.sha256, "duration_s": round(duration_s, 4),
                   "sample_rate": clip.source_rate, "channels": clip.channels, "channel": clip.channel},
            model=self.model_info(), timing={"decode_ms": round(clip.decode_ms, 2),
                                              "resample_ms": round(clip.resample_ms, 2)},
            warnings=list(clip.warnings) + ([SILENT_WARNING] if silent else []), silent=silent,
        )

    def _add_frames(self, result: EmotionResult, frame_scores: np.ndarray, starts: np.ndarray,
                    duration_s: float) -> None:
        result.frame_starts, result.frame_scores = starts, frame_scores
        result.segments = segments(frame_scores, starts, self.hop_s, label_keys(self.model.labels), duration_s,
                                   self.smoothing_s, self.min_segment_s)

    # -- public entry points ----------------------------------------------------------------

    def recognize(self, source, sample_rate: int | None = None, granularity: str = "utterance",
                  name: str | None = None, channels: str = "mix") -> EmotionResult | list[EmotionResult]:
        """One clip: a file path, an Audio, or samples (1-D, or (n, channels)) with sample_rate.
        channels: "mix" (the reference's average), "left" or "right" give one result; "each" a
        list, one per channel (see emotion.decode.CHANNEL_CHOICES)."""
        try:
            clips = self._clips(source, sample_rate, name, channels)
        except AudioError as exc:
            return self._shape(self._stream_instead(source, exc, granularity, channels), channels)
        return self._shape(self.analyse(clips, granularity), channels)

    def recognize_many(self, sources: Iterable, granularity: str = "utterance",
                       on_result: Callable[[int, "EmotionResult | AudioError"], None] | None = None,
                       group: int | None = None, channels: str = "mix") -> list:
        """Many files: decoded, grouped by length, analysed; a bad file gives its AudioError in
        its place instead of stopping the rest.  With channels="each" a file's entry is a list of
        results, one per channel.  Files are taken `group` at a time (default: one model batch,
        so on_result reports each file as soon as it is done on a CPU), decoded on threads, the
        next group while this one is analysed."""
        sources = list(sources)
        group = group or self.batch_size
        out: list = [None] * len(sources)

        def deliver(i: int, value) -> None:
            out[i] = value
            if on_result:
                on_result(i, value)

        def load(i: int):
            try:
                return self._clips(sources[i], None, None, channels)
            except AudioError as exc:
                return exc

        pool = ThreadPoolExecutor(min(DECODE_THREADS, group), thread_name_prefix="decode")
        try:
            ahead = [pool.submit(load, i) for i in range(min(group, len(sources)))]
            for g in range(0, len(sources), group):
                decoded = [f.result() for f in ahead]
                # the next group decodes while this one is analysed (on a GPU: while the GPU runs)
                ahead = [pool.submit(load, i) for i in range(g + group, min(g + 2 * group, len(sources)))]
                clips, where = [], []
                for i, loaded in enumerate(decoded, start=g):
                    if isinstance(loaded, AudioError):
                        try:
                            deliver(i, self._shape(self._stream_instead(sources[i], loaded, granularity, channels),
                                                   channels))
                        except AudioError as final:
                            deliver(i, final)
                        continue
                    clips.extend(loaded)
                    where.extend([i] * len(loaded))
                results = self.analyse(clips, granularity) if clips else []
                for i in dict.fromkeys(where):
                    deliver(i, self._shape([r for r, w in zip(results, where) if w == i], channels))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return out

    def recognize_long(self, path: str | os.PathLike, granularity: str = "utterance",
                       channels: str = "mix", sha256: str | None = None) -> list[EmotionResult]:
        """A file of any length analysed as a stream (self.streamer, else emotion.audiostream.AudioStream
        without a cap), in memory independent of its length: one result per chosen channel, each
        window normalised and analysed on its own as it comes (see emotion.longaudio). `sha256`:
        the file's, if the caller hashed it already (the batch job does, on its decoding threads)."""
        from .longaudio import analyse_stream
        from .audiostream import AudioStream

        stream = (self.streamer or AudioStream)(path, channels=channels, sha256=sha256)
        try:
            return analyse_stream(self, stream, granularity)
        finally:
            stream.close()

    @staticmethod
    def _shape(results: list[EmotionResult], channels: str):
        return results if channels == "each" else results[0]

    def _stream_instead(self, source, error: AudioError, granularity: str, channels: str) -> list[EmotionResult]:
        """Analyse as a stream the file the loader refused as too long, if there is a streamer."""
        if error.code != TOO_LONG or self.streamer is None or not isinstance(source, (str, os.PathLike)):
            raise error
        log.info("%s: analysing it as a stream (%s)", error.name, error.reason)
        return self.recognize_long(source, granularity, channels)

    def _clips(self, source, sample_rate: int | None, name: str | None, channels: str) -> list[Audio]:
        if isinstance(source, Audio):
            return [source]
        if isinstance(source, (str, os.PathLike)):
            return load_clips(self.loader, source, channels)
        if sample_rate is None:
            raise ValueError("samples need a sample_rate")
        return prepare_channels(source, int(sample_rate), name or "samples", channels)
