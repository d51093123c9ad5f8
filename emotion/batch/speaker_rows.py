"""Batch jobs with speakers: `emotion batch --speakers auto|N [--turns]`.

By default a file gives a row per speaker (speaking time, share, emotion, the speaking-time-weighted
scores): the table answers "who felt what" in one row per person, and a folder of calls stays a
table a spreadsheet can sort.  With --turns a file gives a row per turn (start, end, speaker and
the turn's own emotion), then the file's own row (speaker empty).  A file with no speech gives one
row, speaker empty, whose `warnings` says why.  Resuming works as for every batch job
(emotion.batch.job.run_job): a file's rows without a `segment` are its summary rows.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterator

from ..errors import AudioError
from ..speakers import DEFAULT_MAX_SPEAKERS, Diarizer, recognize_speakers
from .inputs import BatchItem
from .job import Scored, decode_item
from .rows import join_warnings, result_row

log = logging.getLogger(__name__)


def speaker_row_schema(label_keys: list[str], turns: bool = False) -> dict[str, type]:
    """Columns of a speaker table, in order, with their types."""
    schema: dict[str, type] = {"id": str, "path": str, "label": str, "channel": str, "speaker": str}
    if turns:
        schema.update({"segment": int, "start": float, "end": float})
    else:
        schema.update({"turns": int, "speaking_s": float, "share": float})
    schema.update({"emotion": str, "confidence": float})
    schema.update({key: float for key in label_keys})
    schema.update({"duration_s": float, "size": int, "mtime_ns": int, "sha256": str, "warnings": str, "error": str})
    return schema


def speaker_rows(analysis, path: str, turns: bool = False, **base) -> list[dict]:
    """The rows of one analysed file (see the module's docstring)."""
    whole = analysis.result
    if not analysis.speakers:
        row = result_row(whole, path, **base)
        row["warnings"] = join_warnings([analysis.reason or "no speech"] + whole.warnings)
        return [row]
    rows = []
    if turns:
        for n, t in enumerate(analysis.turns):
            rows.append({"path": path, **base, "speaker": t.speaker, "segment": n, "start": t.start, "end": t.end,
                         "emotion": t.emotion, "confidence": t.confidence, **t.scores,
                         "duration_s": round(t.duration_s, 4), "warnings": None, "error": None})
        rows.append(result_row(whole, path, **base, speaker=None))
        return rows
    for s in analysis.speakers:
        rows.append({"path": path, **base, "channel": whole.input.channel, "speaker": s.speaker,
                     "turns": s.turns, "speaking_s": round(s.speaking_s, 4), "share": round(s.share, 4),
                     "emotion": s.emotion, "confidence": s.confidence, **s.scores,
                     "duration_s": whole.input.duration_s, "warnings": join_warnings(whole.warnings),
                     "error": None})
    return rows


def speaker_scorer(recognizer, speakers: int | str = "auto", max_speakers: int = DEFAULT_MAX_SPEAKERS,
                   turns: bool = False, channels: str = "mix", use_hash: bool = False,
                   diarizer: Diarizer | None = None) -> Callable[[list[BatchItem]], Iterator[Scored]]:
    """A scorer for emotion.batch.job.run_job: each file's speakers, one file at a time (with
    channels="each", one speaker per channel), whatever its length (a long file streamed)."""
    diarizer = diarizer or Diarizer()

    def run(items: list[BatchItem]) -> Iterator[Scored]:
        for item in items:
            d = decode_item(item, recognizer.opener, None, use_hash, channels)
            base = {"id": item.id, "label": item.label, "size": d.size, "mtime_ns": d.mtime_ns, "sha256": d.sha256}
            if d.error is None:
                try:
                    analysis = recognize_speakers(recognizer, d.source, speakers, max_speakers, channels=channels,
                                                  diarizer=diarizer)  # held whole, or streamed when long
                except AudioError as exc:  # met while reading a streamed file (e.g. a damaged stretch)
                    d.error = exc.reason
                except Exception as exc:  # one file's failure costs its row, not the job
                    log.debug("analysing %s failed", item.path, exc_info=True)
                    d.error = f"analysis failed ({type(exc).__name__}: {exc})"
            if d.error is not None:
                row = result_row(AudioError(Path(item.path).name, " ".join(d.error.split())), item.path, **base)
                yield Scored(item, [row])
                continue
            yield Scored(item, speaker_rows(analysis, item.path, turns, **base), analysis.result.embedding,
                         analysis.result.input.duration_s)

    return run
