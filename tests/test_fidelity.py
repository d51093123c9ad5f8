"""Our engine against funasr's own inference on the same random-weight checkpoints and files."""

import numpy as np
import pytest

from emotion import Recognizer, load_audio
from emotion.verify import COSINE_BOUND, SCORE_BOUND, cosine, reference_model
from emotion.torch_engine import TorchEngine

# soundfile, funasr's decoder here, reads these; the rest are compared on decoded samples
FILE_CASES = ["mono_8000.wav", "mono_16000.wav", "mono_22050.wav", "mono_24414.wav", "mono_44100.wav",
              "mono_48000.wav", "stereo_44100.wav", "float_48000.wav", "pcm24_22050.wav",
              "clip.flac", "clip.ogg", "clip.mp3"]
SAMPLE_CASES = ["clip.m4a", "clip.opus", "clip.webm"]


@pytest.fixture(scope="module")
def mid_reference(mid_model):
    return reference_model(mid_model)


def _check(ours, theirs, labels):
    keys = [lb.key for lb in labels if not lb.masked]
    ref_scores = dict(zip(keys, theirs["scores"]))
    diff = max(abs(ours.scores[k] - v) for k, v in ref_scores.items())
    feats = np.asarray(theirs["feats"])
    assert ours.embedding.shape == feats.shape
    assert diff <= SCORE_BOUND, diff
    assert cosine(ours.embedding, feats) >= COSINE_BOUND
    # the scores must not be trivially equal (a uniform head would hide errors)
    assert max(ref_scores.values()) - min(ref_scores.values()) > 0.02


@pytest.mark.parametrize("granularity", ["utterance", "frame"])
@pytest.mark.parametrize("name", FILE_CASES)
def test_files_match_funasr(mid_recognizer, mid_reference, audio_dir, name, granularity):
    path = audio_dir / name
    ours = mid_recognizer.recognize(path, granularity=granularity)
    theirs = mid_reference.generate(str(path), granularity=granularity, extract_embedding=True,
                                    disable_pbar=True)[0]
    _check(ours, theirs, mid_recognizer.labels)


@pytest.mark.parametrize("name", SAMPLE_CASES)
def test_compressed_formats_match_funasr_on_decoded_samples(mid_recognizer, mid_reference, audio_dir, name):
    """funasr cannot open these here (no FFmpeg binary); give it the samples we decoded at the
    source rate, so its resampling and network run on the same input."""
    from emotion.decode import decode

    [wave], reader = decode(str(audio_dir / name), name)
    rate = reader.rate
    assert rate in (44100, 48000) and len(wave) > rate  # really decoded
    for g in ("utterance", "frame"):
        ours = mid_recognizer.recognize(wave.numpy(), sample_rate=rate, granularity=g)
        theirs = mid_reference.generate(wave.numpy(), fs=rate, granularity=g, extract_embedding=True,
                                        disable_pbar=True)[0]
        _check(ours, theirs, mid_recognizer.labels)


def test_per_layer_alibi_scales_match_funasr(per_layer_model, audio_dir):
    rec = Recognizer.load(per_layer_model, device="cpu", warmup=False)
    ref = reference_model(per_layer_model)
    for name in ("mono_16000.wav", "stereo_44100.wav"):
        ours = rec.recognize(audio_dir / name, granularity="frame")
        theirs = ref.generate(str(audio_dir / name), granularity="frame", extract_embedding=True,
                              disable_pbar=True)[0]
        _check(ours, theirs, rec.labels)


def test_batched_mixed_lengths_equal_one_at_a_time(mid_model, audio_dir):
    rec = Recognizer.load(mid_model, device="cpu", warmup=False, batch_size=1)
    clips = [load_audio(p) for p in sorted(audio_dir.glob("*.wav"))]
    lengths = {len(c.samples) for c in clips}
    assert len(lengths) > 3  # really mixed lengths
    rec_padding = Recognizer(TorchEngine(rec.engine.model, batch_size=16), max_padding=10.0)  # one padded batch
    assert len(rec_padding._batches([len(c.samples) for c in clips])) == 1
    batched = rec_padding.analyse(clips, "frame")
    for clip, b in zip(clips, batched):
        single = rec.analyse([clip], "frame")[0]
        assert b.embedding.shape == single.embedding.shape
        assert max(abs(b.scores[k] - single.scores[k]) for k in b.scores) <= SCORE_BOUND
        assert cosine(b.embedding, single.embedding) >= COSINE_BOUND
        assert np.abs(b.frame_scores - single.frame_scores).max() <= SCORE_BOUND


def test_time_major_convolutions_compute_the_channel_major_ones_without_layout_copies(mid_recognizer, audio_dir):
    """The conv front end and the positional convolutions hold their activations time-major
    ((B, T, C) in memory), so no layer copies them between layouts, nor its weights (laid out once at
    load; the profiler sees the padding mask's conversion only); they sum in another order than the channel-major layers (the reference's
    layout, network.set_time_major(False)), so results agree to float rounding."""
    import torch
    from torch.profiler import profile

    from emotion.audio import normalize

    net = mid_recognizer.engine.model.network
    enc = net.modality_encoders["AUDIO"]
    fe, rpe = enc.local_encoder, enc.relative_positional_encoder
    wav = torch.stack([normalize(torch.from_numpy(load_audio(audio_dir / n).samples[:24000]))
                       for n in ("mono_8000.wav", "stereo_44100.wav")])
    wav[1, 20000:] = 0  # padded, as a batch's shorter clip is
    with torch.inference_mode():
        features = enc.project_features(fe(wav))
        valid = torch.arange(features.shape[1])[None] < net.cfg.num_frames(torch.tensor([24000, 20000]))[:, None]
        with profile(record_shapes=True) as prof:
            fast = fe(wav), rpe(features, valid)
        net.set_time_major(False)
        try:
            plain = fe(wav), rpe(features, valid)
            channel_major = mid_recognizer.recognize(audio_dir / "clip.flac")
            fe.convs_as_matmul(True)  # the int8 export's form: slices side by side times a matrix
            as_matmul = fe(wav)
        finally:
            fe.convs_as_matmul(False)
            net.set_time_major(True)
    assert as_matmul.shape == plain[0].shape and fe.as_matmul is None
    assert float((as_matmul - plain[0]).abs().max()) <= 1e-5 * float(plain[0].abs().max())
    assert fast[0].transpose(1, 2).is_contiguous() and fast[1].is_contiguous()
    for a, b in zip(fast, plain):
        assert a.shape == b.shape and float((a - b).abs().max()) <= 1e-5 * float(b.abs().max())
    copied = [tuple(e.input_shapes[0]) for e in prof.events() if e.name in ("aten::copy_", "aten::clone")]
    # only the padding mask, turned to the activations' dtype: no activation, and no weight (they
    # are laid out for these passes once, at load)
    assert copied == [(2, features.shape[1], 1)], copied
    time_major = mid_recognizer.recognize(audio_dir / "clip.flac")
    assert max(abs(time_major.scores[k] - channel_major.scores[k]) for k in time_major.scores) <= 1e-6
    assert np.abs(time_major.embedding - channel_major.embedding).max() <= 1e-5


@pytest.mark.parametrize("kernel", [4, 3])  # even: the output is trimmed by one frame
def test_time_major_positional_conv_for_even_and_odd_kernels(kernel):
    """The released models' positional kernel is odd (95 // 5); an even one, which a config may
    give, trims its last frame: both layouts agree for both."""
    from types import SimpleNamespace

    import torch

    from emotion.network import PositionalConv

    torch.manual_seed(0)
    conv = PositionalConv(SimpleNamespace(embed_dim=32, conv_pos_kernel=kernel, conv_pos_groups=4))
    x = torch.randn(3, 50, 32)
    with torch.no_grad():
        plain = conv(x.transpose(1, 2)).transpose(1, 2)
        fast = conv.forward_time_major(x)
    assert fast.shape == plain.shape == (3, 50, 32) and conv.trim == (kernel == 4)
    assert float((fast - plain).abs().max()) <= 1e-5
