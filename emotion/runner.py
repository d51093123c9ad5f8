"""One model pass over normalised 16 kHz waves: shapes, precision, transfers and CUDA graphs.

The recognizer decides which waves go together (emotion.recognizer); a Runner runs them and gives
each wave's frame embeddings back, the same whichever of these is on:
- shapes (ShapeLadder): to a GPU every new padded length is a new shape (cuDNN plans, kernel
  choice, a graph of its own). Padding a batch to whole seconds and to a batch size from a short
  list makes shapes recur. The padding is masked, so each wave gets what it gets alone.
- precision (exact_fp32): cuDNN convolutions run in TF32 by default on CUDA, which moved fp32
  scores by 1e-3; fp32 passes run with TF32 off, so fp32 means fp32.
- transfers: a batch is built in one pinned host buffer and copied in once, non-blocking; the
  frames of all its waves come out in one copy, in fp32, cut to the longest wave.
- graphs (GraphCache): on CUDA the forward pass of a small bucket is captured once as a CUDA
  graph and replayed, one launch instead of ~1,100 for a 5 s request. A capture that fails, or a
  replay that differs from the eager pass, turns graphs off with a warning and the pass runs
  eagerly: results never depend on them.
FairLock (emotion.locks) orders the passes of the threads that share one model.
"""

from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from .audio import SAMPLE_RATE

log = logging.getLogger(__name__)

LADDER_ROWS = (1, 2, 4, 8, 16, 32)  # batch sizes a bucketed pass runs at
FILLER_SHARE = 0.25  # pad a batch with empty rows up to the next size when they are at most this share
GRAPH_SAMPLES = 30 * SAMPLE_RATE  # buckets captured as graphs: rows x samples at most this (memory)
DEFAULT_BATCH_GIB = 3.0  # device memory a batch's activations may take (aim: a 5-minute clip under 4 GiB)
REPLAY_TOLERANCE = 1e-3  # a replay may differ from its eager pass by this share of the largest value


@dataclass(frozen=True)
class ShapeLadder:
    """The shapes a bucketed pass pads to: lengths in whole `step`s, batch sizes from `rows`."""

    step: int = SAMPLE_RATE
    rows: tuple[int, ...] = LADDER_ROWS

    def length(self, samples: int) -> int:
        return max(1, math.ceil(samples / self.step)) * self.step

    def split(self, n: int) -> list[int]:
        """Sizes to cut n waves into: one padded pass when the empty rows are few, else the largest
        ladder size that fits, then the rest (31 -> [31], run as 32 rows; 5 -> [4, 1]; 40 -> [32, 8])."""
        sizes = []
        while n > 0:
            up = next((r for r in self.rows if r >= n), None)
            if up is not None and up - n <= FILLER_SHARE * up:
                sizes.append(n)
                break
            take = max((r for r in self.rows if r <= n), default=n)
            sizes.append(take)
            n -= take
        return sizes

    def padded_rows(self, n: int) -> int:
        return next((r for r in self.rows if r >= n), n)


def batch_samples_budget(runner: "Runner", wave: torch.Tensor, limit_bytes: float | None) -> int:
    """Padded samples a CUDA batch may hold: one eager pass of `wave` measures the device memory a
    sample costs, and the budget is the smaller of limit_bytes (default DEFAULT_BATCH_GIB) and
    60 % of the memory free now (so the same code fits a 16 GB card and an H200)."""
    device = runner.device
    eager = Runner(runner.network, device, runner.dtype, runner.ladder, graphs=False)
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    eager([wave])
    torch.cuda.synchronize(device)
    per_sample = max(64.0, (torch.cuda.max_memory_allocated(device) - base) / len(wave))
    free, _ = torch.cuda.mem_get_info(device)
    free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)  # torch's own cache
    budget = min(limit_bytes or DEFAULT_BATCH_GIB * 2**30, 0.6 * free)
    log.info("batches of up to %.0f s of audio: %.0f bytes a sample, %.1f GiB allowed",
             budget / per_sample / SAMPLE_RATE, per_sample, budget / 2**30)
    return max(len(wave), int(budget / per_sample))


@contextmanager
def exact_fp32(active: bool):
    """TF32 off for cuDNN convolutions and CUDA matmuls inside the block, restored after."""
    if not active:
        yield
        return
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = (cudnn.allow_tf32, matmul.allow_tf32)
    cudnn.allow_tf32 = matmul.allow_tf32 = False
    try:
        yield
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = saved


@dataclass
class _Graph:
    graph: "torch.cuda.CUDAGraph"
    batch: torch.Tensor  # static input buffers, filled before each replay
    lengths: torch.Tensor
    frames: torch.Tensor  # static output, overwritten by the next replay of any graph


class GraphCache:
    """CUDA graphs of the network's forward pass, one per (rows, samples) bucket, sharing one
    memory pool. Replays are serial (the recognizer's lock) and each output is copied out before
    the next replay, which is what sharing a pool needs."""

    def __init__(self, network: torch.nn.Module, max_samples: int = GRAPH_SAMPLES):
        self.network = network
        self.max_samples = max_samples
        self.enabled = True
        self._graphs: dict[tuple[int, int], _Graph] = {}
        self._pool = torch.cuda.graph_pool_handle()

    def __len__(self) -> int:
        return len(self._graphs)

    def run(self, batch: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor | None:
        """The frames of a bucketed batch (pinned host tensors, copied straight into the graph's
        input buffers) by replay, or None when this bucket runs eagerly."""
        key = (batch.shape[0], batch.shape[1])
        if not self.enabled or key[0] * key[1] > self.max_samples:
            return None
        entry = self._graphs.get(key) or self._capture(batch, lengths)
        if entry is None:
            return None
        entry.batch.copy_(batch, non_blocking=True)
        entry.lengths.copy_(lengths, non_blocking=True)
        entry.graph.replay()
        return entry.frames

    def _capture(self, batch: torch.Tensor, lengths: torch.Tensor) -> _Graph | None:
        device = next(self.network.parameters()).device
        static_batch, static_lengths = batch.to(device), lengths.to(device)
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up passes off the default stream, as capture needs
                for _ in range(2):
                    expected, _ = self.network(static_batch, static_lengths, always_mask=True)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # thread_local: other threads' device work meanwhile (the head, a second recognizer) is
            # neither captured nor refused; only this thread's calls are checked
            with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
                frames, _ = self.network(static_batch, static_lengths, always_mask=True)
            graph.replay()
            gap = float((frames.float() - expected.float()).abs().max())
            scale = float(expected.float().abs().max())
            if not gap <= REPLAY_TOLERANCE * scale + 1e-6:
                raise RuntimeError(f"the replay differs from the eager pass by {gap:.3g} (values up to {scale:.3g})")
        except torch.OutOfMemoryError:
            raise
        except Exception as exc:  # an untested driver or kernel: never worse than the eager pass
            log.warning("CUDA graphs turned off, passes run eagerly: capturing %s failed (%s: %s)",
                        tuple(batch.shape), type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "")
            self.enabled = False
            self._graphs.clear()
            return None
        entry = _Graph(graph, static_batch, static_lengths, frames)
        self._graphs[(batch.shape[0], batch.shape[1])] = entry
        log.debug("captured a CUDA graph for %d x %d samples", *batch.shape)
        return entry


class Runner:
    """Frame embeddings for waves, one padded pass per group (see the module's docstring).

    ladder: None runs each group at its own shape (the CPU default: padding would only add work);
    graphs: capture CUDA graphs (ignored off CUDA, and without a ladder shapes would not recur)."""

    def __init__(self, network: torch.nn.Module, device: torch.device, dtype: torch.dtype,
                 ladder: ShapeLadder | None = None, graphs: bool = False):
        self.network, self.device, self.dtype = network, device, dtype
        self.ladder = ladder
        self.exact = device.type == "cuda" and dtype == torch.float32
        self.graphs = GraphCache(network) if graphs and ladder is not None and device.type == "cuda" else None

    def __call__(self, waves: list[torch.Tensor]) -> list[torch.Tensor]:
        """(T_i, D) float32 CPU tensors, one per wave; call it in inference mode, holding the model."""
        if self.ladder is None:
            return self._pass(waves)
        out, start = [], 0
        for size in self.ladder.split(len(waves)):
            out += self._pass(waves[start : start + size])
            start += size
        return out

    def _pass(self, waves: list[torch.Tensor]) -> list[torch.Tensor]:
        lengths = [len(w) for w in waves]
        rows, width = len(waves), max(lengths)
        if self.ladder is not None:
            rows, width = self.ladder.padded_rows(rows), self.ladder.length(width)
        cuda = self.device.type == "cuda"
        host = torch.zeros(rows, width, dtype=self.dtype, pin_memory=cuda)
        for i, w in enumerate(waves):
            host[i, : len(w)] = w
        padded = self.ladder is not None or len(set(lengths)) > 1
        counts = [self.network.cfg.num_frames(n) for n in lengths]
        # empty filler rows count as whole, so no row is all padding
        valid = torch.tensor(lengths + [width] * (rows - len(waves)), dtype=torch.long) if padded else None
        if valid is not None and cuda:
            valid = valid.pin_memory()
        with exact_fp32(self.exact):
            frames = None
            if self.graphs is not None and valid is not None:
                frames = self.graphs.run(host, valid)
            if frames is None:
                batch = host.to(self.device, non_blocking=True)
                if valid is not None:
                    valid = valid.to(self.device, non_blocking=True)
                frames, _ = self.network(batch, valid)
            out = frames[: len(waves), : max(counts)].float().cpu()
        return [out[i, :c] for i, c in enumerate(counts)]
