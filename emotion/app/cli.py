"""The command line: emotion {recognize,batch,stream,adapt,export,download,verify} ... (also python -m emotion).

Settings are read once (environment, then options) and every error a user can fix ends in one
message and exit code 2 (1 when some files failed, 130 on Ctrl-C), never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

# Only what the options need, none of it the engine: `emotion --help` and a usage error answer
# without importing torch; each command imports what it runs.
from ..defaults import CHANNEL_CHOICES, DEFAULT_MODEL, GRANULARITIES, KNOWN_MODELS
from ..engine import BusyError
from ..errors import EmotionError
from ..memory import tune_allocator
from ..settings import Settings
from . import cli_adapt, cli_export, cli_speakers, cli_stream
from .options import EXIT_FAILED, EXIT_USAGE, UsageError, add_model_options, command_options



def _items(inputs: list[str], manifests: bool = True, every_file: bool = False):
    """The inputs' items; what a folder search passed over is reported on stderr."""
    from ..batch.inputs import gather

    found = gather(inputs, manifests=manifests, every_file=every_file)
    note = found.skipped_note()
    if note:
        print(f"{note} (--all-files tries every file)", file=sys.stderr)
    if not found.items:
        raise UsageError("no audio files found in: " + " ".join(inputs))
    return found.items


def _headline(res) -> str:
    """emoji, emotion and confidence; for silent audio no emotion (there is nothing to judge)."""
    if res.silent:
        return f"{'--':<2} {'silent':<9} {'':>6}"
    emoji = f"{res.label.emoji} " if res.label.emoji else ""  # an adapted label has none
    return f"{emoji}{res.emotion:<9} {res.confidence:6.1%}"




def cmd_recognize(args, settings: Settings) -> int:
    from ..errors import AudioError
    from ..results import sweep_outputs

    paths = [Path(item.id) for item in _items(args.inputs, manifests=False, every_file=args.all_files)]
    sweep_outputs(settings.output_dir, settings.retention_days)  # a crash's leftovers, expired results
    decoder = None
    if args.isolate_decoding:
        from ..isolation import IsolatedDecoder

        # files long enough to be streamed are decoded in this process (emotion.sources)
        decoder = IsolatedDecoder(max_duration_s=settings.opener().whole_cap, max_decode_s=settings.max_decode_s)
    rec = settings.recognizer(warmup=False, load=decoder.load_channels if decoder else None)
    failed = set()
    if args.speakers is not None:
        try:
            failed = cli_speakers.recognize(rec, paths, args, lambda res, path, note: _write_one(
                res, path, args, settings, note))
        finally:
            if decoder is not None:
                decoder.close()
        print(f"{len(paths) - len(failed)} done, {len(failed)} failed", file=sys.stderr)
        return EXIT_FAILED if failed else 0

    def report(i: int, res) -> None:
        if isinstance(res, EmotionError):
            failed.add(i)
            print(f"FAILED  {paths[i]}: {res.reason if isinstance(res, AudioError) else res}", flush=True)
            return
        for one in res if isinstance(res, list) else [res]:
            if not _write_one(one, paths[i], args, settings):
                failed.add(i)

    try:
        rec.recognize_many(paths, granularity=args.granularity, on_result=report, channels=args.channels)
    finally:
        if decoder is not None:
            decoder.close()
    print(f"{len(paths) - len(failed)} done, {len(failed)} failed", file=sys.stderr)
    return EXIT_FAILED if failed else 0


def _write_one(res, path: Path, args, settings: Settings, note: str = "") -> bool:
    """Save one result and print its line; False if it could not be saved."""
    from ..results import write_result

    channel = res.input.channel
    shown = f"{path} [{channel}]" if channel != "mix" else str(path)
    res.input.path = str(path)  # as given: same-named files of different folders stay apart
    try:
        folder = write_result(res, settings.output_dir, embedding=not args.no_embedding)
    except OSError as exc:
        print(f"FAILED  {shown}: {exc.strerror}", flush=True)
        return False
    note = (f" ({res.chunks} windows)" if res.chunks > 1 else "") + note
    warn = f"  warning: {'; '.join(res.warnings)}" if res.warnings else ""
    print(f"{_headline(res)}  {shown} -> {folder}{note}{warn}", flush=True)
    return True


def _scorer(args, settings: Settings):
    """(label keys, scorer) for the batch job: in this process, or on Ray."""
    from ..batch.job import local_scorer

    if args.ray is None:
        from ..labels import label_keys

        rec = settings.recognizer(warmup=False)
        detector = None
        if args.segment:
            from ..batch.vad import SpeechDetector

            detector = SpeechDetector()
        return label_keys(rec.labels), local_scorer(rec, detector, workers=args.workers, group=args.group,
                                                          use_hash=args.hash, channels=args.channels)
    import dataclasses

    from ..batch.distributed import ray_scorer
    from ..download import ensure_model
    from ..labels import label_keys
    from ..model import model_labels

    model_dir = ensure_model(settings.model, settings.offline)  # here, once, not in every replica
    return label_keys(model_labels(model_dir)), ray_scorer(
        dataclasses.replace(settings, model=str(model_dir)), None if args.ray == "local" else args.ray,
        segment=args.segment, use_hash=args.hash, replicas=args.replicas,
        cpus_per_replica=args.cpus_per_replica, workers=args.workers, group=args.group, channels=args.channels)


def cmd_batch(args, settings: Settings) -> int:
    from ..batch.job import run_job
    from ..batch.rows import row_schema
    from ..batch.sinks import open_embeddings, open_sink

    if args.speakers is not None:
        return cli_speakers.batch(args, lambda: _items(args.inputs, every_file=args.all_files),
                                  lambda: settings.recognizer(warmup=False))
    if args.turns:
        raise UsageError("--turns gives a row per speaker turn: use it with --speakers")
    if args.channels == "each" and args.embeddings:
        raise UsageError("--embeddings keeps one embedding per file: use it with --channels mix, left or right")
    items = _items(args.inputs, every_file=args.all_files)
    output = Path(args.output)
    keys, scorer = _scorer(args, settings)
    embeddings = open_embeddings(args.embeddings)
    named = bool(embeddings and embeddings.names_in_rows)
    sink = open_sink(output, row_schema(keys, args.segment, embedding_names=named, channels=args.channels != "mix"))
    summary = run_job(items, sink, scorer, use_hash=args.hash, retry_failed=args.retry_failed,
                      embeddings=embeddings, progress=not args.no_progress)
    rate = f"{summary.processed / summary.seconds:.2f} files/s, {summary.audio_s / summary.seconds:.1f} " \
        "audio-s/s" if summary.processed and summary.seconds else ""
    earlier = len({item_id for item_id, _ in summary.failed}) - summary.failed_now  # failed in an earlier run
    before = f" ({earlier} of them failed: see --retry-failed)" if earlier > 0 else ""
    print(f"{summary.total} files: {summary.processed - summary.failed_now} analysed, {summary.failed_now} failed, "
          f"{summary.skipped} done earlier{before}" + (f" ({rate})" if rate else "") + f" -> {output}", file=sys.stderr)
    for item_id, reason in summary.failed:
        print(f"FAILED  {item_id}: {reason}", file=sys.stderr)
    _evaluate(summary.rows, keys, output)
    return EXIT_FAILED if summary.failed else 0


def _evaluate(rows: list[dict], keys: list[str], output: Path) -> None:
    """Print and save the figures of a labelled job (nothing when no input carries a label)."""
    labelled = [r for r in rows if r.get("label")]
    if not labelled:
        return
    from ..batch.evaluation import evaluate, format_report, save_report

    ok = [r for r in labelled if r.get("emotion")]  # not failed, not silent
    ev = evaluate([r["label"] for r in ok], [r["emotion"] for r in ok], keys, failed=len(labelled) - len(ok))
    print(format_report(ev))
    saved = save_report(ev, output.with_suffix(""))
    print("saved " + ", ".join(str(p) for p in saved))


def cmd_download(args, settings: Settings) -> int:
    from ..download import download_model

    print(download_model(args.name, Path(args.target) if args.target else None, settings.offline))
    return 0


def synthetic_clips(folder: Path) -> list[Path]:
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


def cmd_verify(args, settings: Settings) -> int:
    from ..verify import COSINE_BOUND, SCORE_BOUND, base_weights_match, verify

    rec = settings.recognizer(warmup=False)
    with tempfile.TemporaryDirectory() as tmp:
        clips = [Path(item.path) for item in _items(args.audio, manifests=False)] if args.audio else []
        example = rec.engine.path / "example" / "test.wav"
        if not clips:
            clips = ([example] if example.is_file() else []) + synthetic_clips(Path(tmp))
        print(f"comparing {rec.engine.describe()} ({rec.engine.dtype_name}, {rec.engine.device}) with funasr's "
              f"AutoModel on {len(clips)} clips", flush=True)
        rows = verify(rec, clips)
    same_base = base_weights_match(rec)
    if same_base is not None:
        print(f"base model.pt sha256 {'matches' if same_base else 'DIFFERS FROM'} the one the head was trained on")
    print(f"{'clip':<32} {'granularity':<11} {'max |score diff|':>16} {'embedding cosine':>17} top-1")
    for r in rows:
        print(f"{r.name[:32]:<32} {r.granularity:<11} {r.max_score_diff:>16.2e} {r.cosine:>17.7f} "
              f"{'same' if r.same_top1 else 'DIFFERENT'}")
    ok = all(r.ok for r in rows) and same_base is not False
    print(f"largest score difference {max(r.max_score_diff for r in rows):.2e} (bound {SCORE_BOUND:g}), lowest "
          f"embedding cosine {min(r.cosine for r in rows):.7f} (bound {COSINE_BOUND}): {'PASS' if ok else 'FAIL'}")
    return 0 if ok else EXIT_FAILED


def _add_input_options(p) -> None:
    p.add_argument("--channels", choices=CHANNEL_CHOICES, default="mix",
                   help="mix: average the channels, as the reference does; left or right: that channel alone; "
                        "each: one result per channel, e.g. the two sides of a call (default: %(default)s)")
    p.add_argument("--all-files", action="store_true",
                   help="in folders, try every file, not only audio and video extensions")
    cli_speakers.add_options(p)


def _add_recognize(sub) -> None:
    p = sub.add_parser("recognize", help="score audio files or folders; one result folder per file")
    p.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR", help="audio files, or folders searched recursively")
    p.add_argument("--granularity", choices=GRANULARITIES, default="utterance",
                   help="utterance: one result per file; frame: also per-frame scores and a timeline "
                        "(default: %(default)s)")
    p.add_argument("--output-dir", default=None, help="where result folders are written (default: outputs/)")
    p.add_argument("--no-embedding", action="store_true", help="do not write embedding.npy")
    p.add_argument("--isolate-decoding", action="store_true",
                   help="decode in a worker process, so a decoder crash or hang costs one file, not the run "
                        "(files analysed as a stream are decoded in this process)")
    _add_input_options(p)
    command_options(p, cmd_recognize)


def _add_batch(sub) -> None:
    p = sub.add_parser("batch", help="score many files into one table (CSV, JSONL or Parquet); resumable")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="audio files, folders (searched recursively) or manifests (.csv/.jsonl with a path "
                        "column and optional id and label columns)")
    p.add_argument("-o", "--output", required=True, help="results.csv, results.jsonl or results.parquet")
    p.add_argument("--segment", action="store_true",
                   help="also score each stretch of speech (voice activity detection), a row per span")
    p.add_argument("--embeddings", default=None, metavar="PATH",
                   help="save utterance embeddings: a folder (one .npy per file) or a .npz file (one array "
                        "and the path and id of each row)")
    p.add_argument("--turns", action="store_true",
                   help="with --speakers: a row per speaker turn instead of a row per speaker")
    p.add_argument("--hash", action="store_true", help="resume by content hash instead of size and modification time")
    p.add_argument("--retry-failed", action="store_true", help="analyse files that failed before again")
    p.add_argument("--workers", type=int, default=2, help="decoding threads (default: %(default)s)")
    p.add_argument("--group", type=int, default=None,
                   help="decoded files handed to the model at a time (default: 4 model batches, at least 4 files)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run on Ray Data: a cluster address (e.g. auto or ray://HEAD:10001), or none "
                        "to start a local instance")
    p.add_argument("--replicas", type=int, default=None,
                   help="with --ray: model replicas (default: one per GPU, or one per --cpus-per-replica cores)")
    p.add_argument("--cpus-per-replica", type=int, default=None,
                   help="with --ray on CPUs: cores per replica (default: half the cluster's, at most 8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_input_options(p)
    command_options(p, cmd_batch)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emotion", description="Speech emotion recognition with Emotion2Vec+.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and timings")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_recognize(sub)
    _add_batch(sub)
    cli_stream.add_parser(sub)
    cli_adapt.add_parser(sub)
    cli_export.add_parser(sub)
    p = sub.add_parser("download", help="download a released model into models/<name>")
    p.add_argument("name", nargs="?", default=DEFAULT_MODEL, choices=list(KNOWN_MODELS),
                   help="which model (default: %(default)s)")
    p.add_argument("--model-dir", dest="target", default=None, help="target folder (default: models/<name>)")
    p.set_defaults(func=cmd_download)
    p = sub.add_parser("verify", help="compare our scores with funasr's on the same model and clips")
    p.add_argument("audio", nargs="*", metavar="AUDIO", help="clips (default: example/test.wav and test tones)")
    add_model_options(p)
    p.set_defaults(func=cmd_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tune_allocator()  # a run over thousands of files keeps a flat memory line
    try:
        return args.func(args, Settings.from_env().with_args(args))
    except BusyError as exc:  # out of GPU memory even one clip at a time: worth trying again
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except EmotionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
