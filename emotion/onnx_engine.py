"""The ONNX Runtime engine: a folder written by `emotion export` behind the Engine seam.

    engine = OnnxEngine.load("exported/")        # is_exported("exported/") tells such a folder
    engine.warmup()
    frames = engine.embed([normalised_wave])     # [(T, D)]
    logits = engine.logits(frames[0].mean(0)[None])

No PyTorch is imported here: the session runs model.onnx (emotion.export) and the head's weights
are read from head.npz, so per-frame scores need no second graph. One session per engine, created
once; passes run one at a time in the order asked (emotion.locks.FairLock), as the PyTorch
engine's do, and a batch the runtime cannot allocate is split in halves down to one wave.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from .engine import BusyError, Engine, ModelInfo
from .export import (HEAD_FILE, MODEL_FILE, ExportError, available_cores, is_exported, pad, read_manifest,
                     session_options)
from .labels import Label
from .locks import FairLock

log = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"
CPU_BATCH = 1  # waves per pass on a CPU: padded batches do not pay there (as for the PyTorch engine)
ENGINE_NAME = "onnxruntime"
PREPACK = {"fp32": False, "fp16": True, "int8": True}  # per precision: see emotion.export.session_options
__all__ = ["OnnxEngine", "is_exported", "session_options"]


def _out_of_memory(exc: Exception) -> bool:
    text = str(exc).lower()
    return "failed to allocate" in text or "bad_alloc" in text or "out of memory" in text


class OnnxEngine(Engine):
    """An exported model folder run by ONNX Runtime. Build it with OnnxEngine.load(folder)."""

    def __init__(self, folder: Path, sess, manifest: dict, head: tuple[np.ndarray, np.ndarray], threads: int,
                 prepack: bool = True):
        self.session, self.manifest, self.threads, self.prepack = sess, manifest, threads, prepack
        self.weight, self.bias = head
        self.labels = [Label(**d) for d in manifest["labels"]]
        self.hop, self.dim = int(manifest["hop"]), int(manifest["dim"])
        self.path, self.name = folder, folder.name
        self.dtype_name = manifest["precision"]
        self.providers = sess.get_providers()
        self.on_gpu = self.providers[0] != CPU_PROVIDER
        self.device = "cuda" if self.providers[0] == "CUDAExecutionProvider" else "cpu"
        self.batch_size = CPU_BATCH
        self._lock = FairLock()

    @classmethod
    def load(cls, folder: str | os.PathLike, threads: int | None = None,
             providers: list[str] | None = None, arena: bool = True,
             prepack: bool | None = None) -> "OnnxEngine":
        """Open the exported folder `folder` (see is_exported): one session on `providers` (default
        the CPU) with `threads` intra-op threads (default: the cores available), the memory arena on
        or off and weight prepacking on or off (default: PREPACK for the folder's precision); see
        session_options. Not warmed up: call warmup() (Recognizer.load does)."""
        import onnxruntime as ort

        start = time.perf_counter()
        folder = Path(folder).expanduser().resolve()
        if not is_exported(folder):
            raise ExportError(f"{folder} is not a complete exported model (no {MODEL_FILE} sealed by its "
                              "manifest.json): run emotion export again")
        manifest = read_manifest(folder)
        try:
            with np.load(folder / HEAD_FILE, allow_pickle=False) as npz:
                head = (np.ascontiguousarray(npz["weight"], np.float32), np.ascontiguousarray(npz["bias"], np.float32))
        except (OSError, ValueError, KeyError) as exc:
            raise ExportError(f"{folder / HEAD_FILE} cannot be read ({exc})") from None
        if head[0].shape != (len(manifest["labels"]), int(manifest["dim"])):
            raise ExportError(f"{folder / HEAD_FILE} has shape {head[0].shape}, not (classes, dim) as "
                              f"its manifest says")
        threads = threads or available_cores()
        if prepack is None:
            prepack = PREPACK.get(manifest.get("precision"), True)
        sess = ort.InferenceSession(str(folder / MODEL_FILE), session_options(threads, arena, prepack),
                                    providers=providers or [CPU_PROVIDER])
        engine = cls(folder, sess, manifest, head, threads, prepack)
        log.info("opened %s on %s in %.2f s", engine.describe(), ", ".join(engine.providers),
                 time.perf_counter() - start)
        return engine

    @property
    def lock_wait_s(self) -> float:
        return self._lock.waited_s

    def info(self) -> ModelInfo:
        source = self.manifest.get("source", {})
        head = source.get("head", "released")
        classes = [lb.key for lb in self.labels if not lb.masked]
        base = source.get("base") or source.get("name", self.name)
        summary = (f"{self.name} (ONNX {self.dtype_name} export of {source.get('name', '?')}, {head} head, "
                   f"{len(classes)} classes" + (f": {', '.join(classes)}" if head == "adapted" else "") + ")")
        return ModelInfo(self.name, self.dtype_name, self.device, base, head, classes, summary, ENGINE_NAME)

    def _pass(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        batch, lengths = pad(waves)
        with self._lock:
            frames, valid = self.session.run(["frames", "valid"], {"waveforms": batch, "lengths": lengths})
        counts = valid.sum(axis=1)
        return [np.ascontiguousarray(frames[i, : int(c)]) for i, c in enumerate(counts)]

    def embed(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """Frame embeddings (T_i, D) for normalised 16 kHz waves: one padded pass (the padding is
        masked in the graph), halved on an allocation failure down to one wave, then BusyError."""
        waves = [np.asarray(w, np.float32) for w in waves]
        try:
            return self._pass(waves)
        except Exception as exc:  # onnxruntime raises its own RuntimeException / Fail types
            if not _out_of_memory(exc):
                raise
            log.warning("out of memory on a batch of %d; %s", len(waves), "splitting it" if len(waves) > 1 else
                        "giving up")
        if len(waves) == 1:
            raise BusyError()
        half = len(waves) // 2
        return self.embed(waves[:half]) + self.embed(waves[half:])

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        """head.npz's weight and bias on embeddings (N, D): the graph's own head, as numbers."""
        x = np.ascontiguousarray(embeddings, dtype=np.float32)
        return x @ self.weight.T + self.bias

    def close(self) -> None:
        self.session = None
