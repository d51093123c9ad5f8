"""Real recordings as collections hold them: every audio extension, damaged packets, an Opus
pre-skip, two-channel calls, silence, and files too long to hold (issue 13).  Every file is made
here, by encoding with PyAV or by flipping bytes of a real encode."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emotion import AudioError, Recognizer
from emotion.audio import AUDIO_EXTENSIONS, SILENT_WARNING, find_audio, load_audio, load_channels
from emotion.batch.inputs import BatchItem
from emotion.batch.job import local_scorer, run_job
from emotion.batch.rows import row_schema
from emotion.batch.sinks import open_sink, read_rows
from emotion.isolation import IsolatedDecoder
from emotion.labels import label_keys
from emotion.sources import AudioOpener
from tests.media import encode, opus_with_preskip, speechlike, write_wav

ROOT = Path(__file__).resolve().parent.parent
# A real encode for the extensions PyAV can write here (codec, container); the rest (formats with
# a decoder but no encoder: APE, Musepack, WMA...) hold a WAV: the content decides, not the name.
ENCODINGS = {
    ".flac": ("flac", "flac"), ".mp3": ("libmp3lame", "mp3"), ".mp2": ("mp2", "mp2"), ".mpa": ("mp2", "mp2"),
    ".m4a": ("aac", "mp4"), ".m4b": ("aac", "ipod"), ".m4r": ("aac", "ipod"), ".mp4": ("aac", "mp4"),
    ".m4v": ("aac", "mp4"), ".mov": ("aac", "mov"), ".qt": ("aac", "mov"), ".3gp": ("aac", "3gp"),
    ".3g2": ("aac", "3g2"), ".aac": ("aac", "adts"), ".adts": ("aac", "adts"), ".ogg": ("flac", "ogg"),
    ".oga": ("flac", "ogg"), ".opus": ("libopus", "ogg"), ".ogv": ("libopus", "ogg"), ".aiff": ("pcm_s16be", "aiff"),
    ".aif": ("pcm_s16be", "aiff"), ".aifc": ("pcm_s16be", "aiff"), ".caf": ("alac", "caf"), ".au": ("pcm_s16be", "au"),
    ".snd": ("pcm_s16be", "au"), ".amr": ("libopencore_amrnb", "amr"), ".ac3": ("ac3", "ac3"),
    ".eac3": ("eac3", "eac3"), ".wv": ("wavpack", "wv"), ".tta": ("tta", "tta"), ".w64": ("pcm_s16le", "w64"),
    ".mka": ("libopus", "matroska"), ".mkv": ("libopus", "matroska"), ".webm": ("libopus", "webm"),
    ".weba": ("libopus", "webm"), ".avi": ("libmp3lame", "avi"), ".flv": ("libmp3lame", "flv"),
    ".mpg": ("mp2", "mpeg"), ".mpeg": ("mp2", "mpeg"), ".vob": ("mp2", "vob"), ".ts": ("mp2", "mpegts"),
    ".mts": ("mp2", "mpegts"), ".m2ts": ("mp2", "mpegts"), ".rm": ("ac3", "rm"), ".ra": ("ac3", "rm"),
}
RATE_OF = {"libopencore_amrnb": 8000, "libopus": 48000, "ac3": 48000, "eac3": 48000}


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "emotion", *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=cwd or ROOT)


@pytest.fixture(scope="module")
def every_extension(tmp_path_factory):
    """A folder with a file of every extension a folder search takes, plus two that are not audio."""
    d = tmp_path_factory.mktemp("every_extension")
    wav = write_wav(tmp_path_factory.mktemp("plain") / "plain.wav", 0.5, 22050, seed=1)
    real = []
    for ext in AUDIO_EXTENSIONS:
        target = d / f"clip{ext}"
        if ext in ENCODINGS:
            codec, container = ENCODINGS[ext]
            encode(target, 0.5, RATE_OF.get(codec, 44100), codec, container, seed=2)
            real.append(ext)
        elif not target.exists():
            shutil.copy(wav, target)
    (d / "notes.txt").write_text("not audio")
    (d / "cover.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    return d, real


def test_a_folder_search_finds_every_audio_and_video_extension(every_extension):
    folder, real = every_extension
    search = find_audio(folder)
    assert sorted(p.suffix for p in search.found) == sorted(AUDIO_EXTENSIONS)
    assert [p.name for p in search.skipped] == ["cover.png", "notes.txt"]
    assert len(real) >= 45  # most are genuine encodes of their format
    for path in search.found:  # and each of them decodes
        assert 0.4 < load_audio(path).duration_s < 0.7, path.name
    assert len(find_audio(folder, every_file=True).found) == len(AUDIO_EXTENSIONS) + 2


def test_recognize_over_a_folder_says_what_it_skipped(every_extension, tiny_model, tmp_path):
    folder, _ = every_extension
    sub = tmp_path / "in"
    sub.mkdir()
    for name in ("clip.m4b", "clip.wv", "clip.mkv", "notes.txt", "cover.png"):
        shutil.copy(folder / name, sub / name)
    p = run_cli("recognize", sub, "--model-dir", tiny_model, "--output-dir", tmp_path / "out")
    assert p.returncode == 0, p.stderr
    assert "skipped 2 files that are not audio by extension: " in p.stderr and "notes.txt" in p.stderr
    assert "3 done, 0 failed" in p.stderr
    p = run_cli("recognize", sub, "--all-files", "--model-dir", tiny_model, "--output-dir", tmp_path / "out2")
    assert p.returncode == 1 and "skipped" not in p.stderr and "3 done, 2 failed" in p.stderr, p.stderr


# -- damaged packets --------------------------------------------------------------------------


def damage(src: Path, dst: Path, at: int, count: int, seed: int = 0) -> Path:
    data = bytearray(src.read_bytes())
    data[at : at + count] = np.random.default_rng(seed).integers(0, 256, count, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return dst


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """(clean, damaged) pairs: 64 bytes flipped mid-file in an m4a and an AMR, 16 in an AMR's
    second packet, and three MP3s joined with cat (against the three decoded apart)."""
    d = tmp_path_factory.mktemp("damaged")
    m4a = encode(d / "clean.m4a", 9.66, 44100, "aac", "mp4")
    amr = encode(d / "clean.amr", 20.0, 8000, "libopencore_amrnb", "amr")
    mp3s = [encode(d / f"part{i}.mp3", 6.0, 44100, "libmp3lame", "mp3", seed=i) for i in range(3)]
    (d / "joined.mp3").write_bytes(b"".join(p.read_bytes() for p in mp3s))
    return {
        "m4a": (load_audio(m4a).duration_s, damage(m4a, d / "bad.m4a", m4a.stat().st_size // 2, 64)),
        "amr": (load_audio(amr).duration_s, damage(amr, d / "bad.amr", amr.stat().st_size // 2, 64)),
        "amr_head": (load_audio(amr).duration_s, damage(amr, d / "bad_head.amr", 6 + 14, 16)),  # 2nd packet
        "mp3": (sum(load_audio(p).duration_s for p in mp3s), d / "joined.mp3"),
    }


@pytest.mark.parametrize("case", ["m4a", "amr", "amr_head", "mp3"])
def test_damaged_packets_are_skipped_and_the_loss_recorded(damaged, case):
    clean_s, path = damaged[case]
    audio = load_audio(path)
    assert audio.duration_s >= 0.99 * clean_s  # was 51 %, 50 %, 0.2 % ("too short") and 33 %
    [warning] = audio.warnings
    assert warning.startswith("recovered ") and "damaged packet" in warning and " skipped" in warning


def test_skipping_is_bounded(damaged, monkeypatch):
    import emotion.decode

    monkeypatch.setattr(emotion.decode, "MAX_DAMAGED_RUN", 1)  # give up at the first damaged packet
    audio = load_audio(damaged["amr"][1])
    assert audio.duration_s < 0.6 * damaged["amr"][0]
    assert any("decoding stopped early (1 damaged packets in a row" in w for w in audio.warnings)
    with pytest.raises(AudioError) as err:  # nothing decoded before giving up
        load_audio(damaged["amr_head"][1])
    assert err.value.code in ("too_short", "undecodable")


def test_opus_pre_skip_is_not_mistaken_for_truncation(tmp_path):
    path = opus_with_preskip(tmp_path / "preskip.opus", 3.0, preskip=65535)
    import av

    with av.open(str(path)) as container:  # the container declares the 1.37 s of priming too
        declared = float(container.streams.audio[0].duration * container.streams.audio[0].time_base)
    audio = load_audio(path)
    assert declared == pytest.approx(3.0 + 65535 / 48000, abs=0.03) and audio.duration_s == pytest.approx(3.0, abs=0.03)
    assert audio.warnings == []


# -- channels ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def call(tmp_path_factory):
    """A two-channel call: a different voice on each side, quiet on the other's turns."""
    left, right = speechlike(4.0, 44100, seed=3)[:, 0], speechlike(4.0, 44100, seed=4)[:, 0] * 0.5
    half = len(left) // 2
    left[half:] *= 0.01
    right[:half] *= 0.01
    path = tmp_path_factory.mktemp("call") / "call.flac"
    sf.write(path, np.stack([left, right], axis=1), 44100, subtype="PCM_24")
    return path


def test_channel_choice_decodes_each_side(call, tmp_path):
    each = load_channels(call, channels="each")
    assert [c.channel for c in each] == ["left", "right"] and all(c.channels == 2 for c in each)
    data, rate = sf.read(call, dtype="float32")
    for i, clip in enumerate(each):  # each side alone, as a mono file of it decodes
        mono = tmp_path / f"side{i}.wav"
        sf.write(mono, data[:, i], rate, subtype="FLOAT")
        assert np.array_equal(clip.samples, load_audio(mono).samples)
        assert np.array_equal(load_audio(call, channels=clip.channel).samples, clip.samples)
    assert load_audio(call).channel == "mix" and not np.array_equal(load_audio(call).samples, each[0].samples)
    mono = load_channels(tmp_path / "side0.wav", channels="each")
    assert [c.channel for c in mono] == ["mono"]
    with pytest.raises(ValueError):
        load_audio(call, channels="each")


def test_each_channel_gets_its_own_result(tiny_recognizer, call):
    left, right = tiny_recognizer.recognize_channels(call)
    with pytest.raises(ValueError, match="recognize_channels"):  # recognize gives one result, always
        tiny_recognizer.recognize(call, channels="each")
    assert (left.input.channel, right.input.channel) == ("left", "right")
    assert left.to_dict()["input"]["channel"] == "left"
    assert left.scores != right.scores
    # the head runs once for both channels (one matrix product): equal to one channel alone up to rounding
    assert left.scores == pytest.approx(tiny_recognizer.recognize(call, channels="left").scores, abs=1e-6)
    mixed = tiny_recognizer.recognize(call)
    assert mixed.input.channel == "mix" and mixed.scores not in (left.scores, right.scores)
    [[a, b], err] = tiny_recognizer.recognize_many([call, call.with_name("missing.wav")], channels="each")
    assert a.scores == left.scores and b.scores == right.scores and isinstance(err, AudioError)
    with IsolatedDecoder() as decoder:
        isolated = decoder.load_channels(call, channels="each")
        assert [np.array_equal(x.samples, y.samples) for x, y in
                zip(isolated, load_channels(call, channels="each"))] == [True, True]
        assert np.array_equal(decoder.load(call, channels="right").samples, isolated[1].samples)


# -- silence ----------------------------------------------------------------------------------


def test_silence_is_flagged_not_judged(tiny_recognizer, tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(32000, np.float32), 16000)
    res = tiny_recognizer.recognize(path)
    assert res.silent and SILENT_WARNING in res.warnings
    assert json.loads(res.to_json())["silent"] is True
    speech = tiny_recognizer.recognize(write_wav(tmp_path / "speech.wav", 2.0, 16000))
    assert not speech.silent and speech.warnings == [] and speech.to_dict()["silent"] is False


# -- the batch command: warnings, channels, silence -------------------------------------------


def test_batch_rows_carry_warnings_channels_and_no_emotion_for_silence(tiny_model, damaged, call, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(damaged["amr"][1], folder / "damaged.amr")
    shutil.copy(call, folder / "call.flac")
    sf.write(folder / "silence.wav", np.zeros((32000, 2), np.float32), 16000)
    out = tmp_path / "rows.csv"
    p = run_cli("batch", folder, "-o", out, "--channels", "each", "--model-dir", tiny_model, "--no-progress")
    assert p.returncode == 0, p.stderr
    rows = {(Path(r["path"]).name, r["channel"]): r for r in read_rows(out)}
    assert sorted(rows) == [("call.flac", "left"), ("call.flac", "right"), ("damaged.amr", "mono"),
                            ("silence.wav", "left"), ("silence.wav", "right")]
    assert rows["damaged.amr", "mono"]["warnings"].startswith("recovered ") and rows["damaged.amr", "mono"]["emotion"]
    assert rows["call.flac", "left"]["warnings"] == "" and rows["call.flac", "left"]["emotion"]
    for side in ("left", "right"):
        silent = rows["silence.wav", side]
        assert silent["warnings"] == SILENT_WARNING and silent["emotion"] == silent["confidence"] == ""
        assert silent["error"] == "" and float(silent["neutral"]) >= 0  # the scores are kept
    p = run_cli("batch", folder, "-o", out, "--channels", "each", "--model-dir", tiny_model, "--no-progress")
    assert "5 files" not in p.stderr and "3 files: 0 analysed, 0 failed, 3 done earlier" in p.stderr  # resumes


# -- files too long to hold -------------------------------------------------------------------


def test_long_files_are_streamed_window_by_window(tiny_model, call, tmp_path):
    rec = Recognizer.load(tiny_model, device="cpu", warmup=False,
                          opener=AudioOpener(None, stream_above_s=3.0, window_s=1.5))
    [left, right] = rec.recognize_channels(call, granularity="frame")  # 4 s: over 3 s, streamed
    assert left.chunks == 3 and [(w.start, w.end) for w in left.windows] == [(0, 1.5), (1.5, 2.75), (2.75, 4.0)]
    assert left.input.duration_s == 4.0 and left.audio is None and left.embedding.shape == (3, 64)
    assert left.frame_scores.shape[0] == pytest.approx(200, abs=3) and left.segments[-1].end == 4.0
    assert "windows" in left.to_dict() and left.scores != right.scores
    # what a window gave is what that window's audio gives on its own
    clip = load_channels(call, channels="each")[0].samples
    alone = rec.recognize(clip[24000:44000], sample_rate=16000)
    assert left.windows[1].scores == pytest.approx(alone.scores, abs=1e-6)
    held = Recognizer(rec.engine, AudioOpener(3.0, stream_above_s=3.0, window_s=1.5))
    with pytest.raises(AudioError, match="longer than the 3 s limit"):  # capped: refused, as the web app does
        held.recognize(call)


def test_the_batch_job_streams_what_it_cannot_hold(tiny_model, call, audio_dir, tmp_path, monkeypatch):
    import emotion.batch.job
    import emotion.sources
    from emotion.files import file_sha256

    hashed = []

    def counting_sha256(path):
        hashed.append(Path(path).name)
        return file_sha256(path)

    for module in (emotion.sources, emotion.batch.job):
        monkeypatch.setattr(module, "file_sha256", counting_sha256)
    rec = Recognizer.load(tiny_model, device="cpu", warmup=False,
                          opener=AudioOpener(None, stream_above_s=3.0, window_s=1.5))
    items = [BatchItem(str(call), "call"), BatchItem(str(audio_dir / "mono_16000.wav"), "short")]
    sink = open_sink(tmp_path / "out.jsonl", row_schema(label_keys(rec.labels), channels=True))
    summary = run_job(items, sink, local_scorer(rec, channels="right"), progress=False)
    assert hashed.count(call.name) == 1  # the long file is read once to hash it, not again to stream it
    assert summary.rows[0]["sha256"] == file_sha256(call)
    assert not summary.failed and [r["channel"] for r in summary.rows] == ["right", "mono"]
    assert summary.rows[0]["duration_s"] == 4.0
    assert summary.rows[0]["confidence"] == pytest.approx(rec.recognize(call, channels="right").confidence)


def test_the_command_line_streams_long_files_unless_capped():
    from emotion.settings import Settings

    assert Settings().opener().streams  # no cap: files over 30 min are streamed
    assert not Settings(max_duration_s=1800).opener().streams  # a cap at or under 30 min: refused
    assert not Settings().opener(app=True).streams  # the web app's users: the 30 min cap
    assert Settings().app_max_duration_s == 1800 and Settings(max_duration_s=600).app_max_duration_s == 600


# VmHWM, not ru_maxrss: a child started by vfork inherits its parent's high-water mark in the latter
PEAK_MEMORY = textwrap.dedent("""
    import sys
    from emotion.audio import load_channels
    from emotion.sources import FileStream

    if sys.argv[1] == "stream":
        for window in FileStream(sys.argv[2], window_s=10, channels="each").windows():
            pass
    else:
        load_channels(sys.argv[2], max_duration_s=None, channels="each")
    status = open("/proc/self/status").read()
    print(int(status.split("VmHWM:")[1].split()[0]) / 1024)
""")


def test_streaming_memory_does_not_grow_with_length(tmp_path):
    """Five minutes of 48 kHz stereo streamed in 10 s windows: the peak memory of 30 s; held whole
    the same file costs over a hundred MB more (the check can fail).  Each in a fresh process."""
    rng = np.random.default_rng(0)
    short, long = tmp_path / "short.wav", tmp_path / "long.wav"
    sf.write(short, 0.1 * rng.standard_normal((30 * 48000, 2)).astype(np.float32), 48000, subtype="PCM_16")
    with sf.SoundFile(long, "w", 48000, 2, subtype="PCM_16") as fh:
        for _ in range(10):
            fh.write(0.1 * rng.standard_normal((30 * 48000, 2)).astype(np.float32))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def peak_mb(how: str, path: Path) -> float:
        p = subprocess.run([sys.executable, "-c", PEAK_MEMORY, how, str(path)], capture_output=True, text=True,
                           timeout=300, env=env)
        assert p.returncode == 0, p.stderr
        return float(p.stdout)

    base = peak_mb("stream", short)
    assert peak_mb("stream", long) - base < 30
    assert peak_mb("whole", long) - base > 100
