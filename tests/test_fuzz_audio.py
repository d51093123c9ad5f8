"""Property tests of the audio loader: whatever the bytes, valid audio or our own AudioError.

Three generators: raw bytes, WAV headers whose every field may lie, and real files of each
format with bytes overwritten and tails cut.  A bounded number of examples keeps this well under
a minute (EMOTION_FUZZ_EXAMPLES changes it); fuzz/fuzz_audio.py is the open-ended,
coverage-guided version.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emotion.audio import MAX_CHANNELS, MAX_SOURCE_RATE, MIN_DURATION_S, MIN_SOURCE_RATE, SAMPLE_RATE, load_audio
from emotion.errors import REASONS, AudioError
from tests.bad_inputs import wav_header
from tests.media import encode, write_wav

EXAMPLES = int(os.environ.get("EMOTION_FUZZ_EXAMPLES", 300))  # per test; raise it for a longer hunt
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CAP_S = 60.0  # a small cap keeps a mutated header that decodes huge quick; the code path is the same


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    d = tmp_path_factory.mktemp("seeds")
    paths = [write_wav(d / "s.wav", 0.4, 22050, channels=2), write_wav(d / "f.wav", 0.3, 16000, subtype="FLOAT"),
             encode(d / "s.flac", 0.4, 44100, "flac"), encode(d / "s.mp3", 0.4, 44100, "libmp3lame", "mp3"),
             encode(d / "s.m4a", 0.4, 44100, "aac", "mp4"), encode(d / "s.opus", 0.4, 48000, "libopus", "ogg"),
             write_wav(d / "s.ogg", 0.4, 32000, subtype="VORBIS")]
    return {p.suffix + p.stem: p.read_bytes() for p in paths}


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "input.wav"


def check(target, data: bytes) -> None:
    """The property: an Audio that the model can take, or an AudioError with a known code."""
    target.write_bytes(data)
    try:
        audio = load_audio(target, max_duration_s=CAP_S)
    except AudioError as exc:
        assert exc.code in REASONS and exc.name == target.name and exc.reason
        return
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert len(audio.samples) >= MIN_DURATION_S * SAMPLE_RATE - 1
    assert len(audio.samples) <= (CAP_S + 1) * SAMPLE_RATE
    assert np.isfinite(audio.samples).all()
    assert MIN_SOURCE_RATE <= audio.source_rate <= MAX_SOURCE_RATE and 1 <= audio.channels <= MAX_CHANNELS


@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes(target, data):
    check(target, data)


@FUZZ
@given(rate=st.one_of(st.sampled_from([0, 1, 7999, 8000, 16000, 44100, 192000, 192001]),
                      st.integers(0, 2**32 - 1)),
       channels=st.one_of(st.integers(0, 10), st.integers(0, 0xFFFF)),
       bits=st.sampled_from([0, 1, 7, 8, 12, 16, 24, 32, 64, 0xFFFF]),
       fmt_tag=st.sampled_from([0, 1, 2, 3, 6, 7, 0x11, 0x55, 0xFFFE, 0xFFFF]),
       data_size=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
       payload=st.binary(max_size=20000))
def test_lying_wav_headers(target, rate, channels, bits, fmt_tag, data_size, payload):
    size = len(payload) if data_size is None else data_size
    check(target, wav_header(rate, channels, bits, size, fmt_tag) + payload)


@FUZZ
@given(data=st.data())
def test_damaged_real_files(seeds, target, data):
    original = seeds[data.draw(st.sampled_from(sorted(seeds)))]
    damaged = bytearray(original)
    for _ in range(data.draw(st.integers(0, 12))):
        where = data.draw(st.one_of(st.integers(0, min(len(damaged), 256) - 1),  # headers, mostly
                                    st.integers(0, len(damaged) - 1)))
        damaged[where] = data.draw(st.integers(0, 255))
    cut = data.draw(st.one_of(st.none(), st.integers(0, len(damaged))))
    check(target, bytes(damaged[:cut]))
