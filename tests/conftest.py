import os

# No test may reach outside this machine: point both model hubs at a closed loopback port.
os.environ["MODELSCOPE_DOMAIN"] = "http://127.0.0.1:9"
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.checkpoints import write_model_dir  # noqa: E402
from tests.media import encode, write_wav  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("models") / "tiny", "tiny", seed=1)


@pytest.fixture(scope="session")
def mid_model(tmp_path_factory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("models") / "mid", "mid", seed=2)


@pytest.fixture(scope="session")
def per_layer_model(tmp_path_factory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("models") / "per_layer", "tiny_per_layer", seed=3)


@pytest.fixture(scope="session")
def tiny_recognizer(tiny_model):
    from emotion import Recognizer

    return Recognizer.load(tiny_model, device="cpu", warmup=False)


@pytest.fixture(scope="session")
def mid_recognizer(mid_model):
    from emotion import Recognizer

    return Recognizer.load(mid_model, device="cpu", warmup=False)


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory) -> Path:
    """Real files: wav at many rates, stereo, and the lossy and lossless formats users send."""
    d = tmp_path_factory.mktemp("audio")
    for i, rate in enumerate((8000, 16000, 22050, 24414, 44100, 48000)):
        write_wav(d / f"mono_{rate}.wav", 1.5 + 0.2 * i, rate, seed=i)
    write_wav(d / "stereo_44100.wav", 2.0, 44100, channels=2, seed=7)
    write_wav(d / "float_48000.wav", 1.2, 48000, seed=8, subtype="FLOAT")
    write_wav(d / "pcm24_22050.wav", 1.1, 22050, seed=9, subtype="PCM_24")
    encode(d / "clip.flac", 2.0, 44100, "flac", channels=2, seed=10)
    write_wav(d / "clip.ogg", 2.0, 44100, channels=2, seed=11, subtype="VORBIS")
    encode(d / "clip.mp3", 2.0, 44100, "libmp3lame", "mp3", channels=2, seed=12)
    encode(d / "clip.m4a", 2.0, 44100, "aac", "mp4", seed=13)
    encode(d / "clip.opus", 2.0, 48000, "libopus", "ogg", seed=14)
    encode(d / "clip.webm", 2.0, 48000, "libopus", "webm", seed=15)
    return d
