import os

# No test may reach outside this machine: point both model hubs at a closed loopback port.
os.environ["MODELSCOPE_DOMAIN"] = "http://127.0.0.1:9"
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.checkpoints import shared_model_dir, write_model_dir  # noqa: E402
from tests.media import encode, write_wav  # noqa: E402


def _model(tmp_path_factory, name: str, shape: str, seed: int) -> Path:
    """A random-weight checkpoint, read only by the tests. `./run.sh test` sets EMOTION_TEST_MODELS
    to a folder of its own run, so that both passes and both workers make each model once."""
    cache = os.environ.get("EMOTION_TEST_MODELS")
    if cache:
        return shared_model_dir(Path(cache), name, shape, seed)
    return write_model_dir(tmp_path_factory.mktemp("models") / name, shape, seed=seed)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return _model(tmp_path_factory, "tiny", "tiny", 1)


@pytest.fixture(scope="session")
def mid_model(tmp_path_factory) -> Path:
    return _model(tmp_path_factory, "mid", "mid", 2)


@pytest.fixture(scope="session")
def per_layer_model(tmp_path_factory) -> Path:
    return _model(tmp_path_factory, "per_layer", "tiny_per_layer", 3)


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


def _gradio_audio() -> Path:
    """The sample recordings inside the installed gradio package (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("gradio")
    return Path(spec.origin).parent / "media_assets" / "audio" if spec and spec.origin else Path("/nonexistent")


@pytest.fixture(scope="session")
def speech_file(tmp_path_factory) -> Path:
    """Two real utterances (from the gradio package's sample audio) with 3 s of silence between:
    speech at about 0.4-2.8 s and 6.4-9.4 s."""
    import numpy as np
    import soundfile as sf

    from emotion.audio import load_audio

    folder = _gradio_audio()
    sources = [folder / "heath_ledger.mp3", folder / "cate_blanch_2.mp3"]
    if not all(p.is_file() for p in sources):
        pytest.skip(f"the sample speech shipped with gradio is missing from {folder}")
    first, second = (load_audio(p).samples for p in sources)
    path = tmp_path_factory.mktemp("speech") / "two_utterances.wav"
    sf.write(path, np.concatenate([first, np.zeros(3 * 16000, np.float32), second]), 16000, subtype="FLOAT")
    return path


@pytest.fixture(scope="session")
def batch_inputs(tmp_path_factory, audio_dir) -> Path:
    """A folder as users have them: mixed formats in subfolders, broken files, and a non-audio file."""
    d = tmp_path_factory.mktemp("batch_in")
    (d / "sub" / "deeper").mkdir(parents=True)
    for name, target in (("mono_16000.wav", "a.wav"), ("mono_44100.wav", "sub/b.wav"), ("clip.mp3", "c.mp3"),
                         ("clip.m4a", "sub/d.m4a"), ("clip.opus", "sub/deeper/e.opus"), ("clip.flac", "f.flac"),
                         ("stereo_44100.wav", "g.wav"), ("clip.ogg", "sub/h.ogg")):
        (d / target).write_bytes((audio_dir / name).read_bytes())
    (d / "broken.wav").write_bytes(b"<html>not audio</html>")
    (d / "sub" / "empty.flac").write_bytes(b"")
    write_wav(d / "too_short.wav", 0.05, 16000)
    (d / "notes.txt").write_text("not audio, not an audio extension: ignored")
    return d


@pytest.fixture(scope="session")
def lines(tmp_path_factory) -> list:
    """The four lines of tests/voices.py's conversation, each as 16 kHz samples."""
    from tests.voices import LINES, say

    folder = tmp_path_factory.mktemp("espeak")
    return [say(folder, n, voice, text) for n, (voice, text) in enumerate(LINES)]


@pytest.fixture(scope="session")
def conversation(lines, tmp_path_factory) -> tuple[Path, list[tuple[float, float]]]:
    """Two voices, A-B-A-B with pauses, as a wav file, and where each line lies."""
    import soundfile as sf

    from emotion.audio import SAMPLE_RATE
    from tests.voices import join

    samples, where = join(lines)
    path = tmp_path_factory.mktemp("conversation") / "conversation.wav"
    sf.write(path, samples, SAMPLE_RATE, subtype="PCM_16")
    return path, where


@pytest.fixture(scope="session")
def diarizer():
    """One Diarizer (the VAD and the speaker encoder) for every speaker test."""
    from emotion.speakers.diarize import Diarizer

    return Diarizer()


# The files that take longest, longest first (docs/testing.md, "The slowest tests"). pytest-xdist's
# --dist loadfile hands each worker the next whole file in collection order as it frees up, so a
# long file collected last keeps one worker busy while the other has nothing left: starting with
# the longest leaves the short ones to even out the end. Within a file the order is unchanged.
LONGEST_FIRST = ("test_load.py", "test_page_fit.py", "test_export.py", "test_app.py", "test_cli.py",
                 "test_fidelity.py", "test_speakers.py", "test_adapt.py", "test_errors.py", "test_browser.py",
                 "test_memory.py", "test_batch_ray.py", "test_audio.py", "test_stream.py", "test_recordings.py")


def pytest_collection_modifyitems(config, items):
    if not hasattr(config, "workerinput"):  # not an xdist worker: the order is the files' own, so a
        return  # serial pass runs the load test last, well after the parallel pass's processes end
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its order
