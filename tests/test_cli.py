"""The command line, run as a user runs it: a separate process."""

import os
import subprocess
import sys
import time
from pathlib import Path
from emotion.sources import AudioOpener


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

    import torch

    d = tmp_path / "m"
    shutil.copytree(tiny_model, d)
    from emotion.verify import compare, reference_model
    from emotion import Recognizer
    from emotion.app.cli import synthetic_clips

    rec = Recognizer.load(d, device="cpu", warmup=False)
    rec.engine.model.network.proj.weight.data[0] += 0.5  # our copy only
    clip = synthetic_clips(tmp_path)[0]
    threads = torch.get_num_threads()
    torch.set_num_threads(3)  # not funasr's default of 4, which AutoModel would set process-wide
    try:
        ref = reference_model(d)
        assert torch.get_num_threads() == 3  # our passes after it run as before it
    finally:
        torch.set_num_threads(threads)
    assert not compare(rec, ref, clip, "utterance").ok


def test_every_option_has_help_and_no_default_none():
    import argparse

    from emotion.app.cli import build_parser
    from emotion.app.server import build_parser as app_parser
    from emotion.settings import Settings

    parsers = [app_parser(Settings())]
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            parsers += list(action.choices.values())
    for parser in parsers:
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            text = parser._get_formatter()._expand_help(action) if action.help else ""
            assert text, f"{parser.prog} {action.option_strings or action.dest}: no help text"
            assert "(default: None)" not in text and text.count("(default:") <= 1, text


def test_run_sh_help_is_the_header_only():
    p = subprocess.run(["bash", "run.sh", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "./run.sh test" in p.stdout
    assert "set -euo" not in p.stdout and "cd \"$(dirname" not in p.stdout


def test_recognize_reports_each_file_as_it_finishes(tiny_recognizer, audio_dir):
    """So the command line prints each line as its file finishes (CPU: one file at a time), while
    the next file decodes ahead: never more than one ahead of the last reported file."""
    from emotion import Recognizer

    events = []

    def loader(path):
        events.append(("decode", Path(path).name))
        return tiny_recognizer.loader(path)

    rec = Recognizer(tiny_recognizer.engine, AudioOpener(load=loader))
    paths = [audio_dir / "mono_16000.wav", audio_dir / "clip.mp3", audio_dir / "mono_8000.wav"]
    rec.recognize_many(paths, on_result=lambda i, res: events.append(("result", paths[i].name)))
    assert [name for kind, name in events if kind == "result"] == [p.name for p in paths]
    assert sorted(name for kind, name in events if kind == "decode") == sorted(p.name for p in paths)
    for i, p in enumerate(paths):
        assert events.index(("decode", p.name)) < events.index(("result", p.name))
        if i + 2 < len(paths):  # file i is reported before file i + 2 starts decoding
            assert events.index(("result", p.name)) < events.index(("decode", paths[i + 2].name))
