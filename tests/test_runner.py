"""The model pass (emotion.runner): bucketed shapes give each clip what it gets alone, fp32 on CUDA
runs with TF32 off, and the GPU-only paths stay off where there is no GPU.

The bucketed path is the GPU default; it is forced here on the CPU, where the arithmetic is the
same, to check its exactness against one clip at a time."""

import numpy as np
import pytest
import torch

from emotion import Recognizer, load_audio
from emotion.audio import SAMPLE_RATE, normalize
from emotion.runner import LADDER_ROWS, Runner, ShapeLadder, exact_fp32
from emotion.verify import COSINE_BOUND, SCORE_BOUND, cosine
from emotion.torch_engine import TorchEngine


def test_ladder_shapes():
    ladder = ShapeLadder()
    assert [ladder.length(n) for n in (1, 16000, 16001, 79999, 480000)] == [16000, 16000, 32000, 80000, 480000]
    assert ladder.split(1) == [1]
    assert ladder.split(3) == [3]  # padded to 4: one empty row of four
    assert ladder.split(5) == [4, 1]  # 8 would be three empty rows of eight
    assert ladder.split(31) == [31]
    assert ladder.split(40) == [32, 8]
    assert ladder.split(100) == [32, 32, 32, 4]
    assert [ladder.padded_rows(n) for n in (1, 3, 7, 31)] == [1, 4, 8, 32]


@pytest.fixture(scope="module")
def mid_pair(mid_model):
    alone = Recognizer.load(mid_model, device="cpu", warmup=False, batch_size=1)
    bucketed = Recognizer(TorchEngine(alone.engine.model, batch_size=32, ladder=ShapeLadder()), max_padding=10.0)
    return alone, bucketed


def test_bucketed_batches_equal_one_clip_at_a_time(mid_pair, audio_dir, monkeypatch):
    alone, bucketed = mid_pair
    clips = [load_audio(p) for p in sorted(audio_dir.glob("*.wav"))]
    assert len({len(c.samples) for c in clips}) > 3 and len(clips) >= 5  # mixed lengths, a split batch
    network, real, shapes = bucketed.engine.model.network, bucketed.engine.model.network.forward, []

    def forward(batch, lengths=None, **kwargs):
        shapes.append((tuple(batch.shape), lengths is not None))
        return real(batch, lengths, **kwargs)

    monkeypatch.setattr(network, "forward", forward)
    together = bucketed.analyse(clips[:5], "frame") + bucketed.analyse(clips[5:], "frame")
    monkeypatch.undo()
    for rows_samples, masked in shapes:  # every pass at a ladder shape, masked
        assert rows_samples[0] in LADDER_ROWS and rows_samples[1] % SAMPLE_RATE == 0 and masked
    assert any(rows > 1 for (rows, _), _ in shapes)  # really batched, padded
    for clip, b in zip(clips, together):
        single = alone.analyse([clip], "frame")[0]
        assert b.input.name == single.input.name
        assert b.embedding.shape == single.embedding.shape
        assert max(abs(b.scores[k] - single.scores[k]) for k in b.scores) <= SCORE_BOUND
        assert cosine(b.embedding, single.embedding) >= COSINE_BOUND
        assert np.abs(b.frame_scores - single.frame_scores).max() <= SCORE_BOUND


def test_a_lone_clip_padded_to_the_next_second_is_unchanged(mid_pair):
    alone, bucketed = mid_pair
    gen = torch.Generator().manual_seed(3)
    wave = (0.1 * torch.randn(int(2.3 * SAMPLE_RATE), generator=gen)).numpy()
    a = alone.recognize(wave, sample_rate=SAMPLE_RATE)
    b = bucketed.recognize(wave, sample_rate=SAMPLE_RATE)
    assert max(abs(a.scores[k] - b.scores[k]) for k in a.scores) <= SCORE_BOUND
    assert cosine(a.embedding, b.embedding) >= COSINE_BOUND


def test_always_mask_is_the_unmasked_pass(tiny_recognizer):
    network = tiny_recognizer.engine.model.network
    gen = torch.Generator().manual_seed(1)
    batch = torch.stack([normalize(0.1 * torch.randn(SAMPLE_RATE, generator=gen)) for _ in range(2)])
    with torch.inference_mode():
        plain, none = network(batch, None)
        masked, valid = network(batch, torch.tensor([SAMPLE_RATE] * 2), always_mask=True)
    assert none is None and valid is not None and bool(valid.all())
    assert torch.allclose(plain, masked, atol=1e-5)


def test_exact_fp32_turns_tf32_off_for_the_pass_only(tiny_recognizer, monkeypatch):
    assert Runner(tiny_recognizer.engine.model.network, torch.device("cuda"), torch.float32).exact
    assert not Runner(tiny_recognizer.engine.model.network, torch.device("cuda"), torch.float16).exact
    assert not Runner(tiny_recognizer.engine.model.network, torch.device("cpu"), torch.float32).exact

    rec = Recognizer(TorchEngine(tiny_recognizer.engine.model))
    rec.engine.runner.exact = True  # as on CUDA in fp32; the flags are plain settings on a CPU build too
    network, real, seen = rec.engine.model.network, rec.engine.model.network.forward, []

    def forward(*args, **kwargs):
        seen.append((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))
        return real(*args, **kwargs)

    monkeypatch.setattr(network, "forward", forward)
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = True  # as a user's own code may have set it
    try:
        rec.recognize(np.zeros(SAMPLE_RATE, dtype=np.float32) + 0.01, sample_rate=SAMPLE_RATE)
        assert seen == [(False, False)]
        assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == (before[0], True)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before[1]
    with exact_fp32(False):
        assert torch.backends.cudnn.allow_tf32 == before[0]


def test_gpu_paths_are_off_on_a_cpu(tiny_recognizer):
    rec = Recognizer(TorchEngine(tiny_recognizer.engine.model))
    assert rec.engine.runner.ladder is None and rec.engine.runner.graphs is None  # the CPU pads nothing
    forced = Recognizer(TorchEngine(tiny_recognizer.engine.model, ladder=ShapeLadder(), graphs=True))
    assert forced.engine.runner.ladder is not None and forced.engine.runner.graphs is None  # graphs need CUDA


def test_graphs_can_be_turned_off_from_the_environment():
    from emotion.settings import Settings

    assert Settings.from_env({}).engine_options() == {}
    assert Settings.from_env({"EMOTION_CUDA_GRAPHS": "1"}).engine_options() == {}
    assert Settings.from_env({"EMOTION_CUDA_GRAPHS": "0"}).engine_options() == {"graphs": False}


def test_gpu_benchmark_runs_end_to_end(tiny_model):
    """bench_gpu.py is the script a lent GPU's few minutes go to: its every row runs here, on the
    CPU at small sizes, against funasr, so it cannot fail there for a reason a CPU would show."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_gpu", "--smoke", "--model-dir", str(tiny_model)],
                         cwd=root, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    for row in ("cold start: ready", "model time, 5 s clip, batch 1", "the same, side by side: as loaded",
                "without the shape ladder and graphs, same clips", "one model pass, 2 clips x 2 s", "copies by caller:",
                "the same pass eager, convolutions time-major (channels-last)",
                "batched throughput over 6 clips", "5 s clip end to end", "fp32 against funasr on cpu",
                "fp32 against fp32: top-1 agreement 3/3", "0.5-minute clip, frame granularity", "BENCH_GPU_DONE"):
        assert row in out.stdout, (row, out.stdout[-3000:])
    import re

    gap = float(re.search(r"TF32 off for both: max score difference (\S+)", out.stdout).group(1))
    assert gap <= SCORE_BOUND  # on the CPU our fp32 is funasr's


def test_half_precision_layer_norm_without_the_fp32_round_trip():
    """On CUDA the conv front end's LayerNorm takes half-precision input as it is (two full copies
    fewer); the kernel accumulates in fp32, so the result is the reference's fp32 path rounded once.
    Checked here with the CPU's kernel, which does the same, for fp16 and bf16."""
    from emotion.network import channel_layer_norm

    gen = torch.Generator().manual_seed(5)
    ln = torch.nn.LayerNorm(64)
    with torch.no_grad():
        ln.weight.copy_(1 + 0.1 * torch.randn(64, generator=gen))
        ln.bias.copy_(0.1 * torch.randn(64, generator=gen))
    x = 3 * torch.randn(2, 64, 300, generator=gen) + 1
    for dtype in (torch.float16, torch.bfloat16):
        half_ln = torch.nn.LayerNorm(64).to(dtype)
        half_ln.load_state_dict(ln.state_dict())
        xh = x.to(dtype)
        reference = channel_layer_norm(xh, half_ln, cast=True)
        direct = channel_layer_norm(xh, half_ln, cast=False)
        assert direct.dtype == reference.dtype == dtype and direct.shape == (2, 64, 300)
        ulp = torch.finfo(dtype).eps * reference.float().abs().clamp_min(1)
        assert bool(((direct.float() - reference.float()).abs() <= ulp).all())
    assert torch.equal(channel_layer_norm(x, ln, cast=True), channel_layer_norm(x, ln, cast=False))  # fp32: one path


def test_attention_masks_are_converted_once_per_pass(mid_model):
    """In bf16 (and fp16 on a GPU) the blocks' shared (B, H, T, T) ALiBi + padding mask reaches
    every block already in the compute dtype, as one tensor, instead of being converted by each
    of them (the values are those each block made before: test_loader's bf16 bound still holds)."""
    from emotion.network import Attention

    rec = Recognizer.load(mid_model, device="cpu", dtype="bf16", warmup=False)
    seen = []
    real = Attention.forward

    def forward(self, x, attn_mask):
        seen.append((attn_mask.dtype, x.dtype, id(attn_mask)))
        return real(self, x, attn_mask)

    Attention.forward = forward
    try:
        gen = torch.Generator().manual_seed(2)
        waves = [normalize(0.1 * torch.randn(n, generator=gen)) for n in (SAMPLE_RATE, SAMPLE_RATE + 4000)]
        rec.engine.embed(waves)  # a padded batch: ALiBi bias plus padding mask
    finally:
        Attention.forward = real
    assert len(seen) == rec.engine.model.config.prenet_depth + rec.engine.model.config.depth
    assert all(mask == x == torch.bfloat16 for mask, x, _ in seen)
    assert len({ident for _, _, ident in seen}) == 1  # one mask, shared by every block
