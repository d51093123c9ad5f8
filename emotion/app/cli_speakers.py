"""The command line's speakers: `emotion recognize --speakers` and `emotion batch --speakers`
(see the README's Speakers section and docs/batch.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from ..defaults import DEFAULT_MAX_SPEAKERS


def add_options(p) -> None:
    """--speakers and --max-speakers (recognize and batch)."""
    p.add_argument("--speakers", type=speaker_count, default=None, metavar="auto|N",
                   help="who spoke when: find the speakers (N of them, or auto: estimated) and give each turn "
                        "and each speaker an emotion; with --channels each, one speaker per channel")
    p.add_argument("--max-speakers", type=int, default=DEFAULT_MAX_SPEAKERS, metavar="M",
                   help="with --speakers auto: at most this many (default: %(default)s)")


def speaker_count(value: str) -> int | str:
    """An argparse type: "auto" or a whole number of speakers, at least 1 (checked without the
    engine, so that --help and usage errors answer at once; the library checks it again)."""
    if value.strip().lower() == "auto":
        return "auto"
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f'--speakers takes "auto" or a number of speakers, not {value!r}') from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"--speakers must be at least 1, not {n}")
    return n


def recognize(rec, paths: list[Path], args, write: Callable) -> set[int]:
    """recognize --speakers: per file, its result line (write(result, path, note) saves it and
    prints it), then a line per speaker; returns the indices of the files that failed."""
    from ..errors import AudioError
    from ..speakers import Diarizer, recognize_speakers

    diarizer = Diarizer()
    failed = set()
    for i, path in enumerate(paths):
        try:
            analysis = recognize_speakers(rec, path, args.speakers, args.max_speakers, channels=args.channels,
                                          granularity=args.granularity, diarizer=diarizer)
        except AudioError as exc:
            failed.add(i)
            print(f"FAILED  {path}: {exc.reason}", flush=True)
            continue
        if not write(analysis.result, path, f"  {analysis.describe()}"):
            failed.add(i)
            continue
        for s in analysis.speakers:
            print(f"  {s.speaker:<6} {speaker_line(s, analysis.result)}", flush=True)
    return failed


def speaker_line(s, result) -> str:
    """speaking time, share, turns, emotion, and how it changed from the first to the last third."""
    label = next((lb for lb in result.labels if lb.key == s.emotion), None)
    emoji = f"{label.emoji} " if label is not None and label.emoji else ""
    felt = f"{emoji}{s.emotion:<9} {s.confidence:6.1%}" if s.emotion else "silent"
    first, last = s.change.get("first_third"), s.change.get("last_third")
    change = f"  first third {first or '-'}, last third {last or '-'}"
    return f"{s.speaking_s:7.1f} s {s.share:6.1%}  {s.turns:3d} turns  {felt}{change}"


def batch(args, items: Callable[[], list], recognizer: Callable[[], object]) -> int:
    """batch --speakers: a row per speaker (or per turn with --turns) of each file; `items` and
    `recognizer` are called once the options are known to work."""
    from ..batch.job import run_job
    from ..batch.sinks import open_sink
    from ..batch.speaker_rows import speaker_row_schema, speaker_scorer
    from ..labels import label_keys
    from .options import EXIT_FAILED, UsageError

    for used, option in ((args.segment, "--segment"), (args.ray is not None, "--ray"),
                         (args.embeddings, "--embeddings")):
        if used:
            raise UsageError(f"{option} cannot be used with --speakers")
    todo = items()
    output = Path(args.output)
    rec = recognizer()
    scorer = speaker_scorer(rec, args.speakers, args.max_speakers, turns=args.turns, channels=args.channels,
                            use_hash=args.hash)
    sink = open_sink(output, speaker_row_schema(label_keys(rec.labels), turns=args.turns))
    summary = run_job(todo, sink, scorer, use_hash=args.hash, retry_failed=args.retry_failed,
                      progress=not args.no_progress)
    print(f"{summary.total} files: {summary.processed - summary.failed_now} analysed, {summary.failed_now} failed, "
          f"{summary.skipped} done earlier -> {output}", file=sys.stderr)
    for item_id, reason in summary.failed:
        print(f"FAILED  {item_id}: {reason}", file=sys.stderr)
    return EXIT_FAILED if summary.failed else 0
