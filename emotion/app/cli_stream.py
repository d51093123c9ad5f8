"""`emotion stream FILE`: a file played through the streaming recognizer, one line per update.

At real-time pace by default (a chunk every --chunk seconds, as a microphone would send it; when
the model falls behind, only the newest hop is judged), or as fast as the model goes (--fast,
every hop judged). The last line is the whole file's result, which equals `emotion recognize`'s.
"""

from __future__ import annotations

import sys
import time

from ..stream import HOP_S, WINDOW_S
from .settings import Settings, command_options

CHUNK_S = 0.25  # seconds per chunk fed, as the web app's microphone sends them


def add_parser(sub) -> None:
    p = sub.add_parser("stream", help="play a file through the streaming recognizer: a line per update")
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

    from ..audio import NO_FILE, AudioError, decode
    from ..stream import StreamingRecognizer
    from .cli import UsageError, _recognizer

    if args.chunk <= 0:
        raise UsageError("--chunk must be positive")
    name = Path(args.input).name
    if not Path(args.input).is_file():
        raise AudioError(name, "no such file", NO_FILE)
    [wave], reader = decode(args.input, name, settings.max_duration_s, settings.max_decode_s)  # mixed
    rate = reader.rate
    try:
        stream = StreamingRecognizer(_recognizer(settings, warmup=not args.fast), rate, args.window, args.hop,
                                     vad=not args.no_vad, latest_only=not args.fast, name=name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    samples, step = wave.numpy(), max(1, round(args.chunk * rate))
    print(f"{name}: {len(samples) / rate:.2f} s at {rate} Hz, window {args.window:g} s, hop {args.hop:g} s, "
          f"{'fast' if args.fast else 'real-time pace'}", flush=True)
    began = time.monotonic()
    counts = {"updates": 0, "silent": 0}
    for pos in range(0, len(samples), step):
        piece = samples[pos:pos + step]
        if not args.fast:  # the chunk is complete once its last sample has been "spoken"
            time.sleep(max(0.0, began + (pos + len(piece)) / rate - time.monotonic()))
        _show(stream.feed(piece), counts, None if args.fast else began)
    _show(stream.flush(), counts, None if args.fast else began)
    res = stream.finish()
    skipped = f", {stream.skipped} skipped (model behind real time)" if stream.skipped else ""
    print(f"whole file: {res.label.emoji} {res.emotion} {res.confidence:.1%} {res.label.zh}  "
          f"({counts['updates']} updates, {counts['silent']} silent{skipped})", flush=True)
    print(f"{time.monotonic() - began:.2f} s for {len(samples) / rate:.2f} s of audio", file=sys.stderr)
    return 0


def _show(updates, counts: dict, began: float | None) -> None:
    for u in updates:
        counts["updates"] += 1
        counts["silent"] += not u.speech
        lag = "" if began is None else f"  lag {time.monotonic() - began - u.end_s:.2f} s"
        print(u.line() + lag, flush=True)
