"""Decoding, resampling and the checks on what comes in."""

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from emotion.audio import SAMPLE_RATE, load_audio, prepare
from emotion.errors import AudioError
from emotion.resample import StreamResampler, resample
from tests.media import write_wav


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 24414, 32000, 37800, 44056, 44100, 48000, 96000])
def test_resample_equals_torchaudio_transform(rate):
    """Bit for bit, in both of PyTorch's conv1d regimes (inputs up to 20480 samples run its own
    GEMM, longer ones oneDNN), for rates whose kernel is used whole and awkward ones (24414, 44056
    Hz) whose kernel is banded."""
    transform = torchaudio.transforms.Resample(rate, SAMPLE_RATE)
    gen = torch.Generator().manual_seed(rate)
    longest = 0.9 if 0.9 * rate > 20480 else 3.1  # one clip past 20480 samples: oneDNN's regime
    for seconds in (0.05, 0.3, 0.9, 3.1):
        if seconds > longest:
            break
        wave = torch.randn(int(rate * seconds), generator=gen)
        expected = transform(wave[None])[0]
        got = resample(wave, rate)
        assert got.shape == expected.shape and torch.equal(got, expected), (rate, seconds)


@pytest.mark.parametrize("rate", [8000, 24414, 44100, 48000])
def test_streamed_resampling_equals_the_whole(rate):
    wave = torch.randn(int(rate * 4.3), generator=torch.Generator().manual_seed(rate))
    stream = StreamResampler(rate)
    step = rate // 3 + 7  # pieces that match no frame boundary
    pieces = [stream.push(wave[i : i + step]) for i in range(0, len(wave), step)] + [stream.flush()]
    assert torch.equal(torch.cat(pieces), resample(wave, rate))


def test_large_kernels_are_banded_cached_and_bounded(monkeypatch):
    import emotion.resample as r

    for a, b, lo, hi in r._spans(24414, SAMPLE_RATE)[::10]:  # the band holds every non-zero tap
        rows = r._kernel_rows(24414, SAMPLE_RATE, a, b)
        assert torch.equal(rows[..., lo:hi], r._kernel_rows(24414, SAMPLE_RATE, a, b, lo, hi))
        assert not rows[..., :lo].any() and not rows[..., hi:].any()
    r.warm_kernels()
    taps = sum(k.numel() for _, k in r._cache[(24414, SAMPLE_RATE)])
    assert taps < 4_000_000  # torchaudio's kernel: 97.8 M taps (391 MB)
    calls = []
    real = r._kernel_rows
    monkeypatch.setattr(r, "_kernel_rows", lambda *a: calls.append(a) or real(*a))
    resample(torch.randn(48828), 24414)  # a second clip at a warm rate builds nothing
    assert calls == []
    monkeypatch.setattr(r, "_cache", r.OrderedDict())
    monkeypatch.setattr(r, "CACHE_TAPS", 4_000_000)
    for rate in (24414, 44100, 22050, 44056):
        resample(torch.randn(rate), rate)
        assert sum(k.numel() for blocks in r._cache.values() for _, k in blocks) <= r.CACHE_TAPS
    assert (24414, SAMPLE_RATE) not in r._cache and (44056, SAMPLE_RATE) in r._cache  # least recently used out
    monkeypatch.setattr(r, "CACHE_TAPS", 1_000)  # a kernel over the bound is built as it is applied
    wave = torch.randn(30000)
    assert torch.equal(resample(wave, 24414), torchaudio.transforms.Resample(24414, SAMPLE_RATE)(wave[None])[0])
    assert (24414, SAMPLE_RATE) not in r._cache


@pytest.mark.parametrize("name", ["mono_44100.wav", "stereo_44100.wav", "clip.flac", "clip.ogg",
                                  "clip.mp3", "clip.m4a", "clip.opus", "clip.webm", "pcm24_22050.wav"])
def test_every_format_decodes_to_16k_mono(audio_dir, name):
    audio = load_audio(audio_dir / name)
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert 1.0 < audio.duration_s < 2.5
    assert 0.01 < float(np.std(audio.samples)) < 1
    assert len(audio.sha256) == 64


def test_wav_decodes_like_soundfile(audio_dir):
    """The reference decodes with soundfile: our PyAV path must give the same samples."""
    for name in ("stereo_44100.wav", "pcm24_22050.wav", "float_48000.wav"):
        from emotion.decode import decode

        [ours], reader = decode(str(audio_dir / name), name)
        rate = reader.rate
        data, sr = sf.read(audio_dir / name, dtype="float32")
        ref = torch.from_numpy(data)
        ref = ref.mean(-1) if ref.ndim > 1 else ref
        assert sr == rate and torch.equal(ours, ref), name


def test_content_decides_not_extension(audio_dir, tmp_path):
    fake = tmp_path / "actually_mp3.wav"
    fake.write_bytes((audio_dir / "clip.mp3").read_bytes())
    assert load_audio(fake).duration_s > 1.5


@pytest.mark.parametrize("content,reason", [
    (b"", "empty"),
    (b"this is not audio at all" * 10, "not a readable audio file"),
    (b"<html><body>404</body></html>", "not a readable audio file"),
])
def test_bad_files_get_a_clear_error(tmp_path, content, reason):
    p = tmp_path / "bad.wav"
    p.write_bytes(content)
    with pytest.raises(AudioError, match=reason) as err:
        load_audio(p)
    assert err.value.name == "bad.wav"


def test_too_short_nan_and_rate_limits(tmp_path):
    with pytest.raises(AudioError, match="too short"):
        prepare(np.zeros(100, np.float32), 16000, "short.wav")
    with pytest.raises(AudioError, match="NaN"):
        prepare(np.full(16000, np.nan, np.float32), 16000, "nan.wav")
    with pytest.raises(AudioError, match="sample rate"):
        prepare(np.zeros(16000, np.float32), 4000, "low.wav")
    p = write_wav(tmp_path / "short.wav", 0.05, 16000)
    with pytest.raises(AudioError, match="too short"):
        load_audio(p)
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "missing.wav")


def test_duration_cap(tmp_path):
    p = write_wav(tmp_path / "long.wav", 3.0, 16000)
    with pytest.raises(AudioError, match="longer than the 1 s limit"):
        load_audio(p, max_duration_s=1.0)


def test_truncated_file_is_accepted_with_a_warning(audio_dir, tmp_path):
    data = (audio_dir / "mono_16000.wav").read_bytes()
    p = tmp_path / "truncated.wav"
    p.write_bytes(data[: len(data) // 2])
    audio = load_audio(p)
    assert audio.warnings and "truncated" in audio.warnings[0]
