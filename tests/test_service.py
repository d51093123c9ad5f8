"""The web app's request policy, called directly: no Gradio server, no browser."""

import json
from pathlib import Path

import pytest

from emotion.app.service import NO_AUDIO, SHUTTING_DOWN, RequestError, WebService
from emotion.files import is_complete


@pytest.fixture
def service(tiny_recognizer, tmp_path):
    return WebService(tiny_recognizer, tmp_path / "outputs")


def test_serve_saves_each_good_clip_and_names_each_bad_one(service, tiny_recognizer, audio_dir, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio " * 50)
    good = audio_dir / "mono_22050.wav"
    outcomes = service.serve([str(good), str(bad), None, str(good)], ["utterance", "utterance", "frame", "frame"],
                             [True, False, False, False], ["me"] * 4)
    first, broken, empty, framed = outcomes
    ref = tiny_recognizer.recognize(good)
    assert first.ok and first.result.scores == ref.scores and is_complete(first.folder)
    assert sorted(p.name for p in first.folder.iterdir()) == ["embedding.npy", "manifest.json",
                                                             "processed_audio.wav", "result.json"]
    assert json.loads((first.folder / "result.json").read_text())["emotion"] == ref.emotion
    assert not broken.ok and broken.error.startswith("notes.wav: not a readable audio file")
    assert broken.code == "not_audio"
    assert broken.to_api() == {"error": broken.error}
    assert empty.error == NO_AUDIO
    assert framed.ok and framed.result.granularity == "frame" and framed.to_api()["saved"] == framed.folder.name
    assert [name for name, _ in service.history("me")] == sorted([first.folder.name, framed.folder.name], reverse=True)
    assert service.history("someone else") == [] and first.folder.parent == service.results_root("me")


def test_batch_table_and_files(service, audio_dir, tmp_path):
    bad = tmp_path / "broken.mp3"
    bad.write_bytes(b"\x00" * 100)
    progress = []
    out = service.batch([str(audio_dir / "clip.mp3"), str(bad)], True, "me",
                        on_progress=lambda *args: progress.append(args))
    assert [r["id"] for r in out.rows] == ["clip.mp3", "broken.mp3"]
    assert out.failed == [("broken.mp3", out.rows[1]["error"])] and out.rows[1]["emotion"] is None
    assert [p.name for p in out.files] == ["batch_results.csv", "embeddings.zip"] and is_complete(out.folder)
    assert [(done, total, name) for done, total, name, _ in progress] == [(1, 2, "clip.mp3"), (2, 2, "broken.mp3")]
    assert progress[-1][3] == 0.0 and out.folder.parent == service.results_root("me")
    with pytest.raises(RequestError, match="no files"):
        service.batch([], False)


def test_reopen_refuses_names_outside_the_output_folder(service, audio_dir):
    [outcome] = service.serve([str(audio_dir / "mono_16000.wav")], ["utterance"], [False], ["me"])
    data, folder = service.reopen(outcome.folder.name, "me")
    assert folder == outcome.folder and data["emotion"] == outcome.result.emotion
    for name in ("../outputs", "..", "/etc", "", None, "20260101_000000_deadbeef", f"../{folder.parent.name}"):
        with pytest.raises(RequestError):
            service.reopen(name, "me")
    with pytest.raises(RequestError):  # another owner's result
        service.reopen(outcome.folder.name, "someone else")


def test_closed_service_refuses_new_requests(service, audio_dir):
    assert service.close(1.0) is True
    [outcome] = service.serve([str(audio_dir / "mono_16000.wav")], ["utterance"], [False])
    assert outcome.error == SHUTTING_DOWN
    with pytest.raises(RequestError, match="shutting down"):
        service.batch([str(audio_dir / "mono_16000.wav")], False)


def test_announce_estimates_from_measured_speed(service, audio_dir):
    ticket, ahead, wait, duration = service.announce(str(audio_dir / "mono_16000.wav"))
    assert ahead == 0 and wait is None and abs(duration - 1.7) < 0.01  # nothing measured yet: no estimate
    second = service.announce(str(audio_dir / "mono_22050.wav"))
    assert second[1] == 1  # the first is still ahead of it
    service.serve([str(audio_dir / "mono_16000.wav")], ["utterance"], [False], None, [ticket, second[0]])
    _, ahead, wait, duration = service.announce(str(audio_dir / "mono_22050.wav"))
    assert ahead == 0 and wait is not None and wait > 0
    assert abs(wait - duration / service.speed.audio_per_s) < 1e-9


def test_every_text_has_both_languages_with_the_same_placeholders():
    import string

    from emotion.app.text import REASONS_ZH, TEXT
    from emotion.errors import REASONS

    def fields(s):
        return sorted(f for _, f, _, _ in string.Formatter().parse(s) if f)

    for key, (en, zh) in TEXT.items():
        assert en and zh, key
        if key.startswith("warn_"):  # a warning's English is a pattern: Chinese may leave a field out
            assert set(fields(zh)) <= set(fields(en)), key
        else:
            assert fields(en) == fields(zh), key
    assert set(REASONS_ZH) == set(REASONS)


def test_batch_embeddings_zip_keeps_files_of_one_stem_apart(service, tiny_recognizer, audio_dir, tmp_path):
    """clip.m4a and clip.opus: two entries (the batch command's naming rule, stem and hash), and
    the CSV's embedding column says which entry is whose."""
    import csv
    import io
    import zipfile

    import numpy as np

    from emotion.batch.sinks import embedding_name

    bad = tmp_path / "clip.wav"
    bad.write_bytes(b"")
    paths = [str(audio_dir / "clip.m4a"), str(audio_dir / "clip.opus"), str(bad)]
    out = service.batch(paths, True, "me")
    with open(out.folder / "batch_results.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == ["clip.m4a", "clip.opus", "clip.wav"]
    names = [r["embedding"] for r in rows]
    assert names[:2] == [embedding_name(p, Path(p).name) for p in paths[:2]] and names[2] == ""
    assert names[0] != names[1] and all(n.startswith("clip_") for n in names[:2])
    with zipfile.ZipFile(out.folder / "embeddings.zip") as zf:
        assert sorted(zf.namelist()) == sorted(names[:2])
        for path, name in zip(paths, names[:2]):
            vector = np.load(io.BytesIO(zf.read(name)))
            assert np.allclose(vector, tiny_recognizer.recognize(path).embedding, atol=1e-5)
    plain = service.batch(paths[:1], False, "me")  # no embeddings asked: no column, no zip
    with open(plain.folder / "batch_results.csv", encoding="utf-8") as fh:
        assert "embedding" not in fh.readline().strip().split(",")
    assert [p.name for p in plain.files] == ["batch_results.csv"]


def test_waiting_line_counts_only_requests_really_queued(service, audio_dir, monkeypatch):
    """A double-click announces twice but the page queues one request; a tab closed after its
    announce never queues; a request passed over by a later one never reached the queue. None
    of them may stay "ahead" of the requests that follow (they stayed for 10 minutes)."""
    import time

    clip = str(audio_dir / "mono_16000.wav")
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])  # the line's clock
    service.announce(clip)  # never reaches the queue, and nothing says goodbye
    now[0] += 5.0
    late = service.announce(clip)
    assert late[1] == 1  # not known yet to be stale
    now[0] += 1.0
    service.serve([clip], ["utterance"], [False], None, [late[0]])  # first come, first served: passed over
    assert service.announce(clip)[1] == 0
    monkeypatch.undo()
    service.line = type(service.line)()

    first = service.announce(clip, "browser-a")
    again = service.announce(clip, "browser-a")  # the double-click's second announce
    assert first[0] == again[0] == "browser-a" and again[1] == 0  # one place per session
    assert service.announce(clip, "browser-b")[1] == 1  # a real request ahead is counted
    service.serve([clip], ["utterance"], [False], None, [first[0]])  # the one request the page sent
    service.serve([clip], ["utterance"], [False], None, ["browser-b"])
    assert service.announce(clip, "browser-c")[1] == 0 and len(service.line) == 1
    service.session_ended("browser-c")  # the tab closed before its request queued
    assert len(service.line) == 0


def test_every_warning_kind_and_failure_reads_in_chinese(service, tiny_recognizer, tmp_path):
    """A result's warnings (the library's, with their figures) and every failure the service
    names (a busy device, a clip that could not be analysed, a closed server) reach a Chinese page
    in Chinese, with the file's name; an English page keeps the library's words."""
    import re
    import string

    import numpy as np
    import soundfile as sf

    from emotion.app import render
    from emotion.app.handlers import Handlers, error_text
    from emotion.app.text import TEXT, t, warning_text
    from emotion.engine import BusyError
    from emotion.errors import EmotionError
    from tests.media import speechlike

    for key, (en, _) in TEXT.items():  # each kind's English, with figures, is recognised as that kind
        if key.startswith("warn_"):
            values = {f: "1.50" for _, f, _, _ in string.Formatter().parse(en) if f}
            assert warning_text(en.format(**values), "zh") == t(key, "zh", **values), key
    assert warning_text("something new", "zh") == "something new"
    cut = tmp_path / "cut.wav"  # the header declares 4 s, the file holds 2
    sf.write(cut, speechlike(4.0, 16000, seed=1), 16000, subtype="PCM_16")
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, np.zeros(32000, dtype=np.float32), 16000)
    outcomes = service.serve([str(cut), str(quiet)], ["utterance"] * 2, [False] * 2, ["me"] * 2)
    for outcome, english, chinese in ((outcomes[0], "truncated?", "可能被截断"), (outcomes[1], "silent", "静音")):
        data = outcome.result.to_dict()
        assert any(english in w for w in data["warnings"]), data["warnings"]
        zh, en = (render.process_log(data, outcome.folder, None, lang) for lang in ("zh", "en"))
        assert chinese in zh and english not in zh and english in en, zh

    class Failing:  # the device busy for one clip, another failure for the next
        labels = tiny_recognizer.labels

        def __getattr__(self, name):
            return getattr(tiny_recognizer, name)

        def recognize_many(self, paths, **kwargs):
            return [BusyError() if i % 2 == 0 else EmotionError("a CUDA kernel failed") for i in range(len(paths))]

    failing = WebService(Failing(), tmp_path / "failing")
    clip = str(cut)
    busy, broken = failing.serve([clip, clip], ["utterance"] * 2, [False] * 2)
    assert (busy.code, broken.code) == ("busy", "not_analysed")
    assert error_text(busy, "zh") == "cut.wav：忙碌：GPU 内存不足，请稍后再试"
    assert error_text(broken, "zh") == "cut.wav：无法分析这段音频" and "CUDA" not in broken.error
    assert error_text(busy, "en") == busy.error and "busy" in busy.error
    handlers = Handlers(failing)
    quiet_progress = lambda *args, **kwargs: None  # noqa: E731
    summary, _, _, table = handlers.batch([clip, str(quiet)], False, "me", "zh", progress=quiet_progress)
    for shown in (summary, table):
        assert "忙碌：GPU 内存不足" in shown and "无法分析这段音频" in shown, shown
        assert not re.search(r"busy|could not", shown), shown
    failing.close(1.0)
    summary = handlers.batch([clip], False, "me", "zh", progress=quiet_progress)[0]
    assert "服务器正在关闭" in summary and "shutting" not in summary, summary
    [closed] = failing.serve([clip], ["utterance"], [False])
    assert error_text(closed, "zh") == t("shutting_down", "zh")
