"""Result folders on disk: written atomically, sealed by a manifest, swept and expired.

A folder is written under a hidden temporary name beside its final place, each file fsynced,
then manifest.json (every file's size and sha256) last, then the folder is renamed into place
and the parent fsynced.  A result folder without a valid manifest is therefore incomplete, and
sweep_outputs() removes it, with any temporary folder a crash left behind.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Callable

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
TMP_PREFIX = ".tmp-"
FOLDER_PATTERN = re.compile(r"\d{8}_\d{6}_[0-9a-f]{8}")  # new_folder_name(): what the sweep may touch
SWEEP_MIN_AGE_S = 300.0  # younger leftovers may still be being written by another process
RETENTION_ENV = "EMOTION_RETENTION_DAYS"  # unset or empty: results are kept for ever
DAY_S = 86400


class ResultWriteError(OSError):
    """A result could not be written (disk full, no permission...); nothing partial is left."""


def new_folder_name() -> str:
    return f"{datetime.now():%Y%m%d_%H%M%S}_{uuid.uuid4().hex[:8]}"  # 32 random bits: distinct


def fsync_dir(folder: Path) -> None:
    """Make a folder's entries (a new file, a rename) durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_file(path: Path, write: Callable[[BinaryIO], object]) -> None:
    with open(path, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())


def write_folder(root: str | os.PathLike, files: dict[str, Callable[[BinaryIO], object]]) -> Path:
    """Write `files` (name -> function writing the content to a binary file object) as one new
    folder under `root`, with manifest.json last, atomically; return the folder.

    Raises ResultWriteError (an OSError) when the disk refuses; then nothing is left behind."""
    root = Path(root)
    tmp = None
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=root))
        manifest = {}
        for name, write in files.items():
            _write_file(tmp / name, write)
            manifest[name] = {"bytes": (tmp / name).stat().st_size, "sha256": file_sha256(tmp / name)}
        text = json.dumps({"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                           "files": manifest}, indent=2).encode()
        _write_file(tmp / MANIFEST_FILE, lambda fh: fh.write(text))
        final = root / new_folder_name()
        os.rename(tmp, final)  # fails rather than replace an existing folder
        tmp = final  # until the rename is durable, a failure removes the folder
        fsync_dir(root)
        tmp = None
        return final
    except OSError as exc:
        reason = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else exc.strerror or str(exc)
        raise ResultWriteError(exc.errno, f"cannot write the result under {root}: {reason}") from exc
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def is_complete(folder: Path) -> bool:
    """True when the folder's manifest is readable and lists files that are all there, whole."""
    try:
        files = json.loads((folder / MANIFEST_FILE).read_text())["files"]
        return all((folder / name).stat().st_size == info["bytes"] for name, info in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _retention_days() -> float | None:
    value = os.environ.get(RETENTION_ENV, "").strip()
    try:
        return float(value) if value else None
    except ValueError:
        raise ValueError(f"{RETENTION_ENV} must be a number of days, not {value!r}") from None


def sweep_outputs(root: str | os.PathLike, retention_days: float | None = None,
                  min_age_s: float = SWEEP_MIN_AGE_S) -> list[Path]:
    """Start-up housekeeping of an output folder; returns what was removed.

    Removes temporary folders a crash left behind and result folders without a valid manifest
    (both only when older than `min_age_s`, so another process's write in flight is spared), and,
    when `retention_days` is given (default: $EMOTION_RETENTION_DAYS, unset = keep everything),
    result folders whose manifest is older than that.  Other folders are never touched."""
    root = Path(root)
    days = retention_days if retention_days is not None else _retention_days()
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
                expired = days is not None and now - (entry / MANIFEST_FILE).stat().st_mtime > days * DAY_S
        except OSError:  # removed meanwhile by someone else
            continue
        if expired:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    if removed:
        log.info("removed %d leftover or expired result folders under %s", len(removed), root)
    return removed
