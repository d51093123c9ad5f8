"""Who spoke when: speaker turns in a 16 kHz mono recording.

    turns = Diarizer().diarize(audio.samples, speakers="auto")   # [Turn(start, end, speaker), ...]

Three steps:

1. speech: Silero VAD's spans (emotion.batch.vad.SpeechDetector);
2. a voice print per stretch of speech: every span is cut into windows of WINDOW_S seconds, one
   every HOP_S (a short span is one window), and each window goes through Resemblyzer's GE2E
   speaker encoder (a 3-layer LSTM trained to tell speakers apart; its weights ship inside the
   `resemblyzer` wheel, so nothing is downloaded), which gives a unit vector per window;
3. clustering: average-linkage agglomerative clustering on cosine distance, cut at the number of
   speakers asked for, or, with speakers="auto", where the merge distance exceeds AUTO_THRESHOLD
   (calibrated on benchmarks/bench_speakers.py), at most max_speakers; then each window moves to
   its nearest speaker centroid (two k-means passes); with "auto", a cluster heard for less than
   MIN_SPEAKER_S is folded into the others (such clusters are mostly overlapping speech).

Each window speaks for the time closest to its centre, runs of one speaker become turns, and turns
shorter than MIN_TURN_S, or heard by a single window, are merged into a neighbour in the same
stretch of speech (a change of speaker without a pause needs two windows that agree); one
speaker's turns less than JOIN_PAUSE_S apart are one turn.

Steps 1 and 2 also run on a recording fed piece by piece, in bounded memory (the VAD's
SpeechStream, step by step; PrintStream, one stretch of speech at a time), which is how
emotion.speakers.analysis reads recordings of any length; fed a whole clip they give the same.

What it does not do: overlapping speech gets one speaker per instant (the louder or the one whose
voice print the window is closer to), a speaker who says less than about a window may be folded
into another, and with "auto" more than max_speakers voices are merged down to max_speakers.
"""

from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..audio import SAMPLE_RATE
from ..defaults import DEFAULT_MAX_SPEAKERS  # noqa: F401 (defined without torch: the command line's help shows it)
from ..errors import EmotionError

log = logging.getLogger(__name__)

WINDOW_S = 1.5  # seconds of speech per voice print
HOP_S = 0.75  # seconds between window starts in a long stretch of speech
MIN_WINDOW_S = 0.2  # seconds: shorter stretches of speech are not given a voice print of their own
MIN_TURN_S = 0.5  # seconds: shorter turns are merged into a neighbour
JOIN_PAUSE_S = 0.5  # seconds: one speaker's turns closer than this are one turn (the pause included)
MIN_RUN_WINDOWS = 2  # a speaker change inside a stretch of speech needs this many windows' agreement
AUTO_THRESHOLD = 0.40  # cosine distance between clusters above which "auto" keeps them apart
MAX_CLUSTER_WINDOWS = 2000  # windows clustered at once; longer recordings: a subsample, then all assigned
MIN_SPEAKER_S = 3.0  # seconds: with "auto", a cluster heard for less is folded into the others
ENCODER_BATCH = 64  # windows per encoder pass
REFINE_PASSES = 2
MEL_FRAMES_PER_S = 100  # Resemblyzer's mel hop is 10 ms
# Torch threads while finding speech and voice prints: the VAD's 32 ms steps and the encoder's small
# LSTM gain nothing from more, and lose much to thread hand-offs on a busy CPU (on the shared
# 2-core machine of BENCHMARKS.md, 2 threads made each over ten times slower).
TORCH_THREADS = 1


class SpeakerError(EmotionError):
    """Speaker turns cannot be found: the encoder is missing, or a setting cannot work."""


@dataclass
class Turn:
    """A stretch of one speaker's speech (seconds from the start of the recording)."""

    start: float
    end: float
    speaker: str  # "S1", "S2"... numbered by first appearance

    @property
    def duration_s(self) -> float:
        return self.end - self.start


@dataclass
class Diarization:
    """The turns of a recording and how many speakers they came from."""

    turns: list[Turn]
    speakers: list[str]  # in order of first appearance
    requested: int | str  # what was asked: a number or "auto"
    spans: list[tuple[float, float]]  # the speech found, seconds


@dataclass
class VoicePrints:
    """The speech of a recording cut into windows, and a voice print (unit vector) per window."""

    spans: list[tuple[float, float]]  # speech, seconds
    windows: list[tuple[float, float]]  # what each print heard
    regions: list[tuple[float, float]]  # the time each print speaks for
    owner: list[int]  # the span each window lies in
    embeddings: np.ndarray  # (len(windows), 256)


def check_speakers(speakers: int | str, max_speakers: int) -> None:
    """Refuse a speaker count that cannot work (SpeakerError)."""
    if isinstance(max_speakers, bool) or not isinstance(max_speakers, int) or max_speakers < 1:
        raise SpeakerError(f"max_speakers must be a whole number of at least 1, not {max_speakers!r}")
    if speakers == "auto":
        return
    if isinstance(speakers, bool) or not isinstance(speakers, int) or speakers < 1:
        raise SpeakerError(f'speakers must be "auto" or a whole number of at least 1, not {speakers!r}')


def parse_speakers(value: str) -> int | str:
    """'auto' or a whole number >= 1 from the command line."""
    if value.strip().lower() == "auto":
        return "auto"
    try:
        n = int(value)
    except ValueError:
        raise SpeakerError(f'--speakers takes "auto" or a number of speakers, not {value!r}') from None
    check_speakers(n, max(n, 1))
    return n


@contextmanager
def torch_threads(n: int):
    """Run the block with n torch intra-op threads (process-wide), then restore the setting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class SpeakerEncoder:
    """Resemblyzer's GE2E voice encoder on the CPU: one unit vector (256) per window of speech."""

    def __init__(self, device: str = "cpu"):
        try:
            from resemblyzer import VoiceEncoder
            from resemblyzer.audio import normalize_volume, wav_to_mel_spectrogram
            from resemblyzer.hparams import audio_norm_target_dBFS
        except ImportError as exc:
            raise SpeakerError(f"speaker turns need the resemblyzer package ({exc}): "
                               "pip install -r requirements.txt") from None
        import torch

        self._torch = torch
        self._encoder = VoiceEncoder(device, verbose=False)
        self._mel = wav_to_mel_spectrogram
        self._normalize = lambda wav: normalize_volume(wav, audio_norm_target_dBFS, increase_only=True)

    def forward(self, mels: list[np.ndarray]) -> np.ndarray:
        """Unit vectors (n, 256) of mel spectrograms of equal length."""
        with self._torch.inference_mode():
            return self._encoder(self._torch.from_numpy(np.stack(mels))).numpy()

    def mel(self, piece: np.ndarray) -> np.ndarray:
        """The mel spectrogram (frames, 40) of one stretch of speech, its volume normalised."""
        return self._mel(self._normalize(piece.astype(np.float32)))

    def prints(self, spans: list[tuple[float, float]]) -> "PrintStream":
        """Voice prints of the speech `spans` (seconds) of a clip that is fed to the stream."""
        return PrintStream(self, spans)


class HeldAudio:
    """The part of a 16 kHz stream still needed: pieces pushed in order, spans taken out by their
    sample positions from the start of the stream, what is no longer needed dropped."""

    def __init__(self):
        self.start = self.end = 0  # the samples held: [start, end)
        self._data = np.zeros(0, np.float32)

    def push(self, samples: np.ndarray) -> None:
        self._data = samples if not len(self._data) else np.concatenate([self._data, samples])
        self.end += len(samples)

    def take(self, start: int, end: int) -> np.ndarray:
        """Samples [start, end) of the stream (the part held: a span that ran past the end is cut there)."""
        return self._data[max(start, self.start) - self.start:max(min(end, self.end), self.start) - self.start]

    def drop_before(self, sample: int) -> None:
        sample = min(max(sample, self.start), self.end)
        self._data = self._data[sample - self.start:]
        self.start = sample


class PrintStream:
    """Voice prints of the speech of a 16 kHz mono clip fed piece by piece (push), in bounded
    memory: each stretch of speech (`spans`, seconds) is cut out once all of it has come, its mel
    spectrogram built and its windows (windows_of) encoded, full ones ENCODER_BATCH at a time;
    only the prints are kept, 256 floats per window.  Fed the whole clip at once it is the same."""

    def __init__(self, encoder: SpeakerEncoder, spans: list[tuple[float, float]]):
        self.encoder, self.spans = encoder, list(spans)
        self.windows, self.regions, self.owner = windows_of(self.spans)
        self.embeddings = np.zeros((len(self.windows), 256), np.float32)
        self._mine = [[] for _ in self.spans]  # the windows of each span
        for i, k in enumerate(self.owner):
            self._mine[k].append(i)
        self._next = 0  # the next span to cut out
        self._held = HeldAudio()
        self._full: list[np.ndarray] = []
        self._full_idx: list[int] = []

    def push(self, samples: np.ndarray) -> None:
        self._held.push(samples)
        while self._next < len(self.spans) and round(self.spans[self._next][1] * SAMPLE_RATE) <= self._held.end:
            self._cut(self._next)
            self._next += 1
        more = self._next < len(self.spans)
        self._held.drop_before(round(self.spans[self._next][0] * SAMPLE_RATE) if more else self._held.end)

    def finish(self) -> VoicePrints:
        """The prints of all the speech (a span running past the end of what was pushed: what came)."""
        while self._next < len(self.spans):
            self._cut(self._next)
            self._next += 1
        if self._full:
            self._encode_full()
        return VoicePrints(self.spans, self.windows, self.regions, self.owner, self.embeddings)

    def _cut(self, k: int) -> None:
        if not self._mine[k]:
            return
        s, e = self.spans[k]
        mel = self.encoder.mel(self._held.take(round(s * SAMPLE_RATE), round(e * SAMPLE_RATE)))
        frames = round(WINDOW_S * MEL_FRAMES_PER_S)
        for i in self._mine[k]:
            start, end = self.windows[i]
            first = round((start - s) * MEL_FRAMES_PER_S)
            piece = mel[first:first + max(1, round((end - start) * MEL_FRAMES_PER_S))]
            if len(piece) == frames:
                self._full.append(piece)
                self._full_idx.append(i)
                if len(self._full) == ENCODER_BATCH:
                    self._encode_full()
            else:
                self.embeddings[i] = self.encoder.forward([piece])[0]

    def _encode_full(self) -> None:
        self.embeddings[self._full_idx] = self.encoder.forward(self._full)
        self._full, self._full_idx = [], []


def windows_of(spans: list[tuple[float, float]]) -> tuple[list[tuple[float, float]], list[tuple[float, float]], list[int]]:
    """(windows, the time each speaks for, the span each lies in): windows of WINDOW_S every HOP_S
    over each span (a span shorter than WINDOW_S is one window); each window speaks for the time
    nearer its centre than any other window's centre in its span."""
    windows, regions, owner = [], [], []
    for k, (s, e) in enumerate(spans):
        length = e - s
        if length < MIN_WINDOW_S:
            continue
        if length <= WINDOW_S:
            starts = [s]
        else:
            n = math.ceil((length - WINDOW_S) / HOP_S) + 1
            starts = [min(s + i * HOP_S, e - WINDOW_S) for i in range(n)]
        wins = [(a, min(a + WINDOW_S, e)) for a in starts]
        centres = [(a + b) / 2 for a, b in wins]
        for i, w in enumerate(wins):
            lo = s if i == 0 else (centres[i - 1] + centres[i]) / 2
            hi = e if i == len(wins) - 1 else (centres[i] + centres[i + 1]) / 2
            windows.append(w)
            regions.append((lo, hi))
            owner.append(k)
    return windows, regions, owner


def cluster(embeddings: np.ndarray, speakers: int | str, max_speakers: int = DEFAULT_MAX_SPEAKERS,
            weights: np.ndarray | None = None, threshold: float = AUTO_THRESHOLD) -> np.ndarray:
    """A speaker index (0..k-1) for each unit vector: average-linkage clustering on cosine
    distance cut at `speakers` clusters, or at `threshold` for "auto" (at most max_speakers),
    then REFINE_PASSES nearest-centroid passes; with "auto", clusters heard for less than
    MIN_SPEAKER_S are folded into the others (when some are heard for longer).  `weights` (seconds each vector speaks for)
    weigh the centroids."""
    from scipy.cluster.hierarchy import fcluster, linkage

    n = len(embeddings)
    if n == 0:
        return np.zeros(0, int)
    limit = max_speakers if speakers == "auto" else speakers
    if n == 1 or limit == 1:
        return np.zeros(n, int)
    weights = np.ones(n) if weights is None else np.asarray(weights, float)
    pick = np.unique(np.linspace(0, n - 1, min(n, MAX_CLUSTER_WINDOWS)).round().astype(int))
    tree = linkage(embeddings[pick].astype(np.float64), method="average", metric="cosine")
    if speakers == "auto":
        labels = fcluster(tree, t=threshold, criterion="distance")
        if labels.max() > max_speakers:
            labels = fcluster(tree, t=max_speakers, criterion="maxclust")
    else:
        labels = fcluster(tree, t=min(speakers, len(pick)), criterion="maxclust")
    labels = labels - 1
    centroids = np.stack([(embeddings[pick][labels == c] * weights[pick][labels == c, None]).sum(0)
                          for c in range(labels.max() + 1)])
    for _ in range(REFINE_PASSES):
        centroids /= np.linalg.norm(centroids, axis=1, keepdims=True) + 1e-12
        assign = (embeddings @ centroids.T).argmax(axis=1)
        kept = [c for c in range(len(centroids)) if (assign == c).any()]
        centroids = np.stack([(embeddings[assign == c] * weights[assign == c, None]).sum(0) for c in kept])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True) + 1e-12
    assign = (embeddings @ centroids.T).argmax(axis=1)
    if speakers == "auto":  # a "speaker" heard for a moment is a mixture (overlap, noise): folded in
        spoken = np.array([weights[assign == c].sum() for c in range(len(centroids))])
        keep = spoken >= MIN_SPEAKER_S
        if keep.any() and not keep.all():
            assign = (embeddings @ centroids[keep].T).argmax(axis=1)
    return assign


def _runs(regions: list[tuple[float, float]], labels: list[int]) -> list[list]:
    """Consecutive regions of one label merged; then runs under MIN_TURN_S or of fewer than
    MIN_RUN_WINDOWS windows are merged into the longer neighbour (the shortest first):
    [[start, end, label], ...]."""
    runs: list[list] = []  # [start, end, label, windows]
    for (lo, hi), lab in zip(regions, labels):
        if runs and runs[-1][2] == lab:
            runs[-1][1] = hi
            runs[-1][3] += 1
        else:
            runs.append([lo, hi, lab, 1])

    def weak(run: list) -> bool:
        return run[1] - run[0] < MIN_TURN_S or run[3] < MIN_RUN_WINDOWS

    while len(runs) > 1 and any(weak(r) for r in runs):
        i = min((r for r in range(len(runs)) if weak(runs[r])), key=lambda r: (runs[r][3], runs[r][1] - runs[r][0]))
        left = runs[i - 1] if i > 0 else None
        right = runs[i + 1] if i + 1 < len(runs) else None
        target = left if right is None or (left is not None and left[1] - left[0] >= right[1] - right[0]) else right
        target[0], target[1] = min(target[0], runs[i][0]), max(target[1], runs[i][1])
        target[3] += runs[i][3]
        del runs[i]
        merged: list[list] = []
        for run in runs:
            if merged and merged[-1][2] == run[2]:
                merged[-1][1] = run[1]
                merged[-1][3] += run[3]
            else:
                merged.append(run)
        runs = merged
    return [r[:3] for r in runs]


def join_turns(turns: list[Turn]) -> list[Turn]:
    """Turns in time order, one speaker's turns less than JOIN_PAUSE_S apart made one (the pause
    included)."""
    joined: list[Turn] = []
    for t in sorted(turns, key=lambda t: t.start):
        last = next((j for j in reversed(joined) if j.speaker == t.speaker), None)
        if last is not None and last is joined[-1] and t.start - last.end < JOIN_PAUSE_S:
            last.end = max(last.end, t.end)
        else:
            joined.append(Turn(t.start, t.end, t.speaker))
    return joined


class Diarizer:
    """Speaker turns of 16 kHz mono recordings.  Loads the VAD and the speaker encoder once."""

    def __init__(self, detector=None, encoder: SpeakerEncoder | None = None):
        from ..batch.vad import SpeechDetector

        self.detector = detector or SpeechDetector()
        self.encoder = encoder or SpeakerEncoder()

    def diarize(self, samples: np.ndarray, speakers: int | str = "auto",
                max_speakers: int = DEFAULT_MAX_SPEAKERS,
                spans: list[tuple[float, float]] | None = None) -> Diarization:
        """Turns of a 16 kHz mono clip with `speakers` voices (a number, or "auto": estimated, at
        most max_speakers).  `spans` (seconds) skips the VAD when the speech is already known."""
        check_speakers(speakers, max_speakers)
        return self.turns(self.voice_prints(samples, spans), speakers, max_speakers)

    def speech(self, samples: np.ndarray) -> list[tuple[float, float]]:
        """(start, end) seconds of the speech in a 16 kHz mono clip (the VAD, on TORCH_THREADS)."""
        with torch_threads(TORCH_THREADS):
            return self.detector.speech_spans(samples)

    def voice_prints(self, samples: np.ndarray, spans: list[tuple[float, float]] | None = None) -> VoicePrints:
        """The speech of a 16 kHz mono clip (found with the VAD unless `spans` is given) and a
        voice print per window of it."""
        with torch_threads(TORCH_THREADS):
            if spans is None:
                spans = self.detector.speech_spans(samples)
            stream = self.encoder.prints(spans)
            stream.push(samples)
            return stream.finish()

    @staticmethod
    def turns(prints: VoicePrints, speakers: int | str = "auto", max_speakers: int = DEFAULT_MAX_SPEAKERS,
              threshold: float = AUTO_THRESHOLD) -> Diarization:
        """Turns from voice prints: clustered (see cluster()), runs merged, short turns folded in."""
        check_speakers(speakers, max_speakers)
        if not prints.windows:
            return Diarization([], [], speakers, prints.spans)
        labels = cluster(prints.embeddings, speakers, max_speakers,
                         weights=np.array([b - a for a, b in prints.regions]), threshold=threshold)
        log.info("%d windows of speech in %d spans: %d speakers", len(prints.windows), len(prints.spans),
                 len(set(labels.tolist())))
        turns: list[Turn] = []
        for k in range(len(prints.spans)):
            mine = [i for i in range(len(prints.windows)) if prints.owner[i] == k]
            if mine:
                for lo, hi, lab in _runs([prints.regions[i] for i in mine], [int(labels[i]) for i in mine]):
                    turns.append(Turn(round(lo, 3), round(hi, 3), str(lab)))
        turns = join_turns(turns)
        names: dict[str, str] = {}
        for t in turns:  # numbered by first appearance
            t.speaker = names.setdefault(t.speaker, f"S{len(names) + 1}")
        return Diarization(turns, list(names.values()), speakers, prints.spans)
