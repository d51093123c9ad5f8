"""The command line: python -m emotion {recognize,download,verify} ..."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

from .audio import AUDIO_EXTENSIONS, AudioError
from .model import DEFAULT_MODEL, KNOWN_MODELS, PROJECT_ROOT, CheckpointError, ModelNotFoundError

OUTPUTS = PROJECT_ROOT / "outputs"


def expand_inputs(items: list[str]) -> list[Path]:
    """Files as given; folders searched recursively for audio extensions, in sorted order."""
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            paths.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS))
        else:
            paths.append(p)
    return paths


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-dir", default=None,
                   help="model folder or known name (default: $EMOTION_MODEL_DIR or models/%s)" % DEFAULT_MODEL)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    p.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="auto is fp32 on CPU, fp16 on CUDA (default: %(default)s)")


def _load(args, warmup: bool = False):
    from .download import ensure_model
    from .recognizer import Recognizer

    return Recognizer.load(ensure_model(args.model_dir), args.device, args.dtype, warmup=warmup)


def cmd_recognize(args) -> int:
    from .results import write_result

    paths = expand_inputs(args.inputs)
    if not paths:
        print("no audio files found in: " + " ".join(args.inputs), file=sys.stderr)
        return 2
    rec = _load(args)
    failed = 0

    def report(i: int, res) -> None:
        nonlocal failed
        if isinstance(res, AudioError):
            failed += 1
            print(f"FAILED  {paths[i]}: {res.reason}", flush=True)
            return
        folder = write_result(res, args.output_dir, embedding=not args.no_embedding)
        note = f" ({res.chunks} windows)" if res.chunks > 1 else ""
        warn = f"  warning: {'; '.join(res.warnings)}" if res.warnings else ""
        print(f"{res.label.emoji} {res.emotion:<9} {res.confidence:6.1%}  {paths[i]} -> {folder}{note}{warn}",
              flush=True)

    rec.recognize_many(paths, granularity=args.granularity, on_result=report)
    print(f"{len(paths) - failed} done, {failed} failed", file=sys.stderr)
    return 1 if failed else 0


def cmd_download(args) -> int:
    from .download import download_model

    target = download_model(args.name, Path(args.model_dir) if args.model_dir else None)
    print(target)
    return 0


def _synthetic_clips(folder: Path) -> list[Path]:
    """Test tones with noise at several rates and channel counts, for verify without audio."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    clips = []
    for rate, channels, seconds in ((16000, 1, 3.0), (44100, 2, 2.0), (24414, 1, 2.3), (8000, 1, 5.0)):
        t = np.arange(int(rate * seconds)) / rate
        tone = 0.3 * np.sin(2 * np.pi * 220 * t * (1 + 0.2 * np.sin(t)))
        x = np.stack([tone + 0.05 * rng.standard_normal(len(t)) for _ in range(channels)], axis=1)
        path = folder / f"synthetic_{rate}hz_{channels}ch.wav"
        sf.write(path, x.astype(np.float32), rate)
        clips.append(path)
    return clips


def cmd_verify(args) -> int:
    from .verify import COSINE_BOUND, SCORE_BOUND, verify

    rec = _load(args)
    with tempfile.TemporaryDirectory() as tmp:
        clips = expand_inputs(args.audio) if args.audio else []
        example = rec.model.path / "example" / "test.wav"
        if not clips:
            clips = ([example] if example.is_file() else []) + _synthetic_clips(Path(tmp))
        print(f"comparing {rec.model.name} ({rec.model.dtype_name}, {rec.model.device}) with funasr's "
              f"AutoModel on {len(clips)} clips", flush=True)
        rows = verify(rec, clips)
    print(f"{'clip':<32} {'granularity':<11} {'max |score diff|':>16} {'embedding cosine':>17} top-1")
    for r in rows:
        print(f"{r.name[:32]:<32} {r.granularity:<11} {r.max_score_diff:>16.2e} {r.cosine:>17.7f} "
              f"{'same' if r.same_top1 else 'DIFFERENT'}")
    worst_diff = max(r.max_score_diff for r in rows)
    worst_cos = min(r.cosine for r in rows)
    ok = all(r.ok for r in rows)
    print(f"largest score difference {worst_diff:.2e} (bound {SCORE_BOUND:g}), lowest embedding cosine "
          f"{worst_cos:.7f} (bound {COSINE_BOUND}): {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emotion",
                                     description="Speech emotion recognition with Emotion2Vec+.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and timings")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("recognize", help="score audio files or folders; one result folder per file",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR")
    p.add_argument("--granularity", choices=["utterance", "frame"], default="utterance")
    p.add_argument("--output-dir", default=str(OUTPUTS))
    p.add_argument("--no-embedding", action="store_true", help="do not write embedding.npy")
    _add_model_args(p)
    p.set_defaults(func=cmd_recognize)

    p = sub.add_parser("download", help="download a released model into models/<name>")
    p.add_argument("name", nargs="?", default=DEFAULT_MODEL, choices=list(KNOWN_MODELS))
    p.add_argument("--model-dir", default=None, help="target folder (default: models/<name>)")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("verify", help="compare our scores with funasr's on the same model and clips")
    p.add_argument("audio", nargs="*", metavar="AUDIO", help="clips (default: example/test.wav and test tones)")
    _add_model_args(p)
    p.set_defaults(func=cmd_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ModelNotFoundError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
