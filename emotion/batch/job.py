"""Batch jobs: many files in, one table out, resumable.

    items = gather_inputs(["calls/", "labelled.csv"])      # emotion.batch.inputs
    summary = run_job(items, open_sink("out.csv", row_schema(keys)), local_scorer(recognizer))

Decoding runs on the one scheduler (emotion.scheduler), overlapped with the model, which gets the
decoded sources in groups and batches their windows by length; a long file is streamed.

Every input gives one summary row (and, with a SpeechDetector, one row per speech span before it);
a file that cannot be analysed gives a row whose `error` column holds the reason.  Rows are
appended as files finish.  A rerun with the same output skips inputs whose summary row is there
with the same size and modification time (or, with use_hash, the same content), so an interrupted
job loses nothing and a finished one reruns in seconds.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..audio import SAMPLE_RATE, Audio
from ..errors import AudioError
from ..files import file_sha256
from ..resample import warm_kernels
from ..results import EmotionResult
from ..scheduler import schedule
from ..sources import AudioOpener, ClipSource, Source
from ..timeline import Segment
from .inputs import BatchItem
from .rows import result_row, segment_row

log = logging.getLogger(__name__)

DECODE_WORKERS = 2  # threads decoding ahead of the model
# Decoded files handed to the model at a time, in model batches: the model batches them by length,
# and rows are written (and progress shown) group by group, so a kill loses at most one group.
GROUP_BATCHES = 4
GROUP_FILES = 4  # at least


@dataclass
class Scored:
    """What one input produced: its rows (segment rows first, the summary row last)."""

    item: BatchItem
    rows: list[dict]
    embedding: np.ndarray | None = None
    audio_s: float = 0.0


@dataclass
class BatchSummary:
    total: int  # inputs of this job
    skipped: int  # already in the output
    processed: int  # taken on by this run (failures included)
    failed_now: int = 0  # of which could not be analysed
    failed: list[tuple[str, str]] = field(default_factory=list)  # (id, reason) over the whole job
    rows: list[dict] = field(default_factory=list)  # the job's summary rows (one per channel), in input order
    seconds: float = 0.0
    audio_s: float = 0.0  # audio analysed by this run


def file_stat(path: str) -> tuple[int | None, int | None]:
    try:
        st = os.stat(path)
    except OSError:
        return None, None
    return st.st_size, st.st_mtime_ns


def _sha256(path: str) -> str | None:
    try:
        return file_sha256(Path(path))
    except OSError:
        return None


# -- decoding and scoring (the local and the Ray paths alike) -------------------------------------


@dataclass
class Decoded:
    item: BatchItem
    size: int | None
    mtime_ns: int | None
    source: Source | None = None  # whole or streamed (emotion.sources)
    error: str | None = None
    spans: list[list[tuple[float, float]]] = field(default_factory=list)  # speech, per channel
    sha256: str | None = None


def decode_item(item: BatchItem, opener: AudioOpener, detector=None, use_hash: bool = False,
                channels: str = "mix") -> Decoded:
    """Open one input as a Source (decoded whole, or a stream for a long file) and, when a
    SpeechDetector is given, find the speech in a source held whole; errors become reasons."""
    size, mtime = file_stat(item.path)
    out = Decoded(item, size, mtime)
    try:
        out.source = opener(item.path, channels)
        out.sha256 = out.source.sha256
        if detector is not None and out.source.audio is not None:
            out.spans = [detector.speech_spans(clip) for clip in out.source.audio]
    except AudioError as exc:
        out.error = exc.reason
    except Exception as exc:  # a decoder bug must cost one file, not the job
        log.debug("decoding %s failed", item.path, exc_info=True)
        out.error = f"cannot be decoded ({type(exc).__name__}: {exc})"
    if out.error is not None and use_hash:
        out.sha256 = _sha256(item.path)
    return out


def _clean(reason: str) -> str:
    return " ".join(str(reason).split())  # one line: a row never spans lines


def _base(item: BatchItem, size: int | None, mtime_ns: int | None, sha256: str | None) -> dict:
    return {"id": item.id, "label": item.label, "size": size, "mtime_ns": mtime_ns, "sha256": sha256}


def failed_row(item: BatchItem, reason: str, sha256: str | None = None) -> Scored:
    """The row of an input that could not be analysed."""
    size, mtime = file_stat(item.path)
    row = result_row(AudioError(Path(item.path).name, _clean(reason)), item.path, **_base(item, size, mtime, sha256))
    return Scored(item, [row])


def _rows_for(d: Decoded, results: list[EmotionResult], parts: list[list[EmotionResult]]) -> Scored:
    """Rows of one input: per channel, its speech segments' rows then its own row."""
    base = _base(d.item, d.size, d.mtime_ns, d.sha256)
    rows = []
    for whole, spans, scored in zip(results, d.spans or [[]] * len(results), parts):
        for n, ((start, end), res) in enumerate(zip(spans, scored)):
            seg = Segment(round(start, 4), round(end, 4), res.emotion, res.confidence, res.scores)
            rows.append({"path": d.item.path, **base, "channel": res.input.channel, "segment": n,
                         **segment_row(seg), "duration_s": round(end - start, 4), "error": None})
        rows.append(result_row(whole, d.item.path, **base, start=0.0, end=whole.input.duration_s))
    return Scored(d.item, rows, results[0].embedding, results[0].input.duration_s)


def _span_clips(d: Decoded) -> list[list[Audio]]:
    """Per channel, one clip per speech span."""
    s = d.source
    out = []
    for samples, channel, spans in zip(s.audio or [], s.names, d.spans):
        out.append([Audio(samples[round(a * SAMPLE_RATE):round(b * SAMPLE_RATE)], f"{s.name}[{a:.2f}-{b:.2f}]",
                          s.source_rate, s.channels, channel=channel) for a, b in spans])
    return out or [[] for _ in s.names]


def score_decoded(recognizer, decoded: list[Decoded], segment: bool = False) -> list[Scored]:
    """Rows for decoded inputs: every source and speech span analysed together (batched by
    length; a streamed source window by window)."""
    ok = [d for d in decoded if d.error is None]
    spans = [_span_clips(d) for d in ok]
    flat = [c for per_channel in spans for clips in per_channel for c in clips]
    analysed = recognizer.analyse_sources([d.source for d in ok] + [ClipSource([c]) for c in flat])
    results, span_results = analysed[:len(ok)], [r for [r] in analysed[len(ok):]]
    parts, at = [], 0
    for per_channel in spans:
        mine = []
        for clips in per_channel:
            mine.append(span_results[at:at + len(clips)])
            at += len(clips)
        parts.append(mine)
    by_id = {id(d): (r, p) for d, r, p in zip(ok, results, parts)}
    out = []
    for d in decoded:
        if d.error is not None:
            out.append(failed_row(d.item, d.error, d.sha256))
            continue
        res, part = by_id[id(d)]
        if segment and d.source.streamed:
            for r in res:
                r.warnings.append("no speech segments: the file was analysed as a stream")
        out.append(_rows_for(d, res, part))
    return out


def local_scorer(recognizer, detector=None, workers: int = DECODE_WORKERS, group: int | None = None,
                 use_hash: bool = False, channels: str = "mix") -> Callable[[list[BatchItem]], Iterator[Scored]]:
    """Score items in this process on the one scheduler (emotion.scheduler): `workers` threads
    open (decode) the next group while the model runs on the current one, having first built
    the common rates' resampling kernels.  Yields in input order."""
    group = group or max(GROUP_FILES, GROUP_BATCHES * recognizer.batch_size)

    def run(items: list[BatchItem]) -> Iterator[Scored]:
        warming = threading.Thread(target=warm_kernels, name="warm-kernels")
        warming.start()
        try:
            outcomes = schedule(items, lambda it: decode_item(it, recognizer.opener, detector, use_hash, channels),
                                lambda ds: score_decoded(recognizer, ds, segment=detector is not None), group,
                                workers)
            for i, outcome in outcomes:
                yield outcome if isinstance(outcome, Scored) else failed_row(items[i], str(outcome))
        finally:
            warming.join()  # no thread of ours may run torch code while the interpreter exits

    return run


# -- the job --------------------------------------------------------------------------------------


def _is_summary(row: dict) -> bool:
    return row.get("segment") is None


def _key(row: dict) -> tuple[str, str]:
    return (row["path"], row["id"])


def _plan(items: list[BatchItem], existing: list[dict], use_hash: bool, retry_failed: bool,
          embeddings) -> tuple[list[BatchItem], list[dict]]:
    """Which items still need work, and which existing rows stay."""
    wanted = {(it.path, it.id): it for it in items}
    summaries = {_key(r): r for r in existing if _is_summary(r) and _key(r) in wanted}
    done: set[tuple[str, str]] = set()
    for key, row in summaries.items():
        size, mtime = file_stat(key[0])
        if use_hash:
            same = row.get("sha256") is not None and row["sha256"] == _sha256(key[0])
        else:
            same = row.get("size") == size and row.get("mtime_ns") == mtime
        if not same or (retry_failed and row.get("error")):
            continue
        if embeddings is not None and not row.get("error") and not embeddings.has(*key):
            continue
        done.add(key)
    keep = [r for r in existing if _key(r) not in wanted or _key(r) in done]
    return [it for it in items if (it.path, it.id) not in done], keep


def run_job(items: list[BatchItem], sink, scorer: Callable[[list[BatchItem]], Iterable[Scored]], *,
            use_hash: bool = False, retry_failed: bool = False, embeddings=None,
            progress: bool = True) -> BatchSummary:
    """Run a batch job into `sink` (see emotion.sinks), resuming from what it already holds."""
    from tqdm import tqdm

    start = time.perf_counter()
    existing = sink.read()
    todo, keep = _plan(items, existing, use_hash, retry_failed, embeddings)
    if len(keep) != len(existing):
        log.info("dropping %d stale or partial rows from %s", len(existing) - len(keep), sink.path)
        sink.rewrite(keep)
    summary = BatchSummary(total=len(items), skipped=len(items) - len(todo), processed=0)
    if summary.skipped:
        log.info("%d of %d files are already in the output", summary.skipped, len(items))
    bar = tqdm(total=len(todo), unit="file", disable=not progress or not todo, dynamic_ncols=True)
    try:
        for scored in scorer(todo):
            rows = scored.rows
            if embeddings is not None and scored.embedding is not None:
                name = embeddings.put(scored.item.path, scored.item.id, scored.embedding)
                if embeddings.names_in_rows:
                    rows[-1]["embedding"] = name
            sink.append(rows)
            summary.processed += 1
            summary.failed_now += bool(rows[-1].get("error"))
            summary.audio_s += scored.audio_s
            elapsed = max(time.perf_counter() - start, 1e-9)
            bar.update(1)
            bar.set_postfix_str(f"{summary.processed / elapsed:.2f} files/s, "
                                f"{summary.audio_s / elapsed:.1f} audio-s/s", refresh=False)
    finally:
        bar.close()
        sink.close()
        final = sink.read()
        if embeddings is not None:
            embeddings.finish([r for r in final if _is_summary(r) and not r.get("error")])
        sink.finish()
    by_key: dict[tuple[str, str], list[dict]] = {}
    for r in final:
        if _is_summary(r):
            by_key.setdefault(_key(r), []).append(r)  # one per channel
    summary.rows = [r for it in items for r in by_key.get((it.path, it.id), [])]
    summary.failed = [(r["id"], r["error"]) for r in summary.rows if r.get("error")]
    summary.seconds = time.perf_counter() - start
    return summary
