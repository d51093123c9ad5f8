"""Housekeeping of an output folder: earlier results listed and reopened, crash leftovers and
expired results swept at start-up.

A result folder is sealed by its manifest (emotion.files.write_folder), so a folder without a
valid one is incomplete: sweep_outputs() removes it, with any temporary folder a crash left
behind. It touches nothing else: only hidden `.tmp-*` entries and folders named like results.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

from ..errors import EmotionError
from ..files import MANIFEST_FILE, TMP_PREFIX, is_complete
from ..results import FOLDER_PATTERN, RESULT_FILE

log = logging.getLogger(__name__)

SWEEP_MIN_AGE_S = 300.0  # younger leftovers may still be being written by another process
DAY_S = 86400
HISTORY_LIMIT = 200  # results listed, newest first
USERS = "users"  # the web app's per-owner folders (emotion.app.service)
SECRET_FILE = ".owner-secret"


class NoSuchResult(EmotionError, LookupError):
    """A result name that is not a saved result of this output folder."""


def owner_secret(output_root: str | os.PathLike) -> str:
    """The key browsers keep their owner token under, made once per output folder (so a browser
    keeps its history across restarts) and readable by this user only."""
    import secrets

    from ..files import atomic_file

    path = Path(output_root) / SECRET_FILE
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        secret = secrets.token_urlsafe(24)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path, "w", encoding="ascii") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(secret)
        return secret


def list_results(output_root: str | os.PathLike, limit: int = HISTORY_LIMIT) -> list[str]:
    """Names of the saved results under output_root, newest first."""
    root = Path(output_root)
    if not root.is_dir():
        return []
    names = [p.name for p in root.iterdir()
             if p.is_dir() and not p.name.startswith(".") and (p / RESULT_FILE).is_file()]
    return sorted(names, reverse=True)[:limit]


def result_folder(output_root: str | os.PathLike, name: str | None) -> Path:
    """The folder of a saved result, refusing any name that would lead outside output_root."""
    if not name:
        raise NoSuchResult("choose a result first")
    root = Path(output_root).resolve()
    folder = (root / name).resolve()
    if folder.parent != root or not (folder / RESULT_FILE).is_file():
        raise NoSuchResult(f"{name}: no such result")
    return folder


def read_result(output_root: str | os.PathLike, name: str | None) -> tuple[dict, Path]:
    """A saved result's JSON and its folder."""
    folder = result_folder(output_root, name)
    try:
        return json.loads((folder / RESULT_FILE).read_text(encoding="utf-8")), folder
    except (OSError, ValueError):
        raise NoSuchResult(f"{name}: result.json cannot be read") from None


def sweep_outputs(root: str | os.PathLike, retention_days: float | None = None,
                  min_age_s: float = SWEEP_MIN_AGE_S) -> list[Path]:
    """Start-up housekeeping of an output folder and of each web user's folder in it
    (users/<owner>/); returns what was removed.

    Removes temporary folders a crash left behind and result folders without a valid manifest
    (both only when older than `min_age_s`, so another process's write in flight is spared), and,
    when `retention_days` is given (None: keep everything), result folders whose manifest is
    older than that."""
    root = Path(root)
    users = root / USERS
    folders = [root] + (sorted(p for p in users.iterdir() if p.is_dir() and not p.is_symlink())
                        if users.is_dir() else [])
    removed = [gone for folder in folders for gone in _sweep(folder, retention_days, min_age_s)]
    if removed:
        log.info("removed %d leftover or expired result folders under %s", len(removed), root)
    return removed


def _sweep(root: Path, retention_days: float | None, min_age_s: float) -> list[Path]:
    now = time.time()
    removed = []
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        ours = entry.name.startswith(TMP_PREFIX) or FOLDER_PATTERN.fullmatch(entry.name)
        if not ours or not entry.is_dir() or entry.is_symlink():
            continue
        try:
            age = now - entry.stat().st_mtime
            if entry.name.startswith(TMP_PREFIX) or not is_complete(entry):
                expired = age >= min_age_s
            else:
                expired = retention_days is not None and \
                    now - (entry / MANIFEST_FILE).stat().st_mtime > retention_days * DAY_S
        except OSError:  # removed meanwhile by someone else
            continue
        if expired:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed
