"""Coverage-guided fuzzing of the audio loader with atheris (libFuzzer for Python); run by hand.

    .venv/bin/pip install -r fuzz/requirements.txt
    .venv/bin/python -m fuzz.fuzz_audio --seeds fuzz/corpus         # once: valid and bad files
    .venv/bin/python -m fuzz.fuzz_audio fuzz/corpus -max_total_time=600 -rss_limit_mb=4096

Every input is written to a file and given to load_audio; the property is the one the test suite
checks with hypothesis: an Audio the model can take, or an AudioError with a code from
audio.REASONS.  Anything else (another exception, a crash, a hang past -timeout) stops the run and
leaves the input as crash-*/timeout-* in the working folder; replay one with
`python -m fuzz.fuzz_audio crash-...`.  Coverage guidance sees our Python code only: FFmpeg
inside PyAV is not instrumented, so it is exercised, not steered.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

import atheris  # noqa: E402
import numpy as np  # noqa: E402

with atheris.instrument_imports(include=["emotion"]):
    from emotion import audio

CAP_S = 60.0  # as in tests/test_fuzz_audio.py: small inputs that decode huge stay quick
TARGET = Path(tempfile.gettempdir()) / f"fuzz-audio-{os.getpid()}.wav"  # removed after each input


def test_one_input(data: bytes) -> None:
    TARGET.write_bytes(data)
    try:  # removed every time: libFuzzer leaves by exit(), which runs no atexit handler
        clip = audio.load_audio(TARGET, max_duration_s=CAP_S)
    except audio.AudioError as exc:
        if exc.code not in audio.REASONS:
            raise AssertionError(f"unknown reason code {exc.code!r}") from exc
        return
    finally:
        TARGET.unlink()
    samples = clip.samples
    if samples.ndim != 1 or len(samples) < audio.MIN_DURATION_S * audio.SAMPLE_RATE - 1:
        raise AssertionError(f"bad clip shape {samples.shape}")
    if not np.isfinite(samples).all():
        raise AssertionError("non-finite samples accepted")


def write_seeds(folder: Path) -> None:
    """The bad-input corpus of the tests and short valid files of every format."""
    from tests.bad_inputs import build_corpus
    from tests.media import encode, write_wav

    build_corpus(folder)
    for big in ("hour_of_silence.flac", "hour_of_silence_unknown_length.flac", "many_channels.wav"):
        (folder / big).unlink()  # libFuzzer's default input limit is 4 KB-1 MB: keep seeds small
    write_wav(folder / "valid.wav", 0.3, 22050, channels=2)
    encode(folder / "valid.flac", 0.3, 44100, "flac")
    encode(folder / "valid.mp3", 0.3, 44100, "libmp3lame", "mp3")
    encode(folder / "valid.m4a", 0.3, 44100, "aac", "mp4")
    encode(folder / "valid.opus", 0.3, 48000, "libopus", "ogg")
    print(f"seeds written to {folder}")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--seeds":
        write_seeds(Path(sys.argv[2]))
        return
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
