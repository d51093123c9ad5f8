"""The streaming recognizer (emotion/streaming.py) and `emotion stream`: every update equals the
offline analysis of the same window, finish() equals the offline result of the whole file."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import torch

from emotion.audio import SAMPLE_RATE, load_audio
from emotion.errors import AudioError
from emotion.resample import resample
from emotion.resample import StreamResampler
from emotion.recognizer import Recognizer
from emotion.sources import AudioOpener
from emotion.streaming import StreamingRecognizer
from emotion.verify import SCORE_BOUND
from tests.media import speechlike

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def feed_all(stream: StreamingRecognizer, samples: np.ndarray, chunk: int) -> list:
    updates = []
    for pos in range(0, len(samples), chunk):
        updates += stream.feed(samples[pos:pos + chunk])
    return updates + stream.flush()


def assert_updates_match_offline(rec, updates, offline: np.ndarray) -> int:
    """Each speech update's scores against `recognize` on the same 16 kHz window of the file's
    offline decoding; returns how many were compared."""
    compared = 0
    for u in updates:
        if u.speech:
            ref = rec.recognize(offline[u.start:u.end], sample_rate=SAMPLE_RATE)
            worst = max(abs(u.scores[k] - ref.scores[k]) for k in ref.scores)
            assert worst <= SCORE_BOUND, (u.start_s, u.end_s, worst)
            assert u.emotion == ref.emotion
            compared += 1
    return compared


def assert_same_result(a, b, bound: float = 1e-5) -> None:
    assert a.emotion == b.emotion and a.granularity == b.granularity
    assert max(abs(a.scores[k] - b.scores[k]) for k in a.scores) <= bound
    assert a.embedding.shape == b.embedding.shape
    assert np.abs(a.embedding - b.embedding).max() <= 1e-4
    assert abs(a.input.duration_s - b.input.duration_s) < 1e-3


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000])
def test_resampler_chunk_by_chunk_is_the_whole_file_filter(rate):
    x = torch.from_numpy(np.random.default_rng(rate).standard_normal(int(rate * 1.37)).astype(np.float32))
    whole = resample(x, rate, SAMPLE_RATE)
    for chunk in (97, 1237, rate // 3 + 1):  # sizes that divide neither the filter's blocks nor a hop
        r = StreamResampler(rate)
        parts = [r.push(x[i:i + chunk]) for i in range(0, len(x), chunk)] + [r.flush()]
        out = torch.cat(parts)
        assert len(out) == len(whole)
        assert (out - whole).abs().max() <= 1e-6  # the same filter: only float rounding differs


@pytest.mark.parametrize("rate, channels, chunk_s", [(44100, 2, 0.137), (11025, 1, 0.0731), (16000, 1, 0.3)])
def test_updates_and_finish_equal_offline(tiny_recognizer, tmp_path, rate, channels, chunk_s):
    """Stereo, odd rates, chunk sizes that do not divide the hop: each update is `recognize` on its
    window of the file's 16 kHz audio; finish() is `recognize` on the file, for both granularities."""
    samples = speechlike(3.3, rate, channels, seed=rate)
    path = tmp_path / f"clip_{rate}.wav"
    sf.write(path, samples, rate, subtype="FLOAT")
    offline = load_audio(path).samples
    stream = StreamingRecognizer(tiny_recognizer, rate, window_s=1.5, hop_s=0.4, vad=False)
    updates = feed_all(stream, samples if channels > 1 else samples[:, 0], max(1, round(chunk_s * rate)))
    hop = round(0.4 * SAMPLE_RATE)
    assert [u.end for u in updates] == list(range(hop, len(offline) + 1, hop))
    assert all(u.end - u.start == min(u.end, round(1.5 * SAMPLE_RATE)) for u in updates)
    assert assert_updates_match_offline(tiny_recognizer, updates, offline) == len(updates) == 8
    assert_same_result(stream.finish(), tiny_recognizer.recognize(path))
    assert stream.stream.channels == channels
    framed = StreamingRecognizer(tiny_recognizer, rate, vad=False, granularity="frame")
    feed_all(framed, samples, 4096)
    a, b = framed.finish(), tiny_recognizer.recognize(path, granularity="frame")
    assert_same_result(a, b)
    assert np.abs(a.frame_scores - b.frame_scores).max() <= 1e-4 and len(a.segments) == len(b.segments)


@pytest.mark.parametrize("chunk_s", [0.05, 0.9, 4.0])
def test_a_stream_holds_only_its_windows_yet_finish_equals_the_whole(tiny_recognizer, chunk_s):
    """The stream holds about one update window (and two of the recognizer's windows for the whole
    result), not the input, also when one chunk makes several windows due at once (4 s chunks,
    1 s window): every update equals `recognize` on its window, and finish() equals `recognize` on
    all of it, here cut into four of the recognizer's (2 s) windows as a file would be."""
    rec = Recognizer(tiny_recognizer.engine, AudioOpener(window_s=2.0))
    samples = speechlike(6.1, 22050, seed=3)[:, 0]
    offline = resample(torch.from_numpy(samples), 22050, SAMPLE_RATE).numpy()
    stream = StreamingRecognizer(rec, 22050, 1.0, 0.25, vad=False, max_s=None)
    updates = feed_all(stream, samples, round(chunk_s * 22050))
    assert len(updates) == 24 and assert_updates_match_offline(rec, updates, offline) == 24
    assert stream.stream.tape.start > 0 and stream.held_bytes < 4 * (round(chunk_s * 22050) + 2 * SAMPLE_RATE) * 4
    result, expected = stream.finish(), rec.recognize(offline, sample_rate=SAMPLE_RATE)
    assert result.chunks == expected.chunks == 4
    assert_same_result(result, expected)


def test_silence_is_silence_and_costs_no_model_time(tiny_recognizer, speech_file, monkeypatch):
    """Real speech, 3 s of digital silence, real speech (tests/conftest.py): hops in the silence
    say silence without running the model; the speech hops equal offline; finish() equals offline."""
    samples, rate = sf.read(speech_file, dtype="float32")
    calls = []
    real = tiny_recognizer.recognize
    monkeypatch.setattr(tiny_recognizer, "recognize", lambda *a, **k: calls.append(1) or real(*a, **k))
    stream = StreamingRecognizer(tiny_recognizer, rate, window_s=3.0, hop_s=0.5)
    updates = feed_all(stream, samples, 3001)
    monkeypatch.undo()
    silent = [u for u in updates if not u.speech]
    speech_ends = [u.end_s for u in updates if u.speech]
    assert len(calls) == len(speech_ends)
    assert silent and all(u.scores is None and u.emotion is None for u in silent)
    # the gap is about 2.8-6.4 s: its inner hops are silent, the hops with words are not
    assert {4.0, 4.5, 5.0, 5.5} <= {u.end_s for u in silent}
    assert {1.0, 1.5, 2.0, 7.5, 8.0} <= set(speech_ends)
    assert assert_updates_match_offline(tiny_recognizer, updates, load_audio(speech_file).samples) > 5
    assert_same_result(stream.finish(), tiny_recognizer.recognize(speech_file))
    assert "silence" in silent[0].line()


def test_int16_chunks_equal_float_chunks(tiny_recognizer):
    pcm = (speechlike(1.2, 22050, seed=3)[:, 0] * 32767).astype(np.int16)
    a = StreamingRecognizer(tiny_recognizer, 22050, 1.0, 0.5, vad=False)
    b = StreamingRecognizer(tiny_recognizer, 22050, 1.0, 0.5, vad=False)
    ua, ub = feed_all(a, pcm, 5000), feed_all(b, pcm.astype(np.float32) / 32768.0, 5000)
    assert [u.scores for u in ua] == [u.scores for u in ub] and len(ua) == 2


def test_refused_input(tiny_recognizer):
    with pytest.raises(AudioError, match="outside 8000-192000"):
        StreamingRecognizer(tiny_recognizer, 4000, vad=False)
    with pytest.raises(ValueError, match="hop"):
        StreamingRecognizer(tiny_recognizer, 16000, window_s=1.0, hop_s=2.0, vad=False)
    stream = StreamingRecognizer(tiny_recognizer, 16000, vad=False)
    stream.feed(np.zeros((800, 2), np.float32))
    with pytest.raises(AudioError) as err:
        stream.feed(np.zeros((800, 3), np.float32))
    assert err.value.code == "format_change"
    with pytest.raises(AudioError) as err:
        stream.feed(np.full((10, 2), np.nan, np.float32))
    assert err.value.code == "not_finite"
    with pytest.raises(AudioError, match="too short"):
        stream.finish()  # 0.05 s
    with pytest.raises(AudioError) as err:
        StreamingRecognizer(tiny_recognizer, 16000, vad=False, max_s=1.0).feed(np.zeros(16001, np.float32))
    assert err.value.code == "too_long"


def test_latest_only_skips_stale_hops(tiny_recognizer):
    stream = StreamingRecognizer(tiny_recognizer, 16000, 1.0, 0.25, vad=False, latest_only=True)
    updates = stream.feed(speechlike(2.0, 16000)[:, 0])  # eight hops due at once: only the newest judged
    assert [u.end_s for u in updates] == [2.0] and stream.skipped == 7


def run_cli(*args, timeout=120, env=None):
    return subprocess.run([sys.executable, "-m", "emotion", "stream", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_cli_stream(tiny_model, tiny_recognizer, audio_dir, tmp_path):
    """`emotion stream FILE --fast` prints a line per hop and the whole file's result, which is
    `recognize`'s; at real-time pace a 1.5 s file takes at least 1.5 s; a bad file is one line."""
    path = audio_dir / "stereo_44100.wav"  # 2.0 s
    p = run_cli(path, "--model-dir", tiny_model, "--fast", "--no-vad", "--hop", "0.5", "--window", "1")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    updates = [x for x in lines if x.strip()[:1].isdigit()]
    assert [x.split()[0] for x in updates] == ["0.00-0.50", "0.00-1.00", "0.50-1.50", "1.00-2.00"]
    ref = tiny_recognizer.recognize(path)
    assert lines[-1].startswith(f"whole file: {ref.label.emoji} {ref.emotion} {ref.confidence:.1%}"), lines[-1]
    start = time.perf_counter()  # decoded as it plays: the decoding time limit counts per chunk
    p = run_cli(audio_dir / "mono_8000.wav", "--model-dir", tiny_model, "--no-vad", "--chunk", "0.1",
                env={**os.environ, "EMOTION_MAX_DECODE_S": "0.5"})
    assert p.returncode == 0 and "lag" in p.stdout, p.stderr
    assert time.perf_counter() - start >= 1.5
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"<html>")
    p = run_cli(bad, "--model-dir", tiny_model, "--fast")
    assert p.returncode == 2 and p.stderr.startswith("error: bad.wav: not a readable audio file"), p.stderr
    assert "Traceback" not in p.stderr


def noise_file(path, minutes: float, rate: int = 8000):
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16") as fh:
        for _ in range(int(minutes)):
            fh.write((0.1 * rng.standard_normal(60 * rate)).astype(np.float32))
        fh.write((0.1 * rng.standard_normal(round(minutes % 1 * 60 * rate))).astype(np.float32))
    return path


def test_cli_stream_whole_file_line_is_recognize_over_several_windows(tiny_model, tmp_path):
    """95 s: four of the recognizer's windows, the last two sharing what is left after 60 s; the
    stream cuts them from the audio it has played and its whole-file line is `emotion recognize`'s."""
    path = noise_file(tmp_path / "call_95s.wav", 95 / 60)
    p = run_cli(path, "--model-dir", tiny_model, "--fast", "--no-vad", "--hop", "10", "--window", "10",
                "--chunk", "5", timeout=600)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert sum(x.strip()[:1].isdigit() for x in lines) == 9 and lines[-2].split()[0] == "80.00-90.00"
    ref = subprocess.run([sys.executable, "-m", "emotion", "recognize", str(path), "--model-dir", str(tiny_model),
                          "--output-dir", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert ref.returncode == 0 and "(4 windows)" in ref.stdout, ref.stderr
    emoji, emotion, confidence = ref.stdout.split()[:3]
    assert lines[-1].startswith(f"whole file: {emoji} {emotion} {confidence}"), (lines[-1], ref.stdout)


def test_cli_stream_plays_a_file_longer_than_half_an_hour(tiny_model, tmp_path):
    """31 minutes through `emotion stream --fast`: no cap on the command line (the app's 30 min
    limit is not the stream's), so it starts playing at once, decoded as it plays; once updates
    come, the rest of the half hour is not waited for (the test above holds the end of a stream,
    its whole-file line over several windows, to `emotion recognize`). --max-duration caps it."""
    path = noise_file(tmp_path / "call_31min.wav", 31)
    proc = subprocess.Popen([sys.executable, "-m", "emotion", "stream", str(path), "--model-dir", str(tiny_model),
                             "--fast", "--no-vad", "--hop", "30", "--window", "30", "--chunk", "5"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(3)]  # the header, then two updates
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=60)
    assert lines[0].startswith("call_31min.wav: 1860.00 s at 8000 Hz"), (lines, err)
    assert [x.split()[0] for x in lines[1:]] == ["0.00-30.00", "30.00-60.00"], (lines, err)
    capped = run_cli(path, "--model-dir", tiny_model, "--fast", "--max-duration", "600")
    assert capped.returncode == 2 and "longer than the 600 s limit" in capped.stderr, capped.stderr
