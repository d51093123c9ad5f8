"""Who spoke when, measured: diarization error rate (DER), speaker count and speed on
conversations built from real recordings of different people.

    python benchmarks/bench_speakers.py [--data DIR] [--per-count 5] [--hour]

The recordings: the 100 LibriSpeech test-other utterances (10 speakers, 10 each; LibriSpeech is
CC BY 4.0, (c) 2014 Vassil Panayotov) that the Resemblyzer repository (github.com/resemble-ai/
Resemblyzer, Apache-2.0) keeps in audio_data/librispeech_test-other/.  They are not committed
here: clone that repository and pass --data .../audio_data/librispeech_test-other (the default is
the copy this benchmark was first run on).  The Resemblyzer encoder was trained on other
LibriSpeech speakers (train-other), VoxCeleb and VCTK; these ten are not among them.

Each conversation takes 2, 3 or 4 of the ten speakers (drawn at random) and 16-24 turns: pieces of
their utterances 1.5-8 s long, the next speaker always another one, with pauses (0.3-1.5 s),
quick turns (0-0.2 s) and overlaps (0.2-0.6 s of both speaking, one turn in six).  The reference
is Silero VAD's speech in each piece (the pauses inside an utterance are not speech), labelled with
its speaker.  DER is scored as NIST's md-eval does: on 10 ms frames, outside a 0.25 s collar
around every reference boundary, with the best one-to-one mapping of found to true speakers
(Hungarian), missed speech + false alarm + speaker confusion over the reference speech time
(overlapped speech counts once per speaker).  --hour times an hour of conversation end to end:
written as a file and analysed by recognize_speakers (streamed: the file is read three times,
VAD and whole-file emotion, voice prints, each turn's emotion) in a fresh process, and its first
10 min the same way, with the peak memory of each (it does not grow with the length).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import cpu_name  # noqa: E402
from emotion.audio import SAMPLE_RATE, load_audio  # noqa: E402
from emotion.speakers.diarize import AUTO_THRESHOLD, Diarizer  # noqa: E402

DATA = Path("/tmp/libri/librispeech_test-other")
COLLAR_S = 0.25
FRAME_S = 0.01
GOALS = {2: 0.15, 4: 0.25}  # DER at most
OVERLAP_P = 1 / 6
QUICK_P = 1 / 4


def load_speakers(folder: Path) -> dict[str, list[np.ndarray]]:
    """speaker id -> its utterances (16 kHz mono)."""
    out = {}
    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        out[d.name] = [load_audio(f).samples for f in sorted(d.glob("*.flac"))]
    if len(out) < 4:
        raise SystemExit(f"{folder}: need folders of at least 4 speakers' .flac files (see the docstring)")
    return out


def conversation(rng, voices: dict[str, list[np.ndarray]], n_speakers: int, turns: int, diarizer):
    """(samples, reference [(start, end, speaker)]) of one built conversation."""
    who = list(rng.choice(sorted(voices), n_speakers, replace=False))
    pieces, ref = [], []
    cursor = 0
    order = []
    for t in range(turns):  # every speaker at least twice, never the same twice in a row
        choices = [s for s in who if not order or s != order[-1]]
        unseen = [s for s in choices if s not in order]
        order.append(unseen[0] if unseen else choices[rng.integers(len(choices))])
    for t, spk in enumerate(order):
        utt = voices[spk][rng.integers(len(voices[spk]))]
        length = int(rng.uniform(1.5, 8.0) * SAMPLE_RATE)
        start = int(rng.integers(0, max(1, len(utt) - length)))
        piece = utt[start:start + length]
        if t > 0:
            roll = rng.random()
            if roll < OVERLAP_P:
                gap = -rng.uniform(0.2, 0.6)
            elif roll < OVERLAP_P + QUICK_P:
                gap = rng.uniform(0.0, 0.2)
            else:
                gap = rng.uniform(0.3, 1.5)
            cursor = max(0, cursor + int(gap * SAMPLE_RATE))
        pieces.append((cursor, piece))
        for s, e in diarizer.speech(piece):
            ref.append((cursor / SAMPLE_RATE + s, cursor / SAMPLE_RATE + e, spk))
        cursor += len(piece)
    out = np.zeros(cursor, np.float32)
    for at, piece in pieces:
        out[at:at + len(piece)] += piece
    return out, ref


def frames(segments, n: int, names: list[str]) -> np.ndarray:
    """(n, len(names)) booleans: who speaks in each 10 ms frame."""
    grid = np.zeros((n, len(names)), bool)
    for s, e, who in segments:
        grid[int(round(s / FRAME_S)):int(round(e / FRAME_S)), names.index(who)] = True
    return grid


def der(reference, hypothesis, duration_s: float, collar_s: float = COLLAR_S) -> dict:
    """md-eval style DER: {'der', 'missed', 'false_alarm', 'confusion'} as fractions of the scored
    reference speech."""
    from scipy.optimize import linear_sum_assignment

    n = int(round(duration_s / FRAME_S)) + 1
    rnames = sorted({r[2] for r in reference})
    hnames = sorted({h[2] for h in hypothesis})
    ref, hyp = frames(reference, n, rnames), frames(hypothesis, n, hnames)
    scored = np.ones(n, bool)
    c = int(round(collar_s / FRAME_S))
    for s, e, _ in reference:
        for edge in (int(round(s / FRAME_S)), int(round(e / FRAME_S))):
            scored[max(0, edge - c):edge + c] = False
    ref, hyp = ref[scored], hyp[scored]
    mapped = np.zeros_like(ref)
    if hnames and rnames:
        overlap = hyp.T.astype(float) @ ref.astype(float)  # (H, R) frames together
        rows, cols = linear_sum_assignment(-overlap)
        for h, r in zip(rows, cols):
            mapped[:, r] |= hyp[:, h]
    n_ref, n_hyp = ref.sum(1), hyp.sum(1)
    correct = (mapped & ref).sum(1)
    total = max(int(n_ref.sum()), 1)
    missed = np.maximum(0, n_ref - n_hyp).sum() / total
    false_alarm = np.maximum(0, n_hyp - n_ref).sum() / total
    confusion = (np.minimum(n_ref, n_hyp) - correct).sum() / total
    return {"der": missed + false_alarm + confusion, "missed": missed, "false_alarm": false_alarm,
            "confusion": confusion}


def cpu_s() -> float:
    """CPU seconds this process has used (user + system): the work, whatever else runs."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DATA, help="folder of speaker folders of .flac (default: %(default)s)")
    p.add_argument("--per-count", type=int, default=5, help="conversations per speaker count (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hour", action="store_true", help="also time an hour of conversation (and its first 10 "
                   "min) end to end as files, each in a fresh process, with its peak memory")
    p.add_argument("--model", default=None, help="with --hour: the emotion model folder (default: a tiny "
                   "random-weight model, so that the times are those of the speaker steps and the reading)")
    p.add_argument("--stream-above", type=float, default=300.0, help="with --hour: files longer than this many "
                   "seconds are streamed (default: %(default)s, so both are)")
    p.add_argument("--thresholds", default=None,
                   help="comma-separated AUTO_THRESHOLD values to compare (calibration), e.g. 0.3,0.4,0.5")
    args = p.parse_args()
    load_before = f"{os.getloadavg()[0]:.1f}"
    voices = load_speakers(args.data)
    diarizer = Diarizer()
    rng = np.random.default_rng(args.seed)
    print(f"CPU: {cpu_name()}; data: {args.data} ({len(voices)} speakers); auto threshold {AUTO_THRESHOLD}")
    rows = []
    thresholds = [float(t) for t in args.thresholds.split(",")] if args.thresholds else []
    calib: dict[float, list] = {t: [] for t in thresholds}
    audio_s = spent = cpu_spent = 0.0
    for n_speakers in (2, 3, 4):
        for k in range(args.per_count):
            samples, ref = conversation(rng, voices, n_speakers, int(rng.integers(16, 25)), diarizer)
            duration = len(samples) / SAMPLE_RATE
            start, cpu_start = time.perf_counter(), cpu_s()
            prints = diarizer.voice_prints(samples)
            auto = diarizer.turns(prints, "auto")
            spent += time.perf_counter() - start
            cpu_spent += cpu_s() - cpu_start
            audio_s += duration
            given = diarizer.turns(prints, n_speakers)
            row = {"n": n_speakers, "duration": duration,
                   "given": der(ref, [(t.start, t.end, t.speaker) for t in given.turns], duration),
                   "auto": der(ref, [(t.start, t.end, t.speaker) for t in auto.turns], duration),
                   "found": len(auto.speakers)}
            rows.append(row)
            print(f"{n_speakers} speakers, {duration:5.1f} s: DER given {row['given']['der']:.1%}, "
                  f"auto {row['auto']['der']:.1%} with {row['found']} speakers", flush=True)
            for t in thresholds:
                res = diarizer.turns(prints, "auto", threshold=t)
                calib[t].append((n_speakers, len(res.speakers),
                                 der(ref, [(x.start, x.end, x.speaker) for x in res.turns], duration)["der"]))
    if rows:
        table(rows, audio_s, spent, cpu_spent, load_before)
    for t in thresholds:
        got = calib[t]
        print(f"threshold {t}: count right {sum(a == b for a, b, _ in got)}/{len(got)}, mean DER "
              f"{np.mean([d for *_, d in got]):.1%}, found {[b for _, b, _ in got]}")
    if args.hour:
        time_hour(args, rng, voices, diarizer)


def table(rows: list[dict], audio_s: float, spent: float, cpu_spent: float, load_before: str) -> None:
    print()
    print("| speakers | recordings | audio | DER (count given) | missed | false alarm | confusion "
          "| DER (auto) | count right (auto) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in (2, 3, 4):
        mine = [r for r in rows if r["n"] == n]
        tot = sum(r["duration"] for r in mine)

        def mean(kind, key):  # weighted by duration
            return sum(r[kind][key] * r["duration"] for r in mine) / tot

        goal = f" (goal <= {GOALS[n]:.0%})" if n in GOALS else ""
        print(f"| {n} | {len(mine)} | {tot / 60:.1f} min | {mean('given', 'der'):.1%}{goal} | "
              f"{mean('given', 'missed'):.1%} | {mean('given', 'false_alarm'):.1%} | "
              f"{mean('given', 'confusion'):.1%} | {mean('auto', 'der'):.1%} | "
              f"{sum(r['found'] == n for r in mine)}/{len(mine)} |")
    right = sum(r["found"] == r["n"] for r in rows)
    print(f"\ncount right with auto: {right}/{len(rows)} ({right / len(rows):.0%}; goal >= 80 %)")
    print(f"speed over these recordings: {spent / audio_s * 3600 / 60:.1f} min per hour of audio "
          f"(VAD + encoder + clustering; {cpu_spent / audio_s * 3600 / 60:.1f} CPU-min), "
          f"peak RSS {peak_rss_mb():.0f} MB; load average before/after: {load_before} / {os.getloadavg()[0]:.1f}")


# One recording, end to end, in a fresh process: its own peak memory (VmHWM: a child started by
# vfork inherits its parent's high-water mark in ru_maxrss), wall and CPU time, load average.
END_TO_END = """
import json, os, resource, sys, time
from emotion import Recognizer
from emotion.sources import AudioOpener
from emotion.speakers import Diarizer, recognize_speakers

model, path, above = sys.argv[1], sys.argv[2], float(sys.argv[3])
rec = Recognizer.load(model, device="cpu", warmup=False, opener=AudioOpener(None, stream_above_s=above))
diarizer = Diarizer()
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
load, start, cpu_start = os.getloadavg()[0], time.perf_counter(), cpu()
talk = recognize_speakers(rec, path, "auto", diarizer=diarizer)
print(json.dumps({"wall_s": time.perf_counter() - start, "cpu_s": cpu() - cpu_start, "load": [load, os.getloadavg()[0]],
                  "streamed": not rec.opener.read_whole(path), "duration_s": talk.result.input.duration_s,
                  "turns": len(talk.turns), "speakers": len(talk.speakers),
                  "peak_mb": int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024}))
"""


def time_hour(args, rng, voices, diarizer) -> None:
    """An hour of 4-speaker conversations (and its first 10 min) as 16-bit WAV files, each analysed
    end to end by recognize_speakers (read as a stream, VAD, voice prints, clustering, every turn's
    emotion) in a fresh process."""
    import json
    import tempfile

    import soundfile as sf

    folder = Path(tempfile.mkdtemp(prefix="bench-speakers-"))
    model = args.model
    if model is None:  # the emotion model's own cost is not what this measures: a tiny random one
        from tests.checkpoints import write_model_dir

        model = write_model_dir(folder / "tiny", "tiny", seed=1)
    hour, ten = folder / "hour.wav", folder / "ten.wav"
    with sf.SoundFile(hour, "w", SAMPLE_RATE, 1, subtype="PCM_16") as out, \
            sf.SoundFile(ten, "w", SAMPLE_RATE, 1, subtype="PCM_16") as first:
        total = 0
        while total < 3600 * SAMPLE_RATE:
            samples, _ = conversation(rng, voices, 4, 24, diarizer)
            samples = np.clip(samples[:3600 * SAMPLE_RATE - total], -1, 1)
            out.write(samples)
            if total < 600 * SAMPLE_RATE:
                first.write(samples[:600 * SAMPLE_RATE - total])
            total += len(samples)
    print(f"\nend to end, each in a fresh process (emotion model: {args.model or 'a tiny random-weight model'}; "
          f"files over {args.stream_above:g} s streamed; ONEDNN_PRIMITIVE_CACHE_CAPACITY="
          f"{os.environ.get('ONEDNN_PRIMITIVE_CACHE_CAPACITY', 'unset')}):")
    for label, path in (("10 min", ten), ("an hour", hour)):
        p = subprocess.run([sys.executable, "-c", END_TO_END, str(model), str(path), str(args.stream_above)],
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        if p.returncode:
            raise SystemExit(f"{label}: failed\n{p.stderr}")
        r = json.loads(p.stdout.strip().splitlines()[-1])
        print(f"{label} ({r['duration_s'] / 60:.1f} min{', streamed' if r['streamed'] else ', held whole'}): "
              f"{r['wall_s'] / 60:.1f} min wall, {r['cpu_s'] / 60:.1f} CPU-min (load average {r['load'][0]:.1f} / "
              f"{r['load'][1]:.1f}), {r['turns']} turns, {r['speakers']} speakers found, peak memory "
              f"{r['peak_mb']:.0f} MB", flush=True)
    for f in (hour, ten):
        f.unlink()

if __name__ == "__main__":
    main()
