"""Where batch rows and embeddings go: files that a kill at any moment leaves readable.

- CSV and JSONL: rows are appended, flushed and fsynced file by file.  A kill can leave at most
  a partial last line; opening the file again cuts it off (that file is then done again).
- Parquet cannot be appended to, so rows are journalled to a hidden JSONL file beside it
  (`.NAME.parquet.journal.jsonl`), exactly as above, and the journal is converted into the Parquet
  file when the run ends (also on Ctrl-C): written to a temporary file, synced and renamed over the
  old one, then the journal is removed.  After a kill the journal holds every finished row and the
  Parquet file, if any, is the one from the last run that ended; the next run picks up from the
  journal.
- Embeddings: one `.npy` per file in a folder (written to a temporary name and renamed), or one
  `.npz` archive (`embeddings` (N, D) float32, `path` and `id` (N,) naming each row's file), built
  from per-file parts in a hidden folder beside it when the run ends and renamed into place.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
import shutil
from pathlib import Path

import numpy as np

from ..errors import EmotionError
from ..files import atomic_file, fsync_dir

log = logging.getLogger(__name__)

FORMATS = (".csv", ".jsonl", ".parquet")


class SinkError(EmotionError, ValueError):
    """An output file that cannot be resumed (other columns, another format)."""


def _cut_partial_line(path: Path) -> int:
    """Truncate a text file after its last newline; return the bytes removed."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as fh:
        block = 1 << 16
        end = size
        while end > 0:
            start = max(0, end - block)
            fh.seek(start)
            data = fh.read(end - start)
            cut = data.rfind(b"\n")
            if cut >= 0:
                keep = start + cut + 1
                break
            end = start
        else:
            keep = 0
        if keep < size:
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
    if keep < size:
        log.warning("%s: removed a partial last line (%d bytes) left by an interrupted run", path, size - keep)
    return size - keep


def _other_columns(path: Path, found: list[str], wanted: list[str]) -> SinkError:
    """The refusal of an output file whose columns are not this run's, naming only the difference."""
    extra = [c for c in found if c not in wanted]
    lacking = [c for c in wanted if c not in found]
    if extra == ["embedding"] and not lacking:
        why = "it has an embedding column: resume with --embeddings and the folder it was written with"
    elif lacking == ["embedding"] and not extra:
        why = "it has no embedding column: resume without --embeddings"
    else:
        parts = [f"columns this run does not write: {', '.join(extra)}" if extra else "",
                 f"lacks columns this run writes: {', '.join(lacking)}" if lacking else ""]
        why = "; ".join(p for p in parts if p) or "its columns are in another order"
    return SinkError(f"{path} cannot be resumed by this run ({why}); or choose another output file")


def _parse(value: str, kind: type):
    if value == "":
        return None if kind is not str else ""
    return kind(value)


class LineSink:
    """Rows appended to a CSV or JSONL file; `schema` maps column names to int, float or str."""

    def __init__(self, path: str | os.PathLike, schema: dict[str, type]):
        self.path = Path(path)
        self.schema = schema
        self.columns = list(schema)
        self.is_csv = self.path.suffix.lower() == ".csv"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            _cut_partial_line(self.path)
        self._fh = None

    def read(self) -> list[dict]:
        """The rows already in the file (empty when there is none)."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return []
        with open(self.path, encoding="utf-8", newline="") as fh:
            if self.is_csv:
                reader = csv.reader(fh)
                header = next(reader, None)
                if header != self.columns:
                    raise _other_columns(self.path, header or [], self.columns)
                return [{c: _parse(v, self.schema[c]) for c, v in zip(header, line)} for line in reader]
            rows = [json.loads(line) for line in fh if line.strip()]
        if rows and list(rows[0]) != self.columns:
            raise _other_columns(self.path, list(rows[0]), self.columns)
        return rows

    def _encode(self, rows: list[dict]) -> str:
        if self.is_csv:
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\n")
            for row in rows:
                writer.writerow(["" if row.get(c) is None else row[c] for c in self.columns])
            return buf.getvalue()
        return "".join(json.dumps({c: row.get(c) for c in self.columns}, ensure_ascii=False,
                                  allow_nan=False) + "\n" for row in rows)

    def _header(self) -> str:
        return self._encode([dict(zip(self.columns, self.columns))]) if self.is_csv else ""

    def rewrite(self, rows: list[dict]) -> None:
        """Replace the file's rows atomically (used when a resumed run drops stale rows)."""
        self.close()
        with atomic_file(self.path, "w", encoding="utf-8") as fh:
            fh.write(self._header() + self._encode(rows))

    def append(self, rows: list[dict]) -> None:
        """Append rows and make them durable before returning."""
        if self._fh is None:
            new = not self.path.exists() or self.path.stat().st_size == 0
            self._fh = open(self.path, "a", encoding="utf-8", newline="")
            if new:
                self._fh.write(self._header())
        self._fh.write(self._encode(rows))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def finish(self) -> None:
        self.close()


class ParquetSink(LineSink):
    """Rows journalled to a hidden JSONL file, converted to Parquet when the run ends."""

    def __init__(self, path: str | os.PathLike, schema: dict[str, type]):
        try:
            import pyarrow  # noqa: F401
        except ImportError as exc:
            raise SinkError("Parquet output needs the pyarrow package (pip install pyarrow)") from exc
        self.parquet = Path(path)
        journal = self.parquet.with_name(f".{self.parquet.name}.journal.jsonl")
        super().__init__(journal, schema)
        if not journal.exists() and self.parquet.exists():  # seed the journal from a finished run
            self.rewrite(read_rows(self.parquet))

    def finish(self) -> None:
        """Write the Parquet file from the journal, atomically, then drop the journal."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.close()
        rows = self.read()
        kinds = {int: pa.int64(), float: pa.float64(), str: pa.string()}
        schema = pa.schema([(c, kinds[k]) for c, k in self.schema.items()])
        table = pa.Table.from_pylist(rows, schema=schema)
        with atomic_file(self.parquet) as fh:
            pq.write_table(table, fh)
        self.path.unlink()


def open_sink(path: str | os.PathLike, schema: dict[str, type]) -> LineSink:
    """The writer for an output file, chosen by its extension (.csv, .jsonl, .parquet)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".parquet":
        return ParquetSink(path, schema)
    if suffix in (".csv", ".jsonl"):
        return LineSink(path, schema)
    raise SinkError(f"{path}: the output must end in one of {', '.join(FORMATS)}")


def read_rows(path: str | os.PathLike) -> list[dict]:
    """All rows of a batch output file of any of the three formats (a partial last line of CSV or
    JSONL is skipped, not removed)."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    if path.suffix.lower() == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return list(csv.DictReader(io.StringIO(text)))


# -- embeddings ----------------------------------------------------------------------------------


def embedding_name(path: str, item_id: str) -> str:
    """A file name for one input's embedding: readable, and distinct for distinct (path, id)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem)[:60] or "clip"
    digest = hashlib.sha1(f"{path}\0{item_id}".encode("utf-8")).hexdigest()[:12]
    return f"{stem}_{digest}.npy"


def _save_npy(path: Path, vector: np.ndarray) -> None:
    with atomic_file(path) as fh:
        np.save(fh, np.asarray(vector, dtype=np.float32))


class EmbeddingFolder:
    """One `.npy` per input file; the row's `embedding` column names it."""

    names_in_rows = True

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def has(self, path: str, item_id: str) -> bool:
        return (self.folder / embedding_name(path, item_id)).is_file()

    def put(self, path: str, item_id: str, vector: np.ndarray) -> str:
        name = embedding_name(path, item_id)
        _save_npy(self.folder / name, vector)
        return name

    def finish(self, rows: list[dict]) -> None:
        fsync_dir(self.folder)


class EmbeddingArchive:
    """One `.npz` with `embeddings` (N, D), `path` (N,) and `id` (N,), in the table's order."""

    names_in_rows = False

    def __init__(self, archive: str | os.PathLike):
        self.archive = Path(archive)
        self.parts = self.archive.with_name(f".{self.archive.name}.parts")
        self.parts.mkdir(parents=True, exist_ok=True)
        self._old: dict[tuple[str, str], int] = {}
        if self.archive.exists():
            with np.load(self.archive) as data:
                self._old = {(p, i): n for n, (p, i) in enumerate(zip(data["path"], data["id"]))}

    def has(self, path: str, item_id: str) -> bool:
        return (path, item_id) in self._old or (self.parts / embedding_name(path, item_id)).is_file()

    def put(self, path: str, item_id: str, vector: np.ndarray) -> str:
        _save_npy(self.parts / embedding_name(path, item_id), vector)
        return ""

    def finish(self, rows: list[dict]) -> None:
        """Pack the vectors of the given rows (in order) into the archive, atomically."""
        old = np.load(self.archive)["embeddings"] if self._old else None
        vectors, paths, ids = [], [], []
        for row in rows:
            key = (row["path"], row["id"])
            part = self.parts / embedding_name(*key)
            if part.is_file():
                vectors.append(np.load(part))
            elif key in self._old:
                vectors.append(old[self._old[key]])
            else:
                continue
            paths.append(key[0])
            ids.append(key[1])
        dim = vectors[0].shape[-1] if vectors else 0
        with atomic_file(self.archive) as fh:
            np.savez(fh, embeddings=np.stack(vectors) if vectors else np.zeros((0, dim), np.float32),
                     path=np.array(paths, dtype=str), id=np.array(ids, dtype=str))
        self._old = {k: n for n, k in enumerate(zip(paths, ids))}
        shutil.rmtree(self.parts, ignore_errors=True)


def open_embeddings(target: str | os.PathLike | None):
    """A folder of .npy files, or an .npz archive when the target ends in .npz; None for none."""
    if target is None:
        return None
    return EmbeddingArchive(target) if str(target).lower().endswith(".npz") else EmbeddingFolder(target)
