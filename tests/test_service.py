"""The web app's request policy, called directly: no Gradio server, no browser."""

import json

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
                             [True, False, False, False])
    first, broken, empty, framed = outcomes
    ref = tiny_recognizer.recognize(good)
    assert first.ok and first.result.scores == ref.scores and is_complete(first.folder)
    assert sorted(p.name for p in first.folder.iterdir()) == ["embedding.npy", "manifest.json",
                                                             "processed_audio.wav", "result.json"]
    assert json.loads((first.folder / "result.json").read_text())["emotion"] == ref.emotion
    assert not broken.ok and broken.error.startswith("notes.wav: not a readable audio file")
    assert broken.to_api() == {"error": broken.error}
    assert empty.error == NO_AUDIO
    assert framed.ok and framed.result.granularity == "frame" and framed.to_api()["saved"] == framed.folder.name
    assert service.history() == sorted([first.folder.name, framed.folder.name], reverse=True)


def test_batch_table_and_files(service, audio_dir, tmp_path):
    bad = tmp_path / "broken.mp3"
    bad.write_bytes(b"\x00" * 100)
    out = service.batch([str(audio_dir / "clip.mp3"), str(bad)], "utterance", True)
    assert [r["path"] for r in out.rows] == ["clip.mp3", "broken.mp3"]
    assert out.failed == [("broken.mp3", out.rows[1]["error"])] and out.rows[1]["emotion"] is None
    assert [p.name for p in out.files] == ["batch_results.csv", "embeddings.zip"] and is_complete(out.folder)
    assert out.summary.startswith("1 analysed, 1 failed")
    with pytest.raises(RequestError, match="no files"):
        service.batch([], "utterance", False)


def test_reopen_refuses_names_outside_the_output_folder(service, audio_dir):
    [outcome] = service.serve([str(audio_dir / "mono_16000.wav")], ["utterance"], [False])
    data, folder = service.reopen(outcome.folder.name)
    assert folder == outcome.folder and data["emotion"] == outcome.result.emotion
    for name in ("../outputs", "..", "/etc", "", None, "20260101_000000_deadbeef"):
        with pytest.raises(RequestError):
            service.reopen(name)


def test_closed_service_refuses_new_requests(service, audio_dir):
    assert service.close(1.0) is True
    [outcome] = service.serve([str(audio_dir / "mono_16000.wav")], ["utterance"], [False])
    assert outcome.error == SHUTTING_DOWN
    with pytest.raises(RequestError, match="shutting down"):
        service.batch([str(audio_dir / "mono_16000.wav")], "utterance", False)
