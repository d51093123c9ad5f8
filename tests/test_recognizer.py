"""Engine behaviour beyond the reference: long clips, frame scores, timelines, result files."""

import json
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from emotion import AudioError, Recognizer, write_result
from emotion.audio import load_audio, normalize
from emotion.sources import AudioOpener, window_bounds
from emotion.timeline import segments
from tests.media import speechlike


def test_windows_cut_as_a_stream_cuts():
    """Up to a window: one; longer: whole windows while two are held, the last two share the rest."""
    w = 100
    assert window_bounds(100, w) == [(0, 100)]
    assert window_bounds(150, w) == [(0, 75), (75, 150)]
    assert window_bounds(250, w) == [(0, 100), (100, 175), (175, 250)]
    assert window_bounds(300, w) == [(0, 100), (100, 200), (200, 300)]
    for total in (1, 99, 201, 1234):
        bounds = window_bounds(total, w)
        assert bounds[0][0] == 0 and bounds[-1][1] == total
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
        assert all(e - s <= w for s, e in bounds) and (len(bounds) == 1 or min(e - s for s, e in bounds) >= w // 2)


def test_long_clip_is_windowed_each_window_normalised_alone(tiny_recognizer):
    rec = Recognizer(tiny_recognizer.engine, AudioOpener(window_s=2.0))
    samples = speechlike(7.0, 16000)[:, 0]
    res = rec.recognize(samples, sample_rate=16000, granularity="frame")
    assert res.chunks == 4 and res.chunk_s == 2.0  # 2 s, 2 s, then the last 3 s shared: 1.5 s, 1.5 s
    assert res.to_dict()["chunks"] == 4 and [w.start for w in res.windows] == [0, 2.0, 4.0, 5.5]
    bounds = window_bounds(len(samples), 32000)
    expected = np.concatenate([rec.engine.embed([normalize(torch.from_numpy(samples[a:b])).numpy()])[0]
                               for a, b in bounds])
    assert np.allclose(res.embedding, expected, atol=1e-5)
    assert res.frame_starts[0] == 0 and abs(res.frame_starts[-1] - 6.98) < 0.05
    assert np.all(np.diff(res.frame_starts) > 0)
    # a clip inside the window is never cut, and is normalised whole, as the reference does
    short = rec.recognize(samples[: 16000], sample_rate=16000)
    assert short.chunks == 1 and short.chunk_s is None and short.windows is None


def test_scores_do_not_depend_on_whether_a_file_is_read_whole_or_streamed(tiny_model, tmp_path):
    """The same file just under the streaming threshold (decoded whole) and just over it
    (streamed in bounded memory) gives the same scores, frame scores and windows."""
    path = tmp_path / "long.flac"
    sf.write(path, speechlike(9.3, 22050), 22050)  # stereo, resampled: the stream's resampler too
    engine = Recognizer.load(tiny_model, device="cpu", warmup=False).engine
    whole = Recognizer(engine, AudioOpener(None, stream_above_s=9.4, window_s=2.0))
    streamed = Recognizer(engine, AudioOpener(None, stream_above_s=9.2, window_s=2.0))
    assert whole.opener.read_whole(path) and not streamed.opener.read_whole(path)
    a, b = (r.recognize(path, granularity="frame") for r in (whole, streamed))
    assert a.chunks == b.chunks == 5 and a.input.duration_s == b.input.duration_s
    assert max(abs(a.scores[k] - b.scores[k]) for k in a.scores) <= 1e-6
    assert np.abs(a.frame_scores - b.frame_scores).max() <= 1e-6
    assert [(w.start, w.end, w.emotion) for w in a.windows] == [(w.start, w.end, w.emotion) for w in b.windows]
    assert a.audio is not None and b.audio is None  # only the one held whole has its audio to save


def test_frame_granularity_gives_per_frame_scores_and_timeline(tiny_recognizer, audio_dir):
    res = tiny_recognizer.recognize(audio_dir / "mono_16000.wav", granularity="frame")
    t = res.embedding.shape[0]
    assert res.frame_scores.shape == (t, 9)
    assert np.allclose(res.frame_scores.sum(1), 1, atol=1e-5)
    head = tiny_recognizer.scores(res.embedding[3])
    assert np.allclose(res.frame_scores[3], head, atol=1e-6)
    segs = res.segments
    assert segs[0].start == 0 and abs(segs[-1].end - res.input.duration_s) < 1e-6
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

    rec = Recognizer(tiny_recognizer.engine, AudioOpener(load=loader))
    real, overlapped = rec.analyse_sources, []

    def analyse(sources, granularity="utterance"):
        if sources[0].name == files[0].name:  # group 0, files 0 and 1
            overlapped.append(started[2].wait(10) or started[3].wait(0))
        return real(sources, granularity)

    rec.analyse_sources = analyse
    seen = []
    out = rec.recognize_many(files, group=2, on_result=lambda i, r: seen.append(i))
    assert overlapped == [True]
    assert seen == [0, 1, 2, 3] and [r.input.name for r in out] == [f.name for f in files]
    expected = tiny_recognizer.recognize_many(files, group=1)  # one at a time: padded batches differ by ~1e-6
    assert max(abs(a.scores[k] - b.scores[k]) for a, b in zip(out, expected) for k in a.scores) <= 1e-4


def test_samples_in_equal_file_in(tiny_recognizer, audio_dir):
    data, sr = sf.read(audio_dir / "stereo_44100.wav", dtype="float32")
    a = tiny_recognizer.recognize(data, sample_rate=sr)
    b = tiny_recognizer.recognize(audio_dir / "stereo_44100.wav")
    assert a.scores == pytest.approx(b.scores, abs=1e-7)
