"""The command line, run as a user runs it: a separate process."""

import os
import subprocess
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent


def run(*args, env=None, timeout=300):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "emotion", *map(str, args)], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def test_recognize_folder_of_mixed_files(tiny_model, audio_dir, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("mono_16000.wav", "clip.mp3", "clip.m4a", "clip.opus"):
        (inputs / name).write_bytes((audio_dir / name).read_bytes())
    (inputs / "broken.wav").write_bytes(b"<html>not audio</html>")
    out = tmp_path / "out"
    p = run("recognize", inputs, "--model-dir", tiny_model, "--output-dir", out, "--granularity", "frame")
    assert p.returncode == 1, p.stderr  # one file failed
    assert "FAILED" in p.stdout and "broken.wav: not a readable audio file" in p.stdout
    assert "4 done, 1 failed" in p.stderr and "Traceback" not in p.stderr
    folders = sorted(out.iterdir())
    assert len(folders) == 4
    assert all(sorted(os.listdir(f)) == ["embedding.npy", "manifest.json", "processed_audio.wav", "result.json"]
               for f in folders)


def test_missing_model_offline_is_one_clear_message(tmp_path, audio_dir):
    start = time.perf_counter()
    p = run("recognize", audio_dir / "mono_16000.wav",
            env={"EMOTION_MODEL_DIR": str(tmp_path / "emotion2vec_plus_large")}, timeout=60)
    took = time.perf_counter() - start
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert "python -m emotion download" in p.stderr and "EMOTION_MODEL_DIR" in p.stderr
    assert "not reachable" in p.stderr
    assert took < 15
    assert not (tmp_path / "emotion2vec_plus_large").exists()
    assert not list(tmp_path.glob(".emotion2vec_plus_large.partial-*"))


def test_download_command_offline(tmp_path):
    p = run("download", "emotion2vec_plus_base", "--model-dir", tmp_path / "base", timeout=60)
    assert p.returncode == 2 and "iic/emotion2vec_plus_base" in p.stderr and "Traceback" not in p.stderr


def test_verify_against_funasr_passes(tiny_model):
    p = run("verify", "--model-dir", tiny_model, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "PASS" in p.stdout and p.stdout.count("same") == 8  # 4 clips x 2 granularities


def test_verify_fails_when_weights_differ(tiny_model, tmp_path):
    """verify must be able to fail: perturb one weight funasr and we both read differently."""
    import shutil

    d = tmp_path / "m"
    shutil.copytree(tiny_model, d)
    from emotion.verify import compare, reference_model
    from emotion import Recognizer
    from emotion.app.cli import synthetic_clips

    rec = Recognizer.load(d, device="cpu", warmup=False)
    rec.model.network.proj.weight.data[0] += 0.5  # our copy only
    clip = synthetic_clips(tmp_path)[0]
    assert not compare(rec, reference_model(d), clip, "utterance").ok
