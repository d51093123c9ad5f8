"""The shape the code promises (README, "How the code is laid out"): layers that import only
downwards, with no cycle (function-level imports included), no use of another module's or
object's private names, the environment read in one place, and an installable package with an
`emotion` command."""

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "emotion"
# Where the environment may be read: the settings object, the hub libraries' own endpoint
# variables beside the calls into those libraries, and the C library's own MALLOC_* variables
# beside the mallopt calls (memory.py leaves a setting the user made to glibc). app/__init__.py
# only sets gradio's analytics off.
ENV_READERS = {"settings.py", "download.py", "memory.py"}
ENV_WRITERS = {"app/__init__.py", "batch/distributed.py"}
# Data flows one way: each module imports only from its own layer or those below it.
LAYERS = {
    0: {"defaults", "memory", "errors", "labels", "config", "files", "resample", "decode", "audio", "timeline",
        "adapter", "isolation"},
    1: {"network", "model", "runner", "locks", "engine", "torch_engine", "onnx_engine", "export"},  # the network
    2: {"sources", "scheduler", "recognizer", "results", "streaming", "verify", "download", "settings"},  # pipeline
    3: {"batch", "speakers", "adapt"},  # jobs over many files; who spoke when; your own labels
    4: {"app"},  # the command line and the web app
    5: {"__init__", "__main__"},  # the package's face and its `python -m` entry
}
LAYER_OF = {name: layer for layer, names in LAYERS.items() for name in names}


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    """emotion/app/cli.py -> app.cli; emotion/__init__.py -> __init__."""
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" and len(rel.parts) > 1 else rel.parts
    return ".".join(parts)


def layer(name: str) -> int:
    return LAYER_OF[name.split(".")[0]]


def imports_of(path: Path) -> set[str]:
    """The package's modules that `path` imports anywhere in it (module or function level)."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" and len(here) > 0 and here != ["__init__"] else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = base + (node.module.split(".") if node.module else [])
            elif (node.module or "").split(".")[0] == "emotion":
                target = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:  # `from . import cli` names a module; `from .x import y` a name in x
                sub = ".".join(target + [alias.name])
                found.add(sub if (PACKAGE / Path(*target, alias.name)).with_suffix(".py").exists() else ".".join(target))
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".", 1)[1] for a in node.names if a.name.startswith("emotion.")}
    return {f for f in found if f} - {module_name(path)}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in modules()}


def test_every_module_has_a_layer():
    assert not [m for m in graph() if m.split(".")[0] not in LAYER_OF]


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    return [f"{m} (layer {layer(m)}) imports {t} (layer {layer(t)})"
            for m, targets in sorted(edges.items()) for t in sorted(targets) if layer(t) > layer(m)]


def import_cycles(edges: dict[str, set[str]]) -> list[str]:
    cycles, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    return cycles


def private_uses(text: str) -> list[str]:
    """`x._name` on anything but self or cls, and `from m import _name`, with their lines."""
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
        if isinstance(node, ast.ImportFrom):
            found += [f"{node.lineno}: import {a.name}" for a in node.names
                      if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def test_modules_import_only_their_own_layer_or_those_below():
    assert not upward_imports(graph())


def test_no_import_cycles_not_even_through_function_level_imports():
    assert not import_cycles(graph())


def test_no_module_uses_another_s_private_names():
    found = [f"{p.relative_to(ROOT)}:{use}" for p in modules() for use in private_uses(p.read_text(encoding="utf-8"))]
    assert not found, found


def test_the_checks_can_fail():
    """Each check finds what it is for, on edges and code made to break it: the engine importing
    the command line, a cycle closed by an import inside a function, a private name called."""
    edges = graph()
    edges["engine"] = edges["engine"] | {"app.cli"}
    assert upward_imports(edges) == ["engine (layer 1) imports app.cli (layer 4)"]
    edges = graph()
    edges["audio"] = edges["audio"] | {"decode"}
    edges["decode"] = edges["decode"] | {"audio"}  # as `def f(): from .audio import x` in decode.py would add
    assert import_cycles(edges)
    code = "def f(rec):\n    return rec._head(1) + self._ok()\n\nfrom .runner import _Graph\n"
    assert sorted(private_uses(code)) == ["2: rec._head", "4: import _Graph"]


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
    assert (site / "emotion" / "app" / "live_recorder.js").is_file()  # the Live tab's recorder, read on import
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
