"""File primitives: whatever this package writes for keeps goes through here, so that a kill,
a full disk or a second writer never leaves a half-written file or folder where a whole one is
expected.

- atomic_file(path): a file object on a hidden temporary name beside `path`; on success it is
  flushed, fsynced and renamed over `path`, and the folder fsynced; on failure it is removed.
- staged_folder(target): the same for a folder: fill the temporary folder it yields, and it is
  renamed into place (refusing to replace an existing folder unless asked).
- write_folder(target, files): a staged folder of files, each fsynced, sealed by manifest.json
  (every file's size and sha256) written last (seal_folder, for files written some other way);
  is_complete() checks the seal.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from .errors import EmotionError

MANIFEST_FILE = "manifest.json"
TMP_PREFIX = ".tmp-"  # every temporary name starts with this; sweeps look for it
HASH_BLOCK = 1 << 20  # bytes read at a time when hashing


class ResultWriteError(EmotionError, OSError):
    """Something could not be written (disk full, no permission...); nothing partial is left."""


def temp_beside(path: str | os.PathLike) -> Path:
    """A fresh hidden name in the same folder as `path` (so a rename is atomic)."""
    path = Path(path)
    return path.with_name(f"{TMP_PREFIX}{path.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a folder's entries (a new file, a rename) durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(HASH_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_error(exc: OSError, where: Path) -> ResultWriteError:
    reason = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else exc.strerror or str(exc)
    return ResultWriteError(exc.errno, f"cannot write under {where}: {reason}")


@contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator:
    """Write `path` all at once: yields a file object (binary, or text with mode="w"); the file
    appears under its name, whole and synced, only when the block ends without an exception."""
    path = Path(path)
    tmp = temp_beside(path)
    try:
        with open(tmp, mode.replace("w", "x"), encoding=encoding,
                  newline="" if "b" not in mode else None) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
        fsync_dir(path.parent)
    except OSError as exc:
        raise _write_error(exc, path.parent) from exc
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


@contextmanager
def staged_folder(target: str | os.PathLike, replace: bool = False) -> Iterator[Path]:
    """Yields an empty hidden folder beside `target`; when the block succeeds it is renamed to
    `target` (an existing `target` is an error unless `replace`, which removes it first). When
    the block fails, the folder is removed and its exception passes through unchanged."""
    target = Path(target)
    tmp = temp_beside(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    except OSError as exc:
        raise _write_error(exc, target.parent) from exc
    try:
        yield tmp
        try:
            if replace and target.exists():
                shutil.rmtree(target)
            os.rename(tmp, target)  # fails rather than replace an existing folder
            tmp = target  # until the rename is durable, a failure removes the folder
            fsync_dir(target.parent)
            tmp = None
        except OSError as exc:
            raise _write_error(exc, target.parent) from exc
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _write_synced(path: Path, write: Callable[[BinaryIO], object]) -> None:
    with open(path, "xb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())


def write_folder(target: str | os.PathLike, files: dict[str, Callable[[BinaryIO], object]],
                 replace: bool = False) -> Path:
    """Write `files` (name -> function writing the content to a binary file object) as the new
    folder `target`, sealed by manifest.json written last; return `target`.  An existing `target`
    is an error unless `replace` (see staged_folder).

    Raises ResultWriteError (an OSError) when the disk refuses; then nothing is left behind."""
    with staged_folder(target, replace=replace) as tmp:
        try:
            for name, write in files.items():
                _write_synced(tmp / name, write)
            seal_folder(tmp, list(files))
        except OSError as exc:
            raise _write_error(exc, Path(target).parent) from exc
    return Path(target)


def seal_folder(folder: Path, names: list[str], extra: dict | None = None) -> None:
    """Write manifest.json in `folder`, last: every named file's size and sha256 under "files",
    and `extra`'s keys beside it (a description of what the folder holds). The files must be
    written and synced already; the folder counts as complete (is_complete) from here on."""
    manifest = {name: {"bytes": (folder / name).stat().st_size, "sha256": file_sha256(folder / name)}
                for name in names}
    text = json.dumps({"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       **(extra or {}), "files": manifest}, indent=2).encode()
    _write_synced(folder / MANIFEST_FILE, lambda fh: fh.write(text))


def is_complete(folder: Path) -> bool:
    """True when the folder's manifest is readable and lists files that are all there, whole."""
    try:
        files = json.loads((folder / MANIFEST_FILE).read_text())["files"]
        return all((folder / name).stat().st_size == info["bytes"] for name, info in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
