"""The engine seam: where the network runs, behind one small interface.

Everything above it (windows, batching, scores, results, batch jobs, live, the web app) calls
only these methods, so a runtime is added by writing one Engine, not by touching the pipeline:

    engine.embed([wave, ...])   # normalised 16 kHz waves -> frame embeddings (T_i, D), one pass
    engine.logits(embeddings)   # (N, D) -> the head's raw outputs (N, C)

Two engines exist: emotion.torch_engine.TorchEngine (PyTorch: eager, CUDA graphs, bf16/fp16,
int8) and emotion.onnx_engine.OnnxEngine (ONNX Runtime, on a folder written by `emotion export`).
Scores are softmax(logits + mask) in emotion.recognizer, whatever the engine.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import EmotionError
from .labels import Label

SAMPLE_RATE = 16000  # Hz: what every engine takes
BUSY_MESSAGE = "busy: not enough GPU memory, try again"
WARMUP_S = 1.0  # seconds of audio a CPU engine runs at start-up


class BusyError(EmotionError, RuntimeError):
    """The device ran out of memory even for one clip at a time; the request may be retried."""

    def __init__(self, message: str = BUSY_MESSAGE):
        super().__init__(message)


@dataclass(frozen=True)
class ModelInfo:
    """Which model answers: for people (status lines, `summary`) and for results' `model`."""

    name: str  # the model folder's name
    dtype: str  # fp32, bf16, fp16 or int8
    device: str  # cpu, cuda:0, ...
    base: str  # the folder whose encoder weights run
    head: str  # "released" or "adapted"
    classes: list[str]  # the head's classes, in order (masked ones left out)
    summary: str  # all of it in one line
    engine: str = "pytorch"  # pytorch or onnxruntime

    def to_dict(self) -> dict:
        return asdict(self)


class Engine(ABC):
    """A loaded model on one runtime. Thread-safe: passes run one at a time, in the order asked.

    Attributes every engine sets: labels (the head's classes), hop (samples per frame), path (the
    model folder), name, dtype_name, device (a string), on_gpu, batch_size (waves per pass that pay
    on this device), batch_samples (padded samples a pass may hold), dim (embedding width)."""

    labels: list[Label]
    hop: int
    dim: int
    path: Path
    name: str
    dtype_name: str
    device: str
    on_gpu: bool = False
    base_path: Path | None = None  # the folder whose encoder weights run, when not `path` (an adapted head)
    adapter = None  # emotion.adapter.Adapter of an adapted head loaded on its base (None: as released)
    batch_size: int = 1
    batch_samples: int = 32 * 30 * SAMPLE_RATE

    @abstractmethod
    def embed(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """Frame embeddings (T_i, D) float32 for normalised 16 kHz waves (1-D float32), run as one
        padded pass (or split on device out-of-memory; BusyError when even one wave does not fit).
        Each wave gets what it gets alone, within float rounding."""

    @abstractmethod
    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        """The head's raw outputs (N, C) float32 for embeddings (N, D)."""

    @abstractmethod
    def info(self) -> ModelInfo:
        """Which model, head, precision and device."""

    @property
    def lock_wait_s(self) -> float:
        """Seconds the calling thread last waited for other callers' passes."""
        return 0.0

    def warmup(self, seconds: tuple[float, ...] = (WARMUP_S,)) -> float:
        """Run the shapes a first request meets so that it is as fast as the rest; returns the
        seconds it took. A CPU needs one short pass; an engine may do more (CUDA graphs)."""
        start = time.perf_counter()
        rng = np.random.default_rng(0)
        for s in seconds:
            wave = rng.standard_normal(int(s * SAMPLE_RATE)).astype(np.float32)
            self.embed([(wave - wave.mean()) / wave.std()])
        return time.perf_counter() - start

    def describe(self) -> str:
        return self.info().summary

    def close(self) -> None:
        """Free what the engine holds (sessions, device memory); it cannot be used after."""
