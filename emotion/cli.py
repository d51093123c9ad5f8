"""The command line: python -m emotion {recognize,batch,download,verify} ..."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from .audio import AudioError, find_audio
from .model import DEFAULT_MODEL, KNOWN_MODELS, PROJECT_ROOT, CheckpointError, ModelNotFoundError
from .recognizer import GRANULARITIES, BusyError

OUTPUTS = PROJECT_ROOT / "outputs"


def expand_inputs(items: list[str]) -> list[Path]:
    """Files as given; folders searched recursively for audio extensions, in sorted order."""
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            paths.extend(find_audio(p))
        else:
            paths.append(p)
    return paths


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-dir", default=None,
                   help="model folder or known name (default: $EMOTION_MODEL_DIR or models/%s)" % DEFAULT_MODEL)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    p.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16", "fp16", "int8"],
                   help="auto is fp32 on CPU, fp16 on CUDA (default: %(default)s)")


def _load(args, warmup: bool = False):
    from .download import ensure_model
    from .recognizer import Recognizer

    return Recognizer.load(ensure_model(args.model_dir), args.device, args.dtype, warmup=warmup)


def cmd_recognize(args) -> int:
    from .results import ResultWriteError, write_result
    from .storage import sweep_outputs

    paths = expand_inputs(args.inputs)
    if not paths:
        print("no audio files found in: " + " ".join(args.inputs), file=sys.stderr)
        return 2
    sweep_outputs(args.output_dir)  # leftovers of a crash, and expired results ($EMOTION_RETENTION_DAYS)
    rec = _load(args)
    if args.isolate_decoding:
        from .isolation import IsolatedDecoder

        rec.loader = IsolatedDecoder().load  # its worker ends with this process
    failed = 0

    def report(i: int, res) -> None:
        nonlocal failed
        if isinstance(res, AudioError):
            failed += 1
            print(f"FAILED  {paths[i]}: {res.reason}", flush=True)
            return
        try:
            folder = write_result(res, args.output_dir, embedding=not args.no_embedding)
        except ResultWriteError as exc:
            failed += 1
            print(f"FAILED  {paths[i]}: {exc.strerror}", flush=True)
            return
        note = f" ({res.chunks} windows)" if res.chunks > 1 else ""
        warn = f"  warning: {'; '.join(res.warnings)}" if res.warnings else ""
        print(f"{res.label.emoji} {res.emotion:<9} {res.confidence:6.1%}  {paths[i]} -> {folder}{note}{warn}",
              flush=True)

    rec.recognize_many(paths, granularity=args.granularity, on_result=report)
    print(f"{len(paths) - failed} done, {failed} failed", file=sys.stderr)
    return 1 if failed else 0


def cmd_batch(args) -> int:
    from .batch import ManifestError, gather_inputs, local_scorer, row_schema, run_job
    from .distributed import RayUnavailableError
    from .segmenting import VadUnavailableError
    from .sinks import SinkError, open_embeddings, open_sink

    try:
        items = gather_inputs(args.inputs)
    except ManifestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not items:
        print("no audio files found in: " + " ".join(args.inputs), file=sys.stderr)
        return 2
    output = Path(args.output)
    segmenter = None
    if args.ray is None:
        rec = _load(args)
        keys = [lb.key for lb in rec.model.labels]
    else:
        from .download import ensure_model
        from .labels import read_tokens

        model_dir = ensure_model(args.model_dir)
        keys = [lb.key for lb in read_tokens(model_dir / "tokens.txt")]
    try:
        if args.segment and args.ray is None:
            from .segmenting import Segmenter

            segmenter = Segmenter()
        embeddings = open_embeddings(args.embeddings)
        sink = open_sink(output, row_schema(keys, args.segment,
                                            embedding_names=bool(embeddings and embeddings.names_in_rows)))
        if args.ray is None:
            scorer = local_scorer(rec, segmenter, workers=args.workers, group=args.group, use_hash=args.hash)
        else:
            from .distributed import ray_scorer

            scorer = ray_scorer(model_dir, None if args.ray == "local" else args.ray,
                                args.device, args.dtype, segment=args.segment, use_hash=args.hash,
                                replicas=args.replicas, cpus_per_replica=args.cpus_per_replica,
                                workers=args.workers, group=args.group)
        summary = run_job(items, sink, scorer, use_hash=args.hash, retry_failed=args.retry_failed,
                          embeddings=embeddings, progress=not args.no_progress)
    except (SinkError, VadUnavailableError, RayUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rate = f"{summary.processed / summary.seconds:.2f} files/s, {summary.audio_s / summary.seconds:.1f} " \
        "audio-s/s" if summary.processed and summary.seconds else ""
    print(f"{summary.total} files: {summary.processed} analysed now, {summary.skipped} already done, "
          f"{len(summary.failed)} failed" + (f" ({rate})" if rate else "") + f" -> {output}", file=sys.stderr)
    for item_id, reason in summary.failed:
        print(f"FAILED  {item_id}: {reason}", file=sys.stderr)
    labelled = [r for r in summary.rows if r.get("label")]
    if labelled:
        from .evaluation import evaluate, format_report, save_report

        ok = [r for r in labelled if not r.get("error")]
        ev = evaluate([r["label"] for r in ok], [r["emotion"] for r in ok], keys, failed=len(labelled) - len(ok))
        print(format_report(ev))
        saved = save_report(ev, output.with_suffix(""))
        print("saved " + ", ".join(str(p) for p in saved))
    return 1 if summary.failed else 0


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
    p.add_argument("--granularity", choices=GRANULARITIES, default="utterance")
    p.add_argument("--output-dir", default=str(OUTPUTS))
    p.add_argument("--no-embedding", action="store_true", help="do not write embedding.npy")
    p.add_argument("--isolate-decoding", action="store_true",
                   help="decode in a worker process, so a decoder crash or hang costs one file, not the run")
    _add_model_args(p)
    p.set_defaults(func=cmd_recognize)

    p = sub.add_parser("batch", help="score many files into one table (CSV, JSONL or Parquet); resumable")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="audio files, folders (searched recursively) or manifests (.csv/.jsonl with a path "
                        "column and optional id and label columns)")
    p.add_argument("-o", "--output", required=True, help="results.csv, results.jsonl or results.parquet")
    p.add_argument("--segment", action="store_true",
                   help="also score each speech segment (voice activity detection), a row per segment")
    p.add_argument("--embeddings", default=None, metavar="PATH",
                   help="save utterance embeddings: a folder (one .npy per file) or a .npz file (one array "
                        "and the path and id of each row)")
    p.add_argument("--hash", action="store_true",
                   help="resume by content hash instead of size and modification time")
    p.add_argument("--retry-failed", action="store_true", help="analyse files that failed before again")
    p.add_argument("--workers", type=int, default=2, help="decoding threads (default: %(default)s)")
    p.add_argument("--group", type=int, default=None,
                   help="decoded files handed to the model at a time (default: 4 model batches, at least 4 files)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run on Ray Data: a cluster address (e.g. auto or ray://HEAD:10001), or none "
                        "to start a local instance")
    p.add_argument("--replicas", type=int, default=None, help="with --ray: model replicas (default: one per "
                   "GPU, or one per --cpus-per-replica cores)")
    p.add_argument("--cpus-per-replica", type=int, default=None,
                   help="with --ray on CPUs: cores per replica (default: half the cluster's, at most 8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_model_args(p)
    p.set_defaults(func=cmd_batch)

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
    except BusyError as exc:  # out of GPU memory even one clip at a time
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
