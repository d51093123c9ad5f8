"""`emotion stream FILE`: a file played through the streaming recognizer, one line per update.

At real-time pace by default (a chunk every --chunk seconds, as a microphone would send it; when
the model falls behind, only the newest hop is judged), or as fast as the model goes (--fast,
every hop judged). The last line is the whole file's result, which equals `emotion recognize`'s:
the stream builds it from the audio it has already decoded, cut into the recognizer's windows as
they complete (emotion.streaming.WholeRecording), so the file is decoded once.
"""

from __future__ import annotations

import sys
import time

from ..defaults import STREAM_HOP_S as HOP_S, STREAM_WINDOW_S as WINDOW_S  # without torch: for --help
from ..settings import Settings
from .options import command_options

CHUNK_S = 0.25  # seconds per chunk fed, as a microphone would send them (the web app's recorder sends 0.1 s)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "stream", help="play a file through the streaming recognizer: a line per update",
        description="Play a file through the streaming recognizer: a line per update, then the whole file's "
                    "line, equal to `emotion recognize`'s. That line takes one more model pass, over the "
                    "recognizer's own windows (up to 30 s, each normalised alone), because the updates' short "
                    "overlapping windows are not the windows a whole-file result is made of; it runs on the "
                    "audio the stream has already decoded, as each window completes, so the file is read once.")
    p.add_argument("input", metavar="FILE", help="an audio file")
    for option, default, what in (("--hop", HOP_S, "seconds between updates"),
                                  ("--window", WINDOW_S, "seconds of audio each update judges"),
                                  ("--chunk", CHUNK_S, "seconds per chunk fed")):
        p.add_argument(option, type=float, default=default, help=f"{what} (default: %(default)s)")
    p.add_argument("--fast", action="store_true", help="feed as fast as the model goes, not at real-time pace")
    p.add_argument("--no-vad", action="store_true",
                   help="judge every hop (default: hops Silero VAD finds silent say silence)")
    command_options(p, cmd_stream)


def cmd_stream(args, settings: Settings) -> int:
    from pathlib import Path

    from ..audio import check_file
    from ..decode import Reader
    from ..streaming import StreamingRecognizer
    from .options import UsageError

    if args.chunk <= 0:
        raise UsageError("--chunk must be positive")
    name = Path(args.input).name
    check_file(Path(args.input))  # missing or empty: the reason every command gives
    rec = settings.recognizer(warmup=not args.fast)
    with Reader(args.input, name, settings.max_duration_s, settings.max_decode_s) as reader:  # mixed
        rate = reader.rate
        try:  # the stream holds only what its windows need: a file of any length plays through
            stream = StreamingRecognizer(rec, rate, args.window, args.hop, vad=not args.no_vad,
                                         latest_only=not args.fast, name=name, max_s=settings.max_duration_s)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        length = f"{reader.declared:.2f} s" if reader.declared else "length unknown"
        print(f"{name}: {length} at {rate} Hz, window {args.window:g} s, hop {args.hop:g} s, "
              f"{'fast' if args.fast else 'real-time pace'}", flush=True)
        began = time.monotonic()
        counts = {"updates": 0, "silent": 0}
        fed = 0
        for piece in _chunks(reader, max(1, round(args.chunk * rate))):
            fed += len(piece)
            if not args.fast:  # the chunk is complete once its last sample has been "spoken"
                time.sleep(max(0.0, began + fed / rate - time.monotonic()))
            _show(stream.feed(piece), counts, None if args.fast else began)
        reader.check_decoded()
    _show(stream.flush(), counts, None if args.fast else began)
    res = stream.finish(reader.warnings())  # the whole file, as `emotion recognize` analyses it
    skipped = f", {stream.skipped} skipped (model behind real time)" if stream.skipped else ""
    warn = f"  warning: {'; '.join(res.warnings)}" if res.warnings else ""
    print(f"whole file: {res.label.emoji} {res.emotion} {res.confidence:.1%} {res.label.zh}  "
          f"({counts['updates']} updates, {counts['silent']} silent{skipped}){warn}", flush=True)
    print(f"{time.monotonic() - began:.2f} s for {fed / rate:.2f} s of audio", file=sys.stderr)
    return 0


def _chunks(reader, step: int):
    """The file's mixed samples, decoded as they are needed, in chunks of `step` (the last shorter).
    Decoding's time limit counts per chunk, not for the whole file, which plays for as long as it lasts."""
    import numpy as np

    held, size = [], 0
    for [block] in reader.blocks():
        held.append(block.numpy())
        size += len(block)
        if size < step:
            continue
        joined, at = np.concatenate(held), 0
        while size - at >= step:
            yield joined[at:at + step]
            at += step
            reader.restart_clock()
        held, size = [joined[at:]], size - at
    if size:
        yield np.concatenate(held)


def _show(updates, counts: dict, began: float | None) -> None:
    for u in updates:
        counts["updates"] += 1
        counts["silent"] += not u.speech
        lag = "" if began is None else f"  lag {time.monotonic() - began - u.end_s:.2f} s"
        print(u.line() + lag, flush=True)
