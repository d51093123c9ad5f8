"""The command line, run as a user runs it: a separate process."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
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


@pytest.mark.serial  # within seconds: timed
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


def test_verify_against_funasr_passes(tiny_model, capsys):
    """`emotion verify`, in this process (funasr is imported here already, by the checkpoints):
    the command's own code path, without a second process importing torch and funasr again."""
    from emotion.app.cli import main

    code = main(["verify", "--model-dir", str(tiny_model)])
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    assert "PASS" in out.out and out.out.count("same") == 8  # 4 clips x 2 granularities


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


def _repo_copy(tmp_path) -> Path:
    """run.sh in a folder of its own, with a ready .venv whose python is this test's interpreter
    (and this checkout on its path): run.sh as a fresh clone runs it, without an install."""
    import hashlib

    repo = tmp_path / "repo"
    (repo / ".venv" / "bin").mkdir(parents=True)
    for name in ("run.sh", "requirements.txt", "pyproject.toml"):
        (repo / name).write_bytes((ROOT / name).read_bytes())
    python = repo / ".venv" / "bin" / "python"
    python.write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    stamp = hashlib.sha256((ROOT / "requirements.txt").read_bytes() + (ROOT / "pyproject.toml").read_bytes())
    (repo / ".venv" / f".installed-{stamp.hexdigest()[:16]}").touch()
    return repo


def test_run_sh_cli_takes_paths_from_the_callers_folder(tiny_model, audio_dir, tmp_path):
    repo = _repo_copy(tmp_path)
    caller = tmp_path / "elsewhere"
    caller.mkdir()
    (caller / "en.wav").write_bytes((audio_dir / "mono_16000.wav").read_bytes())
    p = subprocess.run(["bash", str(repo / "run.sh"), "cli", "recognize", "en.wav", "--model-dir", str(tiny_model),
                        "--output-dir", "out", "--no-embedding"], cwd=caller, capture_output=True, text=True,
                       timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stdout + p.stderr
    assert "en.wav -> out/" in p.stdout and "1 done, 0 failed" in p.stderr
    [folder] = (caller / "out").iterdir()  # --output-dir too is the caller's
    assert (folder / "result.json").is_file()


def test_a_missing_path_is_reported_and_skipped_like_a_bad_file(tiny_model, audio_dir, tmp_path, capsys):
    from emotion.app import cli

    out = tmp_path / "out"
    code = cli.main(["recognize", str(audio_dir / "mono_16000.wav"), str(tmp_path / "nothere.wav"),
                     "--model-dir", str(tiny_model), "--output-dir", str(out), "--no-embedding"])
    captured = capsys.readouterr()
    assert code == 1 and f"FAILED  {tmp_path / 'nothere.wav'}: no such file" in captured.out
    assert "1 done, 1 failed" in captured.err and len(list(out.iterdir())) == 1


def test_stream_says_an_empty_file_is_empty(tiny_model, tmp_path, capsys):
    from emotion.app import cli

    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    assert cli.main(["stream", str(empty), "--model-dir", str(tiny_model)]) == 2
    assert capsys.readouterr().err.strip() == "error: empty.wav: the file is empty"


def test_resuming_without_embeddings_names_the_column(tiny_model, audio_dir, tmp_path, capsys):
    from emotion.app import cli

    out = tmp_path / "r.csv"
    args = ["batch", str(audio_dir / "mono_16000.wav"), "-o", str(out), "--model-dir", str(tiny_model),
            "--no-progress"]
    assert cli.main(args + ["--embeddings", str(tmp_path / "emb")]) == 0
    capsys.readouterr()
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "[" not in err and "happy" not in err, err  # one line, no column lists
    assert "has an embedding column: resume with --embeddings" in err and str(out) in err


def test_model_dir_message_names_what_fills_that_folder(audio_dir, tmp_path, capsys):
    from emotion.app import cli
    from emotion.model import MODELS_ROOT, not_found_message

    empty = tmp_path / "some" / "empty" / "folder"
    empty.mkdir(parents=True)
    assert cli.main(["recognize", str(audio_dir / "mono_16000.wav"), "--model-dir", str(empty)]) == 2
    err = capsys.readouterr().err
    assert f"python -m emotion download emotion2vec_plus_large --model-dir {empty}\n" in err, err
    (empty / "notes.txt").write_text("mine")  # a download would replace the folder: not offered
    text = not_found_message(empty)
    assert "python -m emotion download" not in text and "Copy the files of ModelScope" in text
    assert "(config.yaml, model.pt, tokens.txt)" in text
    default = not_found_message(MODELS_ROOT / "emotion2vec_plus_base")
    assert "Get it with:   python -m emotion download emotion2vec_plus_base\n" in default


def test_help_and_usage_errors_do_not_import_the_engine():
    """`emotion --help`, a command's --help and a usage error answer without importing torch (it
    took 4.1 s); so does the web app's --help."""
    probe = ("import runpy, sys\nsys.argv = {argv!r}\ntry:\n    runpy.{run}\nexcept SystemExit as exc:\n"
             "    code = exc.code\nprint('exit', code, 'torch' in sys.modules, 'gradio' in sys.modules, file=sys.stderr)")
    cases = [(["emotion", "--help"], 0), (["emotion", "batch", "--help"], 0), (["emotion", "stream", "--help"], 0),
             (["emotion", "recognize", "--granularity", "nope", "x.wav"], 2), (["emotion", "batch", "x.wav"], 2)]
    for argv, code in cases:
        run = "run_module('emotion', run_name='__main__')"
        p = subprocess.run([sys.executable, "-c", probe.format(argv=argv, run=run)],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert p.stderr.splitlines()[-1] == f"exit {code} False False", (argv, p.stderr[-500:])
    run = "run_path('app.py', run_name='__main__')"
    p = subprocess.run([sys.executable, "-c", probe.format(argv=["app.py", "--help"], run=run)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.stderr.splitlines()[-1] == "exit 0 False False", p.stderr[-500:]
    assert "--queue-size" in p.stdout and "now 16" in p.stdout  # the defaults still shown


def test_the_package_exports_load_on_first_use():
    import emotion

    assert set(emotion.__all__) <= set(dir(emotion))
    assert emotion.Recognizer.__module__ == "emotion.recognizer" and emotion.SAMPLE_RATE == 16000
    assert emotion.audio.load_audio is emotion.load_audio  # submodules as before
