"""Who felt what: speaker turns on a conversation of two synthetic voices (espeak-ng, made by
tests/voices.py; the `conversation` fixture is conftest.py's), an emotion per turn, a summary per
speaker, the inputs that have no conversation in them, and the web service's speakers requests.

espeak-ng comes from Debian (tests/browser_setup.sh installs it); without it these tests are
skipped, unless EMOTION_REQUIRE_BROWSER=1, where they fail.  The emotion model is the tiny
random-weight fixture: the tests check the plumbing (a turn's emotion is its span's), not what
a trained model hears.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emotion.audio import SAMPLE_RATE, Audio, load_audio, load_channels
from emotion.errors import AudioError
from emotion.labels import CHINESE
from tests.voices import join

ROOT = Path(__file__).resolve().parent.parent
BOUNDARY_TOLERANCE_S = 0.5


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
    samples, where = join(lines, pause_s=0.0)
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

    samples, _ = join([lines[0], lines[2]])
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

    left, where = join([lines[0], np.zeros_like(lines[1]), lines[2], np.zeros_like(lines[3])])
    right, _ = join([np.zeros_like(lines[0]), lines[1], np.zeros_like(lines[2]), lines[3]])
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


def _tables(markup: str) -> list[tuple[list[str], list[list[str]]]]:
    """Each html table's header and body cells, in order."""
    from tests.test_app import table_cells

    return [table_cells(part) for part in markup.split("</table>")[:-1]]


def _shown(outcome, lang: str) -> dict:
    """The result view's values for an outcome, by field name (updates unwrapped)."""
    from dataclasses import fields

    from emotion.app.handlers import outcome_values
    from emotion.app.view import ResultView

    names = [f.name for f in fields(ResultView)]
    values = outcome_values(outcome, lang)
    assert len(values) == len(names)
    return {n: v.get("value", v) if isinstance(v, dict) and v.get("__type__") == "update" else v
            for n, v in zip(names, values)}


def test_web_service_speakers(tiny_recognizer, diarizer, conversation, lines, analysed, tmp_path):
    """The page's service with speakers: the conversation as two speakers whose saved result.json
    carries the section `recognize --speakers` writes; what the page shows of it in both languages
    (a lane per speaker, a row per speaker, a row per turn); one voice, no speech, a clip shorter
    than a turn, a stereo call with `each`, a bad choice and a too short file, each answered
    clearly; "off" as before."""
    from emotion.app.service import WebService
    from emotion.defaults import DEFAULT_MAX_SPEAKERS

    conv, where = conversation
    one = tmp_path / "one voice.wav"
    sf.write(one, join([lines[0], lines[2]])[0], SAMPLE_RATE)
    silence, blip, short = tmp_path / "silence.wav", tmp_path / "blip.wav", tmp_path / "short.wav"
    sf.write(silence, np.zeros(3 * SAMPLE_RATE, np.float32), SAMPLE_RATE)
    sf.write(blip, np.zeros(400, np.float32), SAMPLE_RATE)
    sf.write(short, lines[0][SAMPLE_RATE:round(1.3 * SAMPLE_RATE)], SAMPLE_RATE)
    left, _ = join([lines[0], np.zeros_like(lines[1]), lines[2], np.zeros_like(lines[3])])
    right, _ = join([np.zeros_like(lines[0]), lines[1], np.zeros_like(lines[2]), lines[3]])
    call = tmp_path / "call.wav"
    sf.write(call, np.stack([left, right], axis=1), SAMPLE_RATE)

    service = WebService(tiny_recognizer, tmp_path / "outputs", diarizer=diarizer)
    asked = [(conv, "auto", "mix"), (one, "auto", "mix"), (silence, "2", "mix"), (short, "auto", "mix"),
             (call, "auto", "each"), (conv, "nine", "mix"), (blip, "auto", "mix"), (conv, "off", "mix")]
    outcomes = service.serve([p for p, _, _ in asked], ["utterance"] * len(asked), [False] * len(asked),
                             channels=[c for _, _, c in asked], speakers=[s for _, s, _ in asked])
    talk, alone, quiet, brief, sides, bad, tiny, plain = outcomes

    # the conversation: saved with the section the command line writes
    saved = json.loads((talk.folder / "result.json").read_text())
    # the library's own analysis of the file (at most 4 speakers there, DEFAULT_MAX_SPEAKERS here)
    expected = {**analysed.to_dict(), "max_speakers": DEFAULT_MAX_SPEAKERS}
    assert saved["speakers"] == json.loads(json.dumps(expected))
    assert saved["speakers"]["count"] == 2 and len(talk.channels) == 1
    from emotion.app.handlers import result_values

    reopened = result_values(saved, talk.folder, None, "en")  # History shows the saved result.json
    assert _shown(talk, "en")["speakers"] == reopened[5]["value"]
    for lang, two, speaker in (("en", "2 speakers", "Speaker"), ("zh", "2 位说话人", "说话人")):
        shown = _shown(talk, lang)
        assert two in shown["headline"] and two in shown["log"]
        block = shown["speakers"]
        assert block.count('class="lane" data-speaker=') == 2 and block.count('class="turn"') == 4
        (head, summary), (_, turns) = _tables(block)
        assert head[0] == speaker and [r[0] for r in summary] == ["S1", "S2"]
        for row, s in zip(summary, saved["speakers"]["speakers"]):
            assert row[1].split()[0] == f"{s['speaking_s']:.1f}" and row[1].endswith(f"{100 * s['share']:.0f}%")
            assert row[2].endswith(f"{100 * s['confidence']:.1f}%") and "→" in row[3]
        assert [r[2] for r in turns] == ["S1", "S2", "S1", "S2"]
        for row, (start, end) in zip(turns, where):
            assert abs(float(row[0]) - start) < BOUNDARY_TOLERANCE_S
            assert abs(float(row[1]) - end) < BOUNDARY_TOLERANCE_S
    turns_zh = _tables(_shown(talk, "zh")["speakers"])[1][1]
    assert all(r[3].split()[1] in CHINESE.values() for r in turns_zh), turns_zh

    assert json.loads((alone.folder / "result.json").read_text())["speakers"]["count"] == 1
    shown = _shown(alone, "en")
    assert "1 speaker" in shown["headline"] and "One voice was heard" in shown["speakers"]
    assert shown["speakers"].count('class="lane" data-speaker=') == 1

    assert "silent" in _shown(quiet, "en")["headline"]
    for lang, words in (("en", "no speech: the voice activity detector found none in silence.wav (3.0 s)"),
                        ("zh", "没有语音：语音活动检测在 silence.wav（3.0 秒）中没有发现语音")):
        shown = _shown(quiet, lang)
        assert words in shown["speakers"] and "<table" not in shown["speakers"], shown["speakers"]
    assert json.loads((quiet.folder / "result.json").read_text())["speakers"]["reason"].startswith("no speech: ")

    section = brief.result.speakers  # under a turn's length: one speaker or no speech, with its reason
    assert brief.ok and (section["count"] == 1 or section["reason"].startswith("no speech")), section

    shown = _shown(sides, "zh")
    assert sides.result.speakers["method"] == "channels" and len(sides.channels) == 1
    assert [s["speaker"] for s in sides.result.speakers["speakers"]] == ["left", "right"]
    assert "左" in shown["speakers"] and "右" in shown["speakers"] and "每个声道一位说话人" in shown["log"]

    assert not bad.ok and "conversation.wav" in bad.error and "'nine'" in bad.error
    assert not tiny.ok and "blip.wav" in tiny.error and "too short" in tiny.error
    assert plain.ok and plain.result.speakers is None and _shown(plain, "en")["speakers"] is None


def test_web_service_speakers_fault_costs_one_request(tiny_recognizer, tmp_path):
    """A diarizer that fails (a fault, or the speakers extra missing) gives that request its
    file's name and a reason; the next request without speakers is served as before."""
    from emotion.app.service import NO_SPEAKERS_PACKAGE, NOT_ANALYSED, WebService
    from tests.media import write_wav

    class Failing:  # whatever part of the diarizer is reached first fails
        def __init__(self, exc):
            self.exc = exc

        def __getattr__(self, name):
            raise self.exc

    clip = write_wav(tmp_path / "talk.wav", 2.0, 16000, seed=5)
    for exc, reason in ((RuntimeError("encoder broke"), NOT_ANALYSED),
                        (ImportError("No module named 'resemblyzer'"), NO_SPEAKERS_PACKAGE)):
        service = WebService(tiny_recognizer, tmp_path / "outputs", diarizer=Failing(exc))
        [failed] = service.serve([clip], ["utterance"], [False], speakers=["auto"])
        assert failed.error == f"talk.wav: {reason}"
        [plain] = service.serve([clip], ["utterance"], [False])
        assert plain.ok and plain.result.speakers is None


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
