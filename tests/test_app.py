"""The web app, served in-process on 127.0.0.1 with the tiny random checkpoint."""

from __future__ import annotations

import http.client as httpclient
import json
import os
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest

from tests.ports import free_port  # noqa: E402
from tests.media import write_wav

gr = pytest.importorskip("gradio")
from gradio_client import Client, handle_file  # noqa: E402

from emotion.results import list_results  # noqa: E402
from emotion.app.page import build_app  # noqa: E402
from emotion.app.server import launch, launch_kwargs  # noqa: E402
from emotion.app.service import WebService  # noqa: E402
from emotion.labels import display_name  # noqa: E402


@pytest.fixture
def serve(tmp_path, monkeypatch, tiny_model):
    """serve(recognizer, **launch overrides) -> (demo, url, output_root, service); closed after the test."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-tmp"))
    started = []

    def start(recognizer, queue_size=None, coalesce=None, **overrides):
        out = tmp_path / "outputs"
        service = WebService(recognizer, out)
        demo = build_app(service, queue_size=queue_size or 16, coalesce=coalesce)
        kwargs = launch_kwargs(out, models_root=tiny_model.parent, host="127.0.0.1", port=free_port(),
                               **overrides)
        launch(demo, **kwargs)
        started.append(demo)
        return demo, demo.local_url, out, service

    yield start
    for demo in started:
        demo.close()


def http() -> httpx.Client:
    return httpx.Client(trust_env=False, timeout=30)


def raw_get(url: str, path: str) -> int:
    """GET with the path sent exactly as written (no dot-segment normalisation)."""
    parts = urlsplit(url)
    conn = httpclient.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_wav(tmp_path_factory.mktemp("app-audio") / "voice.wav", 2.5, 22050, seed=3)


def named(values) -> dict:
    """A result view's outputs by name (component updates unwrapped to their values)."""
    return {k: v.get("value") if isinstance(v, dict) and v.get("__type__") == "update" else v
            for k, v in zip(VIEW, values)}


def recognize(client: Client, path, granularity="utterance", embedding=False, token="browser-a",
              channels="mix") -> dict:
    """The page's own event, as the browser sends it."""
    return named(client.predict(handle_file(str(path)), None, granularity, embedding, channels, token,
                                api_name="/recognize"))


def table_cells(markup: str) -> tuple[list[str], list[list[str]]]:
    """The header and body cells' text of an html table (render.html_table)."""
    from html.parser import HTMLParser

    class Cells(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.cell = [], None

        def handle_starttag(self, tag, attrs):
            if tag == "tr":
                self.rows.append([])
            elif tag in ("td", "th"):
                self.cell = ""

        def handle_endtag(self, tag):
            if tag in ("td", "th"):
                self.rows[-1].append(" ".join(self.cell.split()))
                self.cell = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data

    parser = Cells()
    parser.feed(markup)
    return parser.rows[0], parser.rows[1:]


VIEW = ["headline", "tendencies", "scores", "timeline", "segments", "speakers", "player", "dl_json", "dl_embedding",
        "dl_audio", "log", "json", "status"]


@pytest.mark.parametrize("granularity", ["utterance", "frame"])
def test_recognize_matches_library(serve, tiny_recognizer, clip, granularity):
    demo, url, out, service = serve(tiny_recognizer)
    client = Client(url, verbose=False)
    view = recognize(client, clip, granularity, embedding=True)
    result = view["json"]
    ref = tiny_recognizer.recognize(str(clip), granularity=granularity)
    assert result["emotion"] == ref.emotion
    assert result["scores"].keys() == ref.scores.keys()
    for key, value in ref.scores.items():
        assert abs(result["scores"][key] - value) < 1e-6
    assert ref.label.zh in view["headline"] and f"{ref.confidence * 100:.1f}%" in view["headline"]
    assert "置信度 / confidence" in view["headline"]
    assert len(view["scores"]["confidences"]) == 9
    assert "inference" in view["log"] and "decode" in view["log"]
    names = [Path(view[k]).name for k in ("dl_json", "dl_embedding", "dl_audio")]
    assert names == ["result.json", "embedding.npy", "processed_audio.wav"]
    mine = service.results_root("browser-a")
    saved = [p for p in mine.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(saved) == 1 and str(saved[0]) in view["log"]  # the log names the output folder
    assert json.loads((saved[0] / "result.json").read_text())["scores"] == result["scores"]
    assert list_results(mine) == [saved[0].name] and list_results(out) == []
    assert "Ready" in view["status"] and "memory" in view["status"]
    if granularity == "frame":
        got = np.array(result["frames"]["scores"])
        assert np.allclose(got, ref.frame_scores, atol=1e-5)
        assert [s["emotion"] for s in result["timeline"]] == [s.emotion for s in ref.segments]
        assert view["timeline"] is not None and "<table>" in view["segments"]
    # the history tab reopens it, in the same view; another browser cannot
    again = named(client.predict(saved[0].name, "browser-a", api_name="/history_open"))
    assert again["json"]["scores"] == result["scores"] and again["headline"] == view["headline"]
    assert (again["timeline"] is not None) == (granularity == "frame")
    other = named(client.predict(saved[0].name, "browser-b", api_name="/history_open"))
    assert "no such result" in other["headline"] and other["json"] is None


def test_without_embedding_no_npy(serve, tiny_recognizer, clip):
    _, url, out, service = serve(tiny_recognizer)
    view = recognize(Client(url, verbose=False), clip)
    assert view["dl_embedding"] is None and Path(view["dl_json"]).name == "result.json"


def test_a_failure_after_a_result_replaces_it_with_the_reason(serve, tiny_recognizer, clip, tmp_path):
    _, url, _, service = serve(tiny_recognizer)
    client = Client(url, verbose=False)
    assert recognize(client, clip)["json"]["emotion"]
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio at all " * 20)
    view = recognize(client, bad)
    try:
        tiny_recognizer.recognize(str(bad))
    except Exception as exc:  # the library's own AudioError
        ref_reason = exc.reason
    assert "notes.wav" in view["headline"] and ref_reason in view["headline"] and "⚠️" in view["headline"]
    assert ref_reason in view["log"]
    assert view["json"] is None and view["tendencies"] == "" and view["dl_json"] is None
    assert "Ready" in view["status"]
    with pytest.raises(Exception) as info:  # the API keeps raising, for programs
        client.predict(handle_file(str(bad)), "utterance", False, api_name="/analyse")
    assert "notes.wav" in str(info.value) and ref_reason in str(info.value)
    assert "Traceback" not in str(info.value) and "File \"" not in str(info.value)


def test_history_rejects_traversal(serve, tiny_recognizer):
    _, url, _, service = serve(tiny_recognizer)
    client = Client(url, verbose=False)
    for name in ("../../etc", "..", "users"):
        view = named(client.predict(name, "browser-a", api_name="/history_open"))
        assert "no such result" in view["headline"] and view["json"] is None


def test_batch_table_and_csv(serve, tiny_recognizer, audio_dir, tmp_path):
    _, url, out, service = serve(tiny_recognizer)
    bad = tmp_path / "empty.wav"
    bad.write_bytes(b"")
    good = [audio_dir / "mono_16000.wav", audio_dir / "clip.mp3"]
    summary, csv_path, zip_path, table = [v.get("value") if isinstance(v, dict) and "__type__" in v else v
                                          for v in Client(url, verbose=False).predict(
        [handle_file(str(p)) for p in good + [bad]], True, "browser-a", api_name="/batch")]
    headers, rows = table_cells(table)  # the page's table, as the browser gets it
    assert headers == ["Emotion · confidence", "File", "Details"]
    assert [r[1] for r in rows] == ["mono_16000.wav", "clip.mp3", "empty.wav"]
    assert rows[2][0].startswith("⚠️") and "empty" in rows[2][2]
    ref = tiny_recognizer.recognize(str(good[0]))
    assert rows[0][0] == f"{ref.label.display} · {100 * ref.confidence:.1f}%"
    assert rows[0][2].startswith(f"{display_name(ref.top[1]['emotion'])} {100 * ref.top[1]['score']:.1f}%")
    assert "3 files: 2 analysed, 1 failed" in summary and "empty.wav" in summary
    saved = [p for p in service.results_root("browser-a").iterdir() if (p / "batch_results.csv").is_file()]
    assert len(saved) == 1 and (saved[0] / "manifest.json").is_file() and str(saved[0]) in summary
    assert Path(csv_path).name == "batch_results.csv" and Path(zip_path).name == "embeddings.zip"
    from emotion.batch.rows import row_schema
    from emotion.labels import label_keys

    with open(saved[0] / "batch_results.csv", encoding="utf-8") as fh:
        header = fh.readline().strip().split(",")
    # `emotion batch --embeddings DIR`'s columns: the embedding column names each file's zip entry
    assert header == list(row_schema(label_keys(tiny_recognizer.labels), embedding_names=True))
    import zipfile

    with zipfile.ZipFile(saved[0] / "embeddings.zip") as zf:
        names = sorted(zf.namelist())
        assert len(names) == 2 and names[0].startswith("clip_") and names[1].startswith("mono_16000_")


def test_direct_run_refused_and_monitoring_closed(serve, tiny_recognizer, clip):
    _, url, _, service = serve(tiny_recognizer)
    with http() as h:
        r = h.post(url + "gradio_api/run/recognize", json={"data": [None, "utterance", False]})
        assert r.status_code == 404
        for path in ("monitoring", "monitoring/summary", "gradio_api/monitoring"):
            assert h.get(url + path).status_code in (401, 403, 404), path


def test_file_route_serves_outputs_only(serve, tiny_recognizer, tiny_model, clip):
    _, url, out, service = serve(tiny_recognizer)
    result = Client(url, verbose=False).predict(handle_file(str(clip)), "utterance", False, api_name="/analyse")
    saved = out / result["saved"]
    assert raw_get(url, f"/gradio_api/file={saved / 'result.json'}") == 200  # the control
    for path in ("/gradio_api/file=../../etc/passwd",
                 "/gradio_api/file=..%2F..%2F..%2Fetc%2Fpasswd",
                 "/gradio_api/file=/etc/passwd",
                 f"/gradio_api/file={saved}/../../../../etc/passwd",
                 f"/gradio_api/file={tiny_model / 'config.yaml'}",
                 f"/gradio_api/file={tiny_model / 'model.pt'}",
                 f"/gradio_api/file={out}/{os.path.relpath(tiny_model / 'model.pt', out)}"):
        assert raw_get(url, path) in (400, 403, 404), path


def test_upload_over_limit_is_413(serve, tiny_recognizer, tmp_path):
    _, url, _, service = serve(tiny_recognizer, max_file_size="10kb")
    big = write_wav(tmp_path / "big.wav", 2.0, 16000)  # 64 kB
    small = write_wav(tmp_path / "small.wav", 0.2, 16000)  # 6.4 kB
    with http() as h:
        with open(big, "rb") as fh:
            r = h.post(url + "gradio_api/upload", files={"files": ("big.wav", fh, "audio/wav")})
        assert r.status_code == 413
        with open(small, "rb") as fh:
            r = h.post(url + "gradio_api/upload", files={"files": ("small.wav", fh, "audio/wav")})
        assert r.status_code == 200


class GatedRecognizer:
    """The tiny recognizer, held at a gate so requests pile up in the queue."""

    def __init__(self, inner):
        self.inner = inner
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.calls: list[int] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def recognize_many(self, paths, **kwargs):
        self.entered.set()
        self.gate.wait(60)
        self.calls.append(len(paths))
        return self.inner.recognize_many(paths, **kwargs)


def test_full_queue_answers_busy(serve, tiny_recognizer, clip):
    gated = GatedRecognizer(tiny_recognizer)
    _, url, _, service = serve(gated, queue_size=1)
    clients = [Client(url, verbose=False) for _ in range(5)]
    jobs = [clients[0].submit(handle_file(str(clip)), "utterance", False, api_name="/analyse")]
    assert gated.entered.wait(30)  # one runs (held), then the queue has room for one more
    jobs += [c.submit(handle_file(str(clip)), "utterance", False, api_name="/analyse") for c in clients[1:]]


    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum(j.done() for j in jobs[1:]) < 3:
            time.sleep(0.1)
        refused = [j for j in jobs[1:] if j.done()]
        assert len(refused) == 3  # one waits in the queue of size 1, three are turned away
        for job in refused:
            with pytest.raises(Exception, match="(?i)queue is full"):
                job.result(timeout=5)
    finally:
        gated.gate.set()
    waiting = [j for j in jobs if not j.done() or j.exception() is None]
    for job in waiting:
        assert job.result(timeout=60)["emotion"]
    assert len(waiting) == 2


@pytest.mark.parametrize("granularity", ["utterance", "frame"])
def test_analyse_api_returns_the_result_json(serve, tiny_recognizer, clip, granularity):
    _, url, out, service = serve(tiny_recognizer)
    result = Client(url, verbose=False).predict(handle_file(str(clip)), granularity, False, api_name="/analyse")
    ref = tiny_recognizer.recognize(str(clip), granularity=granularity)
    assert result["emotion"] == ref.emotion and result["granularity"] == granularity
    assert max(abs(result["scores"][k] - v) for k, v in ref.scores.items()) < 1e-6
    assert (out / result["saved"] / "result.json").is_file()
    assert ("frames" in result) == (granularity == "frame")
    if granularity == "utterance":  # the speakers choice, fifth: the section of `recognize --speakers`
        talk = Client(url, verbose=False).predict(handle_file(str(clip)), granularity, False, "mix", "auto",
                                                  api_name="/analyse")
        saved = json.loads((out / talk["saved"] / "result.json").read_text())
        assert talk["speakers"] == saved["speakers"] and saved["speakers"]["requested"] == "auto"
        assert saved["speakers"]["count"] == len(saved["speakers"]["speakers"])
        assert "speakers" not in result


def test_coalesced_requests_each_get_their_own_answer(serve, tiny_recognizer, audio_dir, tmp_path):
    """Forced on here (it is the GPU default): requests that wait together are analysed together,
    a bad file among them gets its own error and the others their results."""
    gated = GatedRecognizer(tiny_recognizer)
    _, url, _, service = serve(gated, coalesce=True)
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00")
    first = Client(url, verbose=False).submit(handle_file(str(audio_dir / "mono_16000.wav")), "utterance", False,
                                              api_name="/analyse")
    assert gated.entered.wait(30)
    inputs = [(audio_dir / "clip.mp3", "utterance"), (bad, "utterance"), (audio_dir / "mono_16000.wav", "frame")]
    jobs = [Client(url, verbose=False).submit(handle_file(str(p)), g, False, api_name="/analyse") for p, g in inputs]
    time.sleep(2)  # let them queue behind the held request
    gated.gate.set()
    assert first.result(timeout=60)["emotion"]
    answers = [j.result(timeout=60) for j in jobs]
    assert "broken.wav" in answers[1]["error"]
    for (path, gran), ans in zip(inputs, answers):
        if path == bad:
            continue
        ref = tiny_recognizer.recognize(str(path), granularity=gran)
        assert ans["emotion"] == ref.emotion and ans["granularity"] == gran
        assert max(abs(ans["scores"][k] - v) for k, v in ref.scores.items()) < 1e-6
    assert max(gated.calls) >= 2, gated.calls  # the waiting requests went to the model together


def test_shutdown_lets_the_request_in_flight_finish(serve, tiny_recognizer, clip):
    gated = GatedRecognizer(tiny_recognizer)
    demo, url, _, service = serve(gated)
    running = Client(url, verbose=False).submit(handle_file(str(clip)), "utterance", False, api_name="/analyse")
    assert gated.entered.wait(30)
    closed = []
    closer = threading.Thread(target=lambda: closed.append(service.close(30)))
    closer.start()
    time.sleep(0.5)
    assert closer.is_alive()  # waits for the request in flight
    queued = Client(url, verbose=False).submit(handle_file(str(clip)), "utterance", False, api_name="/analyse")
    time.sleep(0.5)
    gated.gate.set()
    assert running.result(timeout=60)["emotion"]
    closer.join(30)
    assert closed == [True]
    with pytest.raises(Exception, match="shutting down"):  # the one still queued is turned away
        queued.result(timeout=60)


def test_app_process_serves_then_stops_cleanly_on_sigterm(tmp_path, tiny_model, clip):
    """python app.py as a user starts it: ready line, a request answered, SIGTERM exits 0."""
    import os
    import signal
    import subprocess
    import sys

    port = free_port()
    env = {**os.environ, "GRADIO_TEMP_DIR": str(tmp_path / "gradio-tmp"), "EMOTION_AUTH": ""}
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, "app.py", "--model-dir", str(tiny_model), "--port", str(port),
                             "--output-dir", str(tmp_path / "outputs")], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Ready: "):
                break
        assert lines and lines[-1].strip() == f"Ready: http://127.0.0.1:{port}/", "".join(lines)
        result = Client(lines[-1].split()[1], verbose=False).predict(handle_file(str(clip)), "frame", False,
                                                                     api_name="/analyse")
        assert result["granularity"] == "frame" and (tmp_path / "outputs" / result["saved"]).is_dir()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        rest = proc.stdout.read()
        assert "no request in flight" in rest and "SIGTERM received" in rest
        assert "Keyboard" not in rest, rest  # a SIGTERM is not a Ctrl-C
    finally:
        if proc.poll() is None:
            proc.kill()


def test_with_a_login_results_belong_to_the_user_not_the_browser(serve, tiny_recognizer, clip):
    _, url, out, service = serve(tiny_recognizer, auth=("alice", "secret words"))
    client = Client(url, verbose=False, auth=("alice", "secret words"))
    view = recognize(client, clip, token="whatever this browser says")
    mine = service.history("user:alice")
    assert len(mine) == 1 and not service.history("whatever this browser says")
    assert str(service.results_root("user:alice")) in view["log"]
    again = named(client.predict(mine[0][0], "another browser", api_name="/history_open"))
    assert again["json"]["emotion"] == view["json"]["emotion"]


def test_each_channel_side_by_side(serve, tiny_recognizer, tmp_path):
    """A two-sided call: one result per channel, each saved, shown side by side on the page and
    listed in the API's answer."""
    from tests.media import speechlike

    import soundfile as sf

    call = tmp_path / "call.wav"
    sf.write(call, np.concatenate([speechlike(2.0, 16000, seed=1), 0.3 * speechlike(2.0, 16000, seed=2, pitch=300)], 1),
             16000)
    _, url, out, service = serve(tiny_recognizer)
    client = Client(url, verbose=False)
    values = client.predict(handle_file(str(call)), None, "utterance", False, "each", "browser-a",
                            api_name="/recognize")
    view, second = named(values), named(values[len(VIEW):])  # the second view follows the first and the status
    refs = tiny_recognizer.recognize_channels(str(call))
    assert [r.input.channel for r in refs] == ["left", "right"]
    for shown, ref in zip((view, second), refs):  # each channel's whole view, saying which channel it is
        assert f"{ref.label.display} {100 * ref.confidence:.1f}%" in shown["headline"]
        assert f"{ref.input.channel} channel" in shown["headline"]
        assert f"channel: {ref.input.channel}" in shown["log"]
        assert shown["json"]["input"]["channel"] == ref.input.channel and len(shown["scores"]["confidences"]) == 9
        # its own downloads: the channel's result.json, not the first channel's
        assert json.loads(Path(shown["dl_json"]).read_text())["input"]["channel"] == ref.input.channel
    assert "right ->" in view["log"]
    assert len(service.history("browser-a")) == 2  # a folder per channel
    answer = client.predict(handle_file(str(call)), "utterance", False, "right", api_name="/analyse")
    assert answer["input"]["channel"] == "right" and abs(answer["confidence"] - refs[1].confidence) < 1e-6
    both = client.predict(handle_file(str(call)), "utterance", False, "each", api_name="/analyse")
    assert [c["input"]["channel"] for c in both["channels"]] == ["left", "right"]


def test_launch_tries_again_only_when_gradio_could_not_reach_the_new_server():
    """On a busy machine Gradio's start-up self-check can time out though the server is up: launch()
    closes and starts again (at most LAUNCH_TRIES times); any other refusal is raised at once."""
    from emotion.app.server import LAUNCH_TRIES

    class Demo:
        def __init__(self, failures: int, message: str = "When localhost is not accessible, ..."):
            self.failures, self.message, self.calls = failures, message, []

        def launch(self, **kwargs):
            self.calls.append("launch")
            if self.failures:
                self.failures -= 1
                raise ValueError(self.message)

        def close(self):
            self.calls.append("close")

    busy = Demo(1)
    launch(busy, server_port=1)
    assert busy.calls == ["launch", "close", "launch"]
    hopeless = Demo(LAUNCH_TRIES)
    with pytest.raises(ValueError, match="localhost is not accessible"):
        launch(hopeless)
    assert hopeless.calls.count("launch") == LAUNCH_TRIES
    other = Demo(1, "`allowed_paths` must be a list of directories.")
    with pytest.raises(ValueError, match="allowed_paths"):
        launch(other)
    assert other.calls == ["launch"]
