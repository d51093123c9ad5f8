"""Engine behaviour beyond the reference: long clips, frame scores, timelines, result files."""

import json
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from emotion import AudioError, Recognizer, write_result
from emotion.audio import load_audio, normalize
from emotion.timeline import segments
from tests.media import speechlike


def test_long_clip_is_chunked_and_memory_bounded(tiny_recognizer):
    rec = Recognizer(tiny_recognizer.model, chunk_s=2.0)
    samples = speechlike(7.0, 16000)[:, 0]
    res = rec.recognize(samples, sample_rate=16000, granularity="frame")
    assert res.chunks == 4 and res.chunk_s == 2.0  # 7 s in 4 equal windows of 1.75 s
    assert res.to_dict()["chunks"] == 4
    # windows are the normalised whole clip cut in pieces, each run alone
    wave = normalize(torch.from_numpy(samples))
    pieces = rec._windows(wave)
    assert [o for o, _ in pieces] == [0, 28000, 56000, 84000]
    expected = torch.cat(rec._run([p for _, p in pieces[:1]]) + rec._run([p for _, p in pieces[1:2]])
                         + rec._run([p for _, p in pieces[2:3]]) + rec._run([p for _, p in pieces[3:]]))
    assert np.allclose(res.embedding, expected.numpy(), atol=1e-5)
    assert res.frame_starts[0] == 0 and abs(res.frame_starts[-1] - 6.98) < 0.05
    assert np.all(np.diff(res.frame_starts) > 0)
    # a clip inside the window is never chunked
    short = rec.recognize(samples[: 16000], sample_rate=16000)
    assert short.chunks == 1 and short.chunk_s is None


def test_frame_granularity_gives_per_frame_scores_and_timeline(tiny_recognizer, audio_dir):
    res = tiny_recognizer.recognize(audio_dir / "mono_16000.wav", granularity="frame")
    t = res.embedding.shape[0]
    assert res.frame_scores.shape == (t, 9)
    assert np.allclose(res.frame_scores.sum(1), 1, atol=1e-5)
    head = tiny_recognizer._head(torch.from_numpy(res.embedding[3])).numpy()
    assert np.allclose(res.frame_scores[3], head, atol=1e-6)
    segs = res.segments
    assert segs[0].start == 0 and abs(segs[-1].end - res.input["duration_s"]) < 1e-6
    assert all(a.end == pytest.approx(b.start) for a, b in zip(segs, segs[1:]))
    # utterance scores are those of the mean embedding, as in the reference
    utt = tiny_recognizer.recognize(audio_dir / "mono_16000.wav")
    assert utt.scores == pytest.approx(res.scores, abs=1e-7)
    assert utt.embedding.shape == (64,)


def test_timeline_merges_short_flickers():
    hop = 0.02
    scores = np.zeros((100, 3))
    scores[:, 0] = 0.6
    scores[:, 1] = 0.4
    scores[40:45, 1] = 0.9  # a 0.1 s blip of class 1: smoothed away or merged
    scores[60:, 2] = 1.0  # a real change at 1.2 s
    segs = segments(scores, np.arange(100) * hop, hop, ["a", "b", "c"], 2.0)
    assert [s.emotion for s in segs] == ["a", "c"]
    assert abs(segs[1].start - 1.2) <= 0.3 and segs[-1].end == 2.0
    assert all(0 < s.confidence <= 1 for s in segs)


def test_result_folder_is_complete_and_strict_json(tiny_recognizer, audio_dir, tmp_path):
    res = tiny_recognizer.recognize(audio_dir / "stereo_44100.wav", granularity="frame")
    folder = write_result(res, tmp_path)
    assert sorted(os.listdir(folder)) == ["embedding.npy", "manifest.json", "processed_audio.wav", "result.json"]
    data = json.loads((folder / "result.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    for key in ("emotion", "confidence", "scores", "granularity", "timestamp", "label_zh", "emoji",
                "top", "input", "model", "timing", "frames", "timeline"):
        assert key in data
    assert list(data["scores"]) == ["angry", "disgusted", "fearful", "happy", "neutral", "other",
                                    "sad", "surprised", "unknown"]
    assert data["input"]["channels"] == 2 and data["input"]["sample_rate"] == 44100
    assert len(data["top"]) == 3 and data["top"][0]["emotion"] == data["emotion"]
    assert set(data["timing"]) == {"decode_ms", "resample_ms", "inference_ms"}
    emb = np.load(folder / "embedding.npy")
    assert emb.dtype == np.float32 and emb.shape == res.embedding.shape
    wav, sr = sf.read(folder / "processed_audio.wav", dtype="float32")
    assert sr == 16000 and np.array_equal(wav, load_audio(audio_dir / "stereo_44100.wav").samples)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_nan_result_is_never_written(tiny_recognizer, audio_dir, tmp_path):
    res = tiny_recognizer.recognize(audio_dir / "mono_16000.wav")
    res.confidence = float("nan")
    with pytest.raises(ValueError):
        write_result(res, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_many_keeps_going_past_bad_files(tiny_recognizer, audio_dir, tmp_path):
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"garbage" * 100)
    seen = []
    out = tiny_recognizer.recognize_many([audio_dir / "mono_8000.wav", bad, audio_dir / "clip.flac"],
                                         on_result=lambda i, r: seen.append(i))
    assert isinstance(out[1], AudioError) and "bad.mp3" in str(out[1])
    assert out[0].emotion and out[2].emotion and sorted(seen) == [0, 1, 2]


def test_many_decodes_the_next_group_while_this_one_is_analysed(tiny_recognizer, audio_dir):
    """recognize_many's decode-ahead: while group 0 is analysed, group 1's files are already being
    decoded (the analysis of group 0 waits for a decode of group 1 to begin; without decode-ahead
    it would wait in vain). Results and order are as without it."""
    import threading

    files = sorted(audio_dir.glob("*.wav"))[:4]
    started = {i: threading.Event() for i in range(4)}
    index = {str(f): i for i, f in enumerate(files)}

    def loader(path, **kwargs):
        started[index[str(path)]].set()
        return load_audio(path)

    rec = Recognizer(tiny_recognizer.model, loader=loader)
    real, overlapped = rec.analyse, []

    def analyse(clips, granularity="utterance"):
        if clips[0].name == files[0].name:  # group 0, files 0 and 1
            overlapped.append(started[2].wait(10) or started[3].wait(0))
        return real(clips, granularity)

    rec.analyse = analyse
    seen = []
    out = rec.recognize_many(files, group=2, on_result=lambda i, r: seen.append(i))
    assert overlapped == [True]
    assert seen == [0, 1, 2, 3] and [r.input["name"] for r in out] == [f.name for f in files]
    expected = tiny_recognizer.recognize_many(files, group=1)  # one at a time: padded batches differ by ~1e-6
    assert max(abs(a.scores[k] - b.scores[k]) for a, b in zip(out, expected) for k in a.scores) <= 1e-4


def test_samples_in_equal_file_in(tiny_recognizer, audio_dir):
    data, sr = sf.read(audio_dir / "stereo_44100.wav", dtype="float32")
    a = tiny_recognizer.recognize(data, sample_rate=sr)
    b = tiny_recognizer.recognize(audio_dir / "stereo_44100.wav")
    assert a.scores == pytest.approx(b.scores, abs=1e-7)
