"""Errors a user can fix end in one message and exit code 2 at every entry point, never a
traceback; each keeps its old built-in base so callers' except clauses still work."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from emotion import AudioError, BusyError, EmotionError
from emotion.batch.inputs import ManifestError
from emotion.batch.sinks import SinkError
from emotion.config import ConfigError
from emotion.errors import SettingsError
from emotion.files import ResultWriteError
from emotion.model import CheckpointError, ModelNotFoundError

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("cls, old_base", [
    (AudioError, ValueError), (ConfigError, ValueError), (SettingsError, ValueError),
    (ManifestError, ValueError), (SinkError, ValueError), (ModelNotFoundError, RuntimeError),
    (CheckpointError, RuntimeError), (BusyError, RuntimeError), (ResultWriteError, OSError),
])
def test_one_base_and_the_old_one(cls, old_base):
    assert issubclass(cls, EmotionError) and issubclass(cls, old_base)


def run(args: list, entry: str = "cli") -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "emotion"] if entry == "cli" else [sys.executable, "app.py"]
    env = {**os.environ, "EMOTION_OFFLINE": "1"}
    return subprocess.run([*command, *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def assert_one_line(p: subprocess.CompletedProcess, *words: str) -> None:
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip() and " INFO " not in line]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def broken_model(tiny_model, tmp_path):
    def make(name: str, content: bytes) -> Path:
        folder = tmp_path / "model"
        shutil.copytree(tiny_model, folder)
        (folder / name).write_bytes(content)
        return folder

    return make


@pytest.mark.parametrize("entry", ["cli", "app"])
def test_broken_config_yaml(broken_model, audio_dir, entry):
    folder = broken_model("config.yaml", b"model_conf: [unclosed\n  : : :\n")
    args = ["recognize", audio_dir / "mono_16000.wav"] if entry == "cli" else []
    p = run([*args, "--model-dir", folder], entry)
    assert_one_line(p, "config.yaml", "not valid YAML")


@pytest.mark.parametrize("content, words", [
    ("生气/angry\n开心/happy\n生气/angry\n".encode(), ["tokens.txt", "names a class twice: angry"]),
    (b"\xff\xfe\x00bad", ["tokens.txt", "not UTF-8"]),
    (b"\n\n", ["tokens.txt", "lists no classes"]),
])
def test_bad_tokens_txt(broken_model, audio_dir, content, words):
    folder = broken_model("tokens.txt", content)
    assert_one_line(run(["recognize", audio_dir / "mono_16000.wav", "--model-dir", folder]), *words)


@pytest.mark.parametrize("entry", ["cli", "app"])
def test_int8_on_cuda(tiny_model, audio_dir, entry):
    args = ["recognize", audio_dir / "mono_16000.wav"] if entry == "cli" else []
    p = run([*args, "--model-dir", tiny_model, "--dtype", "int8", "--device", "cuda"], entry)
    assert_one_line(p, "int8 runs on the CPU only")


def test_damaged_model_pt(broken_model, audio_dir):
    folder = broken_model("model.pt", b"PK\x03\x04 not a zip at all" * 10)
    assert_one_line(run(["recognize", audio_dir / "mono_16000.wav", "--model-dir", folder]),
                    "model.pt cannot be read as PyTorch weights")


def test_malformed_setting_in_the_environment(tiny_model, audio_dir):
    env = {**os.environ, "EMOTION_MAX_DURATION_S": "half an hour"}
    p = subprocess.run([sys.executable, "-m", "emotion", "recognize", str(audio_dir / "mono_16000.wav"),
                        "--model-dir", str(tiny_model)], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    assert_one_line(p, "EMOTION_MAX_DURATION_S must be a number")
