"""Who felt what in a conversation: speaker turns (emotion.speakers.diarize), an emotion per turn, and a
summary per speaker.

    from emotion import Recognizer
    from emotion.speakers import recognize_speakers

    analysis = recognize_speakers(Recognizer.load(), "call.wav", speakers="auto", max_speakers=4)
    for s in analysis.speakers:
        print(s.speaker, s.speaking_s, s.share, s.emotion, s.change)
    analysis.result.to_dict()["speakers"]          # the section result.json gets

Each turn is cut out and analysed as a clip of its own (its windows cut and scored as the span held
alone would be), so a turn's emotion is exactly what the same span gives when analysed alone.
Recordings of any length: the file is read window by window (held whole, or streamed when long,
as the recognizer's opener decides), in three passes that keep times, voice prints and scores but
never the audio, so memory does not grow with the length (see recognize_speakers).  A speaker's distribution
is the speaking-time-weighted mean of its turns' scores, its emotion the largest of them; `change`
compares the turns in the first and the last third of the recording.

A stereo call with channels="each" is taken as one speaker per side: each channel's speech is its
speaker's turns, with no clustering.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..audio import SAMPLE_RATE, Audio
from ..recognizer import Tally
from ..results import EmotionResult
from ..sources import ClipSource, Source, Window, window_bounds
from .diarize import (DEFAULT_MAX_SPEAKERS, TORCH_THREADS, Diarizer, HeldAudio, Turn, check_speakers, join_turns,
                      torch_threads)

log = logging.getLogger(__name__)

NO_SPEECH = "no speech"  # the reason given when the VAD finds none


@dataclass
class TurnEmotion:
    """One turn and the emotion of its span analysed as a clip of its own."""

    start: float  # seconds from the start of the recording
    end: float
    speaker: str
    emotion: str | None  # None when the span is silent
    confidence: float | None
    scores: dict[str, float]

    @property
    def duration_s(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "speaker": self.speaker,
                "emotion": self.emotion, "confidence": None if self.confidence is None else round(self.confidence, 4),
                "scores": {k: round(v, 6) for k, v in self.scores.items()}}


@dataclass
class SpeakerSummary:
    """What one speaker said, for how long, and how they sounded."""

    speaker: str
    turns: int
    speaking_s: float
    share: float  # of all speaking time
    emotion: str | None  # the largest of `scores` (None: every turn silent)
    confidence: float | None
    scores: dict[str, float]  # speaking-time-weighted mean of the turns' scores
    change: dict = field(default_factory=dict)  # first_third / last_third: emotion of those turns (or None)

    def to_dict(self) -> dict:
        return {"speaker": self.speaker, "turns": self.turns, "speaking_s": round(self.speaking_s, 3),
                "share": round(self.share, 4), "emotion": self.emotion,
                "confidence": None if self.confidence is None else round(self.confidence, 4),
                "scores": {k: round(v, 6) for k, v in self.scores.items()}, "change": self.change}


@dataclass
class SpeakerAnalysis:
    """A recording's speakers: the whole-file result, every turn, a summary per speaker."""

    result: EmotionResult  # the whole recording (its to_dict() holds this analysis as "speakers")
    turns: list[TurnEmotion]
    speakers: list[SpeakerSummary]
    requested: int | str  # what was asked: a number, "auto", or "channels"
    max_speakers: int
    method: str  # "clustering" or "channels" (one speaker per channel)
    reason: str | None = None  # why there are no speakers ("no speech: ...")

    def to_dict(self) -> dict:
        """The `speakers` section of result.json (see the README's result section)."""
        return {"count": len(self.speakers), "requested": self.requested, "max_speakers": self.max_speakers,
                "method": self.method, "reason": self.reason,
                "speakers": [s.to_dict() for s in self.speakers], "turns": [t.to_dict() for t in self.turns]}

    def describe(self) -> str:
        """'2 speakers', '1 speaker' or 'no speech: <why>'."""
        if not self.speakers:
            return self.reason or NO_SPEECH
        return f"{len(self.speakers)} speaker{'s' if len(self.speakers) != 1 else ''}"


def _weighted(turns: list[TurnEmotion], keys: list[str]) -> tuple[str | None, float | None, dict[str, float]]:
    """(emotion, confidence, scores): the speaking-time-weighted mean of non-silent turns' scores."""
    heard = [t for t in turns if t.emotion is not None]
    total = sum(t.duration_s for t in heard)
    if not heard or total <= 0:
        return None, None, {}
    scores = {k: sum(t.scores[k] * t.duration_s for t in heard) / total for k in keys}
    best = max(keys, key=lambda k: scores[k])
    return best, scores[best], scores


def summarise(turns: list[TurnEmotion], keys: list[str], duration_s: float) -> list[SpeakerSummary]:
    """A summary per speaker, in order of first appearance."""
    order = list(dict.fromkeys(t.speaker for t in turns))
    everyone = sum(t.duration_s for t in turns) or 1.0
    out = []
    for who in order:
        mine = [t for t in turns if t.speaker == who]
        emotion, confidence, scores = _weighted(mine, keys)
        first = [t for t in mine if (t.start + t.end) / 2 < duration_s / 3]
        last = [t for t in mine if (t.start + t.end) / 2 >= 2 * duration_s / 3]
        change = {"first_third": _weighted(first, keys)[0], "last_third": _weighted(last, keys)[0]}
        speaking = sum(t.duration_s for t in mine)
        out.append(SpeakerSummary(who, len(mine), speaking, speaking / everyone, emotion, confidence, scores, change))
    return out


def _open(recognizer, source, sample_rate: int | None, channels: str, name: str | None) -> Source:
    """A Source: one given, decoded clips (one per channel), a path (the recognizer's opener: held
    whole, or streamed when long), an Audio, or samples with their sample_rate."""
    if isinstance(source, Source):
        return source
    if isinstance(source, list) and source and all(isinstance(c, Audio) for c in source):
        return ClipSource(source, recognizer.opener.window_s)
    return recognizer.source(source, sample_rate, name, channels)


def _channel_choice(source: Source) -> str:
    """The channel choice that gives a source's channels again."""
    if source.names == ["mix"]:
        return "mix"
    return "each" if len(source.names) > 1 or source.names == ["mono"] else source.names[0]


def _again(recognizer, source: Source) -> Source:
    """The source's windows once more: a source held whole as it is, a streamed file decoded again
    (the same windows: its samples do not depend on how often it is read)."""
    if not source.streamed:
        return source
    return recognizer.opener.stream(source.path, _channel_choice(source), source.sha256, source.window_s)


def _mixed(clips: list[np.ndarray]) -> np.ndarray:
    """One clip of a window's channels: the only one, or their mean."""
    return clips[0] if len(clips) == 1 else np.mean(clips, axis=0).astype(np.float32)


def _whole_tally(recognizer, source: Source, granularity: str) -> Tally:
    """The tally of the whole recording: its only channel, or the mix of its channels (held whole:
    as a clip of its own, so the result keeps its audio; streamed: described once it has been read)."""
    if len(source.names) == 1:
        return recognizer.tallies(source, granularity)[0]
    if source.audio is not None:
        first = source.clips[0]
        mix = Audio(_mixed(source.audio), first.name, first.source_rate, first.channels, first.sha256,
                    list(first.warnings), first.decode_ms, first.resample_ms, channel="mix")
        return recognizer.tallies(ClipSource([mix], source.window_s, source.path), granularity)[0]
    return Tally(source, "mix", granularity, keep_frames=False)  # its source is set by _described


def _described(tally: Tally, source: Source) -> None:
    """A streamed mix's tally given the stream's description, complete now that it has been read."""
    if tally.source is source and len(source.names) > 1:
        tally.source = Source(source.name, source.source_rate, source.channels, ["mix"], source.sha256,
                              source.path, list(source.warnings), source.decode_ms, source.resample_ms,
                              source.samples, source.window_s, streamed=True)


@dataclass
class _Cut:
    """A turn being cut out of the stream: its span's tally and its windows (as the span held alone
    would be cut: emotion.sources.window_bounds), from the turn's first sample."""

    tally: Tally
    channel: int
    start: int
    bounds: list[tuple[int, int]]
    done: int = 0  # windows handed over

    def needs(self) -> int:
        """The first sample still needed."""
        return self.start + self.bounds[self.done][0] if self.done < len(self.bounds) else -1


class _TurnCutter:
    """Cuts each turn's windows out of a recording's windows as they stream, holding only the
    audio of windows not yet complete (a turn of any length costs at most a window)."""

    def __init__(self, recognizer, source: Source, found: list[tuple[int, Turn]]):
        window = int(source.window_s * SAMPLE_RATE)
        self.cuts = []
        for channel, t in found:
            start, end = round(t.start * SAMPLE_RATE), min(round(t.end * SAMPLE_RATE), source.samples)
            span = Source(f"{source.name}[{t.start:.2f}-{t.end:.2f}]", source.source_rate, source.channels,
                          [source.names[channel]], samples=end - start, window_s=source.window_s, streamed=True)
            self.cuts.append(_Cut(recognizer.tallies(span)[0], channel, start,
                                  window_bounds(end - start, window) if end > start else []))
        self._held = [HeldAudio() for _ in source.names]
        self._first = 0  # cuts before this one are complete

    def push(self, clips: list[np.ndarray]) -> list[tuple[Tally, int, np.ndarray]]:
        """The windows of turns that the recording's next window completes: (tally, offset, clip)."""
        for held, clip in zip(self._held, clips):
            held.push(clip)
        ready = []
        for cut in self.cuts[self._first:]:
            held = self._held[cut.channel]
            if cut.start >= held.end:
                break
            while cut.done < len(cut.bounds) and cut.start + cut.bounds[cut.done][1] <= held.end:
                lo, hi = cut.bounds[cut.done]
                ready.append((cut.tally, lo, held.take(cut.start + lo, cut.start + hi)))
                cut.done += 1
        while self._first < len(self.cuts) and self.cuts[self._first].needs() < 0:
            self._first += 1
        for channel, held in enumerate(self._held):
            needed = [c.needs() for c in self.cuts[self._first:] if c.channel == channel and c.needs() >= 0]
            held.drop_before(min(needed, default=held.end))
        return ready


def _scored(recognizer, source: Source, each: Callable[[Window], list[tuple[Tally, int, np.ndarray]]]) -> None:
    """One pass over a source's windows: `each` gives the model's work for a window (and does its
    own), which is run a model batch at a time as it comes; the source is closed after."""
    group: list[tuple[Tally, int, np.ndarray]] = []
    try:
        for w in source.windows():
            group += each(w)
            if len(group) >= recognizer.batch_size:
                recognizer.score_windows(group)
                group = []
        recognizer.score_windows(group)
    finally:
        source.close()


def recognize_speakers(recognizer, source, speakers: int | str = "auto",
                       max_speakers: int = DEFAULT_MAX_SPEAKERS, *, sample_rate: int | None = None,
                       name: str | None = None, channels: str = "mix", granularity: str = "utterance",
                       diarizer: Diarizer | None = None) -> SpeakerAnalysis:
    """Speakers of one recording (a path, an Audio, a list of Audio (one per channel), samples
    with sample_rate, or an emotion.sources.Source) and what each felt.

    speakers: a number, or "auto" (estimated, at most max_speakers).  channels="each" on a
    recording with several channels takes each channel as one speaker (no clustering); other
    channel choices as emotion.decode.CHANNEL_CHOICES.  `diarizer` (a Diarizer) is loaded once
    and reused when given.  Raises AudioError for a file that cannot be analysed, SpeakerError
    for a speaker count that cannot work.

    Any length, in bounded memory: a path is read as the recognizer's opener decides (held whole,
    or streamed when long), and every recording goes the same way, window by window: (1) the whole
    recording's emotion and the speech (the VAD, step by step); (2) a voice print per window of
    speech, each stretch of speech cut out as it completes; clustering; (3) each turn's windows
    cut out and scored as the turn alone would be.  A streamed file is decoded once per pass; what
    is kept between passes is times, prints and scores, never the audio.
    """
    check_speakers(speakers, max_speakers)
    first = _open(recognizer, source, sample_rate, channels, name)
    diarizer = diarizer or Diarizer()
    whole = _whole_tally(recognizer, first, granularity)
    vads = diarizer.detector.streams(len(first.names))

    def hear(w: Window) -> list[tuple[Tally, int, np.ndarray]]:
        with torch_threads(TORCH_THREADS):
            for vad, clip in zip(vads, w.clips):
                vad.push(clip)
        return [(whole, w.offset, _mixed(w.clips))]

    _scored(recognizer, first, hear)
    with torch_threads(TORCH_THREADS):
        spans = [vad.spans() for vad in vads]
    _described(whole, first)
    if len(first.names) > 1:  # one speaker per channel
        found = [(first.names.index(t.speaker), t) for t in join_turns(
            [Turn(round(s, 3), round(e, 3), n) for n, mine in zip(first.names, spans) for s, e in mine])]
        method, requested = "channels", "channels"
    else:
        found = []
        if spans[0]:
            prints = diarizer.encoder.prints(spans[0])
            again = _again(recognizer, first)
            try:
                with torch_threads(TORCH_THREADS):
                    for w in again.windows():
                        prints.push(w.clips[0])
            finally:
                again.close()
            found = [(0, t) for t in diarizer.turns(prints.finish(), speakers, max_speakers).turns]
        method, requested = "clustering", speakers
    cutter = _TurnCutter(recognizer, first, found)
    if found:
        _scored(recognizer, _again(recognizer, first), lambda w: cutter.push(w.clips))
    result = recognizer.result(whole)
    keys = list(result.scores)
    turns = []
    for (_, t), cut in zip(found, cutter.cuts):
        r = recognizer.result(cut.tally)
        turns.append(TurnEmotion(t.start, t.end, t.speaker, None if r.silent else r.emotion,
                                 None if r.silent else r.confidence, r.scores))
    reason = None
    if not turns:
        reason = (f"{NO_SPEECH}: the voice activity detector found no speech in {first.name} "
                  f"({first.duration_s:.1f} s)")
    analysis = SpeakerAnalysis(result, turns, summarise(turns, keys, first.duration_s), requested,
                               max_speakers, method, reason)
    analysis.result.speakers = analysis.to_dict()
    log.info("%s: %s, %d turns%s", first.name, analysis.describe(), len(turns), " (streamed)" if first.streamed else "")
    return analysis
