"""Adapted model folders: a head trained on your own labels, on a released model's frozen weights.

`emotion adapt` writes one; it loads wherever a model folder does (`load_model` builds the base
network and puts this head in place of the released one).  The folder holds:

- adapter.json: `format`, `version`, `labels` (the head's classes, in order, as written in the
  training manifest), `head` (`kind` "linear", `in_features`, `classes`, `file`), `base` (the
  model whose weights it uses: `name`, `path` relative to this folder, `absolute_path`,
  `model_bytes`, `model_sha256`, `config_sha256`) and `trained` (what it was trained on: manifest
  paths and sha256, examples per label, date, seed, settings, held-out figures);
- head.pt: the head's weights, a state dict {"weight": (classes, in_features), "bias":
  (classes,)}, float32: logits = weight @ mean-of-frames + bias, as the released head;
- manifest.json: every file's size and sha256, written last (emotion.files.write_folder).

No copy of the base weights: the base is found at `path`, else `absolute_path`, else
models/<name> for a released model's name.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .config import ConfigError
from .files import file_sha256, write_folder
from .labels import Label, make_label

ADAPTER_FILE = "adapter.json"
HEAD_FILE = "head.pt"
FORMAT = "emotion2vec-adapted-head"
VERSION = 1


@dataclass(frozen=True)
class Adapter:
    folder: Path
    labels: list[Label]
    base: dict  # name, path, absolute_path, model_bytes, model_sha256, config_sha256
    head: dict  # kind, in_features, classes, file
    trained: dict  # what it was trained on

    def base_candidates(self) -> list[Path]:
        """Where the base model may be, in the order tried."""
        out = []
        for key in ("path", "absolute_path"):
            if self.base.get(key):
                out.append((self.folder / self.base[key]).resolve())
        return out


def is_adapted(folder: str | os.PathLike) -> bool:
    return (Path(folder) / ADAPTER_FILE).is_file()


def check_labels(names: list[str], where: str) -> list[str]:
    """Label names a head can have: non-empty one-line strings, each once."""
    bad = [n for n in names if not isinstance(n, str) or not n.strip() or "\n" in n or "\r" in n]
    if bad:
        raise ConfigError(f"{where}: a label must be a non-empty line of text, not {bad[0]!r}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"{where} names a label twice: {', '.join(twice)}")
    return names


def read_adapter(folder: str | os.PathLike) -> Adapter:
    """The adapter.json of an adapted folder; ConfigError naming the file when it is not one."""
    folder = Path(folder).resolve()
    path = folder / ADAPTER_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{path} is not an adapted-head description (format {FORMAT!r})")
    if data.get("version") != VERSION:
        raise ConfigError(f"{path} has format version {data.get('version')!r}; this package reads {VERSION}")
    labels, base, head = data.get("labels"), data.get("base"), data.get("head")
    if not isinstance(labels, list) or len(labels) < 2:
        raise ConfigError(f"{path} must list at least two labels")
    check_labels(labels, str(path))
    if not isinstance(base, dict) or not (base.get("path") or base.get("absolute_path")):
        raise ConfigError(f"{path} does not say where its base model is (base.path)")
    if not isinstance(head, dict) or head.get("kind") != "linear":
        raise ConfigError(f"{path}: unknown head kind {(head or {}).get('kind')!r} (this package reads 'linear')")
    return Adapter(folder, [make_label(n) for n in labels], base, head, data.get("trained") or {})


def base_record(base_dir: Path, target: Path, model_sha256: str | None = None) -> dict:
    """What adapter.json says of the base model in `base_dir`, for a folder written at `target`."""
    base_dir, target = Path(base_dir).resolve(), Path(target).resolve()
    model = base_dir / "model.pt"
    return {"name": base_dir.name, "path": os.path.relpath(base_dir, target),
            "absolute_path": str(base_dir), "model_bytes": model.stat().st_size,
            "model_sha256": model_sha256 or file_sha256(model),
            "config_sha256": file_sha256(base_dir / "config.yaml")}


def write_adapter(target: str | os.PathLike, labels: list[str], head_state: dict, base: dict,
                  trained: dict, replace: bool = False) -> Path:
    """Write an adapted folder at `target` atomically (sealed by manifest.json); return it.
    `head_state`: {"weight": (C, D), "bias": (C,)} tensors."""
    import torch

    check_labels(labels, "the labels")
    weight = head_state["weight"].detach().float().cpu().contiguous()
    bias = head_state["bias"].detach().float().cpu().contiguous()
    if weight.shape[0] != len(labels) or bias.shape != (len(labels),):
        raise ValueError(f"a head of shape {tuple(weight.shape)} does not fit {len(labels)} labels")
    description = {"format": FORMAT, "version": VERSION, "labels": list(labels),
                   "head": {"kind": "linear", "in_features": int(weight.shape[1]), "classes": len(labels),
                            "file": HEAD_FILE},
                   "base": base, "trained": trained}
    text = json.dumps(description, ensure_ascii=False, indent=2, allow_nan=False).encode("utf-8")
    files: dict[str, Callable] = {
        HEAD_FILE: lambda fh: torch.save({"weight": weight, "bias": bias}, fh),
        ADAPTER_FILE: lambda fh: fh.write(text),
    }
    return write_folder(target, files, replace=replace)
