"""Who felt what in a conversation: speaker turns (emotion.speakers.diarize), an emotion per turn, and a
summary per speaker.

    from emotion import Recognizer
    from emotion.speakers import recognize_speakers

    analysis = recognize_speakers(Recognizer.load(), "call.wav", speakers="auto", max_speakers=4)
    for s in analysis.speakers:
        print(s.speaker, s.speaking_s, s.share, s.emotion, s.change)
    analysis.result.to_dict()["speakers"]          # the section result.json gets

Each turn is cut out and analysed as a clip of its own, in one batch with the whole recording, so a
turn's emotion is exactly what the same span gives when analysed alone.  A speaker's distribution
is the speaking-time-weighted mean of its turns' scores, its emotion the largest of them; `change`
compares the turns in the first and the last third of the recording.

A stereo call with channels="each" is taken as one speaker per side: each channel's speech is its
speaker's turns, with no clustering.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np

from ..audio import SAMPLE_RATE, Audio, load_clips, prepare_channels
from .diarize import DEFAULT_MAX_SPEAKERS, Diarizer, Turn, check_speakers, join_turns
from ..results import EmotionResult

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


def _clips(recognizer, source, sample_rate: int | None, channels: str, name: str | None) -> list[Audio]:
    if isinstance(source, Audio):
        return [source]
    if isinstance(source, list) and source and all(isinstance(c, Audio) for c in source):
        return source  # decoded already, one clip per channel
    if isinstance(source, (str, os.PathLike)):
        return load_clips(recognizer.opener.load, source, channels)
    if sample_rate is None:
        raise ValueError("samples need their sample_rate")
    return prepare_channels(np.asarray(source), sample_rate, name or "samples", channels)


def _cut(clip: Audio, start: float, end: float) -> Audio:
    """The span [start, end) seconds of a clip as a clip of its own."""
    s, e = round(start * SAMPLE_RATE), round(end * SAMPLE_RATE)
    return Audio(clip.samples[s:e], f"{clip.name}[{start:.2f}-{end:.2f}]", clip.source_rate, clip.channels,
                 channel=clip.channel)


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


def recognize_speakers(recognizer, source, speakers: int | str = "auto",
                       max_speakers: int = DEFAULT_MAX_SPEAKERS, *, sample_rate: int | None = None,
                       name: str | None = None, channels: str = "mix", granularity: str = "utterance",
                       diarizer: Diarizer | None = None) -> SpeakerAnalysis:
    """Speakers of one recording (a path, an Audio, a list of Audio (one per channel), or samples
    with sample_rate) and what each felt.

    speakers: a number, or "auto" (estimated, at most max_speakers).  channels="each" on a
    recording with several channels takes each channel as one speaker (no clustering); other
    channel choices as emotion.decode.CHANNEL_CHOICES.  `diarizer` (a Diarizer) is loaded once
    and reused when given.  Raises AudioError for a file that cannot be analysed, SpeakerError
    for a speaker count that cannot work.
    """
    check_speakers(speakers, max_speakers)
    clips = _clips(recognizer, source, sample_rate, channels, name)
    diarizer = diarizer or Diarizer()
    if len(clips) > 1:  # one speaker per channel
        whole = Audio(np.mean([c.samples for c in clips], axis=0).astype(np.float32), clips[0].name,
                      clips[0].source_rate, clips[0].channels, clips[0].sha256, list(clips[0].warnings),
                      clips[0].decode_ms, channel="mix")
        side = {c.channel: c for c in clips}
        found = [(side[t.speaker], t) for t in join_turns([Turn(round(s, 3), round(e, 3), c.channel) for c in clips
                                                           for s, e in diarizer.speech(c.samples)])]
        method, requested = "channels", "channels"
    else:
        whole = clips[0]
        dia = diarizer.diarize(whole.samples, speakers, max_speakers)
        found = [(whole, t) for t in dia.turns]
        method, requested = "clustering", speakers
    results = recognizer.analyse([whole] + [_cut(c, t.start, t.end) for c, t in found], granularity)
    keys = list(results[0].scores)
    turns = [TurnEmotion(t.start, t.end, t.speaker, None if r.silent else r.emotion,
                         None if r.silent else r.confidence, r.scores) for (_, t), r in zip(found, results[1:])]
    reason = None
    if not turns:
        reason = (f"{NO_SPEECH}: the voice activity detector found no speech in {whole.name} "
                  f"({whole.duration_s:.1f} s)")
    analysis = SpeakerAnalysis(results[0], turns, summarise(turns, keys, whole.duration_s), requested,
                               max_speakers, method, reason)
    analysis.result.speakers = analysis.to_dict()
    log.info("%s: %s, %d turns", whole.name, analysis.describe(), len(turns))
    return analysis
