"""emotion export and the ONNX Runtime engine, on the tiny random-weight model: the exported model
against the PyTorch network, the engine against TorchEngine, the runtime-only script in a process
where torch cannot be imported, an adapted head, and exports that are interrupted or refused.
One fp32 export is shared by the module (tracing takes tens of seconds on a busy 2-core host)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from emotion.adapter import base_record, write_adapter
from emotion.app.cli import main as cli_main
from emotion.export import (CHECK_SECONDS, DATA_FILE, FP32_TOLERANCE, INT8_MIN_DEPTH, MODEL_FILE, Agreement,
                            ExportError, check_clips, export_model, is_exported, read_manifest)
from emotion.files import MANIFEST_FILE, TMP_PREFIX, file_sha256
from emotion.onnx_engine import OnnxEngine
from emotion.torch_engine import TorchEngine
from tests.media import write_wav

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "docs" / "run_onnx.py"


@pytest.fixture(scope="session")
def exported(tiny_model, tmp_path_factory):
    """The tiny model exported once, fp32, and what export_model returned."""
    out = tmp_path_factory.mktemp("export") / "tiny-onnx"
    return export_model(out, tiny_model, "fp32")


@pytest.fixture(scope="session")
def tiny_torch(tiny_model):
    return TorchEngine.load(tiny_model, "cpu", "fp32")


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_fp32_export_agrees_and_says_what_it_is(exported, tiny_model):
    a = exported.agreement
    assert a.clips_s == list(CHECK_SECONDS) and min(a.clips_s) == 1.0 and max(a.clips_s) == 30.0
    assert a.max_score_diff <= FP32_TOLERANCE and a.batched_vs_single <= FP32_TOLERANCE
    assert a.top1_agreement == 1.0 and a.tolerance == FP32_TOLERANCE
    folder = exported.folder
    assert is_exported(folder) and not (folder / "model.fp32.onnx").exists()
    m = read_manifest(folder)
    assert m["precision"] == "fp32" and m["opset"] >= 17 and m["agreement"] == a.to_dict()
    assert m["source"]["model_sha256"] == file_sha256(tiny_model / "model.pt")
    assert {"torch", "onnx", "onnxruntime", "exporter"} <= set(m["versions"])
    assert (folder / "tokens.txt").read_text(encoding="utf-8").splitlines() == \
        (tiny_model / "tokens.txt").read_text(encoding="utf-8").splitlines()
    assert set(m["files"]) == {"model.onnx", "model.onnx.data", "head.npz", "tokens.txt"}
    # the weights live beside the graph, as external data ONNX Runtime maps instead of copying
    import onnx

    graph = onnx.load(str(folder / "model.onnx"), load_external_data=False).graph
    inline = [t.name for t in graph.initializer if len(t.raw_data) >= 1024]
    external = [t for t in graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert not inline and len(external) > 10


def test_graph_scores_batched_equal_alone(exported, tiny_torch):
    """The graph's own outputs: a padded batch gives each clip what it gets alone, and the
    embedding and scores are the masked mean and softmax(head) PyTorch gives."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(exported.folder / MODEL_FILE), providers=["CPUExecutionProvider"])
    clips = check_clips((1.3, 4.0, 2.2), seed=5)
    batch = np.zeros((3, 64000), np.float32)
    for i, c in enumerate(clips):
        batch[i, : len(c)] = c
    frames, valid, emb, scores = sess.run(None, {"waveforms": batch, "lengths": np.array([len(c) for c in clips])})
    for i, c in enumerate(clips):
        ref = tiny_torch.embed([c])[0]
        assert valid[i].sum() == len(ref) and not valid[i, len(ref):].any()
        np.testing.assert_allclose(frames[i, : len(ref)], ref, atol=2e-5)
        np.testing.assert_allclose(emb[i], ref.mean(0), atol=1e-5)
        np.testing.assert_allclose(scores[i], softmax(tiny_torch.logits(ref.mean(0)[None]))[0], atol=1e-5)


def test_engine_matches_torch_engine(exported, tiny_torch):
    engine = OnnxEngine.load(exported.folder, threads=1)
    assert engine.warmup() > 0
    clips = check_clips((1.0, 2.7, 6.1), seed=3)
    ours = engine.embed(clips)  # one padded pass
    for got, clip in zip(ours, clips):
        ref = tiny_torch.embed([clip])[0]
        assert got.shape == ref.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, ref, atol=1e-5)
        np.testing.assert_allclose(engine.logits(got), tiny_torch.logits(got), atol=1e-5)
    assert (engine.hop, engine.dim, engine.dtype_name) == (tiny_torch.hop, tiny_torch.dim, "fp32")
    assert [lb.key for lb in engine.labels] == [lb.key for lb in tiny_torch.labels]
    info = engine.info()
    assert info.engine == "onnxruntime" and info.classes == tiny_torch.info().classes and info.head == "released"
    # fp32 opens without prepacking its weights (PREPACK); with it the numbers are the same
    packed = OnnxEngine.load(exported.folder, threads=1, prepack=True)
    assert not engine.prepack and packed.prepack
    for got, clip in zip(ours, clips):
        np.testing.assert_allclose(packed.embed([clip])[0], got, atol=1e-5)


def test_runtime_only_script_without_torch(exported, tiny_recognizer, tmp_path):
    """docs/run_onnx.py in a process where `import torch` fails: same scores as the PyTorch engine
    on real files (16 kHz, 44.1 kHz stereo, 8 kHz: the script's own resampler)."""
    files = [tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "c.wav"]
    write_wav(files[0], 2.3, 16000, seed=1)
    write_wav(files[1], 3.1, 44100, channels=2, seed=2)
    write_wav(files[2], 1.7, 8000, seed=3)
    blocked = tmp_path / "blocked"
    (blocked / "torch").mkdir(parents=True)
    (blocked / "torch" / "__init__.py").write_text("raise ImportError('torch is blocked in this test')\n")
    env = {**os.environ, "PYTHONPATH": str(blocked)}
    probe = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "blocked" in probe.stderr
    run = subprocess.run([sys.executable, str(SCRIPT), str(exported.folder), *map(str, files)], env=env,
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [d["file"] for d in lines] == [str(f) for f in files]
    for d in lines:
        ref = tiny_recognizer.recognize(Path(d["file"]))
        assert d["emotion"] == ref.emotion
        assert set(d["scores"]) == set(ref.scores)
        assert max(abs(d["scores"][k] - v) for k, v in ref.scores.items()) < 1e-5


def test_adapted_model_exports_at_int8_through_the_cli(tiny_model, exported, tmp_path, capsys):
    """An adapted model (its own head and labels) exported at int8 by `emotion export`: the
    agreement reported, not bounded; a smaller model than the fp32 export; the head and labels
    its own (the graph's head and head.npz are the adapted head); an existing folder refused."""
    gen = torch.Generator().manual_seed(4)
    head = {"weight": torch.randn(3, 64, generator=gen), "bias": torch.randn(3, generator=gen)}
    adapted = write_adapter(tmp_path / "adapted", ["calm", "tense", "happy"], head,
                            base_record(tiny_model, tmp_path / "adapted"), {})
    out = tmp_path / "int8"
    assert cli_main(["export", str(out), "--model-dir", str(adapted), "--precision", "int8"]) == 0
    said = capsys.readouterr().out
    assert "top-1 agreement" in said and "largest score difference" in said
    m = read_manifest(out)
    a = m["agreement"]
    assert m["precision"] == "int8" and a["tolerance"] is None
    assert 0.0 <= a["top1_agreement"] <= 1.0 and 0.0 < a["max_score_diff"] < 1.0  # reported, not bounded
    assert (out / DATA_FILE).stat().st_size < (exported.folder / DATA_FILE).stat().st_size
    assert [lb["key"] for lb in m["labels"]] == ["calm", "tense", "happy"] and m["source"]["head"] == "adapted"
    engine, ref = OnnxEngine.load(out), TorchEngine.load(adapted, "cpu", "fp32")
    assert engine.dtype_name == "int8" and engine.prepack
    frames = engine.embed(check_clips((2.0,)))[0]
    assert frames.shape[1] == engine.dim
    np.testing.assert_allclose(engine.logits(frames), ref.logits(frames), atol=1e-5)
    np.testing.assert_allclose(engine.weight, head["weight"].numpy())
    assert engine.info().classes == ["calm", "tense", "happy"] and engine.info().head == "adapted"
    # the graph's own scores use the same head: its top class is head.npz's on its embedding
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out / MODEL_FILE), providers=["CPUExecutionProvider"])
    wave = check_clips((2.0,))[0]
    emb, scores = sess.run(["embedding", "scores"], {"waveforms": wave[None], "lengths": np.array([len(wave)])})
    logits = engine.logits(emb)[0]
    np.testing.assert_allclose(scores[0], np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum(),
                               atol=1e-5)
    # int8 products: every linear layer and front-end layer but the first (a window of the raw
    # waveform, too shallow for int8) and the head, which stay fp32 MatMul nodes
    import onnx

    cfg = ref.model.config
    graph = onnx.load(str(out / MODEL_FILE), load_external_data=False).graph
    weights = {t.name: list(t.dims) for t in graph.initializer}
    fp32 = sorted(weights[n.input[1]] for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights)
    first_kernel = cfg.conv_layers[0][1]
    assert fp32 == sorted([[first_kernel, cfg.conv_layers[0][0]], [64, 3]]) and first_kernel < INT8_MIN_DEPTH
    blocks = cfg.prenet_depth + cfg.depth
    assert sum(n.op_type == "MatMulInteger" for n in graph.node) == 4 * blocks + 1 + len(cfg.conv_layers) - 1
    # an existing folder is refused, before any work
    assert cli_main(["export", str(out), "--model-dir", str(tiny_model)]) == 2
    assert "exists" in capsys.readouterr().err and read_manifest(out)["precision"] == "int8"


def _leftovers(parent: Path) -> list[Path]:
    return [p for p in parent.iterdir() if p.name.startswith(TMP_PREFIX)]


def test_failed_check_writes_nothing(tiny_model, tmp_path, monkeypatch):
    """An fp32 export that disagrees with PyTorch fails and leaves nothing; so does one stopped by
    Ctrl-C while it checks."""
    import emotion.export as export

    bad = Agreement([1.0], 3e-3, 1e-2, 0.0, 1.0, FP32_TOLERANCE)
    monkeypatch.setattr(export, "trace", lambda loaded, path, **_: path.write_bytes(b"a traced graph"))
    monkeypatch.setattr(export, "store_weights_beside", lambda path: (path.parent / DATA_FILE).write_bytes(b"w"))
    monkeypatch.setattr(export, "session", lambda path: None)
    monkeypatch.setattr(export, "check", lambda *args: bad)
    with pytest.raises(ExportError, match="differ"):
        export_model(tmp_path / "out", tiny_model)
    assert not (tmp_path / "out").exists() and not _leftovers(tmp_path)

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "check", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_model(tmp_path / "out", tiny_model)
    assert not (tmp_path / "out").exists() and not _leftovers(tmp_path)


# `emotion export` whose trace writes a stand-in model.onnx and then waits to be killed: the
# folder handling under test is the real one, without a real trace's tens of seconds
KILLED_EXPORT = """
import sys, time
import emotion.export as export
from emotion.app.cli import main

def trace(loaded, path, **kwargs):
    path.write_bytes(b"a traced graph")
    time.sleep(120)

export.trace = trace
main(["export", sys.argv[1], "--model-dir", sys.argv[2]])
"""


def test_killed_export_leaves_no_complete_looking_folder(tiny_model, tmp_path):
    """A real kill (SIGKILL, no clean-up runs) once model.onnx is on disk: the target does not
    exist, and what is left is a hidden temporary folder that is not an exported model."""
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_EXPORT, str(out), str(tiny_model)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if any((p / MODEL_FILE).is_file() for p in _leftovers(tmp_path)):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the export ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert not out.exists()
    left = _leftovers(tmp_path)
    assert left and all(not is_exported(p) and not (p / MANIFEST_FILE).exists() for p in left)
    with pytest.raises(ExportError, match="not a complete exported model"):
        OnnxEngine.load(left[0])


def test_engine_refuses_a_folder_that_is_not_exported(tiny_model, exported, tmp_path):
    with pytest.raises(ExportError, match="not a complete exported model"):
        OnnxEngine.load(tiny_model)
    assert not is_exported(tiny_model) and not is_exported(tmp_path / "missing")
    # the graph without its weights file (or with a cut one) is not a model either
    cut = tmp_path / "cut"
    shutil.copytree(exported.folder, cut)
    with open(cut / DATA_FILE, "r+b") as fh:
        fh.truncate(1000)
    with pytest.raises(ExportError, match="not a complete exported model"):
        OnnxEngine.load(cut)
    (cut / DATA_FILE).unlink()
    assert not is_exported(cut)


def test_the_exported_model_serves_the_cli_and_the_web_service(exported, tiny_recognizer, tmp_path):
    """--model-dir an exported folder runs the command line and the web service on ONNX Runtime,
    with the same results (schema, windows, scores within 1e-5) as the PyTorch engine; a --dtype
    the folder cannot honour is refused in one line."""
    from emotion.app.service import WebService
    from emotion.recognizer import Recognizer

    clip = write_wav(tmp_path / "clip.wav", 31.0, 22050, seed=5)  # two windows: the windowing is the pipeline's
    expected = tiny_recognizer.recognize(clip, granularity="frame")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    p = subprocess.run([sys.executable, "-m", "emotion", "recognize", str(clip), "--model-dir", str(exported.folder),
                        "--granularity", "frame", "--output-dir", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr
    [folder] = (tmp_path / "out").iterdir()
    data = json.loads((folder / "result.json").read_text())
    assert data["model"]["engine"] == "onnxruntime" and data["chunks"] == expected.chunks == 2
    assert max(abs(data["scores"][k] - v) for k, v in expected.scores.items()) <= 1e-5
    rec = Recognizer.load(exported.folder)
    assert rec.engine.info().engine == "onnxruntime"
    [outcome] = WebService(rec, tmp_path / "web").serve([str(clip)], ["frame"], [True])
    assert outcome.ok and outcome.result.model.engine == "onnxruntime", outcome.error
    assert np.abs(outcome.result.frame_scores - expected.frame_scores).max() <= 1e-5
    refused = subprocess.run([sys.executable, "-m", "emotion", "recognize", str(clip), "--model-dir", str(exported.folder),
                              "--dtype", "int8"], capture_output=True, text=True, timeout=300, env=env)
    assert refused.returncode == 2 and "exported ONNX model" in refused.stderr and "Traceback" not in refused.stderr
