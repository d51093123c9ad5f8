"""`emotion export`: a model folder as a self-contained ONNX model that gives emotion scores.

The folder written needs no PyTorch and none of this package to run (docs/export.md):

- model.onnx: inputs `waveforms` (batch, samples) float32 and `lengths` (batch,) int64; outputs
  `frames` (batch, T, D) float32, `valid` (batch, T) bool (which frames are the clip's own),
  `embedding` (batch, D) float32, the mean of each clip's valid frames, and `scores` (batch, C)
  float32, softmax(head(embedding)) with masked ("unuse") classes at exactly 0.
  The waveforms are 16 kHz mono, each clip NORMALISED ON ITS OWN before padding (zero mean,
  unit variance over its own samples, eps 1e-5: the reference's layer_norm of the whole clip)
  and zero-padded to the longest; `lengths` counts each clip's own samples. Normalising outside
  the graph keeps the graph what the Engine seam runs (normalised waves in) and is one numpy line.
  Padding is masked throughout, so a clip gets the same scores batched as alone.
- model.onnx.data: the graph's weights, beside it as ONNX external data (the large tensors at
  offsets aligned for mapping). ONNX Runtime maps that file into memory instead of parsing 1.25 GB out of
  the protobuf and copying it, so a session opens in about 0.1 s instead of 1-3 s and the weights
  are shared through the page cache (onnxruntime, onnx and every ONNX tool read the pair as one).
- head.npz: the head's `weight` (C, D) and `bias` (C,) float32, so frame embeddings can be scored
  (per-frame scores) without the graph; the same numbers as the graph's head.
- tokens.txt: the classes, one a line, in the head's order (the released tokens.txt lines, or an
  adapted head's labels).
- manifest.json, written last (emotion.files.seal_folder): every file's size and sha256, and
  `format`, `version`, `precision`, `opset`, `labels`, `source` (the model folder, its model.pt's
  sha256, an adapted head's too), `versions` (exporter, torch, onnx, onnxruntime) and `agreement`
  (what the export measured against the PyTorch network before finishing).

The network is traced with torch.onnx.export(dynamo=True) on its channel-major layout
(set_time_major(False)): plain NCW Conv nodes, which ONNX Runtime runs without a transpose around
each layer. The export checks itself on clips of CHECK_SECONDS, each alone and all in one padded
batch, against the PyTorch network (fp32, as TorchEngine runs it): an fp32 export that differs by
more than FP32_TOLERANCE on any score fails and writes nothing; fp16 and int8 report top-1
agreement and the largest score difference. Everything is written in a hidden folder beside the
target and renamed into place at the end (emotion.files.staged_folder): an interrupted export
leaves no folder that looks complete.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import EmotionError
from .files import MANIFEST_FILE, file_sha256, is_complete, seal_folder, staged_folder

log = logging.getLogger(__name__)

FORMAT = "emotion2vec-onnx"
VERSION = 2  # 2: the weights in DATA_FILE beside model.onnx (1: inside it; still read)
MODEL_FILE = "model.onnx"
DATA_FILE = "model.onnx.data"  # model.onnx's weights as external data (see store_weights_beside)
HEAD_FILE = "head.npz"
TOKENS_FILE = "tokens.txt"
PRECISIONS = ("fp32", "fp16", "int8")
OPSET = 20  # LayerNormalization (17) and Gelu (20) as single nodes
INPUTS = ("waveforms", "lengths")
OUTPUTS = ("frames", "valid", "embedding", "scores")
SAMPLE_RATE = 16000  # Hz
MIN_SAMPLES = 400  # the conv front end's receptive field: one frame
MAX_SAMPLES = 16000 * 3600  # an upper bound for the traced length dimension (1 h at 16 kHz)
CHECK_SECONDS = (1.0, 3.7, 12.1, 30.0)  # clip lengths the export checks itself on (1-30 s)
FP32_TOLERANCE = 1e-5  # largest score difference an fp32 export may have from the PyTorch network
INT8_MIN_DEPTH = 16  # products over fewer numbers stay fp32 at int8: the first conv layer's 10 samples
FP32_EXTRA = "model.fp32.onnx"  # the traced graph, kept only while a quantised copy is made


class ExportError(EmotionError, RuntimeError):
    """An export that cannot be made or does not agree with the PyTorch network; nothing written."""


@dataclass(frozen=True)
class Agreement:
    """What the export measured: exported model against the PyTorch network (fp32)."""

    clips_s: list[float]  # the clip lengths checked, each alone and all in one batch
    max_score_diff: float  # largest |score difference| over classes, clips, alone and batched
    max_frame_diff: float  # largest |frame embedding difference|
    batched_vs_single: float  # largest score difference between a clip batched and alone
    top1_agreement: float  # share of clips (alone and batched) whose top class is the same
    tolerance: float | None  # the bound it had to meet (fp32), None for fp16/int8 (reported only)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def available_cores() -> int:
    """The cores this process may run on (a container's limit, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def session_options(threads: int | None = None, arena: bool = True, prepack: bool = True):
    """The session options every exported model runs with, and why:

    - intra_op_num_threads = the cores available (`threads` to override). ONNX Runtime's own
      default counts the host's physical cores, which in a container limited to fewer makes
      threads that only contend with each other.
    - execution_mode ORT_SEQUENTIAL, inter_op_num_threads 1: the graph is one chain of layers, so
      running independent nodes in parallel finds nothing to overlap and adds a thread pool.
    - graph_optimization_level ORT_ENABLE_ALL: constant folding, LayerNorm/GELU/MatMul+Add
      fusions and NCHWc convolution layouts; applied at session creation (part of cold start).
    - enable_mem_pattern False: a memory pattern is planned per input shape and pays only when
      shapes repeat; every clip length is a new shape here, so it would be planned and thrown away.
    - enable_cpu_mem_arena (`arena`, on by default): the arena keeps the blocks of the largest pass
      so far and reuses them, so a 30 s clip after a 5 s one allocates nothing new; its cost is
      that the process's memory stays at the largest pass's peak. Off, each pass allocates and
      frees (malloc), so memory can fall back between passes, at the cost of allocating every pass.
      `python -m benchmarks.bench_onnx --arena` on the large shape (BENCHMARKS.md): on, RSS stays
      at its 2983 MB peak; off, it falls back to about 2.1 GB after each pass (peak 2717 MB). On
      is the default for speed; off suits a process that must give memory back between requests.
    - session.disable_prepacking unless `prepack`: prepacking copies every MatMul weight into the
      CPU kernels' own layout when the session opens. For the int8 model that is 0.2 s and 350 MB
      and it makes short clips faster, so it stays on. For the fp32 model it is 1-1.5 s of the cold
      start and a second 1.2 GB beside the mapped weights (peak 2.4 GB against 1.4 GB), for about
      5-10 % on a 5 s clip and about 1 % on a 30 s one, so emotion.onnx_engine turns it off
      for fp32 (PREPACK there; `python -m benchmarks.bench_onnx --prepack` measures both).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or available_cores()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_mem_pattern = False
    opts.enable_cpu_mem_arena = arena
    if not prepack:
        opts.add_session_config_entry("session.disable_prepacking", "1")
    opts.log_severity_level = 3  # errors only: the optimiser's notes are not for users
    return opts


def is_exported(folder: str | os.PathLike) -> bool:
    """True for a complete folder written by `emotion export` (model.onnx and a sealed manifest)."""
    folder = Path(folder)
    if not (folder / MODEL_FILE).is_file() or not is_complete(folder):
        return False
    return read_manifest(folder).get("format") == FORMAT


def read_manifest(folder: str | os.PathLike) -> dict:
    """An exported folder's manifest.json as a dict; ExportError naming the file when unreadable."""
    import json

    path = Path(folder) / MANIFEST_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(f"{path} cannot be read ({exc})") from None
    if not isinstance(data, dict):
        raise ExportError(f"{path} is not a manifest")
    return data


def check_clips(seconds: tuple[float, ...] = CHECK_SECONDS, seed: int = 0) -> list[np.ndarray]:
    """Normalised 16 kHz clips with some structure (tones, their harmonics, noise) for checks."""
    rng = np.random.default_rng(seed)
    clips = []
    for s in seconds:
        t = np.arange(int(s * SAMPLE_RATE)) / SAMPLE_RATE
        f0 = rng.uniform(90, 300)
        wave = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 6))
        wave = wave * (1 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.5, 4) * t)) + 0.3 * rng.standard_normal(len(t))
        clips.append(normalise(wave.astype(np.float32)))
    return clips


def normalise(wave: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over the whole clip (eps 1e-5), float32: what the model takes."""
    wave = np.asarray(wave, np.float64)
    return ((wave - wave.mean()) / np.sqrt(wave.var() + 1e-5)).astype(np.float32)


def pad(waves: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Normalised waves as the model's inputs: zero-padded (B, S) float32 and lengths (B,) int64."""
    lengths = np.array([len(w) for w in waves], np.int64)
    batch = np.zeros((len(waves), int(lengths.max())), np.float32)
    for i, w in enumerate(waves):
        batch[i, : len(w)] = w
    return batch, lengths


def _scoring_module(loaded):
    """The network with its head, as the graph's function: (waveforms, lengths) -> OUTPUTS."""
    import torch
    from torch import nn

    class ScoringNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            self.network, self.head = loaded.network, loaded.network.proj
            mask = [float("-inf") if lb.masked else 0.0 for lb in loaded.labels]
            self.register_buffer("logit_mask", torch.tensor(mask, dtype=torch.float32))

        def forward(self, waveforms, lengths):
            frames, valid = self.network(waveforms, lengths, always_mask=True)
            keep = valid.unsqueeze(-1).to(frames.dtype)
            embedding = (frames * keep).sum(1) / keep.sum(1).clamp_min(1.0)
            scores = torch.softmax(self.head(embedding) + self.logit_mask, dim=-1)
            return frames, valid, embedding, scores

    return ScoringNetwork().eval()


def trace(loaded, path: Path, convs_as_matmul: bool = False) -> None:
    """Write the fp32 graph of `loaded` (a LoadedModel, fp32 on the CPU) to `path`; with
    `convs_as_matmul`, the front end's convolutions as MatMul nodes, time-major, for int8
    (FeatureExtractor.convs_as_matmul)."""
    import torch

    network = loaded.network
    front = network.modality_encoders["AUDIO"].local_encoder
    network.set_time_major(False)  # plain NCW convolutions in the graph
    front.convs_as_matmul(convs_as_matmul)
    try:
        with torch.inference_mode():  # one real pass first: the network caches its ALiBi slopes on
            network(torch.zeros(1, MIN_SAMPLES))  # the first, which must not happen inside the trace
        batch, samples = torch.export.Dim("batch", min=1, max=1024), torch.export.Dim("samples", min=MIN_SAMPLES,
                                                                                          max=MAX_SAMPLES)
        example = torch.from_numpy(pad(check_clips((2.0, 1.3)))[0]), torch.tensor([32000, 20800])
        program = torch.onnx.export(
            _scoring_module(loaded), example, dynamo=True, opset_version=OPSET, input_names=list(INPUTS),
            output_names=list(OUTPUTS), dynamic_shapes={"waveforms": {0: batch, 1: samples}, "lengths": {0: batch}},
            optimize=True, verbose=False)
        program.save(str(path))
    finally:
        network.set_time_major(True)
        front.convs_as_matmul(False)


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantisation of the MatMul nodes (weights int8 per tensor, activations quantised
    on the fly): the encoder's, as the PyTorch int8 mode quantises its linear layers, and the front
    end's convolutions, traced as MatMul for this (trace's convs_as_matmul; ONNX Runtime's
    ConvInteger took 0.76 s on a 5 s clip where this whole model takes 0.40 s). Products over fewer
    than INT8_MIN_DEPTH numbers stay fp32: the first convolution's (a window of the raw waveform,
    one channel), where int8 would cost the waveform's precision and save nothing. The grouped
    positional convolutions stay fp32 Conv nodes. The quantiser would make the head's Gemm an int8
    MatMul too: it is left out, so the graph's scores come from the same fp32 head as head.npz (and
    a 9 x 1024 product gains nothing from int8)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(source))  # read once: the nodes left out found in it, then quantised as it is
    depth = {t.name: t.dims[0] for t in model.graph.initializer if len(t.dims) == 2}
    keep = [node.name for node in model.graph.node if "embedding" in node.input]  # the head's Gemm
    keep += [f"{name}_MatMul" for name in keep]  # the name the quantiser gives it as a MatMul
    keep += [node.name for node in model.graph.node
             if node.op_type == "MatMul" and depth.get(node.input[1], INT8_MIN_DEPTH) < INT8_MIN_DEPTH]
    quantize_dynamic(model, str(target), op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8,
                     per_channel=False, nodes_to_exclude=keep, extra_options={"MatMulConstBOnly": True})


def convert_fp16(source: Path, target: Path) -> None:
    """Weights and activations in fp16, inputs and outputs kept fp32 (casts at the edges). ONNX
    Runtime's CPU kernels for fp16 are few and slow: this precision is for GPUs."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    onnx.save(model, str(target))


def store_weights_beside(path: Path) -> None:
    """Rewrite the ONNX model at `path` with its weights in DATA_FILE beside it: one file, each
    tensor of 1 KiB or more (onnx aligns those of 1 MiB or more for memory mapping)."""
    import onnx

    model = onnx.load(str(path))
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=DATA_FILE, size_threshold=1024)
    os.chmod(path.parent / DATA_FILE, path.stat().st_mode & 0o777)  # onnx writes it owner-only


def session(path: Path, threads: int | None = None):
    """An ONNX Runtime CPU session on `path` (see emotion.onnx_engine.session_options)."""
    import onnxruntime as ort

    return ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])


def check(sess, loaded, seconds: tuple[float, ...], precision: str) -> Agreement:
    """The exported model (an ONNX Runtime session) against the PyTorch network, on clips of
    `seconds`, each alone and all in one padded batch."""
    import torch

    from .torch_engine import TorchEngine

    engine = TorchEngine(loaded)
    clips = check_clips(seconds)
    ref_frames = [engine.embed([c])[0] for c in clips]  # each alone: the reference
    mask = np.array([-np.inf if lb.masked else 0.0 for lb in loaded.labels], np.float32)
    means = np.stack([f.mean(0) for f in ref_frames])
    ref_scores = torch.softmax(torch.from_numpy(engine.logits(means) + mask), -1).numpy()
    frame_diff = score_diff = 0.0
    runs = [[i] for i in range(len(clips))] + [list(range(len(clips)))]
    got_scores = {}
    for rows in runs:
        batch, lengths = pad([clips[i] for i in rows])
        frames, valid, _, scores = sess.run(list(OUTPUTS), {"waveforms": batch, "lengths": lengths})
        for j, i in enumerate(rows):
            n = int(valid[j].sum())
            if n != len(ref_frames[i]):
                raise ExportError(f"the exported model counts {n} frames in a {seconds[i]:g} s clip, "
                                  f"PyTorch {len(ref_frames[i])}")
            frame_diff = max(frame_diff, float(np.abs(frames[j, :n] - ref_frames[i]).max()))
            score_diff = max(score_diff, float(np.abs(scores[j] - ref_scores[i]).max()))
            got_scores.setdefault(i, []).append(scores[j])
    batched = max(float(np.abs(a - b).max()) for a, b in got_scores.values())
    agree = [int(np.argmax(s)) == int(np.argmax(ref_scores[i])) for i, ss in got_scores.items() for s in ss]
    return Agreement([float(s) for s in seconds], score_diff, frame_diff, batched, sum(agree) / len(agree),
                     FP32_TOLERANCE if precision == "fp32" else None)


def _versions() -> dict:
    import onnx
    import onnxruntime
    import torch

    try:
        import onnxscript

        script = onnxscript.__version__
    except ImportError:  # older exporters translate without it
        script = None
    return {"exporter": f"torch.onnx.export(dynamo=True) {torch.__version__}", "torch": torch.__version__,
            "onnxscript": script, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
            "python": platform.python_version()}


def _source(loaded) -> dict:
    """Which model was exported: its folder, its model.pt's sha256, an adapted head's file and hash."""
    from .adapter import HEAD_FILE as ADAPTED_HEAD

    weights = (loaded.base_path or loaded.path) / "model.pt"
    out = {"name": loaded.name, "path": str(loaded.path), "model_pt": str(weights),
           "model_sha256": file_sha256(weights), "head": "adapted" if loaded.adapter else "released"}
    if loaded.adapter:
        out["adapted_head_sha256"] = file_sha256(loaded.adapter.folder / ADAPTED_HEAD)
        out["base"] = loaded.base_name
    return out


def _write_head(loaded, folder: Path, labels_text: str) -> None:
    proj = loaded.network.proj
    with open(folder / HEAD_FILE, "xb") as fh:
        np.savez(fh, weight=proj.weight.detach().float().numpy(), bias=proj.bias.detach().float().numpy())
        fh.flush()
        os.fsync(fh.fileno())
    with open(folder / TOKENS_FILE, "x", encoding="utf-8") as fh:
        fh.write(labels_text)
        fh.flush()
        os.fsync(fh.fileno())


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    precision: str
    agreement: Agreement
    seconds: float  # wall time of the whole export
    model_bytes: int


def export_model(out: str | os.PathLike, model: str | os.PathLike | None = None, precision: str = "fp32",
                 replace: bool = False, check_seconds: tuple[float, ...] = CHECK_SECONDS) -> ExportResult:
    """Export the model folder `model` (see emotion.model.resolve_model_dir; an adapted folder
    exports with its own head and labels) to the folder `out` at `precision`; see the module's
    docstring for what the folder holds. Raises ExportError (nothing written) when `out` exists
    and not `replace`, or when an fp32 export disagrees with the PyTorch network."""
    from .model import load_model

    if precision not in PRECISIONS:
        raise ExportError(f"unknown precision {precision!r}: choose from {', '.join(PRECISIONS)}")
    out = Path(out)
    if out.exists() and not replace:
        raise ExportError(f"{out} exists: choose another folder, or replace it (--force)")
    start = time.perf_counter()
    loaded = load_model(model, "cpu", "fp32")
    labels_text = "".join(f"{lb.token}\n" for lb in loaded.labels)
    with staged_folder(out, replace=replace) as tmp:
        traced = tmp / (MODEL_FILE if precision == "fp32" else FP32_EXTRA)
        log.info("tracing %s into ONNX", loaded.describe())
        trace(loaded, traced, convs_as_matmul=precision == "int8")
        if precision == "int8":
            quantize_int8(traced, tmp / MODEL_FILE)
        elif precision == "fp16":
            convert_fp16(traced, tmp / MODEL_FILE)
        if traced.name == FP32_EXTRA:
            traced.unlink()
        store_weights_beside(tmp / MODEL_FILE)
        log.info("checking the exported model against PyTorch on %s s clips", ", ".join(map(str, check_seconds)))
        agreement = check(session(tmp / MODEL_FILE), loaded, check_seconds, precision)
        if precision == "fp32" and agreement.max_score_diff > FP32_TOLERANCE:
            raise ExportError(f"the exported model's scores differ from PyTorch's by {agreement.max_score_diff:.2e} "
                              f"(more than {FP32_TOLERANCE:g}): nothing written")
        _write_head(loaded, tmp, labels_text)
        info = {"format": FORMAT, "version": VERSION, "precision": precision, "opset": OPSET,
                "inputs": {"waveforms": "(batch, samples) float32, 16 kHz, each clip normalised on its own, "
                                        "zero-padded", "lengths": "(batch,) int64 samples"},
                "outputs": list(OUTPUTS), "hop": loaded.config.total_stride, "dim": loaded.config.embed_dim,
                "sample_rate": SAMPLE_RATE, "labels": [dataclasses.asdict(lb) for lb in loaded.labels],
                "source": _source(loaded), "versions": _versions(), "agreement": agreement.to_dict()}
        seal_folder(tmp, [MODEL_FILE, DATA_FILE, HEAD_FILE, TOKENS_FILE], info)
        size = (tmp / MODEL_FILE).stat().st_size + (tmp / DATA_FILE).stat().st_size
    result = ExportResult(out, precision, agreement, time.perf_counter() - start, size)
    log.info("exported %s (%s) in %.1f s", out, precision, result.seconds)
    return result
