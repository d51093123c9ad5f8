"""Who felt what: speaker turns on a conversation of two synthetic voices (espeak-ng), an emotion
per turn, a summary per speaker, and the inputs that have no conversation in them.

espeak-ng comes from Debian (tests/browser_setup.sh installs it); without it these tests are
skipped, unless EMOTION_REQUIRE_BROWSER=1, where they fail.  The emotion model is the tiny
random-weight fixture: the tests check the plumbing (a turn's emotion is its span's), not what
a trained model hears.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emotion.audio import SAMPLE_RATE, Audio, load_audio, load_channels
from emotion.errors import AudioError

ROOT = Path(__file__).resolve().parent.parent
# Two voices that differ as two people do: a deep, slow male voice and a high, quick female one.
VOICE_A = ["-v", "en+m3", "-p", "10", "-s", "130"]
VOICE_B = ["-v", "en-us+f2", "-p", "99", "-s", "180"]
LINES = [
    (VOICE_A, "Hello there, I wanted to ask you about the report you sent me yesterday afternoon."),
    (VOICE_B, "Of course. It covers the first quarter, and the numbers look much better than we expected."),
    (VOICE_A, "That is good news. Did the sales team see it before the meeting on Monday morning?"),
    (VOICE_B, "Not yet, I will send it to them today, together with the charts and a short summary."),
]
PAUSE_S = 0.8
BOUNDARY_TOLERANCE_S = 0.5


def _espeak() -> str:
    found = shutil.which("espeak-ng")
    if found:
        return found
    if os.environ.get("EMOTION_REQUIRE_BROWSER") == "1":
        pytest.fail("espeak-ng is not installed (tests/browser_setup.sh installs it from Debian)")
    pytest.skip("espeak-ng is not installed (tests/browser_setup.sh installs it from Debian)")


def _say(folder: Path, n: int, voice: list[str], text: str) -> np.ndarray:
    path = folder / f"line{n}.wav"
    subprocess.run([_espeak(), *voice, "-w", str(path), text], check=True, capture_output=True, timeout=60)
    return load_audio(path).samples


@pytest.fixture(scope="session")
def lines(tmp_path_factory) -> list[np.ndarray]:
    folder = tmp_path_factory.mktemp("espeak")
    return [_say(folder, n, voice, text) for n, (voice, text) in enumerate(LINES)]


def _join(parts: list[np.ndarray], pause_s: float = PAUSE_S) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The parts with pauses between them, and where each part lies (seconds)."""
    pause = np.zeros(round(pause_s * SAMPLE_RATE), np.float32)
    out, where, at = [], [], 0
    for i, p in enumerate(parts):
        if i:
            out.append(pause)
            at += len(pause)
        out.append(p)
        where.append((at / SAMPLE_RATE, (at + len(p)) / SAMPLE_RATE))
        at += len(p)
    return np.concatenate(out), where


@pytest.fixture(scope="session")
def conversation(lines, tmp_path_factory) -> tuple[Path, list[tuple[float, float]]]:
    """A-B-A-B with pauses, as a wav file, and where each line lies."""
    samples, where = _join(lines)
    path = tmp_path_factory.mktemp("conversation") / "conversation.wav"
    sf.write(path, samples, SAMPLE_RATE, subtype="PCM_16")
    return path, where


@pytest.fixture(scope="session")
def diarizer():
    from emotion.speakers.diarize import Diarizer

    return Diarizer()


@pytest.fixture(scope="session")
def analysed(tiny_recognizer, conversation, diarizer):
    from emotion.speakers import recognize_speakers

    return recognize_speakers(tiny_recognizer, conversation[0], "auto", max_speakers=4, diarizer=diarizer)


def test_two_voices_told_apart_with_auto(analysed, conversation):
    _, where = conversation
    assert analysed.method == "clustering" and analysed.describe() == "2 speakers"
    assert [s.speaker for s in analysed.speakers] == ["S1", "S2"]
    assert [t.speaker for t in analysed.turns] == ["S1", "S2", "S1", "S2"]
    for turn, (start, end) in zip(analysed.turns, where):
        assert abs(turn.start - start) < BOUNDARY_TOLERANCE_S and abs(turn.end - end) < BOUNDARY_TOLERANCE_S, \
            (turn, start, end)


def test_given_count_and_quick_turns(lines, diarizer):
    """speakers=2 on the same voices with no pause between turns: the boundary comes from the
    voice prints alone."""
    samples, where = _join(lines, pause_s=0.0)
    got = diarizer.diarize(samples, 2)
    assert got.speakers == ["S1", "S2"]
    changes = [t.start for prev, t in zip(got.turns, got.turns[1:]) if t.speaker != prev.speaker]
    assert len(changes) == 3
    for found, (start, _) in zip(changes, where[1:]):
        assert abs(found - start) < 1.0, (changes, where)


def test_turn_emotion_is_its_span_analysed_alone(analysed, tiny_recognizer, conversation):
    samples = load_audio(conversation[0]).samples
    alone = tiny_recognizer.analyse([Audio(samples[round(t.start * SAMPLE_RATE):round(t.end * SAMPLE_RATE)],
                                           "span", SAMPLE_RATE, 1) for t in analysed.turns])
    for turn, res in zip(analysed.turns, alone):
        assert turn.emotion == res.emotion
        assert turn.scores.keys() == res.scores.keys()
        assert np.allclose(list(turn.scores.values()), list(res.scores.values()), atol=1e-5)


def test_speaker_summaries(analysed):
    keys = list(analysed.result.scores)
    total = sum(t.duration_s for t in analysed.turns)
    assert sum(s.speaking_s for s in analysed.speakers) == pytest.approx(total)
    assert sum(s.share for s in analysed.speakers) == pytest.approx(1.0)
    for s in analysed.speakers:
        mine = [t for t in analysed.turns if t.speaker == s.speaker]
        weights = np.array([t.duration_s for t in mine])
        expected = sum(np.array([t.scores[k] for k in keys]) * w for t, w in zip(mine, weights)) / weights.sum()
        assert np.allclose([s.scores[k] for k in keys], expected)
        assert s.emotion == keys[int(np.argmax(expected))] and s.turns == 2
        assert set(s.change) == {"first_third", "last_third"}
    first, second = analysed.speakers
    assert first.change["first_third"] is not None and second.change["last_third"] is not None


def test_result_json_has_the_speakers_section(analysed):
    from emotion.results import SCHEMA_VERSION

    out = json.loads(analysed.result.to_json())
    assert out["schema_version"] == SCHEMA_VERSION == 3
    section = out["speakers"]
    assert section["count"] == 2 and section["requested"] == "auto" and section["reason"] is None
    assert [t["speaker"] for t in section["turns"]] == ["S1", "S2", "S1", "S2"]
    assert {"speaker", "turns", "speaking_s", "share", "emotion", "confidence", "scores", "change"} \
        <= set(section["speakers"][0])


def test_one_voice_is_one_speaker(lines, tiny_recognizer, diarizer):
    from emotion.speakers import recognize_speakers

    samples, _ = _join([lines[0], lines[2]])
    got = recognize_speakers(tiny_recognizer, samples, "auto", sample_rate=SAMPLE_RATE, name="one.wav",
                             diarizer=diarizer)
    assert got.describe() == "1 speaker" and got.speakers[0].share == pytest.approx(1.0)


def test_no_speech_says_so(tiny_recognizer, diarizer):
    from emotion.speakers import recognize_speakers

    rng = np.random.default_rng(0)
    for name, samples in (("silence.wav", np.zeros(3 * SAMPLE_RATE, np.float32)),
                          ("hiss.wav", (0.001 * rng.standard_normal(3 * SAMPLE_RATE)).astype(np.float32))):
        got = recognize_speakers(tiny_recognizer, samples, 2, sample_rate=SAMPLE_RATE, name=name, diarizer=diarizer)
        assert got.speakers == [] and got.turns == []
        assert got.describe().startswith("no speech: ") and name in got.reason
        assert got.result.to_dict()["speakers"]["reason"] == got.reason


def test_music_and_a_clip_shorter_than_a_turn(tiny_recognizer, diarizer, lines):
    """A sustained chord (no speech) and 0.3 s of a voice: a clear answer, never a crash."""
    from emotion.speakers import recognize_speakers

    t = np.arange(4 * SAMPLE_RATE) / SAMPLE_RATE
    chord = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)).astype(np.float32)
    short = lines[0][SAMPLE_RATE:round(1.3 * SAMPLE_RATE)]
    for name, samples in (("chord.wav", chord), ("short.wav", short)):
        got = recognize_speakers(tiny_recognizer, samples, "auto", sample_rate=SAMPLE_RATE, name=name,
                                 diarizer=diarizer)
        assert got.describe() in ("1 speaker",) or got.describe().startswith("no speech: "), got.describe()
        assert len(got.speakers) <= 1


def test_too_short_and_bad_counts_are_clear_errors(tiny_recognizer, diarizer):
    from emotion.speakers.diarize import SpeakerError, parse_speakers
    from emotion.speakers import recognize_speakers

    with pytest.raises(AudioError, match="too short"):
        recognize_speakers(tiny_recognizer, np.zeros(400, np.float32), "auto", sample_rate=SAMPLE_RATE,
                           name="blip.wav", diarizer=diarizer)
    for bad in (0, -1, "two", 1.5):
        with pytest.raises(SpeakerError):
            recognize_speakers(tiny_recognizer, np.zeros(SAMPLE_RATE, np.float32), bad, sample_rate=SAMPLE_RATE,
                               diarizer=diarizer)
    with pytest.raises(SpeakerError, match="--speakers"):
        parse_speakers("many")
    assert parse_speakers("AUTO") == "auto" and parse_speakers("3") == 3


def test_stereo_call_each_side_is_a_speaker(lines, tiny_recognizer, diarizer, tmp_path):
    """channels="each": the left side is one speaker, the right the other; no clustering."""
    from emotion.speakers import recognize_speakers

    left, where = _join([lines[0], np.zeros_like(lines[1]), lines[2], np.zeros_like(lines[3])])
    right, _ = _join([np.zeros_like(lines[0]), lines[1], np.zeros_like(lines[2]), lines[3]])
    path = tmp_path / "call.wav"
    sf.write(path, np.stack([left, right], axis=1), SAMPLE_RATE)
    got = recognize_speakers(tiny_recognizer, path, channels="each", diarizer=diarizer)
    assert got.method == "channels" and [s.speaker for s in got.speakers] == ["left", "right"]
    assert [t.speaker for t in got.turns] == ["left", "right", "left", "right"]
    for turn, (start, end) in zip(got.turns, where):
        assert abs(turn.start - start) < BOUNDARY_TOLERANCE_S and abs(turn.end - end) < BOUNDARY_TOLERANCE_S
    assert got.result.input.channel == "mix" and got.result.audio is not None

    # streamed (over a threshold lowered to 3 s), in the batch job: the same turns, each its side's span
    from emotion import Recognizer
    from emotion.batch.inputs import BatchItem
    from emotion.batch.speaker_rows import speaker_scorer
    from emotion.sources import AudioOpener

    rec = Recognizer(tiny_recognizer.engine, AudioOpener(None, stream_above_s=3.0, window_s=2.0))
    [scored] = list(speaker_scorer(rec, turns=True, channels="each", diarizer=diarizer)([BatchItem(str(path), "call")]))
    rows = scored.rows
    assert [(r["start"], r["end"], r["speaker"]) for r in rows[:-1]] == [(t.start, t.end, t.speaker) for t in got.turns]
    assert rows[-1]["speaker"] is None and rows[-1]["channel"] == "mix" and not rows[-1]["error"]
    sides = {c.channel: c.samples for c in load_channels(path, channels="each")}
    alone = rec.analyse([Audio(sides[t.speaker][round(t.start * SAMPLE_RATE):round(t.end * SAMPLE_RATE)], "span",
                               SAMPLE_RATE, 1) for t in got.turns])
    assert [r["emotion"] for r in rows[:-1]] == [a.emotion for a in alone]
    keys = list(alone[0].scores)
    assert np.allclose([[r[k] for k in keys] for r in rows[:-1]], [[a.scores[k] for k in keys] for a in alone],
                       atol=1e-5)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "emotion", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_cli_recognize_and_batch_with_speakers(conversation, tiny_model, tmp_path):
    """One process for `recognize --speakers` (a line per speaker, the section in result.json);
    `batch --speakers` writes a row per speaker, `--turns` a row per turn."""
    import csv

    path, _ = conversation
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(2 * SAMPLE_RATE, np.float32), SAMPLE_RATE)
    out = tmp_path / "out"
    p = _cli("recognize", path, silence, "--speakers", "auto", "--max-speakers", "3", "--model-dir", tiny_model,
             "--output-dir", out)
    assert p.returncode == 0, p.stderr
    assert "2 speakers" in p.stdout and "no speech: " in p.stdout
    assert p.stdout.count("  S1 ") == 1 and p.stdout.count("  S2 ") == 1, p.stdout
    sections = [json.loads((f / "result.json").read_text())["speakers"] for f in out.iterdir()]
    assert sorted(s["count"] for s in sections) == [0, 2]

    table = tmp_path / "speakers.csv"
    p = _cli("batch", path, silence, "-o", table, "--speakers", "2", "--model-dir", tiny_model, "--no-progress")
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(table.open()))
    mine = [r for r in rows if r["path"] == str(path)]
    assert [r["speaker"] for r in mine] == ["S1", "S2"] and all(r["emotion"] for r in mine)
    quiet = [r for r in rows if r["path"] == str(silence)]
    assert len(quiet) == 1 and quiet[0]["speaker"] == "" and quiet[0]["warnings"].startswith("no speech: ")

    turns = tmp_path / "turns.csv"
    p = _cli("batch", path, "-o", turns, "--speakers", "2", "--turns", "--model-dir", tiny_model, "--no-progress")
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(turns.open()))
    assert [r["speaker"] for r in rows] == ["S1", "S2", "S1", "S2", ""]  # the turns, then the file's row
    assert [r["segment"] for r in rows] == ["0", "1", "2", "3", ""]
    assert all(float(r["end"]) > float(r["start"]) for r in rows[:-1])


# -- recordings of any length: streamed window by window -----------------------------------------


def test_a_streamed_recording_gives_the_same_turns_and_each_turn_its_span(analysed, conversation, tiny_recognizer,
                                                                           diarizer, monkeypatch):
    """A file over the streaming threshold (lowered here to 3 s, in windows of 2 s, so that turns
    straddle windows) is read three times as a stream: its turns are the ones the file held whole
    gives, each turn's emotion is its span analysed alone, and the audio held at any time is at
    most a stretch of speech and a window (the check can fail: the recording is longer)."""
    from emotion import Recognizer
    from emotion.sources import AudioOpener
    from emotion.speakers import recognize_speakers
    from emotion.speakers.diarize import HeldAudio

    path, _ = conversation
    rec = Recognizer(tiny_recognizer.engine, AudioOpener(None, stream_above_s=3.0, window_s=2.0))
    assert not rec.opener.read_whole(path)
    held, push = [0], HeldAudio.push

    def counting(self, samples):
        push(self, samples)
        held[0] = max(held[0], self.end - self.start)

    monkeypatch.setattr(HeldAudio, "push", counting)
    got = recognize_speakers(rec, path, "auto", max_speakers=4, diarizer=diarizer)
    assert [(t.start, t.end, t.speaker) for t in got.turns] == [(t.start, t.end, t.speaker) for t in analysed.turns]
    samples = load_audio(path).samples
    # held at most: a stretch of speech (the VAD caps them at 30 s) and the window that ends it
    bound = max(e - s for s, e in diarizer.speech(samples)) + 2.0
    assert held[0] / SAMPLE_RATE <= bound and len(samples) / SAMPLE_RATE > bound + 2 * 2.0
    assert max(t.duration_s for t in got.turns) > 2 * 2.0  # turns of several windows were cut out
    alone = rec.analyse([Audio(samples[round(t.start * SAMPLE_RATE):round(t.end * SAMPLE_RATE)], "span",
                               SAMPLE_RATE, 1) for t in got.turns])
    for turn, res in zip(got.turns, alone):
        assert turn.emotion == res.emotion
        assert np.allclose(list(turn.scores.values()), list(res.scores.values()), atol=1e-5)
    whole = rec.recognize(path)  # streamed as well
    assert got.result.audio is None and got.result.chunks == whole.chunks > 1
    assert got.result.input.duration_s == whole.input.duration_s and got.result.input.sha256 == whole.input.sha256
    assert np.allclose(list(got.result.scores.values()), list(whole.scores.values()), atol=1e-5)
    assert got.result.to_dict()["speakers"]["count"] == 2
