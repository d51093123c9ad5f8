"""The Live tab's policy (emotion/app/live_sessions.py), called directly: bounded sessions, latest wins,
freed on stop, close or silence from the client, the model shared fairly with uploads, and a
stopped recording saved exactly as an upload."""

from __future__ import annotations

from dataclasses import fields
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from emotion import Recognizer
from emotion.app.live_sessions import LiveError, LiveHub, wav_duration_s
from emotion.app.live_page import read_chunk
from emotion.app.service import WebService
from emotion.app.view import ResultView
from emotion.audio import SAMPLE_RATE
from emotion.errors import AudioError
from emotion.model import load_model
from emotion.locks import FairLock
from emotion.torch_engine import TorchEngine
from emotion.streaming import StreamingRecognizer
from tests.media import speechlike

RATE = 44100
CHUNK = RATE // 10  # the browser sends 0.1 s chunks


def pcm(seconds: float, seed: int = 0) -> np.ndarray:
    return (speechlike(seconds, RATE, seed=seed)[:, 0] * 32767).astype(np.int16)


def push_all(hub: LiveHub, key: str, samples: np.ndarray, follow: bool = False) -> None:
    """Send a recording chunk by chunk; follow: as the page does, wait for each chunk's update."""
    for pos in range(0, len(samples), CHUNK):
        view = hub.push(key, samples[pos:pos + CHUNK], RATE)
        if follow:
            hub.wait(key, view.seq, 2.0)


def wait_idle(hub: LiveHub, key: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    view = hub.view(key)
    while time.monotonic() < deadline:
        view = hub.wait(key, view.seq, 0.2)
        s = hub._sessions[key]
        if s.pending is None and not s.running:
            return hub.view(key)
    raise AssertionError("the live worker did not finish")


@pytest.fixture
def gated_recognizer(tiny_model):
    """A recognizer of its own whose forward pass can be held (gate) or slowed (delay)."""
    rec = Recognizer(TorchEngine(load_model(tiny_model, "cpu")))
    net = rec.engine.model.network
    real = net.forward
    gate, control = threading.Event(), {"delay": 0.0, "calls": []}
    gate.set()

    def forward(*args, **kwargs):
        control["calls"].append(threading.current_thread().name)
        gate.wait(30)
        time.sleep(control["delay"])
        return real(*args, **kwargs)

    net.forward = forward
    return rec, gate, control


def test_read_chunk_takes_all_the_data_whatever_the_header_says(tmp_path):
    data = pcm(0.3)
    path = tmp_path / "chunk.wav"
    sf.write(path, data, RATE, subtype="PCM_16")
    raw = bytearray(path.read_bytes())
    raw[40:44] = (100).to_bytes(4, "little")  # the browser repeats the first chunk's data size
    path.write_bytes(bytes(raw))
    rate, samples = read_chunk(path)
    assert rate == RATE and samples.dtype == np.int16 and samples.shape == (len(data), 1)
    assert (samples[:, 0] == data).all()
    sf.write(path, np.zeros((800, 2), np.float32), 16000, subtype="FLOAT")
    assert read_chunk(path)[1].shape == (800, 2)
    path.write_bytes(b"<html>")
    with pytest.raises(AudioError, match="not WAV"):
        read_chunk(path)


def test_a_session_is_bounded_and_its_recording_is_saved_as_an_upload(tiny_recognizer, tmp_path):
    hub = LiveHub(tiny_recognizer, window_s=1.0, hop_s=0.25, vad=False, timeline_s=2.0)
    try:
        audio = pcm(12.0, seed=5)
        push_all(hub, "a", audio, follow=True)
        view = wait_idle(hub, "a")
        held = hub.memory_bytes()
        assert held <= 2 * (1.0 + 0.25) * SAMPLE_RATE * 4  # the last window, not 12 s of audio
        # every hop but the last (its 16 kHz samples wait for input after it: the filter's lookahead)
        assert view.analysed + view.dropped == 47 and view.silent == 0 and view.seq == view.analysed
        assert len(view.timeline) == 8 and view.duration_s == pytest.approx(12.0)  # the last 2 s
        assert [u.update.end_s for u in view.timeline] == [10.0 + 0.25 * i for i in range(8)]
        for item in view.timeline:  # the chain's timestamps are in order
            assert item.spoken <= item.arrived + 0.2 and item.arrived <= item.started <= item.done <= item.delivered
        recording = hub.stop("a")
        assert hub.sessions == 0 and hub.memory_bytes() == 0
        back, rate = sf.read(recording.path, dtype="int16")
        assert rate == RATE and (back == audio).all()  # the whole recording, as sent
        service = WebService(tiny_recognizer, tmp_path / "outputs")
        [outcome] = service.serve([str(recording.path)], ["utterance"], [True])
        assert outcome.ok and sorted(p.name for p in outcome.folder.iterdir()) == [
            "embedding.npy", "manifest.json", "processed_audio.wav", "result.json"]
        library = StreamingRecognizer(tiny_recognizer, RATE, vad=False)
        for pos in range(0, len(audio), CHUNK):
            library.feed(audio[pos:pos + CHUNK])
        finished = library.finish()
        assert max(abs(finished.scores[k] - outcome.result.scores[k]) for k in finished.scores) <= 1e-5
    finally:
        hub.shutdown()


def test_latest_wins_while_the_model_is_busy(gated_recognizer):
    rec, gate, control = gated_recognizer
    hub = LiveHub(rec, window_s=1.0, hop_s=0.25, vad=False)
    try:
        gate.clear()  # the model is busy
        push_all(hub, "a", pcm(0.3))  # one window: taken by the worker, which now waits
        deadline = time.monotonic() + 5
        while not hub._sessions["a"].running and time.monotonic() < deadline:
            time.sleep(0.01)
        push_all(hub, "a", pcm(2.0, seed=1))  # eight more windows while the model is held
        assert hub._sessions["a"].dropped == 7  # each newer window replaced the one waiting
        gate.set()
        view = wait_idle(hub, "a")
        assert view.analysed == 2 and len(control["calls"]) == 2  # the first, then only the newest
        assert view.current.update.end_s == pytest.approx(2.25)
    finally:
        gate.set()
        hub.shutdown()


def test_silence_costs_no_model_time(gated_recognizer):
    rec, _gate, control = gated_recognizer
    hub = LiveHub(rec, window_s=1.0, hop_s=0.5)
    try:
        push_all(hub, "a", np.zeros(2 * RATE, np.int16))
        view = hub.view("a")
        assert view.silent == 3 and view.analysed == 0 and not control["calls"] and not view.speech_now
    finally:
        hub.shutdown()


def test_closed_quiet_and_surplus_sessions(tiny_recognizer):
    hub = LiveHub(tiny_recognizer, vad=False, max_sessions=2, idle_s=0.5)
    try:
        push_all(hub, "a", pcm(0.5))
        push_all(hub, "b", pcm(0.5))
        with pytest.raises(LiveError, match="2 live recordings"):
            hub.push("c", pcm(0.1), RATE)
        wav = hub._sessions["a"].spool_path
        assert hub.close("a", gone=True) and hub.sessions == 1 and not wav.exists()  # freed at once
        with pytest.raises(LiveError, match="has ended"):  # a chunk queued before the tab closed
            hub.push("a", pcm(0.1), RATE)
        assert hub.sessions == 1 and len(list(hub.spool_dir.iterdir())) == 1  # no new session, no new file
        deadline = time.monotonic() + 5
        while hub.sessions and time.monotonic() < deadline:  # "b" went quiet
            time.sleep(0.1)
        assert hub.sessions == 0 and hub.memory_bytes() == 0
        assert hub.stop("b") is None and not hub.close("b")
    finally:
        hub.shutdown()
    assert not hub.spool_dir.exists()


def gappy_stream(hub: LiveHub, key: str, samples: np.ndarray, start: float) -> None:
    """Send a recording as Gradio's stream can deliver it to a busy server: chunks arriving in
    real time (0.1 s apart), every other one lost on the way."""
    for i, pos in enumerate(range(0, len(samples), CHUNK)):
        if i % 2 == 0:
            hub.push(key, samples[pos:pos + CHUNK], RATE, arrived=start + (i + 1) * 0.1)


def test_the_page_recording_is_saved_whatever_the_stream_lost(tiny_recognizer, tmp_path):
    """The page's own recording is what is saved (nothing missing), even when the stream lost half
    its chunks; without it the stream is saved and the half it lost counted; one that is not a
    WAV or is shorter than the stream is not trusted over the stream."""
    audio = pcm(6.0, seed=3)
    page_wav = tmp_path / "page.wav"
    sf.write(page_wav, audio, RATE, subtype="PCM_16")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"<html>not audio</html>" * 10)
    short = tmp_path / "short.wav"
    sf.write(short, audio[: RATE], RATE, subtype="PCM_16")
    hub = LiveHub(tiny_recognizer, vad=False)
    try:
        for key in "abcd":
            gappy_stream(hub, key, audio, time.time())
        spool = hub._sessions["a"].spool_path
        kept = hub.stop("a", page_wav)
        assert kept.source == "browser" and kept.path == page_wav and not spool.exists()
        assert kept.duration_s == pytest.approx(6.0) and kept.view.lost_s == 0.0
        assert kept.streamed_s == pytest.approx(3.0)  # what reached the live updates
        for key, given in (("b", None), ("c", junk), ("d", short)):
            kept = hub.stop(key, given)
            assert kept.source == "stream" and kept.duration_s == pytest.approx(3.0), key
            assert kept.view.lost_s == pytest.approx(3.0, abs=0.15), key  # the half that never arrived, said
            back, rate = sf.read(kept.path, dtype="int16")
            assert len(back) == 3 * RATE
        # stopped before any chunk reached the server: the page's recording alone
        alone = hub.stop("e", page_wav)
        assert alone.source == "browser" and alone.duration_s == pytest.approx(6.0) and alone.view.lost_s == 0
        assert hub.stop("e", None) is None and hub.stop("e", junk) is None
    finally:
        hub.shutdown()


def test_a_recordings_length_comes_from_its_header_and_size(tmp_path):
    path = tmp_path / "cut.wav"
    sf.write(path, np.zeros(48000, np.int16), 48000, subtype="PCM_16")
    assert wav_duration_s(path) == pytest.approx(1.0)
    raw = path.read_bytes()
    path.write_bytes(raw[: 44 + 48000])  # cut short: the header still says 1 s
    assert wav_duration_s(path) == pytest.approx(0.5)
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEdata" + bytes(8))
    with pytest.raises(AudioError, match="page.wav: a recording without a format header"):
        wav_duration_s(path, "page.wav")


def test_a_full_recording_is_kept_until_stopped(tiny_recognizer):
    hub = LiveHub(tiny_recognizer, vad=False, max_s=1.0)
    try:
        push_all(hub, "a", pcm(1.5))
        view = hub.view("a")
        assert view.full and view.duration_s == pytest.approx(1.0)
        recording = hub.stop("a")
        assert sf.info(recording.path).duration == pytest.approx(1.0)
    finally:
        hub.shutdown()


def test_the_model_lock_is_granted_in_arrival_order():
    lock, order = FairLock(), []

    def live():
        for _ in range(6):  # asks again the moment it is done
            with lock:
                order.append("live")
                time.sleep(0.03)

    def upload():
        time.sleep(0.045)  # arrives while the second live pass runs
        with lock:
            order.append("upload")

    threads = [threading.Thread(target=live), threading.Thread(target=upload)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert order.index("upload") <= 3  # not after every live pass


@pytest.mark.serial  # an upload's time with live sessions against its time alone
def test_live_sessions_do_not_starve_uploads(gated_recognizer, audio_dir, tmp_path):
    """Three sessions keep the live worker busy (every window 0.15 s of model time); an upload
    meanwhile waits for at most the live pass under way, and live updates keep coming."""
    rec, _gate, control = gated_recognizer
    control["delay"] = 0.15
    hub = LiveHub(rec, window_s=1.0, hop_s=0.1, vad=False)
    service = WebService(rec, tmp_path / "outputs")
    stop = threading.Event()
    audio = pcm(20.0, seed=9)

    def speaker(key: str) -> None:
        pos = 0
        while not stop.is_set() and pos < len(audio):
            hub.push(key, audio[pos:pos + CHUNK], RATE)
            pos += CHUNK
            time.sleep(0.05)

    speakers = [threading.Thread(target=speaker, args=(k,)) for k in "abc"]
    clip = str(audio_dir / "mono_16000.wav")

    def upload() -> float:
        start = time.perf_counter()
        [outcome] = service.serve([clip], ["utterance"], [False])
        assert outcome.ok
        return time.perf_counter() - start

    alone = max(upload() for _ in range(2))  # this machine's cost of an upload, model idle
    try:
        for t in speakers:
            t.start()
        deadline = time.monotonic() + 10
        while (hub.sessions < 3 or not all(hub.view(k).analysed for k in "abc")) and time.monotonic() < deadline:
            time.sleep(0.05)
        before = sum(hub.view(k).analysed for k in "abc")
        took = [upload() for _ in range(4)]
        during = sum(hub.view(k).analysed for k in "abc") - before
    finally:
        stop.set()
        for t in speakers:
            t.join()
        hub.shutdown()
    # alone + at most the live pass under way (0.15 s), with room for a loaded machine; starved,
    # an upload would wait behind the three sessions' windows again and again
    assert max(took) < alone + 0.15 + 0.3, (alone, took)
    assert during >= 3  # and live updates kept coming between the uploads


def test_the_live_tab_gets_a_model_of_its_own_on_a_cpu(tiny_recognizer):
    """auto: beside fp32 uploads on a CPU, an int8 copy of the same model with a lock of its own
    (a live window never waits behind an upload); same: the uploads' model itself."""
    from emotion.settings import Settings

    live = Settings().live_recognizer(tiny_recognizer)
    assert live is not tiny_recognizer and live.engine.dtype_name == "int8"
    assert live.engine.path == tiny_recognizer.engine.path and live.labels == tiny_recognizer.labels
    assert live.engine is not tiny_recognizer.engine
    assert Settings(live_dtype="same").live_recognizer(tiny_recognizer) is tiny_recognizer
    assert Settings(live_dtype="fp32").live_recognizer(tiny_recognizer) is tiny_recognizer
    window = np.random.default_rng(0).standard_normal(3 * SAMPLE_RATE).astype(np.float32) * 0.1
    a, b = live.recognize(window, sample_rate=SAMPLE_RATE), tiny_recognizer.recognize(window, sample_rate=SAMPLE_RATE)
    assert max(abs(a.scores[k] - b.scores[k]) for k in a.scores) < 0.05  # int8 is close, not equal


def test_the_stop_says_one_length_and_every_reason_in_the_page_language(tiny_recognizer, tmp_path):
    """While recording the meter counts what reached the live updates, and says so; once stopped
    it shows the saved recording's length, the stop summary's; a page recording kept back as over
    the upload limit is said with its size; refusals and the lost-audio warning in Chinese too."""
    import re

    from emotion.app.live_page import _analyse, _stop, live_error_text, meter_html, timeline_html

    audio = pcm(6.0, seed=3)
    page_wav = tmp_path / "page.wav"
    sf.write(page_wav, audio, RATE, subtype="PCM_16")
    hub = LiveHub(tiny_recognizer, vad=False, max_sessions=3)
    service = WebService(tiny_recognizer, tmp_path / "outputs")
    try:
        for key in "ab":
            gappy_stream(hub, key, audio, time.time())
        live = {lang: meter_html(hub.view("a"), lang) for lang in ("en", "zh")}
        assert "3.0 s received live" in live["en"] and "实时已收到 3.0 秒" in live["zh"], live
        wait_idle(hub, "a")
        strip = {lang: timeline_html(hub.view("a"), lang=lang) for lang in ("en", "zh")}
        names = re.findall(r'data-emotion="(\w+)" title="([^"]*)"', strip["zh"])
        assert names and all(key not in title and "秒" in title for key, title in names), strip["zh"]
        assert all(f'title="{key}, ' in strip["en"] for key, _ in names), strip["en"]
        hub.push("c", pcm(0.1), RATE)
        with pytest.raises(LiveError) as full:
            hub.push("d", pcm(0.1), RATE)
        assert live_error_text(full.value, "zh") == "已有 3 个实时录音在进行：请稍后再试"
        assert live_error_text(full.value, "en") == str(full.value)
        copy = tmp_path / "copy.wav"
        copy.write_bytes(page_wav.read_bytes())
        recording, summary, meter = _stop(hub, "a", "zh", str(copy))
        assert "已录 6.0 秒" in summary and "已停止 · 共录 6.0 秒" in meter, (summary, meter)
        # the page recorded 700 s in its tab but kept it back: over a 64 MB limit
        sent = '{"frames": %d, "rate": 48000, "sent": false, "limit": %d}' % (700 * 48000, 64 * 2**20)
        recording, summary, meter = _stop(hub, "b", "en", None, sent)
        assert "recorded 3.0 s" in summary and "stopped · 3.0 s recorded" in meter, (summary, meter)
        assert "(64 MB) is over the 64 MB upload limit" in summary, summary
        hub.close("b", gone=True)  # the tab closed with a chunk on its way
        with pytest.raises(LiveError) as ended:
            hub.push("b", pcm(0.1), RATE)
        assert live_error_text(ended.value, "zh") == "这次录音已经结束"
        shown = _analyse(service, recording, "utterance", False, "me", "zh", summary)
        log = shown[2 + [f.name for f in fields(ResultView)].index("log")]  # ("", live log, *result view)
        assert recording[1] > 2.5 and f"实时录音：约 {recording[1]:.1f} 秒录音缺失" in log, log
        assert "missing" not in log and "live recording" not in log, log
    finally:
        hub.shutdown()
