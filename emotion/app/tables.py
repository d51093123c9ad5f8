"""The web app's batch table: rows in the `emotion batch` shape (so both CSVs have the same
columns), the files saved with them, and the table the page shows (the emotion with emoji and
confidence, the file, the runners-up or the reason it failed)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np

from ..errors import AudioError
from ..batch.job import file_stat
from ..batch.rows import result_row, row_schema
from ..batch.sinks import embedding_name
from ..labels import display_name
from .render import html_table
from .text import EN, t

BATCH_TABLE = "batch_results.csv"
BATCH_EMBEDDINGS = "embeddings.zip"
DETAIL_SCORES = 3  # runners-up the table shows beside the emotion (the CSV has every score)


def batch_rows(paths: list[str], results: list, keys: list[str], embedding: bool = False) -> list[dict]:
    """One `emotion batch` row per uploaded file; id and path are the file's name (the upload's
    temporary path means nothing to the user). With `embedding`, an analysed file's row names
    its entry of the embeddings zip, by `emotion batch --embeddings`'s rule (the stem and a hash
    of the upload's path and name), so files of one stem (a.m4a, a.opus) keep apart."""
    rows = []
    for path, res in zip(paths, results):
        name = Path(path).name
        size, mtime = file_stat(path)
        failed = isinstance(res, AudioError)
        extra = {"embedding": None if failed else embedding_name(str(path), name)} if embedding else {}
        sha = None if failed else res.input.sha256
        rows.append(result_row(res, name, id=name, label=None, size=size, mtime_ns=mtime, sha256=sha, **extra))
    return rows


def _write_csv(fh: BinaryIO, rows: list[dict], keys: list[str], embedding: bool) -> None:
    import csv

    text = io.StringIO()
    columns = list(row_schema(keys, embedding_names=embedding))
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
    fh.write(text.getvalue().encode("utf-8"))


def _write_embeddings_zip(fh: BinaryIO, embeddings: list[tuple[str, np.ndarray]]) -> None:
    """One .npy per analysed file, named as its row's `embedding` column says (the same upload
    twice is the same entry, written once)."""
    written: set[str] = set()
    with zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, emb in embeddings:
            if name in written:
                continue
            written.add(name)
            npy = io.BytesIO()
            np.save(npy, np.asarray(emb, dtype=np.float32))
            zf.writestr(name, npy.getvalue())


def batch_files(rows: list[dict], keys: list[str], results: list,
                embedding: bool) -> dict[str, Callable[[BinaryIO], object]]:
    """The files of a batch's result folder: name -> writer. With `embedding` the rows must come
    from batch_rows(..., embedding=True): their `embedding` column names the zip's entries."""
    files = {BATCH_TABLE: lambda fh: _write_csv(fh, rows, keys, embedding)}
    embeddings = [(row["embedding"], res.embedding) for row, res in zip(rows, results)
                  if embedding and not isinstance(res, AudioError)]
    if embeddings:
        files[BATCH_EMBEDDINGS] = lambda fh: _write_embeddings_zip(fh, embeddings)
    return files


def display_table(rows: list[dict], keys: list[str], lang: str = EN, reasons: list[str | None] | None = None,
                  notes: list[str | None] | None = None) -> str:
    """The page's table (render.html_table), made for reading on a phone as on a desktop: the
    emotion (emoji, names and confidence), the file, and one wrapped column of details: the
    runners-up in percent, or the reason a file failed (`reasons`: each row's, in the page's
    language; else the row's own), or the warnings (`notes`: each row's, in the page's language;
    else the row's own). Every score is in the CSV."""
    out = []
    for i, row in enumerate(rows):
        error = (reasons[i] if reasons else None) or row.get("error")
        warnings = notes[i] if notes else row.get("warnings")
        if error:
            out.append([f"⚠️ {t('failed_short', lang)}", row["id"], error])
            continue
        if row.get("emotion") is None:  # silent: nothing to judge
            out.append([f"🔇 {t('silence', lang)}", row["id"], warnings or ""])
            continue
        rest = sorted((k for k in keys if k != row["emotion"] and row.get(k) is not None),
                      key=lambda k: -float(row[k]))[:DETAIL_SCORES]
        details = " · ".join(f"{display_name(k)} {100 * float(row[k]):.1f}%" for k in rest)
        if warnings:
            details += f" · ⚠️ {warnings}"
        out.append([f"{display_name(row['emotion'])} · {100 * float(row['confidence']):.1f}%", row["id"], details])
    columns = [t("col_result", lang), t("col_file", lang), t("col_details", lang)]
    return html_table(t("batch_table", lang), columns, out)
