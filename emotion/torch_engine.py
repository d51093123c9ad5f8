"""The PyTorch engine: a model folder loaded by emotion.model, run by emotion.runner (shape
ladder, CUDA graphs, exact fp32, pinned copies), one pass at a time in the order asked
(runner.FairLock), out-of-memory batches split in halves down to one wave."""

from __future__ import annotations

import logging
import os

import numpy as np
import torch

from .engine import SAMPLE_RATE, BusyError, Engine, ModelInfo
from .model import LoadedModel, load_model
from .locks import FairLock
from .runner import Runner, ShapeLadder, batch_samples_budget

log = logging.getLogger(__name__)

CPU_BATCH = 1  # on this kind of CPU padded batches do not pay (see BENCHMARKS.md)
GPU_BATCH = 32
WARMUP_GPU_S = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 30.0)  # each a CUDA graph of its own


class TorchEngine(Engine):
    """A LoadedModel behind the Engine interface. `ladder` and `graphs` shape the passes
    (emotion.runner): "auto" pads batches to recurring shapes on CUDA only; graphs (None: on CUDA)
    replays captured CUDA graphs for small buckets; max_batch_memory (bytes) caps a CUDA batch's
    activations."""

    def __init__(self, model: LoadedModel, ladder: ShapeLadder | None | str = "auto", graphs: bool | None = None,
                 max_batch_memory: float | None = None, batch_size: int | None = None):
        self.model = model
        self.labels = model.labels
        self.hop = model.config.total_stride
        self.dim = model.config.embed_dim
        self.path, self.name = model.path, model.name
        self.base_path, self.adapter = model.base_path, model.adapter
        self.dtype_name, self.device = model.dtype_name, str(model.device)
        self.on_gpu = model.device.type == "cuda"
        self.batch_size = batch_size or (GPU_BATCH if self.on_gpu else CPU_BATCH)
        self.max_batch_memory = max_batch_memory
        ladder = (ShapeLadder() if self.on_gpu else None) if ladder == "auto" else ladder
        self.runner = Runner(model.network, model.device, model.dtype, ladder,
                             graphs=self.on_gpu if graphs is None else graphs)
        self._lock = FairLock()

    @classmethod
    def load(cls, model: str | os.PathLike | None = None, device: str | None = "auto", dtype: str | None = "auto",
             **options) -> "TorchEngine":
        return cls(load_model(model, device, dtype), **options)

    @property
    def lock_wait_s(self) -> float:
        return self._lock.waited_s

    def info(self) -> ModelInfo:
        m = self.model
        return ModelInfo(m.name, m.dtype_name, str(m.device), m.base_name, "adapted" if m.adapter else "released",
                         [lb.key for lb in m.labels if not lb.masked], m.describe(), "pytorch")

    def _pass(self, waves: list[torch.Tensor]) -> list[torch.Tensor]:
        with self._lock, torch.inference_mode():
            return self.runner(waves)

    def _split(self, waves: list[torch.Tensor]) -> list[torch.Tensor]:
        """One pass, halving the batch on device out-of-memory down to one wave, then BusyError."""
        try:
            return self._pass(waves)
        except torch.OutOfMemoryError:
            log.warning("out of memory on a batch of %d; %s", len(waves),
                        "splitting it" if len(waves) > 1 else "giving up")
        # retried here, outside the except block, so the failed attempt's tensors are released
        if self.on_gpu:
            torch.cuda.empty_cache()
        if len(waves) == 1:
            raise BusyError()
        half = len(waves) // 2
        return self._split(waves[:half]) + self._split(waves[half:])

    def embed(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        return [f.numpy() for f in self._split([torch.from_numpy(np.asarray(w, np.float32)) for w in waves])]

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        proj = self.model.network.proj
        x = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
        with torch.inference_mode():
            return proj(x.to(self.model.device, proj.weight.dtype)).float().cpu().numpy()

    def warmup(self, seconds: tuple[float, ...] | None = None) -> float:
        """On a CPU one short pass is enough (measured: the first 5 s or 7.3 s request after it is
        as fast as the tenth); on a GPU the lengths of typical requests are run too, each a CUDA
        graph, and the batch size is then sized from the device's memory."""
        took = super().warmup(seconds or (WARMUP_GPU_S if self.on_gpu else (1.0,)))
        if self.on_gpu:  # memory measured on the last warm-up length (30 s)
            wave = torch.randn(int(WARMUP_GPU_S[-1] * SAMPLE_RATE), generator=torch.Generator().manual_seed(0))
            with self._lock, torch.inference_mode():
                budget = batch_samples_budget(self.runner, (wave - wave.mean()) / wave.std(), self.max_batch_memory)
            self.batch_samples = min(self.batch_samples, budget)
        return took
