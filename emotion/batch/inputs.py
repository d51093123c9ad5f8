"""What a batch job reads: files, folders (searched recursively for audio) and manifests.

A manifest is a CSV or JSONL file with a `path` column and optional `id` and `label` columns;
relative paths are taken from the manifest's folder.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..audio import find_audio
from ..errors import EmotionError

MANIFEST_EXTENSIONS = (".csv", ".jsonl")


class ManifestError(EmotionError, ValueError):
    """A manifest that cannot be read: the message names the file and the line."""


@dataclass(frozen=True)
class BatchItem:
    """One input file of a job."""

    path: str  # absolute
    id: str  # the path as given, unless a manifest names an id
    label: str | None = None  # the true emotion, from a manifest


def _manifest_rows(path: Path) -> list[tuple[int, dict]]:
    if path.suffix.lower() == ".jsonl":
        rows = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append((n, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise ManifestError(f"{path}, line {n}: not JSON ({exc.msg})") from None
        return rows
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return [(n, row) for n, row in enumerate(csv.DictReader(fh), 2)]


def read_manifest(path: str | os.PathLike) -> list[BatchItem]:
    """Items of a CSV or JSONL manifest: a `path` column, optional `id` and `label` columns."""
    path = Path(path)
    items = []
    for n, row in _manifest_rows(path):
        row = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
        if "path" not in row:
            raise ManifestError(f"{path}, line {n}: no 'path' column (a manifest needs path; id and "
                                "label are optional)")
        given = str(row["path"] or "").strip()
        if not given:
            raise ManifestError(f"{path}, line {n}: the path is empty")
        full = Path(given).expanduser()
        if not full.is_absolute():
            full = path.parent / full
        label = row.get("label")
        label = None if label is None or str(label).strip() == "" else str(label).strip()
        item_id = str(row.get("id") or "").strip() or given
        items.append(BatchItem(os.path.abspath(full), item_id, label))
    return items


@dataclass
class Inputs:
    """What a job reads, and the files its folder search passed over (not audio by extension)."""

    items: list[BatchItem]
    skipped: list[Path]

    def skipped_note(self, most: int = 5) -> str | None:
        """"skipped 3 files that are not audio: a.txt, b.jpg, c.pdf", or None."""
        if not self.skipped:
            return None
        names = ", ".join(str(p) for p in self.skipped[:most])
        more = f" and {len(self.skipped) - most} more" if len(self.skipped) > most else ""
        count = f"{len(self.skipped)} file{'s' if len(self.skipped) > 1 else ''}"
        return f"skipped {count} that {'are' if len(self.skipped) > 1 else 'is'} not audio by extension: {names}{more}"


def gather_inputs(inputs: Iterable[str | os.PathLike], manifests: bool = True) -> list[BatchItem]:
    """The items of gather(): files, folders and manifests."""
    return gather(inputs, manifests).items


def gather(inputs: Iterable[str | os.PathLike], manifests: bool = True, every_file: bool = False) -> Inputs:
    """Files as given; folders searched recursively for audio and video extensions (every file
    with every_file), sorted, what was passed over kept in `skipped`; .csv and .jsonl files read
    as manifests (unless manifests=False).  An input named twice is kept once; an input that
    does not exist is kept as a file, which fails as a bad file does ("no such file"), costing
    its own row, not the run."""
    inputs = list(inputs)
    items: list[BatchItem] = []
    skipped: list[Path] = []
    for given in inputs:
        p = Path(given)
        if p.is_dir():
            search = find_audio(p, every_file)
            items.extend(BatchItem(os.path.abspath(f), str(f)) for f in search.found)
            skipped.extend(search.skipped)
        elif manifests and p.suffix.lower() in MANIFEST_EXTENSIONS and p.is_file():
            items.extend(read_manifest(p))
        else:
            items.append(BatchItem(os.path.abspath(p), str(p)))
    seen: set[tuple[str, str]] = set()
    unique = []
    for item in items:
        if (item.path, item.id) not in seen:
            seen.add((item.path, item.id))
            unique.append(item)
    return Inputs(unique, skipped)
