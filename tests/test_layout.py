"""The shape the code promises (README, "How the code is laid out"): small modules and functions,
the environment read in one place, and an installable package with an `emotion` command."""

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "emotion"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
# Where the environment may be read: the settings object, the hub libraries' own endpoint
# variables beside the calls into those libraries, and the C library's own MALLOC_* variables
# beside the mallopt calls (memory.py leaves a setting the user made to glibc). app/__init__.py
# only sets gradio's analytics off.
ENV_READERS = {"app/settings.py", "hub.py", "memory.py"}
ENV_WRITERS = {"app/__init__.py", "batch/distributed.py"}


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_modules_and_functions_are_small():
    too_long = []
    for path in modules():
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length} lines")
    assert not too_long, too_long


def test_the_environment_is_read_only_by_the_settings():
    found = []
    for path in modules():
        rel = path.relative_to(PACKAGE).as_posix()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if "os.environ" in code or "os.getenv" in code:
                writes = ".setdefault(" in code
                allowed = ENV_WRITERS if writes else ENV_READERS
                if rel not in allowed:
                    found.append(f"{rel}:{n}: {line.strip()}")
    assert not found, found


def test_engine_does_not_import_the_app_or_batch_layers():
    """Data flows one way: the engine (emotion/*.py) never imports what stands on it (only
    __main__.py, an entry point, calls the command line)."""
    found = []
    for path in set(PACKAGE.glob("*.py")) - {PACKAGE / "__main__.py"}:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and (node.module or "").split(".")[0] in (
                    "app", "batch"):
                found.append(f"{path.name}: from .{node.module}")
    assert not found, found


def test_installed_console_script(tmp_path):
    """`pip install .` (not editable, into a fresh prefix) gives a working `emotion` command."""
    source, prefix = tmp_path / "source", tmp_path / "prefix"  # a copy: the build leaves nothing in the checkout
    shutil.copytree(ROOT / "emotion", source / "emotion", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    # --ignore-installed: without it pip removes the checkout's own editable install first
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--ignore-installed", "--no-index", "--disable-pip-version-check", "--prefix", str(prefix),
                    str(source)],
                   check=True, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(prefix), "platbase": str(prefix)}))
    script = prefix / "bin" / "emotion"
    assert script.is_file() and (site / "emotion" / "app" / "cli.py").is_file()
    assert (site / "emotion" / "app" / "text.json").is_file()  # package data travels too
    env = {**os.environ, "PYTHONPATH": str(site)}
    p = subprocess.run([str(script), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "recognize" in p.stdout and "batch" in p.stdout and "verify" in p.stdout
    where = subprocess.run([sys.executable, "-c", "import emotion; print(emotion.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=120).stdout.strip()
    assert Path(where).is_relative_to(site), where  # the installed copy, not the checkout
    p = subprocess.run([str(script), "recognize", "nowhere.wav", "--model-dir", str(tmp_path / "none")],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
