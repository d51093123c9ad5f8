"""Batch jobs: many files in, one table out, resumable.

    items = gather_inputs(["calls/", "labelled.csv"])      # emotion.batch.inputs
    summary = run_job(items, open_sink("out.csv", row_schema(keys)), local_scorer(recognizer))

Decoding runs on a pool of threads, overlapped with the model, which gets the decoded clips in
groups and batches them by length.

Every input gives one summary row (and, with a SpeechDetector, one row per speech span before it);
a file that cannot be analysed gives a row whose `error` column holds the reason.  Rows are
appended as files finish.  A rerun with the same output skips inputs whose summary row is there
with the same size and modification time (or, with use_hash, the same content), so an interrupted
job loses nothing and a finished one reruns in seconds.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..audio import SAMPLE_RATE, Audio, AudioError, load_channels, load_clips
from ..errors import TOO_LONG
from ..files import file_sha256
from ..resample import warm_kernels
from ..results import EmotionResult
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


# -- decoding and scoring (shared by the local and the Ray paths) ---------------------------------


@dataclass
class Decoded:
    item: BatchItem
    size: int | None
    mtime_ns: int | None
    clips: list[Audio] = field(default_factory=list)  # one per chosen channel
    error: str | None = None
    spans: list[list[tuple[float, float]]] = field(default_factory=list)  # speech, per clip
    sha256: str | None = None
    long: bool = False  # too long to hold: analysed as a stream by the scorer


def decode_item(item: BatchItem, detector=None, use_hash: bool = False,
                load: Callable[..., Audio | list[Audio]] = load_channels, channels: str = "mix",
                stream_long: bool = False) -> Decoded:
    """Decode one input with `load` (and find its speech when a SpeechDetector is given); errors
    become reasons.  A file too long to hold is left to the scorer when stream_long."""
    size, mtime = file_stat(item.path)
    out = Decoded(item, size, mtime)
    try:
        out.clips = load_clips(load, item.path, channels)
        out.sha256 = out.clips[0].sha256
        if detector is not None:
            out.spans = [detector.speech_spans(clip.samples) for clip in out.clips]
    except AudioError as exc:
        out.long = stream_long and exc.code == TOO_LONG
        out.error = None if out.long else exc.reason
    except Exception as exc:  # a decoder bug must cost one file, not the job
        log.debug("decoding %s failed", item.path, exc_info=True)
        out.error = f"cannot be decoded ({type(exc).__name__}: {exc})"
    if out.error is not None or out.long:
        out.clips = []
        if use_hash or out.long:
            out.sha256 = _sha256(item.path)
    return out


def _clean(reason: str) -> str:
    return " ".join(str(reason).split())  # one line: a row never spans lines


def _rows_for(d: Decoded, results: list[list[EmotionResult]] | None, error: str | None) -> Scored:
    """Rows of one input: per channel, its speech segments' rows then its own row."""
    base = {"id": d.item.id, "label": d.item.label, "size": d.size, "mtime_ns": d.mtime_ns,
            "sha256": d.sha256}
    if error is not None:
        return Scored(d.item, [result_row(AudioError(Path(d.item.path).name, _clean(error)), d.item.path, **base)])
    rows = []
    for spans, (whole, *parts) in zip(d.spans or [[]] * len(results), results):
        for n, ((start, end), res) in enumerate(zip(spans, parts)):
            seg = Segment(round(start, 4), round(end, 4), res.emotion, res.confidence, res.scores)
            rows.append({"path": d.item.path, **base, "channel": res.input.get("channel"), "segment": n,
                         **segment_row(seg), "duration_s": round(end - start, 4), "error": None})
        rows.append(result_row(whole, d.item.path, **base, start=0.0, end=whole.input.get("duration_s")))
    first = results[0][0]
    return Scored(d.item, rows, first.embedding, first.input["duration_s"])


def _clips(d: Decoded) -> list[list[Audio]]:
    """Per channel: the whole clip, then one clip per speech span."""
    out = []
    for a, spans in zip(d.clips, d.spans or [[]] * len(d.clips)):
        clips = [a]
        for start, end in spans:
            s, e = round(start * SAMPLE_RATE), round(end * SAMPLE_RATE)
            clips.append(Audio(a.samples[s:e], f"{a.name}[{start:.2f}-{end:.2f}]", a.source_rate, a.channels,
                               channel=a.channel))
        out.append(clips)
    return out


def _analyse_each(recognizer, ok: list[Decoded], clips: list[list[list[Audio]]]) -> tuple[dict, dict]:
    """Results (per input, per channel) of all inputs' clips analysed together (batched by
    length); should the batch fail, each input alone, so that one bad input costs only its row."""
    by_item: dict[int, list[list[EmotionResult]]] = {}
    errors: dict[int, str] = {}

    def regroup(results: list[EmotionResult], per_channel: list[list[Audio]]) -> list[list[EmotionResult]]:
        out, n = [], 0
        for cs in per_channel:
            out.append(results[n : n + len(cs)])
            n += len(cs)
        return out

    flat = [c for per_channel in clips for cs in per_channel for c in cs]
    try:
        results = recognizer.analyse(flat) if flat else []
        n = 0
        for d, per_channel in zip(ok, clips):
            size = sum(len(cs) for cs in per_channel)
            by_item[id(d)] = regroup(results[n : n + size], per_channel)
            n += size
    except Exception:
        log.warning("a batch of %d clips failed; analysing its files one by one", len(flat), exc_info=True)
        for d, per_channel in zip(ok, clips):
            try:
                by_item[id(d)] = regroup(recognizer.analyse([c for cs in per_channel for c in cs]), per_channel)
            except Exception as exc:
                log.debug("analysing %s failed", d.item.path, exc_info=True)
                errors[id(d)] = f"analysis failed ({type(exc).__name__}: {exc})"
    return by_item, errors


def _analyse_long(recognizer, d: Decoded, channels: str, segment: bool) -> tuple[list | None, str | None]:
    """A file too long to hold, streamed: one result per channel (no speech segments)."""
    try:
        results = recognizer.recognize_long(d.item.path, channels=channels, sha256=d.sha256)
    except AudioError as exc:
        return None, exc.reason
    except Exception as exc:
        log.debug("analysing %s failed", d.item.path, exc_info=True)
        return None, f"analysis failed ({type(exc).__name__}: {exc})"
    if segment:
        for res in results:
            res.warnings.append("no speech segments: the file was analysed as a stream")
    return [[res] for res in results], None


def score_decoded(recognizer, decoded: list[Decoded], channels: str = "mix", segment: bool = False) -> list[Scored]:
    """Rows for decoded inputs: all their clips analysed together (batched by length); inputs too
    long to hold streamed one by one."""
    ok = [d for d in decoded if d.error is None and not d.long]
    by_item, errors = _analyse_each(recognizer, ok, [_clips(d) for d in ok])
    for d in decoded:
        if d.long:
            by_item[id(d)], error = _analyse_long(recognizer, d, channels, segment)
            if error is not None:
                errors[id(d)] = error
    out = []
    for d in decoded:
        error = d.error or errors.get(id(d))
        out.append(_rows_for(d, None if error else by_item[id(d)], error))
    return out


def local_scorer(recognizer, detector=None, workers: int = DECODE_WORKERS, group: int | None = None,
                 use_hash: bool = False, channels: str = "mix") -> Callable[[list[BatchItem]], Iterator[Scored]]:
    """Score items in this process: `workers` threads decode (with the recognizer's loader) the
    next group while the model runs on the current one, having first built the common rates'
    resampling kernels.  Files the loader refuses as too long are streamed, if the recognizer
    has a streamer.  Yields in input order."""
    group = group or max(GROUP_FILES, GROUP_BATCHES * recognizer.batch_size)
    stream_long = recognizer.streamer is not None

    def run(items: list[BatchItem]) -> Iterator[Scored]:
        with ThreadPoolExecutor(max(1, workers), thread_name_prefix="decode") as pool:
            pool.submit(warm_kernels)
            pending: deque = deque()
            starts = iter(range(0, len(items), group))

            def submit_next() -> None:
                start = next(starts, None)
                if start is not None:
                    pending.append([pool.submit(decode_item, it, detector, use_hash, recognizer.loader, channels,
                                                stream_long) for it in items[start : start + group]])

            submit_next()
            while pending:
                submit_next()  # decode one group ahead while the model works
                decoded = [f.result() for f in pending.popleft()]
                yield from score_decoded(recognizer, decoded, channels, segment=detector is not None)

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
